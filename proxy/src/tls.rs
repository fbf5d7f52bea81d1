//! The optional TLS listener (`--tls-cert`, `--tls-key`): rustls on ring, ALPN `h2` and
//! `http/1.1`, and a certificate reloaded when its files change.
//!
//! Kubernetes updates a mounted Secret by swapping a symlink, which file watchers see poorly, so
//! the files are read again on an interval and compared by content. New connections get the
//! new certificate; open ones keep theirs. Files that do not load (half-written, key not matching
//! the certificate) leave the served certificate in place, are logged with the reason and counted
//! in `bedrock_gateway_tls_reloads_total{result="error"}`. The served certificate's notAfter is
//! `bedrock_gateway_tls_certificate_expiry_timestamp_seconds`, set at load and on every reload,
//! so an alert sees a renewal that never arrived.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use x509_cert::der::Decode;

use crate::metrics::Metrics;

/// A certificate and key read from PEM files, reloaded on change.
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    /// The file contents last seen, to notice a change (and not retry an unchanged bad file).
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
    metrics: Metrics,
}

/// Hands every new connection the certificate being served.
struct Resolver(ArcSwap<CertifiedKey>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl ReloadingCert {
    /// Loads the certificate chain and key; the gateway does not start when they do not load.
    pub fn load(cert_path: &Path, key_path: &Path, metrics: &Metrics) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_pem, key_pem) = read(cert_path, key_path)?;
        let (key, not_after) = certified_key(&cert_pem, &key_pem, &provider).map_err(|e| {
            format!("--tls-cert {} / --tls-key {}: {e}", cert_path.display(), key_path.display())
        })?;
        metrics.tls_reloads.with_label_values(&["success"]).inc();
        export_expiry(metrics, not_after);
        Ok(ReloadingCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            resolver: Arc::new(Resolver(ArcSwap::from_pointee(key))),
            seen: Mutex::new((cert_pem, key_pem)),
            metrics: metrics.clone(),
        })
    }

    /// The acceptor of the listener: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
    pub fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS config: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the files again and serves their certificate if they changed and load; returns
    /// whether the served certificate changed.
    pub fn reload(&self) -> bool {
        let (cert_pem, key_pem) = match read(&self.cert_path, &self.key_path) {
            Ok(files) => files,
            Err(e) => {
                // A Secret update can briefly leave one file missing: retried on the next tick.
                tracing::warn!(error = %e, "cannot read the TLS certificate; keeping the served one");
                return false;
            }
        };
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.0 == cert_pem && seen.1 == key_pem {
            return false;
        }
        let loaded = certified_key(&cert_pem, &key_pem, &self.provider);
        *seen = (cert_pem, key_pem);
        match loaded {
            Ok((key, not_after)) => {
                self.resolver.0.store(Arc::new(key));
                self.metrics.tls_reloads.with_label_values(&["success"]).inc();
                export_expiry(&self.metrics, not_after);
                tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                self.metrics.tls_reloads.with_label_values(&["error"]).inc();
                tracing::warn!(
                    cert = %self.cert_path.display(),
                    error = %e,
                    "the new TLS certificate does not load; keeping the served one"
                );
                false
            }
        }
    }

    /// Checks the files every `interval`, for the life of the process.
    pub async fn reload_every(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let this = self.clone();
            // File reads are blocking I/O: off the runtime's workers.
            let _ = tokio::task::spawn_blocking(move || this.reload()).await;
        }
    }
}

/// The contents of both files.
fn read(cert_path: &Path, key_path: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let cert = std::fs::read(cert_path).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let key = std::fs::read(key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    Ok((cert, key))
}

/// The chain of `cert_pem` with the key of `key_pem`, which must match its first certificate,
/// and that certificate's notAfter (see [`not_after`]).
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, Result<i64, String>), String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate file is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no certificate".into());
    }
    let not_after = not_after(&chain[0]);
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key file holds no private key: {e}"))?;
    let key = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("the certificate and key do not load together: {e}"))?;
    Ok((key, not_after))
}

/// Sets the expiry gauge; a certificate rustls serves but whose notAfter does not parse is still
/// served (the gauge is for monitoring, not a reason to stop TLS), and the gauge keeps the
/// previous certificate's expiry, which errs early.
fn export_expiry(metrics: &Metrics, not_after: Result<i64, String>) {
    match not_after {
        Ok(not_after) => metrics.set_tls_certificate_expiry(not_after),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the TLS certificate's expiry; its gauge is not updated")
        }
    }
}

/// The notAfter of a DER certificate, in seconds since the Unix epoch.
fn not_after(cert: &CertificateDer<'_>) -> Result<i64, String> {
    let cert = x509_cert::Certificate::from_der(cert)
        .map_err(|e| format!("the first certificate is not X.509 DER: {e}"))?;
    let seconds = cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs();
    // X.509 times end in 9999, far inside i64.
    Ok(i64::try_from(seconds).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_that_does_not_parse_leaves_the_gauge_as_it_was() {
        let metrics = Metrics::new();
        export_expiry(&metrics, Ok(1_936_742_400));
        let garbage = not_after(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]));
        assert!(
            garbage.as_ref().is_err_and(|e| e.starts_with("the first certificate is not X.509 DER")),
            "{garbage:?}"
        );
        export_expiry(&metrics, garbage);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(
            text.contains("\nbedrock_gateway_tls_certificate_expiry_timestamp_seconds 1936742400\n"),
            "{text}"
        );
    }
}
