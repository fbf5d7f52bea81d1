"""Wire-contract checks used on every e2e test.

* ``OpenAIContract``: validates proxy response bodies against the OpenAI
  OpenAPI 3.1 document (JSON Schema 2020-12 via ``referencing``).
* ``ValidatingTransport`` / ``AsyncValidatingTransport``: httpx transports that
  tee every response body from the proxy and validate it when the body is
  closed (whole JSON bodies, or each ``data:`` event of an SSE stream).
* ``check_sim_requests``: validates what the proxy sent to Bedrock (as recorded
  by bedrock-sim) against the AWS service model and recomputes each SigV4
  signature with botocore.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any, Iterable

import httpx
import jsonschema
import referencing
import referencing.jsonschema
import yaml

from awsmodel import AwsModel
from sigv4check import check_sigv4, header_values

# The contracts are vendored in reference/ so a clone is self-contained; BGW_REFERENCE_DIR overrides.
REFERENCE = Path(os.environ.get("BGW_REFERENCE_DIR") or Path(__file__).resolve().parents[2] / "reference")
OPENAPI_PATH = REFERENCE / "openai-openapi.yaml"
RUNTIME_MODEL_PATH = REFERENCE / "aws-models" / "bedrock-runtime-2023-09-30-service-2.json"
CONTROL_MODEL_PATH = REFERENCE / "aws-models" / "bedrock-2023-04-20-service-2.json"
OPENAPI_URI = "urn:openai:openapi"

SIM_ACCESS_KEY_ID = "AKIASIMULATOR0000001"
SIM_SECRET_ACCESS_KEY = "bedrock-sim-secret-access-key-0000000000"
SIM_BEARER_TOKEN = "bedrock-sim-api-key"
SIM_SECRETS = {SIM_ACCESS_KEY_ID: SIM_SECRET_ACCESS_KEY}


# --------------------------------------------------------------------- OpenAI
def _openapi_nullable(node: Any) -> Any:
    """Give OpenAPI 3.0's ``nullable: true`` its meaning under JSON Schema 2020-12.

    The OpenAI document is declared 3.1 but still carries ``nullable: true`` on
    ~100 schemas (e.g. stream chunk ``choices[].logprobs``), which a 2020-12
    validator ignores. ``{..., nullable: true}`` becomes
    ``{anyOf: [{...}, {type: null}]}``; nothing else is changed.
    """
    if isinstance(node, list):
        return [_openapi_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_nullable(v) for k, v in node.items()}
    if out.get("nullable") is True:
        out.pop("nullable")
        return {"anyOf": [out, {"type": "null"}]}
    return out


class OpenAIContract:
    def __init__(self, spec: dict[str, Any]):
        spec = _openapi_nullable(copy.deepcopy(spec))
        spec["$id"] = OPENAPI_URI
        resource = referencing.Resource.from_contents(spec, default_specification=referencing.jsonschema.DRAFT202012)
        self.registry = referencing.Registry().with_resource(OPENAPI_URI, resource)
        self.schemas = spec["components"]["schemas"]
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    @classmethod
    @functools.cache
    def load(cls) -> "OpenAIContract":
        with open(OPENAPI_PATH, encoding="utf-8") as f:
            spec = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return cls(spec)

    def validator(self, schema_name: str) -> jsonschema.protocols.Validator:
        v = self._validators.get(schema_name)
        if v is None:
            if schema_name not in self.schemas:
                raise KeyError(f"no schema {schema_name!r} in the OpenAI spec")
            v = jsonschema.Draft202012Validator(
                {"$ref": f"{OPENAPI_URI}#/components/schemas/{schema_name}"}, registry=self.registry
            )
            self._validators[schema_name] = v
        return v

    def errors(self, instance: Any, schema_name: str) -> list[str]:
        out = []
        for e in sorted(self.validator(schema_name).iter_errors(instance), key=lambda e: list(e.path)):
            path = "/".join(str(p) for p in e.absolute_path) or "(root)"
            out.append(f"{schema_name} at {path}: {e.message}")
        return out

    # Which schema a proxy response must satisfy.
    @staticmethod
    def schema_for(method: str, path: str, status: int) -> str | None:
        if not path.startswith("/v1/"):
            return None
        if status >= 400:
            return "ErrorResponse"
        if method == "POST" and path == "/v1/chat/completions":
            return "CreateChatCompletionResponse"
        if method == "POST" and path == "/v1/embeddings":
            return "CreateEmbeddingResponse"
        if method == "POST" and path in ("/v1/images/generations", "/v1/images/edits"):
            return "ImagesResponse"
        if method == "GET" and path == "/v1/models":
            return "ListModelsResponse"
        if method == "GET" and path.startswith("/v1/models/"):
            return "Model"
        if path == "/v1/files":
            return {"POST": "OpenAIFile", "GET": "ListFilesResponse"}.get(method)
        if path.startswith("/v1/files/") and not path.endswith("/content"):
            return {"GET": "OpenAIFile", "DELETE": "DeleteFileResponse"}.get(method)
        if path == "/v1/batches":
            return {"POST": "Batch", "GET": "ListBatchesResponse"}.get(method)
        if path.startswith("/v1/batches/") and not path.endswith("/output"):
            return "Batch"
        return None

    def check_response(self, method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
        """Validate a complete response body; returns errors (empty = valid)."""
        where = f"{method} {path} -> {status}"
        schema = self.schema_for(method, path, status)
        if schema is None:
            return []
        ctype = content_type.split(";")[0].strip().lower()
        if status < 400 and ctype == "text/event-stream":
            return self.check_sse(body, where)
        if ctype != "application/json":
            return [f"{where}: content-type {content_type!r}, expected application/json; body {body[:300]!r}"]
        try:
            doc = json.loads(body)
        except ValueError as e:
            return [f"{where}: body is not JSON ({e}): {body[:300]!r}"]
        errors = _decode_base64_embeddings(doc) if schema == "CreateEmbeddingResponse" else []
        return [f"{where}: {e}" for e in errors + self.errors(doc, schema)]

    def check_sse(self, body: bytes, where: str) -> list[str]:
        errors: list[str] = []
        for i, (event, data) in enumerate(parse_sse(body)):
            if data == "[DONE]":
                continue
            try:
                doc = json.loads(data)
            except ValueError as e:
                errors.append(f"{where}: SSE event {i} data is not JSON ({e}): {data[:300]!r}")
                continue
            if event not in (None, "message", "error") or (isinstance(doc, dict) and "error" in doc):
                errors.extend(f"{where}: SSE event {i}: {e}" for e in self.errors(doc, "ErrorResponse"))
            else:
                errors.extend(
                    f"{where}: SSE event {i}: {e}" for e in self.errors(doc, "CreateChatCompletionStreamResponse")
                )
        return errors


def _decode_base64_embeddings(doc: Any) -> list[str]:
    """Replace base64 embeddings (``encoding_format: base64``) by their floats, in place.

    The spec types ``embedding`` as an array of floats only; OpenAI sends base64 of the
    little-endian float32 bytes when asked, which must decode to whole float32 values.
    """
    errors: list[str] = []
    data = doc.get("data") if isinstance(doc, dict) else None
    for i, item in enumerate(data if isinstance(data, list) else []):
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(vector, str):
            continue
        try:
            raw = base64.b64decode(vector, validate=True)
        except (ValueError, binascii.Error) as e:
            errors.append(f"data/{i}/embedding: not base64 ({e})")
            continue
        if len(raw) % 4:
            errors.append(f"data/{i}/embedding: {len(raw)} bytes is not a whole number of float32 values")
            continue
        item["embedding"] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return errors


def parse_sse(body: bytes) -> list[tuple[str | None, str]]:
    """Split an SSE body into (event name, data) pairs (data lines joined by newline)."""
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    events: list[tuple[str | None, str]] = []
    event: str | None = None
    data: list[str] = []
    for line in text.split("\n"):
        if line == "":
            if data:
                events.append((event, "\n".join(data)))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        events.append((event, "\n".join(data)))
    return events


# ------------------------------------------------------- capturing transports
class ResponseLog:
    """Collects contract violations of proxy responses seen during one test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.violations: list[str] = []
        self.checked = 0

    def record(
        self, method: str, path: str, status: int, content_type: str, encoding: str, body: bytes, complete: bool
    ) -> None:
        errs: list[str] = []
        encoding = encoding.strip().lower()
        if encoding in ("gzip", "deflate") and body:
            try:
                d = zlib.decompressobj(wbits=47 if encoding == "gzip" else 15)
                body = d.decompress(body) + (d.flush() if complete else b"")
            except zlib.error as e:
                with self.lock:
                    self.violations.append(f"{method} {path} -> {status}: bad {encoding} body: {e}")
                return
        elif encoding not in ("", "identity"):
            with self.lock:
                self.violations.append(f"{method} {path} -> {status}: content-encoding {encoding!r} not checked")
            return
        contract = OpenAIContract.load()
        schema = contract.schema_for(method, path, status)
        if schema is not None:
            if complete:
                errs = contract.check_response(method, path, status, content_type, body)
            elif content_type.split(";")[0].strip().lower() == "text/event-stream":
                # The client stopped early or the connection broke: check the events that did arrive.
                body = body.replace(b"\r\n", b"\n")
                complete_part = body[: body.rfind(b"\n\n") + 2] if b"\n\n" in body else b""
                errs = contract.check_sse(complete_part, f"{method} {path} -> {status} (partial)")
        with self.lock:
            self.checked += schema is not None
            self.violations.extend(errs)

    def take(self) -> list[str]:
        with self.lock:
            v, self.violations = self.violations, []
            return v


