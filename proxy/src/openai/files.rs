//! `/v1/files` wire types: the `file` object, lists, deletions, and the gateway's file ids.
//!
//! A file id is `file-` + the unpadded lower-case base32 (RFC 4648) of `<account>/<token>`:
//! URL-safe and opaque to clients, yet it tells the gateway, with no database, which account's
//! bucket holds the file (`<prefix>files/<token>`). Tokens start with the inverted upload time
//! in milliseconds, so S3's key order lists the newest file first.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::parse::invalid;
use crate::error::ApiError;

/// Prefix of every file id.
const FILE_PREFIX: &str = "file-";
/// RFC 4648 base32 alphabet, lower case (URL-safe, case-insensitive friendly).
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// `purpose` of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Batch input uploaded by a caller.
    Batch,
    /// Results of a batch, written by the gateway.
    BatchOutput,
}

impl Purpose {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Batch => "batch",
            Purpose::BatchOutput => "batch_output",
        }
    }

    /// The purpose named `name`, if the gateway keeps such files.
    pub fn parse(name: &str) -> Option<Purpose> {
        match name {
            "batch" => Some(Purpose::Batch),
            "batch_output" => Some(Purpose::BatchOutput),
            _ => None,
        }
    }
}

/// The `file` object (`OpenAIFile`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileObject {
    /// `file-...`.
    pub id: String,
    /// Always `file`.
    pub object: &'static str,
    /// Size in bytes.
    pub bytes: u64,
    /// Unix seconds of the upload.
    pub created_at: u64,
    /// The name the caller uploaded it under.
    pub filename: String,
    /// What the file is for.
    pub purpose: Purpose,
    /// Always `processed`: a stored file has passed validation (deprecated field, required).
    pub status: &'static str,
    /// Unix seconds when the file expires, for a file uploaded with an expiration policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl FileObject {
    /// A stored, validated file that does not expire.
    pub fn new(id: String, bytes: u64, created_at: u64, filename: String, purpose: Purpose) -> Self {
        FileObject {
            id,
            object: "file",
            bytes,
            created_at,
            filename,
            purpose,
            status: "processed",
            expires_at: None,
        }
    }
}

/// Allowed `seconds` of an expiration policy: one hour to 30 days.
pub const EXPIRY_SECONDS: RangeInclusive<u64> = 3600..=2_592_000;

/// An expiration policy, `{"anchor": "created_at", "seconds": N}`: a file's `expires_after`
/// (`FileExpirationAfter`) or a batch's `output_expires_after` (`BatchFileExpirationAfter`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiresAfter {
    /// What the time counts from; only `created_at` (the file's creation).
    pub anchor: String,
    /// How long after the anchor the file expires.
    pub seconds: i64,
}

impl ExpiresAfter {
    /// The seconds after creation the file expires; a 400 naming `<param>.anchor` or
    /// `<param>.seconds` for anything else.
    pub fn checked_seconds(&self, param: &str) -> Result<u64, ApiError> {
        if self.anchor != "created_at" {
            return Err(invalid(
                format!("{param}.anchor"),
                format!("`{}`; the supported anchor is `created_at`", self.anchor),
            ));
        }
        u64::try_from(self.seconds).ok().filter(|s| EXPIRY_SECONDS.contains(s)).ok_or_else(|| {
            invalid(
                format!("{param}.seconds"),
                format!(
                    "{}; use {} (1 hour) to {} (30 days)",
                    self.seconds,
                    EXPIRY_SECONDS.start(),
                    EXPIRY_SECONDS.end()
                ),
            )
        })
    }
}

/// A page of files (`ListFilesResponse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileList {
    /// Always `list`.
    pub object: &'static str,
    /// Newest first.
    pub data: Vec<FileObject>,
    /// Id of the first file of the page (empty for an empty page).
    pub first_id: String,
    /// Id of the last file of the page: the `after` of the next page.
    pub last_id: String,
    /// Whether another page follows.
    pub has_more: bool,
}

impl FileList {
    /// A page of `data`.
    pub fn new(data: Vec<FileObject>, has_more: bool) -> Self {
        let first_id = data.first().map(|f| f.id.clone()).unwrap_or_default();
        let last_id = data.last().map(|f| f.id.clone()).unwrap_or_default();
        FileList { object: "list", data, first_id, last_id, has_more }
    }
}

