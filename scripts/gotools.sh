#!/usr/bin/env bash
# Builds the Go tools the tests use, once, into $SPAMFLOW_TOOLS_CACHE (default
# ~/.cache/spamflow/tools), from the Go module proxy; never into the repository.
#
#   scripts/gotools.sh otelcol   the OpenTelemetry Collector of scripts/otelcol (OTLP receiver,
#                                file exporter), for the telemetry test
#   scripts/gotools.sh kustomize renders the Kubernetes overlays (scripts/k8s-check.sh)
#   scripts/gotools.sh kubeconform
#                                validates the rendered objects against k8s/schemas
#   scripts/gotools.sh all       every tool above
#
# Prints the path of each binary. A tool is rebuilt when its sources change.
set -euo pipefail
cd "$(dirname "$0")"
CACHE="${SPAMFLOW_TOOLS_CACHE:-$HOME/.cache/spamflow/tools}"
mkdir -p "$CACHE"
log() { echo "gotools.sh: $*" >&2; }
command -v go >/dev/null || { log "Go is required (apt-get install golang-go, or go.dev)"; exit 1; }

otelcol() {
  local key bin
  key=$(cat otelcol/go.mod otelcol/go.sum otelcol/main.go | sha256sum | cut -c1-12)
  bin="$CACHE/otelcol-spamflow-$key"
  if [ ! -x "$bin" ]; then
    log "building the OpenTelemetry Collector (about 2 minutes the first time)"
    (cd otelcol && go build -trimpath -o "$bin.tmp" .) && mv "$bin.tmp" "$bin"
  fi
  echo "$bin"
}

# A released Go command, by module path and version.
install() {
  local name="$1" module="$2" version="$3" bin
  bin="$CACHE/$name-$version"
  if [ ! -x "$bin" ]; then
    log "building $name $version"
    local tmp; tmp=$(mktemp -d)
    GOBIN="$tmp" go install "$module@$version"
    mv "$tmp/$name" "$bin"; rmdir "$tmp"
  fi
  echo "$bin"
}
kustomize() { install kustomize sigs.k8s.io/kustomize/kustomize/v5 v5.8.1; }
kubeconform() { install kubeconform github.com/yannh/kubeconform/cmd/kubeconform v0.7.0; }

case "${1:-all}" in
  otelcol) otelcol ;;
  kustomize) kustomize ;;
  kubeconform) kubeconform ;;
  all) otelcol; kustomize; kubeconform ;;
  *) log "unknown tool $1"; exit 2 ;;
esac
