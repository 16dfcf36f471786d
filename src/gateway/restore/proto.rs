//! The parts of Spark Connect messages that restoring a session reads and writes, at the
//! protobuf wire level (field numbers from `spark/connect/base.proto` and `commands.proto`):
//! which requests change session state, the server-side session id of each response, the id a
//! client says it observed in each request, and the few requests the gateway builds itself.

use bytes::{Bytes, BytesMut};

use crate::gateway::wire::{self, WIRE_LEN, WireError};

/// `session_id = 1` and `user_context = 2` of every request; `UserContext.user_id = 1`.
const SESSION_ID: u32 = 1;
/// `ConfigRequest.operation`, and of `Operation`: `set`, `get_option`, `unset`.
const CONFIG_OPERATION: u32 = 3;
const OPERATION_SET: u32 = 1;
const OPERATION_GET_OPTION: u32 = 4;
const OPERATION_UNSET: u32 = 6;
/// `Set.pairs`, `Unset.keys`, `GetOption.keys`, and `KeyValue { key = 1; value = 2 }`.
const SET_PAIRS: u32 = 1;
const UNSET_KEYS: u32 = 1;
const PAIR_KEY: u32 = 1;
const PAIR_VALUE: u32 = 2;
/// `ExecutePlanRequest.plan` and `.operation_id`; `Plan.command`;
/// `Command.create_dataframe_view`; `CreateDataFrameViewCommand.name` and `.is_global`.
const EXECUTE_PLAN: u32 = 3;
const EXECUTE_OPERATION_ID: u32 = 6;
/// `ExecutePlanRequest.request_options` (reattachable execution among them).
const EXECUTE_OPTIONS: u32 = 5;
const PLAN_COMMAND: u32 = 2;
const COMMAND_CREATE_VIEW: u32 = 3;
const VIEW_NAME: u32 = 2;
const VIEW_IS_GLOBAL: u32 = 3;
/// `AddArtifactsRequest.batch` (`Batch.artifacts`) and `.begin_chunk`; both name with field 1.
const ARTIFACTS_BATCH: u32 = 3;
const BATCH_ARTIFACTS: u32 = 1;
const ARTIFACTS_BEGIN_CHUNK: u32 = 4;
const ARTIFACT_NAME: u32 = 1;

/// Where a request carries `client_observed_server_side_session_id`, by method.
pub fn observed_field(method: &str) -> Option<u32> {
    Some(match method {
        "AnalyzePlan" => 17,
        "ExecutePlan" | "Config" => 8,
        "AddArtifacts" | "Interrupt" | "ReleaseExecute" => 7,
        "ReattachExecute" => 6,
        "ArtifactStatus" | "FetchErrorDetails" | "CloneSession" => 5,
        "GetStatus" => 4,
        _ => return None,
    })
}

/// Where a response carries `server_side_session_id`, by method.
pub fn server_side_field(method: &str) -> Option<u32> {
    Some(match method {
        "ExecutePlan" | "ReattachExecute" | "AnalyzePlan" => 15,
        "Config" => 4,
        "AddArtifacts" | "ArtifactStatus" | "Interrupt" | "ReleaseExecute"
        | "FetchErrorDetails" => 3,
        "ReleaseSession" | "GetStatus" | "CloneSession" => 2,
        _ => return None,
    })
}

/// A change to the session's confs a `ConfigRequest` makes.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfChange {
    Set(Vec<(String, String)>),
    Unset(Vec<String>),
}

/// The length-delimited value of the last field `number` of `msg`, if any.
fn message_field(msg: &[u8], number: u32) -> Result<Option<&[u8]>, WireError> {
    let fields = wire::fields(msg)?;
    Ok(fields
        .iter()
        .rev()
        .find(|f| f.number == number && f.wire_type == WIRE_LEN)
        .map(|f| &msg[f.value.clone()]))
}

/// Every length-delimited value of field `number` of `msg`, in order.
fn repeated_field(msg: &[u8], number: u32) -> Result<Vec<&[u8]>, WireError> {
    Ok(wire::fields(msg)?
        .into_iter()
        .filter(|f| f.number == number && f.wire_type == WIRE_LEN)
        .map(|f| &msg[f.value])
        .collect())
}

fn string_of(msg: &[u8], number: u32) -> Result<Option<String>, WireError> {
    let fields = wire::fields(msg)?;
    wire::string_field(msg, &fields, number)
}

