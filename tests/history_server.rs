//! sk8's run summaries agree with a real Spark History Server reading the same event logs.
//!
//! Real PySpark (`SK8_TEST_SPARK_HOME`) runs `tests/fixtures/eventlogs/job.py` through sk8's
//! local backend — it shuffles, spills (a low forced-spill threshold) and fails two tasks once
//! (a Python UDF raises on their first attempt; Spark retries them) — once with real executor
//! JVMs (`local-cluster[2,1,1024]`), where the first attempt of another task also kills its
//! executor (its tasks are lost, another executor is started), and once in local mode
//! (`local[*,4]`: local mode gives a task one attempt unless the master names more;
//! `spark.task.maxFailures` does not apply to it). One History Server from the same pyspark package reads the event log directory both
//! daemons write to. For each run: the application is served at the History Server link sk8
//! gives the attempt, and its REST API (`/allexecutors`, `/stages`) shows the same executors,
//! tasks and failed tasks as sk8's summary, and task time, peak memory, spill and shuffle
//! within 1 %.
//!
//! Only the master differs between the runs, and it is a daemon's setting
//! (`backend.local.master`): hence two daemons, started side by side.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Engine, Options, Spark, TestApp};
use serde_json::{Value, json};

/// Two Spark applications at once (one with three JVMs) on two busy cores.
const SPARK_WAIT: Duration = Duration::from_secs(540);
/// A History Server JVM start.
const SERVER_START: Duration = Duration::from_secs(120);
/// Until the History Server has listed and replayed a finished log.
const SERVER_REPLAY: Duration = Duration::from_secs(120);
const RECORD_WAIT: Duration = Duration::from_secs(120);

/// The real History Server of the pyspark package, killed when the test ends.
struct HistoryServer {
    child: Child,
    url: String,
    log: PathBuf,
}

