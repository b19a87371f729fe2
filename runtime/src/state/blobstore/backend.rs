//! The contract every blob backend keeps, and [`Blobs`], the one door to a
//! store: the wasi:blobstore bindings and the admin API both go through its
//! methods, so every change to a store passes [`Blobs::write`] or
//! [`Blobs::delete`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use tempfile::NamedTempFile;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::state::events::{Change, StoreEvents};

/// What went wrong, in words the guest receives as the interface's `error`
/// (a string) and the admin API returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(format!("the blob store failed: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What `object-info` reports besides the names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Seconds since the Unix epoch when this version of the object was
    /// written (a write replaces the object whole).
    pub created_at: u64,
}

/// The bytes of one object (or a range of it), fixed when it was opened:
/// a later write or delete of the object does not change what it reads.
pub struct Reader {
    pub stream: Pin<Box<dyn AsyncRead + Send>>,
    pub len: u64,
}

impl Reader {
    /// All of it; `len` is bounded by the store's `max_object_size`.
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.stream.read_to_end(&mut bytes).await?;
        Ok(bytes)
    }
}

/// A blob store backend. Writes arrive as a [`Staged`] file that holds the
/// whole new object, so a backend only ever swaps complete objects.
#[async_trait]
pub trait BlobBackend: Send + Sync + 'static {
    /// Every object name, sorted.
    async fn list(&self) -> Result<Vec<String>>;
    /// Bytes `start..=end` of `name` (`end` past the object's end reads to
    /// the end), or `None` when there is no such object.
    async fn read(&self, name: &str, start: u64, end: u64) -> Result<Option<Reader>>;
    async fn info(&self, name: &str) -> Result<Option<ObjectInfo>>;
    /// Replaces `name` with the staged bytes, all at once.
    async fn write(&self, name: &str, staged: Staged) -> Result<()>;
    /// `false` when there was nothing to delete.
    async fn delete(&self, name: &str) -> Result<bool>;
    /// When the store was first created, in seconds since the Unix epoch.
    fn created_at(&self) -> u64;
}

/// Where new objects are written before they exist: one directory per
/// server, emptied at start (what a killed server left there was never
/// acknowledged).
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// `root/.staging`, emptied.
    pub fn open(root: &Path) -> anyhow::Result<Arc<Staging>> {
        let dir = root.join(".staging");
        let emptied = (|| {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)
        })();
        emptied.map_err(|e| anyhow::anyhow!("blob staging directory `{}`: {e}", dir.display()))?;
        Ok(Arc::new(Staging { dir }))
    }

    /// A new empty object of at most `limit` bytes.
    pub fn create(&self, limit: u64) -> Result<Staged> {
        Ok(Staged {
            file: NamedTempFile::new_in(&self.dir)?,
            len: 0,
            limit,
        })
    }
}

/// An object being written: a temporary file, deleted if it is dropped
/// before a backend takes it.
pub struct Staged {
    file: NamedTempFile,
    len: u64,
    limit: u64,
}

impl Staged {
    /// Appends `bytes`, refusing to grow past the limit. The file is in the
    /// page cache; nothing is synced until a backend takes it.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let len = self.len + bytes.len() as u64;
        if len > self.limit {
            return Err(Error(format!(
                "the object is larger than the {} limit of this store (max_object_size); \
                 nothing was stored",
                crate::config::ByteSize(self.limit)
            )));
        }
        self.file.as_file_mut().write_all(bytes)?;
        self.len = len;
        Ok(())
    }

    /// The bytes written so far.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// Syncs the bytes and moves the file to `dest` (on the same
    /// filesystem), then syncs `dest`'s directory so the rename survives a
    /// crash. Readers see the old object or the new one, never a part.
    pub fn persist(self, dest: &Path) -> std::io::Result<()> {
        self.file.as_file().sync_all()?;
        self.file.persist(dest).map_err(|e| e.error)?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    }
}

