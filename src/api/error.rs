//! The HTTP face of [`Error`]: a status code and `{"error":{"code","message","field"}}`, plus
//! `errors: [{field, message}]` with every broken rule of an invalid request.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;

/// The `Retry-After` of a 503.
const UNAVAILABLE_RETRY_SECONDS: u64 = 2;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_request`, `not_found`, `conflict`, …
    pub code: &'static str,
    /// For a person: what is wrong and what to do about it.
    pub message: String,
    /// The request field at fault, when there is one (`driver.memory`, `labels.team`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `invalid_request`: every broken rule, each with its field; the first is the one in
    /// `field` and `message`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorBody>,
}

/// One broken rule of an invalid request.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    /// The field's JSON path (`driver.memory`, `sparkConf.spark.master`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Error::InvalidRequest { .. } | Error::InvalidFields(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = (self.status(), self.code());
        if let Error::Internal(source) = &self {
            // Logged once, here, with the whole chain; the client sees a generic message.
            tracing::error!(error = format!("{source:#}"), "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                field: self.field().map(str::to_owned),
                errors: self
                    .field_errors()
                    .into_iter()
                    .map(|e| FieldErrorBody {
                        field: e.field,
                        message: e.message,
                    })
                    .collect(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Error::TooManyRequests {
            retry_after: Some(wait),
            ..
        } = &self
        {
            // Whole seconds, rounded up: a client retrying at once would be refused again.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds.max(1)),
            );
        }
        if let Error::Unavailable(_) = &self {
            // What is unreachable (the store restarting, a cluster's API) usually is back
            // within seconds; clients and proxies that honour the header retry then.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(UNAVAILABLE_RETRY_SECONDS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use crate::domain::jobspec::Format;
    use crate::domain::{JobSpec, SessionSpec, SpecDefaults};

    /// The keys manifests use, so generated documents get past the first checks into the
    /// field rules; plus keys no manifest has.
    const KEYS: [&str; 16] = [
        "team",
        "env",
        "name",
        "mainApplicationFile",
        "mainClass",
        "args",
        "driver",
        "executor",
        "memory",
        "cores",
        "instances",
        "sparkConf",
        "labels",
        "deps",
        "timeoutSeconds",
        "no-such-field",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            "[a-z0-9./:_-]{0,12}".prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(prop::sample::select(&KEYS[..]), inner, 0..8)
                    .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            ]
        })
    }

    fn assert_client_errors(body: &[u8], format: Format) {
        let defaults = SpecDefaults {
            spark_version: "4.0.1".into(),
            image: "apache/spark:4.0.1".into(),
        };
        let errors = [
            JobSpec::parse(body, format, &defaults).err(),
            SessionSpec::parse(body, format, &defaults).err(),
        ];
        for error in errors.into_iter().flatten() {
            let status = error.status();
            assert!(status.is_client_error(), "{status} for {error:?}");
        }
    }

    proptest! {
        #[test]
        fn every_parser_error_of_a_json_document_is_a_4xx(value in json_value()) {
            assert_client_errors(value.to_string().as_bytes(), Format::Json);
            // The same document as YAML (JSON is YAML).
            assert_client_errors(value.to_string().as_bytes(), Format::Yaml);
        }

        #[test]
        fn every_parser_error_of_arbitrary_bytes_is_a_4xx(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            assert_client_errors(&bytes, Format::Json);
            assert_client_errors(&bytes, Format::Yaml);
        }
    }
}
