//! The on-disk state of deployed functions: components by content hash and
//! one record per function with its revisions. Every write goes to a temp
//! file first and is renamed into place, so a crash never leaves half a file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::FunctionSpec;

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

/// Where state lives (`[server] state_dir`).
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["components", "functions"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir)
                .with_context(|| format!("could not create state directory `{}`", dir.display()))?;
        }
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    pub fn component_path(&self, digest: &str) -> PathBuf {
        self.root.join("components").join(format!("{digest}.wasm"))
    }

    pub fn put_component(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let path = self.component_path(digest);
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(())
    }

    pub fn get_component(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.component_path(digest);
        fs::read(&path).with_context(|| {
            format!(
                "component sha256:{digest} is not in the state directory (`{}`)",
                path.display()
            )
        })
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root.join("functions").join(format!("{name}.json"))
    }

    pub fn save(&self, record: &History) -> Result<()> {
        let json = serde_json::to_vec_pretty(record)?;
        write_atomic(&self.record_path(&record.name), &json)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        match fs::remove_file(self.record_path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("could not delete the record of `{name}`"))
            }
            _ => Ok(()),
        }
    }

    /// Every stored function record; unreadable ones are reported, not fatal,
    /// so one damaged file does not take the others down.
    pub fn load_all(&self) -> Result<Vec<History>> {
        let dir = self.root.join("functions");
        let mut records = Vec::new();
        for entry in
            fs::read_dir(&dir).with_context(|| format!("could not list `{}`", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice(&b)?))
            {
                Ok(record) => records.push(record),
                Err(e) => tracing::error!(
                    "skipping unreadable function record `{}`: {e:#}",
                    path.display()
                ),
            }
        }
        records.sort_by(|a: &History, b| a.name.cmp(&b.name));
        Ok(records)
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("could not create a temp file in `{}`", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("could not write `{}`", path.display()))?;
    Ok(())
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
        assert_eq!(state.load_all().unwrap(), vec![record]);
        state.remove("hello").unwrap();
        state.remove("hello").unwrap();
        assert!(state.load_all().unwrap().is_empty());
    }
}
