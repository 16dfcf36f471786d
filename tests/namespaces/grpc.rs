//! `sk8.v1.NamespaceProvisioning` over gRPC against the same scenario over REST.

use serde_json::{Value, json};

use super::common::Engine;
use super::{put, setup};

/// The same scenario over REST (team `payments`) and over gRPC (team `risk`) ends the same:
/// created, then found again; read back alike; the same rejection naming the same field; the
/// same refusal to delete while a job runs, and the same delete when forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_rest_give_the_same_result() {
    use sk8::grpc::proto::namespace_provisioning_client::NamespaceProvisioningClient;
    use sk8::grpc::proto::{
        ApplyNamespaceRequest, DeleteNamespaceRequest, NamespaceRef, NamespaceSpec, Quota,
        SecretRef,
    };
    let (_cluster, app) = setup(Engine::Sqlite, json!({})).await;
    let mut grpc = NamespaceProvisioningClient::new(app.grpc_channel().await);
    let grpc_spec = |cpu: &str| NamespaceSpec {
        team: "risk".into(),
        env: "dev".into(),
        quota: Some(Quota {
            cpu: cpu.into(),
            memory: "64Gi".into(),
            pods: Some(40),
            other: [("services".to_owned(), "10".to_owned())].into(),
        }),
        secrets: vec![SecretRef {
            name: "object-store".into(),
        }],
        ..Default::default()
    };
    let rest_spec = |cpu: &str| {
        json!({"quota": {"cpu": cpu, "memory": "64Gi", "pods": 40, "other": {"services": "10"}},
               "secrets": [{"name": "object-store"}]})
    };
    let apply = |spec| ApplyNamespaceRequest { spec: Some(spec) };

    // Created, then the same spec again.
    let (status, rest) = put(&app, "payments", "dev", &rest_spec("16")).await;
    let first = grpc
        .apply_namespace(apply(grpc_spec("16")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status, first.created), (201, true));
    let (status, _) = put(&app, "payments", "dev", &rest_spec("16")).await;
    let again = grpc
        .apply_namespace(apply(grpc_spec("16")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status, again.created), (200, false));

    // Read back alike: the filled-in spec, every object in sync.
    let got = grpc
        .get_namespace(NamespaceRef {
            team: "risk".into(),
            env: "dev".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let spec = got.spec.clone().unwrap();
    let quota = spec.quota.unwrap();
    assert_eq!(
        json!([quota.cpu, quota.memory, quota.pods]),
        json!([
            rest["spec"]["quota"]["cpu"],
            rest["spec"]["quota"]["memory"],
            rest["spec"]["quota"]["pods"]
        ])
    );
    let limits = spec.limits.unwrap().max.unwrap();
    assert_eq!(
        json!([limits.cpu, limits.memory]),
        json!([
            rest["spec"]["limits"]["max"]["cpu"],
            rest["spec"]["limits"]["max"]["memory"]
        ])
    );
    let grpc_objects: Vec<Value> = got.clusters[0]
        .objects
        .iter()
        .map(|o| json!([o.kind, o.name.replace("risk", "payments"), o.state]))
        .collect();
    let rest_objects: Vec<Value> = rest["clusters"][0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| json!([o["kind"], o["name"], o["state"]]))
        .collect();
    assert_eq!(grpc_objects, rest_objects);
    assert_eq!(
        (got.drift, got.namespace.as_str()),
        (false, "sjns-risk-dev")
    );

    // The same rejection, naming the same field.
    let (status, error) = put(&app, "payments", "dev", &rest_spec("1000")).await;
    let rejected = grpc
        .apply_namespace(apply(grpc_spec("1000")))
        .await
        .unwrap_err();
    assert_eq!(
        (status, rejected.code()),
        (400, tonic::Code::InvalidArgument)
    );
    assert_eq!(rejected.metadata().get("sk8-field").unwrap(), "quota.cpu");
    assert_eq!(error["error"]["field"], "quota.cpu");
    assert_eq!(
        rejected.message(),
        format!("quota.cpu: {}", error["error"]["message"].as_str().unwrap())
    );
    let missing = grpc
        .get_namespace(NamespaceRef {
            team: "nobody".into(),
            env: "dev".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(app.get("/v1/namespaces/nobody/dev").await.0, 404);

    // Refused while a job runs; deleted when forced.
    for team in ["payments", "risk"] {
        app.submit(&json!({
            "team": team, "env": "dev", "name": "long",
            "mainApplicationFile": "local:///opt/job.py",
            "labels": {"fake.sk8.dev/outcome": "Running"},
        }))
        .await;
    }
    let delete_request = |force| DeleteNamespaceRequest {
        team: "risk".into(),
        env: "dev".into(),
        force,
    };
    let refused = grpc
        .delete_namespace(delete_request(false))
        .await
        .unwrap_err();
    let (status, error) = app.delete("/v1/namespaces/payments/dev").await;
    assert_eq!(
        (status, refused.code()),
        (409, tonic::Code::FailedPrecondition)
    );
    assert_eq!(
        refused.message(),
        error["error"]["message"]
            .as_str()
            .unwrap()
            .replace("payments", "risk")
    );
    let deleted = grpc
        .delete_namespace(delete_request(true))
        .await
        .unwrap()
        .into_inner();
    let (status, _) = app.delete("/v1/namespaces/payments/dev?force=true").await;
    assert_eq!(status, 200);
    assert!(!deleted.deleted_at.is_empty(), "{deleted:?}");
    let (_, list) = app.get("/v1/namespaces").await;
    assert_eq!(list["namespaces"], json!([]));
}

/// Every kind of bad input is INVALID_ARGUMENT over gRPC, naming the field as REST does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_rejections_name_the_field() {
    use sk8::grpc::proto::namespace_provisioning_client::NamespaceProvisioningClient;
    use sk8::grpc::proto::{ApplyNamespaceRequest, EgressRule, NamespaceSpec, Quota, SecretRef};
    let (_cluster, app) = setup(Engine::Sqlite, json!({})).await;
    let mut grpc = NamespaceProvisioningClient::new(app.grpc_channel().await);
    let base = NamespaceSpec {
        team: "risk".into(),
        env: "dev".into(),
        ..Default::default()
    };
    let quota = |cpu: &str| Quota {
        cpu: cpu.into(),
        ..Default::default()
    };
    let egress = |cidr: &str, port: u32| EgressRule {
        cidr: cidr.into(),
        ports: vec![port],
    };
    let cases = [
        (
            NamespaceSpec {
                team: "Risk".into(),
                ..base.clone()
            },
            "team",
        ),
        (
            NamespaceSpec {
                team: String::new(),
                ..base.clone()
            },
            "team",
        ),
        (
            NamespaceSpec {
                env: "e".repeat(60),
                ..base.clone()
            },
            "env",
        ),
        (
            NamespaceSpec {
                quota: Some(quota("1000")),
                ..base.clone()
            },
            "quota.cpu",
        ),
        (
            NamespaceSpec {
                quota: Some(quota("lots")),
                ..base.clone()
            },
            "quota.cpu",
        ),
        (
            NamespaceSpec {
                secrets: vec![SecretRef {
                    name: "nope".into(),
                }],
                ..base.clone()
            },
            "secrets[0].name",
        ),
        (
            NamespaceSpec {
                egress: vec![egress("10.0.0.0", 443)],
                ..base.clone()
            },
            "egress[0].cidr",
        ),
        (
            NamespaceSpec {
                egress: vec![egress("10.0.0.0/8", 70000)],
                ..base.clone()
            },
            "egress[0].ports[0]",
        ),
    ];
    for (spec, field) in cases {
        let request = ApplyNamespaceRequest {
            spec: Some(spec.clone()),
        };
        let status = grpc.apply_namespace(request).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{spec:?}: {status:?}"
        );
        assert_eq!(
            status.metadata().get("sk8-field").unwrap(),
            field,
            "{status:?}"
        );
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{status:?}"
        );
    }
    let (_, list) = app.get("/v1/namespaces").await;
    assert_eq!(list["namespaces"], json!([]));
}
