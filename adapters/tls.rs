//! TLS with rustls (ring provider): a server configuration from PEM files.
//!
//! Every generation calls [`server_config`] when it starts, so a restart
//! serves whatever certificate is on disk by then: replace the files, then
//! restart, and the certificate is rotated without dropping a connection.
//! Connections accepted by the old generation keep the old certificate until
//! they close.
//!
//! ```no_run
//! # async fn example() -> Result<(), handoff::Error> {
//! let config = handoff::tls::server_config("/etc/app/cert.pem", "/etc/app/key.pem")?;
//! # #[cfg(feature = "hyper")]
//! let server = handoff::hyper::Server::new().tls(config);
//! # Ok(()) }
//! ```
//!
//! The configuration offers ALPN `h2` and `http/1.1`, TLS 1.2 and 1.3, and no
//! client authentication. Build a [`rustls::ServerConfig`] yourself for
//! anything else; this module re-exports the `rustls` and `tokio_rustls`
//! versions handoff is built with.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

pub use rustls;
pub use tokio_rustls;

/// Reads a PEM certificate chain (leaf first) and its PEM private key (PKCS#8,
/// PKCS#1 or SEC1) and builds a server configuration with the ring provider
/// and ALPN `h2`, `http/1.1`.
///
/// Errors name the file that cannot be read or parsed, or both files when the
/// key does not match the certificate.
pub fn server_config(
    cert_chain: impl AsRef<Path>,
    private_key: impl AsRef<Path>,
) -> Result<Arc<rustls::ServerConfig>> {
    let (cert_path, key_path) = (cert_chain.as_ref(), private_key.as_ref());
    let certs = load_certificates(cert_path)?;
    let key = load_private_key(key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            what: "configuration",
            path: cert_path.to_owned(),
            reason: format!("cannot configure protocol versions: {e}"),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls {
            what: "certificate",
            path: cert_path.to_owned(),
            reason: format!("cannot be used with the key {}: {e}", key_path.display()),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads every certificate of a PEM file, in order.
pub fn load_certificates(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let pem = read(path, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "certificate", pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    let pem = read(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| pem_error(path, "private key", e))
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::io(format!("cannot read TLS {what} file {}", path.display()), e))
}

fn pem_error(path: &Path, what: &'static str, e: pem::Error) -> Error {
    let reason = match e {
        pem::Error::NoItemsFound => format!("no PEM {what} found"),
        other => format!("cannot parse: {other}"),
    };
    Error::Tls {
        what,
        path: path.to_owned(),
        reason,
    }
}
