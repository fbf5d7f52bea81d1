//! The operator's rendered documents (`config.json` or `config.json.gz`, `credentials.json`):
//! parsing them, and the checks every config passes before it is served, whatever its source.

use std::fmt::Write as _;

use api::config::{
    AccountAuth, AccountSecret, CONFIG_FILE, CONFIG_GZ_FILE, CONFIG_VERSION, CREDENTIALS_FILE, Credentials,
    GatewayConfig, Rendered,
};
use serde::de::DeserializeOwned;

/// Most problems named in one message; the rest are counted.
const MAX_LISTED: usize = 10;

/// The config document as a source holds it: `config.json` (plain, as `render --out-dir` writes
/// it) or `config.json.gz` (gzip-compressed, as the operator writes its ConfigMap).
pub enum StoredConfig {
    /// Plain JSON.
    Json(Vec<u8>),
    /// gzip-compressed JSON.
    Gzip(Vec<u8>),
}

impl StoredConfig {
    /// The JSON, inflated if need be; the error names the file.
    pub fn into_json(self) -> Result<Vec<u8>, String> {
        match self {
            StoredConfig::Json(json) => Ok(json),
            StoredConfig::Gzip(gz) => {
                api::gzip::decompress(&gz).map_err(|e| format!("{CONFIG_GZ_FILE}: {e}"))
            }
        }
    }
}

/// Parses a stored config and the credentials; see [`parse`].
pub fn parse_stored(config: StoredConfig, credentials: &[u8]) -> Result<Rendered, String> {
    parse(&config.into_json()?, credentials)
}

/// Parses the two documents. Errors name the file and the JSON path; for `credentials.json`
/// they never quote a value, as values there are secrets.
pub fn parse(config: &[u8], credentials: &[u8]) -> Result<Rendered, String> {
    let config: GatewayConfig =
        from_json(config).map_err(|e| format!("{CONFIG_FILE}: {}", describe(&e, true)))?;
    let credentials: Credentials =
        from_json(credentials).map_err(|e| format!("{CREDENTIALS_FILE}: {}", describe(&e, false)))?;
    Ok(Rendered { config, credentials })
}

