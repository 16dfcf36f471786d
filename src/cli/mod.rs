//! The `sk8` command line: `serve` runs the daemon; every other subcommand is a client of a
//! running daemon's HTTP API.

mod advise;
mod client;
mod describe;
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
        hide_env_values = true,
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
        #[arg(long, env = "SK8_CONFIG", hide_env_values = true)]
        config: Option<PathBuf>,
        /// Only load and validate the configuration (file and SK8_* variables), print the
        /// result, and exit: non-zero when it is invalid. Binds nothing, connects to nothing.
        #[arg(long)]
        check_config: bool,
    },
    /// Submit a job from a JobSpec file (YAML or JSON; `-` reads stdin).
    Submit {
        /// The JobSpec file (see examples/*.yaml); relative paths in it are relative to it.
        file: PathBuf,
        /// Wait for the job to finish, showing its progress; exit non-zero unless it succeeds.
        #[arg(long)]
        wait: bool,
        /// Makes retrying this command safe: the same key returns the same job.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Validate the file and show the spec sk8 would run (remembered sizes and sizing
        /// advice applied) without submitting anything.
        #[arg(long, conflicts_with_all = ["wait", "idempotency_key"])]
        dry_run: bool,
    },
    /// Show a job.
    Status {
        /// The job's id (`sk8 list` shows them).
        id: String,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// The job's id.
        id: String,
    },
    /// List jobs, newest first.
    List {
        /// Only this team's jobs.
        #[arg(long)]
        team: Option<String>,
        /// Only jobs of this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only jobs in this state: queued, submitted, running, retrying, succeeded, failed or
        /// cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this name.
        #[arg(long)]
        name: Option<String>,
        /// Only jobs with this label, as key=value; repeat to require several.
        #[arg(long)]
        label: Vec<String>,
        /// At most this many jobs (1-500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue from a previous listing's next-page token.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Everything sk8 knows of a job: timeline, and per attempt the resources given and used,
    /// how it ended and where to look further.
    Describe {
        /// The job's id.
        id: String,
    },
    /// Sizing advice for a job's next run, from its last successful runs.
    Advise {
        /// The job's team.
        team: String,
        /// The job's environment.
        env: String,
        /// The job's name, as in its spec.
        name: String,
        /// How much headroom: conservative, balanced (default) or cost.
        #[arg(long)]
        profile: Option<String>,
    },
    /// Print a job's driver log (archived once its attempt ended).
    Logs {
        /// The job's id.
        id: String,
        /// Keep streaming until the job's attempt ends.
        #[arg(short, long)]
        follow: bool,
        /// Which attempt's log (`sk8 describe` lists them); default the latest that started.
        #[arg(long)]
        attempt: Option<u32>,
    },
    /// Show a job's state transitions.
    Events {
        /// The job's id.
        id: String,
    },
    /// Interactive Spark Connect sessions (notebooks connect through sk8's gateway).
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Team namespaces sjns-TEAM-ENV: quota, limits, network policy, RBAC and secrets.
    #[command(subcommand)]
    Namespace(namespace::NamespaceCommand),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
}

/// The client-only flags: every subcommand accepts them (they are global), but `serve` does
/// not use them, so its help does not list them.
const CLIENT_FLAGS: [&str; 3] = ["server", "token", "output"];

impl Cli {
    /// Parses the process's arguments (exits with clap's message when they are wrong).
    pub fn parse_args() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command();
        // A hidden copy in `serve` stops the global flag from being propagated there.
        let hidden: Vec<clap::Arg> = command
            .get_arguments()
            .filter(|arg| CLIENT_FLAGS.contains(&arg.get_id().as_str()))
            .map(|arg| arg.clone().hide(true))
            .collect();
        let command = command.mut_subcommand("serve", |serve| serve.args(hidden));
        let matches = command.get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }
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
            dry_run: true,
            ..
        } => dry_run(&client, &out, &file).await,
        Command::Submit {
            file,
            wait,
            idempotency_key,
            dry_run: false,
        } => submit(&client, &out, &file, wait, idempotency_key).await,
        Command::Status { id } => client.get_job(&id).await.map(|mut job| {
            client.absolutize(&mut job["links"]["sparkUi"]);
            out.job_detail(&job)
        }),
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
        Command::Describe { id } => describe::run(&client, &out, &id).await,
        Command::Advise {
            team,
            env,
            name,
            profile,
        } => advise::run(&client, &out, [team, env, name], profile).await,
        Command::Logs {
            id,
            follow,
            attempt,
        } => client
            .logs(&id, follow, attempt, out.is_json())
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Events { id } => client.events(&id).await.map(|events| out.events(&events)),
        Command::Session(command) => session::run(&client, &out, command).await,
        Command::Namespace(command) => namespace::run(&client, &out, command).await,
    };
    result.unwrap_or_else(|err| out.error(&err))
}

async fn submit(
    client: &Client,
    out: &output::Printer,
    file: &std::path::Path,
    wait: bool,
    idempotency_key: Option<String>,
) -> Result<ExitCode, client::ClientError> {
    let manifest = manifest::Manifest::load(file)?;
    let job = client
        .submit(&manifest.body, idempotency_key.as_deref())
        .await
        .map_err(|e| manifest.explain(e))?;
    // The same confirmation with and without --wait; with -o json and --wait, stdout holds
    // only the finished job.
    if !wait || !out.is_json() {
        out.job(&job, "submitted");
    }
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    out.progress("waiting for it to finish");
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let finished = output::wait(client, out, &id).await?;
    Ok(out.final_state(&finished))
}

/// `submit --dry-run`: what the daemon would run for this file; nothing is stored.
async fn dry_run(
    client: &Client,
    out: &output::Printer,
    file: &std::path::Path,
) -> Result<ExitCode, client::ClientError> {
    let manifest = manifest::Manifest::load(file)?;
    let effective = client
        .dry_run(&manifest.body)
        .await
        .map_err(|e| manifest.explain(e))?;
    Ok(describe::dry_run(out, &effective))
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
