//! What AWS says about accounts, asked for real: the control plane of an in-process bedrock-sim
//! (SigV4 and bearer verified) and STS of a moto server (`moto_server` from the e2e venv).

use std::net::{Ipv4Addr, TcpListener};

use aws_credential_types::Credentials;
use operator::aws::Aws;
use operator::aws::facts::{AccountFacts, AwsFailure, FailureKind, Identity, Verification};
use operator::plan::plan;

use crate::fixtures::{Moto, endpoints, manifests, sim};

/// Gathers the facts of account `demo` of the fixtures after `edit`, with `aws`.
async fn gather(aws: &Aws, edit: impl FnOnce(String) -> String) -> AccountFacts {
    let plan = plan(&manifests(edit), &Default::default());
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    aws.gather(&plan.account_input("demo").unwrap()).await
}

#[tokio::test]
async fn access_keys_are_verified_with_sts_and_the_catalogue_is_listed_per_region() {
    let (moto, sim) = (Moto::start(), sim().await);
    let facts = gather(&Aws::new(), endpoints(&sim.url(), &moto.url)).await;
    let Ok(Verification::Identity(Identity { arn, account })) = &facts.verification else {
        panic!("not verified: {:?}", facts.verification)
    };
    assert_eq!(account, "123456789012");
    assert_eq!(arn, "arn:aws:sts::123456789012:user/moto", "moto's identity for unknown keys");
    assert_eq!(facts.regions.keys().collect::<Vec<_>>(), ["us-east-1", "us-west-2"]);
    let east = facts.regions["us-east-1"].as_ref().unwrap();
    assert!(east.lists("amazon.nova-lite-v1:0"));
    assert!(east.invocable_ids().contains(&"us.anthropic.claude-3-7-sonnet-20250219-v1:0"));
    assert!(
        !east.invocable_ids().contains(&"anthropic.claude-3-7-sonnet-20250219-v1:0"),
        "profile-only model"
    );
    let key = ("us-west-2".to_string(), "us.anthropic.claude-3-7-sonnet-20250219-v1:0".to_string());
    assert_eq!(
        facts.profiles[&key].as_ref().unwrap().model_ids[0],
        "anthropic.claude-3-7-sonnet-20250219-v1:0"
    );
    assert_eq!(facts.profiles.len(), 1, "base model ids need no GetInferenceProfile");

    // Every control-plane call was signed with the account's key for its region.
    let requests = sim.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/foundation-models",
            "/inference-profiles?maxResults=1000",
            "/foundation-models",
            "/inference-profiles?maxResults=1000",
            "/inference-profiles/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0",
        ]
    );
    let scope =
        |i: usize| requests[i].header("authorization").unwrap().split('/').nth(2).unwrap().to_string();
    assert_eq!((scope(0), scope(2), scope(4)), ("us-east-1".into(), "us-west-2".into(), "us-west-2".into()));

    // A wrong secret key: STS (moto) does not check it, Bedrock does, and says so per region.
    let facts =
        gather(&Aws::new(), |m| endpoints(&sim.url(), &moto.url)(m.replace("0000000000}", "0000000001}")))
            .await;
    let failure = facts.regions["us-east-1"].as_ref().unwrap_err();
    assert_eq!((failure.kind, failure.code.as_str()), (FailureKind::Rejected, "InvalidSignatureException"));
}

#[tokio::test]
async fn assume_role_is_chained_from_the_pod_identity() {
    let (moto, sim) = (Moto::start(), sim().await);
    let pod = Credentials::new("AKIAPODIDENTITY00001", "pod-secret", None, None, "test-pod");
    let aws = Aws::new().with_pod_identity(pod);
    let facts = gather(&aws, |m| {
        endpoints(&sim.url(), &moto.url)(m.replace(
            "auth: {accessKey: {secretRef: {name: aws-keys}}}",
            "auth: {assumeRole: {roleArn: \"arn:aws:iam::123456789012:role/bedrock-invoke\", externalId: ext-1}}",
        ))
    })
    .await;
    let Ok(Verification::Identity(identity)) = &facts.verification else {
        panic!("not verified: {:?}", facts.verification)
    };
    assert_eq!(identity.arn, "arn:aws:sts::123456789012:assumed-role/bedrock-invoke/bedrock-gateway");
    // The simulator only knows its own test key, not the role's session: Bedrock rejects it.
    let failure = facts.regions["us-east-1"].as_ref().unwrap_err();
    assert_eq!(
        failure,
        &AwsFailure::rejected(
            "UnrecognizedClientException",
            "The security token included in the request is invalid."
        )
    );
}

#[tokio::test]
async fn api_keys_are_checked_with_list_foundation_models() {
    let sim = sim().await;
    let api_key = |key: &'static str| {
        let sim_url = sim.url();
        move |m: String| {
            endpoints(&sim_url, "http://127.0.0.1:9")(m)
                .replace(
                    "auth: {accessKey: {secretRef: {name: aws-keys}}}",
                    "auth: {apiKey: {secretRef: {name: aws-keys}}}",
                )
                .replace("stringData: {accessKeyId", &format!("stringData: {{apiKey: {key}, accessKeyId"))
        }
    };
    let facts = gather(&Aws::new(), api_key("bedrock-sim-api-key")).await;
    assert_eq!(facts.verification, Ok(Verification::ApiKeyAccepted));
    assert!(
        facts.regions["us-west-2"].as_ref().unwrap().lists("us.anthropic.claude-3-7-sonnet-20250219-v1:0")
    );
    assert!(sim.requests().iter().all(|r| r.header("authorization") == Some("Bearer bedrock-sim-api-key")));

    let facts = gather(&Aws::new(), api_key("not-the-key")).await;
    assert_eq!(
        facts.verification,
        Err(AwsFailure::rejected(
            "AccessDeniedException",
            "Authentication failed: Please make sure your API Key is valid."
        ))
    );
}

#[tokio::test]
async fn an_unreachable_sts_is_no_verdict() {
    let sim = sim().await;
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let facts = gather(&Aws::new(), endpoints(&sim.url(), &format!("http://127.0.0.1:{closed}"))).await;
    let failure = facts.verification.unwrap_err();
    assert_eq!((failure.kind, failure.code.as_str()), (FailureKind::Unreachable, "ConnectionError"));
}
