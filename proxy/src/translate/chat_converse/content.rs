//! Content parts: images (`image_url` data URLs, format read from the bytes), documents (`file`
//! parts with a name Bedrock accepts, unique within the request) and `cache_control` ->
//! `cachePoint`, for the models that cache (dropped and counted for the others).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::family::Capabilities;
use super::tools::cache_point;
use crate::bedrock::converse::{BytesSource, CachePoint, DocumentBlock, ImageBlock};
use crate::error::ApiError;
use crate::openai::chat::CacheTtl;

/// Cache points of one request: which are sent, how many were dropped.
#[derive(Debug)]
pub(super) struct CachePoints {
    caps: Capabilities,
    /// Cache points left out because the model does not cache there.
    pub dropped: u32,
}

impl CachePoints {
    /// For a model with `caps`.
    pub fn new(caps: Capabilities) -> Self {
        CachePoints { caps, dropped: 0 }
    }

    fn point(&mut self, allowed: bool, ttl: CacheTtl) -> Option<CachePoint> {
        if allowed {
            // A TTL the model lacks falls back to the default rather than failing the call.
            Some(cache_point(ttl == CacheTtl::OneHour && self.caps.cache_1h))
        } else {
            self.dropped += 1;
            None
        }
    }

    /// A cache point in `system` or in a message.
    pub fn message_point(&mut self, ttl: CacheTtl) -> Option<CachePoint> {
        self.point(self.caps.caching, ttl)
    }

    /// A cache point among the tools.
    pub fn tool_point(&mut self, ttl: CacheTtl) -> Option<CachePoint> {
        self.point(self.caps.tool_caching, ttl)
    }
}

/// `data:<mime>[;params];base64,<data>` -> the base64 text; `None` when `url` is no base64 data URL.
fn data_url_base64(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    meta.ends_with(";base64").then_some(data)
}

/// Checks `b64` is base64 Bedrock can decode and returns its first bytes, for sniffing.
fn head_bytes(b64: &str) -> Option<Vec<u8>> {
    if b64.is_empty() || !b64.len().is_multiple_of(4) {
        return None;
    }
    let body = b64.trim_end_matches('=');
    if b64.len() - body.len() > 2
        || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return None;
    }
    // 16 characters decode to the 12 bytes the signatures below need.
    let head = &b64[..b64.len().min(16)];
    STANDARD.decode(head).ok()
}

/// The Bedrock image format of `bytes`, from its magic number.
fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("webp")
    } else {
        None
    }
}

/// Code of the error for an http(s) image URL that reached the translator unfetched (batch
/// lines, whose images the gateway does not download).
pub const REMOTE_IMAGE: &str = "image_url_not_fetched";

/// The `image` block of an `image_url` part at `path`.
pub(super) fn image<'a>(url: &'a str, path: &str) -> Result<ImageBlock<'a>, ApiError> {
    let bad = |detail: &str| {
        ApiError::invalid_request(format!("Invalid value for `{path}`: {detail}."))
            .with_param(path.to_owned())
    };
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(ApiError::invalid_request(format!(
            "`{path}` is an http(s) URL the gateway did not fetch; send the image as a `data:` URL \
             (base64)."
        ))
        .with_param(path.to_owned())
        .with_code(REMOTE_IMAGE));
    }
    let b64 = data_url_base64(url).ok_or_else(|| bad("expected a base64 `data:` URL"))?;
    let head = head_bytes(b64).ok_or_else(|| bad("the data URL does not hold valid base64"))?;
    let format = sniff_image(&head).ok_or_else(|| bad("the image is not PNG, JPEG, GIF or WebP"))?;
    Ok(ImageBlock { format, source: BytesSource { bytes: b64 } })
}

/// Document formats by file extension.
const DOCUMENT_EXTENSIONS: &[(&str, &str)] = &[
    ("pdf", "pdf"),
    ("csv", "csv"),
    ("doc", "doc"),
    ("docx", "docx"),
    ("xls", "xls"),
    ("xlsx", "xlsx"),
    ("html", "html"),
    ("htm", "html"),
    ("txt", "txt"),
    ("md", "md"),
    ("markdown", "md"),
];

