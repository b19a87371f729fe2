//! The path of a deployment: component checks, the artifact cache (compiled
//! code and snapshots by content hash), pre-initialization, and the registry
//! that swaps a function's live revision and routes requests to it; and
//! commands (`wasi:cli/run`, preview-1 programs adapted) for jobs.

pub mod artifact;
pub mod command;
pub mod component;
pub mod registry;
pub mod routes;
pub mod snapshot;
