//! A kubeconfig for the fake: plain HTTP, TLS verification off, a dummy bearer token (the fake
//! accepts any credentials). kubectl and kube-rs both read it.

/// The kubeconfig YAML for a server at `url`, with `default` as the context's namespace.
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fake-kube
  cluster:
    server: {url}
    insecure-skip-tls-verify: true
users:
- name: fake-kube
  user:
    token: fake-token
contexts:
- name: fake-kube
  context:
    cluster: fake-kube
    user: fake-kube
    namespace: default
current-context: fake-kube
"
    )
}
