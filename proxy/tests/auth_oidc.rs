//! OIDC JWTs end to end: a local issuer (discovery + JWKS over HTTP) with P-256 keys generated
//! here; tokens signed here; the proxy verifies them, rotates keys on an unknown `kid`, and
//! serves the user and teams its policies name.

mod fixtures;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fixtures::Harness;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use proxy::auth::oidc::{OidcConfig, OidcVerifier};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A signing key and its public JWK.
struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn key(kid: &str) -> Key {
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let der = secret.to_pkcs8_der().unwrap();
    let mut jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    Key { kid: kid.into(), encoding: EncodingKey::from_ec_der(der.as_bytes()), jwk }
}

/// The issuer: serves discovery and the JWKS it is given; counts JWKS fetches.
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn issuer() -> Issuer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks = Arc::new(Mutex::new(Vec::new()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (base, keys, count) = (url.clone(), jwks.clone(), fetches.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (base, keys, count) = (base.clone(), keys.clone(), count.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let body = match req.uri().path() {
                        "/.well-known/openid-configuration" => {
                            json!({"issuer": base, "jwks_uri": format!("{base}/keys"), "id_token_signing_alg_values_supported": ["ES256"]})
                        }
                        "/keys" => {
                            count.fetch_add(1, Ordering::SeqCst);
                            json!({"keys": *keys.lock().unwrap()})
                        }
                        _ => Value::Null,
                    };
                    let status = if body.is_null() { StatusCode::NOT_FOUND } else { StatusCode::OK };
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Issuer { url, jwks, fetches }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sign(key: &Key, claims: Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "aud": "bedrock-gateway", "sub": "u-123", "email": "carol@example.com",
           "groups": ["quickstart", "eng"], "iat": now(), "nbf": now() - 5, "exp": now() + 600})
}

async fn start(issuer: &Issuer) -> Harness {
    start_refreshing(issuer, proxy::auth::oidc::REFRESH_EVERY).await
}

async fn start_refreshing(issuer: &Issuer, min_refresh_interval: Duration) -> Harness {
    let config = OidcConfig {
        min_refresh_interval,
        issuer: issuer.url.clone(),
        audience: "bedrock-gateway".into(),
        user_claim: "email".into(),
        teams_claim: "groups".into(),
        ca_file: None,
    };
    Harness::start_configured(|app| app.auth.oidc = Some(OidcVerifier::new(config).unwrap())).await
}

async fn models(h: &Harness, token: &str) -> (StatusCode, Value) {
    let r = h.call(Method::GET, "/v1/models", Some(token), None).await;
    (r.status, r.json())
}

#[tokio::test]
async fn valid_tokens_name_the_user_and_teams() {
    let iss = issuer().await;
    let k1 = key("k1");
    iss.jwks.lock().unwrap().push(k1.jwk.clone());
    let h = start(&iss).await;
    let token = sign(&k1, claims(&iss.url));
    // The "groups" claim carries the quick-start team, whose policy grants demo/*.
    let (status, body) = models(&h, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, quickstart) = models(&h, fixtures::KEY).await;
    assert_eq!(body["data"], quickstart["data"], "the same models as the quick-start team's key");
    let chat = r#"{"model":"demo/nova-lite","messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(
        h.call(Method::POST, "/v1/chat/completions", Some(&token), Some(chat)).await.status,
        StatusCode::OK
    );
    assert_eq!(iss.fetches.load(Ordering::SeqCst), 1, "keys are cached");
    let metrics = h.call(Method::GET, "/metrics", None, None).await.text();
    assert!(metrics.contains(r#"team="quickstart""#), "{metrics}");
    assert!(!metrics.contains(&token));
}

#[tokio::test]
async fn rotated_keys_are_fetched_on_an_unknown_kid() {
    let iss = issuer().await;
    let (k1, k2) = (key("k1"), key("k2"));
    iss.jwks.lock().unwrap().push(k1.jwk.clone());
    let h = start_refreshing(&iss, Duration::ZERO).await;
    assert_eq!(models(&h, &sign(&k1, claims(&iss.url))).await.0, StatusCode::OK);
    iss.jwks.lock().unwrap().push(k2.jwk.clone());
    assert_eq!(models(&h, &sign(&k2, claims(&iss.url))).await.0, StatusCode::OK);
    assert_eq!(iss.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(models(&h, &sign(&k1, claims(&iss.url))).await.0, StatusCode::OK);
    assert_eq!(iss.fetches.load(Ordering::SeqCst), 2, "known kids never fetch");
}

#[tokio::test]
async fn unknown_kids_do_not_hammer_the_issuer() {
    let iss = issuer().await;
    let k1 = key("k1");
    iss.jwks.lock().unwrap().push(k1.jwk.clone());
    let h = start(&iss).await;
    assert_eq!(models(&h, &sign(&k1, claims(&iss.url))).await.0, StatusCode::OK);
    for kid in ["k3", "k4", "k5"] {
        let (status, body) = models(&h, &sign(&key(kid), claims(&iss.url))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body["error"]["message"],
            "The bearer token was not accepted: it is signed by a key the issuer does not publish."
        );
    }
    assert_eq!(iss.fetches.load(Ordering::SeqCst), 1, "at most one fetch per interval");
}

#[tokio::test]
async fn bad_tokens_are_401_with_the_reason() {
    let iss = issuer().await;
    let k1 = key("k1");
    iss.jwks.lock().unwrap().push(k1.jwk.clone());
    let h = start(&iss).await;
    let with = |patch: Value| {
        let mut c = claims(&iss.url);
        c.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        sign(&k1, c)
    };
    let forged = {
        // Signed by a key with the published kid but another private key.
        let mut impostor = key("k1");
        impostor.kid = "k1".into();
        sign(&impostor, claims(&iss.url))
    };
    for (token, why) in [
        (with(json!({"exp": now() - 600})), "it has expired"),
        (with(json!({"nbf": now() + 600})), "it is not valid yet (nbf)"),
        (with(json!({"aud": "someone-else"})), "it is not meant for this gateway (aud)"),
        (forged, "its signature does not verify"),
        (with(json!({"email": ""})), "it has no user claim"),
    ] {
        let (status, body) = models(&h, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert_eq!(body["error"]["message"], format!("The bearer token was not accepted: {why}."));
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    // A token from another issuer is not this verifier's: plain 401, no key fetch for it.
    let fetched = iss.fetches.load(Ordering::SeqCst);
    let (status, _) = models(&h, &with(json!({"iss": "https://elsewhere.example.com"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(iss.fetches.load(Ordering::SeqCst), fetched);
}
