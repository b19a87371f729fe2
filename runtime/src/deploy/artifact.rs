//! The artifact cache: what Wisp derives from a component once — compiled
//! machine code and pre-initialized snapshots — kept on disk by key (a
//! content hash, or for derived code the digest of everything it derives
//! from) and engine fingerprint, so a restart neither recompiles nor re-runs
//! init.
//!
//! Loading compiled code trusts its input (it maps machine code), so every
//! entry ends with a CRC-32 of its payload that is checked before loading;
//! entries are written through a temp file and renamed into place; a corrupt
//! or stale entry is logged, removed and rebuilt, never loaded. The checksum
//! trails the payload so that compiled code starts the file and is mapped
//! from it (`Component::deserialize_file`) rather than read and copied.
//!
//! On disk the cache is bounded (`[server] cache_max_size`): after every
//! write the least recently used entries (by mtime, which a load refreshes)
//! go first. In memory it keeps only the compiled code the registry says is
//! in use ([`Artifacts::retain`]).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow};
use dashmap::DashMap;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::deploy::component;
use crate::store::{Leftovers, remove_leftover_temps, write_atomic};
use crate::telemetry::metrics::CacheMetrics;

/// Marks our entry format; bump it when the layout changes.
const MAGIC: &[u8; 8] = b"WISPART3";
/// After the payload: MAGIC, then the payload's CRC-32. The entry's name
/// already is the SHA-256 of its input; the checksum only has to catch torn
/// writes and damaged files, and CRC-32 does that at memory speed where
/// SHA-256 (no SHA extensions on many servers) took ~200 ms per JS or
/// Python component.
const TRAILER: usize = 12;

/// Compiled components, in memory and on disk.
pub struct Artifacts {
    engine: Engine,
    /// `<cache_dir>/<engine fingerprint>`, or `None` for memory only.
    dir: Option<PathBuf>,
    /// Bytes the entries on disk may take, all engine fingerprints together.
    max_size: u64,
    compiled: DashMap<String, Component>,
    /// Hits and misses, counted in `/metrics`.
    metrics: CacheMetrics,
}

/// Identifies everything about the engine that compiled code depends on:
/// wasmtime version, target, and every codegen-relevant setting.
pub fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

impl Artifacts {
    /// Opens the cache under `cache_dir` (memory only without one), removes
    /// the temp files of writers that died mid-write, and trims it to
    /// `max_size` bytes.
    pub fn new(
        engine: Engine,
        cache_dir: Option<&Path>,
        max_size: u64,
        metrics: CacheMetrics,
    ) -> Result<Self> {
        let dir = match cache_dir {
            Some(root) => {
                let dir = root.join(engine_fingerprint(&engine));
                for sub in ["compiled", "snapshots"] {
                    std::fs::create_dir_all(dir.join(sub)).with_context(|| {
                        format!("could not create the artifact cache `{}`; pick another with --cache-dir or [server] cache_dir", dir.display())
                    })?;
                    // Other servers may share the cache: only dead writers'
                    // temp files are leftovers.
                    let removed = remove_leftover_temps(&dir.join(sub), Leftovers::OfDeadWriters)?;
                    if removed > 0 {
                        tracing::info!(
                            "removed {removed} temp file(s) an interrupted write left in `{}`",
                            dir.join(sub).display()
                        );
                    }
                }
                Some(dir)
            }
            None => None,
        };
        let artifacts = Artifacts {
            engine,
            dir,
            max_size,
            compiled: DashMap::new(),
            metrics,
        };
        artifacts.trim();
        Ok(artifacts)
    }

    /// Drops from memory the compiled code whose key (the digest of what was
    /// compiled) is not in `keep`; the disk copy stays.
    pub fn retain(&self, keep: &HashSet<String>) {
        self.compiled.retain(|key, _| keep.contains(key));
    }

    /// Drops from memory the compiled code stored under `key`; the disk
    /// copy stays.
    pub fn forget(&self, key: &str) {
        self.compiled.remove(key);
    }

    /// Evicts least recently used entries until the cache fits `max_size`.
    fn trim(&self) {
        let Some(root) = self.dir.as_deref().and_then(Path::parent) else {
            return;
        };
        match evict_lru(root, self.max_size) {
            Ok((0, _)) => {}
            Ok((n, bytes)) => tracing::info!(
                "artifact cache over cache_max_size = {}: evicted the {n} least recently used \
                 entries ({bytes} bytes)",
                crate::config::ByteSize(self.max_size)
            ),
            Err(e) => tracing::warn!("could not trim the artifact cache: {e:#}"),
        }
    }

