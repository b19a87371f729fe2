//! `wisp new NAME --lang LANG`: a project folder from the templates in the
//! repo's `templates/` (embedded in the binary): the handler, the language's
//! build file, a `wisp.toml` routing the function at `/` with a
//! `[function.build]`, a `.gitignore` and a README.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use super::kit::{Kit, guest_target_dir};
use crate::config::{Toolchain, validate_name};

#[derive(Args)]
pub struct NewArgs {
    /// The function's name: letters, digits, `-` and `_`.
    pub name: String,
    /// The language.
    #[arg(long)]
    pub lang: Toolchain,
    /// What calls the function: HTTP requests at `/`, or the CloudEvents of
    /// a topic (Rust only).
    #[arg(long, default_value = "http")]
    pub trigger: Trigger,
    /// The project's folder [default: ./NAME].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Write into an existing folder that is not empty (files of the same
    /// names are replaced).
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Trigger {
    Http,
    Event,
}

macro_rules! template {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/", $path))
    };
}

/// One language's template.
struct Template {
    language: &'static str,
    /// (path in the project, text) of the handler and build files.
    files: &'static [(&'static str, &'static str)],
    /// The file a user edits first.
    source: &'static str,
    gitignore: &'static str,
    component: &'static str,
    command: &'static str,
    watch: &'static [&'static str],
    /// README line: where the toolchain and bindings come from.
    note: &'static str,
}

const KIT_NOTE: &str = "Toolchain, WIT and bindings come from the Wisp kit in `{{kit}}`, which `scripts/install-guest-toolchains {{toolchain}}` installs.";

fn template(lang: Toolchain) -> Template {
    match lang {
        Toolchain::Rust => Template {
            language: "Rust",
            files: &[
                ("Cargo.toml", template!("rust/Cargo.toml")),
                (".cargo/config.toml", template!("rust/cargo-config.toml")),
            ],
            source: "src/lib.rs",
            gitignore: template!("rust/gitignore"),
            component: "target/{{crate}}.wasm",
            command: "RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --release",
            watch: &["src/**/*.rs", "Cargo.toml"],
            note: "The SDK is `{{kit}}/sdk`, linked by `scripts/install-guest-toolchains rust`; once wisp-sdk is on crates.io, Cargo.toml says `wisp-sdk = \"0.1\"` instead.",
        },
        Toolchain::Js => Template {
            language: "JavaScript",
            files: &[
                ("app.js", template!("js/app.js")),
                ("package.json", template!("js/package.json")),
            ],
            source: "app.js",
            gitignore: template!("js/gitignore"),
            component: "app.wasm",
            command: "npm run build",
            watch: &["*.js", "package.json"],
            note: KIT_NOTE,
        },
        Toolchain::Python => Template {
            language: "Python",
            files: &[("app.py", template!("python/app.py"))],
            source: "app.py",
            gitignore: template!("python/gitignore"),
            component: "app.wasm",
            command: "{{kit}}/bin/componentize-py -d {{kit}}/guest/wit -w function componentize app -o app.wasm",
            watch: &["**/*.py"],
            note: KIT_NOTE,
        },
        Toolchain::C => Template {
            language: "C",
            files: &[
                ("app.c", template!("c/app.c")),
                ("Makefile", template!("c/Makefile")),
            ],
            source: "app.c",
            gitignore: template!("c/gitignore"),
            component: "app.wasm",
            command: "make",
            watch: &["*.c", "*.h", "Makefile"],
            note: KIT_NOTE,
        },
        Toolchain::Go => Template {
            language: "Go",
            files: &[
                ("main.go", template!("go/main.go")),
                ("go.mod", template!("go/go.mod")),
                ("Makefile", template!("go/Makefile")),
            ],
            source: "main.go",
            gitignore: template!("go/gitignore"),
            component: "app.wasm",
            command: "make",
            watch: &["**/*.go", "go.mod", "Makefile"],
            note: KIT_NOTE,
        },
    }
}

/// The handler source by trigger (Rust has both; the others are files of
/// their template).
fn rust_source(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Http => template!("rust/http.rs"),
        Trigger::Event => template!("rust/event.rs"),
    }
}

