//! Loading manifests: multi-document YAML (or JSON) files into typed BedrockAccount, BedrockModel,
//! AccessPolicy and Secret objects, the input of [`crate::render::render`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::Path;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::crd::{API_VERSION, AccessPolicy, BedrockAccount, BedrockModel, GROUP};
use crate::problems::{Problem, Problems};

/// Namespace given to objects whose manifest names none, as `kubectl apply` would.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The objects found in a set of manifests. Every object has `metadata.namespace` set.
/// `Debug` lists Secrets by name and keys only, never their values.
#[derive(Clone, Default)]
pub struct Manifests {
    /// BedrockAccount objects, in file order.
    pub accounts: Vec<BedrockAccount>,
    /// BedrockModel objects, in file order.
    pub models: Vec<BedrockModel>,
    /// AccessPolicy objects, in file order.
    pub policies: Vec<AccessPolicy>,
    /// core/v1 Secrets, in file order. `stringData` is merged into `data` (and cleared), as the
    /// apiserver does on write, so readers only look at `data`.
    pub secrets: Vec<Secret>,
    /// Objects of other kinds, as `kind namespace/name`, for callers to log.
    pub skipped: Vec<String>,
}

impl fmt::Debug for Manifests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets: Vec<String> = self
            .secrets
            .iter()
            .map(|s| {
                let keys: Vec<&str> = s.data.iter().flat_map(|d| d.keys()).map(String::as_str).collect();
                let meta = &s.metadata;
                let (ns, name) =
                    (meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default());
                format!("{ns}/{name} keys [{}]", keys.join(", "))
            })
            .collect();
        f.debug_struct("Manifests")
            .field("accounts", &self.accounts)
            .field("models", &self.models)
            .field("policies", &self.policies)
            .field("secrets", &secrets)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// `apiVersion`, `kind` and name of a document, read before its typed form.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<HeadMeta>,
}

/// The naming part of `metadata`.
#[derive(Deserialize)]
struct HeadMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// A Secret before its data is checked. `data` and `stringData` stay untyped so that a malformed
/// value never ends up quoted in an error message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSecret {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    immutable: Option<bool>,
    #[serde(default)]
    data: Option<yaml_serde::Value>,
    #[serde(default)]
    string_data: Option<yaml_serde::Value>,
}

impl Manifests {
    /// Parses one multi-document YAML (or JSON) text; `source` names it in problems (a file path).
    pub fn parse(yaml: &str, source: &str) -> Result<Manifests, Problems> {
        let mut out = Manifests::default();
        let mut problems = Problems::default();
        let (heads, syntax_error) = read_heads(yaml, source);
        // Second pass: each document again, typed by its kind, so errors carry the field path.
        for (index, (doc, head)) in yaml_serde::Deserializer::from_str(yaml).zip(heads).enumerate() {
            match head {
                Document::Empty => {}
                Document::Invalid(problem) => problems.push(problem),
                Document::Object(head) => {
                    let at = format!("{source} document {}", index + 1);
                    out.add_document(doc, head, &at, &mut problems);
                }
            }
        }
        problems.extend(syntax_error);
        problems.into_result(out)
    }

    /// Loads every `*.yaml`, `*.yml` and `*.json` file of `dir` (sorted by name, not recursive,
    /// hidden files skipped) and merges them; problems of all files are reported together.
    pub fn load_dir(dir: &Path) -> Result<Manifests, Problems> {
        let entries = fs::read_dir(dir).map_err(|e| {
            Problems(vec![Problem::new(
                dir.display().to_string(),
                "",
                format!("cannot read the directory: {e}"),
                "pass a readable directory of manifests",
            )])
        })?;
        let mut paths = Vec::new();
        let mut problems = Problems::default();
        for entry in entries {
            match entry {
                Ok(entry) if is_manifest_name(&entry.file_name().to_string_lossy()) => {
                    // `is_file` follows symlinks: mounted ConfigMaps and Secrets link their files.
                    if entry.path().is_file() {
                        paths.push(entry.path());
                    }
                }
                Ok(_) => {}
                Err(e) => problems.push(Problem::new(
                    dir.display().to_string(),
                    "",
                    format!("cannot list the directory: {e}"),
                    "check the directory's permissions",
                )),
            }
        }
        paths.sort();
        let mut out = Manifests::default();
        for path in paths {
            let source = path.display().to_string();
            match fs::read_to_string(&path) {
                Ok(text) => match Manifests::parse(&text, &source) {
                    Ok(parsed) => out.merge(parsed),
                    Err(found) => problems.extend(found.0),
                },
                Err(e) => problems.push(Problem::new(
                    source,
                    "",
                    format!("cannot read the file: {e}"),
                    "make the file readable UTF-8 text",
                )),
            }
        }
        problems.into_result(out)
    }

