"""Shared helpers of the chart tests: tool paths, `helm template`, CRD schemas, example files."""

from __future__ import annotations

import copy
import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "bedrock-gateway"
EXAMPLES = ROOT / "examples"
CRDS = ROOT / "crds"
TOOLS = ROOT / ".tools"

RELEASE = "bedrock-gateway"
NAMESPACE = "ai-gateway"
# Names the operator and the proxy agree on (see the chart's _helpers.tpl and the binaries' flags).
CONFIG_MAP = f"{RELEASE}-config"
CREDENTIALS = f"{RELEASE}-credentials"
LEASE = f"{RELEASE}-operator"
MODEL_MANAGER = f"{RELEASE}-model-manager"
OPERATOR_SA = f"{RELEASE}-operator"
PROXY_SA = f"{RELEASE}-proxy"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest kubectl here.
KUBERNETES_VERSIONS = ("1.30.0", "1.35.0")

# The values files the chart is rendered with: name -> (values files, --set arguments).
VALUE_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "defaults": ((), ()),
    "irsa": (("examples/irsa/helm/values.yaml",), ()),
    "assume-role": (("examples/assume-role/helm/values.yaml",), ()),
    "hpa-servicemonitor": (("examples/helm/production-values.yaml",), ()),
    "minimal": (("examples/helm/minimal-values.yaml",), ()),
    "all-namespaces": ((), ("operator.watch.allNamespaces=true",)),
    "operator-only": ((), ("proxy.enabled=false",)),
    "tls": ((), ("proxy.tls.enabled=true", "proxy.tls.secretName=gateway-tls")),
}


def tool(name: str) -> str:
    """Path of helm, kubectl or the operator binary, as exported by scripts/test-chart."""
    env = {"helm": "HELM", "kubectl": "KUBECTL", "operator": "OPERATOR"}[name]
    path = os.environ.get(env)
    if not path:
        raise RuntimeError(f"${env} is not set: run the chart tests through scripts/test-chart")
    return path


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs a command and returns it, output captured as text; never raises on exit status."""
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False, **kwargs)


def helm_args(value_set: str) -> list[str]:
    """The -f and --set arguments of a value set."""
    files, sets = VALUE_SETS[value_set]
    args: list[str] = []
    for f in files:
        args += ["-f", str(ROOT / f)]
    for s in sets:
        args += ["--set", s]
    return args


@functools.cache
def render(value_set: str, *extra: str) -> tuple[dict[str, Any], ...]:
    """`helm template` of the chart with a value set (and extra helm flags): every non-empty document, parsed."""
    proc = run(
        [tool("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *helm_args(value_set), *extra]
    )
    if proc.returncode != 0:
        raise AssertionError(f"helm template ({value_set}) failed:\n{proc.stderr}")
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Documents of a kind (and name)."""
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    """The single document of a kind and name."""
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def validate_builtin(doc: dict[str, Any]) -> None:
    """Validates a built-in object strictly (unknown fields rejected) against every supported version."""
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD schema that rejects unknown fields, as the API server's strict field validation does."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator over the generated CRD's openAPIV3Schema, made strict."""
    out = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            # metadata is the API server's: only its type is in the CRD schema.
            schema["properties"]["metadata"] = {"type": "object"}
            schema["properties"].setdefault("apiVersion", {"type": "string"})
            schema["properties"].setdefault("kind", {"type": "string"})
            out[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return out


def crd_errors(doc: dict[str, Any]) -> list[str]:
    """Every schema violation of a custom resource, as 'path: message'."""
    validator = crd_validators()[(doc["apiVersion"], doc["kind"])]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def example_documents() -> list[tuple[Path, int, dict[str, Any]]]:
    """Every YAML document under examples/ that is a Kubernetes object: (file, index, document)."""
    out = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and "kind" in doc:
                out.append((path, index, doc))
    return out
