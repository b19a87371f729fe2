//! What users write for state: `[[store]]` tables (named key-value and
//! blob stores and their backends) and `[[secret]]` tables (values the server reads
//! from its environment or from files, never kept in the manifest, the
//! revision history or the admin API).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{ByteSize, FunctionSpec, validate_name};

/// The store kinds Wisp serves today.
pub const STORE_KINDS: &[&str] = &["keyvalue", "blobstore"];

/// The largest blob a `blobstore` store takes when it sets no
/// `max_object_size`.
pub const DEFAULT_MAX_OBJECT: ByteSize = ByteSize::mib(256);

/// A named store functions may be granted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// What a guest passes to `open`; letters, digits, `-` and `_`.
    pub name: String,
    /// `keyvalue` (wasi:keyvalue buckets) or `blobstore` (a wasi:blobstore
    /// container of objects).
    pub kind: String,
    /// Where the data lives [default: embedded, in `state_dir`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendSpec>,
    /// A declared `[[topic]]` that receives a CloudEvent for every change
    /// to the store (`dev.wisp.kv.key.updated` / `.deleted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
    /// `blobstore` only: the largest object a write may leave [default:
    /// 256Mi]; a longer write fails and leaves the old object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_object_size: Option<ByteSize>,
}

/// An external backend for a store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum BackendSpec {
    /// `{ redis = "redis://host:port/db" }`: the store owns that database.
    Redis(String),
}

impl StoreSpec {
    pub fn new(name: impl Into<String>) -> Self {
        StoreSpec {
            name: name.into(),
            kind: "keyvalue".into(),
            backend: None,
            events: None,
            max_object_size: None,
        }
    }

    /// The largest object a `blobstore` store takes.
    pub fn max_object(&self) -> u64 {
        self.max_object_size.unwrap_or(DEFAULT_MAX_OBJECT).bytes()
    }

    /// Each problem as `(key, message)`, like [`FunctionSpec::validate`].
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_name(&self.name).map_err(|e| ("name", e.replace("function", "store")))?;
        if !STORE_KINDS.contains(&self.kind.as_str()) {
            return Err((
                "kind",
                format!(
                    "`{}` is not a store kind Wisp serves; supported: {}",
                    self.kind,
                    STORE_KINDS.join(", ")
                ),
            ));
        }
        if self.kind == "blobstore" {
            if let Some(BackendSpec::Redis(_)) = &self.backend {
                return Err((
                    "backend",
                    "a blobstore keeps its objects as files under state_dir; Redis is a \
                     key-value backend only, so remove `backend` or use kind = \"keyvalue\""
                        .to_string(),
                ));
            }
            if self.max_object_size == Some(ByteSize(0)) {
                return Err((
                    "max_object_size",
                    "0 would refuse every object; give a size like \"64Mi\"".to_string(),
                ));
            }
        } else if self.max_object_size.is_some() {
            return Err((
                "max_object_size",
                "only a kind = \"blobstore\" store has objects to limit; remove it".to_string(),
            ));
        }
        if let Some(BackendSpec::Redis(url)) = &self.backend
            && !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://"))
        {
            return Err((
                "backend",
                format!("`{url}` is not a Redis URL; write it like \"redis://127.0.0.1:6379/0\""),
            ));
        }
        Ok(())
    }
}

/// A secret: a value the server reads at start and hands to the functions
/// granted it through wasi:config, under the secret's name.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    pub name: String,
    /// An environment variable of the server's.
    #[serde(default)]
    pub env: Option<String>,
    /// A file whose contents (one trailing newline removed) are the value;
    /// relative to the manifest.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretSpec {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_config_key(&self.name).map_err(|e| ("name", e))?;
        match (&self.env, &self.file) {
            (Some(_), Some(_)) => Err(("env", "give either `env` or `file`, not both".to_string())),
            (None, None) => Err((
                "name",
                "say where the value comes from: `env = \"VARIABLE\"` or `file = \"path\"`"
                    .to_string(),
            )),
            (Some(var), None) if var.is_empty() || var.contains(['=', '\0']) => Err((
                "env",
                format!("`{var}` is not an environment variable name"),
            )),
            _ => Ok(()),
        }
    }
}

