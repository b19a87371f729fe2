//! Storage events for a backend that cannot write them in its own
//! transaction (Redis): [`Evented`] publishes each change's event after the
//! backend made the change and before the caller hears it succeeded. A
//! crash between the two loses the event of a write nobody was told
//! succeeded; an acknowledged write always has its event. (The embedded
//! backend records events in the write's transaction instead, see
//! `outbox`.)

use std::sync::Arc;

use async_trait::async_trait;

use crate::state::events::{Change, StoreEvents};
use crate::state::keyvalue::backend::{Error, KeyPage, KeyValue, Result};

pub struct Evented {
    inner: Arc<dyn KeyValue>,
    events: Arc<StoreEvents>,
}

impl Evented {
    pub fn wrap(inner: Arc<dyn KeyValue>, events: Arc<StoreEvents>) -> Arc<dyn KeyValue> {
        Arc::new(Evented { inner, events })
    }

    async fn report(&self, changes: &[Change<'_>]) -> Result<()> {
        self.events.report(changes).await.map_err(Error)
    }
}

fn written(key: &str, size: usize) -> Change<'_> {
    Change::Written {
        key,
        size: size as u64,
        etag: None,
    }
}

#[async_trait]
impl KeyValue for Evented {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let size = value.len();
        self.inner.set(key, value).await?;
        self.report(&[written(key, size)]).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await?;
        self.report(&[Change::Deleted { key }]).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        self.inner.list_keys(cursor).await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let next = self.inner.increment(key, delta).await?;
        self.report(&[written(key, next.to_string().len())]).await?;
        Ok(next)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool> {
        let size = value.len();
        let swapped = self.inner.compare_and_swap(key, expected, value).await?;
        if swapped {
            self.report(&[written(key, size)]).await?;
        }
        Ok(swapped)
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        self.inner.get_many(keys).await
    }

    async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<()> {
        let sizes: Vec<(String, usize)> = pairs.iter().map(|(k, v)| (k.clone(), v.len())).collect();
        self.inner.set_many(pairs).await?;
        let changes: Vec<Change> = sizes.iter().map(|(k, n)| written(k, *n)).collect();
        self.report(&changes).await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        self.inner.delete_many(keys.clone()).await?;
        let changes: Vec<Change> = keys.iter().map(|key| Change::Deleted { key }).collect();
        self.report(&changes).await
    }
}
