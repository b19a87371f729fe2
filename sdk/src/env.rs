//! Environment variables of the function (`wisp serve --env K=V`, or `env`
//! in `wisp.toml`).
//!
//! On wasm these read `wasi:cli/environment` on every call rather than
//! going through `std::env`, whose C library caches the whole environment
//! on first use: a value read during the [init hook](crate::http_handler#init-hook)
//! would otherwise be the one seen at pre-initialization time, not the
//! running instance's. (The SDK also resets that cache after init, so
//! `std::env` works too; these functions just do not depend on it.)

/// The value of `name`, or `None` if unset.
///
/// ```
/// let greeting = wisp_sdk::env::var("GREETING").unwrap_or_else(|| "Hello".into());
/// # let _ = greeting;
/// ```
pub fn var(name: &str) -> Option<String> {
    vars().into_iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

/// All variables, in the host's order.
///
/// ```
/// for (key, value) in wisp_sdk::env::vars() {
///     println!("{key}={value}");
/// }
/// ```
pub fn vars() -> Vec<(String, String)> {
    #[cfg(target_arch = "wasm32")]
    return wasi::cli::environment::get_environment();
    #[cfg(not(target_arch = "wasm32"))]
    return std::env::vars().collect();
}
