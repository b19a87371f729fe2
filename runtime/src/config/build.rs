//! `[function.build]`: how `wisp build` and `wisp up --watch` make a
//! function's component from its source. Only a manifest has one; a
//! deployed spec never does.

use serde::{Deserialize, Serialize};

/// The guest toolchains `scripts/install-guest-toolchains` installs, by the
/// names it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Toolchain {
    Rust,
    Js,
    Python,
    C,
    Go,
}

impl Toolchain {
    /// The installer's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Toolchain::Rust => "rust",
            Toolchain::Js => "js",
            Toolchain::Python => "python",
            Toolchain::C => "c",
            Toolchain::Go => "go",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// A shell command (`sh -c`) run in the manifest's folder that writes
    /// the function's `component`.
    pub command: String,
    /// Globs, relative to the manifest's folder, of the files whose changes
    /// make `wisp up --watch` rebuild this function.
    #[serde(default)]
    pub watch: Vec<String>,
    /// The guest toolchain `command` needs: checked before building, and
    /// named with its install command when it is missing.
    #[serde(default)]
    pub toolchain: Option<Toolchain>,
}

impl BuildSpec {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.command.trim().is_empty() {
            return Err((
                "command",
                "empty: give the shell command that builds the component".into(),
            ));
        }
        for glob in &self.watch {
            globset::Glob::new(glob)
                .map_err(|e| ("watch", format!("`{glob}` is not a glob: {e}")))?;
        }
        Ok(())
    }
}
