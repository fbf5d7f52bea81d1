//! SigV4 verification the way bedrock-runtime does it: the signature is recomputed from the
//! received request (raw path encoded a second time, no normalization, the signed headers, the
//! SHA-256 of the body) and compared with the one in the `Authorization` header. Temporary
//! credentials also need their exact session token in `X-Amz-Security-Token`, as AWS requires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::errors::AwsError;

/// Signing name of both Bedrock endpoints (bedrock-api.md §1.2).
const SERVICE: &str = "bedrock";
/// Largest accepted difference between `x-amz-date` and the server clock.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// RFC 3986 unreserved characters stay as they are; everything else is `%XX`.
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// Same as [`QUERY_SET`] but keeps the path separators.
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// The parts of a received request that the signature covers.
pub(crate) struct SignedRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// Raw request target (path and query) exactly as received.
    pub target: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Authority from the request URI (HTTP/2 has no `Host` header).
    pub authority: Option<&'a str>,
    /// Request body.
    pub body: &'a [u8],
}

/// What the simulator knows about an access key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KnownKey {
    /// The secret access key.
    pub secret: String,
    /// The session token of temporary credentials; long-term keys have none.
    pub session_token: Option<String>,
}

/// The access key id of a SigV4 `Authorization` header, if it names one.
pub(crate) fn access_key_id(authorization: &str) -> Option<&str> {
    parse_authorization(authorization).ok().map(|a| a.access_key_id)
}

/// Parsed `Authorization: AWS4-HMAC-SHA256 ...` header.
struct AuthHeader<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signed_headers_raw: &'a str,
    signature: &'a str,
}

/// Verifies a SigV4 `Authorization` header value against the request, with `now` as the clock;
/// `lookup` finds what is known about an access key id.
pub(crate) fn verify(
    req: &SignedRequest<'_>,
    authorization: &str,
    lookup: impl Fn(&str) -> Option<KnownKey>,
    now: SystemTime,
) -> Result<(), AwsError> {
    let auth = parse_authorization(authorization)?;
    let key = lookup(auth.access_key_id).ok_or_else(unrecognized)?;
    let sent_token = req.headers.get("x-amz-security-token").map(|v| v.as_bytes());
    let token_matches = match (key.session_token.as_deref(), sent_token) {
        (None, None) => true,
        (Some(expected), Some(sent)) => constant_time_eq(expected.as_bytes(), sent),
        // Temporary keys without their token, or long-term keys with one.
        _ => false,
    };
    if !token_matches {
        return Err(unrecognized());
    }
    let secret = key.secret.as_str();
    if auth.terminator != "aws4_request" {
        return Err(invalid(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            auth.terminator
        )));
    }
    if auth.service != SERVICE {
        return Err(invalid(format!("Credential should be scoped to correct service: '{SERVICE}'. ")));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."));
    }
    if req.headers.contains_key("x-amz-security-token")
        && !auth.signed_headers.contains(&"x-amz-security-token")
    {
        return Err(invalid("'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization."));
    }
    let amz_date = req.headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or_else(|| {
        incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    })?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| incomplete(format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'.")))?;
    if &amz_date[..8] != auth.date {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
             '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    check_clock(amz_date, signed_at, now)?;

    let canonical = canonical_request(req, &auth);
    let scope = format!("{}/{}/{}/{}", auth.date, auth.region, auth.service, auth.terminator);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = generate_signing_key(secret, signed_at, auth.region, auth.service);
    let expected = calculate_signature(key, string_to_sign.as_bytes());
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(invalid(MISMATCH))
    }
}

fn unrecognized() -> AwsError {
    AwsError::forbidden(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::forbidden("InvalidSignatureException", message)
}

fn incomplete(message: impl Into<String>) -> AwsError {
    AwsError::forbidden("IncompleteSignatureException", message)
}

fn parse_authorization(value: &str) -> Result<AuthHeader<'_>, AwsError> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256").unwrap_or("");
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        let mut message = String::new();
        for (name, found) in [
            ("Credential", credential.is_some()),
            ("Signature", signature.is_some()),
            ("SignedHeaders", signed.is_some()),
        ] {
            if !found {
                message.push_str(&format!("Authorization header requires '{name}' parameter. "));
            }
        }
        message.push_str(&format!("Authorization={value}"));
        return Err(incomplete(message));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let &[access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(incomplete(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            parts.get(2).copied().unwrap_or("")
        )));
    };
    Ok(AuthHeader {
        access_key_id,
        date,
        region,
        service,
        terminator,
        signed_headers: signed.split(';').collect(),
        signed_headers_raw: signed,
        signature,
    })
}

/// Parses `YYYYMMDDTHHMMSSZ` into a point in time.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let s = value.get(range)?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(num(0..4)?).ok()?, month, num(6..8)? as u8).ok()?;
    let clock = time::Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8).ok()?;
    let secs = time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Formats a point in time as `YYYYMMDDTHHMMSSZ`.
fn format_amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let dt = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    dt.format(&format).unwrap_or_default()
}

