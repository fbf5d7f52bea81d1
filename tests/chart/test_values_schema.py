"""values.schema.json rejects typos and wrong types, in `helm` itself and as a JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from chartlib import CHART, RELEASE, ROOT, run, tool

SCHEMA = json.loads((CHART / "values.schema.json").read_text())

# Free-form maps and lists of Kubernetes objects: the only places unknown keys may appear.
FREE_FORM = {
    "commonLabels", "annotations", "labels", "podAnnotations", "podLabels", "nodeSelector", "affinity",
    "global", "tolerations", "apiFrom", "metricsFrom", "extraEgress", "extraEnv",
}


def _template(*sets):
    args = [tool("helm"), "template", RELEASE, str(CHART)]
    for s in sets:
        args += ["--set", s]
    return run(args)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("proxy.replica=3", "additional properties 'replica' not allowed"),
        ("operator.watch.namespace=team-a", "additional properties 'namespace' not allowed"),
        ("serviceMonitors.enabled=true", "additional properties 'serviceMonitors' not allowed"),
        ("proxy.autoscaling.maxReplica=5", "additional properties 'maxReplica' not allowed"),
        ("proxy.aws.irsaRoleArm=arn:aws:iam::123456789012:role/x", "additional properties 'irsaRoleArm' not allowed"),
    ],
)
def test_helm_rejects_a_misspelled_value(setting, complaint):
    proc = _template(setting)
    assert proc.returncode != 0, proc.stdout[:500]
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert complaint in proc.stderr


@pytest.mark.parametrize(
    "setting",
    [
        "proxy.logFormat=xml",
        "proxy.service.type=ExternalName",
        "proxy.aws.irsaRoleArn=bedrock-gateway",
        "proxy.image.digest=latest",
        "operator.replicas=0",
        "proxy.autoscaling.targetCPUUtilizationPercentage=150",
        "operator.watch.namespaces={Team_A}",
        "proxy.headerReadTimeoutMs=0",
    ],
)
def test_helm_rejects_a_wrong_value(setting):
    proc = _template(setting)
    assert proc.returncode != 0, setting
    assert "values don't meet the specifications of the schema" in proc.stderr


def test_the_same_values_spelled_right_are_accepted():
    proc = _template("proxy.replicas=3", "operator.watch.namespaces={team-a}", "serviceMonitor.enabled=true",
                     "proxy.aws.irsaRoleArn=arn:aws:iam::123456789012:role/x", "proxy.logFormat=text")
    assert proc.returncode == 0, proc.stderr


def _merge(base, override):
    """Helm's coalescing of a values file over the defaults."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def test_default_values_and_every_example_values_file_match_the_schema():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    validator = jsonschema.Draft7Validator(SCHEMA)
    validator.validate(defaults)
    files = sorted((ROOT / "examples").rglob("*values.yaml"))
    assert len(files) >= 4
    for path in files:
        validator.validate(_merge(defaults, yaml.safe_load(path.read_text())))


def test_every_object_of_the_schema_is_closed():
    open_objects = []

    def walk(node, path):
        if node.get("type") == "object" and path[-1] not in FREE_FORM:
            if node.get("additionalProperties") is not False:
                open_objects.append(".".join(path))
        for key, child in node.get("properties", {}).items():
            walk(child, path + [key])
        items = node.get("items")
        if isinstance(items, dict) and items.get("properties") and path[-1] not in FREE_FORM:
            walk(items, path + ["[]"])

    walk(SCHEMA, ["<root>"])
    # topologySpreadConstraints items and resource quantities are Kubernetes shapes left open on purpose.
    open_objects = [p for p in open_objects if not p.endswith("topologySpreadConstraints.[]")
                    and not p.endswith("imagePullSecrets.[]")]
    assert open_objects == []


def test_every_default_value_is_described_by_the_schema():
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value, schema, path):
        if isinstance(value, dict) and path.split(".")[-1] not in FREE_FORM:
            props = schema.get("properties", {})
            for key, child in value.items():
                assert key in props, f"{path}.{key} is not in values.schema.json"
                walk(child, props[key], f"{path}.{key}")

    walk(values, SCHEMA, "<root>")
