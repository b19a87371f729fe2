//! What Wisp reports about itself: the ids and trigger kinds that tag every
//! record, logs, per-function metrics, and traces.

pub mod ids;
pub mod logging;
pub mod metrics;
pub mod traces;
