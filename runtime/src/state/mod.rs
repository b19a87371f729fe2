//! State for stateless functions, through the standard WASI interfaces:
//! wasi:keyvalue stores ([`keyvalue`]), wasi:blobstore containers
//! ([`blobstore`]), wasi:config values and secrets ([`config`],
//! [`secrets`]), and the change events of stores that publish
//! them ([`events`]).
//!
//! [`Services`] holds what the server opened from `[[store]]` and
//! `[[secret]]`; a deploy turns a function's grants into [`Grants`] once,
//! which every instance shares. The linker knows every interface; what an
//! instance can reach is only what its `Grants` hold.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use wasmtime::component::Linker;

use crate::config::{BackendSpec, FunctionSpec, StateSpec};

pub mod blobstore;
pub mod config;
pub mod events;
pub mod keyvalue;
pub mod secrets;

use blobstore::{BlobView, Blobs};
use config::{ConfigValues, ConfigView};
use events::{EventsLink, Publish, StoreEvents, StoreKind};
use keyvalue::{KeyValue, KeyValueView};
use secrets::Secret;

/// The stores and secrets a server offers its functions.
#[derive(Default)]
pub struct Services {
    stores: BTreeMap<String, Arc<dyn KeyValue>>,
    blobs: BTreeMap<String, Arc<Blobs>>,
    secrets: BTreeMap<String, Secret>,
    /// Where the stores' change events go, once the events machinery runs.
    events: EventsLink,
    /// The embedded database and its outbox's wake-up, when a store there
    /// publishes events: [`Services::connect_events`] starts its relay.
    outbox: Option<(crate::store::sqlite::Database, Arc<tokio::sync::Notify>)>,
}

/// What one function's instances may reach, resolved at deploy.
#[derive(Default)]
pub struct Grants {
    pub keyvalue: keyvalue::Granted,
    pub blobstore: blobstore::Granted,
    pub config: ConfigValues,
    /// The values of its secrets, which its guest log never shows.
    pub redact: Arc<[String]>,
}

impl Services {
    /// Opens every declared store (the embedded key-value ones share one
    /// database in `state_dir`; Redis ones connect on first use; blob
    /// stores are directories under `state_dir/blobs`) and reads every
    /// secret.
    pub fn open(state_dir: Option<&Path>, spec: &StateSpec) -> Result<Arc<Self>> {
        let mut database = None;
        let mut stores = BTreeMap::new();
        let mut blobs = BTreeMap::new();
        let mut staging = None;
        let link = EventsLink::default();
        let wake = Arc::new(tokio::sync::Notify::new());
        let mut outbox = None;
        for store in &spec.stores {
            let kind = match store.kind.as_str() {
                "blobstore" => StoreKind::Blob,
                _ => StoreKind::KeyValue,
            };
            let events = store
                .events
                .as_deref()
                .map(|topic| StoreEvents::new(&store.name, topic, kind, link.clone()));
            if kind == StoreKind::Blob {
                let dir = embedded(state_dir, &store.name)?.join(blobstore::files::DIR);
                let staging = match &staging {
                    Some(staging) => staging,
                    None => staging.insert(blobstore::backend::Staging::open(&dir)?),
                };
                let opened = blobstore::files::open(&dir, store, staging, events)?;
                blobs.insert(store.name.clone(), opened);
                continue;
            }
            let backend: Arc<dyn KeyValue> = match &store.backend {
                Some(BackendSpec::Redis(url)) => {
                    let redis: Arc<dyn KeyValue> = Arc::new(
                        keyvalue::redis::RedisStore::new(url)
                            .map_err(|e| anyhow!("store `{}`: {e:#}", store.name))?,
                    );
                    match events {
                        Some(events) => keyvalue::evented::Evented::wrap(redis, events),
                        None => redis,
                    }
                }
                None => {
                    let dir = embedded(state_dir, &store.name)?;
                    let db = match &database {
                        Some(db) => db,
                        None => database
                            .insert(keyvalue::sqlite::open(&dir.join(keyvalue::sqlite::FILE))?),
                    };
                    let events = events.map(|events| {
                        outbox = Some((db.clone(), wake.clone()));
                        keyvalue::outbox::Outbox::new(events, wake.clone())
                    });
                    keyvalue::sqlite::store(db, &store.name, events)
                }
            };
            stores.insert(store.name.clone(), backend);
        }
        let secrets = spec
            .secrets
            .iter()
            .map(|s| Ok((s.name.clone(), secrets::read(s)?)))
            .collect::<Result<_>>()?;
        Ok(Arc::new(Services {
            stores,
            blobs,
            secrets,
            events: link,
            outbox,
        }))
    }

