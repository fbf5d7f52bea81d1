"""Fixtures for the end-to-end suite: real binaries, real OpenAI SDK.

* ``sim``: ``bedrock-sim`` on a free loopback port (one per session).
* ``gateway``: ``bedrock-gateway-proxy`` on the quick-start manifests (endpoints
  rewritten to the sim) plus test-only keys/accounts (one per session);
  ``start_gateway`` starts extra ones on their own manifests folder.
* ``client`` / ``client_for`` / ``async_client_for`` / ``http``: clients whose
  transport validates every proxy response against the OpenAI spec.

After every test (``pytest_runtest_call`` wrapper) the response violations are
collected and every request the sim recorded is fetched, cleared and checked
against the AWS model and botocore's SigV4; the logs and /metrics of every proxy
started are searched for every secret known to the suite (Secret manifests,
sim credentials, tokens registered with ``watch_secret``); any problem fails the test.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contracts import (  # noqa: E402
    SIM_SECRETS,
    AsyncValidatingTransport,
    ResponseLog,
    ValidatingTransport,
    check_sim_requests,
)

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
QUICKSTART_SIM_URL = "http://127.0.0.1:9090"

QUICKSTART_KEY = "sk-bgw-quickstart"
NOBODY_KEY = "sk-bgw-nobody"
NOVA_ONLY_KEY = "sk-bgw-nova-only"

READY_TIMEOUT = 30.0


def bin_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = REPO / target
    return target / "debug"


def binary(name: str) -> Path:
    path = bin_dir() / name
    if not path.is_file():
        pytest.fail(
            f"{path} not found: build it first (cargo build --bin {name}); scripts/test does this",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ processes
class Proc:
    """A child process whose stdout/stderr go to files (so pipes never fill)."""

    def __init__(self, name: str, argv: list[str], logdir: Path, env: dict[str, str] | None = None):
        self.name, self.argv = name, argv
        self.out_path = logdir / f"{name}.stdout"
        self.err_path = logdir / f"{name}.stderr"
        env = dict(os.environ if env is None else env)
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("RUST_LOG", "info")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def diagnostics(self, tail: int = 6000) -> str:
        code = self.p.poll()
        state = "still running" if code is None else f"exited with code {code}"
        return (
            f"--- {self.name} ({' '.join(self.argv)}) {state}\n"
            f"--- stdout (last {tail} chars):\n{self.stdout()[-tail:]}\n"
            f"--- stderr (last {tail} chars):\n{self.stderr()[-tail:]}"
        )

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)


@dataclass
class Sim:
    proc: Proc
    url: str
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def requests(self) -> list[dict[str, Any]]:
        r = self._http.get(f"{self.url}/_sim/requests")
        r.raise_for_status()
        return [x for x in r.json() if not x.get("path", "").startswith("/_sim/")]

    def clear(self) -> None:
        self._http.delete(f"{self.url}/_sim/requests").raise_for_status()

    def drain(self) -> list[dict[str, Any]]:
        recs = self.requests()
        self.clear()
        return recs


@dataclass
class Moto:
    """A moto_server: STS for the credential tests, with a recording of every request."""

    proc: Proc
    url: str
    recording: Path
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def issued_secrets(self) -> dict[str, str]:
        """Access key id -> secret of every session moto's STS issued (its /moto-api/data.json)."""
        r = self._http.get(f"{self.url}/moto-api/data.json")
        if r.status_code != 200:
            # moto cannot dump a backend holding S3 multipart-upload parts (test_files_batches,
            # which runs its own moto): no session was issued there.
            return {}
        data = r.json()
        return {r["access_key_id"]: r["secret_access_key"] for r in data.get("sts", {}).get("AssumedRole", [])}

    def sts_calls(self) -> list[dict[str, str]]:
        """Form parameters of each STS call received, oldest first, plus its Authorization header."""
        calls = []
        text = self.recording.read_text() if self.recording.exists() else ""
        for line in text.splitlines():
            entry = json.loads(line)
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode()
            params = dict(urllib.parse.parse_qsl(body))
            if "Action" in params:
                params["_authorization"] = entry.get("headers", {}).get("Authorization", "")
                calls.append(params)
        return calls