    /// The compiled form of `bytes`: from memory, from disk, or compiled now
    /// (off the async runtime, with progress in the log for long compiles).
    /// `digest` is [`component::digest`] of `bytes`, which the caller has
    /// already computed.
    pub async fn compile(&self, bytes: Arc<[u8]>, digest: &str, label: &str) -> Result<Component> {
        match self.load(digest, label) {
            Some(c) => Ok(c),
            None => self.compile_into(digest, bytes, label).await,
        }
    }

    /// Compiled code stored under `key`, from memory or from disk (mapped,
    /// not copied), if present and intact.
    pub fn load(&self, key: &str, label: &str) -> Option<Component> {
        if let Some(c) = self.compiled.get(key) {
            self.metrics.compiled_hits.inc();
            return Some(c.clone());
        }
        let path = self
            .dir
            .as_ref()?
            .join("compiled")
            .join(format!("{key}.cwasm"));
        if !entry_intact(&path) {
            return None;
        }
        // SAFETY: the file is what `Component::serialize` wrote with this
        // engine fingerprint (its checksum was just verified; the trailer
        // after the ELF image is ignored by the loader), and entries are
        // only ever replaced by rename, never rewritten in place.
        match unsafe { Component::deserialize_file(&self.engine, &path) } {
            Ok(c) => {
                self.metrics.compiled_hits.inc();
                touch(&path);
                tracing::info!(
                    component = label,
                    "loaded compiled code from the artifact cache"
                );
                self.compiled.insert(key.to_owned(), c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::warn!("stale artifact `{}` ({e:#}); recompiling", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Compiles `bytes` now and stores the result under `key`.
    pub async fn compile_into(
        &self,
        key: &str,
        bytes: Arc<[u8]>,
        label: &str,
    ) -> Result<Component> {
        self.metrics.compiled_misses.inc();
        let compiled = compile(&self.engine, bytes, label).await?;
        if let Some(dir) = &self.dir {
            match compiled.serialize() {
                Ok(code) => {
                    match write_entry(&dir.join("compiled").join(format!("{key}.cwasm")), &code) {
                        Ok(()) => self.trim(),
                        Err(e) => tracing::warn!("could not cache compiled code: {e:#}"),
                    }
                }
                Err(e) => tracing::warn!("could not serialize compiled code: {e}"),
            }
        }
        self.compiled.insert(key.to_owned(), compiled.clone());
        Ok(compiled)
    }

    /// A snapshot stored under `key`, if present and intact.
    pub fn snapshot(&self, key: &str) -> Option<Vec<u8>> {
        let found = self.stored_snapshot(key);
        match found {
            Some(_) => self.metrics.snapshot_hits.inc(),
            None => self.metrics.snapshot_misses.inc(),
        };
        found
    }

    fn stored_snapshot(&self, key: &str) -> Option<Vec<u8>> {
        let path = self
            .dir
            .as_ref()?
            .join("snapshots")
            .join(format!("{key}.wasm"));
        let entry = read_entry(&path)?;
        touch(&path);
        Some(entry)
    }

    /// Counts a snapshot found in the cache in compiled form: init did not
    /// run, nor was the snapshot itself read.
    pub fn snapshot_compiled(&self) {
        self.metrics.snapshot_hits.inc();
    }

    pub fn put_snapshot(&self, key: &str, bytes: &[u8]) {
        let Some(dir) = &self.dir else {
            return;
        };
        match write_entry(&dir.join("snapshots").join(format!("{key}.wasm")), bytes) {
            Ok(()) => self.trim(),
            Err(e) => tracing::warn!("could not cache snapshot: {e:#}"),
        }
    }
}

/// Compiles `bytes` now, off the async runtime, with progress in the log
/// for long compiles; nothing is cached.
pub async fn compile(engine: &Engine, bytes: Arc<[u8]>, label: &str) -> Result<Component> {
    let started = Instant::now();
    tracing::info!(component = label, size = bytes.len(), "compiling");
    let engine = engine.clone();
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

/// Marks an entry as just used (LRU order is mtime order; atime is often
/// not kept).
fn touch(path: &Path) {
    let touched = std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!("could not mark `{}` as used: {e}", path.display());
    }
}

/// Removes the least recently used entries under `root` (every engine
/// fingerprint's `compiled/` and `snapshots/`) until they add up to at most
/// `max_size` bytes; returns how many entries and bytes went.
fn evict_lru(root: &Path, max_size: u64) -> Result<(usize, u64)> {
    let mut entries = Vec::new();
    for fingerprint in std::fs::read_dir(root)? {
        let fingerprint = fingerprint?.path();
        for sub in ["compiled", "snapshots"] {
            let Ok(dir) = std::fs::read_dir(fingerprint.join(sub)) else {
                continue;
            };
            for entry in dir {
                let entry = entry?;
                // Temp files are writes in progress, not entries.
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if meta.is_file() {
                    let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    entries.push((used, meta.len(), entry.path()));
                }
            }
        }
    }
    let mut total: u64 = entries.iter().map(|e| e.1).sum();
    entries.sort_by_key(|e| e.0);
    let (mut evicted, mut freed) = (0, 0);
    for (_, len, path) in entries {
        if total <= max_size {
            break;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                evicted += 1;
                freed += len;
            }
            // Another server sharing the cache evicted it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("could not evict `{}`", path.display()));
            }
        }
        total -= len;
    }
    Ok((evicted, freed))
}

/// Reads an entry's payload if the magic and checksum match; a damaged
/// entry is removed so it gets rebuilt.
fn read_entry(path: &Path) -> Option<Vec<u8>> {
    let mut data = std::fs::read(path).ok()?;
    let payload = data.len().checked_sub(TRAILER)?;
    let intact = &data[payload..payload + 8] == MAGIC
        && crc32fast::hash(&data[..payload]).to_le_bytes() == data[payload + 8..];
    if !intact {
        corrupt(path);
        return None;
    }
    data.truncate(payload);
    Some(data)
}

/// Whether the entry at `path` exists and its magic and checksum match,
/// read in chunks rather than whole; a damaged entry is removed.
fn entry_intact(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let Some(payload) = file
        .metadata()
        .ok()
        .and_then(|m| m.len().checked_sub(TRAILER as u64))
    else {
        corrupt(path);
        return false;
    };
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0; 256 << 10];
    let mut left = payload;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match file.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                left -= n as u64;
            }
        }
    }
    let mut trailer = [0; TRAILER];
    let intact = left == 0
        && file.read_exact(&mut trailer).is_ok()
        && &trailer[..8] == MAGIC
        && hasher.finalize().to_le_bytes() == trailer[8..];
    if !intact {
        corrupt(path);
    }
    intact
}

