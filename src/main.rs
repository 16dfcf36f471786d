//! The `sk8` binary: parse arguments, then either run the daemon (config → telemetry →
//! `app::run`) or act as a client of a running daemon.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sk8::cli::{Cli, Command};
use sk8::config::Config;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            ref config,
            check_config: true,
        } => check_config(config.as_deref()),
        Command::Serve { ref config, .. } => match serve(config.as_deref()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("sk8: {err:#}");
                ExitCode::FAILURE
            }
        },
        _ => sk8::cli::run_client(cli).await,
    }
}

/// `sk8 serve --check-config`: the configuration as it would be used, or why it is invalid.
fn check_config(config_file: Option<&std::path::Path>) -> ExitCode {
    match Config::load(config_file) {
        Ok(config) => {
            println!("configuration is valid:\n{config:#?}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("sk8: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    // Validated before anything is bound or started.
    let config = Config::load(config_file)?;
    sk8::telemetry::init_tracing(&config.log);
    match config_file {
        Some(path) => {
            tracing::info!(file = %path.display(), "config: loaded from file and SK8_* variables")
        }
        None => tracing::info!("config: embedded defaults and SK8_* variables (no --config)"),
    }
    let metrics = sk8::telemetry::init_metrics()?;
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
    sk8::app::run(config, listeners, metrics, shutdown).await
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
