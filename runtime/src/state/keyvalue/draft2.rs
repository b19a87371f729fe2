//! `wasi:keyvalue@0.2.0-draft2`, the version Spin guests import: signed
//! counters, string cursors, and compare-and-swap handles.

use wasmtime::component::{Linker, Resource};

use crate::state::keyvalue::{Bucket, Cas, HasKeyValue, KeyValueView, KvError};

mod generated {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue-draft2",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::state::keyvalue::Bucket,
            "wasi:keyvalue/atomics.cas": crate::state::keyvalue::Cas,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::state::keyvalue::KvError,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<T, HasKeyValue>(linker, view)?;
    batch::add_to_linker::<T, HasKeyValue>(linker, view)
}

/// The wire error of this version, for `cas-error`, which carries it
/// unconverted.
fn wire(err: KvError) -> wasmtime::Result<store::Error> {
    match err {
        KvError::AccessDenied => Ok(store::Error::AccessDenied),
        KvError::Other(message) => Ok(store::Error::Other(message)),
        KvError::Trap(trap) => Err(trap),
    }
}

impl store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvError> {
        KeyValueView::open(self, &identifier)
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        wire(err)
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.bucket(&bucket)?.get(&key).await?)
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        Ok(self.bucket(&bucket)?.set(&key, value).await?)
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KvError> {
        Ok(self.bucket(&bucket)?.delete(&key).await?)
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, KvError> {
        Ok(self.bucket(&bucket)?.exists(&key).await?)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, KvError> {
        let cursor = cursor
            .map(|c| {
                c.parse::<u64>().map_err(|_| {
                    KvError::Other(format!(
                        "`{c}` is not a cursor this store returned; pass the last response's cursor"
                    ))
                })
            })
            .transpose()?;
        let page = self.bucket(&bucket)?.list_keys(cursor).await?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor.map(|c| c.to_string()),
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl KeyValueView<'_> {
    /// A handle on `key` remembering what it holds now.
    async fn new_cas(
        &mut self,
        store: std::sync::Arc<dyn crate::state::keyvalue::KeyValue>,
        key: String,
    ) -> Result<Resource<Cas>, KvError> {
        let current = store.get(&key).await?;
        Ok(self.table.push(Cas {
            store,
            key,
            current,
        })?)
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Resource<Cas>, KvError> {
        let store = self.bucket(&bucket)?;
        self.new_cas(store, key).await
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.table.get(&cas)?.current.clone())
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, KvError> {
        Ok(self.bucket(&bucket)?.increment(&key, delta).await?)
    }

    /// Writes `value` if the key still holds what `cas` saw; otherwise the
    /// guest gets a fresh handle with the current value, to retry with.
    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas {
            store,
            key,
            current,
        } = self.table.delete(cas)?;
        let swapped = match store.compare_and_swap(&key, current, value).await {
            Ok(swapped) => swapped,
            Err(e) => return Ok(Err(atomics::CasError::StoreError(wire(e.into())?))),
        };
        if swapped {
            return Ok(Ok(()));
        }
        match self.new_cas(store, key).await {
            Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(fresh))),
            Err(e) => Ok(Err(atomics::CasError::StoreError(wire(e)?))),
        }
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        Ok(self.bucket(&bucket)?.get_many(keys).await?)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        Ok(self.bucket(&bucket)?.set_many(key_values).await?)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        Ok(self.bucket(&bucket)?.delete_many(keys).await?)
    }
}
