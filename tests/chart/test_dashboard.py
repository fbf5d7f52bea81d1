"""The Grafana dashboard queries only metrics and labels the proxy exports (proxy/src/metrics.rs)."""

from __future__ import annotations

import json
import re

from chartlib import CHART, ROOT

DASHBOARD = json.loads((CHART / "dashboards" / "bedrock-gateway.json").read_text())
# Labels Prometheus adds when it scrapes through the chart's ServiceMonitor, plus the histogram's.
SCRAPE_LABELS = {"namespace", "pod", "job", "instance", "service", "container", "endpoint"}


def exported_metrics() -> dict[str, set[str]]:
    """Metric family -> labels, read from the proxy's source."""
    source = (ROOT / "proxy/src/metrics.rs").read_text()
    out: dict[str, set[str]] = {}
    for match in re.finditer(r'"(bedrock_gateway_[a-z_]+)"(.*?)\.expect\("valid metric"\)', source, re.S):
        name, rest = match.groups()
        labels = re.search(r"&\[([^\]]*)\]", rest)
        out[name] = set(re.findall(r'"([a-z_]+)"', labels.group(1))) if labels else set()
    return out


def panel_exprs() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]


def test_the_metrics_source_is_understood():
    metrics = exported_metrics()
    assert metrics["bedrock_gateway_requests_total"] == {"endpoint", "model", "status"}
    assert metrics["bedrock_gateway_request_duration_seconds"] == {"endpoint", "model"}
    assert metrics["bedrock_gateway_upstream_errors_total"] == {"model", "error_type"}
    assert metrics["bedrock_gateway_config_generation"] == set()


def test_every_exported_family_has_a_panel():
    used = {m for e in panel_exprs() for m in re.findall(r"bedrock_gateway_[a-z_]+", e)}
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    assert used == set(exported_metrics())


def test_queries_use_only_exported_labels():
    metrics = exported_metrics()
    for expr in panel_exprs() + [v["definition"] for v in DASHBOARD["templating"]["list"] if "definition" in v]:
        for name, selector in re.findall(r"(bedrock_gateway_[a-z_]+)\{([^}]*)\}", expr):
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            allowed = metrics[family] | SCRAPE_LABELS | ({"le"} if name.endswith("_bucket") else set())
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", selector):
                assert label in allowed, f"{label} is not a label of {family}: {expr}"
        for group in re.findall(r"by \(([^)]*)\)", expr):
            names = re.findall(r"bedrock_gateway_[a-z_]+", expr)
            family = re.sub(r"_(bucket|sum|count)$", "", names[0])
            allowed = metrics[family] | SCRAPE_LABELS | {"le"}
            for label in (g.strip() for g in group.split(",")):
                assert label in allowed, f"{label} is not a label of {family}: {expr}"


def test_panels_are_laid_out_without_overlap():
    cells = set()
    for panel in DASHBOARD["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
    assert len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in DASHBOARD["panels"])
