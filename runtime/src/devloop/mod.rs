//! The developer loop: `wisp new` writes a project from a template, `wisp
//! build` runs the build commands of a manifest's functions, and `wisp up
//! --watch` serves the manifest and redeploys a function as a new revision
//! whenever its source changes.

mod build;
mod kit;
mod new;
mod watch;

pub use build::{BuildArgs, build};
pub use new::{NewArgs, new};
pub use watch::up;
