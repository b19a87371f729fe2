//! `[[secret]]` values: read once at start from the server's environment or
//! a file, handed to granted functions through wasi:config, and kept out of
//! everything else. They are never written to the revision history or the
//! admin API (specs carry names only), never formatted by `Debug`, and a
//! guest that prints one gets `[redacted]` in the log instead.

use std::borrow::Cow;

use anyhow::{Result, anyhow};

use crate::config::SecretSpec;

/// What a logged secret becomes.
pub const REDACTED: &str = "[redacted]";

/// A secret's value; `Debug` shows no more than that it is one.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn value(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Reads a secret's value. Errors name the secret and where it was looked
/// for, never a value.
pub fn read(spec: &SecretSpec) -> Result<Secret> {
    let name = &spec.name;
    if let Some(var) = &spec.env {
        return match std::env::var(var) {
            Ok(value) => Ok(Secret(value)),
            Err(std::env::VarError::NotPresent) => Err(anyhow!(
                "secret `{name}`: the environment variable {var} is not set; set it for the server or change `env`"
            )),
            Err(std::env::VarError::NotUnicode(_)) => Err(anyhow!(
                "secret `{name}`: the environment variable {var} is not valid UTF-8"
            )),
        };
    }
    let file = spec
        .file
        .as_ref()
        .ok_or_else(|| anyhow!("secret `{name}`: give `env` or `file`"))?;
    let text = std::fs::read_to_string(file).map_err(|e| {
        anyhow!(
            "secret `{name}`: could not read `{}`: {e}; create the file or fix `file` (relative to the manifest)",
            file.display()
        )
    })?;
    // Files written with `echo` end in a newline that is no part of the value.
    let value = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(Secret(value.to_string()))
}

/// `line` with every occurrence of each of `secrets` replaced by
/// [`REDACTED`]. Empty secrets are skipped: they would match everywhere.
pub fn redact<'a>(line: &'a str, secrets: &[String]) -> Cow<'a, str> {
    let mut line = Cow::Borrowed(line);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if line.contains(secret.as_str()) {
            line = Cow::Owned(line.replace(secret.as_str(), REDACTED));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_files_and_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "sk_live_42\n").unwrap();
        let spec = SecretSpec {
            name: "stripe".into(),
            env: None,
            file: Some(dir.path().join("s")),
        };
        let secret = read(&spec).unwrap();
        assert_eq!(secret.value(), "sk_live_42");
        assert_eq!(format!("{secret:?}"), REDACTED);
        let missing = SecretSpec {
            env: Some("WISP_TEST_SURELY_UNSET".into()),
            file: None,
            ..spec
        };
        let err = read(&missing).unwrap_err().to_string();
        assert!(err.contains("WISP_TEST_SURELY_UNSET is not set"), "{err}");
    }

    #[test]
    fn redaction_replaces_every_occurrence() {
        let secrets = vec!["sk_42".to_string(), String::new()];
        assert_eq!(
            redact("key=sk_42 again sk_42", &secrets),
            "key=[redacted] again [redacted]"
        );
        assert!(matches!(redact("nothing here", &secrets), Cow::Borrowed(_)));
    }
}
