//! The on-disk state of deployed functions: components by content hash and
//! one record per function with its revisions. Every write goes through
//! [`write_atomic`], so a crash never leaves half a file; the directory is
//! locked so that two servers never write it at once.

use std::fs::{self, File, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::FunctionSpec;
use crate::store::files::{Leftovers, remove_durably, remove_leftover_temps, write_atomic};

/// One immutable deployment of a function.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Revision {
    pub number: u64,
    /// `spec.component` is `sha256:<hex>` of the stored component.
    pub spec: FunctionSpec,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// A function's revisions and which of them serves traffic.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub name: String,
    pub current: u64,
    pub revisions: Vec<Revision>,
    /// Fingerprint of the manifest entry last applied, so an unchanged
    /// manifest does not undo deployments made through the admin API.
    #[serde(default)]
    pub manifest_applied: Option<String>,
}

impl History {
    pub fn revision(&self, number: u64) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.number == number)
    }

    pub fn current_revision(&self) -> Option<&Revision> {
        self.revision(self.current)
    }
}

/// Where state lives (`[server] state_dir`). Holds the directory's lock
/// for as long as any clone of it lives.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
    _lock: Arc<File>,
}

impl StateDir {
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens (creating) the state directory, locks it for this process and
    /// removes the temp files a crash mid-write left behind.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["components", "functions"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir)
                .with_context(|| format!("could not create state directory `{}`", dir.display()))?;
        }
        let lock = lock(root)?;
        for sub in ["components", "functions"] {
            let removed = remove_leftover_temps(&root.join(sub), Leftovers::All)?;
            if removed > 0 {
                tracing::info!(
                    "removed {removed} temp file(s) an interrupted write left in `{}`",
                    root.join(sub).display()
                );
            }
        }
        Ok(StateDir {
            root: root.to_path_buf(),
            _lock: Arc::new(lock),
        })
    }

    fn components_dir(&self) -> PathBuf {
        self.root.join("components")
    }

    pub fn component_path(&self, digest: &str) -> PathBuf {
        self.components_dir().join(format!("{digest}.wasm"))
    }

    /// Stores a component unless an intact copy is already there (a damaged
    /// one is replaced).
    pub fn put_component(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let path = self.component_path(digest);
        if fs::read(&path).is_ok_and(|stored| stored == bytes) {
            return Ok(());
        }
        write_atomic(&path, bytes)
    }

    /// A stored component, checked against its digest.
    pub fn get_component(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.component_path(digest);
        let bytes = fs::read(&path).with_context(|| {
            format!(
                "component sha256:{digest} is not in the state directory (`{}`)",
                path.display()
            )
        })?;
        let actual = crate::deploy::component::digest(&bytes);
        if actual != digest {
            bail!(
                "component sha256:{digest} in the state directory (`{}`) is damaged: its \
                 content hashes to sha256:{actual}; deploy the function again with its component",
                path.display()
            );
        }
        Ok(bytes)
    }

    /// Digests of every stored component.
    pub fn component_digests(&self) -> Result<Vec<String>> {
        let dir = self.components_dir();
        let mut digests = Vec::new();
        for entry in
            fs::read_dir(&dir).with_context(|| format!("could not list `{}`", dir.display()))?
        {
            let name = entry?.file_name();
            if let Some(digest) = name.to_str().and_then(|n| n.strip_suffix(".wasm"))
                && !digest.starts_with('.')
            {
                digests.push(digest.to_string());
            }
        }
        Ok(digests)
    }

    pub fn remove_components(&self, digests: &[String]) -> Result<()> {
        let paths: Vec<PathBuf> = digests.iter().map(|d| self.component_path(d)).collect();
        remove_durably(&self.components_dir(), &paths)
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root.join("functions").join(format!("{name}.json"))
    }

    pub fn save(&self, record: &History) -> Result<()> {
        let json = serde_json::to_vec_pretty(record)?;
        write_atomic(&self.record_path(&record.name), &json)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        remove_durably(&self.root.join("functions"), &[self.record_path(name)])
            .with_context(|| format!("could not delete the record of `{name}`"))
    }

    /// Every stored function record by function name, sorted; an unreadable
    /// one comes with its error, so one damaged file neither takes the others
    /// down nor disappears unnoticed.
    pub fn load_all(&self) -> Result<Vec<(String, Result<History>)>> {
        let dir = self.root.join("functions");
        let mut records = Vec::new();
        for entry in
            fs::read_dir(&dir).with_context(|| format!("could not list `{}`", dir.display()))?
        {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| !n.starts_with('.'))
            else {
                continue;
            };
            let record = fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<History>(&b)?))
                .and_then(|h| {
                    if h.name != name {
                        bail!("it names function `{}`", h.name);
                    }
                    Ok(h)
                })
                .with_context(|| format!("unreadable function record `{}`", path.display()));
            records.push((name.to_string(), record));
        }
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(records)
    }
}

/// Takes the directory's lock (released when the process exits, however it
/// exits) and writes this process's pid into the lock file, so a second
/// server can say who holds it.
fn lock(root: &Path) -> Result<File> {
    let path = root.join("lock");
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("could not open the lock file `{}`", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "pid not written yet".to_string(),
                pid => format!("pid {pid}"),
            };
            bail!(
                "state directory `{}` is in use by another wisp server ({holder}); stop that \
                 server or give this one another state_dir",
                root.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("could not lock `{}`", path.display()));
        }
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())
        .with_context(|| format!("could not write `{}`", path.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let record = History {
            name: "hello".into(),
            current: 1,
            revisions: vec![Revision {
                number: 1,
                spec: FunctionSpec::new("hello", "sha256:00"),
                created: 5,
            }],
            manifest_applied: None,
        };
        state.save(&record).unwrap();
        std::fs::write(dir.path().join("functions/broken.json"), "{").unwrap();
        let all = state.load_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, "broken");
        let error = format!("{:#}", all[0].1.as_ref().unwrap_err());
        assert!(error.contains("broken.json"), "{error}");
        assert_eq!(all[1].1.as_ref().unwrap(), &record);
        state.remove("hello").unwrap();
        state.remove("hello").unwrap();
        assert_eq!(state.load_all().unwrap().len(), 1);
    }

    #[test]
    fn a_second_opener_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let err = format!("{:#}", StateDir::open(dir.path()).unwrap_err());
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(state);
        StateDir::open(dir.path()).expect("the lock goes with its holder");
    }

    #[test]
    fn damaged_components_are_refused_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let digest = crate::deploy::component::digest(b"component");
        state.put_component(&digest, b"component").unwrap();
        std::fs::write(state.component_path(&digest), b"damaged").unwrap();
        let err = format!("{:#}", state.get_component(&digest).unwrap_err());
        assert!(err.contains("damaged"), "{err}");
        state.put_component(&digest, b"component").unwrap();
        assert_eq!(state.get_component(&digest).unwrap(), b"component");
        assert_eq!(state.component_digests().unwrap(), vec![digest.clone()]);
        state.remove_components(&[digest]).unwrap();
        assert!(state.component_digests().unwrap().is_empty());
    }
}
