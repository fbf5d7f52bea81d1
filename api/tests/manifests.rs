//! Loading manifests: multi-document parsing, Secrets' data vs stringData, skipped kinds, errors
//! that name the file and document, and directory loading.

use std::fs;
use std::path::PathBuf;

use api::Manifests;

/// A fresh empty directory under the system temp dir, unique to this test process.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bgw-api-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Problem lines of a parse that must fail.
fn parse_problems(yaml: &str) -> Vec<String> {
    Manifests::parse(yaml, "in.yaml").unwrap_err().0.iter().map(ToString::to_string).collect()
}

#[test]
fn secrets_support_data_and_string_data() {
    let yaml = "apiVersion: v1
kind: Secret
metadata: {name: encoded, namespace: ns}
data: {accessKeyId: QUtJQQ==, both: ZnJvbS1kYXRh}
stringData: {both: from-string-data}
---
apiVersion: v1
kind: Secret
metadata: {name: plain}
type: bedrockgateway.io/api-key
stringData: {key: sk-1, user: u}
";
    let m = Manifests::parse(yaml, "s.yaml").unwrap();
    assert_eq!(m.secrets.len(), 2);
    let data = m.secrets[0].data.as_ref().unwrap();
    assert_eq!(data["accessKeyId"].0, b"AKIA");
    // stringData wins over data, as on the apiserver.
    assert_eq!(data["both"].0, b"from-string-data");
    assert_eq!(m.secrets[0].string_data, None);
    assert_eq!(m.secrets[1].metadata.namespace.as_deref(), Some("default"));
    assert_eq!(m.secrets[1].type_.as_deref(), Some("bedrockgateway.io/api-key"));
    assert_eq!(m.secrets[1].data.as_ref().unwrap()["key"].0, b"sk-1");
}

#[test]
fn empty_documents_are_skipped_and_other_kinds_listed() {
    let yaml = "---
# only a comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: x}
---
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec: {subjects: [{team: t}], models: ['a/*']}
";
    let m = Manifests::parse(yaml, "mixed.yaml").unwrap();
    assert_eq!(m.skipped, ["ConfigMap x/cm", "Deployment default/web"]);
    assert_eq!(m.policies.len(), 1);
    assert_eq!(m.policies[0].metadata.namespace.as_deref(), Some("default"));
    assert!(m.accounts.is_empty() && m.models.is_empty() && m.secrets.is_empty());
}

#[test]
fn syntax_errors_name_the_file_and_document() {
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [\n";
    assert_eq!(
        parse_problems(yaml),
        ["in.yaml document 2: invalid YAML: did not find expected node content at line 6 column 1, while \
          parsing a flow node (fix: fix the YAML syntax)"]
    );
}

#[test]
fn schema_errors_name_the_object_document_and_field_path() {
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: m, namespace: ns}
spec: {accountRef: prod, modelId: [1]}
";
    assert_eq!(
        parse_problems(yaml),
        [
            "BedrockModel ns/m (in.yaml document 2): spec.modelId: invalid type: sequence, expected a string at \
          line 8 column 35 (fix: make the object match its schema (see `kubectl explain bedrockmodel`))"
        ]
    );
}

#[test]
fn unsupported_api_version_and_missing_kind_or_name() {
    let yaml = "apiVersion: bedrockgateway.io/v1beta1
kind: BedrockAccount
metadata: {name: a}
---
metadata: {name: b}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {namespace: ns}
spec: {accountRef: a, modelId: amazon.nova-lite-v1:0}
---
- not an object
";
    assert_eq!(
        parse_problems(yaml),
        [
            "BedrockAccount default/a (in.yaml document 1) apiVersion: apiVersion \"bedrockgateway.io/v1beta1\" \
             is not supported (fix: use apiVersion bedrockgateway.io/v1alpha1)",
            "in.yaml document 2 kind: the document has no kind (fix: set apiVersion and kind)",
            "BedrockModel ns/ (in.yaml document 3) metadata.name: the object has no name (fix: set \
             metadata.name)",
            "in.yaml document 4: the document is not an object (fix: each document must be a Kubernetes \
             object with apiVersion and kind)",
        ]
    );
}

#[test]
fn unparseable_secret_data_never_quotes_the_value() {
    let yaml = "apiVersion: v1
kind: Secret
metadata: {name: s, namespace: ns}
data: {token: 'not base64 sk-live-123!'}
stringData: {port: 8080}
---
apiVersion: v1
kind: Secret
metadata: {name: t, namespace: ns}
stringData: sk-live-456
";
    let found = parse_problems(yaml);
    assert_eq!(
        found,
        [
            "Secret ns/s (in.yaml document 1) data.token: the value is not valid base64 (fix: base64-encode \
             the value, or put it as plain text under stringData)",
            "Secret ns/s (in.yaml document 1) stringData.port: the value is not a string (fix: quote the value)",
            "Secret ns/t (in.yaml document 2) stringData: stringData must be a map of key to string (fix: write \
             stringData as `key: value` lines)",
        ]
    );
    for line in &found {
        assert!(!line.contains("sk-live") && !line.contains("8080"), "{line}");
    }
}

#[test]
fn load_dir_reads_manifest_files_sorted_and_skips_the_rest() {
    let dir = temp_dir("load");
    let account = |name: &str| {
        format!(
            "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockAccount\nmetadata: {{name: {name}}}\n\
             spec: {{defaultRegion: us-east-1, auth: {{podIdentity: {{}}}}}}\n"
        )
    };
    fs::write(dir.join("b.yaml"), account("from-b")).unwrap();
    fs::write(dir.join("a.yml"), account("from-a")).unwrap();
    fs::write(
        dir.join("c.json"),
        r#"{"apiVersion": "bedrockgateway.io/v1alpha1", "kind": "BedrockAccount",
            "metadata": {"name": "from-c"},
            "spec": {"defaultRegion": "us-east-1", "auth": {"podIdentity": {}}}}"#,
    )
    .unwrap();
    fs::write(dir.join(".hidden.yaml"), account("hidden")).unwrap();
    fs::write(dir.join("notes.txt"), account("txt")).unwrap();
    fs::create_dir(dir.join("sub.yaml")).unwrap();
    fs::write(dir.join("sub.yaml").join("x.yaml"), account("nested")).unwrap();

    let m = Manifests::load_dir(&dir).unwrap();
    let names: Vec<&str> = m.accounts.iter().map(|a| a.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["from-a", "from-b", "from-c"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_dir_reports_problems_of_every_file() {
    let dir = temp_dir("problems");
    fs::write(dir.join("1.yaml"), "kind: [\n").unwrap();
    fs::write(dir.join("2.yaml"), "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '%%'}\n")
        .unwrap();
    let found = Manifests::load_dir(&dir).unwrap_err();
    let objects: Vec<String> = found.0.iter().map(|p| p.object.clone()).collect();
    assert_eq!(
        objects,
        [
            format!("{} document 1", dir.join("1.yaml").display()),
            format!("Secret default/s ({} document 1)", dir.join("2.yaml").display()),
        ]
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn debug_lists_secret_names_and_keys_but_not_values() {
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\n\
                stringData: {accessKeyId: AKIA-VALUE, secretAccessKey: hidden-value}\n";
    let debug = format!("{:?}", Manifests::parse(yaml, "s.yaml").unwrap());
    assert!(debug.contains(r#"secrets: ["ns/s keys [accessKeyId, secretAccessKey]"]"#), "{debug}");
    assert!(!debug.contains("AKIA-VALUE") && !debug.contains("hidden-value"), "{debug}");
}
