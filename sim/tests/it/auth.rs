//! Authentication: SigV4 (good, wrong secret, unknown key, expired, session token), bearer, none.

use std::time::{Duration, SystemTime};

use bedrock_sim::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

use crate::common::*;

const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

#[tokio::test]
async fn sigv4_signed_request_succeeds_over_http1_and_h2c() {
    let sim = start().await;
    for client in [http1(), h2c()] {
        let resp = send(&client, post(&sim.url(), &converse_path(), user_body("hi"), test_sigv4())).await;
        assert_eq!(resp.status, 200, "{:?}", resp.body);
        assert_eq!(resp.json()["output"]["message"]["content"][0]["text"], "Simulated reply to: hi");
    }
}

#[tokio::test]
async fn sigv4_with_arn_model_id_and_registered_session_credentials_succeeds() {
    let sim = start().await;
    sim.register_credentials("ASIATEMPORARY0000001", "temporary-secret", "session-token");
    let path = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/converse";
    let auth =
        Auth::SigV4("ASIATEMPORARY0000001", "temporary-secret", Some("session-token"), SystemTime::now());
    let req = post(&sim.url(), path, user_body("hi"), auth);
    assert!(req.headers().contains_key("x-amz-security-token"));
    let resp = send(&http1(), req).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
}

#[tokio::test]
async fn session_credentials_registered_over_http_need_their_exact_token() {
    let sim = start().await;
    let client = http1();
    let key = |token| Auth::SigV4("ASIAREGISTERED000001", "registered-secret", token, SystemTime::now());
    // Unknown until registered.
    let resp = send(&client, post(&sim.url(), &converse_path(), user_body("a"), key(Some("tok-1")))).await;
    resp.assert_error(403, "UnrecognizedClientException");
    let register = http::Request::post(format!("{}/_sim/credentials", sim.url()))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"accessKeyId":"ASIAREGISTERED000001","secretAccessKey":"registered-secret","sessionToken":"tok-1"}"#,
        )))
        .unwrap();
    assert_eq!(send(&client, register).await.status, 204);
    let resp = send(&client, post(&sim.url(), &converse_path(), user_body("a"), key(Some("tok-1")))).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    for wrong in [Some("tok-2"), None] {
        let resp = send(&client, post(&sim.url(), &converse_path(), user_body("a"), key(wrong))).await;
        assert_eq!(
            resp.assert_error(403, "UnrecognizedClientException"),
            "The security token included in the request is invalid."
        );
    }
    // Long-term keys never come with a session token.
    let auth = Auth::SigV4(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, Some("tok-1"), SystemTime::now());
    send(&client, post(&sim.url(), &converse_path(), user_body("a"), auth))
        .await
        .assert_error(403, "UnrecognizedClientException");
    let bad = http::Request::post(format!("{}/_sim/credentials", sim.url()))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(br#"{"accessKeyId":"A"}"#)))
        .unwrap();
    send(&client, bad).await.assert_error(400, "ValidationException");
}

#[tokio::test]
async fn sigv4_wrong_secret_is_invalid_signature() {
    let sim = start().await;
    let auth = Auth::SigV4(TEST_ACCESS_KEY_ID, "not-the-secret", None, SystemTime::now());
    let resp = send(&http1(), post(&sim.url(), &converse_path(), user_body("hi"), auth)).await;
    assert_eq!(resp.assert_error(403, "InvalidSignatureException"), MISMATCH);
}

#[tokio::test]
async fn sigv4_tampered_body_is_invalid_signature() {
    let sim = start().await;
    let mut req = post(&sim.url(), &converse_path(), user_body("hi"), test_sigv4());
    *req.body_mut() = http_body_util::Full::new(bytes::Bytes::from(user_body("bye")));
    let resp = send(&http1(), req).await;
    assert_eq!(resp.assert_error(403, "InvalidSignatureException"), MISMATCH);
}

#[tokio::test]
async fn sigv4_unknown_access_key_is_unrecognized() {
    let sim = start().await;
    let auth = Auth::SigV4("AKIAUNKNOWN000000000", TEST_SECRET_ACCESS_KEY, None, SystemTime::now());
    let resp = send(&http1(), post(&sim.url(), &converse_path(), user_body("hi"), auth)).await;
    assert_eq!(
        resp.assert_error(403, "UnrecognizedClientException"),
        "The security token included in the request is invalid."
    );
}

#[tokio::test]
async fn sigv4_old_signature_is_expired() {
    let sim = start().await;
    let then = SystemTime::now() - Duration::from_secs(600);
    let auth = Auth::SigV4(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, None, then);
    let resp = send(&http1(), post(&sim.url(), &converse_path(), user_body("hi"), auth)).await;
    let message = resp.assert_error(403, "InvalidSignatureException");
    assert!(message.starts_with("Signature expired: "), "{message}");
}

#[tokio::test]
async fn bearer_token_good_and_bad() {
    let sim = start().await;
    let resp = send(&http1(), post(&sim.url(), &stream_path(), user_body("hi"), test_bearer())).await;
    assert_eq!(resp.status, 200);
    let resp =
        send(&http1(), post(&sim.url(), &converse_path(), user_body("hi"), Auth::Bearer("wrong"))).await;
    assert_eq!(
        resp.assert_error(403, "AccessDeniedException"),
        "Authentication failed: Please make sure your API Key is valid."
    );
}

#[tokio::test]
async fn missing_authorization_is_rejected_before_validation() {
    let sim = start().await;
    let resp = send(&http1(), post(&sim.url(), &converse_path(), b"not json".to_vec(), Auth::None)).await;
    assert_eq!(resp.assert_error(403, "MissingAuthenticationTokenException"), "Missing Authentication Token");
}

#[tokio::test]
async fn configured_credentials_replace_the_defaults() {
    let config = bedrock_sim::SimConfig {
        credentials: vec![("AKIAOTHER".into(), "other-secret".into())],
        bearer_tokens: vec!["other-token".into()],
        record_requests: false,
        moto_url: None,
        batch: bedrock_sim::BatchConfig::default(),
    };
    let sim = start_with(config).await;
    let ok = Auth::SigV4("AKIAOTHER", "other-secret", None, SystemTime::now());
    assert_eq!(send(&http1(), post(&sim.url(), &converse_path(), user_body("a"), ok)).await.status, 200);
    let resp = send(&http1(), post(&sim.url(), &converse_path(), user_body("a"), test_sigv4())).await;
    resp.assert_error(403, "UnrecognizedClientException");
    let resp =
        send(&http1(), post(&sim.url(), &converse_path(), user_body("a"), Auth::Bearer("other-token"))).await;
    assert_eq!(resp.status, 200);
    assert!(sim.requests().is_empty(), "recording was disabled");
}
