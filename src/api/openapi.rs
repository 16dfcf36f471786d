//! The OpenAPI document as clients are generated from it: what utoipa derives from the
//! handlers, made precise where its annotations cannot say enough. Every operation gets a
//! unique `operationId`; every `/v1` operation documents the statuses any request may meet
//! (401 and 403 from authentication, 429 from the team's limits, 503 while the store is
//! unreachable); ids created by a POST link to the operations that read them; the names sk8
//! validates carry their patterns and lengths, so a request that matches the schema is one sk8
//! accepts.

use serde_json::{Value, json};
use utoipa::OpenApi;

use super::ApiDoc;

/// The operation ids, by method and path: stable names for generated clients.
const OPERATION_IDS: &[(&str, &str, &str)] = &[
    ("post", "/v1/jobs", "submitJob"),
    ("get", "/v1/jobs", "listJobs"),
    ("get", "/v1/jobs/{id}", "getJob"),
    ("post", "/v1/jobs/{id}/cancel", "cancelJob"),
    ("get", "/v1/jobs/{id}/events", "listJobEvents"),
    ("get", "/v1/jobs/{id}/logs", "getJobLogs"),
    ("get", "/v1/jobs/{id}/attempts/{attempt}", "getJobAttempt"),
    ("get", "/v1/jobs/{id}/ui", "redirectToJobUi"),
    ("get", "/v1/jobs/{id}/ui/", "getJobUi"),
    ("get", "/v1/jobs/{id}/ui/{path}", "getJobUiPage"),
    ("get", "/v1/sessions/{id}/ui", "redirectToSessionUi"),
    ("get", "/v1/sessions/{id}/ui/", "getSessionUi"),
    ("get", "/v1/sessions/{id}/ui/{path}", "getSessionUiPage"),
    ("get", "/v1/advice", "getAdvice"),
    ("get", "/v1/advice/report", "getAdviceReport"),
    ("post", "/v1/sessions", "createSession"),
    ("get", "/v1/sessions", "listSessions"),
    ("get", "/v1/sessions/{id}", "getSession"),
    ("delete", "/v1/sessions/{id}", "deleteSession"),
    ("get", "/v1/sessions/{id}/events", "listSessionEvents"),
    ("put", "/v1/namespaces/{team}/{env}", "applyNamespace"),
    ("get", "/v1/namespaces", "listNamespaces"),
    ("get", "/v1/namespaces/{team}/{env}", "getNamespace"),
    ("delete", "/v1/namespaces/{team}/{env}", "deleteNamespace"),
    ("get", "/v1/audit", "listAuditEvents"),
    ("get", "/healthz", "healthz"),
    ("get", "/readyz", "readyz"),
    ("get", "/metrics", "metrics"),
    ("get", "/openapi.json", "openapi"),
];

/// Statuses every `/v1` operation may answer, whatever it does.
const COMMON_STATUSES: &[(&str, &str)] = &[
    (
        "401",
        "No bearer token, or one sk8 does not accept (auth.mode: tokens)",
    ),
    ("403", "The caller's role does not allow this in that team"),
    (
        "429",
        "The team's rate limit or cap; Retry-After says when to try again",
    ),
    (
        "503",
        "sk8 cannot reach its store now; Retry-After says when to try again",
    ),
];

/// A POST's path, what it creates, and the (link name, operation id) its answer's `id` leads to.
type CreateLinks = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// What a POST creates, and the reads its answer's `id` leads to.
const LINKS: &[CreateLinks] = &[
    (
        "/v1/jobs",
        "Job",
        &[
            ("GetJob", "getJob"),
            ("ListJobEvents", "listJobEvents"),
            ("GetJobLogs", "getJobLogs"),
            ("CancelJob", "cancelJob"),
        ],
    ),
    (
        "/v1/sessions",
        "Session",
        &[
            ("GetSession", "getSession"),
            ("ListSessionEvents", "listSessionEvents"),
            ("DeleteSession", "deleteSession"),
        ],
    ),
];

/// A DNS-1123 label, as `names::dns_label_rule` checks it.
const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Team and env together name the namespace `sjns-<team>-<env>`, itself a label of at most 63
/// characters: in the namespace paths, the schema gives each half of what is left (a body's
/// team and env are DNS labels of up to 63, and sk8 names the field when the pair is too long).
const TEAM_ENV_MAX: usize = 28;

/// The document served at `/openapi.json` and committed as `docs/openapi.json`.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    for (method, path, id) in OPERATION_IDS {
        doc["paths"][path][method]["operationId"] = json!(id);
    }
    common_statuses(&mut doc);
    links(&mut doc);
    names(&mut doc);
    namespace_body(&mut doc);
    dry_run_answer(&mut doc);
    doc
}

/// A submit's 200 is the job an Idempotency-Key made before, or (`dryRun=true`) the effective
/// spec: utoipa takes one body per status, so the second is added here.
fn dry_run_answer(doc: &mut Value) {
    let ok = &mut doc["paths"]["/v1/jobs"]["post"]["responses"]["200"];
    ok["description"] = json!(
        "The job this Idempotency-Key created before; with dryRun=true, the effective spec \
         (nothing is created)"
    );
    ok["content"]["application/json"]["schema"] = json!({"anyOf": [
        {"$ref": "#/components/schemas/Job"},
        {"$ref": "#/components/schemas/DryRun"},
    ]});
}

