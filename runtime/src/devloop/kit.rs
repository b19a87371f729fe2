//! The Wisp kit: the folder (`~/.local/share/wisp` by default) where
//! `scripts/install-guest-toolchains` links what projects outside the repo
//! build against — the Rust SDK (`sdk`), the WIT, bindings and helpers of the
//! other languages (`guest`), the tools (`bin`), the preview-1 adapter and
//! the installer itself (`scripts`) — and how a missing toolchain is named.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::config::Toolchain;

/// Overrides where the kit is.
const KIT_ENV: &str = "WISP_KIT_DIR";

pub struct Kit {
    pub dir: PathBuf,
}

fn home() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home)),
        _ => bail!("HOME is not set; set {KIT_ENV} to the Wisp kit's folder"),
    }
}

/// The cargo target dir every Rust guest shares, so std for wasm is built
/// once: `$WISP_GUEST_TARGET_DIR`, else `~/.cache/wisp/guest-target` (what
/// scripts/build-guests uses).
pub fn guest_target_dir() -> Result<PathBuf> {
    match std::env::var_os("WISP_GUEST_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => Ok(std::path::absolute(dir)?),
        _ => Ok(home()?.join(".cache/wisp/guest-target")),
    }
}

impl Kit {
    /// `$WISP_KIT_DIR`, else `$XDG_DATA_HOME/wisp`, else `~/.local/share/wisp`.
    pub fn locate() -> Result<Kit> {
        let dir = match (std::env::var_os(KIT_ENV), std::env::var_os("XDG_DATA_HOME")) {
            (Some(dir), _) if !dir.is_empty() => std::path::absolute(dir)?,
            (_, Some(data)) if !data.is_empty() => PathBuf::from(data).join("wisp"),
            _ => home()?.join(".local/share/wisp"),
        };
        Ok(Kit { dir })
    }

    pub fn is_installed(&self) -> bool {
        self.dir.join("scripts/install-guest-toolchains").is_file()
    }

    /// The installer: the one the kit links to, else the one in the
    /// checkout this `wisp` was built from, if it is still there.
    fn installer(&self) -> Option<PathBuf> {
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
        [self.dir.join("scripts"), built_from]
            .iter()
            .map(|scripts| scripts.join("install-guest-toolchains"))
            .find_map(|path| path.canonicalize().ok())
    }

    /// The exact command that installs `toolchain` and links this kit.
    pub fn install_command(&self, toolchain: Toolchain) -> String {
        let installer = match self.installer() {
            Some(path) => path.display().to_string(),
            None => "scripts/install-guest-toolchains (in a Wisp checkout)".into(),
        };
        let env = match std::env::var_os(KIT_ENV) {
            Some(_) => format!("{KIT_ENV}={} ", self.dir.display()),
            None => String::new(),
        };
        format!("{env}{installer} {}", toolchain.name())
    }

    /// Checks that `toolchain` and the kit are installed (through the
    /// installer's own checks); the error lists what is missing and the
    /// command that installs it.
    pub async fn check(&self, toolchain: Toolchain) -> Result<()> {
        let install = self.install_command(toolchain);
        if !self.is_installed() {
            bail!(
                "the {} toolchain is not installed: there is no Wisp kit in {}; install it (idempotent) with:\n    {install}",
                toolchain.name(),
                self.dir.display()
            );
        }
        let output =
            tokio::process::Command::new(self.dir.join("scripts/install-guest-toolchains"))
                .args(["--check", toolchain.name()])
                .env(KIT_ENV, &self.dir)
                .output()
                .await?;
        if !output.status.success() {
            bail!(
                "the {} toolchain is missing pieces:\n{}install them (idempotent) with:\n    {install}",
                toolchain.name(),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        Ok(())
    }
}
