"""The Argo CD health checks (Lua, run here in Lua 5.1 like Argo CD's gopher-lua) against
sample BedrockAccount, BedrockModel and AccessPolicy objects."""

from __future__ import annotations

import pytest
import yaml
from lupa import lua51

from chartlib import EXAMPLES

PATCH = yaml.safe_load((EXAMPLES / "gitops/argocd/argocd-cm-health.yaml").read_text())
PREFIX = "resource.customizations.health.bedrockgateway.io_"
KINDS = ("BedrockAccount", "BedrockModel", "AccessPolicy")


def health(kind: str, obj: dict) -> dict:
    """Runs the kind's health script the way Argo CD does: `obj` global, a table returned."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(PATCH["data"][PREFIX + kind])
    return dict(result.items())


def resource(kind, generation=2, status=None):
    obj = {"apiVersion": "bedrockgateway.io/v1alpha1", "kind": kind,
           "metadata": {"name": "x", "namespace": "ai-gateway", "generation": generation}, "spec": {}}
    if status is not None:
        obj["status"] = status
    return obj


def ready(status, reason="", message="", observed=2, condition_generation=None):
    condition = {"type": "Ready", "status": status, "reason": reason, "message": message,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}
    if condition_generation is not None:
        condition["observedGeneration"] = condition_generation
    return {"observedGeneration": observed, "conditions": [condition]}


def test_the_patch_covers_exactly_the_three_kinds_with_one_script():
    keys = sorted(PATCH["data"])
    assert keys == sorted(PREFIX + k for k in KINDS)
    assert len({PATCH["data"][k] for k in keys}) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_yet_is_progressing(kind):
    assert health(kind, resource(kind)) == {
        "status": "Progressing", "message": "Waiting for the bedrock-gateway operator to report a Ready condition"}


@pytest.mark.parametrize("kind", KINDS)
def test_ready_true_is_healthy(kind):
    result = health(kind, resource(kind, status=ready("True", "Rendered", "served as prod/claude-sonnet")))
    assert result == {"status": "Healthy", "message": "Rendered: served as prod/claude-sonnet"}


@pytest.mark.parametrize("kind", KINDS)
def test_ready_false_is_degraded_with_the_operators_reason(kind):
    status = ready("False", "SecretNotFound", "Secret ai-gateway/aws-keys not found: create it")
    assert health(kind, resource(kind, status=status)) == {
        "status": "Degraded", "message": "SecretNotFound: Secret ai-gateway/aws-keys not found: create it"}


@pytest.mark.parametrize("kind", KINDS)
def test_ready_unknown_is_progressing(kind):
    result = health(kind, resource(kind, status=ready("Unknown", "Pending", "discovering models")))
    assert result == {"status": "Progressing", "message": "Pending: discovering models"}


@pytest.mark.parametrize("kind", KINDS)
def test_a_status_for_an_older_generation_is_progressing(kind):
    # A Ready=True from before the last edit says nothing about the new spec.
    stale = health(kind, resource(kind, generation=3, status=ready("True", "Rendered", "ok", observed=2)))
    assert stale == {"status": "Progressing", "message": "Waiting for the operator to process generation 3"}
    stale_condition = ready("False", "Bad", "old", observed=3, condition_generation=2)
    assert health(kind, resource(kind, generation=3, status=stale_condition))["status"] == "Progressing"


@pytest.mark.parametrize("kind", KINDS)
def test_other_conditions_alone_are_progressing(kind):
    status = {"observedGeneration": 2, "conditions": [{"type": "Discovered", "status": "True", "reason": "x",
                                                       "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    assert health(kind, resource(kind, status=status))["status"] == "Progressing"


def test_a_message_without_reason_is_kept_as_is():
    result = health("BedrockModel", resource("BedrockModel", status=ready("False", "", "no such model")))
    assert result == {"status": "Degraded", "message": "no such model"}