    /// Connects the stores' change events to the events machinery and
    /// starts moving what the embedded store's outbox holds (events a
    /// crash left there included). Call once the subscriptions run, so
    /// the first events find their subscribers.
    pub fn connect_events(&self, to: Arc<dyn Publish>) {
        self.events.connect(to);
        if let Some((db, wake)) = &self.outbox {
            keyvalue::outbox::relay(db.clone(), self.events.clone(), wake.clone());
        }
    }

    /// The store `name`, for the operator (admin API, `wisp kv`).
    pub fn store(&self, name: &str) -> Option<&Arc<dyn KeyValue>> {
        self.stores.get(name)
    }

    /// The names of the declared key-value stores.
    pub fn store_names(&self) -> Vec<String> {
        self.stores.keys().cloned().collect()
    }

    /// The blob store `name`, for the operator (admin API, `wisp blobs`).
    pub fn blob_store(&self, name: &str) -> Option<&Arc<Blobs>> {
        self.blobs.get(name)
    }

    /// The names of the declared blob stores.
    pub fn blob_store_names(&self) -> Vec<String> {
        self.blobs.keys().cloned().collect()
    }

    /// Resolves `spec`'s grants; an error names the key and what is
    /// missing, for a deploy to refuse.
    pub fn grants(&self, spec: &FunctionSpec) -> Result<Grants> {
        let missing = |what: &str, name: &str, key: &str| {
            anyhow!("`{key}`: no {what} `{name}` on this server; declare it in the manifest")
        };
        let keyvalue = spec
            .keyvalue
            .iter()
            .map(|name| match self.stores.get(name) {
                Some(store) => Ok((name.clone(), store.clone())),
                None => Err(missing("key-value store", name, "keyvalue")),
            })
            .collect::<Result<_>>()?;
        let blobstore = spec
            .blobstore
            .iter()
            .map(|name| match self.blobs.get(name) {
                Some(blobs) => Ok((name.clone(), blobs.clone())),
                None => Err(missing("blob store", name, "blobstore")),
            })
            .collect::<Result<_>>()?;
        let mut pairs: Vec<(String, String)> = spec
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut redact = Vec::new();
        for name in &spec.secrets {
            let secret = self
                .secrets
                .get(name)
                .ok_or_else(|| missing("secret", name, "secrets"))?;
            if spec.config.contains_key(name) {
                return Err(anyhow!(
                    "`secrets`: `{name}` is also a `config` key; rename one"
                ));
            }
            pairs.push((name.clone(), secret.value().to_string()));
            redact.push(secret.value().to_string());
        }
        Ok(Grants {
            keyvalue,
            blobstore,
            config: ConfigValues::new(pairs),
            redact: redact.into(),
        })
    }
}

/// How the linked state interfaces reach an instance's grants and its
/// resource table; implemented by the `Store` data.
pub trait StateView: ConfigView {
    fn keyvalue(&mut self) -> KeyValueView<'_>;
    fn blobstore(&mut self) -> BlobView<'_>;
}

fn keyvalue_view<T: StateView>(host: &mut T) -> KeyValueView<'_> {
    host.keyvalue()
}

fn blobstore_view<T: StateView>(host: &mut T) -> BlobView<'_> {
    host.blobstore()
}

/// The state directory an embedded store keeps its data in.
fn embedded<'a>(state_dir: Option<&'a Path>, store: &str) -> Result<&'a Path> {
    state_dir.ok_or_else(|| {
        anyhow!("store `{store}` is embedded and needs a state_dir to keep its data in")
    })
}

/// Links wasi:keyvalue (draft, draft2), wasi:blobstore (draft,
/// draft-2024-09-01) and wasi:config (rc.1, draft-2024-09-27).
pub fn add_to_linker<T: StateView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    keyvalue::add_to_linker(linker, keyvalue_view::<T>)?;
    blobstore::add_to_linker(linker, blobstore_view::<T>)?;
    config::add_to_linker(linker)
}
