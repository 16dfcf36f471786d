//! The `sk8` binary: parse arguments, then either run the daemon (config → telemetry →
//! `app::run`) or act as a client of a running daemon.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use sk8::cli::{Cli, Command};
use sk8::config::Config;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_args();
    match cli.command {
        Command::Serve {
            ref config,
            check_config: true,
        } => {
            die_on_broken_pipe();
            check_config(config.as_deref())
        }
        Command::Serve { ref config, .. } => match serve(config.as_deref()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                // Not eprintln!: it panics when stderr is a pipe nobody reads any more.
                let _ = writeln!(std::io::stderr(), "sk8: {err:#}");
                ExitCode::FAILURE
            }
        },
        _ => {
            die_on_broken_pipe();
            sk8::cli::run_client(cli).await
        }
    }
}

/// A client command piped into `head` ends quietly when `head` does, as other Unix tools do,
/// instead of panicking on its next print. Not for `serve`: the daemon keeps Rust's default
/// (SIGPIPE ignored), so a reader that goes away costs it log lines, never its life.
fn die_on_broken_pipe() {
    // SAFETY: SIG_DFL installs no handler; it only changes how the process meets SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `sk8 serve --check-config`: the configuration as it would be used, or why it is invalid.
fn check_config(config_file: Option<&std::path::Path>) -> ExitCode {
    match Config::load(config_file) {
        Ok(config) => match effective_yaml(&config) {
            Ok(yaml) => {
                println!(
                    "# the configuration is valid; in effect (file, SK8_* variables, defaults):"
                );
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("sk8: cannot show the configuration: {err}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("sk8: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration as YAML, in the config file's own keys, with the database password
/// redacted (secrets themselves live in files the config only names).
fn effective_yaml(config: &Config) -> anyhow::Result<String> {
    let mut value = serde_json::to_value(config)?;
    if let Some(url) = value.pointer_mut("/store/url")
        && let Some(text) = url.as_str()
    {
        *url = sk8::config::redact_url(text).into();
    }
    // Object-store options may hold credentials (`aws_secret_access_key`, …): names only.
    if let Some(serde_json::Value::Object(options)) = value.pointer_mut("/history/store/options") {
        options.values_mut().for_each(|v| *v = "***".into());
    }
    Ok(serde_saphyr::to_string(&value)?)
}

async fn serve(config_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    // Validated before anything is bound or started.
    let config = Config::load(config_file)?;
    // OTLP export first (when configured), so the first log line's span already goes there.
    let otel = sk8::telemetry::Otel::start(&config.otlp)?;
    let _log = sk8::telemetry::init_tracing(&config.log, otel.as_ref())?;
    if otel.is_some() {
        tracing::info!("OTLP export of traces and metrics is on");
    }
    match config_file {
        Some(path) => {
            tracing::info!(file = %path.display(), "config: loaded from file and SK8_* variables")
        }
        None => tracing::info!("config: embedded defaults and SK8_* variables (no --config)"),
    }
    let metrics = sk8::telemetry::init_metrics(otel.as_ref())?;
    let http = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .with_context(|| {
            format!(
                "bind HTTP to {} (set http.addr or SK8_HTTP_ADDR)",
                config.http.addr
            )
        })?;
    let grpc = tokio::net::TcpListener::bind(config.gateway.addr)
        .await
        .with_context(|| {
            format!(
                "bind the Spark Connect gateway to {} (set gateway.addr or SK8_GATEWAY_ADDR)",
                config.gateway.addr
            )
        })?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let listeners = sk8::app::Listeners { http, grpc };
    let otlp_metrics = otel.as_ref().map(sk8::telemetry::Otel::metric_interval);
    let result = sk8::app::run(config, listeners, metrics, otlp_metrics, shutdown).await;
    if let Some(otel) = otel {
        otel.shutdown().await;
    }
    result
}

/// Cancels `token` on SIGTERM or SIGINT (Ctrl-C).
async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop sk8 with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    token.cancel();
}
