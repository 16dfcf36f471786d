//! Raw capacity of the Spark Connect gateway, with an upstream faster than any Spark server: a
//! synthetic Connect server that answers every ExecutePlan with `--mib-per-rpc` MiB of
//! `--message-kib` KiB messages, as fast as it can write them. The same streams are read
//! directly from it, through sk8's gateway, and through nginx `grpc_pass`; reported: GB/s for
//! each, and the proxy's CPU seconds per GB (sk8's process; nginx's master and workers).
//!
//! The synthetic server is this very binary: sk8's local backend starts it as a session's
//! server, through `backend.local.sail` (`<it> spark server --ip IP --port PORT`).
//!
//! Run: `cargo bench --bench gateway_capacity -- [--seconds S] [--streams N] [--message-kib K]
//! [--mib-per-rpc M]` (needs Debian's `nginx`). Results: docs/benchmarks.md.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{BufMut, Bytes, BytesMut};
use common::{Daemon, round, send};
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

const EXECUTE_PLAN: &str = "/spark.connect.SparkConnectService/ExecutePlan";

#[derive(Clone, Copy)]
struct Args {
    seconds: u64,
    streams: usize,
    message_kib: usize,
    mib_per_rpc: usize,
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("spark") {
        // Started by sk8 as a session's server.
        return tokio::runtime::Runtime::new()?.block_on(synthetic_server(&argv));
    }
    let args = parse_args(&argv)?;
    // sk8 passes this on to the synthetic server it starts. SAFETY: no other thread yet.
    let shape = format!(
        "SK8_BENCH_MESSAGE_KIB={},SK8_BENCH_MIB_PER_RPC={}",
        args.message_kib, args.mib_per_rpc
    );
    unsafe { std::env::set_var("SK8_BENCH_DAEMON_ENV", shape) };
    tokio::runtime::Runtime::new()?.block_on(bench(args))
}

fn parse_args(argv: &[String]) -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 10,
        streams: 4,
        message_kib: 1024,
        mib_per_rpc: 256,
    };
    let mut it = argv.iter().filter(|a| *a != "--bench");
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse()?,
            "--streams" => args.streams = value.parse()?,
            "--message-kib" => args.message_kib = value.parse()?,
            "--mib-per-rpc" => args.mib_per_rpc = value.parse()?,
            _ => bail!(
                "unknown argument {flag}: use --seconds, --streams, --message-kib, --mib-per-rpc"
            ),
        }
    }
    Ok(args)
}

/// `spark server --ip IP --port PORT`: serves ExecutePlan answers of
/// `SK8_BENCH_MIB_PER_RPC` MiB in `SK8_BENCH_MESSAGE_KIB` KiB messages, until killed.
async fn synthetic_server(argv: &[String]) -> anyhow::Result<()> {
    let flag = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .with_context(|| format!("{name} missing"))
    };
    let address = format!("{}:{}", flag("--ip")?, flag("--port")?);
    let setting = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let message = grpc_frame(&vec![7u8; setting("SK8_BENCH_MESSAGE_KIB", 1024) << 10]);
    let messages = (setting("SK8_BENCH_MIB_PER_RPC", 256) << 20) / (message.len() - 5);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let message = message.clone();
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(move |_request| {
                let message = message.clone();
                async move { Ok::<_, Infallible>(stream_of(message, messages)) }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .adaptive_window(true)
                .max_frame_size(1 << 20)
                .serve_connection(TokioIo::new(tcp), answer)
                .await;
        });
    }
}

/// A gRPC response: `count` copies of `message`, then an OK status.
fn stream_of(
    message: Bytes,
    count: usize,
) -> hyper::Response<StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>>>> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let data = futures::stream::iter(0..count).map(move |_| Ok(Frame::data(message.clone())));
    let end = futures::stream::once(async move { Ok(Frame::trailers(trailers)) });
    let body = StreamBody::new(data.chain(end));
    hyper::Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .expect("a valid response")
}

fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 5);
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.extend_from_slice(message);
    out.freeze()
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    let daemon = Daemon::start(json!({
        "backend": {"kind": "local", "local": {"connectServer": "sail", "sail": me}},
    }))
    .await?;
    let (session, upstream) = ready_session(&daemon).await?;
    let nginx = Nginx::start(&upstream)?;
    let targets = [
        ("direct", upstream.clone(), None),
        ("sk8", daemon.grpc.clone(), Some(daemon.pid)),
        ("nginx", nginx.address.clone(), Some(nginx.master)),
    ];
    let mut rows = Vec::new();
    for (name, address, proxy) in targets {
        // Warm up (connections, windows), then measure.
        read_for(&address, &session, args, Duration::from_secs(2)).await?;
        let cpu_before = proxy.map(cpu_seconds).transpose()?;
        let started = Instant::now();
        let bytes = read_for(&address, &session, args, Duration::from_secs(args.seconds)).await?;
        let seconds = started.elapsed().as_secs_f64();
        let gb = bytes as f64 / 1e9;
        let cpu = match (proxy, cpu_before) {
            (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
            _ => None,
        };
        let row = json!({
            "target": name,
            "gb_per_s": round(gb / seconds),
            "proxy_cpu_s_per_gb": cpu.map(|c| round(c / gb)),
            "gb": round(gb),
        });
        eprintln!("{row}");
        rows.push(row);
    }
    drop(nginx);
    daemon.stop().await?;
    println!(
        "{}",
        json!({"streams": args.streams, "message_kib": args.message_kib, "results": rows})
    );
    Ok(())
}

