//! Logging setup: tracing records on stderr.

use tracing_subscriber::EnvFilter;

/// Logs go to stderr; `WISP_LOG` (tracing's filter syntax) sets the level.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("WISP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests calling into the library) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A duration as milliseconds with microsecond precision, as access log
/// lines carry it (`duration_ms`).
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