fn corrupt(path: &Path) {
    tracing::warn!(
        "corrupt artifact `{}`: checksum mismatch; rebuilding it",
        path.display()
    );
    let _ = std::fs::remove_file(path);
}

fn write_entry(path: &Path, payload: &[u8]) -> Result<()> {
    let mut data = Vec::with_capacity(payload.len() + TRAILER);
    data.extend_from_slice(payload);
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
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
        assert_eq!(read_entry(&path).unwrap(), b"payload");
        assert!(entry_intact(&path));
        let mut data = std::fs::read(&path).unwrap();
        data[0] ^= 1;
        std::fs::write(&path, &data).unwrap();
        assert!(!entry_intact(&path));
        assert!(!path.exists(), "a corrupt entry is removed");
        data[0] ^= 1;
        *data.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &data).unwrap();
        assert!(read_entry(&path).is_none());
        assert!(!path.exists(), "a corrupt entry is removed");
        std::fs::write(&path, b"short").unwrap();
        assert!(!entry_intact(&path));
    }

    #[test]
    fn the_cache_evicts_least_recently_used_entries_first() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("0123456789abcdef");
        for sub in ["compiled", "snapshots"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let hour_ago = |n: u64| SystemTime::now() - Duration::from_secs(3600 * n);
        let entries = [
            (dir.join("compiled/a.cwasm"), hour_ago(4)),
            (dir.join("snapshots/b.wasm"), hour_ago(3)),
            (dir.join("compiled/c.cwasm"), hour_ago(2)),
            (dir.join("compiled/d.cwasm"), hour_ago(1)),
        ];
        for (path, used) in &entries {
            write_entry(path, &[0; 100]).unwrap();
            let f = std::fs::File::options().append(true).open(path).unwrap();
            f.set_modified(*used).unwrap();
        }
        // A load makes the oldest entry the most recently used.
        touch(&entries[0].0);
        // A write in progress is neither counted nor evicted.
        std::fs::write(dir.join("compiled/.wisp-tmp-1-x"), [0; 1000]).unwrap();

        let entry = (100 + TRAILER) as u64;
        assert_eq!(evict_lru(root.path(), 4 * entry).unwrap(), (0, 0));
        assert_eq!(evict_lru(root.path(), 2 * entry).unwrap(), (2, 2 * entry));
        let left: Vec<bool> = entries.iter().map(|(p, _)| p.exists()).collect();
        assert_eq!(
            left,
            [true, false, false, true],
            "b and c were used least recently"
        );
        assert!(dir.join("compiled/.wisp-tmp-1-x").exists());
    }
}