def start_moto(logdir: Path, name: str = "moto") -> Moto:
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        pytest.fail(f"{exe} not found: install tests/e2e/requirements.txt (scripts/test does)", pytrace=False)
    port = free_port()
    recording = logdir / f"{name}-recording.jsonl"
    env = {**os.environ, "MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(recording)}
    proc = Proc(name, [str(exe), "-H", "127.0.0.1", "-p", str(port)], logdir, env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline and proc.p.poll() is None:
            try:
                if http.get(f"{url}/moto-api/data.json").status_code == 200:
                    return Moto(proc, url, recording)
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    proc.stop()
    pytest.fail(f"moto_server did not answer within {READY_TIMEOUT:.0f}s\n{proc.diagnostics()}", pytrace=False)


@dataclass
class Gateway:
    proc: Proc
    url: str
    manifests: Path


def start_sim(logdir: Path, moto_url: str | None = None, extra_args: tuple[str, ...] = (), name: str = "bedrock-sim") -> Sim:
    port = free_port()
    argv = [str(binary("bedrock-sim")), "--listen", f"127.0.0.1:{port}", *extra_args]
    if moto_url:
        # Session credentials moto's STS issues are accepted (and verified) like AWS's;
        # moto is also the S3 batch inference jobs read and write.
        argv += ["--moto-url", moto_url, "--s3-url", moto_url]
    proc = Proc(name, argv, logdir)
    deadline = time.monotonic() + READY_TIMEOUT
    marker = "bedrock-sim listening on "
    while time.monotonic() < deadline:
        for line in proc.stdout().splitlines():
            if marker in line:
                url = line.split(marker, 1)[1].strip().rstrip("/")
                sim = Sim(proc, url)
                try:
                    sim._http.get(f"{url}/_sim/health").raise_for_status()
                except httpx.HTTPError as e:
                    proc.stop()
                    pytest.fail(f"bedrock-sim printed it is ready but /_sim/health failed: {e}\n{proc.diagnostics()}")
                return sim
        if proc.p.poll() is not None:
            break
        time.sleep(0.05)
    proc.stop()
    pytest.fail(
        f"bedrock-sim did not print {marker!r} within {READY_TIMEOUT:.0f}s\n{proc.diagnostics()}", pytrace=False
    )


def start_gateway_proc(
    manifests: Path,
    logdir: Path,
    name: str = "bedrock-gateway-proxy",
    extra_args: list[str] | None = None,
    source_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Gateway:
    """Start the proxy on `manifests` (or on `source_args`, e.g. ["--config-dir", DIR]) and wait for /readyz."""
    port = free_port()
    addr = f"127.0.0.1:{port}"
    source = source_args if source_args is not None else ["--manifests", str(manifests)]
    argv = [str(binary("bedrock-gateway-proxy")), *source, "--listen", addr]
    proc = Proc(name, argv + list(extra_args or []), logdir, env=env)
    url = f"http://{addr}"
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer yet"
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.p.poll() is not None:
                break
            try:
                r = http.get(f"{url}/readyz")
                if r.status_code == 200:
                    gw = Gateway(proc, url, manifests)
                    GATEWAYS_STARTED.append(gw)
                    return gw
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.1)
    why = (
        f"exited (code {proc.p.poll()}) before GET {url}/readyz answered 200"
        if proc.p.poll() is not None
        else f"GET {url}/readyz was not 200 within {READY_TIMEOUT:.0f}s (last: {last})"
    )
    proc.stop()
    pytest.fail(f"bedrock-gateway-proxy {why}\n{proc.diagnostics()}", pytrace=False)


# ------------------------------------------------------------------ manifests
def extra_manifests(sim_url: str) -> dict[str, str]:
    """Test-only manifests added beside the quick-start ones."""
    return {
        "test-keys.yaml": f"""\
# A caller no policy names: sees no model, may call none.
apiVersion: v1
kind: Secret
metadata:
  name: nobody-key
  namespace: ai-gateway
type: bedrockgateway.io/api-key
stringData:
  key: {NOBODY_KEY}
  user: nobody@example.com
---
# A caller granted exactly one model.
apiVersion: v1
kind: Secret
metadata:
  name: nova-only-key
  namespace: ai-gateway
type: bedrockgateway.io/api-key
stringData:
  key: {NOVA_ONLY_KEY}
  user: nova@example.com
  teams: nova-team
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata:
  name: nova-only
  namespace: ai-gateway
spec:
  subjects:
    - user: nova@example.com
  models: ["demo/nova-lite"]
""",
        "test-other-account.yaml": f"""\
# A second account whose only model no policy grants.
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata:
  name: other
  namespace: ai-gateway
spec:
  defaultRegion: eu-west-1
  auth:
    accessKey:
      secretRef: {{name: aws-keys}}
  endpoints:
    runtime: "{sim_url}"
    control: "{sim_url}"
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata:
  name: secret-model
  namespace: ai-gateway
spec:
  accountRef: other
  modelId: anthropic.claude-3-haiku-20240307-v1:0
""",
    }


def write_manifests(dest: Path, sim_url: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    sources = sorted(QUICKSTART.glob("*.yaml"))
    if not sources:
        pytest.fail(f"no quick-start manifests in {QUICKSTART}", pytrace=False)
    for src in sources:
        text = src.read_text()
        if QUICKSTART_SIM_URL in text:
            text = text.replace(QUICKSTART_SIM_URL, sim_url)
        (dest / src.name).write_text(text)
    joined = "".join(p.read_text() for p in dest.glob("*.yaml"))
    if QUICKSTART_SIM_URL in joined or sim_url not in joined:
        pytest.fail(f"could not point the quick-start endpoints at the sim ({sim_url})", pytrace=False)
    for name, text in extra_manifests(sim_url).items():
        (dest / name).write_text(text)
    return dest


# ------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def logdir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="bgw-e2e-"))
    yield d
    if os.environ.get("BGW_E2E_KEEP_LOGS"):
        print(f"\ne2e process logs kept in {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def moto(logdir: Path) -> Moto:
    """moto_server as STS (AssumeRole, AssumeRoleWithWebIdentity), recording what it receives."""
    m = start_moto(logdir)
    yield m
    m.proc.stop()


@pytest.fixture(scope="session")
def sim(logdir: Path, moto: Moto) -> Sim:
    s = start_sim(logdir, moto.url)
    yield s
    s.proc.stop()


@pytest.fixture(scope="session")
def gateway(sim: Sim, logdir: Path) -> Gateway:
    manifests = write_manifests(logdir / "manifests", sim.url)
    # Fast retry backoff: Bedrock errors the gateway retries do not slow the suite down.
    gw = start_gateway_proc(manifests, logdir, extra_args=["--retry-backoff-base-ms", "5", "--retry-backoff-max-ms", "20"])
    yield gw
    gw.proc.stop()


@pytest.fixture
def start_gateway(sim: Sim, logdir: Path, tmp_path: Path) -> Callable[[], Gateway]:
    """Start a private gateway on its own copy of the manifests (for tests that edit them)."""
    started: list[Gateway] = []

    def start() -> Gateway:
        manifests = write_manifests(tmp_path / f"manifests-{len(started)}", sim.url)
        gw = start_gateway_proc(manifests, logdir, name=f"bedrock-gateway-proxy-private-{len(started)}")
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.proc.stop()


# One log per test; the transports below write into it.
RESPONSE_LOG = ResponseLog()
# Totals for the closing report, so a run shows the checks really happened.
CHECKED = {"responses": 0, "bedrock_requests": 0}


@pytest.fixture(autouse=True)
def _fresh_response_log():
    RESPONSE_LOG.take()
    yield
    # Responses closed only when the test's clients were torn down are checked here.
    late = RESPONSE_LOG.take()
    CHECKED["responses"] += RESPONSE_LOG.checked
    RESPONSE_LOG.checked = 0
    if late:
        pytest.fail("contract violations (responses closed at teardown):\n  " + "\n  ".join(late), pytrace=False)


def _sync_http_client(**kw: Any) -> httpx.Client:
    return httpx.Client(transport=ValidatingTransport(RESPONSE_LOG), timeout=httpx.Timeout(30.0), **kw)


@pytest.fixture
def http(gateway: Gateway) -> httpx.Client:
    """Raw HTTP to the gateway; responses are contract-checked like the SDK's."""
    with _sync_http_client(base_url=gateway.url) as c:
        yield c


@pytest.fixture
def client_for(gateway: Gateway):
    """client_for(key, gateway=None) -> openai.OpenAI bound to the gateway, no retries."""
    import openai

    made: list[Any] = []

    def make(api_key: str = QUICKSTART_KEY, gw: Gateway | None = None) -> "openai.OpenAI":
        c = openai.OpenAI(
            base_url=f"{(gw or gateway).url}/v1",
            api_key=api_key,
            max_retries=0,
            timeout=30.0,
            http_client=_sync_http_client(),
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def client(client_for):
    return client_for(QUICKSTART_KEY)


@pytest.fixture
def async_client_for(gateway: Gateway):
    """async_client_for(key) -> openai.AsyncOpenAI; create it inside the coroutine that uses it."""
    import openai

    def make(api_key: str = QUICKSTART_KEY, gw: Gateway | None = None) -> "openai.AsyncOpenAI":
        return openai.AsyncOpenAI(
            base_url=f"{(gw or gateway).url}/v1",
            api_key=api_key,
            max_retries=0,
            timeout=30.0,
            http_client=httpx.AsyncClient(transport=AsyncValidatingTransport(RESPONSE_LOG), timeout=30.0),
        )

    return make


# ------------------------------------------------------- secrets never leak
# Values under these keys of Secret manifests are secrets: caller API keys, AWS secret keys,
# session tokens, Bedrock API keys. (Access key ids are identifiers, not secrets.)
SECRET_FIELDS = frozenset({"key", "secretAccessKey", "sessionToken", "apiKey", "token"})
# Secrets a test minted outside manifests (service-account tokens, web identity tokens, ...).
WATCHED_SECRETS: set[str] = set()
# Every proxy started by the suite; checked after each test, dropped once stopped and checked.
GATEWAYS_STARTED: list[Gateway] = []


def watch_secret(*values: str) -> None:
    """No proxy log or metric may ever contain these values (checked after every test)."""
    WATCHED_SECRETS.update(v for v in values if len(v) >= 8)


def manifest_secrets(folder: Path | None) -> set[str]:
    """The secret values of the Secret manifests in `folder`."""
    import yaml

    found: set[str] = set()
    for path in sorted(folder.glob("*.yaml")) if folder and folder.is_dir() else []:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError):
            continue
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "Secret":
                continue
            found.update(v for k, v in (doc.get("stringData") or {}).items() if k in SECRET_FIELDS and isinstance(v, str))
            for k, v in (doc.get("data") or {}).items():
                if k in SECRET_FIELDS and isinstance(v, str):
                    found.add(base64.b64decode(v).decode(errors="replace"))
    return {v for v in found if len(v) >= 8}


def secret_leaks() -> list[str]:
    """Secrets found in the logs or /metrics of the proxies started so far."""
    problems = []
    for gw in list(GATEWAYS_STARTED):
        secrets = WATCHED_SECRETS | {v for v in SIM_SECRETS.values() if len(v) >= 8} | manifest_secrets(gw.manifests)
        texts = {"logs": gw.proc.stdout() + gw.proc.stderr()}
        if gw.proc.p.poll() is None:
            try:
                r = httpx.get(f"{gw.url}/metrics", timeout=5)
                if r.status_code == 200:
                    texts["metrics"] = r.text
            except httpx.HTTPError:
                pass
        else:
            GATEWAYS_STARTED.remove(gw)
        for where, text in texts.items():
            for secret in secrets:
                if secret in text:
                    problems.append(f"[secret leak] {gw.proc.name} {where} contain a secret starting {secret[:6]!r}")
    return problems


# ----------------------------------------------------- contract enforcement
def _sim_of(item: pytest.Item) -> Sim | None:
    # funcargs holds every fixture of the test's closure, so "sim" is there
    # whenever the test used the gateway (which depends on it).
    return getattr(item, "funcargs", {}).get("sim")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Fail any test whose traffic broke the OpenAI or AWS contracts."""
    failed = False
    try:
        return (yield)
    except BaseException:
        failed = True
        raise
    finally:
        CHECKED["responses"] += RESPONSE_LOG.checked
        RESPONSE_LOG.checked = 0
        problems = [f"[OpenAI response] {v}" for v in RESPONSE_LOG.take()]
        gw = getattr(item, "funcargs", {}).get("gateway")
        if gw is not None and gw.proc.p.poll() is not None:
            problems.append(f"[gateway] the proxy process died during this test\n{gw.proc.diagnostics()}")
        m = getattr(item, "funcargs", {}).get("moto")
        if m is not None:
            # Requests signed with moto-issued session credentials are checked with their secrets.
            SIM_SECRETS.update(m.issued_secrets())
        problems.extend(secret_leaks())
        s = _sim_of(item)
        if s is not None:
            try:
                records = s.drain()
            except httpx.HTTPError as e:
                problems.append(f"[bedrock-sim] could not fetch recorded requests: {e!r}")
            else:
                CHECKED["bedrock_requests"] += len(records)
                problems.extend(f"[Bedrock request] {p}" for p in check_sim_requests(records))
        if problems:
            text = "contract violations:\n  " + "\n  ".join(problems)
            if failed:
                item.add_report_section("call", "contracts", text)
            else:
                pytest.fail(text, pytrace=False)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        f"contract checks: {CHECKED['responses']} proxy responses validated against the OpenAI spec, "
        f"{CHECKED['bedrock_requests']} Bedrock requests against the AWS model and botocore SigV4"
    )
