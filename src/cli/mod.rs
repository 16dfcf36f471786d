//! The `sk8` command line: `serve` runs the daemon; every other subcommand is a client of a
//! running daemon's HTTP API.

mod client;
mod manifest;
mod namespace;
mod output;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use client::Client;

#[derive(Debug, Parser)]
#[command(
    name = "sk8",
    version,
    about = "Run Apache Spark jobs: a control plane and its client"
)]
pub struct Cli {
    /// The sk8 daemon to talk to.
    #[arg(
        long,
        global = true,
        env = "SK8_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// The API token to send (`Authorization: Bearer`), when the daemon has authentication
    /// on. Prefer the environment variable: a flag shows in the shell history and `ps`.
    #[arg(long, global = true, env = "SK8_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sk8 daemon (embedded defaults when no config is given).
    Serve {
        /// A YAML config file (see examples/sk8.yaml); SK8_* variables override it.
        #[arg(long, env = "SK8_CONFIG")]
        config: Option<PathBuf>,
        /// Only load and validate the configuration (file and SK8_* variables), print the
        /// result, and exit: non-zero when it is invalid. Binds nothing, connects to nothing.
        #[arg(long)]
        check_config: bool,
    },
    /// Submit a job from a JobSpec file (YAML or JSON; `-` reads stdin).
    Submit {
        file: PathBuf,
        /// Wait for the job to finish, showing its progress; exit non-zero unless it succeeds.
        #[arg(long)]
        wait: bool,
        /// Makes retrying this command safe: the same key returns the same job.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Show a job.
    Status { id: String },
    /// Cancel a queued or running job.
    Cancel { id: String },
    /// List jobs, newest first.
    List {
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// key=value; repeat to require several.
        #[arg(long)]
        label: Vec<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue from a previous listing's next-page token.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Print a job's driver log.
    Logs {
        id: String,
        /// Keep streaming until the job's attempt ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Show a job's state transitions.
    Events { id: String },
    /// Interactive Spark Connect sessions (notebooks connect through sk8's gateway).
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Team namespaces sjns-TEAM-ENV: quota, limits, network policy, RBAC and secrets.
    #[command(subcommand)]
    Namespace(namespace::NamespaceCommand),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
}

/// Runs a client subcommand against the daemon.
pub async fn run_client(cli: Cli) -> ExitCode {
    let client = match Client::new(&cli.server, cli.token.as_deref()) {
        Ok(client) => client,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let out = output::Printer::new(cli.output);
    let result = match cli.command {
        Command::Serve { .. } => unreachable!("serve is handled by main"),
        Command::Openapi => {
            print!("{}", crate::api::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit {
            file,
            wait,
            idempotency_key,
        } => submit(&client, &out, &file, wait, idempotency_key).await,
        Command::Status { id } => client.get_job(&id).await.map(|job| out.job_detail(&job)),
        Command::Cancel { id } => client
            .cancel(&id)
            .await
            .map(|job| out.job(&job, "cancel requested")),
        Command::List {
            team,
            env,
            state,
            name,
            label,
            limit,
            page_token,
        } => {
            let filters = [
                ("team", team),
                ("env", env),
                ("state", state),
                ("name", name),
                ("page_token", page_token),
            ];
            let mut query = list_query(limit, filters);
            query.extend(label.into_iter().map(|v| ("label", v)));
            client
                .get("/v1/jobs", &query)
                .await
                .map(|page| out.job_page(&page))
        }
        Command::Logs { id, follow } => client.logs(&id, follow).await.map(|()| ExitCode::SUCCESS),
        Command::Events { id } => client.events(&id).await.map(|events| out.events(&events)),
        Command::Session(command) => session::run(&client, &out, command).await,
        Command::Namespace(command) => namespace::run(&client, &out, command).await,
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err}");
        ExitCode::FAILURE
    })
}

async fn submit(
    client: &Client,
    out: &output::Printer,
    file: &std::path::Path,
    wait: bool,
    idempotency_key: Option<String>,
) -> Result<ExitCode, client::ClientError> {
    let body = manifest::load(file).map_err(client::ClientError::Input)?;
    let job = client.submit(&body, idempotency_key.as_deref()).await?;
    if !wait {
        return Ok(out.job(&job, "submitted"));
    }
    out.progress(&format!(
        "submitted job {} ({}); waiting for it to finish",
        job["id"].as_str().unwrap_or("?"),
        job["name"].as_str().unwrap_or("?")
    ));
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let finished = output::wait(client, out, &id).await?;
    Ok(out.final_state(&finished))
}

/// A list call's query: the page size and the filters that were given.
fn list_query<const N: usize>(
    limit: u32,
    filters: [(&'static str, Option<String>); N],
) -> Vec<(&'static str, String)> {
    let given = filters.into_iter().filter_map(|(k, v)| Some((k, v?)));
    std::iter::once(("limit", limit.to_string()))
        .chain(given)
        .collect()
}

/// Exit status for a finished job: success only when it succeeded.
pub fn exit_for_state(state: &str) -> ExitCode {
    if state == "SUCCEEDED" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
