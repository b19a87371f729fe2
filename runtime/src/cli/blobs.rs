//! `wisp blobs …`: an operator's view of the blob stores, through the admin
//! API. Objects travel as raw bytes.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::cli::AdminArgs;
use crate::cli::client::{self, Target};

#[derive(Args)]
pub struct BlobsArgs {
    #[command(subcommand)]
    pub command: BlobsCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand)]
pub enum BlobsCommand {
    /// The objects of a store, with sizes (every blob store without one).
    Ls {
        store: Option<String>,
        /// Only names starting with this.
        prefix: Option<String>,
    },
    /// An object's bytes, to stdout or a file.
    Get {
        store: String,
        name: String,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Writes an object from a file, or from stdin with `-`.
    Put {
        store: String,
        name: String,
        file: PathBuf,
    },
    /// Deletes an object.
    Rm { store: String, name: String },
}

/// Everything but what URLs leave alone, so `/`, `%`, `?` and `#` in a
/// name reach the server as part of the name.
const IN_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn object_path(store: &str, name: &str) -> String {
    format!(
        "/v1/blobs/{store}/objects/{}",
        utf8_percent_encode(name, IN_PATH)
    )
}

pub async fn blobs(args: BlobsArgs) -> Result<()> {
    let admin = Target::new(args.admin)?;
    match args.command {
        BlobsCommand::Ls {
            store: None,
            prefix: _,
        } => {
            let list = client::call(&admin, Method::GET, "/v1/blobs", Vec::new()).await?;
            for item in list.as_array().into_iter().flatten() {
                println!("{}", item.as_str().unwrap_or_default());
            }
        }
        BlobsCommand::Ls {
            store: Some(store),
            prefix,
        } => {
            let prefix = utf8_percent_encode(prefix.as_deref().unwrap_or(""), IN_PATH);
            let path = format!("/v1/blobs/{store}/objects?prefix={prefix}");
            let list = client::call(&admin, Method::GET, &path, Vec::new()).await?;
            for item in list.as_array().into_iter().flatten() {
                println!(
                    "{:>12}  {}",
                    item["size"],
                    item["name"].as_str().unwrap_or_default()
                );
            }
        }
        BlobsCommand::Get {
            store,
            name,
            output,
        } => {
            let path = object_path(&store, &name);
            let bytes = client::bytes(&admin, &path).await?;
            match output {
                Some(file) => std::fs::write(&file, &bytes)
                    .with_context(|| format!("could not write `{}`", file.display()))?,
                None => std::io::stdout().lock().write_all(&bytes)?,
            }
        }
        BlobsCommand::Put { store, name, file } => {
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin().lock().read_to_end(&mut bytes)?;
                bytes
            } else {
                std::fs::read(&file)
                    .with_context(|| format!("could not read `{}`", file.display()))?
            };
            let path = object_path(&store, &name);
            client::send(
                &admin,
                Method::PUT,
                &path,
                "application/octet-stream",
                bytes,
            )
            .await?;
        }
        BlobsCommand::Rm { store, name } => {
            client::call(
                &admin,
                Method::DELETE,
                &object_path(&store, &name),
                Vec::new(),
            )
            .await?;
        }
    }
    Ok(())
}
