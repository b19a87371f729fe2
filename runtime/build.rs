//! Links the `wisp` binary as a position-dependent executable.
//!
//! A position-independent one has ~110,000 absolute addresses (vtables,
//! string and function tables) patched by the dynamic loader at every
//! start, each write copying a page of the binary: about 2.4 ms of a
//! 13 ms start to first response on the reference machine. Linked at a
//! fixed address, the loader patches nothing and those pages are shared
//! from the page cache. The code is still compiled position-independent,
//! and the libraries, stacks, heap and Wasm memory pool are still placed
//! at random; only the executable's own image is not (docs/security.md,
//! "A fixed-address executable").
//!
//! `WISP_PIE=1 cargo build --release` links a position-independent one.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WISP_PIE");
    if std::env::var_os("WISP_PIE").is_none_or(|v| v.is_empty() || v == "0") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
