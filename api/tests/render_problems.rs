//! Every problem `render` reports, with its exact line, and that all of them are reported at once.

use api::{Manifests, render};

const PROD: &str = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: prod, namespace: ai-gateway}
spec: {defaultRegion: us-east-1, auth: {podIdentity: {}}}
";

/// The problems of rendering `yaml`, one display line each.
fn problems(yaml: &str) -> Vec<String> {
    let manifests = Manifests::parse(yaml, "test.yaml").unwrap();
    match render(&manifests) {
        Ok(rendered) => panic!("rendered without problems: {rendered:?}"),
        Err(problems) => problems.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn unknown_account_ref() {
    let yaml = format!(
        "{PROD}---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: claude, namespace: other}}
spec: {{accountRef: prod, modelId: anthropic.claude-3-haiku-20240307-v1:0}}
"
    );
    assert_eq!(
        problems(&yaml),
        ["BedrockModel other/claude spec.accountRef: BedrockAccount prod not found in namespace other \
          (fix: create BedrockAccount prod in namespace other, or set accountRef to an account there)"]
    );
}

#[test]
fn missing_secret() {
    let yaml = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: prod, namespace: ai-gateway}
spec: {defaultRegion: us-east-1, auth: {accessKey: {secretRef: {name: aws-keys}}}}
";
    assert_eq!(
        problems(yaml),
        ["BedrockAccount ai-gateway/prod spec.auth.accessKey.secretRef.name: Secret aws-keys not found in \
          namespace ai-gateway (fix: create Secret aws-keys in namespace ai-gateway with accessKeyId and \
          secretAccessKey, or point secretRef at an existing Secret)"]
    );
}

#[test]
fn secret_in_another_namespace_is_not_found() {
    let yaml = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: prod, namespace: ai-gateway}
spec: {defaultRegion: us-east-1, auth: {apiKey: {secretRef: {name: br, key: token}}}}
---
apiVersion: v1
kind: Secret
metadata: {name: br, namespace: default}
stringData: {token: abc}
";
    assert_eq!(
        problems(yaml),
        ["BedrockAccount ai-gateway/prod spec.auth.apiKey.secretRef.name: Secret br not found in namespace \
          ai-gateway (fix: create Secret br in namespace ai-gateway with token, or point secretRef at an \
          existing Secret)"]
    );
}

#[test]
fn missing_secret_keys() {
    let yaml = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: prod, namespace: ai-gateway}
spec: {defaultRegion: us-east-1, auth: {accessKey: {secretRef: {name: aws-keys}}}}
---
apiVersion: v1
kind: Secret
metadata: {name: aws-keys, namespace: ai-gateway}
stringData: {accessKeyId: AKIAEXAMPLE, secretAccesKey: typo-value}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: bearer, namespace: ai-gateway}
spec: {defaultRegion: us-east-1, auth: {apiKey: {secretRef: {name: aws-keys}}}}
";
    assert_eq!(
        problems(yaml),
        [
            "BedrockAccount ai-gateway/bearer spec.auth.apiKey.secretRef: Secret aws-keys has no key apiKey \
             (fix: add apiKey to Secret aws-keys (under data or stringData))",
            "BedrockAccount ai-gateway/prod spec.auth.accessKey.secretRef: Secret aws-keys has no key \
             secretAccessKey (fix: add secretAccessKey to Secret aws-keys (under data or stringData))",
        ]
    );
}

#[test]
fn zero_or_two_auth_methods() {
    let yaml = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: none, namespace: ai-gateway}
spec: {defaultRegion: us-east-1, auth: {}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: two, namespace: ai-gateway}
spec:
  defaultRegion: us-east-1
  auth:
    podIdentity: {}
    assumeRole: {roleArn: 'arn:aws:iam::123456789012:role/x'}
";
    assert_eq!(
        problems(yaml),
        [
            "BedrockAccount ai-gateway/none spec.auth: no auth method is set (fix: set exactly one of \
             podIdentity, assumeRole, accessKey or apiKey)",
            "BedrockAccount ai-gateway/two spec.auth: 2 auth methods are set (podIdentity, assumeRole); \
             exactly one is allowed (fix: set exactly one of podIdentity, assumeRole, accessKey or apiKey)",
        ]
    );
}

