//! `fake-kube`: runs the fake API server for manual experiments.
//!
//! ```text
//! fake-kube --listen 127.0.0.1:8001 --kubeconfig /tmp/fake.kubeconfig
//! kubectl --kubeconfig /tmp/fake.kubeconfig get namespaces
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sk8_fake_kube::{OperatorOptions, Options, kubeconfig, serve};

#[derive(Parser)]
#[command(about = "An in-memory fake Kubernetes API server for sk8's tests")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8001")]
    listen: SocketAddr,
    /// Also write a kubeconfig for the server here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Events kept for watches resuming from a resourceVersion.
    #[arg(long, default_value_t = 1000)]
    history: usize,
    /// Seconds between BOOKMARK events on watches that allow them.
    #[arg(long, default_value_t = 5)]
    bookmark_seconds: u64,
    /// Run the fake Spark operator.
    #[arg(long)]
    operator: bool,
    /// The operator's delay between state transitions, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    step_ms: u64,
    /// Namespaces the operator acts in (repeat the flag); all when absent.
    #[arg(long = "operator-namespace")]
    operator_namespaces: Vec<String>,
    /// Run a real Spark Connect server as the driver of each SparkConnectServer application:
    /// the command, words split on spaces, `{ip}` and `{port}` replaced (for example
    /// "sail spark server --ip {ip} --port {port}").
    #[arg(long)]
    connect_server: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    if let Some(path) = &args.kubeconfig {
        std::fs::write(path, kubeconfig::kubeconfig(&url))?;
        println!("kubeconfig: {}", path.display());
    }
    println!("fake-kube listening on {url}");
    let operator = args.operator.then(|| OperatorOptions {
        step: Duration::from_millis(args.step_ms),
        namespaces: (!args.operator_namespaces.is_empty()).then_some(args.operator_namespaces),
        connect_server: args
            .connect_server
            .map(|command| command.split_whitespace().map(str::to_owned).collect()),
    });
    let options = Options {
        history_limit: args.history,
        bookmark_interval: Duration::from_secs(args.bookmark_seconds),
        operator,
    };
    serve(listener, options, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