class _TeeStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, on_close):
        self.inner, self.on_close, self.buf, self.done = inner, on_close, bytearray(), False

    def __iter__(self):
        for chunk in self.inner:
            self.buf.extend(chunk)
            yield chunk
        self.done = True

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            cb, self.on_close = self.on_close, None
            if cb:
                cb(bytes(self.buf), self.done)


class _AsyncTeeStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, on_close):
        self.inner, self.on_close, self.buf, self.done = inner, on_close, bytearray(), False

    async def __aiter__(self):
        async for chunk in self.inner:
            self.buf.extend(chunk)
            yield chunk
        self.done = True

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            cb, self.on_close = self.on_close, None
            if cb:
                cb(bytes(self.buf), self.done)


def _wrap(request: httpx.Request, response: httpx.Response, log: ResponseLog, stream_cls):
    method, path = request.method, request.url.path
    status, ctype = response.status_code, response.headers.get("content-type", "")
    encoding = response.headers.get("content-encoding", "")

    def on_close(body: bytes, complete: bool) -> None:
        log.record(method, path, status, ctype, encoding, body, complete)

    return httpx.Response(
        status_code=response.status_code,
        headers=response.headers,
        stream=stream_cls(response.stream, on_close),
        extensions=response.extensions,
        request=request,
    )


