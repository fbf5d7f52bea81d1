"""A small validator for AWS service models in botocore's Smithy-JSON form.

Given a model (``service-2.json``), it checks that a recorded HTTP request is a
valid call of one of the service's operations:

* the operation is found from the HTTP method and the ``requestUri`` template;
* URI labels (``{modelId}``) are percent-decoded and checked against their
  member's shape (pattern, length), query parameters likewise;
* the JSON body is checked against the input structure minus the members bound
  to the URI, query string or headers.

Shape rules: structure (members, required, no unknown members, no JSON null),
union (exactly one member set), document (any JSON), list/map (length,
members, keys, values), string (enum, pattern, length), integer/long/float/
double (type, range), boolean, blob (base64 text in JSON), timestamp
(ISO 8601 text or epoch seconds).

Patterns: the Smithy source anchors them (``^...$``); botocore's JSON form
strips the outer anchors (e.g. ``ConversationalModelId`` still shows inner
``$|(^arn...`` pieces), and the service validates the whole value, so a value
must match the pattern in full (``re.fullmatch``). A pattern that still
carries its own anchors behaves the same under ``fullmatch``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

LOCATIONS_OUTSIDE_BODY = {"uri", "querystring", "header", "headers", "statusCode"}


@dataclass
class Operation:
    name: str
    method: str
    uri_template: str
    input_shape: str | None
    output_shape: str | None
    errors: list[str]
    regex: re.Pattern[str]
    labels: list[str]
    greedy: set[str]


class AwsModel:
    """One service model, with its operations indexed by HTTP binding."""

    def __init__(self, model: dict[str, Any]):
        self.model = model
        self.shapes: dict[str, dict[str, Any]] = model["shapes"]
        self.metadata = model.get("metadata", {})
        self.operations: list[Operation] = []
        for name, op in model["operations"].items():
            http = op.get("http", {})
            uri = http.get("requestUri", "/")
            path_template = uri.split("?", 1)[0]
            regex, labels, greedy = _template_regex(path_template)
            self.operations.append(
                Operation(
                    name=name,
                    method=http.get("method", "POST").upper(),
                    uri_template=uri,
                    input_shape=(op.get("input") or {}).get("shape"),
                    output_shape=(op.get("output") or {}).get("shape"),
                    errors=[e["shape"] for e in op.get("errors", [])],
                    regex=regex,
                    labels=labels,
                    greedy=greedy,
                )
            )
        # Literal templates first so "/async-invoke" wins over "/async-invoke/{x}" etc.
        self.operations.sort(key=lambda o: (len(o.labels), -len(o.uri_template)))

    @classmethod
    def load(cls, path: str | Path) -> "AwsModel":
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    # ------------------------------------------------------------------ lookup
    def find_operation(self, method: str, raw_path: str) -> tuple[Operation, dict[str, str]] | None:
        """Match a raw (still percent-encoded) path; label values are returned raw."""
        path = raw_path.split("?", 1)[0]
        for op in self.operations:
            if op.method != method.upper():
                continue
            m = op.regex.fullmatch(path)
            if m:
                return op, {label: m.group(i + 1) for i, label in enumerate(op.labels)}
        return None

    # -------------------------------------------------------------- validation
    def validate_request(self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[str, list[str]]:
        """Validate a whole HTTP request. Returns (operation name, errors)."""
        found = self.find_operation(method, raw_path)
        if found is None:
            return "", [f"{method} {raw_path}: no operation of {self.metadata.get('serviceId', '?')} has this method and URI"]
        op, raw_labels = found
        errors: list[str] = []
        if op.input_shape is None:
            if body:
                errors.append(f"{op.name}: operation takes no input but the request has a body")
            return op.name, errors
        shape = self.shapes[op.input_shape]
        members = shape.get("members", {})
        required = set(shape.get("required", []))
        header_map: dict[str, list[str]] = {}
        for name, value in headers:
            header_map.setdefault(name.lower(), []).append(value)
        query = parse_qsl(raw_path.split("?", 1)[1], keep_blank_values=True) if "?" in raw_path else []
        query_map: dict[str, list[str]] = {}
        for k, v in query:
            query_map.setdefault(k, []).append(v)

        payload_member = shape.get("payload")
        body_members: dict[str, Any] = {}
        for mname, mref in members.items():
            loc = mref.get("location")
            wire = mref.get("locationName", mname)
            where = f"{op.name}.{mname}"
            if loc == "uri":
                # A greedy label ({name+}) may contain "/"; others are one segment.
                raw = raw_labels.get(wire)
                if raw is None:
                    errors.append(f"{where}: URI label {{{wire}}} not found in {raw_path}")
                    continue
                decoded = unquote(raw)
                if "/" in raw and wire not in op.greedy:
                    errors.append(f"{where}: URI label must be one path segment, got {raw!r} (encode '/' as %2F)")
                errors.extend(self.validate_value(decoded, mref["shape"], f"{where} (URI label, decoded)"))
            elif loc == "querystring":
                vals = query_map.get(wire)
                if vals is None:
                    if mname in required:
                        errors.append(f"{where}: required query parameter {wire!r} missing")
                    continue
                target = self.shapes[mref["shape"]]
                if target["type"] == "list":
                    errors.extend(self.validate_value(vals, mref["shape"], f"{where} (query)"))
                else:
                    errors.extend(self._validate_scalar_text(vals[-1], mref["shape"], f"{where} (query)"))
            elif loc == "header":
                vals = header_map.get(wire.lower())
                if vals is None:
                    if mname in required:
                        errors.append(f"{where}: required header {wire!r} missing")
                    continue
                errors.extend(self._validate_scalar_text(vals[-1], mref["shape"], f"{where} (header {wire})"))
            elif loc in LOCATIONS_OUTSIDE_BODY:
                continue
            else:
                body_members[mname] = mref

        if payload_member:
            mref = members[payload_member]
            target = self.shapes[mref["shape"]]
            if target["type"] in ("blob", "string"):
                return op.name, errors  # raw payload, opaque to the model
            errors.extend(self._validate_json_body(body, mref["shape"], None, op.name))
            return op.name, errors

        errors.extend(self._validate_json_body(body, op.input_shape, body_members, op.name))
        return op.name, errors

    def _validate_json_body(self, body: bytes, shape_name: str, only_members: dict[str, Any] | None, where: str) -> list[str]:
        if not body:
            doc: Any = {}
        else:
            try:
                doc = json.loads(body)
            except (ValueError, UnicodeDecodeError) as e:
                return [f"{where}: body is not JSON: {e}"]
        if only_members is None:
            return self.validate_value(doc, shape_name, where)
        shape = self.shapes[shape_name]
        if not isinstance(doc, dict):
            return [f"{where}: body must be a JSON object, got {type(doc).__name__}"]
        required = [r for r in shape.get("required", []) if r in only_members]
        return self._validate_structure_members(doc, only_members, required, where)

    def validate_response(self, operation: str, status: int, error_type: str, body: bytes) -> list[str]:
        """Validate a JSON (rest-json) response of ``operation``: a 2xx body against the output
        shape (members bound to headers or the status code aside), an error against the
        operation's modeled errors (``x-amzn-ErrorType`` names it). Returns errors."""
        op = next((o for o in self.operations if o.name == operation), None)
        if op is None:
            return [f"{operation}: no such operation"]
        where = f"{operation} -> {status}"
        try:
            doc = json.loads(body or b"{}")
        except ValueError as e:
            return [f"{where}: body is not JSON ({e}): {body[:300]!r}"]
        if status >= 300:
            code = error_type.split(":", 1)[0]
            if code not in op.errors:
                return [f"{where}: error {code!r} is not one of {operation}'s modeled errors {op.errors}"]
            return self.validate_value(doc, code, f"{where} {code}")
        if op.output_shape is None:
            return [] if doc == {} else [f"{where}: the operation has no output, got {doc!r}"]
        members = self.shapes[op.output_shape].get("members", {})
        in_body = {k: m for k, m in members.items() if m.get("location") not in LOCATIONS_OUTSIDE_BODY}
        required = [k for k in self.shapes[op.output_shape].get("required", []) if k in in_body]
        return self._validate_structure_members(doc, in_body, required, where)

    def validate_value(self, value: Any, shape_name: str, where: str) -> list[str]:
        """Validate one JSON value against a shape; returns a list of errors."""
        shape = self.shapes[shape_name]
        t = shape["type"]
        if value is None:
            return [f"{where}: null is not a valid {shape_name} ({t}); omit the member instead"]
        if t == "structure":
            if shape.get("document"):
                return []
            if not isinstance(value, dict):
                return [f"{where}: expected object for {shape_name}, got {type(value).__name__}"]
            members = shape.get("members", {})
            if shape.get("union"):
                set_members = [k for k in value if k in members]
                errs = [f"{where}: unknown member {k!r} of union {shape_name}" for k in value if k not in members]
                if len(set_members) != 1:
                    errs.append(
                        f"{where}: union {shape_name} must have exactly one member set, got {len(set_members)}: {sorted(value)}"
                    )
                for k in set_members:
                    errs.extend(self.validate_value(value[k], members[k]["shape"], f"{where}.{k}"))
                return errs
            return self._validate_structure_members(value, members, shape.get("required", []), where)
        if t == "list":
            if not isinstance(value, list):
                return [f"{where}: expected array for {shape_name}, got {type(value).__name__}"]
            errs = self._length(len(value), shape, where, "items")
            for i, item in enumerate(value):
                errs.extend(self.validate_value(item, shape["member"]["shape"], f"{where}[{i}]"))
            return errs
        if t == "map":
            if not isinstance(value, dict):
                return [f"{where}: expected object for map {shape_name}, got {type(value).__name__}"]
            errs = self._length(len(value), shape, where, "entries")
            for k, v in value.items():
                errs.extend(self.validate_value(k, shape["key"]["shape"], f"{where} key {k!r}"))
                errs.extend(self.validate_value(v, shape["value"]["shape"], f"{where}[{k!r}]"))
            return errs
        if t == "string":
            if not isinstance(value, str):
                return [f"{where}: expected string for {shape_name}, got {type(value).__name__}"]
            return self._string_rules(value, shape, shape_name, where)
        if t in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                return [f"{where}: expected integer for {shape_name}, got {value!r}"]
            return self._range(value, shape, where)
        if t in ("float", "double"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return [f"{where}: expected number for {shape_name}, got {value!r}"]
            return self._range(value, shape, where)
        if t == "boolean":
            if not isinstance(value, bool):
                return [f"{where}: expected boolean for {shape_name}, got {value!r}"]
            return []
        if t == "blob":
            if not isinstance(value, str):
                return [f"{where}: expected base64 string for blob {shape_name}, got {type(value).__name__}"]
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as e:
                return [f"{where}: blob {shape_name} is not valid base64: {e}"]
            return self._length(len(raw), shape, where, "bytes")
        if t == "timestamp":
            if isinstance(value, bool):
                return [f"{where}: expected timestamp, got {value!r}"]
            if isinstance(value, (int, float)):
                return []
            if isinstance(value, str):
                try:
                    _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                    return []
                except ValueError:
                    return [f"{where}: timestamp {value!r} is not ISO 8601"]
            return [f"{where}: expected timestamp, got {type(value).__name__}"]
        return [f"{where}: shape type {t!r} of {shape_name} is not supported by this validator"]

    def _validate_structure_members(self, value: dict[str, Any], members: dict[str, Any], required: list[str], where: str) -> list[str]:
        errs: list[str] = []
        for k in value:
            if k not in members:
                errs.append(f"{where}: unknown member {k!r} (allowed: {', '.join(sorted(members))})")
        for r in required:
            if r not in value:
                errs.append(f"{where}: required member {r!r} missing")
        for k, v in value.items():
            if k in members:
                errs.extend(self.validate_value(v, members[k]["shape"], f"{where}.{k}"))
        return errs

    def _validate_scalar_text(self, text: str, shape_name: str, where: str) -> list[str]:
        """Validate a value that travelled as text (URI label, query, header)."""
        t = self.shapes[shape_name]["type"]
        if t in ("integer", "long"):
            try:
                return self.validate_value(int(text), shape_name, where)
            except ValueError:
                return [f"{where}: {text!r} is not an integer"]
        if t in ("float", "double"):
            try:
                return self.validate_value(float(text), shape_name, where)
            except ValueError:
                return [f"{where}: {text!r} is not a number"]
        if t == "boolean":
            if text not in ("true", "false"):
                return [f"{where}: {text!r} is not a boolean"]
            return []
        if t == "string":
            return self.validate_value(text, shape_name, where)
        return []

    @staticmethod
    def _length(n: int, shape: dict[str, Any], where: str, unit: str) -> list[str]:
        errs = []
        if "min" in shape and n < shape["min"]:
            errs.append(f"{where}: {n} {unit}, minimum is {shape['min']}")
        if "max" in shape and n > shape["max"]:
            errs.append(f"{where}: {n} {unit}, maximum is {shape['max']}")
        return errs

    @staticmethod
    def _range(v: float, shape: dict[str, Any], where: str) -> list[str]:
        errs = []
        if "min" in shape and v < shape["min"]:
            errs.append(f"{where}: {v} is below the minimum {shape['min']}")
        if "max" in shape and v > shape["max"]:
            errs.append(f"{where}: {v} is above the maximum {shape['max']}")
        return errs

    def _string_rules(self, value: str, shape: dict[str, Any], shape_name: str, where: str) -> list[str]:
        errs = []
        if "enum" in shape and value not in shape["enum"]:
            errs.append(f"{where}: {value!r} is not one of {shape['enum']} ({shape_name})")
        errs.extend(self._length(len(value), shape, where, "characters"))
        if "pattern" in shape and not _compiled(shape["pattern"]).fullmatch(value):
            errs.append(f"{where}: {value!r} does not match the pattern of {shape_name}: {shape['pattern']}")
        return errs


_PATTERN_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    p = _PATTERN_CACHE.get(pattern)
    if p is None:
        p = _PATTERN_CACHE[pattern] = re.compile(pattern)
    return p


def _template_regex(template: str) -> tuple[re.Pattern[str], list[str], set[str]]:
    """'/model/{modelId}/converse' -> regex with one group per label."""
    labels: list[str] = []
    greedy: set[str] = set()
    out = []
    pos = 0
    for m in re.finditer(r"\{([^}]+)\}", template):
        out.append(re.escape(template[pos : m.start()]))
        name = m.group(1)
        if name.endswith("+"):
            labels.append(name[:-1])
            greedy.add(name[:-1])
            out.append("(.+)")
        else:
            labels.append(name)
            out.append("([^/]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out)), labels, greedy
