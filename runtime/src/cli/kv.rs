//! `wisp kv …`: an operator's view of the key-value stores, through the
//! admin API.

use anyhow::Result;
use clap::{Args, Subcommand};
use http::Method;

use crate::cli::AdminArgs;
use crate::cli::client::{self, Target};

#[derive(Args)]
pub struct KvArgs {
    #[command(subcommand)]
    pub command: KvCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand)]
pub enum KvCommand {
    /// The keys of a store (every store without one).
    List { store: Option<String> },
    /// A key's value (text as is; bytes as base64).
    Get { store: String, key: String },
    /// Sets a key to a text value.
    Set {
        store: String,
        key: String,
        value: String,
    },
    /// Deletes a key.
    Delete { store: String, key: String },
}

fn key_path(store: &str, key: &str) -> String {
    format!("/v1/stores/{store}/keys/{key}")
}

pub async fn kv(args: KvArgs) -> Result<()> {
    let admin = Target::new(args.admin)?;
    match args.command {
        KvCommand::List { store } => {
            let path = match &store {
                Some(store) => format!("/v1/stores/{store}/keys"),
                None => "/v1/stores".to_string(),
            };
            let list = client::call(&admin, Method::GET, &path, Vec::new()).await?;
            for item in list.as_array().into_iter().flatten() {
                println!("{}", item.as_str().unwrap_or_default());
            }
        }
        KvCommand::Get { store, key } => {
            let got =
                client::call(&admin, Method::GET, &key_path(&store, &key), Vec::new()).await?;
            match got["value"].as_str() {
                Some(text) => println!("{text}"),
                None => println!("{}", got["value_base64"].as_str().unwrap_or_default()),
            }
        }
        KvCommand::Set { store, key, value } => {
            client::send(
                &admin,
                Method::PUT,
                &key_path(&store, &key),
                "application/octet-stream",
                value.into_bytes(),
            )
            .await?;
        }
        KvCommand::Delete { store, key } => {
            client::call(&admin, Method::DELETE, &key_path(&store, &key), Vec::new()).await?;
        }
    }
    Ok(())
}
