//! `meta.k8s.io/v1` Table output, which kubectl's human-readable `get` asks for
//! (`Accept: application/json;as=Table;...`): NAME plus the kind's columns from the table.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::resources::{Column, ResourceKind};

/// Whether an Accept header prefers a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.split(';').any(|p| p.trim() == "as=Table"))
}

/// The `includeObject` parameter: what each row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A Table of `objects`; watch events after the first leave out the column definitions.
pub fn table(
    kind: &ResourceKind,
    objects: &[Value],
    include: IncludeObject,
    headers: bool,
) -> Value {
    let mut definitions = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace.",
    })];
    for column in kind.columns {
        let (name, description) = match column {
            Column::Age => ("Age", "Time since the object was created."),
            Column::Path(name, path) => (*name, *path),
        };
        definitions.push(json!({"name": name, "type": "string", "format": "", "priority": 0, "description": description}));
    }
    let rows: Vec<Value> = objects.iter().map(|o| row(kind, o, include)).collect();
    let mut table =
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "rows": rows});
    if headers {
        table["columnDefinitions"] = json!(definitions);
    }
    table
}

fn row(kind: &ResourceKind, object: &Value, include: IncludeObject) -> Value {
    let mut cells = vec![object["metadata"]["name"].clone()];
    for column in kind.columns {
        cells.push(match column {
            Column::Age => json!(age(object["metadata"]["creationTimestamp"].as_str())),
            Column::Path(_, path) => {
                let found = path
                    .trim_start_matches('.')
                    .split('.')
                    .try_fold(object, |v, k| v.get(k));
                json!(found.and_then(Value::as_str).unwrap_or(""))
            }
        });
    }
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object["metadata"],
            });
        }
        IncludeObject::Object => row["object"] = object.clone(),
    }
    row
}

/// kubectl's human duration since a timestamp: `45s`, `3m20s`, `2h5m`, `4d`.
fn age(timestamp: Option<&str>) -> String {
    let Some(created) = timestamp.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    human_duration(
        (Utc::now() - created.with_timezone(&Utc))
            .num_seconds()
            .max(0),
    )
}

fn human_duration(seconds: i64) -> String {
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86400);
    match () {
        _ if seconds < 120 => format!("{seconds}s"),
        _ if minutes < 10 && seconds % 60 != 0 => format!("{minutes}m{}s", seconds % 60),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 && minutes % 60 != 0 => format!("{hours}h{}m", minutes % 60),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 192 && hours % 24 != 0 => format!("{days}d{}h", hours % 24),
        _ => format!("{days}d"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn durations_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (130, "2m10s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (50 * 3600, "2d2h"),
            (400 * 3600, "16d"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected);
        }
    }

    #[test]
    fn rows_carry_the_kind_columns() {
        let (kind, _) = lookup("spark.apache.org", "v1", "sparkapplications").unwrap();
        let app = json!({"metadata": {"name": "pi", "creationTimestamp": "2020-01-01T00:00:00Z"},
                         "status": {"currentState": {"currentStateSummary": "Submitted"}}});
        let t = table(kind, &[app], IncludeObject::Metadata, true);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Age", "Current State"]);
        assert_eq!(t["rows"][0]["cells"][2], "Submitted");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