/// Checks what the proxy relies on: the document version, that every model names a defined
/// account, and that every `accessKey` / `apiKey` account has its secret. Lists every problem.
pub fn check(rendered: &Rendered) -> Result<(), String> {
    let Rendered { config, credentials } = rendered;
    let mut problems = Vec::new();
    if config.version != CONFIG_VERSION {
        problems.push(format!(
            "{CONFIG_FILE} has version {}; this proxy reads version {CONFIG_VERSION}",
            config.version
        ));
    }
    for model in config.models.values() {
        if !config.accounts.contains_key(&model.account) {
            problems.push(format!(
                "model `{}` names account `{}`, which {CONFIG_FILE} does not define",
                model.served_name, model.account
            ));
        }
    }
    for account in config.accounts.values() {
        let secret = credentials.accounts.get(&account.name);
        let missing = match (&account.auth, secret) {
            (AccountAuth::AccessKey, Some(AccountSecret::AccessKey { .. })) => None,
            (AccountAuth::ApiKey, Some(AccountSecret::ApiKey { .. })) => None,
            (AccountAuth::AccessKey, _) => Some("access key"),
            (AccountAuth::ApiKey, _) => Some("Bedrock API key"),
            (AccountAuth::PodIdentity | AccountAuth::AssumeRole { .. }, _) => None,
        };
        if let Some(what) = missing {
            problems.push(format!("account `{}` has no {what} in {CREDENTIALS_FILE}", account.name));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut message = problems.iter().take(MAX_LISTED).map(String::as_str).collect::<Vec<_>>().join("; ");
    if problems.len() > MAX_LISTED {
        let _ = write!(message, "; and {} more", problems.len() - MAX_LISTED);
    }
    Err(message)
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(bytes))
}

/// `what went wrong at `path` (line L, column C)`; the serde message only if `quote_values`
/// or it names a field rather than a value.
fn describe(e: &serde_path_to_error::Error<serde_json::Error>, quote_values: bool) -> String {
    let inner = e.inner();
    let message = inner.to_string();
    // serde_json appends " at line L column C"; keep the message part.
    let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
    let safe = quote_values || message.starts_with("missing field") || message.starts_with("unknown field");
    let what = match inner.classify() {
        _ if safe => message.to_owned(),
        serde_json::error::Category::Syntax => "invalid JSON".to_owned(),
        serde_json::error::Category::Eof => "the document ends early".to_owned(),
        serde_json::error::Category::Data => "a value of the wrong type or form".to_owned(),
        serde_json::error::Category::Io => "read error".to_owned(),
    };
    let path = e.path().to_string();
    if path == "." || path == "?" {
        format!("{what} (line {}, column {})", inner.line(), inner.column())
    } else {
        format!("{what} at `{path}` (line {}, column {})", inner.line(), inner.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"version":1,"accounts":{"demo":{"name":"demo","namespace":"ai","defaultRegion":"us-east-1",
        "auth":{"type":"accessKey"},"endpoints":{"runtime":"http://sim","control":"http://sim","sts":"http://sim","s3":"http://sim"}}},
        "models":{"demo/nova":{"servedName":"demo/nova","account":"demo","namespace":"ai","modelId":"amazon.nova-lite-v1:0",
        "region":"us-east-1","kind":"chat"}},"policies":[]}"#;
    const CREDENTIALS: &str = r#"{"accounts":{"demo":{"type":"accessKey","accessKeyId":"AKIDEXAMPLE",
        "secretAccessKey":"wJalrXUtnFEMI"}},"apiKeys":{}}"#;

    #[test]
    fn a_consistent_pair_parses_and_passes() {
        let rendered = parse(CONFIG.as_bytes(), CREDENTIALS.as_bytes()).unwrap();
        assert_eq!(rendered.config.models["demo/nova"].model_id, "amazon.nova-lite-v1:0");
        assert_eq!(check(&rendered), Ok(()));
    }

    #[test]
    fn a_gzip_config_parses_like_the_plain_one_and_bad_gzip_is_named() {
        let gz = StoredConfig::Gzip(api::gzip::compress(CONFIG.as_bytes()));
        let plain = parse(CONFIG.as_bytes(), CREDENTIALS.as_bytes()).unwrap();
        assert_eq!(parse_stored(gz, CREDENTIALS.as_bytes()).unwrap(), plain);
        let e =
            parse_stored(StoredConfig::Gzip(CONFIG.as_bytes().to_vec()), CREDENTIALS.as_bytes()).unwrap_err();
        assert_eq!(e, "config.json.gz: not valid gzip data: invalid gzip header");
    }

    #[test]
    fn bad_json_names_the_file_and_place() {
        let e = parse(b"{\"version\": 1,", CREDENTIALS.as_bytes()).unwrap_err();
        assert_eq!(e, "config.json: EOF while parsing a value (line 1, column 14)");
        let e = parse(CONFIG.replace("\"chat\"", "\"poem\"").as_bytes(), CREDENTIALS.as_bytes()).unwrap_err();
        assert!(e.starts_with("config.json: unknown variant `poem`, expected one of"), "{e}");
        assert!(e.contains("at `models.demo/nova.kind`"), "{e}");
    }

    #[test]
    fn credential_errors_never_quote_values() {
        let wrong_type = CREDENTIALS.replace("\"wJalrXUtnFEMI\"", "[\"wJalrXUtnFEMI\"]");
        let e = parse(CONFIG.as_bytes(), wrong_type.as_bytes()).unwrap_err();
        assert!(!e.contains("wJalrXUtnFEMI"), "{e}");
        assert!(
            e.starts_with("credentials.json: a value of the wrong type or form at `accounts.demo"),
            "{e}"
        );
        let missing = CREDENTIALS.replace(",\n        \"secretAccessKey\":\"wJalrXUtnFEMI\"", "");
        let e = parse(CONFIG.as_bytes(), missing.as_bytes()).unwrap_err();
        assert!(e.starts_with("credentials.json: missing field `secretAccessKey` at `accounts.demo`"), "{e}");
    }

    #[test]
    fn unknown_accounts_and_missing_secrets_are_all_listed() {
        let mut rendered = parse(CONFIG.as_bytes(), CREDENTIALS.as_bytes()).unwrap();
        rendered.config.version = 2;
        rendered.config.models.get_mut("demo/nova").unwrap().account = "gone".into();
        rendered.credentials.accounts.clear();
        assert_eq!(
            check(&rendered).unwrap_err(),
            "config.json has version 2; this proxy reads version 1; \
             model `demo/nova` names account `gone`, which config.json does not define; \
             account `demo` has no access key in credentials.json"
        );
    }
}