/// One blob store, as guests (a wasi:blobstore container) and operators
/// see it. Every mutation goes through [`Blobs::write`] or
/// [`Blobs::delete`]; the rest are built on them.
pub struct Blobs {
    name: String,
    backend: Arc<dyn BlobBackend>,
    staging: Arc<Staging>,
    max_object: u64,
    /// Where its change events go (`events = "TOPIC"`), if anywhere.
    events: Option<Arc<StoreEvents>>,
}

impl Blobs {
    pub fn new(
        name: String,
        backend: Arc<dyn BlobBackend>,
        staging: Arc<Staging>,
        max_object: u64,
        events: Option<Arc<StoreEvents>>,
    ) -> Self {
        Blobs {
            name,
            backend,
            staging,
            max_object,
            events,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn max_object(&self) -> u64 {
        self.max_object
    }

    pub fn created_at(&self) -> u64 {
        self.backend.created_at()
    }

    /// A new object for this store, to fill and hand to [`Blobs::write`].
    pub fn stage(&self) -> Result<Staged> {
        self.staging.create(self.max_object)
    }

    /// Replaces (or creates) `name` with the staged bytes, all or nothing.
    pub async fn write(&self, name: &str, staged: Staged) -> Result<()> {
        if staged.size() > self.max_object {
            return Err(Error(format!(
                "the object is larger than the {} limit of store `{}` (max_object_size)",
                crate::config::ByteSize(self.max_object),
                self.name
            )));
        }
        let size = staged.size();
        self.backend.write(name, staged).await?;
        self.report(Change::Written {
            key: name,
            size,
            etag: None,
        })
        .await
    }

    /// Deletes `name`; deleting a missing object succeeds (and, having
    /// changed nothing, publishes no event).
    pub async fn delete(&self, name: &str) -> Result<()> {
        if self.backend.delete(name).await? {
            self.report(Change::Deleted { key: name }).await?;
        }
        Ok(())
    }

    /// Publishes `change`'s event, once the change is made and before the
    /// caller hears it succeeded (see `state::events`).
    async fn report(&self, change: Change<'_>) -> Result<()> {
        match &self.events {
            Some(events) => events.report(&[change]).await.map_err(Error),
            None => Ok(()),
        }
    }

    /// Names starting with `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names = self.backend.list().await?;
        names.retain(|n| n.starts_with(prefix));
        Ok(names)
    }

    pub async fn read(&self, name: &str, start: u64, end: u64) -> Result<Reader> {
        if start > end {
            return Err(Error(format!(
                "range start {start} is after its end {end} (both inclusive)"
            )));
        }
        self.backend
            .read(name, start, end)
            .await?
            .ok_or_else(|| self.missing(name))
    }

    pub async fn info(&self, name: &str) -> Result<ObjectInfo> {
        self.backend
            .info(name)
            .await?
            .ok_or_else(|| self.missing(name))
    }

    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.backend.info(name).await?.is_some())
    }

    /// Deletes every object.
    pub async fn clear(&self) -> Result<()> {
        for name in self.backend.list().await? {
            self.delete(&name).await?;
        }
        Ok(())
    }

    /// Writes a copy of `name` to `dest_name` in `dest` (which may be this
    /// store), replacing what was there.
    pub async fn copy(&self, name: &str, dest: &Blobs, dest_name: &str) -> Result<()> {
        let mut reader = self.read(name, 0, u64::MAX).await?;
        let mut staged = dest.stage()?;
        let mut buf = vec![0; 64 << 10];
        loop {
            let n = reader.stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            staged.write(&buf[..n])?;
        }
        dest.write(dest_name, staged).await
    }

    /// A copy, then the original deleted: at no moment is the object in
    /// neither place.
    pub async fn rename(&self, name: &str, dest: &Blobs, dest_name: &str) -> Result<()> {
        self.copy(name, dest, dest_name).await?;
        if dest.name != self.name || dest_name != name {
            self.delete(name).await?;
        }
        Ok(())
    }

    fn missing(&self, name: &str) -> Error {
        Error(format!("no object `{name}` in container `{}`", self.name))
    }
}
