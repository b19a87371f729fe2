//! The Redis key-value backend (`backend = { redis = "redis://…" }`). The
//! store owns the database its URL names: keys are stored as the guest
//! writes them, so other Redis clients see the same data, and `list-keys`
//! walks the whole database with `SCAN`. Counters are `INCRBY`, batches are
//! `MGET`/`MSET`/`DEL`, compare-and-swap is one Lua script: each is atomic
//! on the server, whoever else writes to it.
//!
//! The connection is made on first use and re-made after a failure, so a
//! Redis that is down at start or restarts later costs the guests errors
//! while it is away, never the server.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::sync::OnceCell;

use crate::state::keyvalue::backend::{
    Error, KeyPage, KeyValue, PAGE, Result, check_key, check_value,
};

/// How long connecting and each reply may take before the guest gets an
/// error instead of waiting out its whole timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sets `KEYS[1]` to `ARGV[3]` if it holds `ARGV[2]` (`ARGV[1]` = "1") or
/// is absent (`ARGV[1]` = "0"); 1 when it did.
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == '0' then matches = (current == false) else matches = (current == ARGV[2]) end
if matches then redis.call('SET', KEYS[1], ARGV[3]) return 1 end
return 0
";

pub struct RedisStore {
    client: Client,
    /// The URL without credentials, for messages.
    shown: String,
    connection: OnceCell<ConnectionManager>,
    cas: Script,
}

impl RedisStore {
    /// Checks the URL; connects on first use.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let client = Client::open(url).map_err(|e| {
            anyhow::anyhow!("`{}` is not a usable Redis URL: {e}", hide_password(url))
        })?;
        Ok(RedisStore {
            client,
            shown: hide_password(url),
            connection: OnceCell::new(),
            cas: Script::new(COMPARE_AND_SWAP),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        self.connection
            .get_or_try_init(|| self.client.get_connection_manager_with_config(config))
            .await
            .cloned()
            .map_err(|e| self.failed(e))
    }

    fn failed(&self, e: redis::RedisError) -> Error {
        tracing::warn!("key-value store (Redis at {}): {e}", self.shown);
        Error(format!("the key-value store (Redis) failed: {e}"))
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.connection().await?;
        cmd.query_async(&mut conn).await.map_err(|e| self.failed(e))
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`: passwords stay
/// out of logs and error messages.
fn hide_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[async_trait]
impl KeyValue for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<()> {
        check_key(key)?;
        check_value(&value)?;
        self.query(redis::cmd("SET").arg(key).arg(value)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.query::<i64>(redis::cmd("DEL").arg(key))
            .await
            .map(drop)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        self.query(redis::cmd("EXISTS").arg(key)).await
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        let (next, keys): (u64, Vec<String>) = self
            .query(
                redis::cmd("SCAN")
                    .arg(cursor.unwrap_or(0))
                    .arg("COUNT")
                    .arg(PAGE),
            )
            .await?;
        Ok(KeyPage {
            keys,
            cursor: (next != 0).then_some(next),
        })
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        check_key(key)?;
        self.query(redis::cmd("INCRBY").arg(key).arg(delta)).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool> {
        check_key(key)?;
        check_value(&value)?;
        let mut conn = self.connection().await?;
        let mut call = self.cas.key(key);
        match expected {
            Some(expected) => call.arg("1").arg(expected),
            None => call.arg("0").arg(""),
        };
        let swapped: i64 = call
            .arg(value)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(swapped == 1)
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        keys.iter().try_for_each(|k| check_key(k))?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(&keys)).await?;
        Ok(keys.into_iter().zip(values).collect())
    }

    async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<()> {
        for (key, value) in &pairs {
            check_key(key)?;
            check_value(value)?;
        }
        if pairs.is_empty() {
            return Ok(());
        }
        self.query(redis::cmd("MSET").arg(&pairs)).await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        keys.iter().try_for_each(|k| check_key(k))?;
        if keys.is_empty() {
            return Ok(());
        }
        self.query::<i64>(redis::cmd("DEL").arg(&keys))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            hide_password("redis://app:s3cret@db:6379/1"),
            "redis://app:***@db:6379/1"
        );
        assert_eq!(hide_password("redis://db:6379"), "redis://db:6379");
        assert!(RedisStore::new("http://nope").is_err());
    }
}
