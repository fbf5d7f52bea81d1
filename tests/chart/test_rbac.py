"""The chart's RBAC is least privilege: each ServiceAccount gets exactly the permissions the
binaries' contract names, nothing cluster-wide that could be namespaced, no wildcards."""

from __future__ import annotations

import itertools

import pytest

from chartlib import (
    CONFIG_MAP,
    CREDENTIALS,
    LEASE,
    MODEL_MANAGER,
    NAMESPACE,
    OPERATOR_SA,
    PROXY_SA,
    VALUE_SETS,
    find,
    render,
)

CLUSTER = "*"  # scope of a ClusterRoleBinding
ANY = "*"  # no resourceNames
READ = ("get", "list", "watch")
BGW = "bedrockgateway.io"
KINDS = ("bedrockaccounts", "bedrockmodels", "accesspolicies")


def grants(scope, group, resources, verbs, names=(ANY,)):
    """Permission tuples (scope, apiGroup, resource, verb, resourceName)."""
    return set(itertools.product([scope], [group], resources, verbs, names))


def operator_in_watched_namespace(ns):
    return (
        grants(ns, BGW, KINDS, READ)
        # held only to grant them on in the collaborator manager Roles (no "escalate")
        | grants(ns, BGW, ["bedrockmodels"], ("create", "update", "patch", "delete"))
        | grants(ns, BGW, [f"{k}/status" for k in KINDS], ("get", "patch"))
        | grants(ns, "", ["secrets"], READ)
        | grants(ns, "events.k8s.io", ["events"], ("create", "patch"))
        | grants(ns, "", ["events"], ("create", "patch"))
        | grants(ns, "rbac.authorization.k8s.io", ["roles", "rolebindings"],
                 ("get", "list", "watch", "create", "update", "patch", "delete"))
    )


OPERATOR_OWN_OBJECTS = (
    grants(NAMESPACE, "", ["configmaps"], ("get", "patch"), [CONFIG_MAP])
    | grants(NAMESPACE, "", ["secrets"], ("get", "patch"), [CREDENTIALS])
    | grants(NAMESPACE, "", ["configmaps", "secrets"], ["create"])
    | grants(NAMESPACE, "coordination.k8s.io", ["leases"], ("get", "update"), [LEASE])
    | grants(NAMESPACE, "coordination.k8s.io", ["leases"], ["create"])
)

PROXY = (
    grants(NAMESPACE, "", ["configmaps"], READ, [CONFIG_MAP])
    | grants(NAMESPACE, "", ["secrets"], READ, [CREDENTIALS])
    | grants(CLUSTER, "authentication.k8s.io", ["tokenreviews"], ["create"])
)


def effective(docs, service_account):
    """Every permission the chart's bindings give a ServiceAccount of the release namespace."""
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out = set()
    for binding in find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding"):
        if {"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE} not in binding["subjects"]:
            continue
        scope = binding["metadata"].get("namespace", CLUSTER) if binding["kind"] == "RoleBinding" else CLUSTER
        ref = binding["roleRef"]
        role_ns = binding["metadata"]["namespace"] if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_ns, ref["name"])]
        for rule in role["rules"]:
            for group, resource, verb, name in itertools.product(
                rule["apiGroups"], rule["resources"], rule["verbs"], rule.get("resourceNames") or [ANY]
            ):
                out.add((scope, group, resource, verb, name))
    return out


def test_operator_gets_exactly_the_contract_in_the_release_namespace():
    assert effective(render("defaults"), OPERATOR_SA) == operator_in_watched_namespace(NAMESPACE) | OPERATOR_OWN_OBJECTS


def test_operator_gets_each_watched_namespace_and_nothing_else():
    docs = render("hpa-servicemonitor")
    watched = set().union(*(operator_in_watched_namespace(ns) for ns in ("ai-gateway", "team-ml", "team-search")))
    assert effective(docs, OPERATOR_SA) == watched | OPERATOR_OWN_OBJECTS


def test_operator_is_cluster_wide_only_with_all_namespaces():
    docs = render("all-namespaces")
    assert effective(docs, OPERATOR_SA) == operator_in_watched_namespace(CLUSTER) | OPERATOR_OWN_OBJECTS
    for value_set in set(VALUE_SETS) - {"all-namespaces"}:
        bindings = find(render(value_set), "ClusterRoleBinding")
        assert all(b["subjects"][0]["name"] != OPERATOR_SA for b in bindings), value_set


def test_proxy_reads_only_its_two_objects_and_reviews_tokens():
    assert effective(render("defaults"), PROXY_SA) == PROXY
    no_tokens = effective(render("minimal"), PROXY_SA)
    assert no_tokens == {g for g in PROXY if g[1] != "authentication.k8s.io"}
    assert effective(render("operator-only"), PROXY_SA) == set()


def test_model_manager_edits_models_and_reads_the_rest():
    role = next(r for r in find(render("defaults"), "ClusterRole") if r["metadata"]["name"] == MODEL_MANAGER)
    perms = {(g, r, v) for rule in role["rules"] for g, r, v in
             itertools.product(rule["apiGroups"], rule["resources"], rule["verbs"])}
    assert perms == {(BGW, "bedrockmodels", v) for v in ("get", "list", "watch", "create", "update", "patch", "delete")} \
        | {(BGW, r, v) for r in ("bedrockaccounts", "accesspolicies") for v in READ}


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_no_wildcards_no_escalation_and_bind_only_by_name(value_set):
    for role in find(render(value_set), "Role") + find(render(value_set), "ClusterRole"):
        name = role["metadata"]["name"]
        assert "aggregationRule" not in role, name
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (name, field)
            assert not {"escalate", "impersonate", "deletecollection"} & set(rule["verbs"]), (name, rule)
            assert "nonResourceURLs" not in rule, name
            if "bind" in rule["verbs"]:
                assert rule == {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                                "verbs": ["bind"], "resourceNames": [MODEL_MANAGER]}, (name, rule)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_secrets_are_written_only_by_name(value_set):
    docs = render(value_set)
    for sa in (OPERATOR_SA, PROXY_SA):
        for scope, group, resource, verb, name in effective(docs, sa):
            if group == "" and resource == "secrets" and verb not in READ and verb != "create":
                assert (scope, name) == (NAMESPACE, CREDENTIALS), (sa, verb, scope, name)