/// The answer to a deletion (`DeleteFileResponse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeletedFile {
    /// The deleted file's id.
    pub id: String,
    /// Always `file`.
    pub object: &'static str,
    /// Always true.
    pub deleted: bool,
}

/// A decoded file id: which account holds it and its token there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileId {
    /// Account name.
    pub account: String,
    /// Key of the object under `<prefix>files/`.
    pub token: String,
}

impl FileId {
    /// `file-` + base32 of `<account>/<token>`.
    pub fn encode(&self) -> String {
        let mut id = String::from(FILE_PREFIX);
        base32_into(format!("{}/{}", self.account, self.token).as_bytes(), &mut id);
        id
    }

    /// Decodes an id; a 404 naming it for anything the gateway did not issue.
    pub fn parse(id: &str) -> Result<FileId, ApiError> {
        let unknown = || {
            ApiError::not_found(format!("No such File object: {id}"))
                .with_param("file_id")
                .with_code("file_not_found")
        };
        let text = id.strip_prefix(FILE_PREFIX).and_then(base32_decode).ok_or_else(unknown)?;
        let text = String::from_utf8(text).map_err(|_| unknown())?;
        let (account, token) = text.split_once('/').ok_or_else(unknown)?;
        let token_ok = !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if account.is_empty() || !token_ok {
            return Err(unknown());
        }
        Ok(FileId { account: account.to_owned(), token: token.to_owned() })
    }
}

/// Appends the unpadded lower-case base32 of `bytes` to `out`.
pub fn base32_into(bytes: &[u8], out: &mut String) {
    let mut buffer = 0u16;
    let mut bits = 0u8;
    for &b in bytes {
        buffer = (buffer << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 31)]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[usize::from((buffer << (5 - bits)) & 31)]));
    }
}

/// Decodes unpadded base32 (either case); `None` for anything else, including non-zero
/// trailing bits (so every byte string has exactly one encoding).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer = 0u16;
    let mut bits = 0u8;
    for c in text.bytes() {
        let value = match c.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u16::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    (bits < 5 && buffer == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_policies_are_checked_naming_the_field() {
        let policy = |anchor: &str, seconds| ExpiresAfter { anchor: anchor.into(), seconds };
        assert_eq!(policy("created_at", 3600).checked_seconds("expires_after").unwrap(), 3600);
        assert_eq!(policy("created_at", 2_592_000).checked_seconds("expires_after").unwrap(), 2_592_000);
        for (p, param, message) in [
            (
                policy("created_at", 3599),
                "expires_after.seconds",
                "Invalid value for `expires_after.seconds`: 3599; use 3600 (1 hour) to 2592000 (30 days).",
            ),
            (
                policy("created_at", -1),
                "expires_after.seconds",
                "Invalid value for `expires_after.seconds`: -1; use 3600 (1 hour) to 2592000 (30 days).",
            ),
            (
                policy("last_active_at", 3600),
                "expires_after.anchor",
                "Invalid value for `expires_after.anchor`: `last_active_at`; the supported anchor is `created_at`.",
            ),
        ] {
            let e = p.checked_seconds("expires_after").unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.param.as_deref(), e.message.as_str()),
                (400, Some(param), message)
            );
        }
    }

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            let mut out = String::new();
            base32_into(plain.as_bytes(), &mut out);
            assert_eq!(out, encoded);
            assert_eq!(base32_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("MZXW6"), Some(b"foo".to_vec()));
        assert_eq!(base32_decode("mzxw7"), None, "non-zero trailing bits");
        assert_eq!(base32_decode("mz=="), None);
    }

    #[test]
    fn file_ids_round_trip_and_are_url_safe() {
        let id = FileId { account: "demo".into(), token: "ffffe6c1-abc123".into() };
        let text = id.encode();
        assert!(text.starts_with("file-"));
        assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{text}");
        assert_eq!(FileId::parse(&text).unwrap(), id);
    }

    #[test]
    fn foreign_ids_are_404s() {
        for bad in ["file-abc!", "batch_x", "file-", "file-mzxw6"] {
            let e = FileId::parse(bad).unwrap_err();
            assert_eq!(e.status.as_u16(), 404, "{bad}");
            assert_eq!(e.message, format!("No such File object: {bad}"));
        }
        let mut sneaky = String::from("file-");
        base32_into(b"demo/../../etc", &mut sneaky);
        assert!(FileId::parse(&sneaky).is_err(), "tokens cannot climb out of files/");
    }
}
