"""The Dockerfile builds one image per binary, runs them as non-root on distroless, and the
chart's default images are those binaries (no Docker engine here: the file itself is checked)."""

from __future__ import annotations

import re
import tomllib

import yaml

from chartlib import CHART, ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            current = match.group(2) or match.group(1)
            out[current] = [line]
        elif current:
            out[current].append(line)
    return out


def binaries() -> set[str]:
    names = set()
    for crate in ("proxy", "operator", "sim"):
        manifest = tomllib.loads((ROOT / crate / "Cargo.toml").read_text())
        names |= {b["name"] for b in manifest.get("bin", [])}
    return names


def test_one_target_per_binary_on_the_nonroot_runtime():
    all_stages = stages()
    runtime = all_stages["runtime"]
    assert runtime[0].startswith("FROM gcr.io/distroless/") and ":nonroot AS runtime" in runtime[0]
    assert "USER 65532:65532" in runtime
    targets = {"proxy": "bedrock-gateway-proxy", "operator": "bedrock-gateway-operator", "sim": "bedrock-sim"}
    assert set(targets.values()) == binaries()
    for target, binary in targets.items():
        lines = all_stages[target]
        assert lines[0] == f"FROM runtime AS {target}"
        assert f"COPY --from=build /out/{binary} /usr/local/bin/{binary}" in lines
        assert f'ENTRYPOINT ["/usr/local/bin/{binary}"]' in lines
        assert not any(line.startswith("USER") for line in lines), "the runtime's non-root user must stay"
    build = " ".join(all_stages["build"])
    assert "cargo build --release --locked" in build
    for binary in targets.values():
        assert f"--bin {binary}" in build


def test_chart_images_are_the_dockerfile_targets_and_run_as_its_user():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["proxy"]["image"]["repository"] == "bedrock-gateway-proxy"
    assert values["operator"]["image"]["repository"] == "bedrock-gateway-operator"
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "runAsUser: 65532" in helpers and "runAsGroup: 65532" in helpers


def test_build_context_excludes_local_state():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"target/", ".tools/", ".git/"} <= ignored
    assert "Cargo.lock" not in ignored
