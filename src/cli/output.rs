//! What the CLI prints: short human-readable text by default, the API's JSON with `-o json`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::OutputFormat;
use super::client::{Client, ClientError};

const POLL: Duration = Duration::from_millis(500);

pub struct Printer {
    format: OutputFormat,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Self {
        Printer { format }
    }

    /// Whether the API's JSON is printed as it is (`-o json`).
    pub(super) fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    pub(super) fn json(&self, value: &Value) -> ExitCode {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
        ExitCode::SUCCESS
    }

    pub fn job(&self, job: &Value, verb: &str) -> ExitCode {
        if self.format == OutputFormat::Json {
            return self.json(job);
        }
        println!(
            "{} {verb}: {} ({}/{}) is {}",
            s(&job["name"]),
            s(&job["id"]),
            s(&job["team"]),
            s(&job["env"]),
            s(&job["state"])
        );
        ExitCode::SUCCESS
    }

    pub fn job_detail(&self, job: &Value) -> ExitCode {
        if self.format == OutputFormat::Json {
            return self.json(job);
        }
        let rows = [
            ("id", s(&job["id"])),
            ("name", s(&job["name"])),
            (
                "team/env",
                format!("{}/{}", s(&job["team"]), s(&job["env"])),
            ),
            ("namespace", s(&job["namespace"])),
            ("state", s(&job["state"])),
            (
                "attempts",
                format!(
                    "{} of {}",
                    job["attemptCount"], job["spec"]["retry"]["maxAttempts"]
                ),
            ),
            ("created", s(&job["createdAt"])),
            ("started", s(&job["startedAt"])),
            ("finished", s(&job["finishedAt"])),
            ("failure", s(&job["failureReason"])),
            ("waiting", s(&job["waitingReason"])),
            ("spark ui", s(&job["links"]["sparkUi"])),
        ];
        for (key, value) in rows.iter().filter(|(_, v)| !v.is_empty()) {
            println!("{key:<10} {value}");
        }
        ExitCode::SUCCESS
    }

    pub fn job_page(&self, page: &Value) -> ExitCode {
        if self.format == OutputFormat::Json {
            return self.json(page);
        }
        println!(
            "{:<18}  {:<16}  {:<8}  {:<24}  {:<10}  {:>3}  CREATED",
            "ID", "TEAM", "ENV", "NAME", "STATE", "TRY"
        );
        for job in page["jobs"].as_array().into_iter().flatten() {
            println!(
                "{:<18}  {:<16}  {:<8}  {:<24}  {:<10}  {:>3}  {}",
                s(&job["id"]),
                s(&job["team"]),
                s(&job["env"]),
                s(&job["name"]),
                s(&job["state"]),
                job["attemptCount"],
                s(&job["createdAt"])
            );
        }
        if let Some(token) = page["nextPageToken"].as_str() {
            println!("more: --page-token {token}");
        }
        ExitCode::SUCCESS
    }

    pub fn events(&self, events: &Value) -> ExitCode {
        if self.format == OutputFormat::Json {
            return self.json(events);
        }
        for e in events.as_array().into_iter().flatten() {
            let from = e["from"]
                .as_str()
                .map(|f| format!("{f} → "))
                .unwrap_or_default();
            println!(
                "{}  {from}{:<10}  {}",
                s(&e["at"]),
                s(&e["to"]),
                s(&e["reason"])
            );
        }
        ExitCode::SUCCESS
    }

    pub fn session(&self, session: &Value) -> ExitCode {
        if self.format == OutputFormat::Json {
            return self.json(session);
        }
        let reason = session["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        println!(
            "session {} ({}/{}/{}) is {}{reason}",
            s(&session["id"]),
            s(&session["team"]),
            s(&session["env"]),
            s(&session["name"]),
            s(&session["state"])
        );
        println!("  connect: {}", s(&session["connectionString"]));
        ExitCode::SUCCESS
    }

    pub fn session_page(&self, page: &Value) -> ExitCode {
        if self.format == OutputFormat::Json {
            return self.json(page);
        }
        println!(
            "{:<18}  {:<16}  {:<8}  {:<20}  {:<8}  CONNECT",
            "ID", "TEAM", "ENV", "NAME", "STATE"
        );
        for session in page["sessions"].as_array().into_iter().flatten() {
            println!(
                "{:<18}  {:<16}  {:<8}  {:<20}  {:<8}  {}",
                s(&session["id"]),
                s(&session["team"]),
                s(&session["env"]),
                s(&session["name"]),
                s(&session["state"]),
                s(&session["connectionString"])
            );
        }
        if let Some(token) = page["nextPageToken"].as_str() {
            println!("more: --page-token {token}");
        }
        ExitCode::SUCCESS
    }

    /// The connection string, and the lines to paste into a notebook; with authentication,
    /// the token comes from the notebook's `SK8_TOKEN`, never printed here.
    pub fn connect(&self, session: &Value, authenticated: bool) -> ExitCode {
        if self.format == OutputFormat::Json {
            return self.json(&serde_json::json!({
                "connectionString": session["connectionString"],
            }));
        }
        let url = s(&session["connectionString"]);
        println!("{url}");
        println!();
        if authenticated {
            println!("# sends SK8_TOKEN; pyspark sends a token only over TLS (gateway.tls) unless");
            println!("# the host is localhost");
            println!("import os");
        }
        println!("from pyspark.sql import SparkSession");
        if authenticated {
            println!(
                "spark = SparkSession.builder.remote(\"{url};token=\" + os.environ[\"SK8_TOKEN\"]).getOrCreate()"
            );
        } else {
            println!("spark = SparkSession.builder.remote(\"{url}\").getOrCreate()");
        }
        println!("spark.range(10).show()");
        ExitCode::SUCCESS
    }

    /// A progress line, on stderr so that `-o json` output stays parseable.
    pub fn progress(&self, line: &str) {
        eprintln!("{line}");
    }

    pub fn final_state(&self, job: &Value) -> ExitCode {
        let state = s(&job["state"]);
        if self.format == OutputFormat::Json {
            self.json(job);
        } else if state == "SUCCEEDED" {
            println!("job {} SUCCEEDED", s(&job["id"]));
        } else {
            let reason = job["failureReason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            println!("job {} {state}{reason}", s(&job["id"]));
            println!(
                "  logs: sk8 logs {}   history: sk8 events {}",
                s(&job["id"]),
                s(&job["id"])
            );
        }
        super::exit_for_state(&state)
    }
}

/// Polls a job until it finishes, printing each state change with the elapsed time.
pub async fn wait(client: &Client, out: &Printer, id: &str) -> Result<Value, ClientError> {
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    loop {
        let job = client.get_job(id).await?;
        let state = s(&job["state"]);
        let elapsed = start.elapsed().as_secs_f64();
        if state != last {
            let attempt = format!(
                "attempt {}/{}",
                job["attemptCount"], job["spec"]["retry"]["maxAttempts"]
            );
            let why = job["failureReason"]
                .as_str()
                .filter(|_| state == "RETRYING")
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            if tty {
                eprint!("\r\x1b[K");
            }
            out.progress(&format!("[{elapsed:>6.1}s] {state:<10} {attempt}{why}"));
            last = state.clone();
        } else if tty {
            eprint!("\r[{elapsed:>6.1}s] {state} …");
        }
        if matches!(state.as_str(), "SUCCEEDED" | "FAILED" | "CANCELLED") {
            if tty {
                eprint!("\r\x1b[K");
            }
            return Ok(job);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A JSON value as plain text (strings unquoted, null empty).
pub fn s(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
