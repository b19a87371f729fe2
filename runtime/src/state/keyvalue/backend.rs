//! The one contract every key-value backend keeps, whatever wasi:keyvalue
//! version the guest speaks: the draft and draft2 bindings both translate to
//! this trait, so a backend is written once and serves both ecosystems.

use async_trait::async_trait;

/// Longest key accepted, in bytes: keys end up in SQL indexes and Redis
/// key space, and no sensible key is longer.
pub const MAX_KEY: usize = 1024;

/// Largest value accepted, in bytes. A guest holds the whole value in its
/// linear memory anyway; this keeps one write from bloating the store.
pub const MAX_VALUE: usize = 16 << 20;

/// Keys one `list-keys` call returns at most; the cursor fetches the rest.
pub const PAGE: usize = 1000;

/// What went wrong, in words the guest receives as the interface's
/// `other(string)` error.
#[derive(Debug, Clone, PartialEq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// One page of keys and where the next one starts. The cursor is opaque to
/// guests: an offset for SQLite, a `SCAN` cursor for Redis; both fit the
/// draft's `u64` and draft2's string.
#[derive(Debug, Default, PartialEq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    pub cursor: Option<u64>,
}

/// A key-value store. Counters are decimal ASCII integers (what Redis's
/// `INCRBY` keeps), so a value written by `increment` reads the same from
/// every backend and every guest.
#[async_trait]
pub trait KeyValue: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn set(&self, key: &str, value: Vec<u8>) -> Result<()>;
    /// Deleting a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<()>;
    async fn exists(&self, key: &str) -> Result<bool>;
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage>;
    /// Adds `delta` to the counter at `key` (absent counts as 0) atomically,
    /// across every instance and every server sharing the backend.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64>;
    /// Writes `value` only if the key still holds `expected` (`None`: is
    /// still absent); `false` when it did not.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool>;
    /// Each key with its value, in the order asked, `None` where absent.
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>>;
    /// All or nothing.
    async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<()>;
    async fn delete_many(&self, keys: Vec<String>) -> Result<()>;
}

/// Refuses keys and values a backend should never see.
pub fn check_key(key: &str) -> Result<()> {
    if key.len() > MAX_KEY {
        return Err(Error(format!(
            "key of {} bytes is longer than the {MAX_KEY}-byte limit",
            key.len()
        )));
    }
    Ok(())
}

pub fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE {
        return Err(Error(format!(
            "value of {} bytes is larger than the {} MiB limit",
            value.len(),
            MAX_VALUE >> 20
        )));
    }
    Ok(())
}

/// Parses a stored counter; anything but a decimal integer is an error
/// rather than a silent zero.
pub fn parse_counter(key: &str, value: &[u8]) -> Result<i64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Error(format!(
                "`{key}` does not hold a counter (a decimal integer), so it cannot be incremented"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_counters() {
        assert!(check_key(&"k".repeat(MAX_KEY)).is_ok());
        assert!(check_key(&"k".repeat(MAX_KEY + 1)).is_err());
        assert!(check_value(&vec![0; MAX_VALUE + 1]).is_err());
        assert_eq!(parse_counter("c", b"-12"), Ok(-12));
        assert!(parse_counter("c", b"12x").unwrap_err().0.contains("`c`"));
    }
}
