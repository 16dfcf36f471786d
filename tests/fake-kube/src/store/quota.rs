//! Object-count quota, as kube-apiserver's ResourceQuota admission enforces it at create: a
//! quota of the namespace whose `spec.hard` names `count/<resource>.<group>` (`count/<resource>`
//! for the core group) refuses the object that would go past it, 403 Forbidden "exceeded
//! quota". Compute quotas (pods' cpu and memory) are not enforced by the fake.

use std::collections::BTreeMap;

use serde_json::Value;

use super::request::Key;
use crate::error::{ApiError, ApiResult};
use crate::resources::{ResourceKind, index_of, lookup};

/// Whether one more `kind` object named `name` fits every quota of `namespace`.
pub(super) fn admit(
    objects: &BTreeMap<Key, Value>,
    kind: &ResourceKind,
    namespace: &str,
    name: &str,
) -> ApiResult<()> {
    let (quotas, _) = lookup("", "v1", "resourcequotas").expect("resourcequotas are served");
    let resource = format!("count/{}", kind.group_resource());
    let in_namespace = |index: usize| {
        let from: Key = (index, namespace.to_owned(), String::new());
        objects
            .range(from..)
            .take_while(move |(k, _)| k.0 == index && k.1 == namespace)
    };
    for (_, quota) in in_namespace(index_of(quotas)) {
        let Some(hard) = quota["spec"]["hard"][&resource].as_str().and_then(count) else {
            continue;
        };
        let used = in_namespace(index_of(kind)).count() as u64;
        if used + 1 > hard {
            let quota = quota["metadata"]["name"].as_str().unwrap_or_default();
            return Err(ApiError::exceeded_quota(
                kind, name, quota, &resource, used, hard,
            ));
        }
    }
    Ok(())
}

/// An object count as a quota states it (`"5"`; counts take no suffix).
fn count(hard: &str) -> Option<u64> {
    hard.parse().ok()
}
