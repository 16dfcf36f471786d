//! The domain error every layer returns, mapped to HTTP at the edge (`api::error`).
//!
//! The message is what a client sees; internal detail (driver errors, SQL) is logged where the
//! error is handled and never put in a response.

use std::fmt;

/// One broken rule: the field at fault (its JSON path, when known) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

/// The first violation's message and how many more there are.
fn headline(errors: &[FieldError]) -> String {
    let first = errors.first().map_or("", |e| e.message.as_str());
    match errors.len().saturating_sub(1) {
        0 => first.to_owned(),
        1 => format!("{first} (and 1 more error, see `errors`)"),
        more => format!("{first} (and {more} more errors, see `errors`)"),
    }
}

/// What went wrong, from the caller's point of view.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a rule; `field` names the offending field when known.
    #[error("{message}")]
    InvalidRequest {
        field: Option<String>,
        message: String,
    },
    /// Several rules broken at once, each with its field (at least two; one is an
    /// `InvalidRequest`). The first is the headline, so older clients still read a message.
    #[error("{}", headline(.0))]
    InvalidFields(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    /// No (valid) credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Over a rate limit or a cap; `retry_after` when waiting is what helps.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency (the store, a backend) is not reachable right now; retrying may help.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the detail is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::InvalidRequest {
            field: Some(field.into()),
            message: message.to_string(),
        }
    }

    /// Stable and machine-readable: the `code` of an HTTP error body, an audit outcome.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } | Error::InvalidFields(_) => "invalid_request",
            Error::NotFound(_) => "not_found",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::TooManyRequests { .. } => "too_many_requests",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidRequest { field, .. } => field.as_deref(),
            Error::InvalidFields(errors) => errors.first().and_then(|e| e.field.as_deref()),
            _ => None,
        }
    }

    /// Every broken rule of an invalid request, each with its field; empty for other errors.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Error::InvalidRequest { field, message } => vec![FieldError {
                field: field.clone(),
                message: message.clone(),
            }],
            Error::InvalidFields(errors) => errors.clone(),
            _ => Vec::new(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
