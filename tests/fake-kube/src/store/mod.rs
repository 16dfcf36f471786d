//! The in-memory object store: every object of every kind, one global resourceVersion counter,
//! the event history and broadcast behind watches, and pod logs. Nothing is durable: a new
//! server starts with the built-in namespaces and the embedded CRDs only.
//!
//! Every write goes through the same steps as in kube-apiserver: check the body against the
//! URL, prune and validate against the schema, apply the kind's strategy, record field
//! ownership, skip no-op writes (same resourceVersion, no event), then commit and broadcast.

mod body;
mod paging;
mod quota;
mod request;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use self::body::{check_body, compose, generate_name, skeleton, validate, without_meta_and_status};
use self::paging::{decode_continue, encode_continue};
use self::request::{Key, key};
pub use self::request::{
    ListPage, Outcome, Page, Patch, Preconditions, Target, WatchStart, WriteOptions,
};
use crate::apply::{self, Writer};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::resources::{KINDS, ResourceKind, index_of, lookup};
use crate::schema;
use crate::selectors::Selector;
use crate::strategy;
use crate::watch::{Event, EventType, History, WatchFilter, WatchItem, WatchStream, WatchTiming};

struct Inner {
    objects: BTreeMap<Key, Value>,
    /// How many objects name each uid as an owner: a delete looks for dependents (a scan of
    /// every object) only when its object owns something.
    owner_refs: HashMap<String, usize>,
    rv: u64,
    history: History,
    logs: HashMap<(String, String), String>,
}

impl Inner {
    /// Stores `object` at `key`, keeping the owner index; returns what was there.
    fn put(&mut self, key: Key, object: Value) -> Option<Value> {
        count_owners(&mut self.owner_refs, &object, true);
        let previous = self.objects.insert(key, object);
        if let Some(previous) = &previous {
            count_owners(&mut self.owner_refs, previous, false);
        }
        previous
    }

    fn take(&mut self, key: &Key) -> Option<Value> {
        let previous = self.objects.remove(key)?;
        count_owners(&mut self.owner_refs, &previous, false);
        Some(previous)
    }
}

fn count_owners(counts: &mut HashMap<String, usize>, object: &Value, add: bool) {
    let refs = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array);
    for uid in refs.into_iter().flatten().filter_map(|r| r["uid"].as_str()) {
        if add {
            *counts.entry(uid.to_owned()).or_default() += 1;
        } else if let Some(n) = counts.get_mut(uid) {
            *n -= 1;
            if *n == 0 {
                counts.remove(uid);
            }
        }
    }
}

pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
    changes: watch::Sender<u64>,
}

/// Namespaces every cluster has.
const BUILT_IN_NAMESPACES: &[&str] = &["default", "kube-node-lease", "kube-public", "kube-system"];