/// Rejects signatures more than five minutes away from `now`, with AWS's wording.
fn check_clock(amz_date: &str, signed_at: SystemTime, now: SystemTime) -> Result<(), AwsError> {
    if signed_at + MAX_SKEW < now {
        return Err(invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            format_amz_date(now - MAX_SKEW),
            format_amz_date(now)
        )));
    }
    if signed_at > now + MAX_SKEW {
        return Err(invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
            format_amz_date(now + MAX_SKEW),
            format_amz_date(now)
        )));
    }
    Ok(())
}

fn canonical_request(req: &SignedRequest<'_>, auth: &AuthHeader<'_>) -> String {
    let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
    let path = if path.is_empty() { "/" } else { path };
    let mut out = String::with_capacity(256 + req.target.len());
    out.push_str(req.method);
    out.push('\n');
    // Non-S3 rule: the already-encoded path is encoded once more, without normalization.
    out.extend(utf8_percent_encode(path, PATH_SET));
    out.push('\n');
    out.push_str(&canonical_query(query));
    out.push('\n');
    for name in &auth.signed_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(&canonical_header_value(req, name));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(auth.signed_headers_raw);
    out.push('\n');
    out.push_str(&hex::encode(Sha256::digest(req.body)));
    out
}

/// Values of one header joined by `,`, each trimmed with inner whitespace runs collapsed.
fn canonical_header_value(req: &SignedRequest<'_>, name: &str) -> String {
    let values: Vec<String> = req
        .headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if values.is_empty() && name == "host" {
        return req.authority.unwrap_or_default().to_owned();
    }
    values.join(",")
}