/// The stores and secrets an app declares.
#[derive(Clone, Debug, Default)]
pub struct StateSpec {
    pub stores: Vec<StoreSpec>,
    pub secrets: Vec<SecretSpec>,
}

/// Config keys and secret names are what guests ask wasi:config for.
pub fn validate_config_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
        return Err(format!(
            "`{key}` is not a usable config key: 1-256 characters, no control characters"
        ));
    }
    Ok(())
}

/// Every store and secret a function is granted must be declared, and no
/// secret may shadow a config value of the same name.
pub fn check_state_names(
    spec: &FunctionSpec,
    state: &StateSpec,
) -> Result<(), (&'static str, String)> {
    let declared = |names: Vec<&str>| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let grants = [
        ("keyvalue", "keyvalue", "key-value store", &spec.keyvalue),
        ("blobstore", "blobstore", "blob store", &spec.blobstore),
    ];
    for (key, kind, what, names) in grants {
        for store in names {
            if !state
                .stores
                .iter()
                .any(|s| &s.name == store && s.kind == kind)
            {
                let of_kind = state
                    .stores
                    .iter()
                    .filter(|s| s.kind == kind)
                    .map(|s| s.name.as_str())
                    .collect();
                return Err((
                    key,
                    format!(
                        "no {what} `{store}`; declare it with a [[store]] table with kind = \"{kind}\" (declared: {})",
                        declared(of_kind)
                    ),
                ));
            }
        }
    }
    for secret in &spec.secrets {
        if !state.secrets.iter().any(|s| &s.name == secret) {
            return Err((
                "secrets",
                format!(
                    "no secret `{secret}`; declare it with a [[secret]] table (declared: {})",
                    declared(state.secrets.iter().map(|s| s.name.as_str()).collect())
                ),
            ));
        }
        if spec.config.contains_key(secret) {
            return Err((
                "secrets",
                format!(
                    "`{secret}` is also a `config` key; a guest reads both through wasi:config, so rename one"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_secrets_name_their_problems() {
        let mut store = StoreSpec::new("cache");
        store.validate().unwrap();
        store.kind = "objects".into();
        let (key, msg) = store.validate().unwrap_err();
        assert_eq!(key, "kind");
        assert!(msg.contains("supported: keyvalue, blobstore"), "{msg}");
        store.kind = "blobstore".into();
        store.backend = Some(BackendSpec::Redis("redis://127.0.0.1/0".into()));
        let (key, msg) = store.validate().unwrap_err();
        assert_eq!(key, "backend");
        assert!(msg.contains("key-value backend only"), "{msg}");
        store.backend = None;
        store.validate().unwrap();
        store.kind = "keyvalue".into();
        store.max_object_size = Some(ByteSize::mib(1));
        assert_eq!(store.validate().unwrap_err().0, "max_object_size");
        store.max_object_size = None;
        store.backend = Some(BackendSpec::Redis("http://x".into()));
        assert_eq!(store.validate().unwrap_err().0, "backend");

        let secret = SecretSpec {
            name: "stripe-key".into(),
            env: None,
            file: None,
        };
        assert!(secret.validate().unwrap_err().1.contains("env = "));
    }

    #[test]
    fn grants_must_be_declared() {
        let state = StateSpec {
            stores: vec![StoreSpec::new("cache")],
            secrets: vec![SecretSpec {
                name: "key".into(),
                env: Some("KEY".into()),
                file: None,
            }],
        };
        let mut spec = FunctionSpec::new("f", "f.wasm");
        spec.keyvalue = vec!["cache".into()];
        spec.secrets = vec!["key".into()];
        check_state_names(&spec, &state).unwrap();
        spec.keyvalue = vec!["photos".into()];
        let (key, msg) = check_state_names(&spec, &state).unwrap_err();
        assert_eq!(key, "keyvalue");
        assert!(msg.contains("declared: cache"), "{msg}");
        spec.keyvalue.clear();
        spec.config.insert("key".into(), "v".into());
        assert_eq!(check_state_names(&spec, &state).unwrap_err().0, "secrets");
    }
}