    /// Appends the objects of `other`.
    pub fn merge(&mut self, other: Manifests) {
        self.accounts.extend(other.accounts);
        self.models.extend(other.models);
        self.policies.extend(other.policies);
        self.secrets.extend(other.secrets);
        self.skipped.extend(other.skipped);
    }

    /// Types one document by its kind and stores it, or records why it cannot be used.
    fn add_document(
        &mut self,
        doc: yaml_serde::Deserializer<'_>,
        head: Head,
        at: &str,
        problems: &mut Problems,
    ) {
        let api_version = head.api_version.unwrap_or_default();
        let (name, namespace) = match head.metadata {
            Some(meta) => (meta.name.unwrap_or_default(), meta.namespace.unwrap_or_default()),
            None => (String::new(), String::new()),
        };
        let namespace = if namespace.is_empty() { DEFAULT_NAMESPACE.to_string() } else { namespace };
        let Some(kind) = head.kind.filter(|k| !k.is_empty()) else {
            problems.push(Problem::new(at, "kind", "the document has no kind", "set apiVersion and kind"));
            return;
        };
        let object = format!("{kind} {namespace}/{name}");
        let ours = matches!(kind.as_str(), "BedrockAccount" | "BedrockModel" | "AccessPolicy");
        if ours && api_version != API_VERSION {
            if api_version.starts_with(&format!("{GROUP}/")) || api_version.is_empty() {
                problems.push(Problem::new(
                    format!("{object} ({at})"),
                    "apiVersion",
                    format!("apiVersion {api_version:?} is not supported"),
                    format!("use apiVersion {API_VERSION}"),
                ));
            } else {
                self.skipped.push(object);
            }
            return;
        }
        let is_secret = kind == "Secret" && api_version == "v1";
        if (ours || is_secret) && name.is_empty() {
            problems.push(Problem::new(
                format!("{object} ({at})"),
                "metadata.name",
                "the object has no name",
                "set metadata.name",
            ));
            return;
        }
        let located = format!("{object} ({at})");
        match kind.as_str() {
            "BedrockAccount" => {
                if let Some(mut o) = typed::<BedrockAccount>(doc, &located, &kind, problems) {
                    o.metadata.namespace = Some(namespace);
                    self.accounts.push(o);
                }
            }
            "BedrockModel" => {
                if let Some(mut o) = typed::<BedrockModel>(doc, &located, &kind, problems) {
                    o.metadata.namespace = Some(namespace);
                    self.models.push(o);
                }
            }
            "AccessPolicy" => {
                if let Some(mut o) = typed::<AccessPolicy>(doc, &located, &kind, problems) {
                    o.metadata.namespace = Some(namespace);
                    self.policies.push(o);
                }
            }
            "Secret" if is_secret => {
                if let Some(raw) = typed::<RawSecret>(doc, &located, &kind, problems)
                    && let Some(secret) = build_secret(raw, namespace, &located, problems)
                {
                    self.secrets.push(secret);
                }
            }
            _ => self.skipped.push(object),
        }
    }
}

/// True for the file names `load_dir` reads.
fn is_manifest_name(name: &str) -> bool {
    if name.starts_with('.') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    [".yaml", ".yml", ".json"].iter().any(|ext| lower.ends_with(ext))
}

/// What the first pass learnt about one document.
enum Document {
    /// Nothing but comments or whitespace.
    Empty,
    /// An object, with its header.
    Object(Head),
    /// Not usable as an object.
    Invalid(Problem),
}

