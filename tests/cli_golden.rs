//! The exact text a user sees from the `sk8` CLI, against a real daemon, compared with the
//! goldens in `tests/golden/cli/` (one transcript per behaviour: the command, what it printed
//! on stdout then stderr, and its exit status). Ids, timestamps, elapsed times, the temp
//! folder and the server address are replaced by placeholders so the transcripts are stable.
//! Regenerate after an intended change with `SK8_UPDATE_GOLDEN=1 cargo test --test cli_golden`
//! and review the diff.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Engine, Options, TestApp};

/// A transcript of CLI runs in a daemon's temp folder, checked against its golden.
struct Transcript<'a> {
    app: &'a TestApp,
    text: String,
    /// Strings that vary between runs (ids), each with its placeholder.
    names: Vec<(String, String)>,
}

impl<'a> Transcript<'a> {
    fn new(app: &'a TestApp) -> Self {
        Transcript {
            app,
            text: String::new(),
            names: Vec::new(),
        }
    }

    /// Writes a manifest into the temp folder (relative paths in it resolve there).
    fn file(&self, name: &str, text: &str) {
        let path = self.app.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Shows `value` as `placeholder` from now on.
    fn name(&mut self, value: &str, placeholder: &str) {
        self.names.push((value.to_owned(), placeholder.to_owned()));
    }

    /// Runs `sk8 ARGS` in the temp folder against the daemon and records it; returns stdout.
    fn run(&mut self, args: &[&str]) -> String {
        self.run_with(args, |_| true)
    }

    /// [`Self::run`], recording only the stderr lines `keep` accepts (progress lines whose
    /// number depends on timing).
    fn run_with(&mut self, args: &[&str], keep: impl Fn(&str) -> bool) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sk8"));
        command
            .env("SK8_SERVER", &self.app.base)
            .env_remove("SK8_TOKEN");
        self.record(command, args, keep)
    }

    /// Runs `sk8 ARGS` with no environment but PATH and HOME (a daemon's config reads SK8_*
    /// variables and DATABASE_URL) and records it.
    fn run_clean(&mut self, args: &[&str]) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sk8"));
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.app.dir.path());
        self.record(command, args, |_| true)
    }

    fn record(
        &mut self,
        mut command: Command,
        args: &[&str],
        keep: impl Fn(&str) -> bool,
    ) -> String {
        let output = command
            .args(args)
            .current_dir(self.app.dir.path())
            .output()
            .expect("run sk8");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr: String = String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| keep(line))
            .map(|line| format!("{line}\n"))
            .collect();
        let code = output
            .status
            .code()
            .map_or("signal".into(), |c| c.to_string());
        self.text += &format!(
            "$ sk8 {}\n{stdout}{stderr}(exit {code})\n\n",
            args.join(" ")
        );
        stdout
    }

    /// Compares the normalised transcript with `tests/golden/cli/NAME.txt` (or writes it).
    fn check(self, name: &str) {
        let text = normalise(&self.text, self.app, &self.names);
        let path = common::repo_file(&format!("tests/golden/cli/{name}.txt"));
        if std::env::var_os("SK8_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
            return;
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            golden == text,
            "{} differs; run SK8_UPDATE_GOLDEN=1 cargo test --test cli_golden and review the \
             diff.\n--- golden\n{golden}\n--- now\n{text}",
            path.display()
        );
    }
}

/// Placeholders for what varies between runs.
fn normalise(text: &str, app: &TestApp, names: &[(String, String)]) -> String {
    let dir = app.dir.path().canonicalize().unwrap();
    let mut text = text
        .replace(&dir.display().to_string(), "<dir>")
        .replace(&app.dir.path().display().to_string(), "<dir>")
        .replace(&app.base, "<server>")
        .replace(&app.grpc, "<gateway>");
    for (value, placeholder) in names {
        text = text.replace(value, placeholder);
    }
    replace_timestamps(&text)
}

