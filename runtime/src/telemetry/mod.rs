//! What Wisp reports about itself: the ids and trigger kinds that tag every
//! record, logs, and per-function metrics.

pub mod ids;
pub mod logging;
pub mod metrics;
