//! `sk8 namespace …`: apply, get, list and delete team namespaces.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::client::{Client, ClientError, segment};
use super::manifest;
use super::output::{Printer, s};

#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Create or update a team namespace from a NamespaceSpec file (YAML or JSON with `team`
    /// and `env`; `-` reads stdin).
    Apply {
        /// The NamespaceSpec file.
        file: PathBuf,
    },
    /// Show a namespace: its spec, what its clusters hold, and any drift.
    Get {
        /// The namespace's team.
        team: String,
        /// The namespace's environment.
        env: String,
    },
    /// List namespaces by name.
    List {
        /// Only this team's namespaces.
        #[arg(long)]
        team: Option<String>,
        /// Only namespaces of this environment.
        #[arg(long)]
        env: Option<String>,
        /// At most this many namespaces (1-500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue from a previous listing's next-page token.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Delete a namespace and everything in it.
    Delete {
        /// The namespace's team.
        team: String,
        /// The namespace's environment.
        env: String,
        /// Delete even while jobs or sessions run in it: they are cancelled first.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(
    client: &Client,
    out: &Printer,
    command: NamespaceCommand,
) -> Result<ExitCode, ClientError> {
    match command {
        NamespaceCommand::Apply { file } => {
            let manifest = manifest::Manifest::load(&file)?;
            let (team, env) = (s(&manifest.body["team"]), s(&manifest.body["env"]));
            if team.is_empty() || env.is_empty() {
                return Err(ClientError::Input(format!(
                    "{} must name the namespace's team and env",
                    file.display()
                )));
            }
            let detail = client
                .put(&path(&team, &env), &manifest.body)
                .await
                .map_err(|e| manifest.explain(e))?;
            Ok(show(out, &detail))
        }
        NamespaceCommand::Get { team, env } => {
            let detail = client.get(&path(&team, &env), &[]).await?;
            Ok(show(out, &detail))
        }
        NamespaceCommand::List {
            team,
            env,
            limit,
            page_token,
        } => {
            let filters = [("team", team), ("env", env), ("page_token", page_token)];
            let page = client
                .get("/v1/namespaces", &super::list_query(limit, filters))
                .await?;
            Ok(show_page(out, &page))
        }
        NamespaceCommand::Delete { team, env, force } => {
            let path = format!("{}?force={force}", path(&team, &env));
            let detail = client.delete(&path).await?;
            if out.is_json() {
                return Ok(out.json(&detail));
            }
            println!("namespace {} deleted", s(&detail["namespace"]));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn path(team: &str, env: &str) -> String {
    format!("/v1/namespaces/{}/{}", segment(team), segment(env))
}

/// The namespace, its quota and limits, and per cluster every object that is not in sync.
fn show(out: &Printer, detail: &Value) -> ExitCode {
    if out.is_json() {
        return out.json(detail);
    }
    let spec = &detail["spec"];
    let no_cluster = detail["clusters"].as_array().is_none_or(Vec::is_empty);
    let drift = if no_cluster {
        // "in sync" would claim something was applied; without a cluster nothing was.
        "stored only: no Kubernetes cluster is configured, so nothing was applied anywhere"
    } else if detail["drift"] == true {
        "DRIFTED"
    } else {
        "in sync"
    };
    println!("namespace {} ({drift})", s(&detail["namespace"]));
    println!(
        "  quota: cpu {}, memory {}, pods {}",
        s(&spec["quota"]["cpu"]),
        s(&spec["quota"]["memory"]),
        s(&spec["quota"]["pods"])
    );
    println!(
        "  per container: max cpu {}, max memory {}",
        s(&spec["limits"]["max"]["cpu"]),
        s(&spec["limits"]["max"]["memory"])
    );
    for cluster in detail["clusters"].as_array().into_iter().flatten() {
        let objects = cluster["objects"].as_array().map_or(0, Vec::len);
        println!("  cluster {}: {objects} objects", s(&cluster["cluster"]));
        if let Some(error) = cluster["error"].as_str() {
            println!("    unreadable: {error}");
        }
        for object in cluster["objects"].as_array().into_iter().flatten() {
            if object["state"] != "IN_SYNC" {
                println!(
                    "    {} {}/{}",
                    s(&object["state"]),
                    s(&object["kind"]),
                    s(&object["name"])
                );
            }
        }
    }
    ExitCode::SUCCESS
}

fn show_page(out: &Printer, page: &Value) -> ExitCode {
    if out.is_json() {
        return out.json(page);
    }
    println!("{:<40}  {:<16}  {:<8}  UPDATED", "NAMESPACE", "TEAM", "ENV");
    for namespace in page["namespaces"].as_array().into_iter().flatten() {
        println!(
            "{:<40}  {:<16}  {:<8}  {}",
            s(&namespace["namespace"]),
            s(&namespace["team"]),
            s(&namespace["env"]),
            s(&namespace["updatedAt"])
        );
    }
    if let Some(token) = page["nextPageToken"].as_str() {
        println!("more: --page-token {token}");
    }
    ExitCode::SUCCESS
}
