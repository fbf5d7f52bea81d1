"""`helm lint` and `helm template` over every value set: valid objects, the binaries' contract,
restricted pod security, and what each value set switches on."""

from __future__ import annotations

import tarfile

import pytest
import yaml

from chartlib import (
    CHART,
    CONFIG_MAP,
    CREDENTIALS,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    find,
    helm_args,
    one,
    render,
    run,
    tool,
    validate_builtin,
)

OPERATOR = f"{RELEASE}-operator"
PROXY = f"{RELEASE}-proxy"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_is_clean(value_set):
    proc = run([tool("helm"), "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *helm_args(value_set)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_builtin_object_is_valid(value_set):
    docs = render(value_set)
    assert docs, "nothing rendered"
    for doc in docs:
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # not built in; checked by test_service_monitor_scrapes_both_metrics_services
        validate_builtin(doc)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pods_meet_the_restricted_pod_security_standard(value_set):
    for deploy in find(render(value_set), "Deployment"):
        pod = deploy["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
            assert sc["runAsNonRoot"] is True, c["name"]
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], c["name"]
            assert c["resources"]["limits"]["memory"], c["name"]
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert c[probe]["httpGet"]["port"] == "metrics", (c["name"], probe)
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        for volume in pod.get("volumes", []):
            assert "hostPath" not in volume


def _args(deploy):
    return deploy["spec"]["template"]["spec"]["containers"][0]["args"]


def _flag(args, name):
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def test_operator_runs_with_the_contract_flags():
    docs = render("defaults")
    deploy = one(docs, "Deployment", OPERATOR)
    args = _args(deploy)
    assert args[0] == "run"
    assert _flag(args, "--release") == RELEASE
    assert _flag(args, "--namespace") == NAMESPACE
    assert _flag(args, "--watch-namespaces") == NAMESPACE
    assert "--all-namespaces" not in args
    assert _flag(args, "--metrics-listen") == "0.0.0.0:9090"
    assert "--leader-election" in args and "--no-leader-election" not in args
    assert deploy["spec"]["replicas"] == 2
    env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_operator_watches_what_the_values_name():
    args = _args(one(render("hpa-servicemonitor"), "Deployment", OPERATOR))
    assert _flag(args, "--watch-namespaces") == "ai-gateway,team-ml,team-search"
    args = _args(one(render("all-namespaces"), "Deployment", OPERATOR))
    assert "--all-namespaces" in args and "--watch-namespaces" not in args


def test_one_operator_without_leader_election_is_allowed_two_are_not():
    minimal = one(render("minimal"), "Deployment", OPERATOR)
    assert minimal["spec"]["replicas"] == 1
    assert "--no-leader-election" in _args(minimal) and "--leader-election" not in _args(minimal)
    proc = run([tool("helm"), "template", RELEASE, str(CHART), "--set", "operator.leaderElection=false"])
    assert proc.returncode != 0
    assert "operator.replicas > 1 needs operator.leaderElection" in proc.stderr


def test_proxy_follows_the_operators_config_map_and_secret():
    deploy = one(render("defaults"), "Deployment", PROXY)
    args = _args(deploy)
    assert _flag(args, "--listen") == "0.0.0.0:8080"
    assert _flag(args, "--metrics-listen") == "0.0.0.0:9090"
    assert _flag(args, "--kube-namespace") == NAMESPACE
    assert _flag(args, "--kube-configmap") == CONFIG_MAP
    assert _flag(args, "--kube-secret") == CREDENTIALS
    assert _flag(args, "--config-dir") == "/etc/bedrock-gateway"
    grace = int(_flag(args, "--shutdown-grace-seconds"))
    pod = deploy["spec"]["template"]["spec"]
    # SIGTERM comes after preStop; the pod must outlive preStop plus the drain.
    prestop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > grace + prestop
    # The fallback files are the same two objects, optional because the operator creates them.
    mount = one_mount(pod, "/etc/bedrock-gateway")
    assert mount["readOnly"] is True
    sources = next(v for v in pod["volumes"] if v["name"] == mount["name"])["projected"]["sources"]
    assert {"configMap": {"name": CONFIG_MAP, "optional": True}} in sources
    assert {"secret": {"name": CREDENTIALS, "optional": True}} in sources
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_serving_limits_reach_the_proxy():
    args = _args(one(render("defaults"), "Deployment", PROXY))
    assert _flag(args, "--max-concurrent-requests") == "1000"
    assert _flag(args, "--header-read-timeout-ms") == "30000"
    # 20 images of 3.75 MB and 5 documents of 4.5 MB, base64-encoded, plus text.
    assert int(_flag(args, "--max-body-bytes")) == 136 * 1024 * 1024
    assert "--tls-cert" not in args
    docs = render(
        "defaults",
        "--set", "proxy.maxConcurrentRequests=0",
        "--set", "proxy.maxBodyBytes=1048576",
        "--set", "proxy.headerReadTimeoutMs=5000",
    )  # fmt: skip
    args = _args(one(docs, "Deployment", PROXY))
    assert (_flag(args, "--max-concurrent-requests"), _flag(args, "--max-body-bytes")) == ("0", "1048576")
    assert _flag(args, "--header-read-timeout-ms") == "5000"


def test_tls_mounts_the_secret_as_a_volume_the_proxy_reloads():
    deploy = one(render("tls"), "Deployment", PROXY)
    args = _args(deploy)
    assert _flag(args, "--tls-cert") == "/etc/bedrock-gateway-tls/tls.crt"
    assert _flag(args, "--tls-key") == "/etc/bedrock-gateway-tls/tls.key"
    pod = deploy["spec"]["template"]["spec"]
    mount = one_mount(pod, "/etc/bedrock-gateway-tls")
    # subPath mounts never see a renewed Secret.
    assert mount["readOnly"] is True and "subPath" not in mount
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "gateway-tls"
    # Probes stay plain HTTP on the metrics port.
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["port"] == "metrics"
    proc = run([tool("helm"), "template", RELEASE, str(CHART), "--set", "proxy.tls.enabled=true"])
    assert proc.returncode != 0
    assert "proxy.tls.enabled needs proxy.tls.secretName" in proc.stderr


def test_playground_is_on_by_default_and_can_be_switched_off():
    assert _flag(_args(one(render("defaults"), "Deployment", PROXY)), "--playground") == "true"
    docs = render("defaults", "--set", "proxy.playground.enabled=false")
    assert _flag(_args(one(docs, "Deployment", PROXY)), "--playground") == "false"


def _env(deploy):
    return {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_traces_are_off_by_default_and_set_the_standard_otel_variables():
    env = _env(one(render("defaults"), "Deployment", PROXY))
    assert not [name for name in env if name.startswith("OTEL_") or name == "BGW_OTEL_TRACES"]
    docs = render(
        "hpa-servicemonitor",
        "--set", "proxy.traces.enabled=true",
        "--set", "proxy.traces.endpoint=http://collector.observability:4318",
        "--set-json", "proxy.traces.sampleRatio=0.25",
        "--set", "proxy.traces.resourceAttributes=deployment.environment.name=prod",
    )
    env = _env(one(docs, "Deployment", PROXY))
    assert env["BGW_OTEL_TRACES"] == "true"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.observability:4318"
    assert env["OTEL_SERVICE_NAME"] == "bedrock-gateway-proxy"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment.name=prod"
    # The network policy opens the collector's port for the proxy only.
    policies = {p["metadata"]["name"]: p["spec"]["egress"] for p in find(docs, "NetworkPolicy")}
    ports = {name: {p["port"] for rule in egress for p in rule["ports"]} for name, egress in policies.items()}
    assert 4318 in ports[PROXY] and 4318 not in ports[OPERATOR]
    bad = run([tool("helm"), "template", RELEASE, str(CHART), "--set", "proxy.traces.sampleRatio=2"])
    assert bad.returncode != 0 and "sampleRatio" in bad.stderr


def one_mount(pod, path):
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == path]
    assert len(mounts) == 1, pod["containers"][0]["volumeMounts"]
    return mounts[0]


def test_services_expose_the_api_and_keep_metrics_internal():
    docs = render("hpa-servicemonitor")
    api = one(docs, "Service", PROXY)
    assert api["spec"]["type"] == "LoadBalancer"
    assert [p["name"] for p in api["spec"]["ports"]] == ["http"]
    assert api["spec"]["ports"][0]["targetPort"] == "http"
    for name in (f"{PROXY}-metrics", f"{OPERATOR}-metrics"):
        svc = one(docs, "Service", name)
        assert svc["spec"]["type"] == "ClusterIP"
        assert [p["name"] for p in svc["spec"]["ports"]] == ["metrics"]


def test_irsa_role_annotates_the_service_accounts_that_call_aws():
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/bedrock-gateway"}
    docs = render("irsa")
    for name in (PROXY, OPERATOR):
        assert one(docs, "ServiceAccount", name)["metadata"]["annotations"] == role
        env = one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "AWS_REGION", "value": "us-east-1"} in env
    defaults = render("defaults")
    for name in (PROXY, OPERATOR):
        assert "annotations" not in one(defaults, "ServiceAccount", name)["metadata"]
    # Each component's role is its own value: a proxy-only role leaves the operator alone.
    proc = run([tool("helm"), "template", RELEASE, str(CHART), "--set", "proxy.aws.irsaRoleArn=" + role[
        "eks.amazonaws.com/role-arn"], "--show-only", "templates/operator-serviceaccount.yaml"])
    assert proc.returncode == 0, proc.stderr
    assert "annotations" not in yaml.safe_load(proc.stdout)["metadata"]


def test_hpa_replaces_the_replica_count():
    docs = render("hpa-servicemonitor")
    hpa = one(docs, "HorizontalPodAutoscaler", PROXY)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": PROXY}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 30)
    assert "replicas" not in one(docs, "Deployment", PROXY)["spec"]
    assert not find(render("defaults"), "HorizontalPodAutoscaler")


def test_service_monitor_scrapes_both_metrics_services():
    docs = render("hpa-servicemonitor")
    monitors = find(docs, "ServiceMonitor")
    assert sorted(m["metadata"]["name"] for m in monitors) == [OPERATOR, PROXY]
    services = find(docs, "Service")
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selector = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert [s["metadata"]["name"] for s in selected] == [f"{monitor['metadata']['name']}-metrics"]
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert not find(render("defaults"), "ServiceMonitor")


def test_pdbs_only_where_more_than_one_replica_runs():
    defaults = render("defaults")
    assert sorted(p["metadata"]["name"] for p in find(defaults, "PodDisruptionBudget")) == [OPERATOR, PROXY]
    assert not find(render("minimal"), "PodDisruptionBudget")
    for pdb in find(defaults, "PodDisruptionBudget"):
        deploy = one(defaults, "Deployment", pdb["metadata"]["name"])
        assert pdb["spec"]["selector"] == deploy["spec"]["selector"]


def test_topology_spread_selects_its_own_pods():
    for deploy in find(render("defaults"), "Deployment"):
        pod = deploy["spec"]["template"]
        constraints = pod["spec"]["topologySpreadConstraints"]
        assert constraints
        for c in constraints:
            assert c["labelSelector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]
            assert c["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    for deploy in find(render("minimal"), "Deployment"):
        assert "topologySpreadConstraints" not in deploy["spec"]["template"]["spec"]


def test_network_policies_open_only_the_named_ports():
    docs = render("hpa-servicemonitor")
    policies = {p["metadata"]["name"]: p for p in find(docs, "NetworkPolicy")}
    assert sorted(policies) == [OPERATOR, PROXY]
    proxy = policies[PROXY]["spec"]
    assert [r["ports"][0]["port"] for r in proxy["ingress"]] == ["http", "metrics"]
    assert proxy["ingress"][0]["from"][1] == {"ipBlock": {"cidr": "10.0.0.0/8"}}
    assert [r["ports"][0]["port"] for r in policies[OPERATOR]["spec"]["ingress"]] == ["metrics"]
    for policy in policies.values():
        egress = policy["spec"]["egress"]
        anywhere = {(p["port"], p["protocol"]) for rule in egress if "to" not in rule for p in rule["ports"]}
        assert anywhere == {(53, "UDP"), (53, "TCP"), (443, "TCP")}
        agent = [rule for rule in egress if "to" in rule]
        assert agent == [{"to": [{"ipBlock": {"cidr": "169.254.170.23/32"}}, {"ipBlock": {"cidr": "fd00:ec2::23/128"}}],
                          "ports": [{"port": 80, "protocol": "TCP"}]}]
    assert not find(render("defaults"), "NetworkPolicy")


def test_operator_only_install_has_no_proxy_objects():
    docs = render("operator-only")
    assert not [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "proxy"]
    assert one(docs, "Deployment", OPERATOR)


def test_grafana_dashboard_config_map_embeds_the_dashboard_file():
    cm = one(render("hpa-servicemonitor"), "ConfigMap", f"{RELEASE}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert yaml.safe_load(cm["data"]["bedrock-gateway.json"]) == yaml.safe_load(
        (CHART / "dashboards" / "bedrock-gateway.json").read_text()
    )


def test_images_default_to_the_app_version_and_accept_a_digest():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    docs = render("defaults")
    assert _image(one(docs, "Deployment", PROXY)) == f"bedrock-gateway-proxy:{chart['appVersion']}"
    assert _image(one(docs, "Deployment", OPERATOR)) == f"bedrock-gateway-operator:{chart['appVersion']}"
    digest = "sha256:" + "a" * 64
    proc = run([tool("helm"), "template", RELEASE, str(CHART), "--set", f"proxy.image.digest={digest}",
                "--show-only", "templates/proxy-deployment.yaml"])
    assert proc.returncode == 0, proc.stderr
    assert _image(yaml.safe_load(proc.stdout)) == f"bedrock-gateway-proxy@{digest}"


def _image(deploy):
    return deploy["spec"]["template"]["spec"]["containers"][0]["image"]


def test_notes_tell_how_to_call_the_gateway():
    proc = run([tool("helm"), "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                *helm_args("irsa")])
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert f"http://{PROXY}.{NAMESPACE}.svc.cluster.local/v1" in notes
    assert f"kubectl -n {NAMESPACE} port-forward svc/{PROXY} 8080:80" in notes
    assert "/v1/chat/completions" in notes
    assert "arn:aws:iam::123456789012:role/bedrock-gateway" in notes


def test_kubernetes_older_than_1_30_is_refused():
    # preStop sleep and native sidecars need 1.30; Chart.yaml says so and helm enforces it.
    ok = run([tool("helm"), "template", RELEASE, str(CHART), "--kube-version", "1.30.0"])
    assert ok.returncode == 0, ok.stderr
    old = run([tool("helm"), "template", RELEASE, str(CHART), "--kube-version", "1.29.9"])
    assert old.returncode != 0
    assert "chart requires kubeVersion: >=1.30.0-0" in old.stderr


def test_every_name_the_binaries_share_follows_the_release_name():
    proc = run([tool("helm"), "template", "team-a", str(CHART), "--namespace", "gw"])
    assert proc.returncode == 0, proc.stderr
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    prefix = "team-a-bedrock-gateway"
    operator_args = _args(one(docs, "Deployment", f"{prefix}-operator"))
    assert _flag(operator_args, "--release") == prefix
    proxy_args = _args(one(docs, "Deployment", f"{prefix}-proxy"))
    assert (_flag(proxy_args, "--kube-configmap"), _flag(proxy_args, "--kube-secret")) == (
        f"{prefix}-config", f"{prefix}-credentials")
    names = {n for d in find(docs, "Role") + find(docs, "ClusterRole") for r in d["rules"]
             for n in r.get("resourceNames", [])}
    assert names == {f"{prefix}-config", f"{prefix}-credentials", f"{prefix}-operator"}
    assert one(docs, "ClusterRole", f"{prefix}-model-manager")


def test_an_existing_service_account_must_be_named_and_is_bound():
    proc = run([tool("helm"), "template", RELEASE, str(CHART), "--set", "operator.serviceAccount.create=false"])
    assert proc.returncode != 0
    assert "operator.serviceAccount.name is required when operator.serviceAccount.create is false" in proc.stderr
    proc = run([tool("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                "--set", "proxy.serviceAccount.create=false", "--set", "proxy.serviceAccount.name=platform-proxy"])
    assert proc.returncode == 0, proc.stderr
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    assert not find(docs, "ServiceAccount", PROXY)
    assert one(docs, "Deployment", PROXY)["spec"]["template"]["spec"]["serviceAccountName"] == "platform-proxy"
    bound = [b for b in find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding")
             if b["metadata"]["labels"]["app.kubernetes.io/component"] == "proxy"]
    assert len(bound) == 2
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": "platform-proxy", "namespace": NAMESPACE}]
               for b in bound)


def test_the_packaged_chart_carries_crds_schema_and_dashboard(tmp_path):
    proc = run([tool("helm"), "package", str(CHART), "--destination", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    with tarfile.open(tmp_path / f"bedrock-gateway-{chart['version']}.tgz") as archive:
        names = set(archive.getnames())
    for name in ("crds/bedrockaccounts.yaml", "crds/bedrockmodels.yaml", "crds/accesspolicies.yaml",
                 "values.schema.json", "dashboards/bedrock-gateway.json", "templates/NOTES.txt"):
        assert f"bedrock-gateway/{name}" in names, name
