//! The embedded blob backend: one file per object in
//! `state_dir/blobs/<store>/`, named by the object's name percent-encoded,
//! so no name (`a/b`, `..`, `/etc/passwd`) reaches outside the store's
//! directory. Files are only ever replaced whole, by rename
//! ([`Staged::persist`]), so an open file keeps the bytes it was opened
//! with.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::config::StoreSpec;
use crate::state::blobstore::Blobs;
use crate::state::blobstore::backend::{
    BlobBackend, Error, ObjectInfo, Reader, Result, Staged, Staging,
};
use crate::state::events::StoreEvents;

/// The longest file name Linux filesystems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// The folder of `state_dir` that holds the blob stores, one folder each.
pub const DIR: &str = "blobs";

/// The blob store `spec` as a directory of `root` (`state_dir/blobs`).
pub fn open(
    root: &Path,
    spec: &StoreSpec,
    staging: &Arc<Staging>,
    events: Option<Arc<StoreEvents>>,
) -> anyhow::Result<Arc<Blobs>> {
    let dir = root.join(&spec.name);
    let files = FileStore::open(&dir)
        .map_err(|e| anyhow::anyhow!("store `{}` in `{}`: {e}", spec.name, dir.display()))?;
    Ok(Arc::new(Blobs::new(
        spec.name.clone(),
        Arc::new(files),
        staging.clone(),
        spec.max_object(),
        events,
    )))
}

pub struct FileStore {
    dir: PathBuf,
    created_at: u64,
}

impl FileStore {
    pub fn open(dir: &Path) -> std::io::Result<FileStore> {
        std::fs::create_dir_all(dir)?;
        let meta = std::fs::metadata(dir)?;
        let created = meta.created().or_else(|_| meta.modified())?;
        Ok(FileStore {
            dir: dir.to_path_buf(),
            created_at: seconds(created),
        })
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        Ok(self.dir.join(encode(name)?))
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The file name of object `name`: ASCII letters, digits, `-`, `_`, `~`
/// and `.` as they are, every other byte as `%XX`. A leading `.` is encoded
/// too, so no object is `.`, `..` or a dotfile, and the store's own
/// temporary files (which start with `.`) never clash with an object.
pub fn encode(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error("an object name cannot be empty".into()));
    }
    let mut file = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        if byte.is_ascii_alphanumeric() || b"-_~".contains(&byte) || (byte == b'.' && i > 0) {
            file.push(byte as char);
        } else {
            file.push_str(&format!("%{byte:02X}"));
        }
    }
    if file.len() > NAME_MAX {
        return Err(Error(format!(
            "object name `{name}` is too long: {} bytes once encoded for the filesystem, \
             more than {NAME_MAX} (letters, digits and `-_.~` count 1, other bytes 3)",
            file.len()
        )));
    }
    Ok(file)
}

/// The object name of a file name [`encode`] made; `None` for anything else
/// (temporary files, files someone else put there).
pub fn decode(file: &str) -> Option<String> {
    if file.starts_with('.') {
        return None;
    }
    let name = percent_encoding::percent_decode_str(file)
        .decode_utf8()
        .ok()?
        .into_owned();
    (encode(&name).ok()? == file).then_some(name)
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error(format!("the blob store failed: {e}")))?
        .map_err(Error::from)
}

fn absent<T>(e: std::io::Error) -> std::io::Result<Option<T>> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(None)
    } else {
        Err(e)
    }
}

#[async_trait]
impl BlobBackend for FileStore {
    async fn list(&self) -> Result<Vec<String>> {
        let dir = self.dir.clone();
        blocking(move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                if let Some(name) = entry.file_name().to_str().and_then(decode) {
                    names.push(name);
                }
            }
            names.sort_unstable();
            Ok(names)
        })
        .await
    }

    async fn read(&self, name: &str, start: u64, end: u64) -> Result<Option<Reader>> {
        let mut file = match tokio::fs::File::open(self.path(name)?).await {
            Ok(file) => file,
            Err(e) => return Ok(absent(e)?),
        };
        let size = file.metadata().await?.len();
        let start = start.min(size);
        let len = end.saturating_add(1).min(size) - start;
        file.seek(SeekFrom::Start(start)).await?;
        Ok(Some(Reader {
            stream: Box::pin(file.take(len)),
            len,
        }))
    }

    async fn info(&self, name: &str) -> Result<Option<ObjectInfo>> {
        match tokio::fs::metadata(self.path(name)?).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                size: meta.len(),
                created_at: seconds(meta.modified()?),
            })),
            Err(e) => Ok(absent(e)?),
        }
    }

    async fn write(&self, name: &str, staged: Staged) -> Result<()> {
        let dest = self.path(name)?;
        blocking(move || staged.persist(&dest)).await
    }

    async fn delete(&self, name: &str) -> Result<bool> {
        let path = self.path(name)?;
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => {
                std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()?;
                Ok(true)
            }
            Err(e) => absent(e).map(|_: Option<()>| false),
        })
        .await
    }

    fn created_at(&self) -> u64 {
        self.created_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_and_round_trip() {
        for name in [
            "photo.jpg",
            "a/b/c",
            "..",
            ".",
            ".hidden",
            "/etc/passwd",
            "%41",
            "사진 1",
        ] {
            let file = encode(name).unwrap();
            assert!(
                !file.contains('/') && !file.starts_with('.'),
                "{name} → {file}"
            );
            assert_eq!(decode(&file).as_deref(), Some(name));
        }
        assert_eq!(encode("a/b.txt").unwrap(), "a%2Fb.txt");
        assert_eq!(encode("..").unwrap(), "%2E.");
        assert!(encode("").is_err());
        assert!(encode(&"x".repeat(256)).unwrap_err().0.contains("too long"));
        // Not something encode made: a temporary file, a second spelling.
        assert_eq!(decode(".tmpX1"), None);
        assert_eq!(decode("%61"), None);
    }
}
