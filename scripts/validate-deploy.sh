#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/ offline (no cluster, no network once set up):
#
#  1. renders every kustomization (deploy/base and each deploy/overlays/*) with kubectl's
#     built-in kustomize;
#  2. validates every rendered object against the Kubernetes OpenAPI schemas bundled in
#     kubernetes-validate (PyPI), strictly: unknown fields and wrong types fail, and so do kinds
#     or apiVersions it has no schema for (the tool itself only warns about those, which would
#     let `kind: Deploymnet` or `policy/v2` through);
#  3. when an sk8 binary is built, loads the sk8.yaml of every rendered sk8-config ConfigMap with
#     it, so a key sk8 does not know fails here instead of at pod startup;
#  4. (with no arguments) validates the team-namespace objects sk8 renders, from their goldens
#     in tests/golden/namespace, the same way as step 2.
#
#   scripts/validate-deploy.sh [KUSTOMIZATION_DIR...]    (default: deploy/base deploy/overlays/*)
#
# Environment:
#   SK8_KUBECTL        the kubectl to render with (default: the 1.33 kubectl of the Google Cloud
#                      SDK if present, else `kubectl` on PATH)
#   SK8_TOOLS_VENV     the venv holding kubernetes-validate (default ~/.cache/sk8/tools-venv);
#                      created on first use (that run needs PyPI), reused afterwards
#   SK8_KUBE_VERSION   the Kubernetes version whose schemas apply (default 1.33)
#   SK8_VALIDATE_ALLOW_KINDS  space-separated kinds without a bundled schema (custom resources
#                      such as ServiceMonitor) to accept unvalidated
#   SK8_BIN            the sk8 binary for step 3 (default: the newer of target/release/sk8 and
#                      target/debug/sk8); `none` skips step 3
# Reports every kustomization that fails to render and every object that fails (the first
# schema error of each object), then exits non-zero if there was any.
set -euo pipefail
cd "$(dirname "$0")/.."

KV_VERSION=1.37.0
KUBE_VERSION="${SK8_KUBE_VERSION:-1.33}"
VENV="${SK8_TOOLS_VENV:-$HOME/.cache/sk8/tools-venv}"
ALLOW_KINDS="${SK8_VALIDATE_ALLOW_KINDS:-}"

say() { printf 'validate-deploy: %s\n' "$*"; }
die() { printf 'validate-deploy: error: %s\n' "$*" >&2; exit 1; }

find_kubectl() {
  local candidate
  for candidate in "${SK8_KUBECTL:-}" /usr/lib/google-cloud-sdk/bin/kubectl.1.33 kubectl; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" kustomize --help >/dev/null 2>&1; then
      command -v "$candidate"
      return
    fi
  done
  die "no kubectl with built-in kustomize found: install kubectl 1.14+ or set SK8_KUBECTL"
}

venv_ready() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" - "$KV_VERSION" <<'PY' >/dev/null 2>&1
import sys
import kubernetes_validate, kubernetes_validate.utils  # the dependencies import too
sys.exit(kubernetes_validate.__version__ != sys.argv[1])
PY
}

# Creates the venv once; a lock keeps concurrent runs from building it twice, and an
# interrupted install (which fails venv_ready) is rebuilt from scratch.
ensure_venv() {
  venv_ready && return
  command -v python3 >/dev/null 2>&1 || die "python3 (3.9+, with venv) is needed for kubernetes-validate"
  mkdir -p "$(dirname "$VENV")"
  (
    command -v flock >/dev/null 2>&1 && flock 9
    venv_ready && exit 0
    say "creating $VENV with kubernetes-validate==$KV_VERSION (first run only)"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
      "kubernetes-validate==$KV_VERSION" </dev/null || die "pip install kubernetes-validate failed"
  ) 9>"$VENV.lock"
  venv_ready || die "$VENV has no working kubernetes-validate $KV_VERSION"
}

# The sk8 binary for the config check, or nothing. A binary older than src/config.rs may not
# know the keys the source does, so it is not trusted (no false failures from a stale build).
find_sk8() {
  local bin="${SK8_BIN:-}"
  [ "$bin" = none ] && return
  if [ -z "$bin" ]; then
    for candidate in target/release/sk8 target/debug/sk8; do
      [ -x "$candidate" ] || continue
      if [ -z "$bin" ] || [ "$candidate" -nt "$bin" ]; then bin="$candidate"; fi
    done
    [ -n "$bin" ] || return 0
    if [ src/config.rs -nt "$bin" ]; then
      say "note: $bin is older than src/config.rs: not trusted for the config check (rebuild, or set SK8_BIN)" >&2
      return
    fi
  fi
  [ -x "$bin" ] || die "SK8_BIN=$bin is not an executable"
  printf '%s\n' "$bin"
}