impl Store {
    /// An empty cluster keeping the last `history_limit` events for watches.
    pub fn new(history_limit: usize) -> Self {
        let store = Store {
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                owner_refs: HashMap::new(),
                rv: 0,
                history: History::new(history_limit),
                logs: HashMap::new(),
            }),
            events: broadcast::channel(4096).0,
            changes: watch::channel(0).0,
        };
        store.seed();
        store
    }

    fn seed(&self) {
        let (namespaces, _) = lookup("", "v1", "namespaces").expect("namespaces are served");
        let mut seeds: Vec<(&ResourceKind, Value)> = BUILT_IN_NAMESPACES
            .iter()
            .map(|name| (namespaces, json!({"metadata": {"name": name}})))
            .collect();
        let (crds, _) = lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .expect("CRDs are served");
        seeds.extend(schema::crds().iter().map(|crd| (crds, crd.clone())));
        let mut inner = self.lock();
        for (kind, mut object) in seeds {
            object["apiVersion"] = json!(kind.api_version(kind.storage_version()));
            object["kind"] = json!(kind.kind);
            strategy::prepare_create(kind, &mut object);
            strategy::normalize(kind, &mut object);
            self.insert_new(&mut inner, kind, object);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Compacts the whole watch history: every watch resuming from an older resourceVersion
    /// gets 410 Gone and must relist.
    pub fn expire_history(&self) {
        let mut inner = self.lock();
        let rv = inner.rv;
        inner.history.compact_to(rv);
    }

    /// A receiver that changes on every committed write and log append.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn get(&self, target: &Target) -> ApiResult<Value> {
        let inner = self.lock();
        inner
            .objects
            .get(&target.key())
            .cloned()
            .ok_or_else(|| ApiError::not_found(target.kind, target.name()))
    }

    pub fn list(&self, target: &Target, selector: &Selector, page: &Page) -> ApiResult<ListPage> {
        let inner = self.lock();
        let (rv, start) = match &page.continue_token {
            Some(token) => decode_continue(token, inner.history.compacted())?,
            None => (inner.rv, None),
        };
        let mut matching = inner
            .objects
            .iter()
            .filter(|(k, _)| in_collection(k, target))
            .filter(|(k, _)| start.as_ref().is_none_or(|s| (&k.1, &k.2) > (&s.0, &s.1)))
            .filter(|(_, o)| selector.matches(o))
            .map(|(k, o)| (k, o.clone()));
        let limit = page.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let taken: Vec<(&Key, Value)> = matching.by_ref().take(limit).collect();
        let remaining = matching.count();
        let continue_token = match (remaining, taken.last()) {
            (1.., Some((k, _))) => Some(encode_continue(rv, &k.1, &k.2)),
            _ => None,
        };
        Ok(ListPage {
            items: taken.into_iter().map(|(_, o)| o).collect(),
            rv,
            continue_token,
            remaining: (remaining > 0).then_some(remaining),
        })
    }

    pub fn create(&self, target: &Target, body: Value, opts: &WriteOptions) -> ApiResult<Outcome> {
        let mut object = body;
        check_body(target, &mut object)?;
        generate_name(&mut object);
        let mut inner = self.lock();
        inner.require_namespace(target)?;
        let warnings = schema::prune(target.kind, target.version, &mut object, opts.validation)?;
        let (api_version, now) = (target.api_version(), meta::now());
        strategy::prepare_create(target.kind, &mut object);
        apply::record_update(None, &mut object, &writer(target, opts, &api_version, &now));
        let object = self.commit_new(&mut inner, target, object, opts)?;
        Ok(Outcome {
            object,
            warnings,
            created: true,
        })
    }

    pub fn update(&self, target: &Target, body: Value, opts: &WriteOptions) -> ApiResult<Outcome> {
        let mut incoming = body;
        check_body(target, &mut incoming)?;
        let mut inner = self.lock();
        let live = inner.live(target)?;
        let sent_rv = incoming
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if sent_rv.is_some_and(|rv| !rv.is_empty() && Some(rv) != resource_version(&live)) {
            return Err(ApiError::conflict(target.kind, target.name()));
        }
        let warnings = schema::prune(target.kind, target.version, &mut incoming, opts.validation)?;
        self.write_over(&mut inner, target, &live, incoming, opts, warnings)
    }

    pub fn patch(&self, target: &Target, patch: Patch, opts: &WriteOptions) -> ApiResult<Outcome> {
        match patch {
            Patch::Apply { config, force } => self.apply(target, config, force, opts),
            Patch::Merge(body) => self.patch_with(target, opts, |live| {
                let mut patched = live.clone();
                crate::patch::merge(&mut patched, &body);
                Ok(patched)
            }),
            Patch::Json(ops) => self.patch_with(target, opts, |live| {
                crate::patch::json_patch(live, &ops).map_err(ApiError::unprocessable)
            }),
        }
    }

    fn patch_with(
        &self,
        target: &Target,
        opts: &WriteOptions,
        patch: impl FnOnce(&Value) -> ApiResult<Value>,
    ) -> ApiResult<Outcome> {
        let mut inner = self.lock();
        let live = inner.live(target)?;
        // Patches see the object at the version the client asked for.
        let mut view = live.clone();
        view["apiVersion"] = json!(target.api_version());
        let mut patched = patch(&view)?;
        if resource_version(&patched) != resource_version(&live) {
            return Err(ApiError::conflict(target.kind, target.name()));
        }
        check_body(target, &mut patched)?;
        let warnings = schema::prune(target.kind, target.version, &mut patched, opts.validation)?;
        self.write_over(&mut inner, target, &live, patched, opts, warnings)
    }

    /// The end of an update or patch: the new object over the live one, its managed fields
    /// recorded, committed; pruning `warnings` come before the commit's own.
    fn write_over(
        &self,
        inner: &mut MutexGuard<'_, Inner>,
        target: &Target,
        live: &Value,
        incoming: Value,
        opts: &WriteOptions,
        mut warnings: Vec<String>,
    ) -> ApiResult<Outcome> {
        let mut new = compose(target, live, incoming);
        let (api_version, now) = (target.api_version(), meta::now());
        apply::record_update(
            Some(live),
            &mut new,
            &writer(target, opts, &api_version, &now),
        );
        let mut outcome = self.commit_change(inner, target, live, new, opts)?;
        warnings.append(&mut outcome.warnings);
        outcome.warnings = warnings;
        Ok(outcome)
    }

    fn apply(
        &self,
        target: &Target,
        mut config: Value,
        force: bool,
        opts: &WriteOptions,
    ) -> ApiResult<Outcome> {
        check_body(target, &mut config)?;
        let warnings = schema::prune(target.kind, target.version, &mut config, opts.validation)?;
        let (api_version, now) = (target.api_version(), meta::now());
        let writer = writer(target, opts, &api_version, &now);
        let mut inner = self.lock();
        let sent_rv = config
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        let live = match inner.objects.get(&target.key()) {
            Some(live) if sent_rv.is_some_and(|rv| Some(rv) != resource_version(live)) => {
                return Err(ApiError::conflict(target.kind, target.name()));
            }
            Some(live) => live.clone(),
            None if target.status => return Err(ApiError::not_found(target.kind, target.name())),
            None => {
                inner.require_namespace(target)?;
                let mut object = apply::apply(&skeleton(target), &config, &writer, force)?;
                strategy::prepare_create(target.kind, &mut object);
                let object = self.commit_new(&mut inner, target, object, opts)?;
                return Ok(Outcome {
                    object,
                    warnings,
                    created: true,
                });
            }
        };
        // Apply touches only the fields of its part, so no compose step is needed.
        let merged = apply::apply(&live, &config, &writer, force)?;
        let mut outcome = self.commit_change(&mut inner, target, &live, merged, opts)?;
        outcome.warnings.splice(0..0, warnings);
        Ok(outcome)
    }

    /// Removes an object now (no graceful deletion, no finalizers) and, like the garbage
    /// collector and namespace controller would, everything it owns or contains.
    pub fn delete(&self, target: &Target, pre: &Preconditions, dry_run: bool) -> ApiResult<Value> {
        let mut inner = self.lock();
        let live = inner.live(target)?;
        let uid = live.pointer("/metadata/uid").and_then(Value::as_str);
        if let Some(expected) = pre.uid.as_deref().filter(|u| Some(*u) != uid) {
            return Err(ApiError::precondition_failed(
                target.kind,
                target.name(),
                "UID",
                expected,
                uid,
            ));
        }
        let rv = resource_version(&live);
        if let Some(expected) = pre.resource_version.as_deref().filter(|r| Some(*r) != rv) {
            return Err(ApiError::precondition_failed(
                target.kind,
                target.name(),
                "ResourceVersion",
                expected,
                rv,
            ));
        }
        if dry_run {
            return Ok(live);
        }
        Ok(self.remove_cascade(&mut inner, target.key()))
    }

    fn remove_cascade(&self, inner: &mut Inner, key: Key) -> Value {
        let Some(previous) = inner.take(&key) else {
            return Value::Null;
        };
        let kind = &KINDS[key.0];
        inner.rv += 1;
        let mut object = previous.clone();
        object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        if kind.log {
            inner.logs.remove(&(key.1.clone(), key.2.clone()));
        }
        self.emit(
            inner,
            &key,
            EventType::Deleted,
            object.clone(),
            Some(previous),
        );
        for dependent in dependents(inner, kind, &key, &object) {
            self.remove_cascade(inner, dependent);
        }
        object
    }

    /// A watch from `start`; a resourceVersion older than the history is a 410 the caller
    /// sends as an ERROR event.
    pub fn watch(
        &self,
        target: &Target,
        selector: Selector,
        start: WatchStart,
        timing: &WatchTiming,
        shutdown: CancellationToken,
    ) -> ApiResult<WatchStream> {
        let inner = self.lock();
        let filter = WatchFilter {
            kind: index_of(target.kind),
            namespace: target.namespace.clone(),
            selector,
        };
        let queued: VecDeque<WatchItem> = match start {
            WatchStart::Current { end_bookmark } => {
                let mut items: VecDeque<WatchItem> = inner
                    .objects
                    .iter()
                    .filter(|(k, o)| in_collection(k, target) && filter.selector.matches(o))
                    .map(|(_, o)| WatchItem::Event(EventType::Added, o.clone()))
                    .collect();
                if end_bookmark {
                    items.push_back(WatchItem::Bookmark {
                        rv: inner.rv,
                        initial_end: true,
                    });
                }
                items
            }
            WatchStart::After(rv) => inner
                .history
                .since(rv)?
                .iter()
                .filter_map(|e| filter.translate(e))
                .map(|(t, o)| WatchItem::Event(t, o))
                .collect(),
        };
        // Subscribing under the lock: no event can fall between the queue and the receiver.
        let rx = self.events.subscribe();
        Ok(WatchStream::new(
            queued, rx, filter, inner.rv, timing, shutdown,
        ))
    }

    /// Appends to a pod's log (the fake's control API; real kubelets write these).
    pub fn append_log(&self, target: &Target, text: &str) -> ApiResult<()> {
        let mut inner = self.lock();
        inner.live(target)?;
        let pod = (
            target.namespace.clone().unwrap_or_default(),
            target.name().to_string(),
        );
        inner.logs.entry(pod).or_default().push_str(text);
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// A pod's log so far, and whether the pod has finished (no more will come).
    pub fn log(&self, target: &Target) -> ApiResult<(String, bool)> {
        let inner = self.lock();
        let pod = inner.live(target)?;
        let phase = pod.pointer("/status/phase").and_then(Value::as_str);
        let done = matches!(phase, Some("Succeeded" | "Failed"));
        let key = (
            target.namespace.clone().unwrap_or_default(),
            target.name().to_string(),
        );
        Ok((inner.logs.get(&key).cloned().unwrap_or_default(), done))
    }

    /// Finishes a create: name and label rules, schema validation, then store it.
    fn commit_new(
        &self,
        inner: &mut Inner,
        target: &Target,
        mut object: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        strategy::normalize(target.kind, &mut object);
        validate(target, &object, true)?;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = key(
            target.kind,
            target.namespace.as_deref().unwrap_or(""),
            &name,
        );
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(target.kind, &name));
        }
        let namespace = target.namespace.as_deref().unwrap_or_default();
        quota::admit(&inner.objects, target.kind, namespace, &name)?;
        if opts.dry_run {
            return Ok(object);
        }
        Ok(self.insert_new(inner, target.kind, object))
    }

    fn insert_new(&self, inner: &mut Inner, kind: &ResourceKind, mut object: Value) -> Value {
        inner.rv += 1;
        let meta = object["metadata"]
            .as_object_mut()
            .expect("checked bodies have metadata");
        meta.insert("uid".into(), json!(meta::new_uid()));
        meta.insert("resourceVersion".into(), json!(inner.rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(meta::now()));
        meta.insert("generation".into(), json!(1));
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        let key = key(kind, &namespace, &name);
        if kind.log {
            inner.logs.remove(&(namespace, name));
        }
        inner.put(key.clone(), object.clone());
        self.emit(inner, &key, EventType::Added, object.clone(), None);
        object
    }

    /// Finishes an update of `live` into `new`: validate, bump generation on spec changes,
    /// skip no-ops, store and broadcast.
    fn commit_change(
        &self,
        inner: &mut Inner,
        target: &Target,
        live: &Value,
        mut new: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Outcome> {
        if !target.status {
            strategy::normalize(target.kind, &mut new);
        }
        validate(target, &new, false)?;
        if without_meta_and_status(live) != without_meta_and_status(&new) {
            let generation = live
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        if new == *live || opts.dry_run {
            return Ok(Outcome {
                object: new,
                warnings: Vec::new(),
                created: false,
            });
        }
        inner.rv += 1;
        new["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        let key = target.key();
        inner.put(key.clone(), new.clone());
        self.emit(
            inner,
            &key,
            EventType::Modified,
            new.clone(),
            Some(live.clone()),
        );
        Ok(Outcome {
            object: new,
            warnings: Vec::new(),
            created: false,
        })
    }

    fn emit(
        &self,
        inner: &mut Inner,
        key: &Key,
        event_type: EventType,
        object: Value,
        previous: Option<Value>,
    ) {
        let event = Arc::new(Event {
            kind: key.0,
            namespace: key.1.clone(),
            rv: inner.rv,
            event_type,
            object,
            previous,
        });
        inner.history.push(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
        self.changes.send_modify(|n| *n += 1);
    }
}

impl Inner {
    fn live(&self, target: &Target) -> ApiResult<Value> {
        self.objects
            .get(&target.key())
            .cloned()
            .ok_or_else(|| ApiError::not_found(target.kind, target.name()))
    }

    /// Namespaced objects need their namespace, as the NamespaceLifecycle admission plugin says.
    fn require_namespace(&self, target: &Target) -> ApiResult<()> {
        let Some(namespace) = target.namespace.as_deref() else {
            return Ok(());
        };
        let (namespaces, _) = lookup("", "v1", "namespaces").expect("namespaces are served");
        if self.objects.contains_key(&key(namespaces, "", namespace)) {
            Ok(())
        } else {
            Err(ApiError::not_found(namespaces, namespace))
        }
    }
}

fn writer<'a>(
    target: &Target,
    opts: &'a WriteOptions,
    api_version: &'a str,
    now: &'a str,
) -> Writer<'a> {
    Writer {
        manager: &opts.manager,
        api_version,
        part: target.part(),
        now,
    }
}

fn in_collection(key: &Key, target: &Target) -> bool {
    key.0 == index_of(target.kind) && target.namespace.as_ref().is_none_or(|n| *n == key.1)
}

fn resource_version(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// Objects removed with `owner`: a namespace's contents, and objects whose ownerReferences
/// name its uid.
fn dependents(inner: &Inner, kind: &ResourceKind, key: &Key, owner: &Value) -> Vec<Key> {
    let uid = owner
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let is_namespace = kind.group.is_empty() && kind.kind == "Namespace";
    if !is_namespace && !inner.owner_refs.contains_key(uid) {
        return Vec::new();
    }
    inner
        .objects
        .iter()
        .filter(|(k, o)| {
            let contained = is_namespace && k.1 == key.2;
            let same_scope = !kind.namespaced() || k.1 == key.1;
            let owned = same_scope && owned_by(o, uid);
            contained || owned
        })
        .map(|(k, _)| k.clone())
        .collect()
}

fn owned_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spark() -> &'static ResourceKind {
        lookup("spark.apache.org", "v1", "sparkapplications")
            .unwrap()
            .0
    }

    fn app(name: &str) -> Value {
        json!({"apiVersion": "spark.apache.org/v1", "kind": "SparkApplication", "metadata": {"name": name},
               "spec": {"runtimeVersions": {"sparkVersion": "4.0.0"}}})
    }

    fn opts() -> WriteOptions {
        WriteOptions::new("test")
    }

    fn rv(object: &Value) -> u64 {
        object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn create_needs_the_namespace_and_refuses_duplicates() {
        let store = Store::new(100);
        let in_team = Target::collection(spark(), Some("team"));
        let err = store.create(&in_team, app("pi"), &opts()).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (404, "namespaces \"team\" not found")
        );
        let created = store
            .create(
                &Target::collection(spark(), Some("default")),
                app("pi"),
                &opts(),
            )
            .unwrap();
        assert!(created.created);
        assert_eq!(created.object["metadata"]["generation"], 1);
        let again = store
            .create(
                &Target::collection(spark(), Some("default")),
                app("pi"),
                &opts(),
            )
            .unwrap_err();
        assert_eq!(again.reason, "AlreadyExists");
    }

    #[test]
    fn updates_check_resource_version_skip_no_ops_and_keep_parts_apart() {
        let store = Store::new(100);
        let item = Target::item(spark(), Some("default"), "pi");
        let created = store
            .create(
                &Target::collection(spark(), Some("default")),
                app("pi"),
                &opts(),
            )
            .unwrap()
            .object;
        let mut stale = created.clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(
            store.update(&item, stale, &opts()).unwrap_err().reason,
            "Conflict"
        );
        let same = store
            .update(&item, created.clone(), &opts())
            .unwrap()
            .object;
        assert_eq!(rv(&same), rv(&created), "a no-op update is not a write");

        let mut with_status = created.clone();
        with_status["status"] = json!({"currentState": {"currentStateSummary": "Submitted"}});
        let main = store
            .update(&item, with_status.clone(), &opts())
            .unwrap()
            .object;
        assert!(
            main.get("status").is_none(),
            "the main resource ignores status"
        );
        let status = store
            .update(&item.clone().status(), with_status, &opts())
            .unwrap()
            .object;
        assert_eq!(
            status["status"]["currentState"]["currentStateSummary"],
            "Submitted"
        );
        assert_eq!(
            status["metadata"]["generation"], 1,
            "status does not bump generation"
        );

        let mut spec = status.clone();
        spec["spec"]["mainClass"] = json!("Pi");
        let updated = store.update(&item, spec, &opts()).unwrap().object;
        assert_eq!(updated["metadata"]["generation"], 2);
        assert_eq!(
            updated["status"], status["status"],
            "the main resource keeps the stored status"
        );
    }

    #[test]
    fn lists_page_with_continue_tokens_that_expire() {
        let store = Store::new(3);
        let collection = Target::collection(spark(), Some("default"));
        for name in ["a", "b", "c", "d", "e"] {
            store.create(&collection, app(name), &opts()).unwrap();
        }
        let page = |token: Option<String>| {
            store.list(
                &collection,
                &Selector::default(),
                &Page {
                    limit: Some(2),
                    continue_token: token,
                },
            )
        };
        let first = page(None).unwrap();
        assert_eq!((first.items.len(), first.remaining), (2, Some(3)));
        let second = page(first.continue_token.clone()).unwrap();
        assert_eq!(second.items[0]["metadata"]["name"], "c");
        assert_eq!(
            second.rv, first.rv,
            "pages report the first page's resourceVersion"
        );
        // Once events newer than the token's resourceVersion leave the history, it expires.
        for name in ["f", "g", "h", "i"] {
            store.create(&collection, app(name), &opts()).unwrap();
        }
        assert_eq!(page(second.continue_token).unwrap_err().code, 410);
        assert_eq!(page(Some("garbage".into())).unwrap_err().code, 400);
    }

    #[test]
    fn deletes_cascade_to_owned_objects_and_namespace_contents() {
        let store = Store::new(100);
        let namespaces = lookup("", "v1", "namespaces").unwrap().0;
        store
            .create(
                &Target::collection(namespaces, None),
                json!({"metadata": {"name": "team"}}),
                &opts(),
            )
            .unwrap();
        let collection = Target::collection(spark(), Some("team"));
        let owner = store
            .create(&collection, app("pi"), &opts())
            .unwrap()
            .object;
        let pods = lookup("", "v1", "pods").unwrap().0;
        let pod = json!({"metadata": {"name": "pi-0-driver", "ownerReferences": [{"uid": owner["metadata"]["uid"]}]}});
        store
            .create(&Target::collection(pods, Some("team")), pod, &opts())
            .unwrap();
        store.create(&collection, app("other"), &opts()).unwrap();

        let deleted = store
            .delete(
                &Target::item(spark(), Some("team"), "pi"),
                &Preconditions::default(),
                false,
            )
            .unwrap();
        assert!(
            rv(&deleted) > rv(&owner),
            "the DELETED object carries a new resourceVersion"
        );
        assert_eq!(
            store
                .get(&Target::item(pods, Some("team"), "pi-0-driver"))
                .unwrap_err()
                .code,
            404
        );
        store
            .delete(
                &Target::item(namespaces, None, "team"),
                &Preconditions::default(),
                false,
            )
            .unwrap();
        assert_eq!(
            store
                .get(&Target::item(spark(), Some("team"), "other"))
                .unwrap_err()
                .code,
            404
        );
    }

    #[tokio::test]
    async fn watches_resume_from_a_resource_version_or_get_410() {
        let store = Store::new(2);
        let collection = Target::collection(spark(), Some("default"));
        let first = store.create(&collection, app("a"), &opts()).unwrap().object;
        for name in ["b", "c"] {
            store.create(&collection, app(name), &opts()).unwrap();
        }
        let watch = |start| {
            store.watch(
                &collection,
                Selector::default(),
                start,
                &WatchTiming::default(),
                CancellationToken::new(),
            )
        };
        let mut resumed = watch(WatchStart::After(rv(&first))).unwrap();
        for name in ["b", "c"] {
            let Some(WatchItem::Event(EventType::Added, object)) = resumed.next().await else {
                panic!("an ADDED event")
            };
            assert_eq!(object["metadata"]["name"], name);
        }
        let too_old = watch(WatchStart::After(rv(&first) - 1)).err().unwrap();
        assert_eq!((too_old.code, too_old.reason), (410, "Expired"));
    }
}
