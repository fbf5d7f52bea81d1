//! Golden-file comparison shared by the translator golden tests: `UPDATE_GOLDEN=1` rewrites the
//! expected files from the current output.

#![allow(dead_code)]

use std::fs;
use std::path::Path;

use proxy::error::ApiError;
use serde::Serialize;
use serde_json::{Value, json};

/// Whether this run rewrites the expected files.
pub fn update() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

/// `{"status", "body"}` of an error, as `error.json` files hold it.
pub fn error_value(err: &ApiError) -> Value {
    let body: Value = serde_json::from_slice(&err.to_json()).unwrap();
    json!({"status": err.status.as_u16(), "body": body})
}

/// Compares what `actual` puts on the wire (so an `f32` reads as its shortest decimal form)
/// with the expected file, as JSON values; updates write it in field order.
pub fn check_json(dir: &Path, name: &str, actual: &impl Serialize, update: bool) -> Result<(), String> {
    let path = dir.join(name);
    if update {
        fs::write(&path, format!("{}\n", serde_json::to_string_pretty(actual).unwrap())).unwrap();
        return Ok(());
    }
    let actual: Value = serde_json::from_slice(&serde_json::to_vec(actual).unwrap()).unwrap();
    let raw = fs::read(&path).map_err(|e| format!("{name}: {e} (run with UPDATE_GOLDEN=1 to create it)"))?;
    let expected: Value = serde_json::from_slice(&raw).map_err(|e| format!("{name}: {e}"))?;
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{name} differs\n--- expected\n{}\n--- actual\n{}",
            serde_json::to_string_pretty(&expected).unwrap(),
            serde_json::to_string_pretty(&actual).unwrap()
        ))
    }
}

/// Compares raw bytes with the expected file.
pub fn check_bytes(dir: &Path, name: &str, actual: &[u8], update: bool) -> Result<(), String> {
    let path = dir.join(name);
    if update {
        fs::write(&path, actual).unwrap();
        return Ok(());
    }
    let expected =
        fs::read(&path).map_err(|e| format!("{name}: {e} (run with UPDATE_GOLDEN=1 to create it)"))?;
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{name} differs\n--- expected\n{}\n--- actual\n{}",
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        ))
    }
}