#[test]
fn invalid_role_arn() {
    let yaml = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: prod, namespace: ai-gateway}
spec: {defaultRegion: us-east-1, auth: {assumeRole: {roleArn: bedrock-invoke}}}
";
    assert_eq!(
        problems(yaml),
        [
            "BedrockAccount ai-gateway/prod spec.auth.assumeRole.roleArn: \"bedrock-invoke\" is not an IAM role \
          ARN (fix: use a role ARN like arn:aws:iam::123456789012:role/bedrock-invoke)"
        ]
    );
}

#[test]
fn invalid_model_id() {
    let yaml = format!(
        "{PROD}---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: claude, namespace: ai-gateway}}
spec: {{accountRef: prod, modelId: claude-3-sonnet}}
"
    );
    assert_eq!(
        problems(&yaml),
        ["BedrockModel ai-gateway/claude spec.modelId: modelId \"claude-3-sonnet\" is not valid: expected \
          provider.model (e.g. amazon.nova-lite-v1:0) (fix: use a model id \
          (anthropic.claude-3-7-sonnet-20250219-v1:0), an inference profile id \
          (us.anthropic.claude-3-7-sonnet-20250219-v1:0) or a Bedrock ARN)"]
    );
}

#[test]
fn duplicate_account_and_served_names_across_namespaces() {
    let model = |ns: &str| {
        format!(
            "---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: claude, namespace: {ns}}}
spec: {{accountRef: prod, modelId: anthropic.claude-3-haiku-20240307-v1:0}}
"
        )
    };
    let yaml = format!(
        "{PROD}{}---\n{}{}",
        model("ai-gateway"),
        PROD.replace("ai-gateway", "team-b"),
        model("team-b")
    );
    assert_eq!(
        problems(&yaml),
        [
            "BedrockAccount team-b/prod metadata.name: account name prod is already used by BedrockAccount \
             ai-gateway/prod (fix: account names are global across namespaces: rename one of the \
             BedrockAccounts)",
            "BedrockModel team-b/claude metadata.name: served name prod/claude is already defined by \
             BedrockModel ai-gateway/claude (fix: rename one of the BedrockModels or point it at another \
             account)",
        ]
    );
}

#[test]
fn same_object_defined_twice() {
    let yaml = format!("{PROD}---\n{PROD}");
    assert_eq!(
        problems(&yaml),
        [
            "BedrockAccount ai-gateway/prod metadata.name: BedrockAccount ai-gateway/prod is defined more than \
          once (fix: keep a single definition of the object)"
        ]
    );
}

#[test]
fn api_key_secret_without_key_or_user() {
    let yaml = "apiVersion: v1
kind: Secret
type: bedrockgateway.io/api-key
metadata: {name: no-user, namespace: ai-gateway}
stringData: {key: sk-one}
---
apiVersion: v1
kind: Secret
type: bedrockgateway.io/api-key
metadata: {name: no-key, namespace: ai-gateway}
stringData: {user: bob, key: \"\\n\"}
";
    assert_eq!(
        problems(yaml),
        [
            "Secret ai-gateway/no-key data: Secret no-key key key is empty (fix: put the value of key in \
             Secret no-key)",
            "Secret ai-gateway/no-user data: Secret no-user has no key user (fix: add user to Secret no-user \
             (under data or stringData))",
        ]
    );
}

#[test]
fn two_api_key_secrets_with_the_same_key() {
    let secret = |name: &str| {
        format!(
            "---
apiVersion: v1
kind: Secret
type: bedrockgateway.io/api-key
metadata: {{name: {name}, namespace: ai-gateway}}
stringData: {{key: sk-shared-value, user: {name}}}
"
        )
    };
    let yaml = format!("{}{}", secret("a"), secret("b"));
    let found = problems(&yaml);
    assert_eq!(
        found,
        ["Secret ai-gateway/b data.key: the key is the same as the key of Secret ai-gateway/a (fix: give \
          every API key Secret its own random key, e.g. from `openssl rand -hex 32`)"]
    );
    assert!(!found[0].contains("sk-shared-value"));
}

#[test]
fn access_policy_without_subjects_or_models() {
    let yaml = "apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: empty, namespace: ai-gateway}
spec: {subjects: [], models: []}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: mixed, namespace: ai-gateway}
spec: {subjects: [{user: a, team: b}], models: ['prod/*']}
";
    assert_eq!(
        problems(yaml),
        [
            "AccessPolicy ai-gateway/empty spec.subjects: the policy has no subjects, so it grants nothing \
             (fix: list at least one user, team or serviceAccount under spec.subjects)",
            "AccessPolicy ai-gateway/empty spec.models: the policy names no models, so it grants nothing \
             (fix: list globs over served names under spec.models, e.g. prod/*)",
            "AccessPolicy ai-gateway/mixed spec.subjects[0]: a subject must name exactly one of user, team or \
             serviceAccount (fix: split the entry into one subject per user, team or service account)",
        ]
    );
}

