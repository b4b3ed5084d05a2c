#!/usr/bin/env bash
# Renders every kustomize overlay of k8s/ and validates every object against the
# Kubernetes and CRD schemas vendored in k8s/schemas (kubeconform, strict: unknown fields
# are errors, and a kind without a schema is an error). Also checks the monitoring
# objects and that the validation itself still catches a broken manifest. Exit 1 on any
# problem. Run by `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
KUSTOMIZE=$(scripts/gotools.sh kustomize)
KUBECONFORM=$(scripts/gotools.sh kubeconform)
K8S_VERSION=v1.34.4

validate() {
  "$KUBECONFORM" -strict -summary -output text \
    -schema-location "$PWD/k8s/schemas/kubernetes-$K8S_VERSION/{{.ResourceKind}}{{.KindSuffix}}.json" \
    -schema-location "$PWD/k8s/schemas/crds/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json" \
    "$@"
}

for dir in k8s/base k8s/overlays/*/; do
  dir="${dir%/}"
  echo "k8s-check: $dir"
  "$KUSTOMIZE" build "$dir" | validate -
done
echo "k8s-check: k8s/monitoring"
validate k8s/monitoring/prometheusrule.yaml
python3 -m json.tool k8s/monitoring/grafana-dashboard.json >/dev/null

# The check must fail on a broken manifest: an unknown field in the container.
broken=$(mktemp -d)
trap 'rm -rf "$broken"' EXIT
cp -r k8s/. "$broken/"
sed -i 's/^          image: /          imagee: /' "$broken/base/statefulset.yaml"
if "$KUSTOMIZE" build "$broken/overlays/prod" | validate - >/dev/null 2>&1; then
  echo "k8s-check: a StatefulSet with an unknown field passed validation" >&2
  exit 1
fi
echo "k8s-check: every overlay valid; a broken manifest is caught"
