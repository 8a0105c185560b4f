#!/usr/bin/env bash
# Builds the chart's offline checkers from the Go module proxy, pinned, once: helm (Helm 4) and
# kubeconform, into $PHARMACY_STATE_DIR/bin (default .run/bin). A pinned binary already there is kept.
# Then the operators' CRDs as JSON schemas (scripts/crd-schemas.sh, from the same proxy).
# Prints the three paths, one `name=path` a line, for tests and people:
#   scripts/k8s-tools.sh            make what is missing, print helm=..., kubeconform=..., crd-schemas=...
# Measured here with empty Go module and build caches: helm 102 s, then kubeconform 3 s (most of its
# modules came with helm's); nothing once built.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="${PHARMACY_STATE_DIR:-$root/.run}"
bin="$state/bin"
helm_version="v4.3.1"
kubeconform_version="v0.7.0"
mkdir -p "$bin"

log() { printf '[k8s-tools] %s\n' "$*" >&2; }

# name module version: go install into a per-version folder, linked as <bin>/<name>-<version>.
build() {
  local name=$1 module=$2 version=$3 target="$bin/$1-$3"
  if [ -x "$target" ]; then return 0; fi
  command -v go >/dev/null || { log "go is needed to build $name $version"; return 1; }
  log "building $name $version from the Go module proxy (minutes, once)"
  local started=$SECONDS gobin="$bin/.$name-$version"
  mkdir -p "$gobin"
  # A version without its module's build metadata: the tool's own version flag says "dev"; fine here.
  GOBIN="$gobin" CGO_ENABLED=0 go install "$module@$version"
  mv "$gobin/$name" "$target"
  rmdir "$gobin"
  log "$name $version built in $((SECONDS - started)) s"
}

build helm helm.sh/helm/v4/cmd/helm "$helm_version"
build kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$kubeconform_version"
printf 'helm=%s\n' "$bin/helm-$helm_version"
printf 'kubeconform=%s\n' "$bin/kubeconform-$kubeconform_version"
"$root/scripts/crd-schemas.sh"
