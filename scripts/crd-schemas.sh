#!/usr/bin/env bash
# The operators' own CRDs, pinned, as strict JSON schemas for kubeconform and the chart's tests:
#   scripts/crd-schemas.sh     fetch and convert what is missing, print crd-schemas=<folder>
# The CRD files come from each operator's source module on the Go module proxy (`go mod download`,
# checksums verified against sum.golang.org), cached under $PHARMACY_STATE_DIR/go; scripts/crd_schemas.py
# writes <folder>/<group>/<kind>_<version>.json, the layout kubeconform's
# `-schema-location '<folder>/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'` reads.
# Neither the CRDs nor the schemas are committed; they are made again when this script or the
# converter changes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="${PHARMACY_STATE_DIR:-$root/.run}"
out="$state/crd-schemas"
python="${PYTHON:-$root/.venv/bin/python}"

# module@version, then the CRD files in it the chart and examples/prerequisites.yaml use. Why these
# versions: README, "Running on Kubernetes" (the newest the proxy serves of each, at the time).
pins=(
  "github.com/kedacore/keda/v2@v2.21.0
    config/crd/bases/keda.sh_scaledobjects.yaml config/crd/bases/keda.sh_triggerauthentications.yaml"
  "github.com/prometheus-operator/prometheus-operator@v0.85.0
    example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
  "github.com/rabbitmq/cluster-operator/v2@v2.16.0
    config/crd/bases/rabbitmq.com_rabbitmqclusters.yaml"
  "github.com/rabbitmq/messaging-topology-operator@v1.16.0
    config/crd/bases/rabbitmq.com_vhosts.yaml config/crd/bases/rabbitmq.com_users.yaml
    config/crd/bases/rabbitmq.com_permissions.yaml config/crd/bases/rabbitmq.com_policies.yaml"
  "github.com/mongodb/mongodb-kubernetes-operator@v0.13.0
    config/crd/bases/mongodbcommunity.mongodb.com_mongodbcommunity.yaml"
)

log() { printf '[crd-schemas] %s\n' "$*" >&2; }

made_from=$(cat "$0" "$root/scripts/crd_schemas.py" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/.made-from" 2>/dev/null)" = "$made_from" ]; then
  printf 'crd-schemas=%s\n' "$out"
  exit 0
fi
command -v go >/dev/null || { log "go is needed to fetch the operators' CRDs"; exit 1; }
[ -x "$python" ] || { log "$python missing: run scripts/bootstrap.sh"; exit 1; }

started=$SECONDS
export GOPATH="$state/go" GOMODCACHE="$state/go/mod" GOFLAGS="-mod=mod -modcacherw" GOWORK=off
mkdir -p "$GOPATH"
files=()
for pin in "${pins[@]}"; do
  read -r -a words <<<"$(tr '\n' ' ' <<<"$pin")"
  module=${words[0]}
  # Outside any module, so that nothing's go.mod is read or changed.
  if ! answer=$(cd "$GOPATH" && go mod download -json "$module"); then
    log "go mod download $module failed: $answer"
    exit 1
  fi
  dir=$("$python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])' <<<"$answer")
  for file in "${words[@]:1}"; do files+=("$dir/$file"); done
done
# Made aside, then moved in place: two runs at once (a test run beside make cluster-test) each make
# their own, and one that finds the same already in place keeps it (it may be being read).
made=$(mktemp -d "$out.XXXXXX")
trap 'rm -rf "$made"' EXIT
chmod 755 "$made"
"$python" "$root/scripts/crd_schemas.py" "$made" "${files[@]}"
printf '%s\n' "$made_from" >"$made/.made-from"
if [ "$(cat "$out/.made-from" 2>/dev/null)" != "$made_from" ]; then
  rm -rf "$out"  # made from other pins or another converter: replaced
  # Refused only if another run moved the same in between: then that one stays.
  mv -T "$made" "$out" 2>/dev/null || [ "$(cat "$out/.made-from" 2>/dev/null)" = "$made_from" ]
fi
log "${#files[@]} CRDs converted in $((SECONDS - started)) s"
printf 'crd-schemas=%s\n' "$out"
