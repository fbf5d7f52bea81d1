//! `render` of a complete, valid set of manifests: the exact rendered JSON.

use api::{Manifests, render};
use serde_json::json;

const MANIFESTS: &str = r#"
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: prod, namespace: ai-gateway}
spec:
  defaultRegion: us-east-1
  auth:
    podIdentity: {}
  endpoints:
    runtime: "https://vpce-1.bedrock-runtime.{region}.vpce.amazonaws.com"
  batch: {bucket: my-bedrock-batch, prefix: gateway/, roleArn: "arn:aws:iam::123456789012:role/bedrock-batch"}
  discovery: {enabled: true, include: ["anthropic.*"]}
  collaborators:
    - {user: alice@example.com, role: manager}
    - {team: ml-platform, role: user}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: partner, namespace: ai-gateway}
spec:
  defaultRegion: eu-west-1
  auth:
    assumeRole: {roleArn: "arn:aws:iam::210987654321:role/bedrock-invoke", externalId: ext-1}
  discovery: {enabled: false, include: ["meta.*"]}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: keys, namespace: team-b}
spec:
  defaultRegion: us-west-2
  auth:
    accessKey: {secretRef: {name: aws-keys}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: bearer}
spec:
  defaultRegion: us-east-2
  auth:
    apiKey: {secretRef: {name: bedrock-api-key}}
---
apiVersion: v1
kind: Secret
metadata: {name: aws-keys, namespace: team-b}
data:
  accessKeyId: QUtJQUVYQU1QTEU=
  secretAccessKey: c2VjcmV0LXZhbHVlCg==
stringData:
  sessionToken: "token-value\n"
---
apiVersion: v1
kind: Secret
metadata: {name: bedrock-api-key}
stringData: {apiKey: bedrock-bearer-value}
---
apiVersion: v1
kind: Secret
type: bedrockgateway.io/api-key
metadata: {name: alice-key, namespace: ai-gateway}
stringData: {key: sk-alice, user: alice@example.com, teams: " ml-platform, ,research "}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: claude-sonnet, namespace: ai-gateway}
spec:
  accountRef: prod
  modelId: us.anthropic.claude-3-7-sonnet-20250219-v1:0
  region: us-west-2
  cost: {inputPerMillionTokens: 3.0, outputPerMillionTokens: 15.0, cacheReadPerMillionTokens: 0.3}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: titan-embed, namespace: ai-gateway}
spec: {accountRef: prod, modelId: amazon.titan-embed-text-v2:0}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: canvas, namespace: ai-gateway}
spec: {accountRef: partner, modelId: amazon.nova-canvas-v1:0, cost: {perImage: 0.04}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: profile, namespace: team-b}
spec:
  accountRef: keys
  modelId: arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc123
  kind: embedding
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: ml-team, namespace: ai-gateway}
spec:
  subjects:
    - user: alice@example.com
    - team: ml-platform
    - serviceAccount: {namespace: apps, name: chatbot}
  models: ["prod/*", "partner/canvas"]
  limits: {requestsPerMinute: 600, tokensPerMinute: 200000, budgetUsdPerDay: 50}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: all, namespace: a-first}
spec:
  subjects: [{team: admins}]
  models: ["*"]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
data: {a: b}
"#;