/// Every project file, `{{…}}` placeholders still in.
fn project_files(lang: Toolchain, trigger: Trigger) -> Vec<(&'static str, String)> {
    let t = template(lang);
    let watch: Vec<String> = t.watch.iter().map(|g| format!("\"{g}\"")).collect();
    let (manifest, try_it) = match trigger {
        Trigger::Http => (template!("wisp.toml"), "`curl http://127.0.0.1:8080/`"),
        Trigger::Event => (
            template!("wisp-event.toml"),
            "`wisp publish events --type com.example.hello --source /cli --data '{\"hi\": 1}'` (its log line shows in `wisp up`'s output)",
        ),
    };
    let fill = |text: &str| {
        text.replace("{{component}}", t.component)
            .replace("{{command}}", t.command)
            .replace("{{watch}}", &watch.join(", "))
            .replace("{{language}}", t.language)
            .replace("{{source}}", t.source)
            .replace("{{try}}", try_it)
            .replace("{{toolchain_note}}", t.note)
            .replace("{{toolchain}}", lang.name())
    };
    let mut files: Vec<(&'static str, String)> = t
        .files
        .iter()
        .map(|(path, text)| (*path, text.to_string()))
        .collect();
    if lang == Toolchain::Rust {
        files.push((t.source, rust_source(trigger).to_string()));
    }
    files.push(("wisp.toml", fill(manifest)));
    files.push(("README.md", fill(template!("project-README.md"))));
    files.push((".gitignore", t.gitignore.to_string()));
    files
}

/// Refuses a folder that exists and has anything in it, unless `force`.
fn check_dir(dir: &Path, force: bool) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        bail!(
            "`{}` exists and is not a folder; pick another --dir",
            dir.display()
        );
    }
    let empty = std::fs::read_dir(dir)
        .with_context(|| format!("could not read `{}`", dir.display()))?
        .next()
        .is_none();
    if !empty && !force {
        bail!(
            "`{}` exists and is not empty; pick another --dir, or pass --force to write the project into it (files of the same names are replaced)",
            dir.display()
        );
    }
    Ok(())
}

pub async fn new(args: NewArgs) -> Result<()> {
    validate_name(&args.name).map_err(|e| anyhow::anyhow!("function name: {e}"))?;
    if args.lang == Toolchain::Rust && args.name.starts_with(|c: char| c.is_ascii_digit()) {
        bail!(
            "function name: `{}` starts with a digit, which a Rust package name may not; start it with a letter",
            args.name
        );
    }
    if args.trigger == Trigger::Event && args.lang != Toolchain::Rust {
        bail!(
            "--trigger event: `wisp new` has an event template for rust only; for {} start from --trigger http and read the CloudEvent from the request (docs/events.md, \"What you write\")",
            args.lang.name()
        );
    }
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    check_dir(&dir, args.force)?;
    let kit = Kit::locate()?;
    let values = [
        ("{{name}}", args.name.clone()),
        ("{{crate}}", args.name.replace('-', "_")),
        ("{{kit}}", kit.dir.display().to_string()),
        (
            "{{guest_target}}",
            guest_target_dir()?.display().to_string(),
        ),
    ];
    let files = project_files(args.lang, args.trigger);
    for (path, text) in &files {
        let text = values
            .iter()
            .fold(text.clone(), |text, (key, value)| text.replace(key, value));
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("could not create `{}`", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("could not write `{}`", path.display()))?;
    }
    let names: Vec<&str> = files.iter().map(|(path, _)| *path).collect();
    println!(
        "created {} ({}): {}",
        dir.display(),
        template(args.lang).language,
        names.join(", ")
    );
    if !kit.is_installed() {
        println!(
            "the {} toolchain is not installed yet; install it (idempotent) with:\n    {}",
            args.lang.name(),
            kit.install_command(args.lang)
        );
    }
    println!("next: cd {} && wisp up --watch", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        for lang in Toolchain::value_variants() {
            for trigger in [Trigger::Http, Trigger::Event] {
                for (path, text) in project_files(*lang, trigger) {
                    let left: Vec<&str> = text
                        .match_indices("{{")
                        .map(|(i, _)| {
                            &text[i..text[i..].find("}}").map_or(text.len(), |e| i + e + 2)]
                        })
                        .filter(|p| {
                            !["{{name}}", "{{crate}}", "{{kit}}", "{{guest_target}}"].contains(p)
                        })
                        .collect();
                    assert!(left.is_empty(), "{path} ({}) keeps {left:?}", lang.name());
                }
            }
        }
    }

    #[test]
    fn the_readme_has_five_lines() {
        for lang in Toolchain::value_variants() {
            let files = project_files(*lang, Trigger::Http);
            let readme = &files.iter().find(|(p, _)| *p == "README.md").unwrap().1;
            assert_eq!(readme.lines().count(), 5, "{readme}");
        }
    }
}