/// Query parameters decoded, re-encoded with the strict set and sorted by name then value.
fn canonical_query(query: &str) -> String {
    let encode = |s: &str| {
        let decoded: Vec<u8> = percent_decode_str(s).collect();
        percent_encoding::percent_encode(&decoded, QUERY_SET).to_string()
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(k), encode(v))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const BODY: &[u8] = br#"{"messages":[{"role":"user","content":[{"text":"Hello there"}]}]}"#;
    const PATH: &str = "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse";
    const ARN_PATH: &str = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/converse-stream";
    // Produced by botocore 1.43 SigV4Auth(service "bedrock", region "us-east-1") at 2025-06-01T12:00:00Z
    // for a POST to http://127.0.0.1:9090 with the body above and the test key pair.
    const BOTOCORE_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIASIMULATOR0000001/20250601/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=f10b6e7d70dda917a4fc0cb41472b08a47a380a30ea3ea88a2b8927c5be42725";
    // Same, for the ARN path with session token "session-token-123".
    const BOTOCORE_AUTH_TOKEN: &str = "AWS4-HMAC-SHA256 Credential=AKIASIMULATOR0000001/20250601/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=9df3bbddc90afec00d192d5b27ee13e682c7de59a9bc93985e2e23c37e3599cf";

    const TOKEN: &str = "session-token-123";

    /// The default long-term key, and the same key id with [`TOKEN`] for the session-token vector.
    fn lookup(id: &str, token: Option<&str>) -> Option<KnownKey> {
        (id == crate::TEST_ACCESS_KEY_ID).then(|| KnownKey {
            secret: crate::TEST_SECRET_ACCESS_KEY.to_owned(),
            session_token: token.map(str::to_owned),
        })
    }

    fn signed_at() -> SystemTime {
        parse_amz_date("20250601T120000Z").unwrap()
    }

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("host", HeaderValue::from_static("127.0.0.1:9090"));
        h.insert("x-amz-date", HeaderValue::from_static("20250601T120000Z"));
        if let Some(t) = token {
            h.insert("x-amz-security-token", HeaderValue::from_str(t).unwrap());
        }
        h
    }

    fn check(
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
        auth: &str,
        now: SystemTime,
    ) -> Result<(), AwsError> {
        let req = SignedRequest { method: "POST", target, headers, authority: None, body };
        verify(&req, auth, |id| lookup(id, None), now)
    }

    #[test]
    fn accepts_botocore_signature() {
        assert_eq!(check(PATH, &headers(None), BODY, BOTOCORE_AUTH, signed_at()), Ok(()));
    }

    fn check_temporary(headers: &HeaderMap, auth: &str) -> Result<(), AwsError> {
        let req = SignedRequest { method: "POST", target: ARN_PATH, headers, authority: None, body: BODY };
        verify(&req, auth, |id| lookup(id, Some(TOKEN)), signed_at())
    }

    #[test]
    fn accepts_botocore_signature_for_arn_with_session_token() {
        assert_eq!(check_temporary(&headers(Some(TOKEN)), BOTOCORE_AUTH_TOKEN), Ok(()));
    }

    #[test]
    fn temporary_keys_need_their_own_session_token() {
        let unrecognized = |r: Result<(), AwsError>| {
            let err = r.unwrap_err();
            assert_eq!((err.status.as_u16(), err.code), (403, "UnrecognizedClientException"));
        };
        // Another token (even signed correctly by the client) or none at all.
        unrecognized(check_temporary(&headers(Some("session-token-124")), BOTOCORE_AUTH_TOKEN));
        unrecognized(check_temporary(&headers(None), BOTOCORE_AUTH));
        // Long-term keys with a token.
        unrecognized(check(ARN_PATH, &headers(Some(TOKEN)), BODY, BOTOCORE_AUTH_TOKEN, signed_at()));
    }

    #[test]
    fn host_falls_back_to_authority_for_http2() {
        let mut h = headers(None);
        h.remove("host");
        let req = SignedRequest {
            method: "POST",
            target: PATH,
            headers: &h,
            authority: Some("127.0.0.1:9090"),
            body: BODY,
        };
        assert_eq!(verify(&req, BOTOCORE_AUTH, |id| lookup(id, None), signed_at()), Ok(()));
    }

    #[test]
    fn single_encoded_path_does_not_match() {
        // A client that signed the path without double encoding sends the same signature for
        // a path the server re-encodes differently; changing the path must break the check.
        let err = check(
            "/model/us.anthropic.claude-3-7-sonnet-20250219-v1:0/converse",
            &headers(None),
            BODY,
            BOTOCORE_AUTH,
            signed_at(),
        )
        .unwrap_err();
        assert_eq!(err.code, "InvalidSignatureException");
        assert_eq!(err.message, MISMATCH);
    }

    #[test]
    fn tampered_body_and_wrong_secret_fail() {
        let err = check(PATH, &headers(None), b"{}", BOTOCORE_AUTH, signed_at()).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (403, "InvalidSignatureException"));
        let req = SignedRequest {
            method: "POST",
            target: PATH,
            headers: &headers(None),
            authority: None,
            body: BODY,
        };
        let wrong = |_: &str| Some(KnownKey { secret: "wrong".to_owned(), session_token: None });
        let err = verify(&req, BOTOCORE_AUTH, wrong, signed_at()).unwrap_err();
        assert_eq!(err.code, "InvalidSignatureException");
    }

    #[test]
    fn unknown_access_key_is_unrecognized() {
        let auth = BOTOCORE_AUTH.replace("AKIASIMULATOR0000001", "AKIAUNKNOWN000000000");
        let err = check(PATH, &headers(None), BODY, &auth, signed_at()).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (403, "UnrecognizedClientException"));
        assert_eq!(err.message, "The security token included in the request is invalid.");
    }

    #[test]
    fn unsigned_session_token_is_rejected() {
        let req = SignedRequest {
            method: "POST",
            target: PATH,
            headers: &headers(Some(TOKEN)),
            authority: None,
            body: BODY,
        };
        let err = verify(&req, BOTOCORE_AUTH, |id| lookup(id, Some(TOKEN)), signed_at()).unwrap_err();
        assert_eq!(err.code, "InvalidSignatureException");
        assert!(err.message.contains("X-Amz-Security-Token"), "{}", err.message);
    }

    #[test]
    fn clock_skew_beyond_five_minutes_is_rejected() {
        let late = signed_at() + Duration::from_secs(301);
        let err = check(PATH, &headers(None), BODY, BOTOCORE_AUTH, late).unwrap_err();
        assert_eq!(err.code, "InvalidSignatureException");
        assert_eq!(
            err.message,
            "Signature expired: 20250601T120000Z is now earlier than 20250601T120001Z (20250601T120501Z - 5 min.)"
        );
        let early = signed_at() - Duration::from_secs(301);
        let err = check(PATH, &headers(None), BODY, BOTOCORE_AUTH, early).unwrap_err();
        assert!(err.message.starts_with("Signature not yet current: 20250601T120000Z"), "{}", err.message);
        let within = signed_at() + Duration::from_secs(299);
        assert_eq!(check(PATH, &headers(None), BODY, BOTOCORE_AUTH, within), Ok(()));
    }

    #[test]
    fn malformed_headers_are_incomplete() {
        let err =
            check(PATH, &headers(None), BODY, "AWS4-HMAC-SHA256 Signature=abc", signed_at()).unwrap_err();
        assert_eq!(err.code, "IncompleteSignatureException");
        assert!(err.message.contains("'Credential'") && err.message.contains("'SignedHeaders'"));
        let mut h = headers(None);
        h.remove("x-amz-date");
        let err = check(PATH, &h, BODY, BOTOCORE_AUTH, signed_at()).unwrap_err();
        assert_eq!(err.code, "IncompleteSignatureException");
        let bad_scope = BOTOCORE_AUTH.replace("/bedrock/", "/s3/");
        let err = check(PATH, &headers(None), BODY, &bad_scope, signed_at()).unwrap_err();
        assert_eq!(err.message, "Credential should be scoped to correct service: 'bedrock'. ");
    }

    #[test]
    fn canonical_query_is_sorted_and_reencoded() {
        assert_eq!(canonical_query("b=2&a=x%2fy&a=1&c"), "a=1&a=x%2Fy&b=2&c=");
        assert_eq!(canonical_query(""), "");
    }

    #[test]
    fn amz_date_round_trips() {
        assert_eq!(format_amz_date(signed_at()), "20250601T120000Z");
        assert!(parse_amz_date("2025-06-01T12:00:00Z").is_none());
        assert!(parse_amz_date("20251301T120000Z").is_none());
    }
}
