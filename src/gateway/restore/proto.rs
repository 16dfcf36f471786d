//! The parts of Spark Connect messages that restoring a session reads and writes, at the
//! protobuf wire level (field numbers from `spark/connect/base.proto` and `commands.proto`):
//! which requests change session state, the server-side session id of each response, the id a
//! client says it observed in each request, and the few requests the gateway builds itself.

use bytes::{Bytes, BytesMut};

use super::sql::{self, GLOBAL_TEMP, Statement};
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
/// `ExecutePlanRequest.plan` and `.operation_id`; `Plan.root` and `.command`;
/// `Command.create_dataframe_view`; `CreateDataFrameViewCommand.name` and `.is_global`.
const EXECUTE_PLAN: u32 = 3;
const EXECUTE_OPERATION_ID: u32 = 6;
/// `ExecutePlanRequest.request_options` (reattachable execution among them).
const EXECUTE_OPTIONS: u32 = 5;
const PLAN_ROOT: u32 = 1;
const PLAN_COMMAND: u32 = 2;
const COMMAND_CREATE_VIEW: u32 = 3;
const VIEW_NAME: u32 = 2;
const VIEW_IS_GLOBAL: u32 = 3;
/// `Command.register_function`, `.register_table_function` and `.register_data_source`: each
/// message names what it registers in its field 1.
const COMMAND_REGISTER_FUNCTION: u32 = 1;
const COMMAND_REGISTER_TABLE_FUNCTION: u32 = 10;
const COMMAND_REGISTER_DATA_SOURCE: u32 = 12;
const REGISTERED_NAME: u32 = 1;
/// `Command.sql_command`; `SqlCommand.sql` (older clients) and `.input`, a `Relation` whose
/// `sql` (`SQL.query`) holds the text.
const COMMAND_SQL: u32 = 5;
const SQL_COMMAND_TEXT: u32 = 1;
const SQL_COMMAND_INPUT: u32 = 6;
const RELATION_SQL: u32 = 10;
const SQL_QUERY: u32 = 1;
/// `Relation.catalog`; `Catalog.drop_temp_view` and `.drop_global_temp_view`, each with the
/// view's name in field 1.
const RELATION_CATALOG: u32 = 200;
const CATALOG_DROP_TEMP_VIEW: u32 = 15;
const CATALOG_DROP_GLOBAL_TEMP_VIEW: u32 = 16;
const DROPPED_VIEW_NAME: u32 = 1;
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

/// A change to the session's confs a `ConfigRequest` (or a SQL `SET`/`RESET`) makes.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfChange {
    Set(Vec<(String, String)>),
    Unset(Vec<String>),
    /// Every conf back to its default (a plain SQL `RESET`).
    Reset,
}

/// What a kept request made. A session holds one of each kind and name: making it again
/// replaces it, dropping it forgets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    View,
    Function,
    TableFunction,
    DataSource,
    /// A conf set by SQL `SET` (its key: case matters).
    Conf,
}

/// A named thing a kept request made, as errors name it: `temp view v`, `function f`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Made {
    pub kind: Kind,
    /// Lower case but for a conf's key: Spark resolves the others without case.
    pub name: String,
}

impl std::fmt::Display for Made {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::View => "temp view",
            Kind::Function => "function",
            Kind::TableFunction => "table function",
            Kind::DataSource => "data source",
            Kind::Conf => "conf",
        };
        write!(f, "{kind} {}", self.name)
    }
}

/// How an `ExecutePlanRequest` changes the session's state.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Kept whole and replayed: a view, a function, a data source, a SQL `SET`.
    Make(Made),
    /// Forgets what made it.
    Drop(Made),
    Confs(ConfChange),
}

