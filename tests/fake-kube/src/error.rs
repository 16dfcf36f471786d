//! API errors as the real API server reports them: a `v1 Status` object with a code, a reason
//! and the same wording kube-apiserver uses, so clients that match on reasons (kube-rs, kubectl)
//! behave as they would against a real cluster.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::resources::ResourceKind;

/// One reason an object is invalid (`details.causes[]` of a 422).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    /// `field: Invalid value: "value": why`.
    pub fn invalid(field: impl Into<String>, value: &Value, why: impl std::fmt::Display) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {why}"),
        }
    }

    /// `field: Required value: why`.
    pub fn required(field: impl Into<String>, why: &str) -> Self {
        let message = if why.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {why}")
        };
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    /// `field: Unsupported value: "v": supported values: "a", "b"`.
    pub fn unsupported(field: impl Into<String>, value: &Value, allowed: &[Value]) -> Self {
        let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                allowed.join(", ")
            ),
        }
    }
}

/// An error response: the HTTP code plus the `Status` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(kind: &ResourceKind, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", kind.group_resource()),
        )
        .with_details(json!({"name": name, "group": kind.group, "kind": kind.plural}))
    }

    /// A URL that names no resource the fake serves.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn already_exists(kind: &ResourceKind, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", kind.group_resource()),
        )
        .with_details(json!({"name": name, "group": kind.group, "kind": kind.plural}))
    }

    /// ResourceQuota admission: one more object would pass `quota`'s count of `resource`.
    pub fn exceeded_quota(
        kind: &ResourceKind,
        name: &str,
        quota: &str,
        resource: &str,
        used: u64,
        hard: u64,
    ) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} {name:?} is forbidden: exceeded quota: {quota}, requested: {resource}=1, \
                 used: {resource}={used}, limited: {resource}={hard}",
                kind.group_resource()
            ),
        )
        .with_details(json!({"name": name, "group": kind.group, "kind": kind.plural}))
    }

    /// A stale `resourceVersion` (optimistic concurrency).
    pub fn conflict(kind: &ResourceKind, name: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} {name:?}: the object has been modified; \
             please apply your changes to the latest version and try again",
            kind.group_resource()
        );
        Self::new(409, "Conflict", message)
            .with_details(json!({"name": name, "group": kind.group, "kind": kind.plural}))
    }

    /// Server-side apply conflicts: the message is built by the apply module.
    pub fn apply_conflict(message: String, causes: Vec<Cause>) -> Self {
        Self::new(409, "Conflict", message).with_details(json!({"causes": causes_json(&causes)}))
    }

    pub fn invalid(kind: &ResourceKind, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = match summary.len() {
            1 => summary[0].clone(),
            _ => format!("[{}]", summary.join(", ")),
        };
        let message = format!("{} {name:?} is invalid: {summary}", kind.group_kind());
        Self::new(422, "Invalid", message).with_details(json!({
            "name": name, "group": kind.group, "kind": kind.kind, "causes": causes_json(&causes),
        }))
    }

    /// A delete precondition (uid or resourceVersion) that does not hold.
    pub fn precondition_failed(
        kind: &ResourceKind,
        name: &str,
        what: &str,
        expected: &str,
        actual: Option<&str>,
    ) -> Self {
        let actual = actual.unwrap_or("");
        let message = format!(
            "Precondition failed: {what} in precondition: {expected}, {what} in object meta: {actual}"
        );
        Self::new(409, "Conflict", message)
            .with_details(json!({"name": name, "group": kind.group, "kind": kind.plural}))
    }

    /// A patch that cannot be applied to the object.
    pub fn unprocessable(message: String) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {message}"),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        let message = format!(
            "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: {}",
            accepted.join(", ")
        );
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// What every request gets while the fake plays an outage.
    pub fn unavailable() -> Self {
        Self::new(
            503,
            "ServiceUnavailable",
            "the API server is unavailable (a test outage)",
        )
    }

    /// A resourceVersion or continue token older than the retained history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The `v1 Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

fn causes_json(causes: &[Cause]) -> Value {
    causes
        .iter()
        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
        .collect()
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.status())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
