//! The admin API's bearer token: where the server takes it from, how a
//! generated one is kept, and how a presented one is compared.
//!
//! The server's order: `WISP_ADMIN_TOKEN`, then `[server] admin_token_file`
//! (`--admin-token-file`), then `state_dir/admin-token` (generated on first
//! start, reused after), then a token generated for this run into a private
//! temporary file whose path is printed at start.

use std::fs::{self, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ADMIN_TOKEN_ENV, ServerSettings};

/// The token's file name in the state directory.
pub const TOKEN_FILE: &str = "admin-token";

/// Shorter tokens are refused; a generated one has 64 characters.
const MIN_LEN: usize = 16;
/// Longer tokens are refused: they travel in a request header.
const MAX_LEN: usize = 1024;

/// Where the server's token came from.
enum Source {
    Env,
    File,
    StateDir(PathBuf),
    /// Generated for this run (no state directory); the directory, and the
    /// file in it, go when the server does.
    Temporary {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
}

/// The server's admin token. Only its digest is kept, so comparing takes
/// the same time whatever the presented token's length.
pub struct AdminToken {
    digest: [u8; 32],
    source: Source,
}

impl AdminToken {
    /// Finds or makes the token the admin API will require.
    pub fn resolve(settings: &ServerSettings) -> Result<AdminToken> {
        let (token, source) = if let Some(value) = std::env::var_os(ADMIN_TOKEN_ENV) {
            let value = value
                .into_string()
                .map_err(|_| anyhow!("{ADMIN_TOKEN_ENV} is not valid UTF-8"))?;
            let token = value.trim().to_string();
            check(&token).context(ADMIN_TOKEN_ENV)?;
            (token, Source::Env)
        } else if let Some(file) = &settings.admin_token_file {
            (read_token_file(file)?, Source::File)
        } else if let Some(dir) = &settings.state_dir {
            let path = dir.join(TOKEN_FILE);
            (load_or_create(&path)?, Source::StateDir(path))
        } else {
            let dir = tempfile::Builder::new()
                .prefix("wisp-admin-")
                .permissions(Permissions::from_mode(0o700))
                .tempdir()
                .context("could not create a private directory for the admin token")?;
            let path = dir.path().join(TOKEN_FILE);
            (
                load_or_create(&path)?,
                Source::Temporary { _dir: dir, path },
            )
        };
        Ok(AdminToken {
            digest: Sha256::digest(token.as_bytes()).into(),
            source,
        })
    }

    /// Whether `presented` is the token, in time independent of both.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }

    /// The file wisp keeps the token in, when it generated it; printed at
    /// start so the CLI can be pointed at it.
    pub fn generated_file(&self) -> Option<&Path> {
        match &self.source {
            Source::StateDir(path) | Source::Temporary { path, .. } => Some(path),
            Source::Env | Source::File => None,
        }
    }

    /// Where a caller finds the token, for 401 answers; names no path, since
    /// anyone who can connect reads it.
    pub fn hint(&self) -> &'static str {
        match self.source {
            Source::Env => "the WISP_ADMIN_TOKEN the server was started with",
            Source::File => "the server's [server] admin_token_file (--admin-token-file)",
            Source::StateDir(_) => {
                "admin-token in the server's state directory (.wisp/admin-token beside wisp.toml by default)"
            }
            Source::Temporary { .. } => "the admin token file `wisp serve` printed at start",
        }
    }
}

/// Reads and checks a token file (the server's `admin_token_file` and
/// state-dir token, the CLI's `--admin-token-file`); warns when other users
/// may read it.
pub fn read_token_file(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("could not read the admin token file `{}`", path.display()))?;
    let token = text.trim();
    check(token).with_context(|| format!("admin token file `{}`", path.display()))?;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "the admin token file `{}` can be read by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    Ok(token.to_string())
}

/// A token must be long enough to resist guessing and fit in a header.
pub fn check(token: &str) -> Result<()> {
    if token.len() < MIN_LEN {
        bail!(
            "the admin token has {} characters; use at least {MIN_LEN}, e.g. from `openssl rand -hex 32`",
            token.len()
        );
    }
    if token.len() > MAX_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "the admin token must be at most {MAX_LEN} printable ASCII characters, without spaces"
        );
    }
    Ok(())
}

/// Reuses the token at `path`, or writes a new random one there: 0600,
/// through a temp file, and never over a token another server wrote first.
fn load_or_create(path: &Path) -> Result<String> {
    if path.exists() {
        return read_token_file(path);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow!("could not get random bytes for the admin token: {e}"))?;
    let token = hex::encode(bytes);
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .with_context(|| format!("could not create `{}` for the admin token", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .with_context(|| format!("could not create a temp file in `{}`", dir.display()))?;
    writeln!(tmp, "{token}")?;
    tmp.as_file().sync_all()?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {
            tracing::info!("generated an admin token in `{}`", path.display());
            Ok(token)
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read_token_file(path),
        Err(e) => Err(e.error).with_context(|| format!("could not write `{}`", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(TOKEN_FILE);
        let token = load_or_create(&path).unwrap();
        assert_eq!(token.len(), 64);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), token);
    }

    #[test]
    fn matches_only_the_token() {
        let token = AdminToken {
            digest: Sha256::digest(b"0123456789abcdef").into(),
            source: Source::Env,
        };
        assert!(token.matches("0123456789abcdef"));
        assert!(!token.matches("0123456789abcdeF"));
        assert!(!token.matches(""));
    }

    #[test]
    fn short_or_spaced_tokens_are_refused() {
        assert!(
            check("short")
                .unwrap_err()
                .to_string()
                .contains("at least 16")
        );
        assert!(check("0123456789 abcdef").is_err());
        check("0123456789abcdef").unwrap();
    }
}
