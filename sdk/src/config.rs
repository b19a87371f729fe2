//! Configuration values and secrets through `wasi:config` (`0.2.0-rc.1`):
//! the function's `config = { … }` in `wisp.toml`, and the secrets it is
//! granted (`secrets = ["stripe-key"]`) under their names.
//!
//! ```no_run
//! let currency = wisp_sdk::config::get("currency")?.unwrap_or_else(|| "USD".into());
//! # Ok::<(), wisp_sdk::config::Error>(())
//! ```
//!
//! Outside a component (host unit tests) there are no values unless a test
//! sets some with [`set_for_test`].

/// The host could not read its configuration source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The value of `key`, `None` if the function has none.
pub fn get(key: &str) -> Result<Option<String>, Error> {
    imp::get(key)
}

/// Every value the function has, secrets included.
pub fn get_all() -> Result<Vec<(String, String)>, Error> {
    imp::get_all()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Error;
    use crate::wasm::state_bindings::wasi::config::store;

    fn error(e: store::Error) -> Error {
        match e {
            store::Error::Upstream(message) | store::Error::Io(message) => Error(message),
        }
    }

    pub fn get(key: &str) -> Result<Option<String>, Error> {
        store::get(key).map_err(error)
    }

    pub fn get_all() -> Result<Vec<(String, String)>, Error> {
        store::get_all().map_err(error)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::RefCell;

    use super::Error;

    thread_local! {
        pub static VALUES: RefCell<Vec<(String, String)>> = RefCell::default();
    }

    pub fn get(key: &str) -> Result<Option<String>, Error> {
        Ok(VALUES.with_borrow(|v| v.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())))
    }

    pub fn get_all() -> Result<Vec<(String, String)>, Error> {
        Ok(VALUES.with_borrow(|v| v.clone()))
    }
}

/// Host unit tests only: makes [`get`] and [`get_all`] on this thread
/// answer `key` with `value`.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_for_test(key: &str, value: &str) {
    imp::VALUES.with_borrow_mut(|v| {
        v.retain(|(k, _)| k != key);
        v.push((key.to_string(), value.to_string()));
    });
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #[test]
    fn test_values_are_read_back() {
        assert_eq!(super::get("currency").unwrap(), None);
        super::set_for_test("currency", "KRW");
        assert_eq!(super::get("currency").unwrap().as_deref(), Some("KRW"));
        assert_eq!(super::get_all().unwrap().len(), 1);
    }
}
