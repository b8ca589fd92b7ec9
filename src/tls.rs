//! TLS termination (`[server.tls]`): the certificate chain and key read from PEM files, h2 and
//! http/1.1 offered by ALPN, and the pair read again when either file changes, so a renewed
//! certificate is served without a restart and without dropping open connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// What the accept loop needs to speak TLS.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// A client that has not finished its handshake by then is dropped: a silent socket must not
    /// hold a connection slot.
    pub handshake_timeout: Duration,
    certificate: Arc<ReloadingCertificate>,
    reload_check: Duration,
}

impl Tls {
    /// Reads the files once (a missing or broken pair is a start-up error).
    pub fn from_config(config: &TlsConfig) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load_pair(&config.cert_file, &config.key_file, &provider)?;
        let certificate = Arc::new(ReloadingCertificate {
            current: RwLock::new(Arc::new(loaded.key)),
            files: (config.cert_file.clone(), config.key_file.clone()),
            seen: RwLock::new(loaded.stamp),
            provider: provider.clone(),
        });
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("server.tls: no TLS versions in common with the crypto provider")?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            handshake_timeout: config.handshake_timeout,
            certificate,
            reload_check: config.reload_check,
        })
    }

    /// Checks the files every `reload_check` until dropped (the caller aborts it).
    pub async fn watch_files(self) {
        let mut ticks = tokio::time::interval(self.reload_check);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.certificate.reload_if_changed().await;
        }
    }
}

/// The files' modification times and sizes: what "changed" means.
type Stamp = [(Option<SystemTime>, u64); 2];

struct Loaded {
    key: CertifiedKey,
    stamp: Stamp,
}

/// The certificate served to every handshake, swapped in place when the files change.
struct ReloadingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
    files: (PathBuf, PathBuf),
    seen: RwLock<Stamp>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("cert_file", &self.files.0)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        Some(current.clone())
    }
}

impl ReloadingCertificate {
    async fn reload_if_changed(&self) {
        let (cert_file, key_file) = (self.files.0.clone(), self.files.1.clone());
        let stamp = stamp_of(&cert_file, &key_file).await;
        if *self.seen.read().unwrap_or_else(|p| p.into_inner()) == stamp {
            return;
        }
        // Remembered whether or not the pair loads: a half-written pair is tried again when a
        // file changes again (the writer finishing), not logged on every tick.
        *self.seen.write().unwrap_or_else(|p| p.into_inner()) = stamp;
        let provider = self.provider.clone();
        let loaded =
            tokio::task::spawn_blocking(move || load_pair(&cert_file, &key_file, &provider))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|loaded| loaded);
        match loaded {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded.key);
                *self.seen.write().unwrap_or_else(|p| p.into_inner()) = loaded.stamp;
                metrics::counter!("gateway_tls_reloads_total", "outcome" => "loaded").increment(1);
                tracing::info!(cert_file = %self.files.0.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                metrics::counter!("gateway_tls_reloads_total", "outcome" => "failed").increment(1);
                tracing::warn!(
                    cert_file = %self.files.0.display(), error = %format!("{error:#}"),
                    "TLS files changed but do not load; still serving the previous certificate"
                );
            }
        }
    }
}

async fn stamp_of(cert_file: &Path, key_file: &Path) -> Stamp {
    let mut stamp = [(None, 0); 2];
    for (slot, path) in stamp.iter_mut().zip([cert_file, key_file]) {
        if let Ok(meta) = tokio::fs::metadata(path).await {
            *slot = (meta.modified().ok(), meta.len());
        }
    }
    stamp
}

/// Reads and checks one certificate chain and its key (the key must belong to the first
/// certificate). Errors name the file, never its contents.
fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<Loaded> {
    let stamp_before = std::fs::metadata(cert_file)
        .and_then(|c| std::fs::metadata(key_file).map(|k| (c, k)))
        .with_context(|| {
            format!(
                "server.tls: cannot read {} or {}",
                cert_file.display(),
                key_file.display()
            )
        })?;
    let cert_pem = std::fs::read(cert_file)
        .with_context(|| format!("server.tls.cert_file: cannot read {}", cert_file.display()))?;
    let key_pem = std::fs::read(key_file)
        .with_context(|| format!("server.tls.key_file: cannot read {}", key_file.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "server.tls.cert_file: {} is not PEM certificates: {e}",
                cert_file.display()
            )
        })?;
    if chain.is_empty() {
        bail!(
            "server.tls.cert_file: {} holds no certificate",
            cert_file.display()
        );
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        anyhow::anyhow!(
            "server.tls.key_file: {} holds no PEM private key",
            key_file.display()
        )
    })?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!(
            "server.tls: the key in {} does not fit the certificate in {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    let (cert_meta, key_meta) = stamp_before;
    Ok(Loaded {
        key,
        stamp: [
            (cert_meta.modified().ok(), cert_meta.len()),
            (key_meta.modified().ok(), key_meta.len()),
        ],
    })
}