/// Creates a session and waits for its (synthetic) server: the session id and endpoint.
async fn ready_session(daemon: &Daemon) -> anyhow::Result<(String, String)> {
    let http = reqwest::Client::new();
    let body = json!({"team": "bench", "env": "dev", "name": "capacity"});
    let created: Value = serde_json::from_slice(
        &send(
            http.post(format!("{}/v1/sessions", daemon.base))
                .json(&body),
            201,
        )
        .await?,
    )?;
    let id = created["id"].as_str().context("no session id")?.to_owned();
    for _ in 0..600 {
        let url = format!("{}/v1/sessions/{id}", daemon.base);
        let session: Value = serde_json::from_slice(&send(http.get(url), 200).await?)?;
        if let (Some("READY"), Some(endpoint)) =
            (session["state"].as_str(), session["endpoint"].as_str())
        {
            return Ok((id, endpoint.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the synthetic session never became READY")
}

/// Runs `streams` ExecutePlan loops against `address` for `duration`; the bytes read.
async fn read_for(
    address: &str,
    session: &str,
    args: Args,
    duration: Duration,
) -> anyhow::Result<u64> {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .http2_adaptive_window(true)
        .http2_max_frame_size(1 << 20)
        .build_http();
    let total = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let loops = (0..args.streams).map(|_| {
        let (client, total) = (client.clone(), total.clone());
        let uri: http::Uri = format!("http://{address}{EXECUTE_PLAN}").parse().unwrap();
        let session = session.to_owned();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                let request = http::Request::post(uri.clone())
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .header("x-sk8-session", &session)
                    .body(Full::new(grpc_frame(b"")))?;
                let mut body = client.request(request).await?.into_body();
                while let Some(frame) = body.frame().await {
                    if let Some(data) = frame?.data_ref() {
                        total.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
            anyhow::Ok(())
        })
    });
    for task in futures::future::join_all(loops).await {
        task??;
    }
    Ok(total.load(Ordering::Relaxed))
}

/// CPU seconds (user + system) of a process and its direct children (nginx's workers).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Some(stat) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| std::fs::read_to_string(format!("/proc/{n}/stat")).ok())
        else {
            continue;
        };
        // Fields after the command (which may hold spaces): state, ppid, …, utime (14), stime.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, r)| r.split_whitespace().collect());
        let this: u32 = name.to_str().unwrap_or_default().parse().unwrap_or(0);
        let parent: u32 = rest.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if this == pid || parent == pid {
            let field = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok());
            ticks += field(11).unwrap_or(0) + field(12).unwrap_or(0);
        }
    }
    // The kernel's USER_HZ, 100 on Linux.
    Ok(ticks as f64 / 100.0)
}

/// nginx as a plaintext HTTP/2 gRPC proxy in front of `upstream`, stopped when dropped.
struct Nginx {
    address: String,
    master: u32,
    /// Its config, pid file and temp folders, removed after it stops.
    _prefix: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: &str) -> anyhow::Result<Self> {
        let prefix = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address = format!("127.0.0.1:{port}");
        let dir = prefix.path().display();
        let config = format!(
            "worker_processes auto;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n\
               proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n\
               uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
               upstream connect {{ server {upstream}; keepalive 16; }}\n\
               server {{\n    listen {address} http2;\n    client_max_body_size 0;\n\
                 grpc_read_timeout 1h;\n    location / {{ grpc_pass grpc://connect; }}\n  }}\n}}\n"
        );
        let path = prefix.path().join("nginx.conf");
        std::fs::write(&path, config)?;
        let status = std::process::Command::new("nginx")
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&path)
            .status()
            .context("run nginx (apt-get install nginx)")?;
        if !status.success() {
            bail!("nginx did not start: {status}");
        }
        std::thread::sleep(Duration::from_millis(300));
        let master = std::fs::read_to_string(prefix.path().join("nginx.pid"))?
            .trim()
            .parse()?;
        Ok(Nginx {
            address,
            master,
            _prefix: prefix,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.master.to_string())
            .status();
        // Its workers finish their connections and exit; give them a moment.
        std::thread::sleep(Duration::from_millis(200));
    }
}
