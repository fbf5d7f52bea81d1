//! Remote images of chat requests: `image_url` parts with http(s) URLs are fetched by the gateway
//! (Bedrock only takes bytes) and replaced by data URLs before translation.
//!
//! Limits: [`MAX_IMAGE_BYTES`] per image, [`FETCH_TIMEOUT`] per fetch, no redirects. SSRF guard:
//! unless the operator allows private addresses (`--allow-private-image-urls`), a host that is or
//! resolves to a loopback, link-local (169.254.0.0/16, fe80::/10), private (10/8, 172.16/12,
//! 192.168/16, 100.64/10), unique-local (fc00::/7), unspecified, broadcast or multicast address
//! is refused. The check runs on the caller's URL and again in the connector's resolver, so the
//! connection only ever goes to an address that passed it (no DNS-rebinding window).

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use crate::error::ApiError;
use crate::openai::chat::{ChatCompletionRequest, ChatMessage, ContentPart};
use crate::upstream::https_connector;

/// Largest image fetched, in bytes (Bedrock takes images up to 3.75 MB).
pub const MAX_IMAGE_BYTES: usize = 4 * 1024 * 1024;
/// Longest a fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `ip` is an address any caller may make the gateway fetch from.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        // Carrier-grade NAT (100.64.0.0/10), private in practice.
        || (a == 100 && (64..128).contains(&b)))
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80) // link local fe80::/10
}

/// A resolver that only yields addresses the guard allows.
#[derive(Clone, Copy, Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the host has no public address",
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

/// Fetches remote images for chat requests.
#[derive(Clone)]
pub struct ImageFetcher {
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Empty<Bytes>>,
    allow_private: bool,
}

impl std::fmt::Debug for ImageFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFetcher").field("allow_private", &self.allow_private).finish_non_exhaustive()
    }
}

impl ImageFetcher {
    /// A fetcher; `allow_private` lifts the SSRF guard (for private image hosts the operator trusts).
    pub fn new(allow_private: bool) -> Self {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.enforce_http(false);
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        let client =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(4).build(https_connector(http));
        ImageFetcher { client, allow_private }
    }

    /// Replaces every http(s) image URL of `req` by a data URL of the fetched bytes.
    pub async fn inline_remote_images(&self, req: &mut ChatCompletionRequest) -> Result<(), ApiError> {
        for (i, message) in req.messages.iter_mut().enumerate() {
            let content = match message {
                ChatMessage::User { content } | ChatMessage::Tool { content, .. } => content,
                _ => continue,
            };
            for (j, part) in content.iter_mut().enumerate() {
                if let ContentPart::Image(url) = part
                    && (url.starts_with("http://") || url.starts_with("https://"))
                {
                    let path = format!("messages[{i}].content[{j}].image_url.url");
                    *url = self.fetch(url, &path).await?;
                }
            }
        }
        Ok(())
    }

    /// Fetches `url` (the part at `path`) and returns it as a data URL.
    async fn fetch(&self, url: &str, path: &str) -> Result<String, ApiError> {
        let refuse = |why: String| {
            ApiError::invalid_request(format!("The image at `{path}` could not be fetched: {why}."))
                .with_param(path.to_owned())
        };
        let uri: Uri = url.parse().map_err(|_| refuse("the URL is not valid".into()))?;
        let host = uri.host().ok_or_else(|| refuse("the URL has no host".into()))?;
        if !self.allow_private {
            let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
            let literal = host.trim_start_matches('[').trim_end_matches(']');
            let addrs: Vec<IpAddr> = match literal.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => tokio::time::timeout(FETCH_TIMEOUT, tokio::net::lookup_host((host, port)))
                    .await
                    .map_err(|_| refuse("resolving the host timed out".into()))?
                    .map_err(|_| refuse("the host name does not resolve".into()))?
                    .map(|a| a.ip())
                    .collect(),
            };
            if addrs.iter().any(|ip| !is_public(*ip)) {
                return Err(refuse(
                    "its host is a loopback, link-local, private or otherwise non-public address, which this \
                     gateway does not fetch from"
                        .into(),
                ));
            }
        }
        let request =
            Request::get(uri).body(Empty::new()).map_err(|_| refuse("the URL is not valid".into()))?;
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| refuse(format!("the connection failed ({e})")))?;
            if response.status() != StatusCode::OK {
                return Err(refuse(format!("the server answered {}", response.status())));
            }
            let mime =
                response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let body = Limited::new(response.into_body(), MAX_IMAGE_BYTES)
                .collect()
                .await
                .map_err(|_| {
                    refuse(format!("it is larger than {MAX_IMAGE_BYTES} bytes or the transfer broke off"))
                })?
                .to_bytes();
            Ok((mime, body))
        })
        .await
        .map_err(|_| refuse(format!("no answer within {} seconds", FETCH_TIMEOUT.as_secs())))??;
        let (mime, body) = fetched;
        // The translator reads the format from the bytes; the type here is only informative.
        let mime = mime.split(';').next().filter(|m| m.starts_with("image/")).unwrap_or("image/png");
        let mut data = String::with_capacity(body.len() * 4 / 3 + 32);
        data.push_str("data:");
        data.push_str(mime);
        data.push_str(";base64,");
        STANDARD.encode_string(&body, &mut data);
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_non_public_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
