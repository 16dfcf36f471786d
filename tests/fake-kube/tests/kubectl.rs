//! Conformance: the real kubectl 1.33 against the fake. Every test starts its own fake on a
//! free port, writes a kubeconfig into a temp dir and runs kubectl with `--kubeconfig` and a
//! private `--cache-dir`. Without the kubectl binary the tests say so loudly and pass.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sk8_fake_kube::FakeKube;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const EXAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/crds/apache-spark-kubernetes-operator/examples"
);
const NS: &str = "team-a";

struct Cluster {
    kube: FakeKube,
    dir: TempDir,
}

impl Cluster {
    /// A fresh fake with namespace `team-a`, or None (after a loud message) without kubectl.
    async fn start() -> Option<Cluster> {
        if !Path::new(KUBECTL).exists() {
            eprintln!("\n!!!!! {KUBECTL} is missing: kubectl conformance test SKIPPED !!!!!\n");
            return None;
        }
        let kube = FakeKube::start().await.expect("start the fake");
        let dir = tempfile::tempdir().expect("temp dir");
        kube.write_kubeconfig(&dir.path().join("kubeconfig"))
            .expect("write kubeconfig");
        let cluster = Cluster { kube, dir };
        cluster.ok(&["create", "namespace", NS]).await;
        Some(cluster)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(KUBECTL);
        command
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(input.unwrap_or("").as_bytes())
            .await
            .expect("write stdin");
        drop(stdin);
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("kubectl finished within 30 s")
            .expect("kubectl output")
    }

    /// Runs kubectl, asserts success, returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None).await
    }

    async fn ok_with(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.run(args, input).await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {stderr}\n{stdout}"
        );
        stdout.into_owned()
    }

    /// Runs kubectl, asserts failure, returns stderr.
    async fn fails(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.run(args, input).await;
        assert!(!out.status.success(), "kubectl {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&args).await).expect("kubectl printed JSON")
    }

    /// Starts kubectl in the background, reading stdout line by line.
    fn spawn(&self, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubectl");
        let stdout = child.stdout.take().expect("piped stdout");
        (child, BufReader::new(stdout).lines())
    }

    async fn apply_example(&self, file: &str) -> String {
        let path = example(file);
        self.ok(&[
            "apply",
            "--server-side",
            "-n",
            NS,
            "-f",
            path.to_str().unwrap(),
        ])
        .await
    }
}

fn example(file: &str) -> PathBuf {
    Path::new(EXAMPLES).join(file)
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("a watch line within 15 s")
        .expect("read watch output")
        .expect("watch still open")
}