fn common_statuses(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut().filter(|(p, _)| p.starts_with("/v1/")) {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let responses = &mut operation["responses"];
            for (status, description) in COMMON_STATUSES {
                if responses.get(*status).is_none() {
                    responses[*status] = error_response(description);
                }
            }
            if method == "delete" || path.ends_with("/logs") {
                // force= and follow= take only true or false; other parameters are refused.
                if responses.get("400").is_none() {
                    responses["400"] =
                        error_response("A parameter that is not true or false, or unknown");
                }
            }
        }
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

fn links(doc: &mut Value) {
    for (path, what, targets) in LINKS {
        let mut links = serde_json::Map::new();
        for (name, operation) in *targets {
            links.insert(
                (*name).to_owned(),
                json!({
                    "operationId": operation,
                    "parameters": {"id": "$response.body#/id"},
                    "description": format!("The {what} this request created"),
                }),
            );
        }
        doc["paths"][path]["post"]["responses"]["201"]["links"] = Value::Object(links.clone());
        // A session's 200 is the one its Idempotency-Key made; a job's may also be a dry run,
        // which has no id to follow.
        if *path != "/v1/jobs" {
            doc["paths"][path]["post"]["responses"]["200"]["links"] = Value::Object(links);
        }
    }
}

/// Patterns and lengths of the names sk8 validates: teams and envs (also in the namespace
/// paths), and `label` filters (`key=value`).
fn names(doc: &mut Value) {
    let label = &mut doc["components"]["schemas"]["DnsLabel"];
    label["pattern"] = json!(DNS_LABEL_PATTERN);
    label["minLength"] = json!(1);
    label["maxLength"] = json!(63);
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let advice = path.starts_with("/v1/advice");
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            // get_mut: indexing a missing key would insert a null.
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters {
                match (parameter["name"].as_str(), parameter["in"].as_str()) {
                    (Some("team" | "env"), Some("path")) => {
                        parameter["schema"] = json!({
                            "type": "string",
                            "pattern": DNS_LABEL_PATTERN,
                            "minLength": 1,
                            "maxLength": TEAM_ENV_MAX,
                        });
                        parameter["description"] = json!(
                            "A DNS-1123 label; sjns-<team>-<env> must fit in 63 characters, so \
                             the schema allows 28 each"
                        );
                    }
                    // Advice is for one signature: its team and env are required labels (list
                    // filters take any string), its name is not blank.
                    (Some("team" | "env"), Some("query")) if advice => {
                        parameter["schema"] = json!({
                            "type": "string",
                            "pattern": DNS_LABEL_PATTERN,
                            "minLength": 1,
                            "maxLength": 63,
                        });
                    }
                    (Some("profile"), Some("query")) if advice => {
                        parameter["schema"] =
                            json!({"type": "string", "enum": ["conservative", "balanced", "cost"]});
                    }
                    (Some("name"), Some("query")) if advice => {
                        parameter["schema"] = json!({"type": "string", "pattern": "\\S"});
                    }
                    (Some("label"), Some("query")) => {
                        parameter["schema"]["items"]["pattern"] = json!("^[^=]+=");
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The body of `PUT /v1/namespaces/{team}/{env}`: a NamespaceSpec whose team and env are the
/// URL's. sk8 still takes them in the body when they match it; the schema leaves them out, as
/// no schema can say "equal to the path".
fn namespace_body(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    let mut body = schemas["NamespaceSpec"].clone();
    if let Some(properties) = body["properties"].as_object_mut() {
        properties.remove("team");
        properties.remove("env");
    }
    if let Some(required) = body["required"].as_array_mut() {
        required.retain(|r| r != "team" && r != "env");
    }
    body["description"] = json!("A NamespaceSpec without team and env: the URL names them.");
    schemas["NamespaceBody"] = body;
    let content = &mut doc["paths"]["/v1/namespaces/{team}/{env}"]["put"]["requestBody"]["content"];
    if let Some(content) = content.as_object_mut() {
        for media in content.values_mut() {
            media["schema"] = json!({"$ref": "#/components/schemas/NamespaceBody"});
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_operation_has_a_unique_id() {
        let doc = document();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap().to_owned();
                assert!(
                    ids.insert(id.clone()),
                    "{method} {path}: {id} is used twice"
                );
            }
        }
        assert_eq!(
            ids.len(),
            OPERATION_IDS.len(),
            "every listed operation exists"
        );
    }

    #[test]
    fn team_and_env_of_the_schema_always_fit_one_namespace_name() {
        let longest = crate::domain::names::NAMESPACE_PREFIX.len() + 2 * TEAM_ENV_MAX + 1;
        assert!(
            longest <= 63,
            "sjns-<team>-<env> would be {longest} characters"
        );
    }
}
