"""The playground page in a real browser: headless Chromium driven by Playwright.

Chromium comes from Debian (/usr/bin/chromium, installed by scripts/test); the
page runs against the proxy on the simulator. Each step leaves a screenshot in
test-artifacts/playground/ (BGW_E2E_ARTIFACTS overrides the folder).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from e2e_helpers import DEMO_MODELS
from conftest import NOVA_ONLY_KEY, QUICKSTART_KEY, REPO, start_gateway_proc

CHROMIUM = os.environ.get("BGW_CHROMIUM", "/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the rest keep it off this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("BGW_E2E_ARTIFACTS") or REPO / "test-artifacts") / "playground"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: scripts/test installs Debian's chromium package", pytrace=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, gateway, request):
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    # Anything the page tries to reach outside the gateway is a failure of the CSP promise.
    foreign: list[str] = []
    pg.on("request", lambda r: foreign.append(r.url) if not r.url.startswith((gateway.url, "data:")) else None)
    console_errors: list[str] = []
    pg.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: console_errors.append(str(e)))
    pg.goto(f"{gateway.url}/playground")
    yield pg
    context.close()
    assert not foreign, f"the page requested other origins: {foreign}"
    # The gateway's own 4xx answers show as console errors for the failed fetch; nothing else may.
    unexpected = [e for e in console_errors if "status of 4" not in e]
    assert not unexpected, f"browser console errors: {unexpected}"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def use_key(page: Page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#key-save")


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


def test_page_is_served_with_a_strict_csp(gateway):
    r = httpx.get(f"{gateway.url}/playground")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    # No inline script or style anywhere in the page: the CSP would block it.
    assert "<script>" not in r.text and "<style" not in r.text and not re.search(r"\son[a-z]+=", r.text)
    for asset, ctype in [("app.js", "text/javascript"), ("app.css", "text/css")]:
        a = httpx.get(f"{gateway.url}/playground/{asset}")
        assert a.status_code == 200 and a.headers["content-type"].startswith(ctype)
        assert a.headers["content-security-policy"] == csp
    missing = httpx.get(f"{gateway.url}/playground/nope.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Unknown request URL: GET /playground/nope.js."


def test_models_are_grouped_by_account_and_limited_to_the_key(page: Page):
    shot(page, "01-empty")
    use_key(page, QUICKSTART_KEY)
    expect(page.locator("#model")).to_be_enabled()
    groups = page.locator("#model optgroup")
    expect(groups).to_have_count(1)
    assert groups.first.get_attribute("label") == "demo"
    values = page.locator("#model option").evaluate_all("os => os.map(o => o.value)")
    assert values == DEMO_MODELS
    labels = page.locator("#model option").evaluate_all("os => os.map(o => o.textContent)")
    assert "demo/titan-embed-v2 (embedding)" in labels and "demo/nova-canvas (image)" in labels
    shot(page, "02-models")
    # Another key sees only what its policy grants.
    use_key(page, NOVA_ONLY_KEY)
    expect(page.locator("#model option")).to_have_count(1)
    assert page.locator("#model").input_value() == "demo/nova-lite"
    # The key lives in this tab's session storage only.
    assert page.evaluate("sessionStorage.getItem('bedrock-gateway.apiKey')") == NOVA_ONLY_KEY
    assert page.evaluate("localStorage.length") == 0


def test_chat_streams_an_answer_with_usage_line(page: Page):
    use_key(page, QUICKSTART_KEY)
    page.select_option("#model", "demo/nova-lite")
    expect(page.locator("#chat-panel")).to_be_visible()
    page.fill("#system", "Answer briefly.")
    send(page, "Hello playground")
    answer = page.locator("#transcript li.assistant .content").last
    expect(answer).to_have_text("Simulated reply to: Hello playground")
    stats = page.locator("#stats")
    expect(stats).to_contain_text("tokens ")
    text = stats.inner_text()
    assert " in / " in text and " out" in text and "first token" in text and "total" in text and "cost" in text
    # A browser cannot read the stream's cost trailer: the page prices the usage chunk with the
    # prices /v1/models gives (Nova Lite: $0.06/M input, $0.24/M output).
    assert "cost n/a" not in text
    tokens_in, tokens_out = map(int, re.search(r"tokens (\d+) in / (\d+) out", text).groups())
    shown = float(re.search(r"cost \$([0-9.]+)", text).group(1))
    assert shown == pytest.approx(tokens_in * 0.06e-6 + tokens_out * 0.24e-6, rel=1e-9)
    shot(page, "03-chat-answer")
    # A second turn carries the history.
    send(page, "And again")
    expect(page.locator("#transcript li.assistant .content").last).to_have_text("Simulated reply to: And again")
    expect(page.locator("#transcript li")).to_have_count(4)


def test_gateway_errors_are_shown_as_sent(page: Page):
    use_key(page, "sk-bgw-not-a-key")
    error = page.locator("#error")
    expect(error).to_be_visible()
    assert "Incorrect API key" in error.inner_text()
    shot(page, "04-bad-key")
    # A model the key may not use: the list came from a broader key, then the key changed.
    use_key(page, QUICKSTART_KEY)
    page.select_option("#model", "demo/claude-sonnet")
    page.evaluate(f"sessionStorage.setItem('bedrock-gateway.apiKey', '{NOVA_ONLY_KEY}')")
    send(page, "Am I allowed?")
    expect(error).to_have_text("You do not have access to the model `demo/claude-sonnet`.")
    # The failed turn's placeholder answer is gone; the question stays visible.
    expect(page.locator("#transcript li.assistant")).to_have_count(0)
    shot(page, "05-forbidden")


def test_show_code_runs_as_shown(page: Page, gateway, tmp_path: Path):
    use_key(page, QUICKSTART_KEY)
    page.select_option("#model", "demo/nova-lite")
    page.fill("#prompt", "from the snippet")
    page.click("#code summary")
    code = page.locator("#code-text").inner_text()
    assert f'base_url="{gateway.url}/v1"' in code
    assert 'model="demo/nova-lite"' in code
    assert QUICKSTART_KEY not in code
    shot(page, "06-code-python")
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = {**os.environ, "BEDROCK_GATEWAY_API_KEY": QUICKSTART_KEY}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Simulated reply to: from the snippet\n")
    assert "prompt_tokens=" in out.stdout
    page.click("#code-curl")
    curl = page.locator("#code-text").inner_text()
    assert curl.startswith(f"curl -N {gateway.url}/v1/chat/completions")
    assert '"model": "demo/nova-lite"' in curl
    curl_out = subprocess.run(
        ["bash", "-c", curl], env=env, capture_output=True, text=True, timeout=60
    )
    assert curl_out.returncode == 0, curl_out.stderr
    assert "data: [DONE]" in curl_out.stdout
    shot(page, "07-code-curl")


def test_playground_can_be_switched_off(gateway, logdir):
    gw = start_gateway_proc(gateway.manifests, logdir, name="proxy-no-playground", extra_args=["--playground", "false"])
    try:
        r = httpx.get(f"{gw.url}/playground")
        assert r.status_code == 404
        assert r.json()["error"]["message"] == "Unknown request URL: GET /playground."
    finally:
        gw.proc.stop()


def test_embedding_form_shows_the_vector(page: Page):
    use_key(page, QUICKSTART_KEY)
    page.select_option("#model", "demo/titan-embed-v2")
    expect(page.locator("#embedding-panel")).to_be_visible()
    expect(page.locator("#chat-panel")).to_be_hidden()
    page.fill("#embedding-input", "vectors please")
    page.click("#embed")
    expect(page.locator(".vector-size")).to_have_text("1024 dimensions")
    values = page.locator(".vector-values").inner_text()
    assert values.startswith("[") and values.endswith(", ...]") and values.count(",") == 8
    expect(page.locator("#stats")).to_contain_text("tokens 2 in")
    shot(page, "08-embedding")
    page.click("#code summary")
    assert "client.embeddings.create(" in page.locator("#code-text").inner_text()


def test_image_form_shows_the_generated_images(page: Page):
    use_key(page, QUICKSTART_KEY)
    page.select_option("#model", "demo/nova-canvas")
    expect(page.locator("#image-panel")).to_be_visible()
    page.fill("#image-prompt", "a lighthouse at dusk")
    page.select_option("#image-size", "512x512")
    page.fill("#image-n", "2")
    page.click("#generate")
    images = page.locator("#image-result img")
    expect(images).to_have_count(2)
    # The browser decoded the PNGs the simulator drew at the requested size.
    sizes = images.evaluate_all("is => is.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert sizes == [[True, 512, 512], [True, 512, 512]]
    expect(page.locator("#stats")).to_contain_text("2 images")
    shot(page, "09-images")
    # A refused prompt shows the gateway's message as it is.
    page.fill("#image-prompt", "[[sim:filter]] something blocked")
    page.click("#generate")
    expect(page.locator("#error")).to_be_visible()
    assert "content filters" in page.locator("#error").inner_text().lower()
    shot(page, "10-image-refused")


def tiny_png() -> bytes:
    """A valid 1x1 greyscale PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")


