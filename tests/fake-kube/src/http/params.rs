//! Query parameters and content types of resource requests, parsed into the store's terms.

use std::time::Duration;

use axum::http::{HeaderMap, Uri, header};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceKind;
use crate::schema::FieldValidation;
use crate::selectors::{FieldSelector, LabelSelector, Selector};
use crate::store::{Page, WatchStart, WriteOptions};
use crate::table::IncludeObject;
use crate::watch::WatchTiming;

/// Every query parameter the fake reads; the others are ignored, as kube-apiserver ignores
/// parameters a verb does not use.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    label_selector: Option<String>,
    field_selector: Option<String>,
    watch: Option<String>,
    resource_version: Option<String>,
    timeout_seconds: Option<u64>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
    allow_watch_bookmarks: Option<String>,
    send_initial_events: Option<String>,
    field_manager: Option<String>,
    force: Option<String>,
    dry_run: Option<String>,
    field_validation: Option<String>,
    include_object: Option<String>,
    follow: Option<String>,
}

fn flag(value: &Option<String>) -> bool {
    matches!(value.as_deref(), Some("true" | "1" | "True"))
}

impl Params {
    pub fn from_uri(uri: &Uri) -> ApiResult<Self> {
        axum::extract::Query::<Params>::try_from_uri(uri)
            .map(|query| query.0)
            .map_err(|e| {
                ApiError::bad_request(format!("invalid query parameters: {}", e.body_text()))
            })
    }

    pub fn watch(&self) -> bool {
        flag(&self.watch)
    }

    pub fn follow(&self) -> bool {
        flag(&self.follow)
    }

    pub fn force(&self) -> Option<bool> {
        self.force.as_ref().map(|_| flag(&self.force))
    }

    pub fn selector(&self, kind: &ResourceKind) -> ApiResult<Selector> {
        let labels = LabelSelector::parse(self.label_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(self.field_selector.as_deref().unwrap_or(""), kind)
            .map_err(ApiError::bad_request)?;
        Ok(Selector { labels, fields })
    }

    pub fn page(&self) -> Page {
        Page {
            limit: self.limit,
            continue_token: self.continue_token.clone().filter(|t| !t.is_empty()),
        }
    }

    pub fn include_object(&self) -> IncludeObject {
        IncludeObject::parse(self.include_object.as_deref())
    }

    /// `resourceVersion` unset or "0" (or `sendInitialEvents=true`) starts with the current
    /// state; a number starts after it.
    pub fn watch_start(&self) -> ApiResult<WatchStart> {
        if flag(&self.send_initial_events) {
            return Ok(WatchStart::Current {
                end_bookmark: flag(&self.allow_watch_bookmarks),
            });
        }
        match self.resource_version.as_deref() {
            None | Some("" | "0") => Ok(WatchStart::Current {
                end_bookmark: false,
            }),
            Some(rv) => rv
                .parse()
                .map(WatchStart::After)
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}"))),
        }
    }

    pub fn watch_timing(&self, bookmark_every: Duration) -> WatchTiming {
        WatchTiming {
            timeout: self.timeout_seconds.map(Duration::from_secs),
            bookmark_every: flag(&self.allow_watch_bookmarks).then_some(bookmark_every),
        }
    }

    /// Manager (the `fieldManager` parameter, else the User-Agent's product, as the real
    /// server derives it), dry run and field validation.
    pub fn write_options(&self, headers: &HeaderMap) -> ApiResult<WriteOptions> {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        let manager = match &self.field_manager {
            Some(manager) if !manager.is_empty() => manager.clone(),
            _ => agent.split('/').next().unwrap_or(agent).to_string(),
        };
        let dry_run = match self.dry_run.as_deref() {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported dryRun value {other:?}: only All"
                )));
            }
        };
        let validation = FieldValidation::parse(self.field_validation.as_deref())?;
        Ok(WriteOptions {
            manager,
            dry_run,
            validation,
        })
    }

    pub fn explicit_field_manager(&self) -> bool {
        self.field_manager.as_deref().is_some_and(|m| !m.is_empty())
    }
}

/// The media type of a request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("application/json")
        .trim()
        .to_ascii_lowercase()
}

pub fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}
