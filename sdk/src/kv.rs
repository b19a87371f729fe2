//! Key-value stores through `wasi:keyvalue` (`0.2.0-draft`): the stores the
//! function is granted in `wisp.toml` (`keyvalue = ["cache"]`), opened by
//! name. Values are bytes; counters are decimal integers that
//! [`Store::increment`] changes atomically, however many instances run at
//! once.
//!
//! ```no_run
//! let store = wisp_sdk::kv::open("counter")?;
//! let visits = store.increment("visits", 1)?;
//! store.set("last-visit", b"just now")?;
//! # Ok::<(), wisp_sdk::kv::Error>(())
//! ```
//!
//! Outside a component (a `cargo test` of your handler on the host), every
//! store is an empty in-memory map of the current thread, so handlers that
//! use state can be unit-tested as they are.

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host has no store by that name.
    NoSuchStore,
    /// The function is not granted that store (`keyvalue = [...]`).
    AccessDenied,
    /// Anything else, in the host's words.
    Other(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoSuchStore => f.write_str("no such store"),
            Error::AccessDenied => {
                f.write_str("access denied: this function is not granted the store")
            }
            Error::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// An open store.
pub struct Store {
    inner: imp::Bucket,
}

/// Opens the store `name`; [`Error::AccessDenied`] unless the function is
/// granted it.
pub fn open(name: &str) -> Result<Store, Error> {
    imp::open(name).map(|inner| Store { inner })
}

impl Store {
    /// The value at `key`, `None` if there is none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.inner.get(key)
    }

    /// Sets `key` to `value`, replacing what was there.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.inner.set(key, value.as_ref())
    }

    /// Removes `key`; removing a missing key is no error.
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        self.inner.delete(key)
    }

    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        self.inner.exists(key)
    }

    /// Every key in the store, fetched a page at a time.
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = self.inner.list_keys(cursor)?;
            keys.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Adds `delta` to the counter at `key` (a missing key counts as 0) and
    /// returns the new value, atomically.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
        self.inner.increment(key, delta)
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Error;
    use crate::wasm::state_bindings::wasi::keyvalue::{atomics, store};

    impl From<store::Error> for Error {
        fn from(e: store::Error) -> Self {
            match e {
                store::Error::NoSuchStore => Error::NoSuchStore,
                store::Error::AccessDenied => Error::AccessDenied,
                store::Error::Other(message) => Error::Other(message),
            }
        }
    }

    /// The host's bucket, with the SDK's error type.
    pub struct Bucket(store::Bucket);

    pub fn open(name: &str) -> Result<Bucket, Error> {
        Ok(Bucket(store::open(name)?))
    }

    impl Bucket {
        pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.0.get(key)?)
        }

        pub fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
            Ok(self.0.set(key, value)?)
        }

        pub fn delete(&self, key: &str) -> Result<(), Error> {
            Ok(self.0.delete(key)?)
        }

        pub fn exists(&self, key: &str) -> Result<bool, Error> {
            Ok(self.0.exists(key)?)
        }

        pub fn list_keys(&self, cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>), Error> {
            let page = self.0.list_keys(cursor)?;
            Ok((page.keys, page.cursor))
        }

        pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
            Ok(atomics::increment(&self.0, key, delta)?)
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::Error;

    thread_local! {
        static DATA: RefCell<BTreeMap<(String, String), Vec<u8>>> = RefCell::default();
    }

    /// A store of the current thread's in-memory data.
    pub struct Bucket(String);

    pub fn open(name: &str) -> Result<Bucket, Error> {
        Ok(Bucket(name.to_string()))
    }

    impl Bucket {
        fn at(&self, key: &str) -> (String, String) {
            (self.0.clone(), key.to_string())
        }

        pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            Ok(DATA.with_borrow(|d| d.get(&self.at(key)).cloned()))
        }

        pub fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
            DATA.with_borrow_mut(|d| d.insert(self.at(key), value.to_vec()));
            Ok(())
        }

        pub fn delete(&self, key: &str) -> Result<(), Error> {
            DATA.with_borrow_mut(|d| d.remove(&self.at(key)));
            Ok(())
        }

        pub fn exists(&self, key: &str) -> Result<bool, Error> {
            Ok(DATA.with_borrow(|d| d.contains_key(&self.at(key))))
        }

        pub fn list_keys(&self, _cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>), Error> {
            let keys = DATA.with_borrow(|d| {
                d.keys()
                    .filter(|(store, _)| *store == self.0)
                    .map(|(_, key)| key.clone())
                    .collect()
            });
            Ok((keys, None))
        }

        pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
            let current = match self.get(key)? {
                Some(value) => String::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| Error::Other(format!("`{key}` does not hold a counter")))?,
                None => 0,
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| Error::Other("overflow".into()))?;
            self.set(key, next.to_string().as_bytes())?;
            Ok(next)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_stores_count_and_list() {
        let store = super::open("counter").unwrap();
        assert_eq!(store.increment("visits", 1).unwrap(), 1);
        assert_eq!(store.increment("visits", 2).unwrap(), 3);
        store.set("name", "wisp").unwrap();
        assert_eq!(store.keys().unwrap(), ["name", "visits"]);
        assert_eq!(store.get("visits").unwrap().as_deref(), Some(&b"3"[..]));
        assert!(super::open("other").unwrap().keys().unwrap().is_empty());
    }
}
