//! Logging setup: tracing records on stderr, as text for people or as JSON
//! lines for log shippers (`WISP_LOG_FORMAT`).

use anyhow::{Result, bail};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use crate::telemetry::traces;

/// The environment variable choosing the format of the server's own logs.
pub const LOG_FORMAT_ENV: &str = "WISP_LOG_FORMAT";

/// Logs go to stderr; `WISP_LOG` (tracing's filter syntax) sets the level
/// and `WISP_LOG_FORMAT` the format: `text` (the default) or `json`, one
/// object per line with the record's fields at the top level (`timestamp`,
/// `level`, `target`, `message`, and e.g. `function`, `invocation`,
/// `status`).
pub fn init_logging() -> Result<()> {
    let filter = EnvFilter::try_from_env("WISP_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // Trace spans are exported, never printed.
        .add_directive(format!("{}=off", traces::TARGET).parse()?);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let format = std::env::var(LOG_FORMAT_ENV).unwrap_or_default();
    let output = match format.as_str() {
        "" | "text" => layer
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        "json" => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        other => bail!("{LOG_FORMAT_ENV} = `{other}`: write `text` or `json`"),
    };
    // A second init (tests calling into the library) is harmless.
    let _ = tracing_subscriber::registry()
        .with(traces::layer())
        .with(output)
        .try_init();
    Ok(())
}

/// A duration as milliseconds with microsecond precision, as access log
/// lines carry it (`duration_ms`).
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
