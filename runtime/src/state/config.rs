//! wasi:config `store` for guests: a function's `config` values and the
//! secrets it was granted, read-only, in both released versions:
//! `0.2.0-rc.1` (wasmtime, wasmCloud; served by wasmtime-wasi-config) and
//! `0.2.0-draft-2024-09-27` (Spin; same functions, generated here).

use wasmtime::component::{HasData, Linker};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

mod generated {
    wasmtime::component::bindgen!({
        path: "wit/config-draft-2024-09-27",
        world: "wasi:config/imports",
    });
}

use generated::wasi::config::store as draft;

/// A function's wasi:config values, built once per deploy and shared by its
/// instances.
#[derive(Default)]
pub struct ConfigValues {
    /// What wasmtime-wasi-config reads (rc.1).
    vars: WasiConfigVariables,
    /// The same pairs, for the Spin version.
    pairs: Vec<(String, String)>,
}

impl ConfigValues {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        ConfigValues {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            pairs,
        }
    }
}

/// An instance's way to its function's values.
pub trait ConfigView: Send + 'static {
    fn config_values(&mut self) -> &ConfigValues;
}

struct Draft<'a>(&'a ConfigValues);

impl draft::Host for Draft<'_> {
    fn get(&mut self, key: String) -> Result<Option<String>, draft::Error> {
        Ok(self
            .0
            .pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, draft::Error> {
        Ok(self.0.pairs.clone())
    }
}

struct HasDraft;

impl HasData for HasDraft {
    type Data<'a> = Draft<'a>;
}

fn rc1<T: ConfigView>(host: &mut T) -> WasiConfig<'_> {
    WasiConfig::new(&host.config_values().vars)
}

fn draft<T: ConfigView>(host: &mut T) -> Draft<'_> {
    Draft(host.config_values())
}

pub fn add_to_linker<T: ConfigView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_config::add_to_linker(linker, rc1::<T>)?;
    draft::add_to_linker::<T, HasDraft>(linker, draft::<T>)
}