#[tokio::test]
async fn server_side_apply_of_every_upstream_example() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    // Every SparkApplication example (job-pi-swift.yaml is a batch Job that uses one).
    let mut files: Vec<String> = std::fs::read_dir(EXAMPLES)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "job-pi-swift.yaml")
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        6,
        "the SparkApplication examples are in tests/fixtures/crds"
    );
    for file in &files {
        let out = k.apply_example(file).await;
        assert!(out.contains("serverside-applied"), "{file}: {out}");
    }
    let list = k.json(&["get", "sparkapplications", "-n", NS]).await;
    let raw: Value = serde_json::from_str(
        &k.ok(&[
            "get",
            "--raw",
            "/apis/spark.apache.org/v1/namespaces/team-a/sparkapplications",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(raw["kind"], "SparkApplicationList");
    assert!(raw["metadata"]["resourceVersion"].as_str().is_some());
    let expected = [
        "pi",
        "pi-python",
        "pi-v1beta1",
        "pi-with-spark-connect-plugin",
        "pi-with-template",
        "spark-connect-server",
    ];
    assert_eq!(names(&list), expected);

    let pi = k.json(&["get", "sparkapplication", "pi", "-n", NS]).await;
    assert_eq!(pi["apiVersion"], "spark.apache.org/v1");
    assert_eq!(pi["spec"]["mainClass"], "org.apache.spark.examples.SparkPi");
    assert_eq!(
        pi["spec"]["sparkConf"]["spark.dynamicAllocation.maxExecutors"],
        "3"
    );
    assert_eq!(
        pi["spec"]["applicationTolerations"]["ttlAfterStopMillis"],
        10000
    );
    // pi-v1beta1 was applied at v1beta1 and reads back at both versions.
    let beta = k
        .json(&[
            "get",
            "sparkapplications.v1beta1.spark.apache.org",
            "pi-v1beta1",
            "-n",
            NS,
        ])
        .await;
    assert_eq!(beta["apiVersion"], "spark.apache.org/v1beta1");
    let table = k.ok(&["get", "sparkapp", "-n", NS]).await;
    assert!(
        table.starts_with("NAME") && table.contains("CURRENT STATE"),
        "{table}"
    );
}

#[tokio::test]
async fn reapply_is_a_no_op_and_a_second_manager_conflicts_unless_forced() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    k.apply_example("pi.yaml").await;
    let rv = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = k.json(&["get", "sparkapp", "pi", "-n", NS]).await;
    k.apply_example("pi.yaml").await;
    let after = k.json(&["get", "sparkapp", "pi", "-n", NS]).await;
    assert_eq!(
        rv(&before),
        rv(&after),
        "an identical apply changes nothing"
    );

    let changed = std::fs::read_to_string(example("pi.yaml"))
        .unwrap()
        .replace("SparkPi\"", "SparkPi2\"");
    let apply = [
        "apply",
        "--server-side",
        "--field-manager=sk8",
        "-n",
        NS,
        "-f",
        "-",
    ];
    let err = k.fails(&apply, Some(&changed)).await;
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.mainClass"),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");

    let forced = [&apply[..], &["--force-conflicts"]].concat();
    k.ok_with(&forced, Some(&changed)).await;
    let pi = k
        .json(&["get", "sparkapp", "pi", "-n", NS, "--show-managed-fields"])
        .await;
    assert_eq!(
        pi["spec"]["mainClass"],
        "org.apache.spark.examples.SparkPi2"
    );
    let managers: Vec<&str> = pi["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["kubectl", "sk8"]);
    let sk8_fields = &pi["metadata"]["managedFields"][1]["fieldsV1"]["f:spec"];
    assert!(
        sk8_fields["f:mainClass"].is_object() && sk8_fields["f:jars"].is_object(),
        "{sk8_fields}"
    );
}

#[tokio::test]
async fn create_of_a_duplicate_is_already_exists() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    let pi = example("pi.yaml");
    k.ok(&["create", "-n", NS, "-f", pi.to_str().unwrap()])
        .await;
    let err = k
        .fails(&["create", "-n", NS, "-f", pi.to_str().unwrap()], None)
        .await;
    assert!(
        err.contains("(AlreadyExists)")
            && err.contains("sparkapplications.spark.apache.org \"pi\" already exists"),
        "{err}"
    );
    let err = k.fails(&["create", "namespace", NS], None).await;
    assert!(err.contains("(AlreadyExists)"), "{err}");
}

