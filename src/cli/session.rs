//! `sk8 session …`: create, list, get, delete and connect to interactive Spark Connect
//! sessions.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::Value;

use super::client::{Client, ClientError, segment};
use super::manifest;
use super::output::{self, Printer, s};

const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create a session from a SessionSpec file (YAML or JSON; `-` reads stdin), or find the
    /// one of that team, env and name.
    Create {
        /// The SessionSpec file.
        file: PathBuf,
        /// Wait until it serves, showing its progress; exit non-zero if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// List sessions, newest first.
    List {
        /// Only this team's sessions.
        #[arg(long)]
        team: Option<String>,
        /// Only sessions of this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only sessions in this state: starting, ready, stopping, stopped or failed.
        #[arg(long)]
        state: Option<String>,
        /// At most this many sessions (1-500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue from a previous listing's next-page token.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Show a session.
    Get(SessionTarget),
    /// Delete a session: its server stops and it never resumes.
    Delete(SessionTarget),
    /// Print the connection string and a pyspark snippet for a session.
    Connect(SessionTarget),
}

/// Which session: an id, or a name (unique among a team environment's sessions that are not
/// deleted; `--team`/`--env` tell same-named sessions of different teams apart).
#[derive(Debug, clap::Args)]
pub struct SessionTarget {
    /// The session's id or name.
    session: String,
    /// With a name: only this team's sessions.
    #[arg(long)]
    team: Option<String>,
    /// With a name: only this environment's sessions.
    #[arg(long)]
    env: Option<String>,
}

pub async fn run(
    client: &Client,
    out: &Printer,
    command: SessionCommand,
) -> Result<ExitCode, ClientError> {
    match command {
        SessionCommand::Create { file, wait } => {
            let manifest = manifest::Manifest::load(&file)?;
            let session = client
                .post("/v1/sessions", &manifest.body)
                .await
                .map_err(|e| manifest.explain(e))?;
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
        SessionCommand::Get(target) => {
            let id = resolve(client, &target).await?;
            let session = client.get(&path(&id), &[]).await?;
            Ok(out.session(&session))
        }
        SessionCommand::Delete(target) => {
            let id = resolve(client, &target).await?;
            let session = client.delete(&path(&id)).await?;
            Ok(out.session(&session))
        }
        SessionCommand::Connect(target) => {
            let id = resolve(client, &target).await?;
            let session = client.get(&path(&id), &[]).await?;
            if output::connect_url(&session).is_empty() {
                return Err(ClientError::Input(format!(
                    "session {} ({}) is {}{}: there is no server to connect to; create it again \
                     with `sk8 session create`",
                    s(&session["name"]),
                    id,
                    s(&session["state"]),
                    if session["deletedAt"].is_null() {
                        ""
                    } else {
                        " and deleted"
                    },
                )));
            }
            Ok(out.connect(&session, client.authenticated()))
        }
    }
}

/// At most this many pages of sessions are searched for a name.
const NAME_SEARCH_PAGES: usize = 20;

/// The id of the session `target` names: an id as it is, a name looked up among the sessions
/// that are not deleted (the API lists by team, env and state, not by name).
async fn resolve(client: &Client, target: &SessionTarget) -> Result<String, ClientError> {
    if crate::domain::SessionId::parse(&target.session).is_some() {
        return Ok(target.session.clone());
    }
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..NAME_SEARCH_PAGES {
        let filters = [
            ("team", target.team.clone()),
            ("env", target.env.clone()),
            ("page_token", token.take()),
        ];
        let page = client
            .get("/v1/sessions", &super::list_query(200, filters))
            .await?;
        found.extend(
            page["sessions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["name"] == target.session.as_str() && x["deletedAt"].is_null())
                .cloned(),
        );
        token = page["nextPageToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    match found.as_slice() {
        [one] => Ok(s(&one["id"])),
        [] => Err(ClientError::Input(format!(
            "no session is named {:?}{}; `sk8 session list` shows the sessions",
            target.session,
            scope(target)
        ))),
        several => Err(ClientError::Input(format!(
            "{} sessions are named {:?} ({}); say which with --team and --env, or use its id",
            several.len(),
            target.session,
            several
                .iter()
                .map(|x| format!("{} in {}/{}", s(&x["id"]), s(&x["team"]), s(&x["env"])))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn scope(target: &SessionTarget) -> String {
    match (&target.team, &target.env) {
        (None, None) => String::new(),
        (team, env) => format!(
            " in {}/{}",
            team.as_deref().unwrap_or("*"),
            env.as_deref().unwrap_or("*")
        ),
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
