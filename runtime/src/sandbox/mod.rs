//! Where guest code runs: the one wasmtime engine of the process (pooling,
//! copy-on-write, epoch ticker, the shared linker), what each `Store` carries
//! (WASI context, limits, tags), CPU time and fair turns on the cores, where
//! guest output goes, and the outbound HTTP policy.

pub mod command;
pub mod cpu;
pub mod engine;
pub mod guestlog;
pub mod host;
pub mod memory;
pub mod outbound;
pub mod tag;
pub mod tmpfs;
