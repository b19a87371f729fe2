//! Storage events: a store declared with `events = "TOPIC"` publishes a
//! CloudEvent to that topic for every change made to it, by a guest or by
//! the operator (`wisp kv set`), delivered at least once by the events
//! machinery like any other event.
//!
//! | store kind | change | `type` |
//! |---|---|---|
//! | key-value | set, increment, swapped compare-and-swap, batch set | [`KEY_UPDATED`] |
//! | key-value | delete, batch delete | [`KEY_DELETED`] |
//! | blob | object written (complete) | [`OBJECT_FINALIZED`] |
//! | blob | object deleted | [`OBJECT_DELETED`] |
//!
//! `source` is `//wisp/stores/<store>`, `subject` the key (or object name),
//! and the data is a small JSON object, the part of Cloud Storage's
//! `google.cloud.storage.object.v1.finalized` data a store has: `store`
//! (Cloud Storage's `bucket`), `key` (its `name`), and for writes `size`
//! in bytes and, for blobs, the `etag` when the store has one.
//!
//! A backend reports a change through [`StoreEvents`] *after* the change
//! succeeded and *before* the write is acknowledged, so an acknowledged
//! write never lacks its event; [`StoreEvents::publish`] returns once the
//! events are durable. The embedded key-value store does better: it
//! records the event in the write's own transaction (its outbox, see
//! `keyvalue::outbox`), so no committed write lacks one, acknowledged or not.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;

use crate::events::cloudevent::{CloudEvent, new_event};

/// A key-value entry was written; `data.size` is the value's length.
pub const KEY_UPDATED: &str = "dev.wisp.kv.key.updated";
/// A key-value entry was deleted (deleting an absent key counts too: the
/// store cannot tell a caller's delete from a no-op without a read).
pub const KEY_DELETED: &str = "dev.wisp.kv.key.deleted";
/// A blob object was written completely and is readable.
pub const OBJECT_FINALIZED: &str = "dev.wisp.blob.object.finalized";
/// A blob object was deleted.
pub const OBJECT_DELETED: &str = "dev.wisp.blob.object.deleted";

/// Which vocabulary a store's events speak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StoreKind {
    KeyValue,
    Blob,
}

/// One change to report.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// `key` now holds `size` bytes (`etag`: the blob's, when it has one).
    Written {
        key: &'a str,
        size: u64,
        etag: Option<&'a str>,
    },
    Deleted {
        key: &'a str,
    },
}

/// Why events could not be published.
#[derive(Debug)]
pub struct PublishError {
    pub message: String,
    /// Trying again cannot help (the topic is not declared any more).
    pub lasting: bool,
}

/// Where storage events go: implemented by the events machinery
/// (`crate::events::Events`), kept behind this seam so state does not
/// depend on dispatchers.
#[async_trait]
pub trait Publish: Send + Sync + 'static {
    /// Appends `events` to `topic`; on `Ok` they are durable.
    async fn publish(&self, topic: &str, events: Vec<CloudEvent>) -> Result<(), PublishError>;
}

/// The server's events machinery, connected once it runs (the stores open
/// before it, since deploys need them).
#[derive(Clone, Default)]
pub struct EventsLink(Arc<OnceLock<Arc<dyn Publish>>>);

impl EventsLink {
    /// Connects the link; later calls are ignored.
    pub fn connect(&self, to: Arc<dyn Publish>) {
        let _ = self.0.set(to);
    }

    pub fn get(&self) -> Result<&Arc<dyn Publish>, PublishError> {
        self.0.get().ok_or_else(|| PublishError {
            message: "storage events are not running yet (the server is starting)".into(),
            lasting: false,
        })
    }
}

/// One store's change events: how they look and where they go. A backend
/// holds one when its store has `events = "TOPIC"`.
pub struct StoreEvents {
    store: String,
    topic: String,
    kind: StoreKind,
    link: EventsLink,
}

