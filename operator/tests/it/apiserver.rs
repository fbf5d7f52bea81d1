//! The exact requests the operator sends to the API server: server-side apply of the rendered
//! objects (only on hash changes), status patches, events, the Lease and collaborator RBAC.

use std::sync::Arc;

use base64::Engine as _;
use kube::ResourceExt;
use operator::apply::{Applied, Applier, ApplyError, MAX_OBJECT_DATA, StoredConfig};
use operator::context::{Context, Settings};
use operator::controller::write_status;
use operator::leader::Elector;
use operator::metrics::Metrics;
use operator::watch::Scope;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::fixtures::{conflict, manifests, mock, not_found, plan_of, stored_config};

const SSA: &str = "?&force=true&fieldManager=bedrock-gateway-operator";

#[tokio::test]
async fn rendered_objects_are_applied_server_side_only_when_their_hash_changes() {
    let (client, mut server) = mock();
    let applier = Applier::new(client, "gw", "bedrock-system");
    let plan = plan_of(&manifests(|m| m));
    let (applied, ()) = tokio::join!(applier.apply(&plan), async {
        server
            .expect(
                "GET",
                "/api/v1/namespaces/bedrock-system/configmaps/gw-config",
                404,
                not_found("configmaps", "gw-config"),
            )
            .await;
        let sent = server
            .expect(
                "PATCH",
                &format!("/api/v1/namespaces/bedrock-system/configmaps/gw-config{SSA}"),
                200,
                json!({}),
            )
            .await;
        assert_eq!(sent.content_type, "application/apply-patch+yaml");
        let body = sent.body;
        assert_eq!((body["apiVersion"].as_str(), body["kind"].as_str()), (Some("v1"), Some("ConfigMap")));
        assert_eq!(
            body["metadata"]["annotations"]["bedrockgateway.io/config-hash"],
            plan.config_hash.as_str()
        );
        assert_eq!(body["metadata"]["labels"]["app.kubernetes.io/managed-by"], "bedrock-gateway-operator");
        let config = stored_config(&body).expect("binaryData config.json.gz");
        assert_eq!(config, serde_json::to_value(&plan.rendered.config).unwrap());
        assert!(!config.to_string().contains("bedrock-sim-secret-access-key"), "no secret in the ConfigMap");

        server
            .expect(
                "GET",
                "/api/v1/namespaces/bedrock-system/secrets/gw-credentials",
                404,
                not_found("secrets", "gw-credentials"),
            )
            .await;
        let body = server
            .expect(
                "PATCH",
                &format!("/api/v1/namespaces/bedrock-system/secrets/gw-credentials{SSA}"),
                200,
                json!({}),
            )
            .await
            .body;
        assert_eq!((body["kind"].as_str(), body["type"].as_str()), (Some("Secret"), Some("Opaque")));
        assert_eq!(
            body["metadata"]["annotations"]["bedrockgateway.io/config-hash"],
            plan.credentials_hash.as_str()
        );
        let encoded = body["data"]["credentials.json"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        let credentials: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(
            credentials["accounts"]["demo"]["secretAccessKey"],
            "bedrock-sim-secret-access-key-0000000000"
        );
    });
    assert_eq!(applied.unwrap(), Applied { config: true, credentials: true });

    // Same content: nothing is sent.
    assert_eq!(applier.apply(&plan).await.unwrap(), Applied::default());
    server.expect_nothing().await;

    // A rotated key changes only the Secret.
    let rotated =
        plan_of(&manifests(|m| m.replace("secret-access-key-0000000000", "secret-access-key-rotated")));
    let (applied, ()) = tokio::join!(applier.apply(&rotated), async {
        let body = server
            .expect(
                "PATCH",
                &format!("/api/v1/namespaces/bedrock-system/secrets/gw-credentials{SSA}"),
                200,
                json!({}),
            )
            .await
            .body;
        assert_eq!(
            body["metadata"]["annotations"]["bedrockgateway.io/config-hash"],
            rotated.credentials_hash.as_str()
        );
    });
    assert_eq!(applied.unwrap(), Applied { config: false, credentials: true });
}

#[tokio::test]
async fn a_config_beyond_1_mib_as_json_is_written_compressed() {
    let (client, mut server) = mock();
    let applier = Applier::new(client, "gw", "bedrock-system");
    let models: String = (0..9000)
        .map(|i| {
            format!(
                "---\napiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\n\
                 metadata: {{name: model-{i}, namespace: ai-gateway}}\nspec: {{accountRef: demo, modelId: \"amazon.nova-lite-v1:0\"}}\n"
            )
        })
        .collect();
    let plan = plan_of(&manifests(|m| m + &models));
    let json = serde_json::to_vec(&plan.rendered.config).unwrap();
    assert!(json.len() > MAX_OBJECT_DATA, "{} bytes of JSON would not fit", json.len());
    let (applied, ()) = tokio::join!(applier.apply(&plan), async {
        server
            .expect(
                "GET",
                "/api/v1/namespaces/bedrock-system/configmaps/gw-config",
                404,
                not_found("configmaps", "gw-config"),
            )
            .await;
        let body = server
            .expect(
                "PATCH",
                &format!("/api/v1/namespaces/bedrock-system/configmaps/gw-config{SSA}"),
                200,
                json!({}),
            )
            .await
            .body;
        let encoded = body["binaryData"]["config.json.gz"].as_str().unwrap();
        let gz = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert!(gz.len() * 10 < json.len(), "{} bytes compressed of {}", gz.len(), json.len());
        assert_eq!(stored_config(&body).unwrap(), serde_json::to_value(&plan.rendered.config).unwrap());
        server
            .expect(
                "GET",
                "/api/v1/namespaces/bedrock-system/secrets/gw-credentials",
                404,
                not_found("secrets", "gw-credentials"),
            )
            .await;
        server
            .expect(
                "PATCH",
                &format!("/api/v1/namespaces/bedrock-system/secrets/gw-credentials{SSA}"),
                200,
                json!({}),
            )
            .await;
    });
    assert_eq!(applied.unwrap(), Applied { config: true, credentials: true });
}

#[tokio::test]
async fn a_config_too_large_even_compressed_is_refused_before_it_is_sent() {
    let (client, mut server) = mock();
    let applier = Applier::new(client, "gw", "bedrock-system");
    let mut plan = plan_of(&manifests(|m| m));
    plan.stored_config = StoredConfig { gz: vec![0; MAX_OBJECT_DATA + 1], json_bytes: 20_000_000 };
    // A PATCH would never be answered: the timeout turns that into a failure instead of a hang.
    let apply = tokio::time::timeout(std::time::Duration::from_secs(10), applier.apply(&plan));
    let (applied, ()) = tokio::join!(apply, async {
        server
            .expect(
                "GET",
                "/api/v1/namespaces/bedrock-system/configmaps/gw-config",
                404,
                not_found("configmaps", "gw-config"),
            )
            .await;
    });
    let error = applied.expect("refused without sending the ConfigMap").unwrap_err();
    assert!(matches!(error, ApplyError::TooLarge(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the rendered config is 1048577 bytes gzip-compressed (20000000 bytes of JSON), more than the 1048576 \
         a ConfigMap holds, so it is not written and the proxies keep serving the last one written: serve \
         fewer models (narrow spec.discovery.include) or split the release"
    );
    server.expect_nothing().await;
}

#[tokio::test]
async fn a_restarted_operator_does_not_rewrite_what_is_already_there() {
    let (client, mut server) = mock();
    let applier = Applier::new(client, "gw", "bedrock-system");
    let plan = plan_of(&manifests(|m| m));
    let existing = |kind: &str, name: &str, hash: &str| {
        json!({
            "apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "namespace": "bedrock-system", "annotations": {"bedrockgateway.io/config-hash": hash}},
        })
    };
    let (applied, ()) = tokio::join!(applier.apply(&plan), async {
        server
            .expect(
                "GET",
                "/api/v1/namespaces/bedrock-system/configmaps/gw-config",
                200,
                existing("ConfigMap", "gw-config", &plan.config_hash),
            )
            .await;
        server
            .expect(
                "GET",
                "/api/v1/namespaces/bedrock-system/secrets/gw-credentials",
                200,
                existing("Secret", "gw-credentials", &plan.credentials_hash),
            )
            .await;
    });
    assert_eq!(applied.unwrap(), Applied::default());
}

/// A context on the mock client whose plan is `plan`.
fn context(client: kube::Client, plan: operator::plan::Plan) -> Context {
    let (_tx, rx) = watch::channel(Arc::new(plan));
    let settings = Settings {
        release: "gw".into(),
        namespace: "bedrock-system".into(),
        scope: Scope::Namespaces(vec!["ai-gateway".into()]),
        aws_refresh: std::time::Duration::from_secs(300),
    };
    Context::new(client, settings, rx, Metrics::new(), Arc::new(Notify::new()), Some("operator-0".into()))
}

#[tokio::test]
async fn status_is_applied_to_the_status_subresource_with_an_event_on_transition() {
    let m = manifests(|m| {
        m.replace("accountRef: demo, modelId: \"amazon", "accountRef: dmeo, modelId: \"amazon")
    });
    let plan = plan_of(&m);
    let (client, mut server) = mock();
    let ctx = context(client, plan.clone());
    let model = m.models.iter().find(|m| m.name_any() == "nova-lite").unwrap().clone();
    let stored = serde_json::to_value(&model).unwrap();
    let (written, ()) = tokio::join!(write_status(&ctx, &model, &plan), async {
        let sent = server
            .expect(
                "PATCH",
                &format!("/apis/bedrockgateway.io/v1alpha1/namespaces/ai-gateway/bedrockmodels/nova-lite/status{SSA}"),
                200,
                stored,
            )
            .await;
        assert_eq!(sent.content_type, "application/apply-patch+yaml");
        let status = &sent.body["status"];
        assert_eq!(sent.body["kind"], "BedrockModel");
        assert_eq!(sent.body["apiVersion"], "bedrockgateway.io/v1alpha1");
        assert_eq!(status["observedGeneration"], 1);
        let ready = &status["conditions"][0];
        assert_eq!((ready["type"].as_str(), ready["status"].as_str()), (Some("Ready"), Some("False")));
        assert_eq!(ready["reason"], "AccountNotFound");
        assert_eq!(
            ready["message"],
            "spec.accountRef: BedrockAccount dmeo not found in namespace ai-gateway (fix: create BedrockAccount dmeo \
             in namespace ai-gateway, or set accountRef to an account there)"
        );
        assert_eq!(ready["observedGeneration"], 1);
        assert!(ready["lastTransitionTime"].as_str().unwrap().ends_with('Z'));

        let event = server
            .expect("POST", "/apis/events.k8s.io/v1/namespaces/ai-gateway/events?", 201, json!({}))
            .await
            .body;
        assert_eq!(
            (event["type"].as_str(), event["reason"].as_str(), event["action"].as_str()),
            (Some("Warning"), Some("AccountNotFound"), Some("Reconcile"))
        );
        assert_eq!(event["regarding"]["kind"], "BedrockModel");
        assert_eq!(event["regarding"]["name"], "nova-lite");
        assert_eq!(event["reportingController"], "bedrock-gateway-operator");
        assert_eq!(event["reportingInstance"], "operator-0");
        assert_eq!(event["note"], ready["message"]);
    });
    assert!(written.unwrap());

    // The object now shows that status: nothing to write, no event.
    let mut model = model;
    let desired = operator::status::model(&plan, &model).unwrap();
    let mut current = desired.clone();
    current.conditions =
        operator::status::stamp(desired.conditions, &[], Some(1), k8s_openapi::jiff::Timestamp::now());
    model.status = Some(current);
    assert!(!write_status(&ctx, &model, &plan).await.unwrap());
    server.expect_nothing().await;
}

#[tokio::test]
async fn the_lease_is_created_renewed_and_never_taken_from_a_live_holder() {
    let (client, mut server) = mock();
    let elector = Elector::new(client, "bedrock-system", "gw-operator", "operator-0");
    let lease_uri = "/apis/coordination.k8s.io/v1/namespaces/bedrock-system/leases/gw-operator";
    let (held, created) = tokio::join!(elector.try_hold(), async {
        server.expect("GET", lease_uri, 404, not_found("leases", "gw-operator")).await;
        server
            .expect("POST", "/apis/coordination.k8s.io/v1/namespaces/bedrock-system/leases?", 201, json!({}))
            .await
            .body
    });
    assert!(held.unwrap());
    assert_eq!(created["metadata"]["name"], "gw-operator");
    assert_eq!(created["spec"]["holderIdentity"], "operator-0");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(created["spec"]["leaseTransitions"], 0);

    // Renewal: a PUT carrying the resourceVersion read, so a concurrent writer gets a 409.
    let mut lease = created.clone();
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    lease["kind"] = json!("Lease");
    lease["metadata"]["resourceVersion"] = json!("41");
    let (held, ()) = tokio::join!(elector.try_hold(), async {
        server.expect("GET", lease_uri, 200, lease.clone()).await;
        let renewed = server.expect("PUT", &format!("{lease_uri}?"), 200, lease.clone()).await.body;
        assert_eq!(renewed["metadata"]["resourceVersion"], "41");
        assert_eq!(renewed["spec"]["holderIdentity"], "operator-0");
        assert_ne!(renewed["spec"]["renewTime"], created["spec"]["renewTime"]);
    });
    assert!(held.unwrap());

    // Losing the race is not an error, just not holding it.
    let (held, ()) = tokio::join!(elector.try_hold(), async {
        server.expect("GET", lease_uri, 200, lease.clone()).await;
        server.expect("PUT", &format!("{lease_uri}?"), 409, conflict("leases", "gw-operator")).await;
    });
    assert!(!held.unwrap());

    // Another replica renewed a moment ago: nothing is written.
    let mut other = lease.clone();
    other["spec"]["holderIdentity"] = json!("operator-1");
    other["spec"]["renewTime"] = json!(k8s_openapi::jiff::Timestamp::now().to_string());
    let (held, ()) = tokio::join!(elector.try_hold(), async {
        server.expect("GET", lease_uri, 200, other).await;
    });
    assert!(!held.unwrap());
    server.expect_nothing().await;

    // On shutdown the holder gives the Lease up; another holder's Lease is not touched.
    let (released, ()) = tokio::join!(elector.release(), async {
        server.expect("GET", lease_uri, 200, lease.clone()).await;
        let given_up = server.expect("PUT", &format!("{lease_uri}?"), 200, lease.clone()).await.body;
        assert!(given_up["spec"].get("holderIdentity").is_none(), "{given_up}");
        assert!(given_up["spec"].get("renewTime").is_none());
        assert_eq!(given_up["metadata"]["resourceVersion"], "41");
    });
    released.unwrap();
    let (released, ()) = tokio::join!(elector.release(), async {
        server.expect("GET", lease_uri, 200, other_holder(&lease)).await;
    });
    released.unwrap();
    server.expect_nothing().await;
}

/// `lease` held by another replica.
fn other_holder(lease: &Value) -> Value {
    let mut other = lease.clone();
    other["spec"]["holderIdentity"] = json!("operator-1");
    other
}

#[tokio::test]
async fn collaborators_become_an_owned_role_and_binding() {
    let (client, mut server) = mock();
    let account = manifests(|m| m).accounts.remove(0);
    let (done, ()) = tokio::join!(operator::rbac::reconcile(&client, &account), async {
        let base = "/apis/rbac.authorization.k8s.io/v1/namespaces/ai-gateway";
        let role = server
            .expect("PATCH", &format!("{base}/roles/bedrock-gateway-demo-managers{SSA}"), 200, json!({}))
            .await;
        assert_eq!(role.body["rules"][0]["resources"], json!(["bedrockmodels"]));
        assert_eq!(
            role.body["metadata"]["ownerReferences"][0]["uid"],
            "6d1e0a52-0000-4000-8000-000000000001"
        );
        let binding = server
            .expect(
                "PATCH",
                &format!("{base}/rolebindings/bedrock-gateway-demo-managers{SSA}"),
                200,
                json!({}),
            )
            .await;
        assert_eq!(
            binding.body["subjects"],
            json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob@example.com"}])
        );
        assert_eq!(binding.body["roleRef"]["name"], "bedrock-gateway-demo-managers");
        // No user collaborators: whatever an earlier spec created goes away.
        server
            .expect(
                "DELETE",
                &format!("{base}/rolebindings/bedrock-gateway-demo-users?"),
                404,
                not_found("rolebindings", "x"),
            )
            .await;
        server
            .expect(
                "DELETE",
                &format!("{base}/roles/bedrock-gateway-demo-users?"),
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
            )
            .await;
    });
    done.unwrap();
}