/// First pass: what every document is, up to the first syntax error (returned separately).
fn read_heads(yaml: &str, source: &str) -> (Vec<Document>, Option<Problem>) {
    let mut documents = Vec::new();
    for (index, doc) in yaml_serde::Deserializer::from_str(yaml).enumerate() {
        let at = format!("{source} document {}", index + 1);
        let value = match serde_json::Value::deserialize(doc) {
            Ok(value) => value,
            Err(e) => {
                // A syntax error ends the stream: the parser cannot resynchronise after it.
                let problem = Problem::new(at, "", format!("invalid YAML: {e}"), "fix the YAML syntax");
                return (documents, Some(problem));
            }
        };
        documents.push(match value {
            serde_json::Value::Null => Document::Empty,
            serde_json::Value::Object(_) => match serde_json::from_value::<Head>(value) {
                Ok(head) => Document::Object(head),
                Err(e) => Document::Invalid(Problem::new(
                    at,
                    "",
                    format!("invalid object header: {e}"),
                    "apiVersion, kind, metadata.name and metadata.namespace must be strings",
                )),
            },
            _ => Document::Invalid(Problem::new(
                at,
                "",
                "the document is not an object",
                "each document must be a Kubernetes object with apiVersion and kind",
            )),
        });
    }
    (documents, None)
}

/// Deserializes a document as `T`, recording a problem (with the field path) on failure.
fn typed<T: DeserializeOwned>(
    doc: yaml_serde::Deserializer<'_>,
    object: &str,
    kind: &str,
    problems: &mut Problems,
) -> Option<T> {
    match T::deserialize(doc) {
        Ok(value) => Some(value),
        Err(e) => {
            problems.push(Problem::new(
                object,
                "",
                e.to_string(),
                format!("make the object match its schema (see `kubectl explain {}`)", kind.to_lowercase()),
            ));
            None
        }
    }
}

/// Checks and decodes a Secret's `data` (base64) and `stringData` (text) into `data`.
fn build_secret(raw: RawSecret, namespace: String, object: &str, problems: &mut Problems) -> Option<Secret> {
    let mut data = BTreeMap::new();
    let mut ok = true;
    for (key, value) in entries(raw.data, "data", object, problems, &mut ok) {
        match base64::engine::general_purpose::STANDARD.decode(value.trim_end()) {
            Ok(bytes) => {
                data.insert(key, ByteString(bytes));
            }
            Err(_) => {
                ok = false;
                problems.push(Problem::new(
                    object,
                    format!("data.{key}"),
                    "the value is not valid base64",
                    "base64-encode the value, or put it as plain text under stringData",
                ));
            }
        }
    }
    for (key, value) in entries(raw.string_data, "stringData", object, problems, &mut ok) {
        data.insert(key, ByteString(value.into_bytes()));
    }
    if !ok {
        return None;
    }
    let mut metadata = raw.metadata;
    metadata.namespace = Some(namespace);
    Some(Secret {
        metadata,
        type_: raw.type_,
        immutable: raw.immutable,
        data: if data.is_empty() { None } else { Some(data) },
        string_data: None,
    })
}

/// The string entries of a Secret's `data` or `stringData` map; never quotes a value in problems.
fn entries(
    value: Option<yaml_serde::Value>,
    field: &str,
    object: &str,
    problems: &mut Problems,
    ok: &mut bool,
) -> Vec<(String, String)> {
    let map = match value {
        None | Some(yaml_serde::Value::Null) => return Vec::new(),
        Some(yaml_serde::Value::Mapping(map)) => map,
        Some(_) => {
            *ok = false;
            problems.push(Problem::new(
                object,
                field,
                format!("{field} must be a map of key to string"),
                format!("write {field} as `key: value` lines"),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (key, value) in map {
        let Some(key) = key.as_str().map(str::to_string) else {
            *ok = false;
            problems.push(Problem::new(
                object,
                field,
                format!("{field} has a key that is not a string"),
                "quote the key",
            ));
            continue;
        };
        match value {
            yaml_serde::Value::String(text) => out.push((key, text)),
            _ => {
                *ok = false;
                problems.push(Problem::new(
                    object,
                    format!("{field}.{key}"),
                    "the value is not a string",
                    "quote the value",
                ));
            }
        }
    }
    out
}
