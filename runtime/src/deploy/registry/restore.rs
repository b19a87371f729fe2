//! Start-up: the functions stored in the state directory come back (or are
//! kept as failed, with why), and the manifest's functions are reconciled
//! with them.

use anyhow::{Context, Result};

use super::{Failed, Function, Registry};
use crate::config::FunctionSpec;
use crate::deploy::component;
use crate::store::{History, Revision};

impl Registry {
    /// Loads every function stored in the state directory. A function that
    /// no longer loads is kept as failed, with its history and error, so the
    /// others still serve and this one is neither lost nor unnoticed.
    pub async fn restore(&self) -> Result<()> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        for (name, record) in state.load_all()? {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!(function = %name, "could not restore: {e:#}");
                    let error = format!("{e:#}");
                    self.failed.insert(
                        name,
                        Failed {
                            history: None,
                            error,
                        },
                    );
                    continue;
                }
            };
            let loaded = async {
                let rev = record
                    .current_revision()
                    .with_context(|| format!("current revision {} is missing", record.current))?;
                self.check_route_free(&rev.spec)?;
                let prepared = self.prepare(&rev.spec).await?;
                let live =
                    self.live_revision(&rev.spec, rev.number, prepared.loaded, prepared.pending)?;
                anyhow::Ok((live, prepared.compiled))
            }
            .await;
            match loaded {
                Ok((live, compiled)) => {
                    tracing::info!(function = %name, revision = record.current, "restored");
                    let function = Function {
                        history: record,
                        live,
                        compiled,
                    };
                    self.functions.insert(name, function);
                }
                Err(e) => {
                    tracing::error!(
                        function = %name,
                        "could not restore: {e:#}; it is listed as failed until it is deployed, \
                         rolled back or deleted"
                    );
                    let failed = Failed {
                        history: Some(record),
                        error: format!("{e:#}"),
                    };
                    self.failed.insert(name, failed);
                }
            }
        }
        self.publish_routes();
        Ok(())
    }

    /// Deletes functions that came from the manifest but are no longer in
    /// it; functions deployed only through the admin API stay.
    pub async fn retire_undeclared(&self, declared: &[String]) -> Result<()> {
        let from_manifest = |name: &String, history: Option<&History>| {
            history.is_some_and(|h| h.manifest_applied.is_some()) && !declared.contains(name)
        };
        let retired: Vec<String> = self
            .functions
            .iter()
            .filter(|f| from_manifest(f.key(), Some(&f.history)))
            .map(|e| e.key().clone())
            .chain(
                self.failed
                    .iter()
                    .filter(|f| from_manifest(f.key(), f.history.as_ref()))
                    .map(|e| e.key().clone()),
            )
            .collect();
        for name in retired {
            tracing::info!(function = %name, "no longer in the manifest; removing it");
            self.delete(&name).await?;
        }
        Ok(())
    }

    /// Deploys a manifest's function (`component` a file path) unless that
    /// entry, component bytes included, is what was last applied to it, so
    /// admin deploys survive a restart with the same file. Returns the new
    /// revision, if one was made.
    pub async fn apply_declared(&self, mut spec: FunctionSpec) -> Result<Option<Revision>> {
        let path = std::path::PathBuf::from(&spec.component);
        spec.component = self.add_component_to_deploy(component::read(&path)?)?;
        let fingerprint = component::digest(&serde_json::to_vec(&spec)?);
        if self.manifest_applied(&spec.name).as_deref() == Some(&fingerprint) {
            return Ok(None);
        }
        self.deploy(spec, Some(fingerprint)).await.map(Some)
    }

    /// The fingerprint of a manifest entry last applied to `name`, if it is
    /// loaded (a failed function is deployed again).
    pub fn manifest_applied(&self, name: &str) -> Option<String> {
        self.functions
            .get(name)
            .and_then(|f| f.history.manifest_applied.clone())
    }
}