fn made(kind: Kind, name: impl Into<String>) -> Made {
    let name = name.into();
    let name = if kind == Kind::Conf {
        name
    } else {
        name.to_lowercase()
    };
    Made { kind, name }
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

/// The change an `ExecutePlanRequest` makes to the session's state, if any.
pub fn execute_change(msg: &[u8]) -> Result<Option<Change>, WireError> {
    let Some(plan) = message_field(msg, EXECUTE_PLAN)? else {
        return Ok(None);
    };
    if let Some(command) = message_field(plan, PLAN_COMMAND)? {
        return command_change(command);
    }
    match message_field(plan, PLAN_ROOT)? {
        Some(root) => dropped_view(root),
        None => Ok(None),
    }
}

fn command_change(command: &[u8]) -> Result<Option<Change>, WireError> {
    if let Some(view) = message_field(command, COMMAND_CREATE_VIEW)? {
        let name = string_of(view, VIEW_NAME)?.unwrap_or_default();
        let global = wire::fields(view)?
            .iter()
            .any(|f| f.number == VIEW_IS_GLOBAL && view[f.value.clone()] != [0]);
        let name = if global {
            format!("{GLOBAL_TEMP}.{name}")
        } else {
            name
        };
        return Ok(Some(Change::Make(made(Kind::View, name))));
    }
    for (field, kind) in [
        (COMMAND_REGISTER_FUNCTION, Kind::Function),
        (COMMAND_REGISTER_TABLE_FUNCTION, Kind::TableFunction),
        (COMMAND_REGISTER_DATA_SOURCE, Kind::DataSource),
    ] {
        if let Some(registered) = message_field(command, field)? {
            let name = string_of(registered, REGISTERED_NAME)?.unwrap_or_default();
            return Ok(Some(Change::Make(made(kind, name))));
        }
    }
    let Some(sql_command) = message_field(command, COMMAND_SQL)? else {
        return Ok(None);
    };
    Ok(sql_text(sql_command)?.and_then(|text| sql_change(&text)))
}

/// The text of a `SqlCommand`, where either kind of client puts it.
fn sql_text(sql_command: &[u8]) -> Result<Option<String>, WireError> {
    if let Some(text) = string_of(sql_command, SQL_COMMAND_TEXT)? {
        return Ok(Some(text));
    }
    let Some(input) = message_field(sql_command, SQL_COMMAND_INPUT)? else {
        return Ok(None);
    };
    match message_field(input, RELATION_SQL)? {
        Some(sql) => string_of(sql, SQL_QUERY),
        None => Ok(None),
    }
}

fn sql_change(text: &str) -> Option<Change> {
    Some(match sql::statement(text)? {
        Statement::CreateView(name) => Change::Make(made(Kind::View, name)),
        Statement::DropView(name) => Change::Drop(made(Kind::View, name)),
        Statement::CreateFunction(name) => Change::Make(made(Kind::Function, name)),
        Statement::DropFunction(name) => Change::Drop(made(Kind::Function, name)),
        Statement::Set(key) => Change::Make(made(Kind::Conf, key)),
        Statement::Reset(Some(key)) => Change::Confs(ConfChange::Unset(vec![key])),
        Statement::Reset(None) => Change::Confs(ConfChange::Reset),
    })
}

/// The temp view a `Catalog` drop (`spark.catalog.dropTempView`) forgets.
fn dropped_view(root: &[u8]) -> Result<Option<Change>, WireError> {
    let Some(catalog) = message_field(root, RELATION_CATALOG)? else {
        return Ok(None);
    };
    if let Some(drop) = message_field(catalog, CATALOG_DROP_TEMP_VIEW)? {
        let name = string_of(drop, DROPPED_VIEW_NAME)?.unwrap_or_default();
        return Ok(Some(Change::Drop(made(Kind::View, name))));
    }
    if let Some(drop) = message_field(catalog, CATALOG_DROP_GLOBAL_TEMP_VIEW)? {
        let name = string_of(drop, DROPPED_VIEW_NAME)?.unwrap_or_default();
        let name = format!("{GLOBAL_TEMP}.{name}");
        return Ok(Some(Change::Drop(made(Kind::View, name))));
    }
    Ok(None)
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
        let numbers = Change::Make(made(Kind::View, "global_temp.numbers"));
        assert_eq!(execute_change(&msg).unwrap(), Some(numbers));
        // A query is no view.
        let root = len_field(EXECUTE_PLAN, &len_field(PLAN_ROOT, b""));
        assert_eq!(execute_change(&root).unwrap(), None);
        // Replayed without the operation id and the observed server-side id.
        let replay = for_replay("ExecutePlan", &msg).unwrap();
        assert_eq!(string_at(&replay, EXECUTE_OPERATION_ID).unwrap(), None);
        assert_eq!(string_at(&replay, 8).unwrap(), None);
        assert_eq!(string_at(&replay, EXECUTE_OPTIONS).unwrap(), None);
        assert_eq!(
            execute_change(&replay).unwrap(),
            execute_change(&msg).unwrap()
        );
    }

    fn command(field: u32, value: &[u8]) -> BytesMut {
        let plan = len_field(PLAN_COMMAND, &len_field(field, value));
        len_field(EXECUTE_PLAN, &plan)
    }

    #[test]
    fn registrations_sql_statements_and_catalog_drops_are_changes() {
        let udf = len_field(REGISTERED_NAME, b"Plus_One");
        assert_eq!(
            execute_change(&command(COMMAND_REGISTER_FUNCTION, &udf)).unwrap(),
            Some(Change::Make(made(Kind::Function, "plus_one")))
        );
        assert_eq!(
            execute_change(&command(COMMAND_REGISTER_TABLE_FUNCTION, &udf))
                .unwrap()
                .map(|c| match c {
                    Change::Make(made) => made.to_string(),
                    other => format!("{other:?}"),
                }),
            Some("table function plus_one".into())
        );
        // Newer clients put the text in a SQL relation, older ones in the command itself.
        let query = len_field(SQL_QUERY, b"CREATE TEMP VIEW v AS SELECT 1");
        let input = len_field(SQL_COMMAND_INPUT, &len_field(RELATION_SQL, &query));
        let view = Some(Change::Make(made(Kind::View, "v")));
        assert_eq!(execute_change(&command(COMMAND_SQL, &input)).unwrap(), view);
        let old = len_field(SQL_COMMAND_TEXT, b"create temp view V as select 1");
        assert_eq!(execute_change(&command(COMMAND_SQL, &old)).unwrap(), view);
        let set = len_field(SQL_COMMAND_TEXT, b"SET a.B=1");
        assert_eq!(
            execute_change(&command(COMMAND_SQL, &set)).unwrap(),
            Some(Change::Make(made(Kind::Conf, "a.B")))
        );
        assert_eq!(made(Kind::Conf, "a.B").to_string(), "conf a.B");
        let select = len_field(SQL_COMMAND_TEXT, b"SELECT 1");
        assert_eq!(
            execute_change(&command(COMMAND_SQL, &select)).unwrap(),
            None
        );
        let drop = len_field(
            CATALOG_DROP_GLOBAL_TEMP_VIEW,
            &len_field(DROPPED_VIEW_NAME, b"G"),
        );
        let root = len_field(PLAN_ROOT, &len_field(RELATION_CATALOG, &drop));
        assert_eq!(
            execute_change(&len_field(EXECUTE_PLAN, &root)).unwrap(),
            Some(Change::Drop(made(Kind::View, "global_temp.g")))
        );
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