/// RFC 3339 timestamps (`2026-12-05T06:19:46.123Z`) become `YYYY-MM-DDTHH:MM:SSZ`, as wide
/// as the CLI's own, so that columns stay aligned in the goldens.
fn replace_timestamps(text: &str) -> String {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                s => s == b,
            });
        if !fits {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        i += shape.len();
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if text[i..].starts_with('Z') {
            i += 1;
        } else if text[i..].starts_with("+00:00") {
            i += "+00:00".len();
        }
        out.push_str("YYYY-MM-DDTHH:MM:SSZ");
    }
    out
}

/// The job id of the confirmation `NAME submitted: ID (TEAM/ENV) is STATE`.
fn submitted_id(stdout: &str) -> String {
    let rest = stdout
        .split(" submitted: ")
        .nth(1)
        .expect("a submit confirmation");
    rest.split(' ').next().unwrap().to_owned()
}

fn fake_manifest(name: &str, mode: &str) -> String {
    format!(
        "team: cli\nenv: dev\nname: {name}\nmainApplicationFile: s3a://bucket/jobs/job.py\n\
         envVars:\n  FAKE_SPARK_MODE: {mode}\n  FAKE_SPARK_SECONDS: \"60\"\n"
    )
}

const WAIT: Duration = Duration::from_secs(30);

async fn daemon() -> TestApp {
    TestApp::spawn(Options::new(Engine::Sqlite)).await
}

const THREE_MISTAKES: &str = "\
team: cli
env: dev
name: three-mistakes
mainApplicationFile: s3a://bucket/jobs/job.py
executer:
  instances: 2
driver:
  cores: 1
  memory: lots
sparkConf:
  spark.master: local[*]
";

/// Item 6: a manifest with three mistakes gets three errors, each at its YAML line and column
/// and naming its field, a misspelt field with the name it is closest to; `-o json` gives the
/// same as one JSON object with lines and columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_mistakes_three_errors_at_their_yaml_lines() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file("three-mistakes.yaml", THREE_MISTAKES);
    t.run(&["submit", "three-mistakes.yaml"]);
    t.run(&["-o", "json", "submit", "three-mistakes.yaml"]);
    t.check("manifest-three-mistakes");
}

/// Item 6: a wrong type points at the user's line, not into the JSON the CLI built; every
/// message names its field first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_errors_and_rules_name_their_field_at_its_line() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file(
        "typed.yaml",
        "team: cli\nenv: dev\nname: typed\nmainApplicationFile: s3a://b/jobs/x.py\n\
         executor:\n  cores: many\n",
    );
    t.run(&["submit", "typed.yaml"]);
    t.file(
        "subjects.yaml",
        "team: cli\nenv: dev\nname: subjects\nmainApplicationFile: local:///opt/../etc/x.py\n\
         sparkConf:\n  spark.app.name: mine\nretry:\n  maxAttempts: 0\n",
    );
    t.run(&["submit", "subjects.yaml"]);
    t.check("manifest-type-errors-and-subjects");
}

/// Item 6: a YAML syntax error says `error:` once, with the file, line and column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_syntax_error_says_error_once() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file("broken.yaml", "team: cli\nenv: dev\n  name: x\n");
    t.run(&["submit", "broken.yaml"]);
    t.check("manifest-yaml-syntax-error");
}

/// Item 6: a local file the manifest names is checked before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_local_file_is_refused_before_submit() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file(
        "missing.yaml",
        "team: cli\nenv: dev\nname: missing\nmainApplicationFile: jobs/missing.py\n\
         deps:\n  pyFiles:\n    - file:///nonexistent/lib.zip\n",
    );
    t.run(&["submit", "missing.yaml"]);
    let (_, page) = app.get("/v1/jobs").await;
    assert_eq!(page["jobs"], serde_json::json!([]), "nothing was submitted");
    t.check("manifest-missing-local-file");
}

