//! wasi:blobstore for guests, in both released drafts: `0.2.0-draft`
//! (WebAssembly/wasi-blobstore, wasmCloud) and `0.2.0-draft-2024-09-01`
//! (Spin), which differ only in their package version. The bindings
//! ([`host`]) translate types; what a call does is [`Blobs`]'s, over a
//! [`BlobBackend`] ([`files`]: embedded, in `state_dir`).
//!
//! Containers are stores: a function gets, by name, the `blobstore` stores
//! it is granted; every other name is refused with an access-denied error.
//! Containers are declared in the manifest, so `create-container` and
//! `delete-container` are refused too (`clear` empties one).
//!
//! A write streams into a staged file and becomes the object only at
//! `outgoing-value.finish`, whole; a value dropped unfinished (or a guest
//! that traps mid-write) leaves the old object as it was.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, OutputStream, Pollable, StreamError, StreamResult,
    pipe::AsyncReadStream,
};

pub mod backend;
pub mod files;
mod host;

pub use backend::{BlobBackend, Blobs};
use backend::{Error, ObjectInfo, Reader, Staged};

/// The containers one function may get, by name.
pub type Granted = BTreeMap<String, Arc<Blobs>>;

/// A container the guest holds: `wasi:blobstore/container.container`.
pub struct Container {
    blobs: Arc<Blobs>,
}

/// Bytes read from an object: `wasi:blobstore/types.incoming-value`.
pub struct IncomingValue {
    reader: Reader,
}

/// A value being written: `wasi:blobstore/types.outgoing-value`. Its bytes
/// go to a staged file through the output stream; `write-data` says where
/// they go, `finish` puts them there.
pub struct OutgoingValue {
    pending: Arc<Mutex<Pending>>,
    stream_taken: bool,
    target: Option<(Arc<Blobs>, String)>,
}

/// What the output stream and its value share.
#[derive(Default)]
struct Pending {
    staged: Option<Staged>,
    /// Why a write failed; the value can no longer be finished.
    failed: Option<String>,
}

/// The names `list-objects` found: `wasi:blobstore/container.stream-object-names`.
pub struct ObjectNames {
    names: std::vec::IntoIter<String>,
}

/// How a wasi:blobstore call ends badly: a message reaches the guest as
/// the interface's `error` string, a trap ends the instance (a handle the
/// guest does not own, a full resource table).
pub enum BlobError {
    Message(String),
    Trap(wasmtime::Error),
}

impl From<Error> for BlobError {
    fn from(e: Error) -> Self {
        BlobError::Message(e.0)
    }
}

impl From<wasmtime::component::ResourceTableError> for BlobError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        BlobError::Trap(e.into())
    }
}

impl BlobError {
    fn wire(self) -> wasmtime::Result<String> {
        match self {
            BlobError::Message(message) => Ok(message),
            BlobError::Trap(trap) => Err(trap),
        }
    }
}

fn message(text: String) -> BlobError {
    BlobError::Message(text)
}

/// What the wasi:blobstore host functions see of one instance.
pub struct BlobView<'a> {
    pub table: &'a mut ResourceTable,
    pub granted: &'a Granted,
}

