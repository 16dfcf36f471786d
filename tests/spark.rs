//! Real PySpark jobs on the local backend (`spark-submit --master local[*]` from the pyspark
//! that `scripts/test.sh` installs): the sample job to SUCCEEDED through the CLI, a failing job
//! to FAILED with its Python exception as the reason, a cancelled job to CANCELLED with no
//! process left behind, and a missing Spark explained.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Engine, Options, Spark, TestApp};
use serde_json::{Value, json};

/// A JVM start plus the job, on two busy cores.
const SPARK_WAIT: Duration = Duration::from_secs(240);

async fn spark_app() -> TestApp {
    let mut options = Options::new(Engine::Sqlite);
    options.spark = Spark::Real;
    TestApp::spawn(options).await
}

fn example_job(name: &str, script: &str, args: &[&str]) -> Value {
    let file = common::repo_file(&format!("examples/jobs/{script}"));
    json!({
        "team": "feature-eng", "env": "dev", "name": name,
        "mainApplicationFile": format!("local://{}", file.display()),
        "args": args,
        "driver": {"memory": "1g"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_job_succeeds_through_the_cli() {
    let app = spark_app().await;
    let mut submit = Command::new(env!("CARGO_BIN_EXE_sk8"));
    submit
        .args(["--server", &app.base, "submit", "--wait"])
        .arg(common::repo_file("examples/pi.yaml"));
    let output = common::output_of(submit, SPARK_WAIT, "sk8 submit --wait examples/pi.yaml");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("RUNNING") && stderr.contains("SUCCEEDED"),
        "{stderr}"
    );
    let id = stdout
        .lines()
        .find_map(|line| line.split_once(" finished: ").map(|(_, rest)| rest))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("`NAME finished: ID … SUCCEEDED` expected: {stdout}"));

    let job = app.job(id).await;
    assert_eq!(job["state"], "SUCCEEDED");
    assert!(
        job["sparkUiUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "the driver's UI address comes from the driver log: {job}"
    );
    assert!(
        job["links"]["sparkUi"].is_null(),
        "no live UI link once the job ended: {job}"
    );
    let (_, log) = app.text(&format!("/v1/jobs/{id}/logs")).await;
    assert!(log.contains("pi is roughly 3.1"), "{log}");

    // The run record: the event log Spark wrote, summarized by sk8.
    let record = recorded_attempt(&app, id, 1).await;
    let summary = &record["summary"];
    assert_eq!(summary["status"], "complete", "{record}");
    assert!(summary["tasks"]["total"].as_u64() > Some(0), "{record}");
    assert_eq!(summary["tasks"]["failed"], 0, "{record}");
    assert!(
        record["appId"].as_str().is_some_and(|a| !a.is_empty()),
        "{record}"
    );
    let (_, archived) = app.text(&format!("/v1/jobs/{id}/logs?attempt=1")).await;
    assert!(archived.contains("pi is roughly 3.1"), "{archived}");
}

/// `GET /v1/jobs/{id}/attempts/{n}` once its record is gathered (bounded wait).
async fn recorded_attempt(app: &TestApp, id: &str, attempt: u32) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, record) = app.get(&format!("/v1/jobs/{id}/attempts/{attempt}")).await;
        assert_eq!(status, 200, "{record}");
        if record["record"] == "recorded" {
            return record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "attempt {attempt} of {id} was not recorded within 120 s: {record}\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_job_reports_its_python_exception() {
    let app = spark_app().await;
    let job = app
        .submit(&example_job("always-fails", "fail.py", &[]))
        .await;
    let id = job["id"].as_str().unwrap();
    let done = app.wait_finished(id, SPARK_WAIT).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    let reason = done["failureReason"].as_str().unwrap();
    assert!(
        reason.contains("ValueError: input check failed: expected 11 rows, found 10"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_job_leaves_no_process_behind() {
    let app = spark_app().await;
    let job = app
        .submit(&example_job("sleeper", "sleep.py", &["600"]))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for_log(&app, &id, "sleeping 600s").await;
    assert!(
        !job_processes(&id).is_empty(),
        "the JVM and Python driver run"
    );

    let (status, _) = app.cancel(&id).await;
    assert_eq!(status, 200);
    let done = app.wait_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "CANCELLED", "{done}");
    assert_eq!(
        job_processes(&id),
        Vec::<u32>::new(),
        "processes left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_spark_fails_the_job_with_install_advice() {
    let mut options = Options::new(Engine::Sqlite);
    options.spark = Spark::Missing;
    let app = TestApp::spawn(options).await;
    let job = app.submit(&example_job("no-spark", "pi.py", &[])).await;
    let done = app
        .wait_finished(job["id"].as_str().unwrap(), SPARK_WAIT)
        .await;
    assert_eq!(done["state"], "FAILED");
    assert_eq!(done["failureClass"], "configuration");
    let reason = done["failureReason"].as_str().unwrap();
    // The exact commands that install a Spark where sk8 finds it by itself.
    for says in [
        "`scripts/setup-spark.sh`",
        "/.cache/sk8/spark-venv/bin/pip install pyspark==",
    ] {
        assert!(reason.contains(says), "{says}: {reason}");
    }
}

async fn wait_for_log(app: &TestApp, id: &str, needle: &str) {
    let deadline = std::time::Instant::now() + SPARK_WAIT;
    loop {
        let (status, log) = app.text(&format!("/v1/jobs/{id}/logs")).await;
        if status == 200 && log.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in: {log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every live process that belongs to the job: the local backend exports `SK8_JOB_ID` to
/// spark-submit, and the JVM and Python workers inherit it whatever their process group.
fn job_processes(id: &str) -> Vec<u32> {
    let marker = format!("SK8_JOB_ID={id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'));
            !zombie && environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
        })
        .collect()
}

/// The live Spark UI through sk8 (`links.sparkUi`): a browser-like client, with a token of the
/// job's team, loads its pages and the links on them under the prefix; a caller of another
/// team is refused; once the job has ended the UI answers 409 saying where to look instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_spark_ui_is_served_through_sk8_for_its_team_only() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    common::write_tokens(
        &tokens,
        &[
            ("fe-token", "ana", &["feature-eng"], "member"),
            ("pay-token", "bo", &["payments"], "member"),
        ],
    );
    let mut options = Options::new(Engine::Sqlite);
    options.spark = Spark::Real;
    options.extra = json!({"auth": {"mode": "tokens", "tokensFile": tokens}});
    let app = TestApp::spawn(options).await;
    let browser = browser_with("fe-token");
    let submitted: Value = browser
        .post(app.url("/v1/jobs"))
        .json(&example_job("ui-sleeper", "sleep.py", &["300"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = submitted["id"].as_str().expect("a job id").to_owned();

    let link = spark_ui_link(&app, &browser, &id).await;
    assert_eq!(link, format!("/v1/jobs/{id}/ui/"));
    let prefix = format!("/v1/jobs/{id}/ui/");
    let page = jobs_page(&app, &browser, &link, &prefix).await;
    let links = links_under(&page, &prefix);
    assert!(links.len() >= 5, "the page links under {prefix}: {links:?}");
    for link in links.iter().take(25) {
        let response = browser.get(app.url(link)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{link} loads through sk8");
    }

    let other = browser_with("pay-token");
    let refused = other.get(app.url(&link)).send().await.unwrap();
    assert_eq!(refused.status(), 404, "another team does not see the job");
    let anonymous = reqwest::Client::new()
        .get(app.url(&link))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let cancel = browser
        .post(app.url(&format!("/v1/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success());
    let deadline = std::time::Instant::now() + SPARK_WAIT;
    loop {
        let ended = browser.get(app.url(&link)).send().await.unwrap();
        if ended.status() == 409 {
            let body: Value = ended.json().await.unwrap();
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("historyServer"), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the UI of cancelled job {id} still answered {} after {SPARK_WAIT:?}",
            ended.status()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The UI's start page through sk8, once Spark has finished starting its UI (before, it
/// answers "Spark is starting up", and 404 while its pages are being attached); redirects stay
/// under `prefix`.
async fn jobs_page(app: &TestApp, browser: &reqwest::Client, link: &str, prefix: &str) -> String {
    let deadline = std::time::Instant::now() + SPARK_WAIT;
    loop {
        let start = browser.get(app.url(link)).send().await.unwrap();
        let (status, url) = (start.status(), start.url().clone());
        let page = start.text().await.unwrap();
        if status == 200 && page.contains("Spark Jobs") {
            assert!(
                url.path().starts_with(prefix),
                "redirected within the prefix: {url}"
            );
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Spark UI did not show its jobs page within {SPARK_WAIT:?}: {status} at {url}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// An HTTP client that sends `token` with every request and follows redirects, as a browser
/// with a session would.
fn browser_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {token}").parse().unwrap();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `links.sparkUi` of job `id`, once its driver announced its UI (bounded wait).
async fn spark_ui_link(app: &TestApp, browser: &reqwest::Client, id: &str) -> String {
    let deadline = std::time::Instant::now() + SPARK_WAIT;
    loop {
        let job: Value = browser
            .get(app.url(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(link) = job["links"]["sparkUi"].as_str() {
            return link.to_owned();
        }
        assert!(
            ["QUEUED", "SUBMITTED", "RUNNING"].contains(&job["state"].as_str().unwrap_or_default()),
            "the job ended before its UI was seen: {job}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no Spark UI link within {SPARK_WAIT:?}: {job}\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The distinct `href` and `src` targets of `page` under `prefix`.
fn links_under(page: &str, prefix: &str) -> Vec<String> {
    let mut links: Vec<String> = ["href=\"", "src=\""]
        .iter()
        .flat_map(|attr| page.split(attr).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .filter(|target| target.starts_with(prefix))
        .map(|target| target.replace("&amp;", "&"))
        .collect();
    links.sort();
    links.dedup();
    links
}
