//! Writing files so that a crash (or `kill -9`, or a power cut) leaves
//! either the old content or the new, never half of it: temp file, fsync,
//! rename, fsync of the directory. Temp files carry the writer's pid, so the
//! leftovers of a writer that died can be told from files still being
//! written.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Every temp file Wisp writes starts with this, then `<pid>-`.
pub const TEMP_PREFIX: &str = ".wisp-tmp-";

/// Writes `bytes` to `path` through a temp file in the same directory, and
/// makes the rename durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .tempfile_in(dir)
        .with_context(|| format!("could not create a temp file in `{}`", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("could not write `{}`", path.display()))?;
    sync_dir(dir)
}

/// Removes `paths` (missing ones are fine) and makes the removals durable.
pub fn remove_durably(dir: &Path, paths: &[std::path::PathBuf]) -> Result<()> {
    for path in paths {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("could not remove `{}`", path.display()));
            }
            _ => {}
        }
    }
    sync_dir(dir)
}

/// A rename or removal is only durable once its directory is synced.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("could not sync directory `{}`", dir.display()))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Which temp files [`remove_leftover_temps`] may take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Leftovers {
    /// Every temp file: the directory has one writer, which is starting.
    All,
    /// Those whose writer is no longer running (or is this process, which
    /// has written nothing yet): the directory is shared with other servers.
    OfDeadWriters,
}

/// Removes the temp files a crash mid-write left in `dir`; returns how many.
pub fn remove_leftover_temps(dir: &Path, which: Leftovers) -> Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("could not list `{}`", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let writer = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let leftover = match which {
            Leftovers::All => true,
            Leftovers::OfDeadWriters => writer.is_none_or(|pid| !running_elsewhere(pid)),
        };
        if leftover {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("could not remove `{}`", entry.path().display()));
                }
            }
        }
    }
    Ok(removed)
}

/// Whether process `pid` is alive and is not this one.
fn running_elsewhere(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    // EPERM: it exists but belongs to another user.
    alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_temps_of_dead_writers_go_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        dead.wait().unwrap();
        // pid 1 (init) is always running.
        let names = [
            format!("{TEMP_PREFIX}{}-a", dead.id()),
            format!("{TEMP_PREFIX}1-b"),
            format!("{TEMP_PREFIX}{}-c", std::process::id()),
            "kept.wasm".to_string(),
        ];
        for n in &names {
            fs::write(dir.path().join(n), b"x").unwrap();
        }
        assert_eq!(
            remove_leftover_temps(dir.path(), Leftovers::OfDeadWriters).unwrap(),
            2
        );
        assert!(dir.path().join(&names[1]).exists(), "a live writer's temp");
        assert!(dir.path().join(&names[3]).exists());
        assert_eq!(
            remove_leftover_temps(dir.path(), Leftovers::All).unwrap(),
            1
        );
        assert!(dir.path().join(&names[3]).exists(), "not a temp file");

        write_atomic(&dir.path().join("f"), b"new").unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "no temp left");
    }
}
