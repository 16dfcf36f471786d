//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! The model, kept small but honest to kube-apiserver:
//! - each entry is keyed by (manager, operation `Apply`|`Update`, subresource) and owns a set
//!   of leaf fields (see [`crate::fields`]);
//! - an apply sets every field in the applied configuration, removes fields the same manager
//!   applied before and no longer applies (unless someone else owns them), and fails with a
//!   409 when it would change a field another entry owns, unless `force` moves ownership;
//!   two managers applying the same value share the field;
//! - any other write (create, update, patch) gives its manager the fields it changed and takes
//!   them from everybody else, without conflicts.

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Cause};
use crate::fields::{self, FieldSet, Part};

/// Who is writing, and how the write is recorded.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub manager: &'a str,
    /// The `apiVersion` of the request (recorded per entry).
    pub api_version: &'a str,
    pub part: Part,
    pub now: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    fn owns_any(&self, path: &[String]) -> bool {
        self.fields.iter().any(|q| fields::overlaps(q, path))
    }

    /// `"manager"`, as conflict messages name it (Update entries add version and time).
    fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {} at {}", self.api_version, self.time));
        }
        out
    }

    fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields::encode(&self.fields),
        });
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }

    fn from_json(entry: &Value) -> Option<Entry> {
        let text = |key: &str| {
            entry
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some(Entry {
            manager: entry.get("manager")?.as_str()?.to_string(),
            operation: text("operation"),
            subresource: text("subresource"),
            api_version: text("apiVersion"),
            time: text("time"),
            fields: entry
                .get("fieldsV1")
                .map(fields::decode)
                .unwrap_or_default(),
        })
    }
}

fn read_entries(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let entries: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Sets (or creates) one entry's fields; its time moves only when something changed, so a
/// repeated identical write leaves the object byte-for-byte the same.
fn upsert(entries: &mut Vec<Entry>, who: &Writer, operation: &str, set: FieldSet, changed: bool) {
    let sub = who.part.subresource();
    match entries
        .iter_mut()
        .find(|e| e.is(who.manager, operation, sub))
    {
        Some(entry) => {
            if changed || entry.fields != set || entry.api_version != who.api_version {
                entry.time = who.now.to_string();
                entry.api_version = who.api_version.to_string();
            }
            entry.fields = set;
        }
        None => entries.push(Entry {
            manager: who.manager.to_string(),
            operation: operation.to_string(),
            subresource: sub.to_string(),
            api_version: who.api_version.to_string(),
            time: who.now.to_string(),
            fields: set,
        }),
    }
}

/// Applies `applied` onto `live` (a bare skeleton when creating) for `who`. Returns the merged
/// object with updated managedFields, or a 409 listing the conflicts when not forced.
pub fn apply(live: &Value, applied: &Value, who: &Writer, force: bool) -> Result<Value, ApiError> {
    let mut entries = read_entries(live);
    let sub = who.part.subresource();
    let mine = |e: &Entry| e.is(who.manager, "Apply", sub);
    let new_set = fields::leaves(applied, who.part);

    let conflicts = find_conflicts(&entries, &mine, &new_set, applied, live);
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&entries, &conflicts));
    }
    for (index, path) in &conflicts {
        entries[*index]
            .fields
            .retain(|q| !fields::overlaps(q, path));
    }

    let old_set = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut merged = live.clone();
    for path in old_set.difference(&new_set) {
        if !entries.iter().any(|e| !mine(e) && e.owns_any(path)) {
            fields::remove(&mut merged, path);
        }
    }
    for path in &new_set {
        let value = fields::get(applied, path).expect("leaves come from the applied object");
        fields::set(&mut merged, path, value);
    }
    let changed = without_managed_fields(&merged) != without_managed_fields(live);
    upsert(&mut entries, who, "Apply", new_set, changed);
    write_entries(&mut merged, entries);
    Ok(merged)
}

