"""Small helpers shared by the e2e tests."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import unquote

from contracts import recorded_body, sigv4_region

# Served name -> (Bedrock modelId, signing region, percent-encoded label on the wire)
MODELS = {
    "demo/claude-sonnet": (
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "us-west-2",
        "us.anthropic.claude-3-7-sonnet-20250219-v1%3A0",
    ),
    "demo/nova-lite": ("amazon.nova-lite-v1:0", "us-east-1", "amazon.nova-lite-v1%3A0"),
    "demo/team-profile": (
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
        "us-east-1",
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123def456",
    ),
}
# InvokeModel models of the quick start: served name -> percent-encoded label on the wire.
INVOKE_MODELS = {
    "demo/titan-embed-v2": "amazon.titan-embed-text-v2%3A0",
    "demo/cohere-embed": "cohere.embed-english-v3",
    "demo/nova-canvas": "amazon.nova-canvas-v1%3A0",
    "demo/sd35": "stability.sd3-5-large-v1%3A0",
}
DEMO_MODELS = sorted([*MODELS, *INVOKE_MODELS])


def converse_calls(sim, suffix: str | None = None) -> list[dict[str, Any]]:
    """Recorded Converse/ConverseStream requests (without clearing them)."""
    out = []
    for rec in sim.requests():
        m = re.fullmatch(r"/model/([^/?]+)/(converse|converse-stream)", rec["path"])
        if m and (suffix is None or m.group(2) == suffix):
            out.append(rec)
    return out


def only_call(sim, suffix: str | None = None) -> dict[str, Any]:
    calls = converse_calls(sim, suffix)
    assert len(calls) == 1, f"expected exactly one {suffix or 'converse'} call to Bedrock, got {[c['path'] for c in calls]}"
    return calls[0]


def body_of(rec: dict[str, Any]) -> dict[str, Any]:
    return json.loads(recorded_body(rec))


def label_of(rec: dict[str, Any]) -> tuple[str, str]:
    raw = rec["path"].split("/")[2]
    return raw, unquote(raw)


def region_of(rec: dict[str, Any]) -> str | None:
    return sigv4_region(rec)


def assembled(chunks) -> str:
    return "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)


def finish_reasons(chunks) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason is not None]


def error_body(exc) -> dict[str, Any]:
    """The `error` object of an openai.APIStatusError (from the raw response)."""
    doc = exc.response.json()
    assert set(doc) == {"error"}, doc
    return doc["error"]


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?", line.strip())
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def fresh_minute() -> None:
    """Minute windows must not roll over in the middle of a test."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