# Loads a config with `sk8 serve --check-config` (validation only: binds and connects nothing)
# in a clean environment, so a key sk8 does not know fails here instead of at pod startup.
check_config() {
  local bin="$1" file="$2" label="$3" out
  if out="$(env -i PATH="/usr/bin:/bin" HOME="$work" "$bin" serve --check-config --config "$file" 2>&1 </dev/null)"; then
    printf '  ok  %s: accepted by %s\n' "$label" "$bin"
  else
    printf '  FAIL %s: %s refused it:\n' "$label" "$bin"
    printf '%s\n' "$out" | sed 's/^/       /'
    return 1
  fi
}

# Validates one rendered file; prints a line per object; writes the sk8.yaml of each sk8-config
# ConfigMap to OUT_DIR/<n>.sk8.yaml. Exit status 1 if any object failed.
validate_rendered() {
  "$VENV/bin/python" - "$@" <<'PY'
import os, sys
import yaml
import kubernetes_validate as kv

rendered, kube_version, allow, out_dir = sys.argv[1], sys.argv[2], set(sys.argv[3].split()), sys.argv[4]
with open(rendered) as f:
    objects = [o for o in yaml.safe_load_all(f) if o]
failed = configs = 0
for obj in objects:
    kind, api = obj.get("kind"), obj.get("apiVersion")
    name = (obj.get("metadata") or {}).get("name")
    what = f"{kind}/{name} ({api})"
    if not (kind and api and name):
        print(f"  FAIL {what}: apiVersion, kind and metadata.name are required")
        failed += 1
        continue
    try:
        kv.validate(obj, kube_version, strict=True)
        print(f"  ok  {what}")
    except kv.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "(root)"
        print(f"  FAIL {what}: {path}: {e.message}")
        failed += 1
    except kv.SchemaNotFoundError:
        if kind in allow:
            print(f"  skip {what}: no bundled schema; allowed by SK8_VALIDATE_ALLOW_KINDS")
        else:
            print(f"  FAIL {what}: Kubernetes {kube_version} has no such kind/apiVersion "
                  "(a typo? for a custom resource, add the kind to SK8_VALIDATE_ALLOW_KINDS)")
            failed += 1
    except Exception as e:  # an unsupported version, an unreadable schema
        print(f"  FAIL {what}: cannot validate: {e}")
        failed += 1
    if kind == "ConfigMap" and name.startswith("sk8-config") and "sk8.yaml" in (obj.get("data") or {}):
        configs += 1
        with open(os.path.join(out_dir, f"{configs}.{name}.sk8.yaml"), "w") as f:
            f.write(obj["data"]["sk8.yaml"])
print(f"  {len(objects)} objects, {failed} failed")
sys.exit(1 if failed or not objects else 0)
PY
}

kubectl_bin="$(find_kubectl)"
ensure_venv
sk8_bin="$(find_sk8)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ "$#" -gt 0 ]; then
  dirs=("$@")
else
  dirs=(deploy/base)
  for overlay in deploy/overlays/*/; do
    [ -f "$overlay/kustomization.yaml" ] && dirs+=("${overlay%/}")
  done
fi

say "kubectl: $kubectl_bin ($("$kubectl_bin" version --client 2>/dev/null | tr '\n' ' ' | sed 's/ *$//'))"
say "kubernetes-validate $KV_VERSION in $VENV: Kubernetes $KUBE_VERSION schemas, strict"
status=0
n=0
for dir in "${dirs[@]}"; do
  n=$((n + 1))
  out="$work/$n"
  mkdir -p "$out"
  printf '== %s\n' "$dir"
  if ! "$kubectl_bin" kustomize "$dir" </dev/null >"$out/rendered.yaml" 2>"$out/kustomize.err"; then
    printf '  FAIL kustomize:\n'
    sed 's/^/       /' "$out/kustomize.err"
    status=1
    continue
  fi
  validate_rendered "$out/rendered.yaml" "$KUBE_VERSION" "$ALLOW_KINDS" "$out" || status=1
  shopt -s nullglob
  configs=("$out"/*.sk8.yaml)
  shopt -u nullglob
  if [ -n "$sk8_bin" ]; then
    for config in "${configs[@]}"; do
      label="$(basename "$config" .sk8.yaml)"
      check_config "$sk8_bin" "$config" "sk8.yaml in ConfigMap ${label#*.}" || status=1
    done
  fi
done

# The objects sk8 itself renders for a team namespace (tests/golden/namespace, kept in step
# with the renderer by tests/namespaces.rs), validated the same way: one document per file.
golden=tests/golden/namespace
if [ "$#" -eq 0 ] && [ -d "$golden" ]; then
  printf '== %s (rendered by sk8 for a team namespace)\n' "$golden"
  out="$work/golden"
  mkdir -p "$out"
  for file in "$golden"/*.json; do
    cat "$file"
    printf -- '---\n'
  done >"$out/rendered.yaml"
  validate_rendered "$out/rendered.yaml" "$KUBE_VERSION" "" "$out" || status=1
fi

if [ -z "$sk8_bin" ]; then
  say "sk8 config check skipped: no up-to-date sk8 binary (cargo build, or set SK8_BIN)"
fi
if [ "$status" -ne 0 ]; then
  say "FAILED"
  exit 1
fi
say "all ${#dirs[@]} kustomizations valid"
