"""The chart ships the generated CRDs unchanged; every example and rendered custom resource
fits their schemas; every example renders with `bedrock-gateway-operator render -f`."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
import yaml

from chartlib import (
    CHART,
    CRDS,
    EXAMPLES,
    VALUE_SETS,
    crd_errors,
    example_documents,
    render,
    run,
    tool,
    validate_builtin,
)

GROUP = "bedrockgateway.io"
# Kinds of other projects that examples use; their CRDs are not available offline.
FOREIGN_GROUPS = {"argoproj.io"}
EXAMPLE_DOCS = example_documents()


def test_chart_crds_are_identical_copies_of_the_generated_ones():
    generated = sorted(p.name for p in CRDS.glob("*.yaml"))
    shipped = sorted(p.name for p in (CHART / "crds").glob("*"))
    assert shipped == generated, "charts/bedrock-gateway/crds must hold exactly crds/*.yaml"
    for name in generated:
        assert (CHART / "crds" / name).read_bytes() == (CRDS / name).read_bytes(), (
            f"charts/bedrock-gateway/crds/{name} drifted from crds/{name}: "
            "run `cp crds/*.yaml charts/bedrock-gateway/crds/`"
        )


@pytest.mark.parametrize("name", sorted(p.name for p in CRDS.glob("*.yaml")))
def test_crds_are_valid_custom_resource_definitions(name):
    validate_builtin(yaml.safe_load((CHART / "crds" / name).read_text()))


def test_crds_are_what_crdgen_prints_today(tmp_path):
    proc = run([tool("operator"), "crdgen", "--out-dir", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    for path in sorted(tmp_path.iterdir()):
        assert path.read_bytes() == (CHART / "crds" / path.name).read_bytes(), path.name


def _id(item):
    path, index, doc = item
    return f"{path.relative_to(EXAMPLES)}#{index}:{doc['kind']}"


@pytest.mark.parametrize("item", EXAMPLE_DOCS, ids=[_id(i) for i in EXAMPLE_DOCS])
def test_example_object_is_valid(item):
    _, _, doc = item
    group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
    if group == GROUP:
        assert crd_errors(doc) == []
    elif group in FOREIGN_GROUPS:
        assert doc["metadata"]["name"]
    else:
        validate_builtin(doc)


def test_examples_cover_every_kind_and_auth_mode():
    kinds = {doc["kind"] for _, _, doc in EXAMPLE_DOCS if doc["apiVersion"].startswith(GROUP)}
    assert kinds == {"BedrockAccount", "BedrockModel", "AccessPolicy"}
    auth = {next(iter(doc["spec"]["auth"])) for _, _, doc in EXAMPLE_DOCS if doc["kind"] == "BedrockAccount"}
    assert auth == {"podIdentity", "assumeRole", "accessKey", "apiKey"}
    subjects = {next(iter(s)) for _, _, d in EXAMPLE_DOCS if d["kind"] == "AccessPolicy" for s in d["spec"]["subjects"]}
    assert subjects == {"user", "team", "serviceAccount"}


def test_crd_schema_rejects_a_misspelled_field_and_a_wrong_type():
    account = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "BedrockAccount", "metadata": {"name": "x"},
               "spec": {"defaultRegion": "us-east-1", "auth": {"podIdentity": {}}, "dicovery": {"enabled": True}}}
    assert any("'dicovery' was unexpected" in e for e in crd_errors(account))
    model = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "BedrockModel", "metadata": {"name": "x"},
             "spec": {"accountRef": "a", "modelId": "m", "kind": "video"}}
    assert any(e.startswith("spec/kind:") for e in crd_errors(model))


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendered_custom_resources_fit_the_crds(value_set):
    for doc in render(value_set):
        if doc["apiVersion"].startswith(f"{GROUP}/"):
            assert crd_errors(doc) == []


def _manifest_dirs():
    dirs = {path.parent for path, _, doc in EXAMPLE_DOCS if doc["kind"] == "BedrockAccount"}
    return sorted(dirs)


@pytest.mark.parametrize("directory", _manifest_dirs(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_renders_with_the_operator(directory):
    # The GitOps pre-merge check, exactly as examples/gitops/pre-merge-check.sh runs it.
    proc = run(["examples/gitops/pre-merge-check.sh", str(directory)], env={"OPERATOR": tool("operator"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "problem" not in proc.stderr


def test_pre_merge_check_fails_on_a_broken_folder(tmp_path):
    (tmp_path / "model.yaml").write_text(
        "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata: {name: m, namespace: ai-gateway}\n"
        "spec: {accountRef: nowhere, modelId: amazon.nova-lite-v1:0}\n"
    )
    proc = run(["examples/gitops/pre-merge-check.sh", str(tmp_path)], env={"OPERATOR": tool("operator"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    assert "nowhere" in proc.stderr


def test_every_example_folder_is_listed_in_the_examples_readme():
    readme = (EXAMPLES / "README.md").read_text()
    for child in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        assert f"[`{child.name}/`]({child.name}/)" in readme, child.name


def _policies():
    return sorted(EXAMPLES.rglob("iam/*.json"))


@pytest.mark.parametrize("path", _policies(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_iam_documents_are_policy_json(path: Path):
    policy = json.loads(path.read_text())
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny")
        assert statement.get("Action") or statement.get("NotAction")
        if path.name.endswith("trust-policy.json"):
            assert "Principal" in statement and "Resource" not in statement
        else:
            assert "Resource" in statement and "Principal" not in statement


def test_assume_role_policies_name_each_other():
    account = next(d for p, _, d in EXAMPLE_DOCS if d["kind"] == "BedrockAccount" and "assume-role" in p.parts)
    gateway_role = yaml.safe_load((EXAMPLES / "assume-role/helm/values.yaml").read_text())["proxy"]["aws"]["irsaRoleArn"]
    trust = json.loads((EXAMPLES / "assume-role/iam/bedrock-invoke-trust-policy.json").read_text())["Statement"][0]
    assert trust["Principal"] == {"AWS": gateway_role}
    # The gateway tags its sessions (account, namespace, gateway): both sides must allow TagSession.
    assert trust["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert trust["Condition"]["StringEquals"]["sts:ExternalId"] == account["spec"]["auth"]["assumeRole"]["externalId"]
    gateway = json.loads((EXAMPLES / "assume-role/iam/gateway-role-policy.json").read_text())["Statement"][0]
    assert gateway["Resource"] == account["spec"]["auth"]["assumeRole"]["roleArn"]
    assert gateway["Action"] == ["sts:AssumeRole", "sts:TagSession"]


def test_irsa_trust_policy_names_the_charts_service_accounts_of_that_role():
    docs = render("irsa")
    role = json.loads((EXAMPLES / "irsa/iam/trust-policy.json").read_text())["Statement"][0]
    subjects = [v for k, v in role["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    annotated = sorted(
        f"system:serviceaccount:{sa['metadata']['namespace']}:{sa['metadata']['name']}"
        for sa in docs
        if sa["kind"] == "ServiceAccount"
        and sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn", "").endswith("role/bedrock-gateway")
    )
    assert len(annotated) == 2
    assert [sorted(subjects[0])] == [annotated]


def test_batch_roles_match_the_account():
    account = next(d for p, _, d in EXAMPLE_DOCS if d["kind"] == "BedrockAccount" and "batch" in p.parts)
    batch = account["spec"]["batch"]
    gateway = json.loads((EXAMPLES / "batch/iam/gateway-batch-policy.json").read_text())["Statement"]
    passrole = next(s for s in gateway if s["Action"] == "iam:PassRole")
    assert passrole["Resource"] == batch["roleArn"]
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}}
    files = next(s for s in gateway if s["Sid"] == "Files")
    assert files["Resource"] == f"arn:aws:s3:::{batch['bucket']}/{batch['prefix']}*"
    service = json.loads((EXAMPLES / "batch/iam/batch-service-role-permissions-policy.json").read_text())
    assert f"arn:aws:s3:::{batch['bucket']}/{batch['prefix']}*" in service["Statement"][0]["Resource"]


def test_sidecar_secret_holds_the_rendered_config():
    env = {"OPERATOR": tool("operator"), "KUBECTL": tool("kubectl"), "PYTHON": sys.executable,
           "PATH": "/usr/bin:/bin"}
    proc = run(["examples/sidecar/render-secret.sh", "examples/sidecar/manifests", "apps", "chatbot-gateway"], env=env)
    assert proc.returncode == 0, proc.stderr
    secret = yaml.safe_load(proc.stdout)
    validate_builtin(secret)
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == ("chatbot-gateway", "apps")
    config = json.loads(base64.b64decode(secret["data"]["config.json"]))
    credentials = json.loads(base64.b64decode(secret["data"]["credentials.json"]))
    assert config["version"] == 1
    assert config["models"]["bedrock/haiku"]["modelId"] == "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    assert config["policies"][0]["subjects"] == [{"serviceAccount": {"namespace": "apps", "name": "chatbot"}}]
    assert credentials == {"accounts": {}, "apiKeys": {}}
    # The Deployment mounts exactly this Secret where the sidecar's --config-dir points.
    deployment = next(d for p, _, d in EXAMPLE_DOCS if d["kind"] == "Deployment" and "sidecar" in p.parts)
    pod = deployment["spec"]["template"]["spec"]
    sidecar = pod["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    config_dir = sidecar["args"][sidecar["args"].index("--config-dir") + 1]
    mount = next(m for m in sidecar["volumeMounts"] if m["mountPath"] == config_dir)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "chatbot-gateway"
    assert sidecar["args"][sidecar["args"].index("--listen") + 1].startswith("127.0.0.1:")


def test_sidecar_render_fails_without_writing_a_secret(tmp_path):
    (tmp_path / "bad.yaml").write_text("apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockAccount\n"
                                       "metadata: {name: a}\nspec: {defaultRegion: us-east-1, auth: {}}\n")
    env = {"OPERATOR": tool("operator"), "KUBECTL": tool("kubectl"), "PYTHON": sys.executable,
           "PATH": "/usr/bin:/bin"}
    proc = run(["examples/sidecar/render-secret.sh", str(tmp_path), "apps", "x"], env=env)
    assert proc.returncode != 0
    assert proc.stdout == ""