/// (entry index, field) for each field the apply would change that another entry owns.
fn find_conflicts(
    entries: &[Entry],
    mine: &dyn Fn(&Entry) -> bool,
    new_set: &FieldSet,
    applied: &Value,
    live: &Value,
) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    for path in new_set {
        if fields::get(applied, path) == fields::get(live, path) {
            continue;
        }
        for (index, entry) in entries.iter().enumerate() {
            if !mine(entry) && entry.owns_any(path) {
                out.push((index, path.clone()));
            }
        }
    }
    out
}

/// The message structured-merge-diff writes, so kubectl's hints about `--force-conflicts`
/// read the same.
fn conflict_error(entries: &[Entry], conflicts: &[(usize, Vec<String>)]) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(i, path)| Cause {
            reason: "FieldManagerConflict",
            field: fields::display(path),
            message: format!("conflict with {}", entries[*i].describe()),
        })
        .collect();
    let message = if let [(i, path)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            entries[*i].describe(),
            fields::display(path)
        )
    } else {
        let mut lines = Vec::new();
        let mut managers: Vec<usize> = conflicts.iter().map(|(i, _)| *i).collect();
        managers.sort_by_key(|i| entries[*i].describe());
        managers.dedup();
        for manager in managers {
            lines.push(format!("conflicts with {}:", entries[manager].describe()));
            for (_, path) in conflicts.iter().filter(|(i, _)| *i == manager) {
                lines.push(format!("- {}", fields::display(path)));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::apply_conflict(message, causes)
}

/// Records a non-apply write: `who` takes the fields that changed between `old` (None on
/// create) and `new`; fields that disappeared leave every entry.
pub fn record_update(old: Option<&Value>, new: &mut Value, who: &Writer) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let old_leaves = old.map(|o| fields::leaves(o, who.part)).unwrap_or_default();
    let new_leaves = fields::leaves(new, who.part);
    let changed: FieldSet = new_leaves
        .iter()
        .filter(|p| old.and_then(|o| fields::get(o, p)) != fields::get(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_leaves.difference(&new_leaves).cloned().collect();
    if !changed.is_empty() || !removed.is_empty() {
        for entry in &mut entries {
            entry.fields.retain(|q| {
                !changed.iter().any(|p| fields::overlaps(p, q))
                    && !removed.iter().any(|p| q.starts_with(p))
            });
        }
        let sub = who.part.subresource();
        let mut set = entries
            .iter()
            .find(|e| e.is(who.manager, "Update", sub))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        set.extend(changed);
        upsert(&mut entries, who, "Update", set, true);
    }
    write_entries(new, entries);
}

fn without_managed_fields(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    copy
}

/// The skeleton an apply-create starts from: identity only.
pub fn skeleton(api_version: &str, kind: &str, metadata: Map<String, Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata})
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Part = Part::Main { has_status: true };

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "spark.apache.org/v1",
            part: MAIN,
            now: "2026-01-01T00:00:00Z",
        }
    }

    fn app(spec: Value) -> Value {
        json!({"apiVersion": "spark.apache.org/v1", "kind": "SparkApplication",
               "metadata": {"name": "pi"}, "spec": spec})
    }

    fn managers(object: &Value) -> Vec<(String, String)> {
        read_entries(object)
            .into_iter()
            .map(|e| (e.manager, e.operation))
            .collect()
    }

    #[test]
    fn apply_creates_and_records_ownership() {
        let base = skeleton("spark.apache.org/v1", "SparkApplication", Map::new());
        let out = apply(
            &base,
            &app(json!({"mainClass": "A", "jars": "x"})),
            &writer("sk8"),
            false,
        )
        .unwrap();
        assert_eq!(out["spec"], json!({"mainClass": "A", "jars": "x"}));
        assert_eq!(managers(&out), [("sk8".into(), "Apply".into())]);
        let fields = &out["metadata"]["managedFields"][0]["fieldsV1"];
        assert_eq!(
            fields,
            &json!({"f:spec": {"f:jars": {}, "f:mainClass": {}}})
        );
    }

    #[test]
    fn reapply_is_a_byte_for_byte_no_op() {
        let base = skeleton("spark.apache.org/v1", "SparkApplication", Map::new());
        let first = apply(
            &base,
            &app(json!({"mainClass": "A"})),
            &writer("sk8"),
            false,
        )
        .unwrap();
        let mut later = writer("sk8");
        later.now = "2027-01-01T00:00:00Z";
        let second = apply(&first, &app(json!({"mainClass": "A"})), &later, false).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_someone_else_owns_them() {
        let base = skeleton("spark.apache.org/v1", "SparkApplication", Map::new());
        let spec = json!({"mainClass": "A", "jars": "x", "pyFiles": "p"});
        let a = apply(&base, &app(spec.clone()), &writer("a"), false).unwrap();
        let b = apply(&a, &app(json!({"pyFiles": "p"})), &writer("b"), false).unwrap();
        let out = apply(&b, &app(json!({"mainClass": "A"})), &writer("a"), false).unwrap();
        assert_eq!(
            out["spec"],
            json!({"mainClass": "A", "pyFiles": "p"}),
            "b shares pyFiles"
        );
    }

    #[test]
    fn conflicting_apply_fails_unless_forced() {
        let base = skeleton("spark.apache.org/v1", "SparkApplication", Map::new());
        let a = apply(&base, &app(json!({"mainClass": "A"})), &writer("a"), false).unwrap();
        let err = apply(&a, &app(json!({"mainClass": "B"})), &writer("b"), false).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"a\": .spec.mainClass"
        );
        let same = apply(&a, &app(json!({"mainClass": "A"})), &writer("b"), false);
        assert!(same.is_ok(), "the same value is shared, not a conflict");

        let forced = apply(&a, &app(json!({"mainClass": "B"})), &writer("b"), true).unwrap();
        assert_eq!(forced["spec"]["mainClass"], "B");
        assert_eq!(
            managers(&forced),
            [("b".into(), "Apply".into())],
            "a lost its only field"
        );
    }

    #[test]
    fn updates_take_ownership_of_what_they_change() {
        let base = skeleton("spark.apache.org/v1", "SparkApplication", Map::new());
        let a = apply(
            &base,
            &app(json!({"mainClass": "A", "jars": "x"})),
            &writer("a"),
            false,
        )
        .unwrap();
        let mut edited = a.clone();
        edited["spec"]["mainClass"] = json!("B");
        record_update(Some(&a), &mut edited, &writer("kubectl-edit"));
        assert_eq!(
            managers(&edited),
            [
                ("a".into(), "Apply".into()),
                ("kubectl-edit".into(), "Update".into())
            ]
        );
        let err = apply(
            &edited,
            &app(json!({"mainClass": "A", "jars": "x"})),
            &writer("a"),
            false,
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("conflict with \"kubectl-edit\" using spark.apache.org/v1 at")
        );
    }

    #[test]
    fn status_part_is_tracked_separately() {
        let mut obj = app(json!({"mainClass": "A"}));
        record_update(None, &mut obj, &writer("creator"));
        let mut with_status = obj.clone();
        with_status["status"] = json!({"currentState": {"currentStateSummary": "Submitted"}});
        let op = Writer {
            part: Part::Status,
            ..writer("operator")
        };
        record_update(Some(&obj), &mut with_status, &op);
        let entries = read_entries(&with_status);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].subresource, "status");
        let applied = apply(
            &with_status,
            &app(json!({"mainClass": "B"})),
            &writer("x"),
            true,
        );
        let entries = read_entries(&applied.unwrap());
        let kept: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.manager.as_str(), e.subresource.as_str()))
            .collect();
        assert_eq!(
            kept,
            [("operator", "status"), ("x", "")],
            "creator lost its only field"
        );
    }
}
