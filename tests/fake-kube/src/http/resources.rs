//! Resource endpoints: `/api/v1/...` and `/apis/<group>/<version>/...`, parsed into a
//! [`Target`] and dispatched by verb to the store. Objects leave at the requested version,
//! as Tables when kubectl asks for them.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::logs;
use super::params::{Params, accept, content_type};
use crate::error::{ApiError, ApiResult};
use crate::protobuf;
use crate::resources::lookup;
use crate::schema::schema_of;
use crate::store::{Outcome, Patch, Preconditions, Target};
use crate::table::{IncludeObject, table, wants_table};
use crate::watch::WatchItem;

/// `/api/v1/{*rest}`.
pub async fn core(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    request: axum::extract::Request,
) -> Response {
    respond(handle(&state, "", "v1", &rest, request).await)
}

/// `/apis/{group}/{version}/{*rest}`.
pub async fn grouped(
    State(state): State<AppState>,
    Path((group, version, rest)): Path<(String, String, String)>,
    request: axum::extract::Request,
) -> Response {
    respond(handle(&state, &group, &version, &rest, request).await)
}

fn respond(result: ApiResult<Response>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Bodies up to this size are read (a CRD is about 1 MiB).
const MAX_BODY: usize = 16 << 20;

/// A request with its body read.
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Request {
    async fn read(request: axum::extract::Request) -> ApiResult<Self> {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        Ok(Request {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    None,
    Status,
    Log,
}

async fn handle(
    state: &AppState,
    group: &str,
    version: &str,
    rest: &str,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let (target, sub) = parse_target(group, version, rest)?;
    let req = Request::read(request).await?;
    let params = Params::from_uri(&req.uri)?;
    let has_name = target.name.is_some();
    match (&req.method, has_name, sub) {
        (&Method::GET, false, _) if params.watch() => watch(state, &target, &params, &req.headers),
        (&Method::GET, false, _) => list(state, &target, &params, &req.headers),
        (&Method::POST, false, _) if target.kind.namespaced() && target.namespace.is_none() => {
            Err(ApiError::method_not_allowed())
        }
        (&Method::POST, false, _) => create(state, &target, &params, &req),
        (&Method::GET, true, Sub::Log) => logs::get(state, &target, &params).await,
        (&Method::GET, true, _) => {
            let object = state.store.get(&target)?;
            Ok(object_response(
                &target,
                object,
                StatusCode::OK,
                &[],
                &req.headers,
                &params,
            ))
        }
        (&Method::PUT, true, Sub::None | Sub::Status) => update(state, &target, &params, &req),
        (&Method::PATCH, true, Sub::None | Sub::Status) => patch(state, &target, &params, &req),
        (&Method::DELETE, true, Sub::None) => delete(state, &target, &params, &req),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `[namespaces/{ns}/]{plural}[/{name}[/{subresource}]]` → target and subresource.
fn parse_target(group: &str, version: &str, rest: &str) -> ApiResult<(Target, Sub)> {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let namespaced_path = segments.len() >= 3
        && segments[0] == "namespaces"
        && lookup(group, version, segments[2]).is_some_and(|(k, _)| k.namespaced());
    let (namespace, segments) = if namespaced_path {
        (Some(segments[1].to_string()), &segments[2..])
    } else {
        (None, &segments[..])
    };
    let (plural, name, sub, extra) = (
        segments.first(),
        segments.get(1),
        segments.get(2),
        segments.get(3),
    );
    let Some((kind, version)) = plural.and_then(|p| lookup(group, version, p)) else {
        return Err(ApiError::no_route());
    };
    let sub = match sub.copied() {
        None => Sub::None,
        Some("status") if kind.status => Sub::Status,
        Some("log") if kind.log => Sub::Log,
        Some(_) => return Err(ApiError::no_route()),
    };
    if extra.is_some() {
        return Err(ApiError::no_route());
    }
    let target = Target {
        kind,
        version,
        namespace,
        name: name.map(|n| n.to_string()),
        status: sub == Sub::Status,
    };
    Ok((target, sub))
}

/// Stored objects are at the storage version; clients get the version they asked for.
fn present(target: &Target, mut object: Value) -> Value {
    object["apiVersion"] = json!(target.api_version());
    object
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let json = HeaderValue::from_static("application/json");
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    response
}

fn object_response(
    target: &Target,
    object: Value,
    status: StatusCode,
    warnings: &[String],
    headers: &HeaderMap,
    params: &Params,
) -> Response {
    let object = present(target, object);
    let body = if wants_table(accept(headers)) {
        table(target.kind, &[object], params.include_object(), true)
    } else {
        object
    };
    let mut response = json_response(status, &body);
    for warning in warnings {
        let text = format!("299 - {}", json!(warning));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

fn list(
    state: &AppState,
    target: &Target,
    params: &Params,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let page = state
        .store
        .list(target, &params.selector(target.kind)?, &params.page())?;
    let items: Vec<Value> = page.items.into_iter().map(|o| present(target, o)).collect();
    let mut metadata = json!({"resourceVersion": page.rv.to_string()});
    if let Some(token) = page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    let body = if wants_table(accept(headers)) {
        let mut t = table(target.kind, &items, params.include_object(), true);
        t["metadata"] = metadata;
        t
    } else {
        json!({
            "kind": format!("{}List", target.kind.kind),
            "apiVersion": target.api_version(),
            "metadata": metadata,
            "items": items,
        })
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// Reads a create or update body: JSON, YAML (which the real server also accepts), or the
/// protobuf kubectl's typed commands send.
fn read_body(target: &Target, req: &Request) -> ApiResult<Value> {
    let bad = |e: String| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    };
    match content_type(&req.headers).as_str() {
        "application/json" => serde_json::from_slice(&req.body).map_err(|e| bad(e.to_string())),
        "application/yaml" => {
            let text = std::str::from_utf8(&req.body).map_err(|e| bad(e.to_string()))?;
            serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))
        }
        protobuf::CONTENT_TYPE => protobuf::decode(target.kind, &req.body).map_err(|e| {
            ApiError::unsupported_media_type(
                &format!("{}: {e}", protobuf::CONTENT_TYPE),
                &["application/json", "application/yaml"],
            )
        }),
        other => Err(ApiError::unsupported_media_type(
            other,
            &[
                "application/json",
                "application/yaml",
                protobuf::CONTENT_TYPE,
            ],
        )),
    }
}

fn write_response(target: &Target, outcome: Outcome, req: &Request, params: &Params) -> Response {
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    object_response(
        target,
        outcome.object,
        status,
        &outcome.warnings,
        &req.headers,
        params,
    )
}

fn create(
    state: &AppState,
    target: &Target,
    params: &Params,
    req: &Request,
) -> ApiResult<Response> {
    let outcome = state.store.create(
        target,
        read_body(target, req)?,
        &params.write_options(&req.headers)?,
    )?;
    Ok(write_response(target, outcome, req, params))
}

fn update(
    state: &AppState,
    target: &Target,
    params: &Params,
    req: &Request,
) -> ApiResult<Response> {
    let outcome = state.store.update(
        target,
        read_body(target, req)?,
        &params.write_options(&req.headers)?,
    )?;
    Ok(write_response(target, outcome, req, params))
}

fn patch(state: &AppState, target: &Target, params: &Params, req: &Request) -> ApiResult<Response> {
    let patch = read_patch(target, params, req)?;
    let outcome = state
        .store
        .patch(target, patch, &params.write_options(&req.headers)?)?;
    Ok(write_response(target, outcome, req, params))
}

/// The patch type comes from Content-Type. Strategic merge is refused for custom resources,
/// like the real server; for built-ins it is served as a merge patch.
fn read_patch(target: &Target, params: &Params, req: &Request) -> ApiResult<Patch> {
    let custom = schema_of(target.kind, target.version).is_some();
    let mut accepted = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    if !custom {
        accepted.push("application/strategic-merge-patch+json");
    }
    let media = content_type(&req.headers);
    if !accepted.contains(&media.as_str()) {
        return Err(ApiError::unsupported_media_type(&media, &accepted));
    }
    if media != "application/apply-patch+yaml" && params.force().is_some() {
        return Err(ApiError::bad_request(
            "force may not be specified for non-apply patch",
        ));
    }
    let bad = |e: String| ApiError::bad_request(format!("error decoding patch: {e}"));
    let text = std::str::from_utf8(&req.body).map_err(|e| bad(e.to_string()))?;
    if media == "application/apply-patch+yaml" {
        if !params.explicit_field_manager() {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager parameter",
            ));
        }
        let config: Value = serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))?;
        return Ok(Patch::Apply {
            config,
            force: params.force().unwrap_or(false),
        });
    }
    let body: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    Ok(if media == "application/json-patch+json" {
        Patch::Json(body)
    } else {
        Patch::Merge(body)
    })
}

fn delete(
    state: &AppState,
    target: &Target,
    params: &Params,
    req: &Request,
) -> ApiResult<Response> {
    let options: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let text = |key: &str| options["preconditions"][key].as_str().map(str::to_string);
    let pre = Preconditions {
        uid: text("uid"),
        resource_version: text("resourceVersion"),
    };
    let dry_run = params.write_options(&req.headers)?.dry_run
        || options["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    let object = state.store.delete(target, &pre, dry_run)?;
    Ok(object_response(
        target,
        object,
        StatusCode::OK,
        &[],
        &req.headers,
        params,
    ))
}

fn watch(
    state: &AppState,
    target: &Target,
    params: &Params,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let selector = params.selector(target.kind)?;
    let timing = params.watch_timing(state.bookmark_every);
    let encoder = Encoder {
        target: target.clone(),
        tables: wants_table(accept(headers)),
        include: params.include_object(),
        sent: false,
    };
    let stream = match state.store.watch(
        target,
        selector,
        params.watch_start()?,
        &timing,
        state.outage.watch_token(),
    ) {
        Ok(stream) => stream,
        // Too old a resourceVersion is reported inside the stream, as kube-apiserver does.
        Err(gone) if gone.code == 410 => {
            let line = encoder.clone().encode(WatchItem::Error(gone));
            return Ok(stream_response(futures::stream::once(async move {
                Ok(Bytes::from(line))
            })));
        }
        Err(other) => return Err(other),
    };
    let lines =
        futures::stream::unfold((stream, encoder), |(mut stream, mut encoder)| async move {
            let item = stream.next().await?;
            Some((Ok(Bytes::from(encoder.encode(item))), (stream, encoder)))
        });
    Ok(stream_response(lines))
}

fn stream_response(
    lines: impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Turns watch items into JSON lines for one request's version and output format.
#[derive(Clone)]
struct Encoder {
    target: Target,
    tables: bool,
    include: IncludeObject,
    /// Column definitions go out with the first Table only.
    sent: bool,
}

impl Encoder {
    fn encode(&mut self, item: WatchItem) -> String {
        let (event_type, object) = match item {
            WatchItem::Event(event_type, object) => {
                let object = present(&self.target, object);
                let object = if self.tables {
                    let headers = !std::mem::replace(&mut self.sent, true);
                    table(self.target.kind, &[object], self.include, headers)
                } else {
                    object
                };
                (event_type.as_str(), object)
            }
            WatchItem::Bookmark { rv, initial_end } => {
                let mut metadata = json!({"resourceVersion": rv.to_string()});
                if initial_end {
                    metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                let object = json!({"kind": self.target.kind.kind, "apiVersion": self.target.api_version(), "metadata": metadata});
                ("BOOKMARK", object)
            }
            WatchItem::Error(error) => ("ERROR", error.status()),
        };
        format!("{}\n", json!({"type": event_type, "object": object}))
    }
}
