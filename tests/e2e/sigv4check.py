"""Recompute the SigV4 signature of a recorded request with botocore.

This is deliberately independent of the Rust signer: botocore's ``SigV4Auth``
builds the canonical request (including the non-S3 double encoding of the
path), the string to sign and the signature from the recorded method, path,
signed headers and body; the result must equal the ``Signature=`` of the
recorded ``Authorization`` header.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)/aws4_request,\s*"
    r"SignedHeaders=(?P<signed>[a-z0-9\-;]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


@dataclass
class SigV4Result:
    ok: bool
    errors: list[str] = field(default_factory=list)
    region: str | None = None
    service: str | None = None
    access_key: str | None = None
    signed_headers: list[str] = field(default_factory=list)
    expected_signature: str | None = None
    actual_signature: str | None = None
    canonical_request: str | None = None

    def explain(self) -> str:
        return "\n".join(self.errors)


def header_values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def check_sigv4(
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    secrets: dict[str, str],
    expected_service: str = "bedrock",
) -> SigV4Result:
    """Check the SigV4 signature of one request.

    ``raw_path`` is the request target as it went over the wire (still
    percent-encoded, query included). ``secrets`` maps access key id -> secret.
    """
    res = SigV4Result(ok=False)
    auths = header_values(headers, "authorization")
    if len(auths) != 1:
        res.errors.append(f"expected exactly one Authorization header, got {len(auths)}")
        return res
    m = AUTH_RE.match(auths[0].strip())
    if not m:
        res.errors.append(f"Authorization header is not a SigV4 header: {auths[0]!r}")
        return res
    res.access_key, res.region, res.service = m["akid"], m["region"], m["service"]
    res.actual_signature = m["sig"]
    res.signed_headers = m["signed"].split(";")

    if res.service != expected_service:
        res.errors.append(f"credential scope service is {res.service!r}, expected {expected_service!r}")
    secret = secrets.get(m["akid"])
    if secret is None:
        res.errors.append(f"unknown access key id {m['akid']!r}")
        return res
    dates = header_values(headers, "x-amz-date")
    if len(dates) != 1:
        res.errors.append(f"expected exactly one X-Amz-Date header, got {len(dates)}")
        return res
    amz_date = dates[0].strip()
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
        res.errors.append(f"X-Amz-Date {amz_date!r} is not YYYYMMDDTHHMMSSZ")
        return res
    if amz_date[:8] != m["date"]:
        res.errors.append(f"credential scope date {m['date']} != X-Amz-Date day {amz_date[:8]}")
    if res.signed_headers != sorted(res.signed_headers):
        res.errors.append(f"SignedHeaders not sorted: {m['signed']}")
    for required in ("host", "x-amz-date"):
        if required not in res.signed_headers:
            res.errors.append(f"SignedHeaders lacks {required!r}: {m['signed']}")
    sha_hdr = header_values(headers, "x-amz-content-sha256")
    if sha_hdr and sha_hdr[0] != hashlib.sha256(body).hexdigest():
        res.errors.append("X-Amz-Content-SHA256 does not match the body")

    # Only the headers named in SignedHeaders take part in the signature.
    signed_pairs: list[tuple[str, str]] = []
    for name in res.signed_headers:
        vals = header_values(headers, name)
        if not vals:
            res.errors.append(f"signed header {name!r} is not in the request")
            continue
        # Repeated headers are joined with "," in the canonical form.
        signed_pairs.append((name, ",".join(vals)))
    hosts = header_values(headers, "host")
    if len(hosts) != 1:
        res.errors.append(f"expected exactly one Host header, got {len(hosts)}")
        return res
    url = f"http://{hosts[0]}{raw_path}"
    request = AWSRequest(method=method, url=url, headers=dict(signed_pairs), data=body)
    request.context["timestamp"] = amz_date
    token = header_values(headers, "x-amz-security-token")
    signer = SigV4Auth(Credentials(m["akid"], secret, token[0] if token else None), expected_service, res.region)

    botocore_signed = signer.signed_headers(signer.headers_to_sign(request))
    if botocore_signed != m["signed"]:
        res.errors.append(
            f"botocore would sign headers {botocore_signed!r} but the request names {m['signed']!r} "
            "(botocore never signs user-agent, expect, transfer-encoding, ...)"
        )
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    res.canonical_request = canonical
    res.expected_signature = expected
    if expected != m["sig"]:
        res.errors.append(
            "SigV4 signature mismatch\n"
            f"  request:   {method} {raw_path}\n"
            f"  signature in request: {m['sig']}\n"
            f"  botocore computes:    {expected}\n"
            "  botocore canonical request (the Rust signer's must be identical):\n"
            + _indent(canonical)
            + "\n  botocore string to sign:\n"
            + _indent(string_to_sign)
        )
    res.ok = not res.errors
    return res


def _indent(text: str) -> str:
    return "\n".join("    | " + line for line in text.split("\n"))
