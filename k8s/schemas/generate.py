#!/usr/bin/env python3
"""Writes the JSON schemas kubeconform validates spamflow's manifests against.

Kubernetes kinds: from the OpenAPI (swagger 2) document of the Kubernetes release in
KUBERNETES_VERSION, taken from the Go module k8s.io/kubernetes (api/openapi-spec/
swagger.json) through the Go module proxy, in kubeconform's "standalone strict" form:
every $ref inlined, unknown fields refused, int-or-string and quantities as either,
descriptions left out.
File names follow kubeconform's {kind}{-group}-{version}.json.

Usage: k8s/schemas/generate.py   (rewrites k8s/schemas/kubernetes-<version>/)
"""
import json
import os
import subprocess
import sys

KUBERNETES_VERSION = "v1.34.4"
# The kinds spamflow's manifests use (and the ConfigMap kustomize generates).
KINDS = ["StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy", "Secret"]


def inline(node, defs, seen):
    if isinstance(node, list):
        return [inline(n, defs, seen) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        if name in seen:
            return {}  # a recursive type: accepted as anything below this depth
        return inline(defs[name], defs, seen | {name})
    # Descriptions do not validate anything; without them the files are a fifth the size.
    out = {k: inline(v, defs, seen) for k, v in node.items() if k != "description"}
    if out.get("format") == "int-or-string":
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def main():
    mod = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        check=True, capture_output=True, text=True, cwd="/tmp").stdout
    swagger = json.load(open(os.path.join(json.loads(mod)["Dir"], "api/openapi-spec/swagger.json")))
    defs = swagger["definitions"]
    # A quantity is a string or a number.
    for name, d in defs.items():
        if name.endswith("api.resource.Quantity"):
            d.pop("type", None)
            d["oneOf"] = [{"type": "string"}, {"type": "number"}]
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"kubernetes-{KUBERNETES_VERSION}")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, d in sorted(defs.items()):
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            if gvk["kind"] not in KINDS or name.endswith("List"):
                continue
            group = gvk["group"].split(".")[0]
            suffix = f"-{group}-{gvk['version']}" if group else f"-{gvk['version']}"
            schema = inline(d, defs, {name})
            schema["properties"]["apiVersion"]["enum"] = [
                f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]]
            schema["properties"]["kind"]["enum"] = [gvk["kind"]]
            schema["$schema"] = "http://json-schema.org/schema#"
            path = os.path.join(out_dir, f"{gvk['kind'].lower()}{suffix}.json")
            with open(path, "w") as f:
                json.dump(schema, f, sort_keys=True, separators=(",", ":"))
                f.write("\n")
            written.append(os.path.basename(path))
    print("\n".join(sorted(written)), file=sys.stderr)


if __name__ == "__main__":
    main()
