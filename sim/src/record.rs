//! Recorded copies of the Bedrock API requests the simulator received.

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One Bedrock API request as it arrived on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Raw request target as received, including the query, still percent-encoded.
    pub path: String,
    /// Headers in arrival order (names lower-cased); non UTF-8 bytes are replaced.
    pub headers: Vec<(String, String)>,
    /// Request body; serialized as base64 in the `body_base64` field.
    #[serde(rename = "body_base64", serialize_with = "to_base64", deserialize_with = "from_base64")]
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn to_base64<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(body))
}

fn from_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    STANDARD.decode(text).map_err(serde::de::Error::custom)
}

/// Thread-safe log of recorded requests; the lock is only held to push or copy.
#[derive(Default)]
pub(crate) struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
}

impl Recorder {
    /// Appends a request.
    pub fn push(&self, request: RecordedRequest) {
        self.lock().push(request);
    }

    /// A copy of everything recorded so far, oldest first.
    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        // A panic while holding the lock cannot leave the Vec half-updated, so poison is harmless.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_body_as_base64() {
        let r = RecordedRequest {
            method: "POST".into(),
            path: "/model/a%3Ab/converse".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"method":"POST","path":"/model/a%3Ab/converse","headers":[["content-type","application/json"]],"body_base64":"e30="}"#
        );
        let back: RecordedRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.header("Content-Type"), Some("application/json"));
    }
}