impl BlobView<'_> {
    fn blobs(&self, name: &str) -> Result<Arc<Blobs>, BlobError> {
        self.granted.get(name).cloned().ok_or_else(|| {
            message(format!(
                "access denied: this function is not granted the container `{name}` \
                 (grant blob stores with blobstore = [\"{name}\"] in wisp.toml)"
            ))
        })
    }

    fn container(&self, container: &Resource<Container>) -> Result<Arc<Blobs>, BlobError> {
        Ok(self.table.get(container)?.blobs.clone())
    }

    fn get_container(&mut self, name: &str) -> Result<Resource<Container>, BlobError> {
        let blobs = self.blobs(name)?;
        Ok(self.table.push(Container { blobs })?)
    }

    fn create_container(&mut self, name: &str) -> Result<Resource<Container>, BlobError> {
        self.blobs(name)?;
        Err(message(format!(
            "container `{name}` already exists; containers are declared as [[store]] tables \
             with kind = \"blobstore\" in wisp.toml"
        )))
    }

    fn delete_container(&mut self, name: &str) -> Result<(), BlobError> {
        self.blobs(name)?;
        Err(message(format!(
            "container `{name}` is declared in wisp.toml and cannot be deleted by a function; \
             use `clear` to delete its objects"
        )))
    }

    fn container_exists(&mut self, name: &str) -> Result<bool, BlobError> {
        self.blobs(name).map(|_| true)
    }

    async fn copy(
        &mut self,
        (src, src_name): (String, String),
        (dest, dest_name): (String, String),
        rename: bool,
    ) -> Result<(), BlobError> {
        let (from, to) = (self.blobs(&src)?, self.blobs(&dest)?);
        if rename {
            Ok(from.rename(&src_name, &to, &dest_name).await?)
        } else {
            Ok(from.copy(&src_name, &to, &dest_name).await?)
        }
    }

    async fn get_data(
        &mut self,
        container: &Resource<Container>,
        name: &str,
        start: u64,
        end: u64,
    ) -> Result<Resource<IncomingValue>, BlobError> {
        let reader = self.container(container)?.read(name, start, end).await?;
        Ok(self.table.push(IncomingValue { reader })?)
    }

    fn write_data(
        &mut self,
        container: &Resource<Container>,
        name: String,
        value: &Resource<OutgoingValue>,
    ) -> Result<(), BlobError> {
        files::encode(&name)?;
        let blobs = self.container(container)?;
        let value = self.table.get_mut(value)?;
        if let Some((blobs, name)) = &value.target {
            return Err(message(format!(
                "this value is already bound for `{name}` in container `{}`; make a new \
                 outgoing-value for another object",
                blobs.name()
            )));
        }
        value.target = Some((blobs, name));
        Ok(())
    }

    async fn list_objects(
        &mut self,
        container: &Resource<Container>,
    ) -> Result<Resource<ObjectNames>, BlobError> {
        let names = self.container(container)?.list("").await?;
        Ok(self.table.push(ObjectNames {
            names: names.into_iter(),
        })?)
    }

    async fn delete_objects(
        &mut self,
        container: &Resource<Container>,
        names: &[String],
    ) -> Result<(), BlobError> {
        let blobs = self.container(container)?;
        for name in names {
            blobs.delete(name).await?;
        }
        Ok(())
    }

    async fn object_info(
        &mut self,
        container: &Resource<Container>,
        name: &str,
    ) -> Result<(String, ObjectInfo), BlobError> {
        let blobs = self.container(container)?;
        Ok((blobs.name().to_string(), blobs.info(name).await?))
    }

    fn read_names(
        &mut self,
        names: &Resource<ObjectNames>,
        len: u64,
    ) -> Result<(Vec<String>, bool), BlobError> {
        let names = &mut self.table.get_mut(names)?.names;
        let read: Vec<String> = names
            .by_ref()
            .take(usize::try_from(len).unwrap_or(usize::MAX))
            .collect();
        Ok((read, names.len() == 0))
    }

    fn skip_names(
        &mut self,
        names: &Resource<ObjectNames>,
        num: u64,
    ) -> Result<(u64, bool), BlobError> {
        let (skipped, end) = self.read_names(names, num)?;
        Ok((skipped.len() as u64, end))
    }

    fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        Ok(self.table.push(OutgoingValue {
            pending: Arc::default(),
            stream_taken: false,
            target: None,
        })?)
    }

    /// The value's only output stream, writing to a staged file as large
    /// as the largest container the function is granted allows; an error
    /// (`()`) when it was taken before or the function has no container.
    fn write_body(
        &mut self,
        value: Resource<OutgoingValue>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        let largest = self
            .granted
            .values()
            .max_by_key(|b| b.max_object())
            .cloned();
        let outgoing = self.table.get_mut(&value)?;
        let Some(blobs) = largest.filter(|_| !outgoing.stream_taken) else {
            return Ok(Err(()));
        };
        let staged = match blobs.stage() {
            Ok(staged) => staged,
            Err(e) => {
                tracing::warn!(target: "wisp::state", "could not stage a blob: {e}");
                return Ok(Err(()));
            }
        };
        outgoing.stream_taken = true;
        let pending = outgoing.pending.clone();
        pending.lock().unwrap().staged = Some(staged);
        let stream: DynOutputStream = Box::new(StagedStream { pending });
        Ok(Ok(self.table.push_child(stream, &value)?))
    }

    /// Stores the value where `write-data` said, whole. The value's stream
    /// must be dropped first (the table refuses to delete a parent with a
    /// live child, which traps, as the interface says).
    async fn finish(&mut self, value: Resource<OutgoingValue>) -> Result<(), BlobError> {
        let OutgoingValue {
            pending, target, ..
        } = self.table.delete(value)?;
        let Some((blobs, name)) = target else {
            return Err(message(
                "the value was finished without `write-data`, so it went nowhere; call \
                 container.write-data(name, value) before outgoing-value.finish"
                    .into(),
            ));
        };
        let (staged, failed) = {
            let mut pending = pending.lock().unwrap();
            (pending.staged.take(), pending.failed.take())
        };
        if let Some(failed) = failed {
            return Err(message(format!("nothing was stored: {failed}")));
        }
        let staged = match staged {
            Some(staged) => staged,
            None => blobs.stage()?,
        };
        Ok(blobs.write(&name, staged).await?)
    }

    fn size(&mut self, value: &Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table.get(value)?.reader.len)
    }

    async fn consume_sync(&mut self, value: Resource<IncomingValue>) -> Result<Vec<u8>, BlobError> {
        let IncomingValue { reader } = self.table.delete(value)?;
        Ok(reader.bytes().await?)
    }

    fn consume_async(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> Result<Resource<DynInputStream>, BlobError> {
        let IncomingValue { reader } = self.table.delete(value)?;
        let stream: DynInputStream = Box::new(AsyncReadStream::new(reader.stream));
        Ok(self.table.push(stream)?)
    }
}

/// The output stream of an outgoing value: appends to its staged file.
struct StagedStream {
    pending: Arc<Mutex<Pending>>,
}

/// How much a guest may write per `write` call.
const WRITE_BUDGET: usize = 1 << 20;

#[async_trait::async_trait]
impl Pollable for StagedStream {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for StagedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut pending = self.pending.lock().unwrap();
        if let Some(failed) = &pending.failed {
            return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "{failed}"
            )));
        }
        let Some(staged) = pending.staged.as_mut() else {
            return Err(StreamError::Closed);
        };
        if let Err(e) = staged.write(&bytes) {
            pending.failed = Some(e.0.clone());
            pending.staged = None;
            return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "{e}"
            )));
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let pending = self.pending.lock().unwrap();
        match (&pending.failed, &pending.staged) {
            (Some(failed), _) => Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "{failed}"
            ))),
            (None, Some(_)) => Ok(WRITE_BUDGET),
            (None, None) => Err(StreamError::Closed),
        }
    }
}

/// Ties the generated traits to [`BlobView`].
struct HasBlobs;

impl HasData for HasBlobs {
    type Data<'a> = BlobView<'a>;
}

/// Links both drafts; `view` finds an instance's containers in its store
/// data. wasi:io (the streams) must be linked already.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> BlobView<'_>,
) -> wasmtime::Result<()> {
    host::add_to_linker(linker, view)
}
