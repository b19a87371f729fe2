//! The artifact cache: what Wisp derives from a component once — compiled
//! machine code and pre-initialized snapshots — kept on disk by content hash
//! and engine fingerprint, so a restart neither recompiles nor re-runs init.
//!
//! `Component::deserialize` trusts its input (it maps machine code), so every
//! entry carries a CRC-32 of its payload that is checked before loading;
//! entries are written through a temp file and renamed into place; a corrupt
//! or stale entry is logged, removed and rebuilt, never loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use dashmap::DashMap;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::deploy::component;
use crate::store::write_atomic;

/// Marks our entry format; bump it when the layout changes.
const MAGIC: &[u8; 8] = b"WISPART2";
/// MAGIC, then the payload's CRC-32. The entry's name already is the
/// SHA-256 of its input; the checksum only has to catch torn writes and
/// damaged files, and CRC-32 does that at memory speed where SHA-256 (no
/// SHA extensions on many servers) took ~200 ms per JS or Python component.
const HEADER: usize = 12;

/// Compiled components, in memory and on disk.
pub struct Artifacts {
    engine: Engine,
    /// `<cache_dir>/<engine fingerprint>`, or `None` for memory only.
    dir: Option<PathBuf>,
    compiled: DashMap<String, Component>,
}

/// Identifies everything about the engine that compiled code depends on:
/// wasmtime version, target, and every codegen-relevant setting.
pub fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

impl Artifacts {
    pub fn new(engine: Engine, cache_dir: Option<&Path>) -> Result<Self> {
        let dir = match cache_dir {
            Some(root) => {
                let dir = root.join(engine_fingerprint(&engine));
                for sub in ["compiled", "snapshots"] {
                    std::fs::create_dir_all(dir.join(sub)).with_context(|| {
                        format!("could not create the artifact cache `{}`; pick another with --cache-dir or [server] cache_dir", dir.display())
                    })?;
                }
                Some(dir)
            }
            None => None,
        };
        Ok(Artifacts {
            engine,
            dir,
            compiled: DashMap::new(),
        })
    }

    /// The compiled form of `bytes`: from memory, from disk, or compiled now
    /// (off the async runtime, with progress in the log for long compiles).
    /// `digest` is [`component::digest`] of `bytes`, which the caller has
    /// already computed.
    pub async fn compile(&self, bytes: Arc<[u8]>, digest: &str, label: &str) -> Result<Component> {
        if let Some(c) = self.compiled.get(digest) {
            return Ok(c.clone());
        }
        let path = self
            .dir
            .as_ref()
            .map(|d| d.join("compiled").join(format!("{digest}.cwasm")));
        if let Some(path) = &path
            && let Some(entry) = read_entry(path)
        {
            // SAFETY: the payload is what `Component::serialize` wrote with
            // this engine fingerprint, and its checksum was just verified.
            match unsafe { Component::deserialize(&self.engine, &entry[HEADER..]) } {
                Ok(c) => {
                    tracing::info!(
                        component = label,
                        "loaded compiled code from the artifact cache"
                    );
                    self.compiled.insert(digest.to_owned(), c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!("stale artifact `{}` ({e}); recompiling", path.display());
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let compiled = self.compile_now(bytes, label).await?;
        if let Some(path) = &path {
            match compiled.serialize() {
                Ok(code) => {
                    if let Err(e) = write_entry(path, &code) {
                        tracing::warn!("could not cache compiled code: {e:#}");
                    }
                }
                Err(e) => tracing::warn!("could not serialize compiled code: {e}"),
            }
        }
        self.compiled.insert(digest.to_owned(), compiled.clone());
        Ok(compiled)
    }

    async fn compile_now(&self, bytes: Arc<[u8]>, label: &str) -> Result<Component> {
        let started = Instant::now();
        tracing::info!(component = label, size = bytes.len(), "compiling");
        let engine = self.engine.clone();
        let mut task = tokio::task::spawn_blocking(move || component::compile(&engine, &bytes));
        // Big JS/Python components take a while: say so instead of going quiet.
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        let compiled = loop {
            tokio::select! {
                done = &mut task => break done.map_err(|e| anyhow!("the compiler crashed: {e}"))??,
                _ = ticker.tick() => tracing::info!(component = label, "still compiling ({}s)", started.elapsed().as_secs()),
            }
        };
        tracing::info!(
            component = label,
            ms = started.elapsed().as_millis() as u64,
            "compiled"
        );
        Ok(compiled)
    }

    /// A snapshot stored under `key`, if present and intact.
    pub fn snapshot(&self, key: &str) -> Option<Vec<u8>> {
        let mut entry = read_entry(
            &self
                .dir
                .as_ref()?
                .join("snapshots")
                .join(format!("{key}.wasm")),
        )?;
        entry.drain(..HEADER);
        Some(entry)
    }

    pub fn put_snapshot(&self, key: &str, bytes: &[u8]) {
        if let Some(dir) = &self.dir
            && let Err(e) = write_entry(&dir.join("snapshots").join(format!("{key}.wasm")), bytes)
        {
            tracing::warn!("could not cache snapshot: {e:#}");
        }
    }
}

/// Reads an entry whole (payload from [`HEADER`] on) if the magic and
/// checksum match; a damaged entry is removed so it gets rebuilt.
fn read_entry(path: &Path) -> Option<Vec<u8>> {
    let data = std::fs::read(path).ok()?;
    let intact = data.len() >= HEADER
        && &data[..8] == MAGIC
        && crc32fast::hash(&data[HEADER..]).to_le_bytes() == data[8..HEADER];
    if !intact {
        tracing::warn!(
            "corrupt artifact `{}`: checksum mismatch; rebuilding it",
            path.display()
        );
        let _ = std::fs::remove_file(path);
        return None;
    }
    Some(data)
}

fn write_entry(path: &Path, payload: &[u8]) -> Result<()> {
    let mut data = Vec::with_capacity(payload.len() + HEADER);
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    data.extend_from_slice(payload);
    write_atomic(path, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cwasm");
        write_entry(&path, b"payload").unwrap();
        assert_eq!(&read_entry(&path).unwrap()[HEADER..], b"payload");
        let mut data = std::fs::read(&path).unwrap();
        *data.last_mut().unwrap() ^= 1;
        std::fs::write(&path, data).unwrap();
        assert!(read_entry(&path).is_none());
        assert!(!path.exists(), "a corrupt entry is removed");
    }
}
