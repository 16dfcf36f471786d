//! `sk8 session …`: create, list, get, delete and connect to interactive Spark Connect
//! sessions.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::Value;

use super::client::{Client, ClientError, segment};
use super::manifest;
use super::output::{Printer, s};

const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create a session from a SessionSpec file (YAML or JSON; `-` reads stdin), or find the
    /// one of that team, env and name.
    Create {
        file: PathBuf,
        /// Wait until it serves, showing its progress; exit non-zero if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// List sessions, newest first.
    List {
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Show a session.
    Get { id: String },
    /// Delete a session: its server stops and it never resumes.
    Delete { id: String },
    /// Print the connection string and a pyspark snippet for a session.
    Connect { id: String },
}

pub async fn run(
    client: &Client,
    out: &Printer,
    command: SessionCommand,
) -> Result<ExitCode, ClientError> {
    match command {
        SessionCommand::Create { file, wait } => {
            let body = manifest::load(&file).map_err(ClientError::Input)?;
            let session = client.post("/v1/sessions", &body).await?;
            if !wait {
                return Ok(out.session(&session));
            }
            let ready = wait_ready(client, out, s(&session["id"]).as_str()).await?;
            Ok(out.session(&ready))
        }
        SessionCommand::List {
            team,
            env,
            state,
            limit,
            page_token,
        } => {
            let filters = [
                ("team", team),
                ("env", env),
                ("state", state),
                ("page_token", page_token),
            ];
            let page = client
                .get("/v1/sessions", &super::list_query(limit, filters))
                .await?;
            Ok(out.session_page(&page))
        }
        SessionCommand::Get { id } => {
            let session = client.get(&path(&id), &[]).await?;
            Ok(out.session(&session))
        }
        SessionCommand::Delete { id } => {
            let session = client.delete(&path(&id)).await?;
            Ok(out.session(&session))
        }
        SessionCommand::Connect { id } => {
            let session = client.get(&path(&id), &[]).await?;
            Ok(out.connect(&session, client.authenticated()))
        }
    }
}

fn path(id: &str) -> String {
    format!("/v1/sessions/{}", segment(id))
}

/// Polls until the session is READY (success) or FAILED/STOPPED (failure), printing each
/// state it passes through.
async fn wait_ready(client: &Client, out: &Printer, id: &str) -> Result<Value, ClientError> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let session = client.get(&path(id), &[]).await?;
        let state = s(&session["state"]);
        if state != last {
            out.progress(&format!(
                "session {id} is {state} ({}s)",
                started.elapsed().as_secs()
            ));
            last = state.clone();
        }
        match state.as_str() {
            "READY" => return Ok(session),
            "FAILED" | "STOPPED" => {
                return Err(ClientError::Input(format!(
                    "session {id} is {state}: {}",
                    s(&session["reason"])
                )));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}