#[test]
fn renders_a_full_valid_set_exactly() {
    let manifests = Manifests::parse(MANIFESTS, "all.yaml").unwrap();
    assert_eq!(manifests.skipped, vec!["ConfigMap default/unrelated".to_string()]);
    let rendered = render(&manifests).unwrap();
    let expected = json!({
        "config": {
            "version": 1,
            "accounts": {
                "bearer": {
                    "name": "bearer", "namespace": "default", "defaultRegion": "us-east-2",
                    "auth": {"type": "apiKey"},
                    "endpoints": {
                        "runtime": "https://bedrock-runtime.{region}.amazonaws.com",
                        "control": "https://bedrock.{region}.amazonaws.com",
                        "sts": "https://sts.{region}.amazonaws.com",
                        "s3": "https://s3.{region}.amazonaws.com"
                    }
                },
                "keys": {
                    "name": "keys", "namespace": "team-b", "defaultRegion": "us-west-2",
                    "auth": {"type": "accessKey"},
                    "endpoints": {
                        "runtime": "https://bedrock-runtime.{region}.amazonaws.com",
                        "control": "https://bedrock.{region}.amazonaws.com",
                        "sts": "https://sts.{region}.amazonaws.com",
                        "s3": "https://s3.{region}.amazonaws.com"
                    }
                },
                "partner": {
                    "name": "partner", "namespace": "ai-gateway", "defaultRegion": "eu-west-1",
                    "auth": {
                        "type": "assumeRole",
                        "roleArn": "arn:aws:iam::210987654321:role/bedrock-invoke",
                        "externalId": "ext-1",
                        "sessionName": "bedrock-gateway"
                    },
                    "endpoints": {
                        "runtime": "https://bedrock-runtime.{region}.amazonaws.com",
                        "control": "https://bedrock.{region}.amazonaws.com",
                        "sts": "https://sts.{region}.amazonaws.com",
                        "s3": "https://s3.{region}.amazonaws.com"
                    }
                },
                "prod": {
                    "name": "prod", "namespace": "ai-gateway", "defaultRegion": "us-east-1",
                    "auth": {"type": "podIdentity"},
                    "endpoints": {
                        "runtime": "https://vpce-1.bedrock-runtime.{region}.vpce.amazonaws.com",
                        "control": "https://bedrock.{region}.amazonaws.com",
                        "sts": "https://sts.{region}.amazonaws.com",
                        "s3": "https://s3.{region}.amazonaws.com"
                    },
                    "batch": {
                        "bucket": "my-bedrock-batch",
                        "prefix": "gateway/",
                        "roleArn": "arn:aws:iam::123456789012:role/bedrock-batch"
                    },
                    "discovery": {"include": ["anthropic.*"]},
                    "collaborators": [
                        {"subject": {"user": "alice@example.com"}, "role": "manager"},
                        {"subject": {"team": "ml-platform"}, "role": "user"}
                    ]
                }
            },
            "models": {
                "keys/profile": {
                    "servedName": "keys/profile", "account": "keys", "namespace": "team-b",
                    "modelId": "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc123",
                    "region": "us-west-2", "kind": "embedding"
                },
                "partner/canvas": {
                    "servedName": "partner/canvas", "account": "partner", "namespace": "ai-gateway",
                    "modelId": "amazon.nova-canvas-v1:0", "region": "eu-west-1", "kind": "image",
                    "cost": {"perImage": 0.04}
                },
                "prod/claude-sonnet": {
                    "servedName": "prod/claude-sonnet", "account": "prod", "namespace": "ai-gateway",
                    "modelId": "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "region": "us-west-2",
                    "kind": "chat",
                    "cost": {
                        "inputPerMillionTokens": 3.0,
                        "outputPerMillionTokens": 15.0,
                        "cacheReadPerMillionTokens": 0.3
                    }
                },
                "prod/titan-embed": {
                    "servedName": "prod/titan-embed", "account": "prod", "namespace": "ai-gateway",
                    "modelId": "amazon.titan-embed-text-v2:0", "region": "us-east-1", "kind": "embedding"
                }
            },
            "policies": [
                {"name": "a-first/all", "subjects": [{"team": "admins"}], "models": ["*"]},
                {
                    "name": "ai-gateway/ml-team",
                    "subjects": [
                        {"user": "alice@example.com"},
                        {"team": "ml-platform"},
                        {"serviceAccount": {"namespace": "apps", "name": "chatbot"}}
                    ],
                    "models": ["prod/*", "partner/canvas"],
                    "limits": {"requestsPerMinute": 600, "tokensPerMinute": 200000, "budgetUsdPerDay": 50.0}
                }
            ]
        },
        "credentials": {
            "accounts": {
                "bearer": {"type": "apiKey", "apiKey": "bedrock-bearer-value"},
                "keys": {
                    "type": "accessKey",
                    "accessKeyId": "AKIAEXAMPLE",
                    "secretAccessKey": "secret-value",
                    "sessionToken": "token-value"
                }
            },
            "apiKeys": {
                "099295a3784e1bd368dc348843a7398c1931b6b8ec2504c73e91ed2040bdc46c": {
                    "user": "alice@example.com",
                    "teams": ["ml-platform", "research"],
                    "source": "ai-gateway/alice-key"
                }
            }
        }
    });
    assert_eq!(serde_json::to_value(&rendered).unwrap(), expected);
}

#[test]
fn debug_of_rendered_never_shows_secret_values() {
    let rendered = render(&Manifests::parse(MANIFESTS, "all.yaml").unwrap()).unwrap();
    let debug = format!("{rendered:?}");
    for secret in ["AKIAEXAMPLE", "secret-value", "token-value", "bedrock-bearer-value", "sk-alice"] {
        assert!(!debug.contains(secret), "Debug output shows {secret}");
    }
    assert!(debug.contains("<redacted>"));
}
