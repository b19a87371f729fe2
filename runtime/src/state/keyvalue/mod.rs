//! wasi:keyvalue for guests: `store`, `atomics` and `batch` in both
//! released drafts, `0.2.0-draft` (wasmtime 48, wasmCloud) and
//! `0.2.0-draft2` (Spin), linked side by side. Each draft's bindings
//! ([`draft`], [`draft2`]) only translate types; what a call does is the
//! [`KeyValue`] backend's: [`sqlite`] embedded, or [`redis`].
//!
//! A bucket opens only when its name is one of the stores the function was
//! granted; any other name fails inside the guest with `access-denied`.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

pub mod backend;
mod draft;
mod draft2;
pub mod evented;
pub mod outbox;
pub mod redis;
pub mod sqlite;

pub use backend::KeyValue;

/// The stores one function may open, by name.
pub type Granted = BTreeMap<String, Arc<dyn KeyValue>>;

/// An open bucket: the resource behind `wasi:keyvalue/store.bucket` in
/// both drafts.
pub struct Bucket {
    store: Arc<dyn KeyValue>,
}

/// A draft2 compare-and-swap handle: the key and the value it held when the
/// handle was made.
pub struct Cas {
    store: Arc<dyn KeyValue>,
    key: String,
    current: Option<Vec<u8>>,
}

/// The errors a wasi:keyvalue call ends with: the first two reach the guest
/// as the interface's `error`, a trap ends the instance (a handle the
/// guest does not own, a full resource table).
pub enum KvError {
    AccessDenied,
    Other(String),
    Trap(wasmtime::Error),
}

impl From<backend::Error> for KvError {
    fn from(e: backend::Error) -> Self {
        KvError::Other(e.0)
    }
}

impl From<wasmtime::component::ResourceTableError> for KvError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        KvError::Trap(e.into())
    }
}

/// What the wasi:keyvalue host functions see of one instance.
pub struct KeyValueView<'a> {
    pub table: &'a mut ResourceTable,
    pub granted: &'a Granted,
}

impl KeyValueView<'_> {
    fn open(&mut self, name: &str) -> Result<Resource<Bucket>, KvError> {
        let store = self.granted.get(name).ok_or(KvError::AccessDenied)?.clone();
        Ok(self.table.push(Bucket { store })?)
    }

    fn bucket(&self, bucket: &Resource<Bucket>) -> Result<Arc<dyn KeyValue>, KvError> {
        Ok(self.table.get(bucket)?.store.clone())
    }
}

/// Ties the generated traits to [`KeyValueView`].
struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// Links both drafts; `view` finds an instance's handles in its store data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    draft::add_to_linker(linker, view)?;
    draft2::add_to_linker(linker, view)
}