/// Item 7: the submit confirmation reads the same with and without --wait, and the finished
/// line in the same words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_confirms_the_same_with_and_without_wait() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file("ok.yaml", &fake_manifest("ok", "ok"));
    let first = t.run(&["submit", "ok.yaml"]);
    t.name(&submitted_id(&first), "<job-1>");
    // The progress lines (`[  0.5s] RUNNING …`) depend on timing.
    let second = t.run_with(&["submit", "ok.yaml", "--wait"], |l| !l.starts_with('['));
    t.name(&submitted_id(&second), "<job-2>");
    t.check("submit-confirmation");
}

/// Item 7: `events` in aligned columns, timestamps RFC 3339 to the second as in `status`;
/// the Spark UI link only while the job runs; `-o json` logs as JSON Lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_events_and_logs_read_consistently() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file("sleepy.yaml", &fake_manifest("sleepy", "sleep"));
    let stdout = t.run(&["submit", "sleepy.yaml"]);
    let id = submitted_id(&stdout);
    t.name(&id, "<job>");
    let trace = app.job(&id).await["traceId"].as_str().unwrap().to_owned();
    t.name(&trace, "<trace>");
    app.wait_for(&id, &["RUNNING"], WAIT).await;
    // The UI link follows RUNNING once the driver's log announced the UI.
    let deadline = std::time::Instant::now() + WAIT;
    while app.job(&id).await["links"]["sparkUi"].is_null() {
        assert!(
            std::time::Instant::now() < deadline,
            "no Spark UI link on running job {id} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.run(&["status", &id]);
    t.run(&["-o", "json", "logs", &id]);
    t.run(&["cancel", &id]);
    app.wait_finished(&id, WAIT).await;
    t.run(&["status", &id]);
    t.run(&["events", &id]);
    t.check("status-events-logs");
}

/// Item 7: errors honour `-o json` (one object on stderr, like the API's error body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_honour_json_output() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.run(&["status", "01kb2r5q3h7m9x4c2d"]);
    t.run(&["-o", "json", "status", "01kb2r5q3h7m9x4c2d"]);
    t.run(&["-o", "json", "--server", "http://127.0.0.1:9", "list"]);
    t.check("errors-json");
}

/// `submit --dry-run` shows the spec sk8 would run, as YAML, and its sizing; nothing is
/// stored; it cannot be combined with `--wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_the_spec_and_submits_nothing() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file("planned.yaml", &fake_manifest("planned", "ok"));
    t.run(&["submit", "planned.yaml", "--dry-run"]);
    t.run(&["submit", "planned.yaml", "--dry-run", "--wait"]);
    let (_, page) = app.get("/v1/jobs").await;
    assert_eq!(page["jobs"], serde_json::json!([]), "nothing was submitted");
    t.check("submit-dry-run");
}

/// Item 7: positional arguments and list filters have help; `serve --help` lists no client
/// flag; no `[env: SK8_SERVER=]` when the variable is unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_texts() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    for args in [
        &["serve", "--help"][..],
        &["list", "--help"],
        &["status", "--help"],
        &["session", "list", "--help"],
        &["session", "connect", "--help"],
        &["namespace", "get", "--help"],
    ] {
        t.run(args);
    }
    t.check("help");
}

/// Item 7: a session is found by its name as well as its id (the gateway's hint says
/// `sk8 session connect NAME`); a deleted one has no connection string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_by_name_and_no_url_once_deleted() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    let body = serde_json::json!({"team": "cli", "env": "dev", "name": "notebook"});
    let (status, created) = app.post("/v1/sessions", &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    t.name(&id, "<session>");
    // The test daemon's local backend has no Spark Connect server to start: the session
    // fails, which `connect` by name reports; a READY one prints its connection string.
    wait_session(&app, &id, &["FAILED"]).await;
    t.run(&["-o", "json", "session", "connect", "notebook"]);
    t.run(&["session", "connect", "nobody"]);
    let (status, deleted) = app.delete(&format!("/v1/sessions/{id}")).await;
    assert_eq!(status, 200, "{deleted}");
    // The local backend's session server ends as the delete stops it.
    wait_session(&app, &id, &["STOPPED", "FAILED"]).await;
    t.run(&["session", "get", &id]);
    t.run(&["session", "connect", &id]);
    t.run(&["session", "connect", "notebook"]);
    t.check("session-by-name");
}

