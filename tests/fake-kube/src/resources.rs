//! The table of resource kinds the fake serves. Everything else (routing, discovery, OpenAPI,
//! storage keys, Table output) is derived from [`KINDS`], so serving a new kind is one line.

/// Whether objects of a kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// The rule `metadata.name` must follow, as the real API server checks it per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds, custom resources).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Label1035,
    /// Anything usable as a URL path segment (RBAC kinds).
    PathSegment,
}

/// One extra column of `kubectl get` output, after NAME.
#[derive(Debug, Clone, Copy)]
pub enum Column {
    /// Time since `metadata.creationTimestamp`, like the built-in printers' AGE.
    Age,
    /// A string found at a dotted JSON path, like a CRD's `additionalPrinterColumns`.
    Path(&'static str, &'static str),
}

/// One kind of resource: the facts discovery publishes and the handlers obey.
#[derive(Debug)]
pub struct ResourceKind {
    pub group: &'static str,
    /// Served versions; the first is the storage and preferred version. Versions differ only
    /// in `apiVersion` (a CRD's `conversion: None`).
    pub versions: &'static [&'static str],
    pub kind: &'static str,
    pub plural: &'static str,
    pub short_names: &'static [&'static str],
    pub scope: Scope,
    /// Has a `status` subresource: main-resource writes keep the stored status and `/status`
    /// writes change nothing else.
    pub status: bool,
    /// Has a `log` subresource (pods).
    pub log: bool,
    pub names: NameRule,
    pub columns: &'static [Column],
    pub categories: &'static [&'static str],
    /// Fields a `fieldSelector` may name besides `metadata.name` and `metadata.namespace`.
    pub field_labels: &'static [&'static str],
}

const fn core(kind: &'static str, plural: &'static str, scope: Scope) -> ResourceKind {
    api("", &["v1"], kind, plural, scope)
}

const fn api(
    group: &'static str,
    versions: &'static [&'static str],
    kind: &'static str,
    plural: &'static str,
    scope: Scope,
) -> ResourceKind {
    ResourceKind {
        group,
        versions,
        kind,
        plural,
        short_names: &[],
        scope,
        status: false,
        log: false,
        names: NameRule::Subdomain,
        columns: &[Column::Age],
        categories: &[],
        field_labels: &[],
    }
}

impl ResourceKind {
    const fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    const fn with_status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn with_log(mut self) -> Self {
        self.log = true;
        self
    }
    const fn names(mut self, rule: NameRule) -> Self {
        self.names = rule;
        self
    }
    const fn columns(mut self, columns: &'static [Column]) -> Self {
        self.columns = columns;
        self
    }
    const fn fields(mut self, field_labels: &'static [&'static str]) -> Self {
        self.field_labels = field_labels;
        self
    }
    const fn categories(mut self, categories: &'static [&'static str]) -> Self {
        self.categories = categories;
        self
    }

    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The version objects are stored in.
    pub fn storage_version(&self) -> &'static str {
        self.versions[0]
    }

    /// `apiVersion` for one of the served versions: `v1` or `group/v1`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// `sparkapplications.spark.apache.org` or `pods`: how Status messages name a resource.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `SparkApplication.spark.apache.org` or `Pod`: how Invalid messages name a kind.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn singular(&self) -> String {
        self.kind.to_lowercase()
    }

    /// The prefix of every URL for this kind and version: `/api/v1` or `/apis/group/version`.
    pub fn url_prefix(&self, version: &str) -> String {
        if self.group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{}/{version}", self.group)
        }
    }
}

const PHASE: Column = Column::Path("Status", ".status.phase");