/// The conf change of a `ConfigRequest`, if it makes one (reads change nothing).
pub fn conf_change(msg: &[u8]) -> Result<Option<ConfChange>, WireError> {
    let Some(operation) = message_field(msg, CONFIG_OPERATION)? else {
        return Ok(None);
    };
    if let Some(set) = message_field(operation, OPERATION_SET)? {
        let mut pairs = Vec::new();
        for pair in repeated_field(set, SET_PAIRS)? {
            let key = string_of(pair, PAIR_KEY)?.unwrap_or_default();
            // A pair without a value sets nothing a replay could repeat.
            if let Some(value) = string_of(pair, PAIR_VALUE)? {
                pairs.push((key, value));
            }
        }
        return Ok(Some(ConfChange::Set(pairs)));
    }
    if let Some(unset) = message_field(operation, OPERATION_UNSET)? {
        let keys = repeated_field(unset, UNSET_KEYS)?
            .into_iter()
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .collect();
        return Ok(Some(ConfChange::Unset(keys)));
    }
    Ok(None)
}

/// The name of the temp view an `ExecutePlanRequest` creates (`global_temp.` for a global one).
pub fn created_view(msg: &[u8]) -> Result<Option<String>, WireError> {
    let Some(plan) = message_field(msg, EXECUTE_PLAN)? else {
        return Ok(None);
    };
    let Some(command) = message_field(plan, PLAN_COMMAND)? else {
        return Ok(None);
    };
    let Some(view) = message_field(command, COMMAND_CREATE_VIEW)? else {
        return Ok(None);
    };
    let name = string_of(view, VIEW_NAME)?.unwrap_or_default();
    let global = wire::fields(view)?
        .iter()
        .any(|f| f.number == VIEW_IS_GLOBAL && view[f.value.clone()] != [0]);
    Ok(Some(if global {
        format!("global_temp.{name}")
    } else {
        name
    }))
}

/// The names of the artifacts an `AddArtifactsRequest` message starts or carries.
pub fn artifact_names(msg: &[u8]) -> Result<Vec<String>, WireError> {
    let mut names = Vec::new();
    if let Some(batch) = message_field(msg, ARTIFACTS_BATCH)? {
        for artifact in repeated_field(batch, BATCH_ARTIFACTS)? {
            names.extend(string_of(artifact, ARTIFACT_NAME)?);
        }
    }
    if let Some(begin) = message_field(msg, ARTIFACTS_BEGIN_CHUNK)? {
        names.extend(string_of(begin, ARTIFACT_NAME)?);
    }
    Ok(names)
}

/// The client's Spark session id (`session_id`) of a request.
pub fn session_id(msg: &[u8]) -> Result<Option<String>, WireError> {
    string_of(msg, SESSION_ID)
}

/// A string field of a message, when it is there.
pub fn string_at(msg: &[u8], number: u32) -> Result<Option<String>, WireError> {
    string_of(msg, number)
}

/// `msg` with every occurrence of string field `number` set to `value` (left out when `None`);
/// a field that is not there is not added.
pub fn replace_string(msg: &[u8], number: u32, value: Option<&str>) -> Result<Bytes, WireError> {
    let fields = wire::fields(msg)?;
    if !fields.iter().any(|f| f.number == number) {
        return Ok(Bytes::copy_from_slice(msg));
    }
    let mut out = BytesMut::with_capacity(msg.len() + 64);
    for field in fields {
        if field.number != number {
            out.extend_from_slice(&msg[field.whole]);
        } else if let Some(value) = value {
            wire::put_len_field(&mut out, number, value.as_bytes());
        }
    }
    Ok(out.freeze())
}

/// A request as the gateway replays it: no observed server-side id (the new server has its
/// own), and for ExecutePlan no operation id (the new server picks one) and no request options
/// (a replay is not reattachable: it runs to its end in one answer).
pub fn for_replay(method: &str, msg: &[u8]) -> Result<Bytes, WireError> {
    let mut out = Bytes::copy_from_slice(msg);
    if let Some(observed) = observed_field(method) {
        out = replace_string(&out, observed, None)?;
    }
    if method == "ExecutePlan" {
        out = replace_string(&out, EXECUTE_OPERATION_ID, None)?;
        out = replace_string(&out, EXECUTE_OPTIONS, None)?;
    }
    Ok(out)
}