class ValidatingTransport(httpx.BaseTransport):
    def __init__(self, log: ResponseLog, inner: httpx.BaseTransport | None = None, **kwargs: Any):
        self.inner = inner or httpx.HTTPTransport(**kwargs)
        self.log = log

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return _wrap(request, self.inner.handle_request(request), self.log, _TeeStream)

    def close(self) -> None:
        self.inner.close()


class AsyncValidatingTransport(httpx.AsyncBaseTransport):
    def __init__(self, log: ResponseLog, inner: httpx.AsyncBaseTransport | None = None, **kwargs: Any):
        self.inner = inner or httpx.AsyncHTTPTransport(**kwargs)
        self.log = log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return _wrap(request, await self.inner.handle_async_request(request), self.log, _AsyncTeeStream)

    async def aclose(self) -> None:
        await self.inner.aclose()


# ------------------------------------------------------- Bedrock-side checks
@functools.cache
def runtime_model() -> AwsModel:
    return AwsModel.load(RUNTIME_MODEL_PATH)


@functools.cache
def control_model() -> AwsModel | None:
    return AwsModel.load(CONTROL_MODEL_PATH) if CONTROL_MODEL_PATH.exists() else None


def recorded_body(rec: dict[str, Any]) -> bytes:
    return base64.b64decode(rec.get("body_base64") or "")


def recorded_headers(rec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in rec.get("headers", [])]


def check_sim_request(rec: dict[str, Any]) -> tuple[str, list[str]]:
    """Validate one request recorded by bedrock-sim. Returns (operation, errors)."""
    method, path = rec["method"], rec["path"]
    headers, body = recorded_headers(rec), recorded_body(rec)
    where = f"{method} {path}"
    errors: list[str] = []
    op = ""
    models = [m for m in (runtime_model(), control_model()) if m is not None]
    for model in models:
        if model.find_operation(method, path) is not None:
            op, errs = model.validate_request(method, path, headers, body)
            errors.extend(f"{where}: {e}" for e in errs)
            break
    else:
        errors.append(f"{where}: not an operation of bedrock-runtime or bedrock (AWS models)")

    if body and op in ("Converse", "ConverseStream", "InvokeModel"):
        ctypes = header_values(headers, "content-type")
        if not ctypes or ctypes[0].split(";")[0].strip().lower() != "application/json":
            errors.append(f"{where}: Content-Type {ctypes!r}, expected application/json")

    auth = header_values(headers, "authorization")
    if auth and auth[0].startswith("Bearer "):
        if auth[0] != f"Bearer {SIM_BEARER_TOKEN}":
            errors.append(f"{where}: unexpected bearer token")
    else:
        res = check_sigv4(method, path, headers, body, SIM_SECRETS)
        errors.extend(f"{where}: {e}" for e in res.errors)
    return op, errors


def check_control_response(operation: str, status: int, headers: dict[str, str], body: bytes) -> list[str]:
    """Validate a bedrock (control-plane) response the sim sent against the AWS model."""
    model = control_model()
    if model is None:
        return [f"{operation}: the bedrock service model is missing from {REFERENCE}"]
    lower = {k.lower(): v for k, v in headers.items()}
    errors = []
    if lower.get("content-type", "").split(";")[0].strip() != "application/json":
        errors.append(f"{operation} -> {status}: content-type {lower.get('content-type')!r}, expected application/json")
    return errors + model.validate_response(operation, status, lower.get("x-amzn-errortype", ""), body)


def check_sim_requests(records: Iterable[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    for rec in records:
        if rec.get("path", "").startswith("/_sim/"):
            continue
        errors.extend(check_sim_request(rec)[1])
    return errors


def sigv4_region(rec: dict[str, Any]) -> str | None:
    auth = header_values(recorded_headers(rec), "authorization")
    if not auth:
        return None
    part = auth[0].split("Credential=", 1)[-1].split(",", 1)[0]
    bits = part.split("/")
    return bits[2] if len(bits) >= 5 else None
