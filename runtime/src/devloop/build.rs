//! `wisp build`: runs the `[function.build]` command of each function of a
//! manifest, in the manifest's folder, after checking its toolchain; the
//! command's output streams to stderr (a heartbeat marks long quiet
//! compiles) and each function ends with one summary line.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use super::kit::Kit;
use crate::config::{BuildSpec, Components, FunctionSpec, Manifest, Toolchain};

#[derive(Args)]
pub struct BuildArgs {
    /// The app manifest.
    #[arg(short = 'f', long = "file", default_value = "wisp.toml")]
    pub file: PathBuf,
}

/// How often a build that is still running says so.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// One function of a manifest that has a build: what `wisp build` and
/// `wisp up --watch` work on.
pub struct Buildable {
    /// `component` is the absolute path the build writes.
    pub spec: FunctionSpec,
    pub build: BuildSpec,
}

/// The manifest's folder and its functions that have a `[function.build]`.
pub fn buildable(manifest: &Path, loaded: &Manifest) -> (PathBuf, Vec<Buildable>) {
    let base = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let functions = loaded
        .functions
        .iter()
        .filter_map(|spec| {
            Some(Buildable {
                spec: spec.clone(),
                build: loaded.builds.get(&spec.name)?.clone(),
            })
        })
        .collect();
    (base, functions)
}

/// What a long first build spends its time on.
fn slow_part(toolchain: Option<Toolchain>) -> &'static str {
    match toolchain {
        Some(Toolchain::Rust) => {
            " (the first Rust build on a machine also compiles std for wasm: ~3 min)"
        }
        Some(Toolchain::Js) => " (componentize-js: up to a minute)",
        Some(Toolchain::Python) => " (componentize-py: up to 30 s)",
        _ => "",
    }
}

/// Whether a build is the first of a run, which says what may take long.
#[derive(Clone, Copy, PartialEq)]
pub enum Pass {
    First,
    Rebuild,
}

/// Builds one function; returns the component's size in bytes and the time
/// taken. The command's stdout goes to stderr, so only wisp's own lines are
/// on stdout.
pub async fn build_one(
    kit: &Kit,
    base: &Path,
    f: &Buildable,
    pass: Pass,
) -> Result<(u64, Duration)> {
    let name = &f.spec.name;
    // A rebuild's toolchain was there for the first build.
    if let (Pass::First, Some(toolchain)) = (pass, f.build.toolchain) {
        kit.check(toolchain).await?;
    }
    let started = Instant::now();
    let slow = match pass {
        Pass::First => slow_part(f.build.toolchain),
        Pass::Rebuild => "",
    };
    eprintln!("wisp: building {name}: {}{slow}", f.build.command);
    let stdout = std::io::stderr().as_fd().try_clone_to_owned()?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&f.build.command)
        .current_dir(base)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not run `sh -c {}`", f.build.command))?;
    let status = loop {
        match tokio::time::timeout(HEARTBEAT, child.wait()).await {
            Ok(status) => break status?,
            Err(_) => eprintln!(
                "wisp: building {name}: still running after {} s",
                started.elapsed().as_secs()
            ),
        }
    };
    if !status.success() {
        let why = match status.code() {
            Some(127) => " (command not found: is its toolchain installed and on PATH?)".into(),
            Some(code) => format!(" (exit status {code})"),
            None => " (killed by a signal)".into(),
        };
        bail!(
            "building {name} failed: `{}`{why}; its output is above",
            f.build.command
        );
    }
    let component = Path::new(&f.spec.component);
    let size = std::fs::metadata(component)
        .map_err(|_| {
            anyhow!(
                "building {name}: `{}` succeeded but wrote no `{}`; `component` must name the file the command writes",
                f.build.command,
                component.display()
            )
        })?
        .len();
    Ok((size, started.elapsed()))
}

/// The summary line of one build.
pub fn summary(base: &Path, f: &Buildable, size: u64, took: Duration) -> String {
    let component = Path::new(&f.spec.component);
    let shown = component.strip_prefix(base).unwrap_or(component);
    format!(
        "built {}: {} ({}) in {:.1} s",
        f.spec.name,
        shown.display(),
        human_size(size),
        took.as_secs_f64()
    )
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{} KB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// `wisp build`: every function with a build, one after another; fails
/// (after trying them all) if any failed.
pub async fn build(args: BuildArgs) -> Result<()> {
    let manifest = Manifest::load_with(&args.file, Components::MayBeUnbuilt)?;
    let (base, functions) = buildable(&args.file, &manifest);
    if functions.is_empty() {
        bail!(
            "no function in `{}` has a [function.build] section saying how to build it (`command = \"…\"`)",
            args.file.display()
        );
    }
    let kit = Kit::locate()?;
    let mut failed = Vec::new();
    for f in &functions {
        match build_one(&kit, &base, f, Pass::First).await {
            Ok((size, took)) => println!("{}", summary(&base, f, size, took)),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed.push(f.spec.name.as_str());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} builds failed: {}",
            failed.len(),
            functions.len(),
            failed.join(", ")
        );
    }
    Ok(())
}
