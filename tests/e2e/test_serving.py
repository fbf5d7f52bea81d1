"""Serving under pressure and on the way out: graceful shutdown on SIGTERM (no stream is cut),
and the end of the grace period (remaining connections closed, exit 0); the header-read timeout
(slowloris) and the TLS certificate's expiry gauge through the binary."""

from __future__ import annotations

import datetime
import json
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import (
    QUICKSTART_KEY,
    Proc,
    Sim,
    _sync_http_client,
    binary,
    free_port,
    start_gateway_proc,
    write_manifests,
)

AUTH = {"Authorization": f"Bearer {QUICKSTART_KEY}"}
WORDS = "one two three four five six seven eight nine ten eleven twelve"


def stream_body(tag: str, gap_ms: int) -> dict:
    return {
        "model": "demo/nova-lite",
        "stream": True,
        "messages": [{"role": "user", "content": f"{tag} {WORDS} [[sim:gap={gap_ms}]]"}],
    }


class Streamer(threading.Thread):
    """Reads one chat stream to its end, recording every `data:` payload and how it ended."""

    def __init__(self, url: str, tag: str, gap_ms: int, validated: bool = True):
        super().__init__(daemon=True)
        self.url, self.tag, self.gap_ms = url, tag, gap_ms
        # Complete streams are checked against the OpenAI spec; a stream cut on purpose is not.
        self.client = _sync_http_client() if validated else httpx.Client(timeout=60)
        self.started = threading.Event()
        self.events: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.client as http:
                body = stream_body(self.tag, self.gap_ms)
                with http.stream("POST", f"{self.url}/v1/chat/completions", json=body, headers=AUTH) as r:
                    assert r.status_code == 200, r.read()
                    for line in r.iter_lines():
                        if line.startswith("data: "):
                            self.events.append(line.removeprefix("data: "))
                            self.started.set()
        except BaseException as e:  # noqa: BLE001 - recorded for the test to assert on
            self.error = e
        finally:
            self.started.set()

    def content(self) -> str:
        chunks = [json.loads(e) for e in self.events if e != "[DONE]"]
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def start_draining_gateway(sim: Sim, logdir: Path, tmp_path: Path, grace: int, name: str):
    ops = f"127.0.0.1:{free_port()}"
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    gw = start_gateway_proc(
        manifests,
        logdir,
        name=name,
        extra_args=["--metrics-listen", ops, "--shutdown-grace-seconds", str(grace)],
    )
    return gw, f"http://{ops}"


def test_sigterm_lets_every_stream_finish(sim, logdir, tmp_path):
    gw, ops = start_draining_gateway(sim, logdir, tmp_path, grace=60, name="bedrock-gateway-proxy-drain")
    try:
        streams = [Streamer(gw.url, f"stream{i}", gap_ms=150) for i in range(4)]
        for s in streams:
            s.start()
        for s in streams:
            assert s.started.wait(20), "stream did not start"
        assert not any(s.error for s in streams), [s.error for s in streams]
        assert httpx.get(f"{ops}/readyz").status_code == 200

        gw.proc.p.send_signal(signal.SIGTERM)

        # At once: not ready, and the API port takes no new connection.
        r = httpx.get(f"{ops}/readyz")
        assert (r.status_code, r.text) == (503, "draining\n")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{gw.url}/healthz", timeout=2)
        assert all(s.is_alive() for s in streams), "a stream ended before SIGTERM was handled"

        for s in streams:
            s.join(30)
            assert not s.is_alive()
            assert s.error is None, f"{s.tag}: {s.error!r}"
            assert s.events[-1] == "[DONE]", f"{s.tag} was cut: {s.events[-3:]}"
            assert s.content() == f"Simulated reply to: {s.tag} {WORDS}"
        assert gw.proc.p.wait(10) == 0, gw.proc.diagnostics()
    finally:
        gw.proc.stop()


def test_past_the_grace_open_streams_are_closed_and_the_exit_is_clean(sim, logdir, tmp_path):
    gw, _ = start_draining_gateway(sim, logdir, tmp_path, grace=1, name="bedrock-gateway-proxy-grace")
    try:
        # 12+ events 2 s apart: far longer than the 1 s grace.
        s = Streamer(gw.url, "slow", gap_ms=2000, validated=False)
        s.start()
        assert s.started.wait(20), "stream did not start"
        gw.proc.p.send_signal(signal.SIGTERM)
        assert gw.proc.p.wait(15) == 0, gw.proc.diagnostics()
        s.join(10)
        assert not s.is_alive()
        assert "[DONE]" not in s.events
        assert isinstance(s.error, httpx.RemoteProtocolError), repr(s.error)
    finally:
        gw.proc.stop()


