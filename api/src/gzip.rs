//! The stored form of the rendered config: gzip-compressed JSON, as the operator writes it into
//! ConfigMap `<release>-config` (`binaryData` key [`CONFIG_GZ_FILE`]) and the proxy reads it back.
//!
//! A ConfigMap holds at most 1 MiB and the plain JSON reaches that at about 5,000 models; the
//! repetitive JSON compresses 10 to 20 times. The output is deterministic (no file name, mtime 0),
//! so the same config always yields the same bytes.
//!
//! [`CONFIG_GZ_FILE`]: crate::config::CONFIG_GZ_FILE

use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// Largest document [`decompress`] inflates: far above any real config (10,000 models are about
/// 4 MiB), low enough that a corrupt or hostile file cannot exhaust memory.
pub const MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;

/// gzip of `json` at the default level (measured in bench/operator-render.md: the best level
/// gains little size for much more time).
pub fn compress(json: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 8), Compression::default());
    // Writing into a Vec cannot fail.
    encoder.write_all(json).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// Inflates `gz`; the error says what is wrong with it (not gzip, truncated, too large).
pub fn decompress(gz: &[u8]) -> Result<Vec<u8>, String> {
    inflate(gz, MAX_DECOMPRESSED)
}

/// Inflates `gz`, refusing output beyond `limit` bytes without holding more than one byte over.
fn inflate(gz: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut json = Vec::with_capacity(gz.len().saturating_mul(12));
    GzDecoder::new(gz)
        .take(limit + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("not valid gzip data: {e}"))?;
    if json.len() as u64 > limit {
        return Err(format!("inflates to more than {limit} bytes"));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_deterministic() {
        let json = br#"{"version":1,"models":{"a/b":{"modelId":"amazon.nova-lite-v1:0"}}}"#.repeat(50);
        let gz = compress(&json);
        assert_eq!(&gz[..2], [0x1f, 0x8b], "gzip magic");
        assert!(gz.len() * 10 < json.len(), "{} of {}", gz.len(), json.len());
        assert_eq!(compress(&json), gz, "same input, same bytes");
        assert_eq!(decompress(&gz).unwrap(), json);
    }

    #[test]
    fn bad_input_is_named() {
        let e = decompress(b"{\"version\":1}").unwrap_err();
        assert!(e.starts_with("not valid gzip data: "), "{e}");
        let gz = compress(&[b'x'; 4096]);
        let e = decompress(&gz[..gz.len() / 2]).unwrap_err();
        assert!(e.starts_with("not valid gzip data: "), "{e}");
    }

    #[test]
    fn output_beyond_the_limit_is_refused() {
        let gz = compress(&[0u8; 1001]);
        assert_eq!(inflate(&gz, 1000).unwrap_err(), "inflates to more than 1000 bytes");
        assert_eq!(inflate(&gz, 1001).unwrap().len(), 1001);
    }
}