/// Document formats by MIME type.
const DOCUMENT_TYPES: &[(&str, &str)] = &[
    ("application/pdf", "pdf"),
    ("text/csv", "csv"),
    ("application/msword", "doc"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
    ("application/vnd.ms-excel", "xls"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    ("text/html", "html"),
    ("text/plain", "txt"),
    ("text/markdown", "md"),
];

/// Builds `document` blocks, keeping their names unique within the request.
#[derive(Debug, Default)]
pub(super) struct Documents {
    names: Vec<String>,
}

impl Documents {
    /// The `document` block of a `file` part at `path`.
    pub fn document<'a>(
        &mut self,
        data: &'a str,
        filename: Option<&str>,
        path: &str,
    ) -> Result<DocumentBlock<'a>, ApiError> {
        let bad = |detail: &str| {
            ApiError::invalid_request(format!("Invalid value for `{path}`: {detail}."))
                .with_param(path.to_owned())
        };
        let (mime, b64) = match data.strip_prefix("data:").and_then(|r| r.split_once(',')) {
            Some((meta, b64)) if meta.ends_with(";base64") => {
                (Some(meta.split(';').next().unwrap_or("")), b64)
            }
            Some(_) => return Err(bad("expected a base64 `data:` URL")),
            None => (None, data),
        };
        head_bytes(b64).ok_or_else(|| bad("`file_data` does not hold valid base64"))?;
        let extension = filename.and_then(|f| f.rsplit_once('.')).map(|(_, ext)| ext.to_ascii_lowercase());
        let format = extension
            .as_deref()
            .and_then(|ext| DOCUMENT_EXTENSIONS.iter().find(|(e, _)| *e == ext))
            .or_else(|| mime.and_then(|m| DOCUMENT_TYPES.iter().find(|(t, _)| *t == m)))
            .map(|(_, format)| *format)
            .ok_or_else(|| {
                bad("the document type is not one Bedrock reads (pdf, csv, doc, docx, xls, xlsx, html, txt, md); \
                     name the file with its extension")
            })?;
        let stem = filename.map(|f| f.rsplit_once('.').map_or(f, |(stem, _)| stem)).unwrap_or("");
        let name = self.unique(&document_name(stem));
        Ok(DocumentBlock { format, name, source: BytesSource { bytes: b64 } })
    }

    fn unique(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{base} ({k})");
            k += 1;
        }
        self.names.push(name.clone());
        name
    }
}

/// A name satisfying Bedrock's rule: letters, digits, single spaces, hyphens, parentheses and
/// square brackets, at most 200 characters (with room for a ` (n)` suffix).
fn document_name(stem: &str) -> String {
    let mut out = String::with_capacity(stem.len().min(190));
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') { c } else { ' ' };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.len() >= 190 {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    if out.is_empty() { "document".to_owned() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

    #[test]
    fn image_format_comes_from_the_bytes() {
        let url = format!("data:image/jpeg;base64,{PNG}");
        let block = image(&url, "p").unwrap();
        assert_eq!((block.format, block.source.bytes), ("png", PNG));
        assert!(image("data:image/png;base64,AAAA", "p").unwrap_err().message.contains("not PNG"));
        assert!(image("data:image/png;base64,!!!!", "p").unwrap_err().message.contains("valid base64"));
        assert!(image("https://example.com/a.png", "p").unwrap_err().message.contains("did not fetch"));
    }

    #[test]
    fn document_names_are_valid_and_unique() {
        let mut docs = Documents::default();
        let a = docs
            .document("data:application/pdf;base64,JVBERi0x", Some("Q3  report_final.v2.pdf"), "p")
            .unwrap();
        assert_eq!((a.format, a.name.as_str()), ("pdf", "Q3 report final v2"));
        let b = docs.document("JVBERi0x", Some("Q3 report-final.v2.pdf"), "p").unwrap();
        assert_eq!(b.name, "Q3 report-final v2");
        let c = docs.document("JVBERi0x", Some("Q3 report_final.v2.pdf"), "p").unwrap();
        assert_eq!(c.name, "Q3 report final v2 (2)");
        let d = docs.document("data:text/csv;base64,YSxi", None, "p").unwrap();
        assert_eq!((d.format, d.name.as_str()), ("csv", "document"));
        assert!(docs.document("JVBERi0x", Some("x.exe"), "p").is_err());
    }
}
