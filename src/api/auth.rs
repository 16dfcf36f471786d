//! Authentication and the authorization table of the HTTP API: every route declares the least
//! role it needs ([`ROUTES`]); a test fails when a documented route has no entry. Handlers of
//! protected routes take the caller's [`Identity`], which only this middleware provides, and
//! check its teams (the service layer does).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::audit::AuditEvent;
use crate::auth::Role;
use crate::error::Error;

/// The least role of each route: `None` is open to anyone, unauthenticated.
pub const ROUTES: &[(&str, &str, Option<Role>)] = &[
    ("POST", "/v1/jobs", Some(Role::Member)),
    ("GET", "/v1/jobs", Some(Role::Viewer)),
    ("GET", "/v1/jobs/{id}", Some(Role::Viewer)),
    ("POST", "/v1/jobs/{id}/cancel", Some(Role::Member)),
    ("GET", "/v1/jobs/{id}/events", Some(Role::Viewer)),
    ("GET", "/v1/jobs/{id}/logs", Some(Role::Viewer)),
    (
        "GET",
        "/v1/jobs/{id}/attempts/{attempt}",
        Some(Role::Viewer),
    ),
    ("POST", "/v1/sessions", Some(Role::Member)),
    ("GET", "/v1/sessions", Some(Role::Viewer)),
    ("GET", "/v1/advice", Some(Role::Viewer)),
    ("GET", "/v1/advice/report", Some(Role::Viewer)),
    ("GET", "/v1/jobs/{id}/ui", Some(Role::Viewer)),
    ("GET", "/v1/jobs/{id}/ui/", Some(Role::Viewer)),
    ("GET", "/v1/jobs/{id}/ui/{path}", Some(Role::Viewer)),
    ("GET", "/v1/sessions/{id}/ui", Some(Role::Viewer)),
    ("GET", "/v1/sessions/{id}/ui/", Some(Role::Viewer)),
    ("GET", "/v1/sessions/{id}/ui/{path}", Some(Role::Viewer)),
    ("GET", "/v1/sessions/{id}", Some(Role::Viewer)),
    ("DELETE", "/v1/sessions/{id}", Some(Role::Member)),
    ("GET", "/v1/sessions/{id}/events", Some(Role::Viewer)),
    ("PUT", "/v1/namespaces/{team}/{env}", Some(Role::TeamAdmin)),
    ("GET", "/v1/namespaces/{team}/{env}", Some(Role::Viewer)),
    ("GET", "/v1/namespaces", Some(Role::Viewer)),
    (
        "DELETE",
        "/v1/namespaces/{team}/{env}",
        Some(Role::TeamAdmin),
    ),
    ("GET", "/v1/audit", Some(Role::TeamAdmin)),
    // Probes and scrapes come from the kubelet and Prometheus, without credentials.
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
    ("GET", "/openapi.json", None),
];

/// The entry of a route as the router matched it: HEAD is answered by GET's handler, and a
/// catch-all segment (`{*path}`) is documented as a plain one (`{path}`).
fn least_role(method: &str, route: &str) -> Option<Option<Role>> {
    let method = if method == "HEAD" { "GET" } else { method };
    let route = route.replace("{*", "{");
    ROUTES
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map(|(_, _, role)| *role)
}

/// Authenticates the caller of a protected route and checks the route's least role; the
/// identity goes to the handler. A method a route does not have passes on to its 405. A
/// refusal is audited.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let Some(route) = request.extensions().get::<MatchedPath>().cloned() else {
        return next.run(request).await;
    };
    let Some(Some(role)) = least_role(&method, route.as_str()) else {
        return next.run(request).await;
    };
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let denied = |actor: &str, err: Error| {
        state.audit.record(
            AuditEvent::new(actor, "http.denied")
                .resource(format!("{method} {}", route.as_str()))
                .failed(&err),
        );
        err.into_response()
    };
    let identity = match state.auth.authenticate(header).await {
        Ok(identity) => identity,
        Err(err) => return denied("anonymous", Error::from(err)),
    };
    if identity.role < role {
        let message = format!(
            "{} is a {}; this takes the {} role",
            identity.user,
            identity.role.as_str(),
            role.as_str()
        );
        return denied(&identity.user, Error::Forbidden(message));
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::*;

    #[test]
    fn every_documented_route_has_an_entry_and_every_entry_a_route() {
        let doc = super::super::ApiDoc::openapi();
        let mut documented = Vec::new();
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
            ];
            for (method, present) in methods {
                if present {
                    assert!(
                        least_role(method, path).is_some(),
                        "{method} {path} has no entry in api::auth::ROUTES"
                    );
                    documented.push((method, path.clone()));
                }
            }
        }
        for (method, route, _) in ROUTES {
            assert!(
                documented.iter().any(|(m, p)| m == method && p == route),
                "{method} {route} is in ROUTES but not a documented route"
            );
        }
    }
}
