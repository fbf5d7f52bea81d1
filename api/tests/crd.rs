//! The generated CRDs: CEL rules, status subresource, printer columns and stable order.

use api::crd::{AccessPolicy, BedrockAccount, BedrockModel, crds};
use kube::CustomResourceExt;
use serde_json::{Value, json};

/// The openAPIV3Schema of a CRD as JSON.
fn schema<K: CustomResourceExt>() -> Value {
    let crd = serde_json::to_value(K::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn account_auth_has_the_exactly_one_cel_rule() {
    let auth = &schema::<BedrockAccount>()["properties"]["spec"]["properties"]["auth"];
    assert_eq!(
        auth["x-kubernetes-validations"],
        json!([{
            "rule": "(has(self.podIdentity) ? 1 : 0) + (has(self.assumeRole) ? 1 : 0) + \
                     (has(self.accessKey) ? 1 : 0) + (has(self.apiKey) ? 1 : 0) == 1",
            "message": "auth must set exactly one of podIdentity, assumeRole, accessKey or apiKey"
        }])
    );
}

#[test]
fn every_kind_is_namespaced_with_status_and_ready_column() {
    for generated in crds() {
        let crd = serde_json::to_value(&generated.crd).unwrap();
        assert_eq!(crd["spec"]["group"], "bedrockgateway.io");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(version["subresources"]["status"], json!({}));
        let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
        assert_eq!(status["observedGeneration"]["type"], "integer");
        assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
        assert_eq!(status["conditions"]["x-kubernetes-list-map-keys"], json!(["type"]));
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(columns.contains(&"Ready") && columns.last() == Some(&"Age"), "{columns:?}");
    }
}

#[test]
fn crds_come_in_a_stable_order() {
    let names: Vec<(&str, String)> =
        crds().into_iter().map(|c| (c.file_name, c.crd.metadata.name.unwrap())).collect();
    assert_eq!(
        names,
        [
            ("bedrockaccounts.yaml", "bedrockaccounts.bedrockgateway.io".to_string()),
            ("bedrockmodels.yaml", "bedrockmodels.bedrockgateway.io".to_string()),
            ("accesspolicies.yaml", "accesspolicies.bedrockgateway.io".to_string()),
        ]
    );
}

#[test]
fn model_kind_is_an_enum_and_every_spec_field_is_described() {
    let spec = &schema::<BedrockModel>()["properties"]["spec"];
    assert_eq!(spec["properties"]["kind"]["enum"], json!(["chat", "embedding", "image"]));
    for kind_schema in [schema::<BedrockAccount>(), schema::<BedrockModel>(), schema::<AccessPolicy>()] {
        let properties = kind_schema["properties"]["spec"]["properties"].as_object().unwrap();
        for (field, field_schema) in properties {
            assert!(field_schema["description"].is_string(), "spec.{field} has no description");
        }
    }
}