async fn wait_session(app: &TestApp, id: &str, states: &[&str]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, session) = app.get(&format!("/v1/sessions/{id}")).await;
        if states.iter().any(|s| session["state"] == *s) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session {id} did not reach {states:?} within {WAIT:?}: {session}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Item 7: `namespace apply` on the local backend says nothing was applied anywhere, instead
/// of "(in sync)".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_apply_without_a_cluster_says_so() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file("namespace.yaml", "team: cli\nenv: dev\n");
    t.run(&["namespace", "apply", "namespace.yaml"]);
    t.check("namespace-apply-local");
}

/// Item 7: `serve --check-config` prints the effective configuration as YAML (the file's own
/// keys, defaults filled in, the database password redacted), not a Rust Debug dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_prints_the_effective_configuration_as_yaml() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file(
        "sk8.yaml",
        "dataDir: /var/lib/sk8\nstore:\n  url: postgres://sk8:hunter2@db.example/sk8\n\
         http:\n  addr: 127.0.0.1:9080\n",
    );
    let yaml = t.run_clean(&["serve", "--check-config", "--config", "sk8.yaml"]);
    assert!(
        !yaml.contains("hunter2"),
        "the password is redacted: {yaml}"
    );
    t.check("serve-check-config");
}

/// `sk8 describe`: a finished job's timeline and its attempt's record (from a real event log
/// the fake driver leaves) as a person reads it. The driver holds until the test has seen it
/// RUNNING: a driver that ends before the reconciler looks goes SUBMITTED → SUCCEEDED, which
/// a busy CI machine did once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_the_timeline_and_the_run_record() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    let go = app.dir.path().join("go");
    let manifest = format!(
        "{}  FAKE_SPARK_HOLD_UNTIL: {}\n",
        fake_manifest("recorded", "eventlog"),
        go.display()
    );
    t.file("recorded.yaml", &manifest);
    let stdout = t.run(&["submit", "recorded.yaml"]);
    let id = submitted_id(&stdout);
    t.name(&id, "<job>");
    app.wait_for(&id, &["RUNNING"], WAIT).await;
    std::fs::write(&go, "").unwrap();
    app.wait_finished(&id, WAIT).await;
    app.wait_recorded(&id, WAIT).await;
    let trace = app.job(&id).await["traceId"].as_str().unwrap().to_owned();
    t.name(&trace, "<trace>");
    t.run(&["describe", &id]);
    t.run(&["logs", &id, "--attempt", "1"]);
    t.run(&["describe", "01kb2r5q3h7m9x4c2d"]);
    t.check("describe");
}

/// Item 7: `-o json` timestamps are the same from `submit` as from a later `status` (both
/// whole milliseconds, as stored), not nanoseconds from one and milliseconds from the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_timestamps_read_the_same_from_submit_and_status() {
    let app = daemon().await;
    let mut t = Transcript::new(&app);
    t.file("ok.yaml", &fake_manifest("stamped", "ok"));
    let submitted: serde_json::Value =
        serde_json::from_str(&t.run(&["-o", "json", "submit", "ok.yaml"])).unwrap();
    let id = submitted["id"].as_str().unwrap().to_owned();
    let status: serde_json::Value =
        serde_json::from_str(&t.run(&["-o", "json", "status", &id])).unwrap();
    let created = submitted["createdAt"].as_str().unwrap();
    assert_eq!(created, status["createdAt"].as_str().unwrap());
    let fraction = created.split('.').nth(1).unwrap_or("Z");
    assert!(fraction.len() <= 4, "milliseconds at most: {created}");
}
