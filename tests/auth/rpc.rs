//! The matrix over RPCs: every method of `spark.connect.SparkConnectService` through the
//! gateway and every method of `sk8.v1.NamespaceProvisioning`, × every kind of caller, with the
//! gRPC code each cell must answer.
//!
//! No Spark server is needed to tell authorization apart: the session's server is a command
//! that never listens, and `gateway.resumeTimeoutSeconds` is 1, so an RPC that gets past
//! authorization waits a second for the session to be READY and ends UNAVAILABLE; one that
//! does not is refused at once (UNAUTHENTICATED, NOT_FOUND for another team's session,
//! PERMISSION_DENIED for a viewer).

use serde_json::json;
use sk8::grpc::proto::namespace_provisioning_client::NamespaceProvisioningClient;
use sk8::grpc::proto::{
    ApplyNamespaceRequest, DeleteNamespaceRequest, ListNamespacesRequest, NamespaceRef,
    NamespaceSpec,
};
use tonic::Code;
use tonic::transport::Channel;

use super::{Caller, Setup};
use crate::common::grpc;

/// One raw gRPC call to the gateway as `caller`: its status code and message.
async fn gateway_call(
    setup: &Setup,
    method: &str,
    caller: Caller,
    session: &str,
) -> (Code, String) {
    let mut metadata = vec![("x-sk8-session", session.to_owned())];
    if let Some(header) = setup.header(caller) {
        metadata.push(("authorization", header.to_owned()));
    }
    let body = grpc::spark_request(session);
    let answer = grpc::call(&setup.app.grpc, method, &metadata, body).await;
    (Code::from_i32(answer.code), answer.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_every_kind_of_caller_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let never_ready = grpc::never_ready_server(dir.path());
    let setup = Setup::start(json!({
        "backend": {"local": {"sparkSubmit": never_ready}},
        "gateway": {"resumeTimeoutSeconds": 1},
    }))
    .await;
    let app = &setup.app;
    let session = json!({"team": "payments", "env": "dev", "name": "notebook"});
    let created = app
        .http
        .post(app.url("/v1/sessions"))
        .header(
            "authorization",
            setup.header(Caller::PlatformAdmin).unwrap(),
        )
        .json(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let sid = created["id"].as_str().unwrap().to_owned();

    // Every cell at once: those past authorization each wait out the resume timeout.
    let cells = sk8::gateway::METHODS.iter().flat_map(|method| {
        Caller::ALL.map(|caller| {
            let (setup, sid) = (&setup, &sid);
            async move {
                (
                    *method,
                    caller,
                    gateway_call(setup, method, caller, sid).await,
                )
            }
        })
    });
    for (method, caller, (code, message)) in futures::future::join_all(cells).await {
        let expected = match caller.rank() {
            _ if caller.unauthenticated() => Code::Unauthenticated,
            None => Code::NotFound,
            Some(0) => Code::PermissionDenied,
            Some(_) => Code::Unavailable,
        };
        assert_eq!(code, expected, "{method} as {caller:?}: {message}");
        if code == Code::Unavailable {
            assert!(
                message.contains("READY"),
                "{method} as {caller:?}: {message}"
            );
        }
    }
    namespace_rpcs(&setup).await;
    let deleted = app
        .http
        .delete(app.url(&format!("/v1/sessions/{sid}")))
        .header(
            "authorization",
            setup.header(Caller::PlatformAdmin).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
}

/// `sk8.v1.NamespaceProvisioning`, one method at a time, on namespace payments/rpc.
async fn namespace_rpcs(setup: &Setup) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", setup.app.grpc))
        .unwrap()
        .connect()
        .await
        .expect("connect to the gRPC port");
    let mut client = NamespaceProvisioningClient::new(channel);
    // (method, least rank, what another team's member gets)
    let table = [
        ("ApplyNamespace", 2, Code::PermissionDenied),
        ("GetNamespace", 0, Code::NotFound),
        ("ListNamespaces", 0, Code::Ok),
        ("DeleteNamespace", 2, Code::PermissionDenied),
    ];
    for (method, least, other_team) in table {
        for caller in Caller::ALL {
            // Each caller finds the namespace there (deleting it is not idempotent).
            let apply = namespace_call(&mut client, setup, "ApplyNamespace", Caller::PlatformAdmin);
            assert_eq!(apply.await.0, Code::Ok);
            let (code, listed) = namespace_call(&mut client, setup, method, caller).await;
            let expected = match caller.rank() {
                _ if caller.unauthenticated() => Code::Unauthenticated,
                None => other_team,
                Some(rank) if rank < least => Code::PermissionDenied,
                Some(_) => Code::Ok,
            };
            assert_eq!(code, expected, "{method} as {caller:?}: {listed}");
            if caller == Caller::OtherTeam && code == Code::Ok {
                assert!(
                    !listed.contains("payments"),
                    "{method} as {caller:?}: {listed}"
                );
            }
        }
    }
}

/// One call as `caller`: the code, and the answer or error message as text.
async fn namespace_call(
    client: &mut NamespaceProvisioningClient<Channel>,
    setup: &Setup,
    method: &str,
    caller: Caller,
) -> (Code, String) {
    fn request<T>(message: T, setup: &Setup, caller: Caller) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(header) = setup.header(caller) {
            request
                .metadata_mut()
                .insert("authorization", header.parse().unwrap());
        }
        request
    }
    let (team, env) = ("payments".to_owned(), "rpc".to_owned());
    let at = NamespaceRef {
        team: team.clone(),
        env: env.clone(),
    };
    let answer = match method {
        "ApplyNamespace" => {
            let spec = NamespaceSpec {
                team: team.clone(),
                env: env.clone(),
                ..Default::default()
            };
            let message = ApplyNamespaceRequest { spec: Some(spec) };
            let answer = client
                .apply_namespace(request(message, setup, caller))
                .await;
            answer.map(|r| format!("{:?}", r.into_inner()))
        }
        "GetNamespace" => {
            let answer = client.get_namespace(request(at, setup, caller)).await;
            answer.map(|r| format!("{:?}", r.into_inner()))
        }
        "ListNamespaces" => {
            let message = ListNamespacesRequest::default();
            let answer = client
                .list_namespaces(request(message, setup, caller))
                .await;
            answer.map(|r| format!("{:?}", r.into_inner()))
        }
        "DeleteNamespace" => {
            let message = DeleteNamespaceRequest {
                team,
                env,
                force: false,
            };
            let answer = client
                .delete_namespace(request(message, setup, caller))
                .await;
            answer.map(|r| format!("{:?}", r.into_inner()))
        }
        _ => unreachable!("{method} is not in the table"),
    };
    match answer {
        Ok(text) => (Code::Ok, text),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}
