//! sk8's own gRPC services (`proto/sk8/v1`), served on the gateway's port beside the Spark
//! Connect proxy: thin transports over the same service layer as the HTTP API, with the
//! domain [`Error`] mapped to a gRPC status here.

pub mod namespaces;

use crate::error::Error;

/// The code generated from `proto/sk8/v1/*.proto`.
pub mod proto {
    tonic::include_proto!("sk8.v1");
}

/// The metadata key carrying the field an INVALID_ARGUMENT is about (its JSON path).
pub const FIELD_METADATA: &str = "sk8-field";

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        use tonic::Code;
        let code = match &err {
            Error::InvalidRequest { .. }
            | Error::InvalidFields(_)
            | Error::UnsupportedMediaType(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::Forbidden(_) => Code::PermissionDenied,
            Error::Conflict(_) => Code::FailedPrecondition,
            Error::PayloadTooLarge(_) | Error::TooManyRequests { .. } => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(source) => {
                // Logged once, here, with the whole chain; the client sees a generic message.
                tracing::error!(error = format!("{source:#}"), "RPC failed");
                Code::Internal
            }
        };
        let message = match err.field() {
            Some(field) if !err.to_string().starts_with(field) => format!("{field}: {err}"),
            _ => err.to_string(),
        };
        let mut status = tonic::Status::new(code, message);
        if let Some(field) = err.field().and_then(|f| f.parse().ok()) {
            status.metadata_mut().insert(FIELD_METADATA, field);
        }
        if let Error::TooManyRequests {
            retry_after: Some(wait),
            ..
        } = &err
        {
            // gRPC's retry pushback: clients that honour it wait this long before retrying.
            let millis = wait.as_millis().max(1).to_string();
            if let Ok(value) = millis.parse() {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", value);
            }
        }
        status
    }
}