/// ResourceQuota admission of an object count: a quota of one SparkApplication, then the
/// second create is refused as kube-apiserver refuses it.
#[tokio::test]
async fn an_object_count_quota_refuses_the_create_past_it() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    let quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: apps}\n\
                 spec: {hard: {count/sparkapplications.spark.apache.org: \"1\"}}\n";
    k.ok_with(&["create", "-n", NS, "-f", "-"], Some(quota))
        .await;
    let pi = example("pi.yaml");
    k.ok(&["create", "-n", NS, "-f", pi.to_str().unwrap()])
        .await;
    let python = example("pi-python.yaml");
    let err = k
        .fails(&["create", "-n", NS, "-f", python.to_str().unwrap()], None)
        .await;
    let count = "count/sparkapplications.spark.apache.org";
    let expected = format!(
        "is forbidden: exceeded quota: apps, requested: {count}=1, used: {count}=1, \
         limited: {count}=1"
    );
    assert!(
        err.contains("(Forbidden)") && err.contains(&expected),
        "{err}"
    );
    // Other kinds are not counted by it.
    k.ok(&["create", "configmap", "settings", "-n", NS]).await;
}

#[tokio::test]
async fn watch_sees_a_later_change() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    k.apply_example("pi.yaml").await;
    let (mut child, mut lines) = k.spawn(&[
        "get",
        "sparkapp",
        "pi",
        "-n",
        NS,
        "-w",
        "--output-watch-events",
        "-o",
        "json",
        "--request-timeout=20s",
    ]);
    let mut first = String::new();
    while !first.trim_end().ends_with('}') || serde_json::from_str::<Value>(&first).is_err() {
        first.push_str(&next_line(&mut lines).await);
        first.push('\n');
    }
    assert_eq!(
        serde_json::from_str::<Value>(&first).unwrap()["type"],
        "ADDED"
    );
    k.ok(&[
        "patch",
        "sparkapp",
        "pi",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"currentState":{"currentStateSummary":"Submitted"}}}"#,
    ])
    .await;
    let mut event = String::new();
    while serde_json::from_str::<Value>(&event).is_err() {
        event.push_str(&next_line(&mut lines).await);
        event.push('\n');
    }
    let event: Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(
        event["object"]["status"]["currentState"]["currentStateSummary"],
        "Submitted"
    );
    child.kill().await.expect("stop the watch");

    // The human-readable watch (Tables) shows the change too.
    let (mut child, mut lines) = k.spawn(&[
        "get",
        "sparkapp",
        "-n",
        NS,
        "-w",
        "--output-watch-events",
        "--request-timeout=20s",
    ]);
    assert!(next_line(&mut lines).await.starts_with("EVENT"));
    assert!(next_line(&mut lines).await.starts_with("ADDED"));
    k.ok(&["label", "sparkapp", "pi", "-n", NS, "seen=yes"])
        .await;
    assert!(next_line(&mut lines).await.starts_with("MODIFIED"));
    child.kill().await.expect("stop the watch");
}

#[tokio::test]
async fn status_subresource_and_wait() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    k.apply_example("pi.yaml").await;
    // Keep the waiter's stdout open: it prints "condition met" at the end.
    let (mut waiter, _stdout) = k.spawn(&[
        "wait",
        "-n",
        NS,
        "sparkapp/pi",
        "--timeout=20s",
        "--for=jsonpath={.status.currentState.currentStateSummary}=RunningHealthy",
    ]);
    // A write of the main resource ignores status; only /status changes it.
    k.ok(&[
        "patch",
        "sparkapp",
        "pi",
        "-n",
        NS,
        "--type=merge",
        "-p",
        r#"{"status":{"currentState":{"currentStateSummary":"Failed"}}}"#,
    ])
    .await;
    let pi = k.json(&["get", "sparkapp", "pi", "-n", NS]).await;
    assert!(pi.get("status").is_none(), "{pi}");
    k.ok(&[
        "patch",
        "sparkapp",
        "pi",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"currentState":{"currentStateSummary":"RunningHealthy"}}}"#,
    ])
    .await;
    let status = tokio::time::timeout(Duration::from_secs(20), waiter.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "kubectl wait saw the status");
    let pi = k.json(&["get", "sparkapp", "pi", "-n", NS]).await;
    assert_eq!(
        pi["metadata"]["generation"], 1,
        "status writes do not bump generation"
    );
}

