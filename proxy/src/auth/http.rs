//! A small JSON-over-HTTP(S) client for identity providers: the Kubernetes API server
//! (TokenReview) and OIDC issuers (discovery, JWKS). Same stack as the upstream client (hyper 1,
//! rustls with ring), plus an optional private CA such as the cluster's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// How long one identity-provider call may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response read (JWKS, discovery documents, TokenReviews are small).
const MAX_BODY: usize = 1024 * 1024;

/// A pooled client trusting the Mozilla roots and, optionally, one more CA bundle.
#[derive(Clone)]
pub struct JsonClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl JsonClient {
    /// A client that also trusts the PEM certificates in `extra_ca` (e.g. the cluster CA).
    pub fn new(extra_ca: Option<&[u8]>) -> Result<JsonClient, String> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(pem) = extra_ca {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("invalid CA certificate: {e}"))?;
                roots.add(cert).map_err(|e| format!("unusable CA certificate: {e}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(JsonClient { client: Client::builder(TokioExecutor::new()).build(connector) })
    }

    /// Sends a request with an optional bearer token and JSON body; returns status and body.
    /// Errors never contain the token.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut req = Request::builder().method(method).uri(url).header(header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| format!("invalid URL {url}"))?;
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| format!("{url}: {e}"))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the response failed: {e}"))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(TIMEOUT, call).await.map_err(|_| format!("{url}: timed out"))?
    }
}
