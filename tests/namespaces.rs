//! Team namespaces end to end: `sk8 serve` on the Kubernetes backend against the fake API
//! server provisions `sjns-<team>-<env>` (create, update, no-op re-apply, delete), copies and
//! syncs secrets, reports and repairs drift, and rejects bad specs naming the field; the real
//! kubectl reads every object back. Beside it: the submission guard (`namespaces/guard.rs`),
//! the goldens (`namespaces/golden.rs`), and gRPC against REST (`namespaces/grpc.rs`).

mod common;
#[path = "namespaces/golden.rs"]
mod golden;
#[path = "namespaces/grpc.rs"]
mod grpc;
#[path = "namespaces/guard.rs"]
mod guard;
#[path = "common/kube.rs"]
mod kube;

use std::time::{Duration, Instant};

use common::{Engine, TestApp, both_engines};
use kube::{Cluster, object_path};
use serde_json::{Value, json};

const NS: &str = "sjns-payments-dev";
const PLATFORM: &str = "sk8-platform";
const WAIT: Duration = Duration::from_secs(20);
/// Every object sk8 manages in a namespace with one secret: kind, API group, plural, name.
const OBJECTS: [(&str, &str, &str, &str); 11] = [
    ("ResourceQuota", "", "resourcequotas", "sk8-quota"),
    ("LimitRange", "", "limitranges", "sk8-limits"),
    (
        "NetworkPolicy",
        "networking.k8s.io",
        "networkpolicies",
        "sk8-deny-ingress",
    ),
    (
        "NetworkPolicy",
        "networking.k8s.io",
        "networkpolicies",
        "sk8-spark-internal",
    ),
    (
        "NetworkPolicy",
        "networking.k8s.io",
        "networkpolicies",
        "sk8-connect-from-sk8",
    ),
    (
        "NetworkPolicy",
        "networking.k8s.io",
        "networkpolicies",
        "sk8-egress",
    ),
    ("ServiceAccount", "", "serviceaccounts", "sk8-spark-driver"),
    (
        "Role",
        "rbac.authorization.k8s.io",
        "roles",
        "sk8-spark-driver",
    ),
    (
        "RoleBinding",
        "rbac.authorization.k8s.io",
        "rolebindings",
        "sk8-spark-driver",
    ),
    ("Secret", "", "secrets", "object-store"),
    ("Namespace", "", "namespaces", NS),
];
/// The platform secret's value: it must reach the team namespace and nothing else.
const SECRET_VALUE: &str = "s3cr3t-access-key";

both_engines!(
    a_namespace_is_provisioned_and_read_back,
    delete_waits_for_running_work_unless_forced,
    lists_page_by_name_and_filter,
);

/// A cluster with the platform namespace and its `object-store` secret, and sk8 on it.
async fn setup(engine: Engine, extra: Value) -> (Cluster, TestApp) {
    let cluster = Cluster::start().await;
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLATFORM}});
    cluster.create("/api/v1/namespaces", &namespace).await;
    put_platform_secret(&cluster, SECRET_VALUE).await;
    let app = cluster.sk8(engine, extra).await;
    (cluster, app)
}

async fn put_platform_secret(cluster: &Cluster, value: &str) {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "object-store", "namespace": PLATFORM},
        "type": "Opaque",
        "stringData": {},
        "data": {"access-key": b64(value)},
    });
    let path = object_path("", PLATFORM, "secrets", "object-store");
    if cluster.get(&path).await.0 == 200 {
        cluster
            .merge_patch(&path, &json!({"data": {"access-key": b64(value)}}))
            .await;
    } else {
        cluster
            .create(&format!("/api/v1/namespaces/{PLATFORM}/secrets"), &secret)
            .await;
    }
}

fn b64(value: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value)
}

fn spec() -> Value {
    json!({
        "team": "payments", "env": "dev",
        "quota": {"cpu": "16", "memory": "64Gi", "pods": 40, "other": {"services": "10"}},
        "limits": {"defaultRequest": {"cpu": "500m", "memory": "1Gi"}, "max": {"cpu": "4", "memory": "16Gi"}},
        "secrets": [{"name": "object-store"}],
        "egress": [{"cidr": "10.20.0.0/16", "ports": [443]}],
    })
}