impl StoreEvents {
    pub fn new(store: &str, topic: &str, kind: StoreKind, link: EventsLink) -> Arc<Self> {
        Arc::new(StoreEvents {
            store: store.into(),
            topic: topic.into(),
            kind,
            link,
        })
    }

    /// The topic the events go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The CloudEvent reporting `change` (a fresh id; `time` is now).
    pub fn event(&self, change: Change) -> CloudEvent {
        let (event_type, key, data) = match (change, self.kind) {
            (Change::Written { key, size, etag }, kind) => {
                let mut data = json!({ "store": self.store, "key": key, "size": size });
                if let Some(etag) = etag {
                    data["etag"] = etag.into();
                }
                let event_type = match kind {
                    StoreKind::KeyValue => KEY_UPDATED,
                    StoreKind::Blob => OBJECT_FINALIZED,
                };
                (event_type, key, data)
            }
            (Change::Deleted { key }, StoreKind::KeyValue) => {
                (KEY_DELETED, key, json!({ "store": self.store, "key": key }))
            }
            (Change::Deleted { key }, StoreKind::Blob) => (
                OBJECT_DELETED,
                key,
                json!({ "store": self.store, "key": key }),
            ),
        };
        let mut event = new_event(
            &format!("//wisp/stores/{}", self.store),
            event_type,
            Some("application/json"),
            Bytes::from(data.to_string()),
        );
        // CloudEvents wants a subject non-empty; the empty key has none.
        if !key.is_empty() {
            event.set_attribute("subject", key);
        }
        event
    }

    /// Publishes the events of `changes` to the store's topic; on `Ok` they
    /// are durable. Call it after the changes succeeded and before
    /// acknowledging them: a crash in between loses the events of writes
    /// nobody was told succeeded, never of acknowledged ones.
    pub async fn publish(&self, changes: &[Change<'_>]) -> Result<(), PublishError> {
        if changes.is_empty() {
            return Ok(());
        }
        let events = changes.iter().map(|c| self.event(*c)).collect();
        self.link.get()?.publish(&self.topic, events).await
    }

    /// [`publish`](Self::publish) for changes a backend already made: a
    /// failure is logged and becomes the message the writer gets back.
    pub async fn report(&self, changes: &[Change<'_>]) -> Result<(), String> {
        self.publish(changes).await.map_err(|e| {
            tracing::error!(
                "storage events: a write to store `{}` succeeded but its event did not reach topic `{}`: {}",
                self.store,
                self.topic,
                e.message
            );
            format!(
                "the write succeeded, but its change event could not be published to topic `{}`: {}",
                self.topic, e.message
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_the_key_as_subject_and_a_small_json() {
        let kv = StoreEvents::new("cache", "t", StoreKind::KeyValue, EventsLink::default());
        let e = kv.event(Change::Written {
            key: "a/b",
            size: 5,
            etag: None,
        });
        assert_eq!(e.attribute("type"), Some(KEY_UPDATED));
        assert_eq!(e.attribute("subject"), Some("a/b"));
        assert_eq!(e.attribute("source"), Some("//wisp/stores/cache"));
        let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
        assert_eq!(data, json!({ "store": "cache", "key": "a/b", "size": 5 }));
        let e = kv.event(Change::Deleted { key: "a/b" });
        assert_eq!(e.attribute("type"), Some(KEY_DELETED));

        let blobs = StoreEvents::new("photos", "t", StoreKind::Blob, EventsLink::default());
        let e = blobs.event(Change::Written {
            key: "cat.ppm",
            size: 9,
            etag: Some("\"abc\""),
        });
        assert_eq!(e.attribute("type"), Some(OBJECT_FINALIZED));
        let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
        assert_eq!(data["etag"], "\"abc\"");
        let e = blobs.event(Change::Deleted { key: "cat.ppm" });
        assert_eq!(e.attribute("type"), Some(OBJECT_DELETED));
    }
}