#[test]
fn secret_value_that_is_not_utf8() {
    // "/w==" is the single byte 0xff.
    let yaml = format!(
        "{}---
apiVersion: v1
kind: Secret
metadata: {{name: br, namespace: ai-gateway}}
data: {{apiKey: /w==}}
",
        PROD.replace("podIdentity: {}", "apiKey: {secretRef: {name: br}}")
    );
    assert_eq!(
        problems(&yaml),
        [
            "BedrockAccount ai-gateway/prod spec.auth.apiKey.secretRef: Secret br key apiKey is not UTF-8 text \
          (fix: store apiKey in Secret br as UTF-8 text)"
        ]
    );
}

#[test]
fn all_problems_are_reported_together() {
    let yaml = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: prod, namespace: ai-gateway}
spec: {defaultRegion: '', auth: {}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: m, namespace: ai-gateway}
spec: {accountRef: nope, modelId: bad}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: p, namespace: ai-gateway}
spec: {subjects: [], models: []}
";
    let fields: Vec<String> = render(&Manifests::parse(yaml, "t.yaml").unwrap())
        .unwrap_err()
        .0
        .into_iter()
        .map(|p| format!("{} {}", p.object, p.field))
        .collect();
    assert_eq!(
        fields,
        [
            "BedrockAccount ai-gateway/prod spec.defaultRegion",
            "BedrockAccount ai-gateway/prod spec.auth",
            "BedrockModel ai-gateway/m spec.accountRef",
            "BedrockModel ai-gateway/m spec.modelId",
            "AccessPolicy ai-gateway/p spec.subjects",
            "AccessPolicy ai-gateway/p spec.models",
        ]
    );
}

#[test]
fn invalid_guardrail_id_and_version() {
    let model = |guardrail: &str| {
        format!(
            "{PROD}---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: claude, namespace: ai-gateway}}
spec: {{accountRef: prod, modelId: anthropic.claude-3-haiku-20240307-v1:0, guardrail: {guardrail}}}
"
        )
    };
    assert_eq!(
        problems(&model("{id: My-Guardrail, version: '1'}")),
        [
            "BedrockModel ai-gateway/claude spec.guardrail.id: guardrail id \"My-Guardrail\" is neither a guardrail \
          id nor a guardrail ARN (fix: use the guardrail's id (abc123def456) or ARN \
          (arn:aws:bedrock:REGION:ACCOUNT:guardrail/ID))"
        ]
    );
    assert_eq!(
        problems(&model("{id: 'arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123', version: latest}")),
        [
            "BedrockModel ai-gateway/claude spec.guardrail.version: guardrail version \"latest\" is not a version \
          (fix: use a published version number (1, 2, ...) or DRAFT)"
        ]
    );
    let ok =
        Manifests::parse(&model("{id: abc123, version: DRAFT, trace: enabled_full}"), "ok.yaml").unwrap();
    let rendered = render(&ok).expect("a valid guardrail renders");
    let guardrail = rendered.config.models["prod/claude"].guardrail.as_ref().unwrap();
    assert_eq!((guardrail.id.as_str(), guardrail.version.as_str()), ("abc123", "DRAFT"));
}
