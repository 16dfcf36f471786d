//! What the CLI prints: short human-readable text by default, the API's JSON with `-o json`.
//! Shared by every subcommand: [`Table`] (aligned columns), [`time`] (one timestamp format,
//! RFC 3339 in UTC to the second), [`Printer::json`] and [`Printer::error`].

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
            ("created", time(&job["createdAt"])),
            ("started", time(&job["startedAt"])),
            ("finished", time(&job["finishedAt"])),
            ("failure", s(&job["failureReason"])),
            // The run's trace, to look it up in a tracing backend.
            ("trace", s(&job["traceId"])),
            ("waiting", s(&job["waitingReason"])),
            // The UI is served by the driver: only a running job has one to visit.
            (
                "spark ui",
                if job["state"] == "RUNNING" {
                    s(&job["links"]["sparkUi"])
                } else {
                    String::new()
                },
            ),
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
        let mut table = Table::new(["ID", "TEAM", "ENV", "NAME", "STATE", "TRY", "CREATED"]);
        for job in page["jobs"].as_array().into_iter().flatten() {
            table.row([
                s(&job["id"]),
                s(&job["team"]),
                s(&job["env"]),
                s(&job["name"]),
                s(&job["state"]),
                s(&job["attemptCount"]),
                time(&job["createdAt"]),
            ]);
        }
        table.print();
        if let Some(token) = page["nextPageToken"].as_str() {
            println!("more: --page-token {token}");
        }
        ExitCode::SUCCESS
    }

    pub fn events(&self, events: &Value) -> ExitCode {
        if self.format == OutputFormat::Json {
            return self.json(events);
        }
        let mut table = Table::new(["AT", "FROM", "TO", "REASON"]);
        for e in events.as_array().into_iter().flatten() {
            table.row([time(&e["at"]), s(&e["from"]), s(&e["to"]), s(&e["reason"])]);
        }
        table.print();
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
        let url = connect_url(session);
        if !url.is_empty() {
            println!("  connect: {url}");
        }
        ExitCode::SUCCESS
    }

    pub fn session_page(&self, page: &Value) -> ExitCode {
        if self.format == OutputFormat::Json {
            return self.json(page);
        }
        let mut table = Table::new(["ID", "TEAM", "ENV", "NAME", "STATE", "CONNECT"]);
        for session in page["sessions"].as_array().into_iter().flatten() {
            table.row([
                s(&session["id"]),
                s(&session["team"]),
                s(&session["env"]),
                s(&session["name"]),
                s(&session["state"]),
                connect_url(session),
            ]);
        }
        table.print();
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

    /// An error, on stderr: `error: …` lines (one per mistake in a manifest, with its file,
    /// line and column), or with `-o json` one JSON object shaped like the API's error body.
    pub fn error(&self, err: &ClientError) -> ExitCode {
        if self.is_json() {
            let body = serde_json::json!({ "error": error_json(err) });
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&body).unwrap_or_default()
            );
            return ExitCode::FAILURE;
        }
        match err {
            ClientError::Manifest(problems) => {
                for problem in problems {
                    eprintln!("error: {problem}");
                    if let Some(snippet) = &problem.snippet {
                        eprintln!("{snippet}");
                    }
                }
            }
            other => eprintln!("error: {other}"),
        }
        ExitCode::FAILURE
    }

    /// A progress line, on stderr so that `-o json` output stays parseable.
    pub fn progress(&self, line: &str) {
        eprintln!("{line}");
    }

    pub fn final_state(&self, job: &Value) -> ExitCode {
        let state = s(&job["state"]);
        if self.format == OutputFormat::Json {
            self.json(job);
        } else {
            self.job(job, "finished");
            if let Some(reason) = job["failureReason"].as_str() {
                println!("  reason: {reason}");
            }
            if state != "SUCCEEDED" {
                let id = s(&job["id"]);
                println!("  logs: sk8 logs {id}   history: sk8 events {id}");
            }
        }
        super::exit_for_state(&state)
    }
}

/// The `error` object of `-o json`: the API's `code`, `message`, `field` and `errors`, each
/// error with its `file`, `line` and `column` when it is about a manifest.
fn error_json(err: &ClientError) -> Value {
    match err {
        ClientError::Api {
            code,
            message,
            field,
            errors,
            ..
        } => {
            let mut error = serde_json::json!({"code": code, "message": message});
            if let Some(field) = field {
                error["field"] = field.as_str().into();
            }
            if !errors.is_empty() {
                error["errors"] = errors
                    .iter()
                    .map(|e| serde_json::json!({"field": e.field, "message": e.message}))
                    .collect();
            }
            error
        }
        ClientError::Manifest(problems) => {
            let errors: Vec<Value> = problems
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "file": p.file,
                        "line": p.position.map(|(line, _)| line),
                        "column": p.position.map(|(_, column)| column),
                        "field": p.field,
                        "message": p.message,
                    })
                })
                .collect();
            serde_json::json!({
                "code": "invalid_manifest",
                "message": problems.first().map(ToString::to_string),
                "field": problems.first().and_then(|p| p.field.clone()),
                "errors": errors,
            })
        }
        ClientError::Unreachable { .. } => {
            serde_json::json!({"code": "unreachable", "message": err.to_string()})
        }
        ClientError::Input(_) => serde_json::json!({"code": "input", "message": err.to_string()}),
        ClientError::Protocol(_) => {
            serde_json::json!({"code": "protocol", "message": err.to_string()})
        }
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

/// Rows printed in columns as wide as their widest cell, two spaces apart.
pub struct Table<const N: usize> {
    rows: Vec<[String; N]>,
}

impl<const N: usize> Table<N> {
    pub fn new(headers: [&str; N]) -> Self {
        Table {
            rows: vec![headers.map(str::to_owned)],
        }
    }

    pub fn row(&mut self, cells: [String; N]) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let mut widths = [0; N];
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in &self.rows {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("{}", line.join("  ").trim_end());
        }
    }
}

/// A timestamp of the API as the CLI shows it everywhere: RFC 3339, UTC, to the second
/// (`2026-12-05T06:19:46Z`); empty for null, as given when it is not a timestamp.
pub fn time(value: &Value) -> String {
    let text = s(value);
    chrono::DateTime::parse_from_rfc3339(&text).map_or(text, |t| {
        t.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}

/// A session's connection string, only while a server may answer it (not once it is
/// stopped, failed or deleted).
/// A session stopped for idleness with `autoResume` starts again on its next RPC, so its
/// connection string still works; a deleted one never resumes.
pub fn connect_url(session: &Value) -> String {
    let resumes = session["spec"]["autoResume"] == true && session["deletedAt"].is_null();
    match session["state"].as_str() {
        Some("FAILED") => String::new(),
        Some("STOPPED" | "STOPPING") if !resumes => String::new(),
        _ => s(&session["connectionString"]),
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