#[tokio::test]
async fn label_selectors() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    for (file, labels) in [
        ("pi.yaml", "tier=batch,team=a"),
        ("pi-python.yaml", "tier=batch,team=b"),
        ("spark-connect-server.yaml", "tier=session"),
    ] {
        k.apply_example(file).await;
        let name = file.trim_end_matches(".yaml");
        let mut args = vec!["label", "sparkapp", name, "-n", NS];
        args.extend(labels.split(','));
        k.ok(&args).await;
    }
    let select = |selector: &'static str| {
        let k = &k;
        async move { names(&k.json(&["get", "sparkapp", "-n", NS, "-l", selector]).await) }
    };
    assert_eq!(select("tier=batch").await, ["pi", "pi-python"]);
    assert_eq!(select("tier==batch,team!=a").await, ["pi-python"]);
    assert_eq!(select("team in (a,b)").await, ["pi", "pi-python"]);
    assert_eq!(
        select("team notin (a)").await,
        ["pi-python", "spark-connect-server"]
    );
    assert_eq!(select("team").await, ["pi", "pi-python"]);
    assert_eq!(select("!team").await, ["spark-connect-server"]);
    let by_name = k
        .json(&[
            "get",
            "sparkapp",
            "-n",
            NS,
            "--field-selector",
            "metadata.name=pi",
        ])
        .await;
    assert_eq!(names(&by_name), ["pi"]);
    let err = k
        .fails(&["get", "sparkapp", "-n", NS, "-l", "team in a"], None)
        .await;
    assert!(
        err.contains("BadRequest") || err.contains("unable to parse"),
        "{err}"
    );
}

#[tokio::test]
async fn delete_removes_objects_and_namespace_contents() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    k.apply_example("pi.yaml").await;
    let out = k.ok(&["delete", "sparkapp", "pi", "-n", NS]).await;
    assert!(out.contains("\"pi\" deleted"), "{out}");
    let err = k.fails(&["get", "sparkapp", "pi", "-n", NS], None).await;
    assert!(
        err.contains("(NotFound)")
            && err.contains("sparkapplications.spark.apache.org \"pi\" not found"),
        "{err}"
    );
    let err = k.fails(&["delete", "sparkapp", "pi", "-n", NS], None).await;
    assert!(err.contains("(NotFound)"), "{err}");
    // Deleting a namespace removes what is in it.
    k.apply_example("pi-python.yaml").await;
    k.ok(&["delete", "namespace", NS]).await;
    let err = k
        .fails(&["get", "sparkapp", "pi-python", "-n", NS], None)
        .await;
    assert!(err.contains("(NotFound)"), "{err}");
    let err = k
        .fails(
            &[
                "apply",
                "--server-side",
                "-n",
                NS,
                "-f",
                example("pi.yaml").to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert!(err.contains("namespaces \"team-a\" not found"), "{err}");
}

#[tokio::test]
async fn invalid_objects_are_refused_with_the_real_messages() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    let pi = std::fs::read_to_string(example("pi.yaml")).unwrap();
    let apply = ["apply", "--server-side", "-n", NS, "-f", "-"];
    let bad_name = pi.replace("name: pi", "name: Pi_1");
    let err = k.fails(&apply, Some(&bad_name)).await;
    assert!(err.contains("SparkApplication \"Pi_1\" is invalid: metadata.name: Invalid value: \"Pi_1\": a lowercase RFC 1123 subdomain"), "{err}");
    let typo = pi.replace("mainClass:", "mainClas:");
    let err = k.fails(&apply, Some(&typo)).await;
    assert!(err.contains("unknown field \"spec.mainClas\""), "{err}");
    let wrong_type = pi.replace("ttlAfterStopMillis: 10000", "ttlAfterStopMillis: soon");
    let err = k.fails(&apply, Some(&wrong_type)).await;
    assert!(
        err.contains(
            "spec.applicationTolerations.ttlAfterStopMillis in body must be of type integer"
        ),
        "{err}"
    );
    let missing = pi.replace("  runtimeVersions:\n    sparkVersion: \"4.2.0\"\n", "");
    let err = k.fails(&apply, Some(&missing)).await;
    assert!(
        err.contains("spec.runtimeVersions: Required value"),
        "{err}"
    );
}