/// Every kind the fake serves. The SparkApplication line mirrors the CRD in `tests/fixtures/crds/`.
pub static KINDS: &[ResourceKind] = &[
    core("Namespace", "namespaces", Scope::Cluster)
        .short(&["ns"])
        .names(NameRule::Label)
        .fields(&["status.phase"])
        .columns(&[PHASE, Column::Age]),
    core("Pod", "pods", Scope::Namespaced)
        .short(&["po"])
        .with_status()
        .with_log()
        .categories(&["all"])
        .fields(&[
            "spec.nodeName",
            "spec.restartPolicy",
            "status.phase",
            "status.podIP",
        ])
        .columns(&[PHASE, Column::Path("IP", ".status.podIP"), Column::Age]),
    core("Service", "services", Scope::Namespaced)
        .short(&["svc"])
        .with_status()
        .names(NameRule::Label1035)
        .categories(&["all"]),
    core("Secret", "secrets", Scope::Namespaced).fields(&["type"]),
    core("Event", "events", Scope::Namespaced)
        .short(&["ev"])
        .fields(&[
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "reason",
            "type",
        ]),
    core("ConfigMap", "configmaps", Scope::Namespaced).short(&["cm"]),
    core("ServiceAccount", "serviceaccounts", Scope::Namespaced).short(&["sa"]),
    core("ResourceQuota", "resourcequotas", Scope::Namespaced)
        .short(&["quota"])
        .with_status(),
    core("LimitRange", "limitranges", Scope::Namespaced).short(&["limits"]),
    api(
        "networking.k8s.io",
        &["v1"],
        "NetworkPolicy",
        "networkpolicies",
        Scope::Namespaced,
    )
    .short(&["netpol"]),
    api(
        "rbac.authorization.k8s.io",
        &["v1"],
        "Role",
        "roles",
        Scope::Namespaced,
    )
    .names(NameRule::PathSegment),
    api(
        "rbac.authorization.k8s.io",
        &["v1"],
        "RoleBinding",
        "rolebindings",
        Scope::Namespaced,
    )
    .names(NameRule::PathSegment),
    api(
        "spark.apache.org",
        &["v1", "v1beta1"],
        "SparkApplication",
        "sparkapplications",
        Scope::Namespaced,
    )
    .short(&["sparkapp"])
    .with_status()
    .columns(&[
        Column::Age,
        Column::Path("Current State", ".status.currentState.currentStateSummary"),
    ]),
    api(
        "apiextensions.k8s.io",
        &["v1"],
        "CustomResourceDefinition",
        "customresourcedefinitions",
        Scope::Cluster,
    )
    .short(&["crd", "crds"])
    .with_status(),
];

/// The kind served at `group`/`version` under `plural`, with the version as a `'static` str.
pub fn lookup(
    group: &str,
    version: &str,
    plural: &str,
) -> Option<(&'static ResourceKind, &'static str)> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.plural == plural)
        .and_then(|k| {
            let v = k.versions.iter().find(|v| **v == version)?;
            Some((k, *v))
        })
}

/// The table index of a kind, used as the first part of storage keys.
pub fn index_of(kind: &ResourceKind) -> usize {
    KINDS
        .iter()
        .position(|k| std::ptr::eq(k, kind))
        .expect("every ResourceKind comes from KINDS")
}

/// Every served `(group, version)`, in table order without repeats.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for kind in KINDS {
        for version in kind.versions {
            if !out.contains(&(kind.group, version)) {
                out.push((kind.group, version));
            }
        }
    }
    out
}

/// The kinds served in one group-version.
pub fn kinds_in(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceKind> {
    KINDS
        .iter()
        .filter(move |k| k.group == group && k.versions.contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_every_served_version() {
        let (kind, version) = lookup("spark.apache.org", "v1beta1", "sparkapplications").unwrap();
        assert_eq!((kind.kind, version), ("SparkApplication", "v1beta1"));
        assert!(lookup("spark.apache.org", "v2", "sparkapplications").is_none());
        assert_eq!(lookup("", "v1", "pods").unwrap().0.group_resource(), "pods");
    }

    #[test]
    fn plurals_are_unique_per_group() {
        for (i, a) in KINDS.iter().enumerate() {
            assert_eq!(index_of(a), i);
            for b in &KINDS[i + 1..] {
                assert!(a.group != b.group || a.plural != b.plural, "{}", a.plural);
            }
        }
    }
}