async fn put(app: &TestApp, team: &str, env: &str, body: &Value) -> (u16, Value) {
    app.put(&format!("/v1/namespaces/{team}/{env}"), body).await
}

/// `Kind/name` → resourceVersion of every object as the fake holds it.
async fn versions(cluster: &Cluster) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (kind, group, plural, name) in OBJECTS {
        let path = match kind {
            "Namespace" => format!("/api/v1/namespaces/{name}"),
            _ => object_path(group, NS, plural, name),
        };
        let (status, object) = cluster.get(&path).await;
        assert_eq!(status, 200, "{kind}/{name}: {object}");
        let rv = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        out.push((format!("{kind}/{name}"), rv));
    }
    out
}

/// What `kubectl edit resourcequota sk8-quota` would do.
async fn edit_quota_behind_sk8s_back(cluster: &Cluster) {
    let patch = json!({"spec": {"hard": {"requests.cpu": "999"}}});
    cluster.merge_patch(&quota_path(), &patch).await;
}

fn quota_path() -> String {
    object_path("", NS, "resourcequotas", "sk8-quota")
}

async fn a_namespace_is_provisioned_and_read_back(engine: Engine) {
    let (cluster, app) = setup(engine, json!({})).await;
    let (status, created) = put(&app, "payments", "dev", &spec()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["namespace"], NS);
    assert_eq!(created["drift"], false, "{created}");
    let objects = created["clusters"][0]["objects"].as_array().unwrap();
    assert_eq!(objects.len(), OBJECTS.len(), "{created}");
    assert!(objects.iter().all(|o| o["state"] == "IN_SYNC"), "{created}");
    versions(&cluster).await;

    let Some(_) = cluster.kubectl_json(&["get", "namespace", NS]).await else {
        return;
    };
    let namespace = cluster
        .kubectl_json(&["get", "namespace", NS])
        .await
        .unwrap();
    let labels = &namespace["metadata"]["labels"];
    assert_eq!(labels["sk8.dev/team"], "payments");
    assert_eq!(labels["sk8.dev/env"], "dev");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "sk8");
    assert_eq!(labels["sk8.dev/spark-operator"], "watched");
    let kinds = "resourcequota,limitrange,networkpolicy,serviceaccount,role,rolebinding,secret";
    let list = cluster
        .kubectl_json(&["get", kinds, "-n", NS])
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), OBJECTS.len() - 1, "{list}");
    let find = |kind: &str, name: &str| {
        items
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("kubectl did not list {kind}/{name}"))
            .clone()
    };
    let quota = find("ResourceQuota", "sk8-quota");
    assert_eq!(
        quota["spec"]["hard"],
        json!({"requests.cpu": "16", "requests.memory": "64Gi", "pods": "40", "services": "10"})
    );
    let limits = find("LimitRange", "sk8-limits");
    assert_eq!(
        limits["spec"]["limits"][0]["max"],
        json!({"cpu": "4", "memory": "16Gi"})
    );
    let connect = find("NetworkPolicy", "sk8-connect-from-sk8");
    assert_eq!(connect["spec"]["ingress"][0]["ports"][0]["port"], 15002);
    let role = find("Role", "sk8-spark-driver");
    assert_eq!(
        role["rules"][0]["resources"],
        json!(["pods", "services", "configmaps", "persistentvolumeclaims"])
    );
    let binding = find("RoleBinding", "sk8-spark-driver");
    assert_eq!(binding["subjects"][0]["name"], "sk8-spark-driver");
    let secret = find("Secret", "object-store");
    assert_eq!(secret["data"]["access-key"], b64(SECRET_VALUE));
    for item in items {
        assert_eq!(
            item["metadata"]["labels"]["app.kubernetes.io/managed-by"], "sk8",
            "{item}"
        );
    }
    // The value is in the cluster, and nowhere in what sk8 says or logs.
    let (_, detail) = app.get("/v1/namespaces/payments/dev").await;
    for text in [detail.to_string(), created.to_string(), app.logs()] {
        assert!(!text.contains(SECRET_VALUE) && !text.contains(&b64(SECRET_VALUE)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_the_same_spec_again_writes_nothing() {
    let (cluster, app) = setup(Engine::Sqlite, json!({})).await;
    let (status, created) = put(&app, "payments", "dev", &spec()).await;
    assert_eq!(status, 201, "{created}");
    let before = versions(&cluster).await;
    let (status, again) = put(&app, "payments", "dev", &spec()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["updatedAt"], created["updatedAt"],
        "nor is the stored spec rewritten"
    );
    assert_eq!(
        versions(&cluster).await,
        before,
        "a no-op apply wrote something"
    );
    assert_eq!(again["drift"], false, "{again}");
    // The same spec in YAML, without the team and env the URL names.
    let yaml = "quota: {cpu: \"16\", memory: 64Gi, pods: 40, other: {services: \"10\"}}
limits: {defaultRequest: {cpu: 500m, memory: 1Gi}, max: {cpu: \"4\", memory: 16Gi}}
secrets: [{name: object-store}]
egress: [{cidr: 10.20.0.0/16, ports: [443]}]
";
    let response = app
        .http
        .put(app.url("/v1/namespaces/payments/dev"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert_eq!(
        versions(&cluster).await,
        before,
        "the YAML spec is the same spec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_shrinks_and_grows() {
    let (cluster, app) = setup(Engine::Sqlite, json!({})).await;
    assert_eq!(put(&app, "payments", "dev", &spec()).await.0, 201);
    let mut smaller = spec();
    smaller["quota"] = json!({"cpu": "4", "memory": "8Gi", "pods": 10});
    let (status, updated) = put(&app, "payments", "dev", &smaller).await;
    assert_eq!(status, 200, "{updated}");
    let (_, quota) = cluster.get(&quota_path()).await;
    assert_eq!(
        quota["spec"]["hard"],
        json!({"requests.cpu": "4", "requests.memory": "8Gi", "pods": "10"}),
        "the dropped `services` entry is gone too"
    );
    let mut larger = spec();
    larger["quota"] = json!({"cpu": "200", "memory": "512Gi", "pods": 1000});
    assert_eq!(put(&app, "payments", "dev", &larger).await.0, 200);
    let (_, quota) = cluster.get(&quota_path()).await;
    assert_eq!(quota["spec"]["hard"]["requests.cpu"], "200");
    assert_eq!(quota["spec"]["hard"]["requests.memory"], "512Gi");
    assert_eq!(updated["spec"]["quota"]["cpu"], "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_and_a_reapply_repairs_it() {
    // Drift is only reported: it stays until sk8 is asked.
    let (cluster, app) = setup(
        Engine::Sqlite,
        json!({"namespaces": {"repairDrift": false}}),
    )
    .await;
    assert_eq!(put(&app, "payments", "dev", &spec()).await.0, 201);
    edit_quota_behind_sk8s_back(&cluster).await;
    cluster
        .delete(&object_path(
            "networking.k8s.io",
            NS,
            "networkpolicies",
            "sk8-deny-ingress",
        ))
        .await;
    let (_, detail) = app.get("/v1/namespaces/payments/dev").await;
    assert_eq!(detail["drift"], true, "{detail}");
    let state = |name: &str| {
        detail["clusters"][0]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .cloned()
            .unwrap()
    };
    let quota = state("sk8-quota");
    assert_eq!(quota["state"], "DRIFTED");
    assert_eq!(quota["driftedFields"], json!(["spec.hard.requests.cpu"]));
    assert_eq!(state("sk8-deny-ingress")["state"], "MISSING");
    assert_eq!(put(&app, "payments", "dev", &spec()).await.0, 200);
    let (_, repaired) = app.get("/v1/namespaces/payments/dev").await;
    assert_eq!(repaired["drift"], false, "{repaired}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_repaired_and_secrets_follow_their_source_as_watches_see_them() {
    // No resync during the test: what is repaired, the watches saw.
    let (cluster, app) = setup(
        Engine::Sqlite,
        json!({"namespaces": {"resyncSeconds": 3600}}),
    )
    .await;
    assert_eq!(put(&app, "payments", "dev", &spec()).await.0, 201);
    edit_quota_behind_sk8s_back(&cluster).await;
    let role = object_path("rbac.authorization.k8s.io", NS, "roles", "sk8-spark-driver");
    cluster.delete(&role).await;
    put_platform_secret(&cluster, "rotated-key").await;
    let copy = object_path("", NS, "secrets", "object-store");
    wait_until(&cluster, "the drift to be repaired", async |c: &Cluster| {
        let (_, quota) = c.get(&quota_path()).await;
        let (_, secret) = c.get(&copy).await;
        quota["spec"]["hard"]["requests.cpu"] == "16"
            && c.get(&role).await.0 == 200
            && secret["data"]["access-key"] == b64("rotated-key")
    })
    .await;
    // A secret the spec no longer lists is removed from the namespace.
    let mut without = spec();
    without["secrets"] = json!([]);
    assert_eq!(put(&app, "payments", "dev", &without).await.0, 200);
    assert_eq!(cluster.get(&copy).await.0, 404);
}

/// Polls the cluster until `done` holds; panics after [`WAIT`].
async fn wait_until(cluster: &Cluster, what: &str, done: impl AsyncFn(&Cluster) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(cluster).await {
        assert!(Instant::now() < deadline, "waited too long for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delete_waits_for_running_work_unless_forced(engine: Engine) {
    let (cluster, app) = setup(engine, json!({})).await;
    assert_eq!(put(&app, "payments", "dev", &spec()).await.0, 201);
    let job = app
        .submit(&json!({
            "team": "payments", "env": "dev", "name": "long",
            "mainApplicationFile": "local:///opt/job.py",
            "labels": {"fake.sk8.dev/outcome": "Running"},
        }))
        .await;
    // Running, so the forced delete goes through CANCELLING (a queued job is cancelled at once).
    let id = job["id"].as_str().unwrap();
    app.wait_for(id, &["RUNNING"], WAIT).await;
    let (status, refused) = app.delete("/v1/namespaces/payments/dev").await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 unfinished job(s)") && message.contains("force=true"),
        "{message}"
    );
    let (status, deleted) = app.delete("/v1/namespaces/payments/dev?force=true").await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        cluster.get(&format!("/api/v1/namespaces/{NS}")).await.0,
        404
    );
    assert_eq!(app.get("/v1/namespaces/payments/dev").await.0, 404);
    let done = app.wait_finished(id, WAIT).await;
    assert_eq!(done["state"], "CANCELLED", "{done}");
    let (_, events) = app.get(&format!("/v1/jobs/{id}/events")).await;
    let why = format!("cancelled: its namespace {NS} was deleted");
    let cancelling = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "CANCELLING");
    assert_eq!(
        cancelling.map(|e| &e["reason"]),
        Some(&json!(why)),
        "{events}"
    );
    assert_eq!(app.delete("/v1/namespaces/payments/dev").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_are_rejected_naming_the_field() {
    let (cluster, app) = setup(Engine::Sqlite, json!({})).await;
    let with = |patch: Value| {
        let mut body = spec();
        common::merge(&mut body, &patch);
        body
    };
    let long = "e".repeat(60);
    let cases = [
        (
            "Bad_Team",
            "dev",
            json!({"team": "Bad_Team"}),
            "team",
            "DNS-1123",
        ),
        (
            "payments",
            &*long,
            json!({"env": long}),
            "env",
            "characters",
        ),
        (
            "payments",
            "dev",
            with(json!({"quota": {"cpu": "1000"}})),
            "quota.cpu",
            "platform maximum",
        ),
        (
            "payments",
            "dev",
            with(json!({"limits": {"max": {"memory": "2Ti"}}})),
            "limits.max.memory",
            "platform maximum",
        ),
        (
            "payments",
            "dev",
            with(json!({"quota": {"memory": "64 gigs"}})),
            "quota.memory",
            "not a Kubernetes quantity",
        ),
        (
            "payments",
            "dev",
            with(json!({"secrets": [{"name": "no-such-secret"}]})),
            "secrets[0].name",
            "not in the platform namespace",
        ),
        (
            "payments",
            "dev",
            with(json!({"egress": [{"cidr": "10.0.0.0"}]})),
            "egress[0].cidr",
            "CIDR",
        ),
    ];
    for (team, env, body, field, words) in cases {
        let (status, error) = put(&app, team, env, &body).await;
        assert_eq!(status, 400, "{field}: {error}");
        assert_eq!(error["error"]["field"], field, "{error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{field}: {message}");
    }
    assert_eq!(app.get("/v1/namespaces").await.1["namespaces"], json!([]));
    assert_eq!(
        cluster.get(&format!("/api/v1/namespaces/{NS}")).await.0,
        404
    );
}

async fn lists_page_by_name_and_filter(engine: Engine) {
    let (_cluster, app) = setup(engine, json!({})).await;
    for (team, env) in [("payments", "dev"), ("payments", "prod"), ("risk", "dev")] {
        assert_eq!(put(&app, team, env, &json!({})).await.0, 201);
    }
    let (_, first) = app.get("/v1/namespaces?limit=2").await;
    let names = |page: &Value| -> Vec<String> {
        page["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["namespace"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["sjns-payments-dev", "sjns-payments-prod"]);
    let token = first["nextPageToken"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/v1/namespaces?limit=2&page_token={token}"))
        .await;
    assert_eq!(names(&rest), ["sjns-risk-dev"]);
    let (_, risk) = app.get("/v1/namespaces?team=risk").await;
    assert_eq!(names(&risk), ["sjns-risk-dev"]);
    let (status, error) = app.get("/v1/namespaces?colour=red").await;
    assert_eq!((status, &error["error"]["field"]), (400, &json!("colour")));
}

/// `sk8 namespace apply | get | list | delete` with examples/namespace.yaml.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_applies_the_example_and_reads_it_back() {
    let (cluster, app) = setup(Engine::Sqlite, json!({})).await;
    let sk8 = |args: &[&str]| {
        let output = app.cli(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "sk8 {args:?}: {stderr}{stdout}");
        stdout
    };
    let example = common::repo_file("examples/namespace.yaml");
    let applied = sk8(&["namespace", "apply", example.to_str().unwrap()]);
    assert!(
        applied.starts_with("namespace sjns-payments-dev (in sync)"),
        "{applied}"
    );
    assert!(
        applied.contains("quota: cpu 16, memory 64Gi, pods 40"),
        "{applied}"
    );
    let (_, quota) = cluster.get(&quota_path()).await;
    assert_eq!(quota["spec"]["hard"]["requests.storage"], "500Gi");
    let got: Value =
        serde_json::from_str(&sk8(&["-o", "json", "namespace", "get", "payments", "dev"])).unwrap();
    assert_eq!(got["drift"], false, "{got}");
    let listed = sk8(&["namespace", "list", "--team", "payments"]);
    assert!(listed.lines().nth(1).unwrap().starts_with(NS), "{listed}");
    let deleted = sk8(&["namespace", "delete", "payments", "dev"]);
    assert_eq!(deleted.trim(), format!("namespace {NS} deleted"));
    assert_eq!(
        cluster.get(&format!("/api/v1/namespaces/{NS}")).await.0,
        404
    );
}

/// With several clusters, a namespace is applied on the one its team/env is routed to, and its
/// detail names that cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_lives_on_the_cluster_its_team_is_routed_to() {
    let (east, west) = (Cluster::start().await, Cluster::start().await);
    let mut options = common::Options::new(Engine::Sqlite);
    options.extra = json!({"backend": {"kind": "kubernetes", "kubernetes": {
        "clusters": [
            {"name": "east", "kubeconfig": &*east.kubeconfig, "teams": ["payments"]},
            {"name": "west", "kubeconfig": &*west.kubeconfig, "teams": ["payments/prod"]},
        ],
    }}});
    let app = TestApp::spawn(options).await;
    for (env, on, not_on, name) in [
        ("dev", &east, &west, "east"),
        ("prod", &west, &east, "west"),
    ] {
        let (status, detail) = put(&app, "payments", env, &json!({})).await;
        assert_eq!(status, 201, "{detail}");
        assert_eq!(detail["clusters"][0]["cluster"], name, "{detail}");
        assert_eq!(detail["clusters"].as_array().unwrap().len(), 1);
        let path = format!("/api/v1/namespaces/sjns-payments-{env}");
        assert_eq!(on.get(&path).await.0, 200);
        assert_eq!(not_on.get(&path).await.0, 404);
    }
}