def test_controls_follow_the_models_capabilities_and_images_reach_bedrock(page: Page, sim):
    use_key(page, QUICKSTART_KEY)
    # Claude 3.7 thinks and reads images and PDFs.
    page.select_option("#model", "demo/claude-sonnet")
    expect(page.locator("#reasoning-row")).to_be_visible()
    expect(page.locator("#attachments-row")).to_be_visible()
    assert page.locator("#attachments").get_attribute("accept") == (
        "image/png,image/jpeg,image/gif,image/webp,application/pdf"
    )
    page.set_input_files("#attachments", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": tiny_png()}])
    send(page, "What is in this picture?")
    expect(page.locator("#transcript li.assistant .content").last).to_have_text(
        "Simulated reply to: What is in this picture?"
    )
    expect(page.locator("#transcript li.user .note").last).to_have_text("attached: dot.png")
    sent = [json.loads(base64.b64decode(r["body_base64"])) for r in sim.requests() if r["path"].endswith("/converse-stream")]
    content = sent[-1]["messages"][-1]["content"]
    assert content[1]["image"]["format"] == "png"
    assert base64.b64decode(content[1]["image"]["source"]["bytes"]) == tiny_png()
    shot(page, "11-image-attachment")
    # Nova Lite has no reasoning control: the page does not offer one.
    page.select_option("#model", "demo/nova-lite")
    expect(page.locator("#reasoning-row")).to_be_hidden()