#[tokio::test]
async fn kubectl_generators_store_what_they_render() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    // These commands send protobuf bodies; what is stored must equal kubectl's own rendering.
    let generators: [&[&str]; 5] = [
        &[
            "create",
            "configmap",
            "conf",
            "--from-literal=a=1",
            "--from-literal=empty=",
        ],
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=token=s3cret",
        ],
        &["create", "serviceaccount", "spark"],
        &[
            "create",
            "role",
            "driver",
            "--verb=get,list",
            "--resource=pods,configmaps",
        ],
        &[
            "create",
            "rolebinding",
            "driver",
            "--role=driver",
            "--serviceaccount=team-a:spark",
        ],
    ];
    for args in generators {
        let mut dry = args.to_vec();
        dry.extend(["-n", NS, "--dry-run=client", "-o", "json"]);
        let rendered: Value = serde_json::from_str(&k.ok(&dry).await).unwrap();
        let mut create = args.to_vec();
        create.extend(["-n", NS]);
        k.ok(&create).await;
        let (kind, name) = (
            rendered["kind"].as_str().unwrap().to_lowercase(),
            rendered["metadata"]["name"].as_str().unwrap(),
        );
        let stored = k.json(&["get", &kind, name, "-n", NS]).await;
        for field in ["data", "rules", "subjects", "roleRef"] {
            assert_eq!(
                stored.get(field),
                rendered.get(field),
                "{kind}/{name} {field}"
            );
        }
    }
    let secret = k.json(&["get", "secret", "creds", "-n", NS]).await;
    assert_eq!(
        (&secret["data"]["token"], &secret["type"]),
        (&json!("czNjcmV0"), &json!("Opaque"))
    );
    let listed = k
        .ok(&[
            "get",
            "configmaps,secrets,serviceaccounts,roles,rolebindings",
            "-n",
            NS,
            "-o",
            "name",
        ])
        .await;
    assert_eq!(listed.lines().count(), 5, "{listed}");
    assert_eq!(
        k.json(&["get", "namespace", NS]).await["status"]["phase"],
        "Active"
    );
}

#[tokio::test]
async fn pods_selected_by_label_with_their_logs() {
    let Some(k) = Cluster::start().await else {
        return;
    };

    let out = k.run(&["get", "pods", "-n", NS], None).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "driver", "labels": {"spark-role": "driver"}},
                     "spec": {"containers": [{"name": "spark", "image": "apache/spark"}]}});
    k.ok_with(&["create", "-n", NS, "-f", "-"], Some(&pod.to_string()))
        .await;
    let pods = k
        .json(&["get", "pods", "-n", NS, "-l", "spark-role=driver"])
        .await;
    assert_eq!(names(&pods), ["driver"]);
    assert_eq!(pods["items"][0]["status"]["phase"], "Pending");
    k.kube
        .append_log(NS, "driver", "Pi is roughly 3.14\n")
        .unwrap();
    assert_eq!(
        k.ok(&["logs", "driver", "-n", NS]).await,
        "Pi is roughly 3.14\n"
    );
}

#[tokio::test]
async fn api_resources_explain_and_describe_use_discovery_and_openapi() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    let resources = k.ok(&["api-resources"]).await;
    for line in [
        "sparkapplications",
        "networkpolicies",
        "rolebindings",
        "limitranges",
        "resourcequotas",
    ] {
        assert!(resources.contains(line), "{line} in {resources}");
    }
    let explained = k
        .ok(&["explain", "sparkapplication.spec.runtimeVersions"])
        .await;
    assert!(explained.contains("sparkVersion"), "{explained}");
    k.apply_example("pi.yaml").await;
    let described = k.ok(&["describe", "sparkapp", "pi", "-n", NS]).await;
    assert!(
        described.contains("Main Class:") && described.contains("Events:"),
        "{described}"
    );
    let version = k.ok(&["version", "-o", "json"]).await;
    assert!(version.contains("v1.33.0-sk8-fake"), "{version}");
}
