//! `wisp up [--watch]`: serves a manifest; with `--watch` it first builds
//! every function that has a `[function.build]`, then watches each one's
//! `watch` globs (debounced) and, when its files change, rebuilds it and
//! deploys it as a new revision while the server, the other functions and
//! requests in flight keep running. A failed build changes nothing: the
//! revision serving keeps serving, and the compiler's output is on stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use globset::{Glob, GlobSet, GlobSetBuilder};
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;

use super::build::{Buildable, Pass, build_one, buildable, summary};
use super::kit::Kit;
use crate::config::{Components, Manifest};
use crate::deploy::registry::Registry;
use crate::http::server;

/// Changes closer together than this make one rebuild (an editor's save
/// is often several writes and a rename).
const DEBOUNCE: Duration = Duration::from_millis(300);

/// A function whose source is watched.
struct Watched {
    function: Buildable,
    globs: GlobSet,
}

fn globs(patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(Glob::new(pattern)?);
    }
    Ok(set.build()?)
}

pub async fn up(file: PathBuf, watch: bool) -> Result<()> {
    if !watch {
        return server::run(Manifest::load(&file)?).await;
    }
    let unbuilt = Manifest::load_with(&file, Components::MayBeUnbuilt)?;
    let (base, functions) = buildable(&file, &unbuilt);
    if functions.is_empty() {
        bail!(
            "--watch: no function in `{}` has a [function.build] section (`command`, `watch`) to rebuild it by",
            file.display()
        );
    }
    let kit = Kit::locate()?;
    for f in &functions {
        match build_one(&kit, &base, f, Pass::First).await {
            Ok((size, took)) => eprintln!("wisp: {}", summary(&base, f, size, took)),
            // The last component built still serves, if there is one.
            Err(e) if Path::new(&f.spec.component).is_file() => eprintln!(
                "wisp: {e:#}\nwisp: {} serves the component built before",
                f.spec.name
            ),
            Err(e) => return Err(e),
        }
    }
    let root = base
        .canonicalize()
        .with_context(|| format!("could not resolve `{}`", base.display()))?;
    let watched = functions
        .into_iter()
        .map(|function| {
            let globs = globs(&function.build.watch)?;
            Ok(Watched { function, globs })
        })
        .collect::<Result<Vec<_>>>()?;
    server::serve(Manifest::load(&file)?, true, move |registry| {
        tokio::spawn(async move {
            if let Err(e) = watch_loop(registry, kit, base, root, watched).await {
                eprintln!("wisp: --watch stopped: {e:#}");
            }
        });
    })
    .await
}

/// Rebuilds and redeploys the functions whose watched files change, until
/// the process ends.
async fn watch_loop(
    registry: Arc<Registry>,
    kit: Kit,
    base: PathBuf,
    root: PathBuf,
    watched: Vec<Watched>,
) -> Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| match result {
        Ok(events) => {
            let _ = tx.send(events.into_iter().map(|e| e.path).collect());
        }
        Err(e) => eprintln!("wisp: --watch: {e}"),
    })?;
    debouncer
        .watcher()
        .watch(&root, RecursiveMode::Recursive)
        .with_context(|| format!("could not watch `{}`", root.display()))?;
    let names: Vec<&str> = watched
        .iter()
        .map(|w| w.function.spec.name.as_str())
        .collect();
    eprintln!("wisp: watching the sources of {}", names.join(", "));
    while let Some(mut paths) = rx.recv().await {
        // Changes made while the previous build ran count too.
        while let Ok(more) = rx.try_recv() {
            paths.extend(more);
        }
        for w in &watched {
            let changed = paths.iter().any(|path| {
                path.strip_prefix(&root)
                    .is_ok_and(|relative| w.globs.is_match(relative))
            });
            if changed {
                rebuild(&registry, &kit, &base, &w.function).await;
            }
        }
    }
    Ok(())
}

/// Builds `f` and deploys the result; on failure the serving revision stays.
async fn rebuild(registry: &Registry, kit: &Kit, base: &Path, f: &Buildable) {
    let name = &f.spec.name;
    let serving = || {
        registry.live(name).map_or("nothing".to_string(), |live| {
            format!("revision {}", live.number)
        })
    };
    match build_one(kit, base, f, Pass::Rebuild).await {
        Ok((size, took)) => match registry.apply_declared(f.spec.clone()).await {
            Ok(Some(revision)) => eprintln!(
                "wisp: {}; deployed as revision {}",
                summary(base, f, size, took),
                revision.number
            ),
            Ok(None) => eprintln!(
                "wisp: {}; the component did not change, {} keeps serving",
                summary(base, f, size, took),
                serving()
            ),
            Err(e) => eprintln!(
                "wisp: {name}: the new build does not deploy: {e:#}; {} keeps serving",
                serving()
            ),
        },
        Err(e) => eprintln!("wisp: {e:#}\nwisp: {name}: {} keeps serving", serving()),
    }
}