/// A `ConfigRequest` setting `pairs`, or, with none, reading no conf at all (which still
/// answers with the server-side session id).
pub fn config_request(session: &str, pairs: &[(String, String)]) -> Bytes {
    let mut operation = BytesMut::new();
    if pairs.is_empty() {
        wire::put_len_field(&mut operation, OPERATION_GET_OPTION, b"");
    } else {
        let mut set = BytesMut::new();
        for (key, value) in pairs {
            let mut pair = BytesMut::new();
            wire::put_len_field(&mut pair, PAIR_KEY, key.as_bytes());
            wire::put_len_field(&mut pair, PAIR_VALUE, value.as_bytes());
            wire::put_len_field(&mut set, SET_PAIRS, &pair);
        }
        wire::put_len_field(&mut operation, OPERATION_SET, &set);
    }
    let mut msg = BytesMut::new();
    wire::put_len_field(&mut msg, SESSION_ID, session.as_bytes());
    wire::put_len_field(&mut msg, CONFIG_OPERATION, &operation);
    msg.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(number: u32, value: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        wire::put_len_field(&mut out, number, value);
        out
    }

    #[test]
    fn config_sets_and_unsets_are_read_and_reads_are_not_changes() {
        let set = config_request("s", &[("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(
            conf_change(&set).unwrap(),
            Some(ConfChange::Set(vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into())
            ]))
        );
        assert_eq!(conf_change(&config_request("s", &[])).unwrap(), None);
        let unset = len_field(UNSET_KEYS, b"a");
        let operation = len_field(OPERATION_UNSET, &unset);
        let msg = len_field(CONFIG_OPERATION, &operation);
        assert_eq!(
            conf_change(&msg).unwrap(),
            Some(ConfChange::Unset(vec!["a".into()]))
        );
    }

    #[test]
    fn a_view_command_is_found_deep_in_an_execute_request() {
        let mut view = len_field(VIEW_NAME, b"numbers");
        view.extend_from_slice(&[(VIEW_IS_GLOBAL << 3) as u8, 1]);
        let command = len_field(COMMAND_CREATE_VIEW, &view);
        let plan = len_field(PLAN_COMMAND, &command);
        let mut msg = len_field(SESSION_ID, b"s");
        msg.extend_from_slice(&len_field(EXECUTE_OPERATION_ID, b"op-1"));
        msg.extend_from_slice(&len_field(8, b"server-1"));
        msg.extend_from_slice(&len_field(EXECUTE_OPTIONS, b"\x0a\x02\x08\x01"));
        msg.extend_from_slice(&len_field(EXECUTE_PLAN, &plan));
        assert_eq!(
            created_view(&msg).unwrap().as_deref(),
            Some("global_temp.numbers")
        );
        // A query is no view.
        let root = len_field(EXECUTE_PLAN, &len_field(1, b""));
        assert_eq!(created_view(&root).unwrap(), None);
        // Replayed without the operation id and the observed server-side id.
        let replay = for_replay("ExecutePlan", &msg).unwrap();
        assert_eq!(string_at(&replay, EXECUTE_OPERATION_ID).unwrap(), None);
        assert_eq!(string_at(&replay, 8).unwrap(), None);
        assert_eq!(string_at(&replay, EXECUTE_OPTIONS).unwrap(), None);
        assert_eq!(created_view(&replay).unwrap(), created_view(&msg).unwrap());
    }

    #[test]
    fn artifact_names_come_from_batches_and_chunked_starts() {
        let single = len_field(ARTIFACT_NAME, b"pyfiles/a.py");
        let batch = len_field(BATCH_ARTIFACTS, &single);
        let msg = len_field(ARTIFACTS_BATCH, &batch);
        assert_eq!(artifact_names(&msg).unwrap(), ["pyfiles/a.py"]);
        let begin = len_field(ARTIFACT_NAME, b"jars/big.jar");
        let msg = len_field(ARTIFACTS_BEGIN_CHUNK, &begin);
        assert_eq!(artifact_names(&msg).unwrap(), ["jars/big.jar"]);
        assert!(artifact_names(&len_field(5, b"chunk")).unwrap().is_empty());
    }

    #[test]
    fn a_string_field_is_swapped_only_where_it_is() {
        let mut msg = len_field(SESSION_ID, b"s");
        msg.extend_from_slice(&len_field(15, b"server-2"));
        let swapped = replace_string(&msg, 15, Some("server-1")).unwrap();
        assert_eq!(
            string_at(&swapped, 15).unwrap().as_deref(),
            Some("server-1")
        );
        assert_eq!(session_id(&swapped).unwrap().as_deref(), Some("s"));
        let without = len_field(SESSION_ID, b"s");
        assert_eq!(replace_string(&without, 15, Some("x")).unwrap(), without);
    }
}
