//! sk8's object-store layer (`sk8::history::objects`) against a real S3-compatible server:
//! moto's server mode, from the venv of `scripts/setup-s3.sh` (`SK8_TEST_S3_VENV`), started by
//! the test on a free port and killed with it: reads, writes, multipart uploads, listings,
//! deletes, errors, an event log summarized from S3, and the daemon archiving logs there.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use sk8::history::{Location, Objects, ObjectsError, StoreOptions, SummaryStatus, summarize};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A moto S3 server; its process group dies with it.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn s3_venv() -> PathBuf {
    std::env::var_os("SK8_TEST_S3_VENV")
        .map(PathBuf::from)
        .filter(|venv| venv.join("bin/moto_server").is_file())
        .unwrap_or_else(|| {
            panic!(
                "the object-store tests need moto: run scripts/test.sh, or set SK8_TEST_S3_VENV \
                 to the venv scripts/setup-s3.sh prints"
            )
        })
}

impl S3Server {
    async fn start() -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(s3_venv().join("bin/moto_server"));
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // Its own group is out of reach of the test runner's kill: it dies with the test.
        common::die_with_test(&mut command, libc::SIGKILL);
        let child = command.spawn().expect("start moto_server");
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        while client.get(&server.endpoint).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port} within {START_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// Creates `bucket` (moto's S3 takes unsigned requests).
    async fn bucket(&self, bucket: &str) {
        let status = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("create the bucket")
            .status();
        assert!(status.is_success(), "creating bucket {bucket}: {status}");
    }

    fn options(&self) -> StoreOptions {
        StoreOptions {
            endpoint: Some(self.endpoint.clone()),
            allow_http: true,
            options: [
                ("aws_access_key_id", "test"),
                ("aws_secret_access_key", "test"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..StoreOptions::default()
        }
    }
}

#[tokio::test]
async fn s3_round_trip_through_a_real_server() {
    let server = S3Server::start().await;
    server.bucket("history").await;
    let location = Location::parse("s3://history/sk8/events").unwrap();
    assert_eq!(location.spark_url().unwrap(), "s3a://history/sk8/events");
    let objects = Objects::open(&location, &server.options()).unwrap();

    objects
        .put(
            "eventlog_v2_app-1/events_1_app-1",
            Bytes::from_static(b"{}\n"),
        )
        .await
        .unwrap();
    // Larger than one part: written as a multipart upload, never whole in memory.
    let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let written = objects
        .put_reader("attempts/j1/1/driver.log", &big[..])
        .await
        .unwrap();
    assert_eq!(written, big.len() as u64);
    let read: Vec<Bytes> = objects
        .get("attempts/j1/1/driver.log")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        read.concat(),
        big,
        "the multipart upload reads back byte for byte"
    );
    assert_eq!(
        objects.head("attempts/j1/1/driver.log").await.unwrap().size,
        big.len() as u64
    );

    let listing = objects.list_dir("").await.unwrap();
    assert_eq!(listing.dirs, ["attempts", "eventlog_v2_app-1"]);
    let mut keys: Vec<String> = objects
        .list("")
        .map_ok(|e| e.key)
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attempts/j1/1/driver.log",
            "eventlog_v2_app-1/events_1_app-1"
        ]
    );

    // The same bucket seen from its root: keys are relative to the location.
    let root = Objects::open(&Location::parse("s3://history").unwrap(), &server.options()).unwrap();
    assert_eq!(
        &root
            .get_bytes("sk8/events/eventlog_v2_app-1/events_1_app-1")
            .await
            .unwrap()[..],
        b"{}\n"
    );

    assert!(
        objects
            .get("attempts/j1/2/driver.log")
            .await
            .is_err_and(|e| e.is_not_found())
    );
    assert_eq!(objects.delete_prefix("attempts/j1").await.unwrap(), 1);
    assert!(
        objects
            .head("attempts/j1/1/driver.log")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        objects
            .list("")
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn store_trouble_is_a_typed_error() {
    let server = S3Server::start().await;
    let missing_bucket = Objects::open(
        &Location::parse("s3://no-such-bucket").unwrap(),
        &server.options(),
    )
    .unwrap();
    let error = missing_bucket.list_dir("").await.unwrap_err();
    assert!(error.to_string().contains("NoSuchBucket"), "{error}");

    // Nobody listens there: retried briefly, then a store error (not a panic, not "not found").
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = StoreOptions {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..server.options()
    };
    let down = Objects::open(&Location::parse("s3://history").unwrap(), &options).unwrap();
    let started = Instant::now();
    let error = down.head("x").await.unwrap_err();
    assert!(matches!(error, ObjectsError::Store(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "gave up after {:?}",
        started.elapsed()
    );

    // https only, unless allowed.
    let strict = StoreOptions {
        allow_http: false,
        ..server.options()
    };
    let objects = Objects::open(&Location::parse("s3://history").unwrap(), &strict).unwrap();
    assert!(objects.head("x").await.is_err());
}

/// An event log in S3 is found and summarized as the same log on disk is.
#[tokio::test]
async fn summarizes_an_event_log_read_from_s3() {
    let server = S3Server::start().await;
    server.bucket("events").await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eventlogs");
    let local = Objects::open(
        &Location::local(fixtures.join("zstd")),
        &StoreOptions::default(),
    )
    .unwrap();
    let s3 = Objects::open(
        &Location::parse("s3://events/spark").unwrap(),
        &server.options(),
    )
    .unwrap();
    let files: Vec<_> = local.list("").try_collect().await.unwrap();
    for file in &files {
        s3.put(&file.key, local.get_bytes(&file.key).await.unwrap())
            .await
            .unwrap();
    }
    let dir = files[0].key.split('/').next().unwrap();
    let app = dir.strip_prefix("eventlog_v2_").unwrap();

    let from_disk = summarize(&local, app).await;
    let from_s3 = summarize(&s3, app).await;
    assert_eq!(
        from_s3.status,
        SummaryStatus::Complete,
        "{:?}",
        from_s3.reason
    );
    assert_eq!(from_s3, from_disk);
    let missing = summarize(&s3, "local-0").await;
    assert!(
        missing
            .reason
            .unwrap()
            .starts_with("no event log for local-0 in s3://events/spark")
    );
}

/// The whole path through the daemon with `history.eventLogDir` on S3: the driver log is
/// archived there and served back from there after the run, and the attempt's event log is
/// summarized from there. (Spark itself cannot write to `s3a://` here: the pyspark package
/// has no hadoop-aws, and Maven Central is out of reach; the test puts the log of a real Spark
/// run where Spark would have written it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_archives_logs_on_s3_and_serves_them_back() {
    let server = S3Server::start().await;
    server.bucket("runs").await;
    let s3 = Objects::open(
        &Location::parse("s3://runs/history").unwrap(),
        &server.options(),
    )
    .unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eventlogs/zstd");
    let local = Objects::open(&Location::local(&fixture), &StoreOptions::default()).unwrap();
    let files: Vec<_> = local.list("").try_collect().await.unwrap();
    for file in &files {
        let bytes = local.get_bytes(&file.key).await.unwrap();
        s3.put(&file.key, bytes).await.unwrap();
    }

    let mut options = common::Options::new(common::Engine::Sqlite);
    options.extra = serde_json::json!({"history": {
        "eventLogDir": "s3://runs/history",
        "store": {"endpoint": server.endpoint, "allowHttp": true, "options": {
            "aws_access_key_id": "test", "aws_secret_access_key": "test"}},
    }});
    let app = common::TestApp::spawn(options).await;
    let job = app
        .submit(&common::fake_job("growth", "on-s3", "eventlog"))
        .await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(
        app.wait_finished(id, START_TIMEOUT).await["state"],
        "SUCCEEDED"
    );
    let record = app.wait_recorded(id, START_TIMEOUT).await;
    let key = format!("sk8/{id}/1/driver.log");
    assert_eq!(record["driverLog"], key.as_str(), "{record}");
    let archived = s3.get_bytes(&key).await.expect("the driver log is on S3");
    assert!(String::from_utf8_lossy(&archived).contains("pi is roughly"));
    assert_eq!(
        record["summary"]["status"], "complete",
        "read from S3: {record}"
    );
    assert_eq!(record["summary"]["tasks"]["total"], 20, "{record}");
    let (status, served) = app.text(&format!("/v1/jobs/{id}/logs?attempt=1")).await;
    assert_eq!(status, 200);
    assert!(served.contains("pi is roughly"), "{served}");
}