impl HistoryServer {
    /// Starts it on a port of its choosing over `events`, rescanning every second.
    fn start(events: &Path, work: &Path) -> HistoryServer {
        let home = common::spark_home();
        let properties = work.join("history-server.conf");
        std::fs::write(
            &properties,
            format!(
                "spark.history.fs.logDirectory=file://{}\n\
                 spark.history.fs.update.interval=1s\n\
                 spark.history.ui.port=0\n",
                events.display()
            ),
        )
        .expect("write the History Server's properties");
        let log = work.join("history-server.log");
        let out = std::fs::File::create(&log).expect("the History Server's log file");
        let mut command = Command::new(home.join("bin/spark-class"));
        command
            .arg("org.apache.spark.deploy.history.HistoryServer")
            .arg("--properties-file")
            .arg(&properties)
            .env("SPARK_HOME", &home)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("share the log file"))
            .stderr(out);
        common::die_with_test(&mut command, libc::SIGKILL);
        let child = command.spawn().expect("start spark-class HistoryServer");
        let mut server = HistoryServer {
            child,
            url: String::new(),
            log,
        };
        server.url = server.wait_for_port();
        server
    }

    /// The URL it announces (`Bound HistoryServer to 0.0.0.0, and started at http://h:PORT`).
    fn wait_for_port(&mut self) -> String {
        let deadline = Instant::now() + SERVER_START;
        loop {
            let log = self.log_text();
            if let Some(port) = log
                .lines()
                .find_map(|line| line.split_once("Bound HistoryServer to "))
                .and_then(|(_, rest)| rest.rsplit(':').next())
                .and_then(|port| port.trim().parse::<u16>().ok())
            {
                return format!("http://127.0.0.1:{port}");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the History Server exited ({status}) before listening:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the History Server did not say where it listens within {SERVER_START:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for HistoryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_agree_with_the_history_server() {
    let work = tempfile::tempdir().expect("a temp dir");
    let events = work.path().join("events");
    std::fs::create_dir_all(&events).expect("the event log directory");
    let server = HistoryServer::start(&events, work.path());

    let kill_executor = json!({"SK8_KILL_EXECUTOR": "1"});
    let cluster = run_job(&server, &events, "local-cluster[2,1,1024]", kill_executor);
    let local = run_job(&server, &events, "local[*,4]", json!({}));
    let (cluster, local) = tokio::join!(cluster, local);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client");
    for (master, record) in [("local-cluster", &cluster), ("local", &local)] {
        let served = served_by(&http, &server, record, master).await;
        agree(&record["summary"], &served, master);
    }
    // Real executor JVMs: two executors besides the driver, one killed and replaced.
    let summary = &cluster["summary"];
    assert_eq!(summary["executors"]["added"], 3, "{cluster}");
    assert_eq!(summary["executors"]["removed"], 1, "{cluster}");
    let failures = summary["tasks"]["failures"].as_array().expect("failures");
    assert!(
        failures.iter().any(|f| f["kind"] == "ExecutorLostFailure"),
        "the killed executor's task: {cluster}"
    );
}

/// Runs job.py (with `env`) on a daemon whose local backend uses `master`; its recorded
/// attempt.
async fn run_job(server: &HistoryServer, events: &Path, master: &str, env: Value) -> Value {
    let mut options = Options::new(Engine::Sqlite);
    options.spark = Spark::Real;
    options.extra = json!({
        "backend": {"local": {"master": master}},
        "history": {
            "eventLogDir": format!("file://{}", events.display()),
            "serverUrl": server.url,
        },
    });
    let app = TestApp::spawn(options).await;
    let output = app.dir.path().join("output");
    let job = app.submit(&job_py(&output, env)).await;
    let id = job["id"].as_str().expect("a job id").to_owned();
    let done = app.wait_finished(&id, SPARK_WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{master}: {done}");
    recorded_attempt(&app, &id).await
}

fn job_py(output: &Path, env: Value) -> Value {
    let script = common::fixture("eventlogs/job.py");
    json!({
        "team": "feature-eng", "env": "dev", "name": "history-server-agreement",
        "mainApplicationFile": format!("local://{}", script.display()),
        "args": [output.display().to_string()],
        "driver": {"memory": "1g"},
        // Under local-cluster[2,1,1024]: one 1-core executor on each worker.
        "executor": {"instances": 2, "cores": 1, "memory": "1g"},
        "envVars": env,
        "sparkConf": {
            // Every sort and shuffle buffer spills after 2000 rows.
            "spark.shuffle.spill.numElementsForceSpillThreshold": "2000",
            "spark.sql.adaptive.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.task.maxFailures": "4",
            "spark.ui.enabled": "false",
        },
    })
}

/// `GET /v1/jobs/{id}/attempts/1` once its record is gathered (bounded wait).
async fn recorded_attempt(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + RECORD_WAIT;
    loop {
        let (status, record) = app.get(&format!("/v1/jobs/{id}/attempts/1")).await;
        assert_eq!(status, 200, "{record}");
        if record["record"] == "recorded" {
            assert_eq!(record["summary"]["status"], "complete", "{record}");
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "attempt 1 of {id} was not recorded within {RECORD_WAIT:?}: {record}\n{}",
            common::tail(&app.logs(), 4000)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the History Server serves of the attempt's application, found through the link sk8
/// gives it: `{application, executors, stages}` from its REST API.
async fn served_by(
    http: &reqwest::Client,
    server: &HistoryServer,
    record: &Value,
    master: &str,
) -> Value {
    let app_id = record["appId"].as_str().expect("an application id");
    let link = record["links"]["historyServer"]
        .as_str()
        .unwrap_or_else(|| panic!("{master}: no History Server link: {record}"));
    let base = link
        .strip_suffix(&format!("history/{app_id}/"))
        .unwrap_or_else(|| panic!("{master}: a link ending in history/{app_id}/: {link}"));
    assert_eq!(base.trim_end_matches('/'), server.url, "{master}: {link}");
    let api = format!("{base}api/v1/applications/{app_id}");
    let deadline = Instant::now() + SERVER_REPLAY;
    let application = loop {
        let answer = get_json(http, &api).await;
        if let Ok(application) = &answer
            && application["attempts"][0]["completed"] == true
        {
            break application.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{master}: the History Server did not serve {app_id} as completed within \
             {SERVER_REPLAY:?}: {answer:?}\n{}",
            common::tail(&server.log_text(), 4000)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let page = http
        .get(link)
        .send()
        .await
        .expect("GET the History Server link");
    assert_eq!(page.status(), 200, "{master}: {link}");
    let rest = |path: &str| {
        let url = format!("{api}/{path}");
        async move {
            get_json(http, &url)
                .await
                .unwrap_or_else(|e| panic!("{master}: GET {url}: {e}"))
        }
    };
    json!({
        "application": application,
        "executors": rest("allexecutors").await,
        "stages": rest("stages?details=true").await,
    })
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
}

/// sk8's summary against what the History Server serves.
fn agree(summary: &Value, served: &Value, master: &str) {
    let all = served["executors"]
        .as_array()
        .expect("allexecutors: a list");
    // The executors that ran tasks registered cores; the driver of a cluster did not (in local
    // mode the driver is the one executor, with cores).
    let executors: Vec<&Value> = all.iter().filter(|e| u(&e["totalCores"]) > 0).collect();
    let driver = all
        .iter()
        .find(|e| e["id"] == "driver")
        .expect("the driver");
    // Stages that ran (the History Server also lists the skipped ones).
    let stages: Vec<&Value> = served["stages"]
        .as_array()
        .expect("stages: a list")
        .iter()
        .filter(|s| s["status"] == "COMPLETE" || s["status"] == "FAILED")
        .collect();
    let stage_sum = |field: &str| stages.iter().map(|s| u(&s[field])).sum::<u64>();
    let exec_sum = |field: &str| executors.iter().map(|e| u(&e[field])).sum::<u64>();
    let exec_peak = |metric: &str| {
        executors
            .iter()
            .map(|e| peak_of(e, metric))
            .max()
            .unwrap_or(0)
    };
    let context = format!("{master}\nsk8: {summary}\nHistory Server: {served}");

    // The scenario happened: shuffles, spills and retried failures.
    let tasks = &summary["tasks"];
    assert!(u(&tasks["failed"]) >= 1, "no failed task: {context}");
    assert!(
        u(&summary["io"]["diskSpilledBytes"]) > 0,
        "no spill: {context}"
    );
    assert!(
        u(&summary["io"]["shuffleWriteBytes"]) > 0,
        "no shuffle: {context}"
    );

    assert_eq!(
        summary["appId"], served["application"]["id"],
        "application: {context}"
    );
    // Counts: equal.
    let executors_added = u(&summary["executors"]["added"]);
    assert_eq!(
        executors_added,
        executors.len() as u64,
        "executors: {context}"
    );
    let removed = executors.iter().filter(|e| e["isActive"] == false).count() as u64;
    assert_eq!(
        u(&summary["executors"]["removed"]),
        removed,
        "removed executors: {context}"
    );
    let hs_total =
        stage_sum("numCompleteTasks") + stage_sum("numFailedTasks") + stage_sum("numKilledTasks");
    assert_eq!(u(&tasks["total"]), hs_total, "tasks: {context}");
    assert_eq!(
        u(&tasks["failed"]),
        stage_sum("numFailedTasks"),
        "failed tasks: {context}"
    );
    assert_eq!(
        u(&tasks["killed"]),
        stage_sum("numKilledTasks"),
        "killed tasks: {context}"
    );
    // Not `/allexecutors`' failedTasks: a task lost with its executor ends after the executor's
    // removal, when the History Server no longer counts it against any executor.
    assert_eq!(
        u(&summary["stages"]["total"]),
        stages.len() as u64,
        "stage attempts: {context}"
    );

    // Times and sizes: within 1 %.
    let near = |what: &str, ours: u64, theirs: u64| {
        let tolerance = theirs.max(ours) as f64 * 0.01;
        assert!(
            (ours as f64 - theirs as f64).abs() <= tolerance,
            "{what}: sk8 {ours}, History Server {theirs}: {context}"
        );
    };
    // Task time per stage and executor: the driver's `totalDuration` in `/allexecutors` is the
    // application's uptime (Spark 4), so in local mode, where the driver runs the tasks, only
    // the stages' executor summaries hold the tasks' durations.
    let task_time = stages
        .iter()
        .flat_map(|s| s["executorSummary"].as_object().into_iter().flatten())
        .map(|(_, e)| u(&e["taskTime"]))
        .sum();
    near("task time", u(&tasks["taskTimeMs"]), task_time);
    near("GC time", u(&tasks["gcTimeMs"]), stage_sum("jvmGcTime"));
    near(
        "run time",
        u(&tasks["runTimeMs"]),
        stage_sum("executorRunTime"),
    );
    let io = &summary["io"];
    near(
        "memory spill",
        u(&io["memorySpilledBytes"]),
        stage_sum("memoryBytesSpilled"),
    );
    near(
        "disk spill",
        u(&io["diskSpilledBytes"]),
        stage_sum("diskBytesSpilled"),
    );
    near(
        "shuffle read",
        u(&io["shuffleReadBytes"]),
        exec_sum("totalShuffleRead"),
    );
    near(
        "shuffle write",
        u(&io["shuffleWriteBytes"]),
        exec_sum("totalShuffleWrite"),
    );
    near("input", u(&io["inputBytes"]), exec_sum("totalInputBytes"));
    let largest = stages
        .iter()
        .map(|s| u(&s["shuffleReadBytes"]).max(u(&s["shuffleWriteBytes"])))
        .max()
        .unwrap_or(0);
    near(
        "largest stage shuffle",
        u(&summary["stages"]["largestShuffleBytes"]),
        largest,
    );
    let memory = &summary["memory"];
    near(
        "executor JVM heap peak",
        u(&memory["executorJvmHeap"]["max"]),
        exec_peak("JVMHeapMemory"),
    );
    near(
        "executor JVM off-heap peak",
        u(&memory["executorJvmOffHeap"]["max"]),
        exec_peak("JVMOffHeapMemory"),
    );
    near(
        "executor process-tree RSS peak",
        u(&memory["executorProcessTreeRss"]["max"]),
        exec_peak("ProcessTreeRSS"),
    );
    near(
        "driver JVM heap peak",
        u(&memory["driverJvmHeap"]),
        peak_of(driver, "JVMHeapMemory"),
    );
    near(
        "driver process-tree RSS peak",
        u(&memory["driverProcessTreeRss"]),
        peak_of(driver, "ProcessTreeRSS"),
    );
}

/// An executor's peak of `metric` (`ProcessTreeRSS`: its JVM, Python and other RSS peaks).
fn peak_of(executor: &Value, metric: &str) -> u64 {
    let peaks = &executor["peakMemoryMetrics"];
    if metric == "ProcessTreeRSS" {
        return [
            "ProcessTreeJVMRSSMemory",
            "ProcessTreePythonRSSMemory",
            "ProcessTreeOtherRSSMemory",
        ]
        .iter()
        .map(|m| u(&peaks[m]))
        .sum();
    }
    u(&peaks[metric])
}

fn u(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}