def test_limits_as_the_sdk_sees_them(sim, logdir, tmp_path):
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    gw = start_gateway_proc(
        manifests,
        logdir,
        name="bedrock-gateway-proxy-limits",
        extra_args=["--max-concurrent-requests", "1", "--max-body-bytes", "1048576"],
    )
    try:
        client = openai.OpenAI(
            base_url=f"{gw.url}/v1", api_key=QUICKSTART_KEY, max_retries=0, http_client=_sync_http_client()
        )
        # A body four times the limit, sent by the SDK over HTTP/1.1: a 413, not a reset.
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(
                model="demo/nova-lite", messages=[{"role": "user", "content": "x" * (4 * 1024 * 1024)}]
            )
        assert e.value.status_code == 413
        assert e.value.body == {
            "message": "The request body is larger than the gateway's limit of 1048576 bytes.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }

        # One slow stream holds the only slot; the next request is refused until it ends.
        s = Streamer(gw.url, "holder", gap_ms=150)
        s.start()
        assert s.started.wait(20), "stream did not start"
        with pytest.raises(openai.InternalServerError) as e:
            client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "hi"}])
        assert e.value.status_code == 503
        assert e.value.response.headers["retry-after"] == "1"
        assert e.value.body["code"] == "overloaded"
        s.join(30)
        assert s.events[-1] == "[DONE]" and s.error is None
        r = client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "Simulated reply to: hi"
        client.close()
    finally:
        gw.proc.stop()


def _closed_without_answer(addr: tuple[str, int], start: bytes) -> bytes:
    """Sends `start` and reads until the gateway closes the connection (10 s at most)."""
    with socket.create_connection(addr, timeout=10) as conn:
        conn.sendall(start)
        got = b""
        while True:
            try:
                chunk = conn.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return got


def test_slow_request_heads_are_cut_on_the_api_and_ops_ports(sim, logdir, tmp_path):
    ops = ("127.0.0.1", free_port())
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    gw = start_gateway_proc(
        manifests,
        logdir,
        name="bedrock-gateway-proxy-slowloris",
        extra_args=["--header-read-timeout-ms", "1000", "--metrics-listen", f"{ops[0]}:{ops[1]}"],
    )
    try:
        api = (gw.url.removeprefix("http://").split(":")[0], int(gw.url.rsplit(":", 1)[1]))
        # A request line that never ends, on both ports: closed, no answer (socket.timeout
        # would fail the test if the gateway kept the connection open).
        assert _closed_without_answer(api, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n") == b""
        assert _closed_without_answer(ops, b"GET /metr") == b""
        # The SDK is not affected.
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=QUICKSTART_KEY, http_client=_sync_http_client())
        r = client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "Simulated reply to: hi"
        client.close()
    finally:
        gw.proc.stop()


def _self_signed(not_after: datetime.datetime) -> tuple[bytes, bytes]:
    """A certificate for localhost valid until `not_after`, and its key, as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _expiry(ops_url: str) -> float | None:
    text = httpx.get(f"{ops_url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("bedrock_gateway_tls_certificate_expiry_timestamp_seconds "):
            return float(line.split()[1])
    return None


def _ready(ops_url: str) -> bool:
    try:
        return httpx.get(f"{ops_url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_tls_certificate_expiry_follows_renewals(sim, logdir, tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first = datetime.datetime(2031, 5, 17, tzinfo=datetime.timezone.utc)
    cert_pem, key_pem = _self_signed(first)
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    ops = f"127.0.0.1:{free_port()}"
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    argv = [
        str(binary("bedrock-gateway-proxy")),
        *("--manifests", str(manifests), "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", ops),
        *("--tls-cert", str(cert), "--tls-key", str(key), "--reload-interval-ms", "100"),
    ]
    proc = Proc("bedrock-gateway-proxy-tls-expiry", argv, logdir)
    try:
        deadline = time.monotonic() + 30
        while _ready(f"http://{ops}") is False:
            assert proc.p.poll() is None and time.monotonic() < deadline, proc.diagnostics()
            time.sleep(0.1)
        assert _expiry(f"http://{ops}") == first.timestamp() == 1936742400
        # A renewal (the way a Secret volume updates: a new file renamed over the old one).
        renewed = datetime.datetime(2051, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
        cert_pem, key_pem = _self_signed(renewed)
        for path, pem in ((key, key_pem), (cert, cert_pem)):
            path.with_suffix(".new").write_bytes(pem)
            path.with_suffix(".new").rename(path)
        while _expiry(f"http://{ops}") != renewed.timestamp():
            assert time.monotonic() < deadline, f"still {_expiry(f'http://{ops}')}\n{proc.diagnostics()}"
            time.sleep(0.1)
    finally:
        proc.stop()


def test_without_tls_there_is_no_expiry(gateway):
    assert "bedrock_gateway_tls_certificate_expiry" not in httpx.get(f"{gateway.url}/metrics", timeout=5).text
