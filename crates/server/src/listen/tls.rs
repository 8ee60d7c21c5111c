//! TLS for the main listener: the certificate chain and key read from two PEM files,
//! offered with ALPN (`h2`, `http/1.1`), and read again on demand ([`Tls::reload`], which
//! the binary calls on SIGHUP) without dropping the pair in use when the new one is bad.
//!
//! Each connection takes the configuration current at its accept, so a reload reaches
//! new connections and leaves established ones as they are.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use tokio_rustls::TlsAcceptor;

/// Where the certificate chain and its private key are (PEM).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate file `{}`: {source}", path.display())]
    Cert {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error(
        "the TLS certificate file `{}` holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)",
        .0.display()
    )]
    NoCert(PathBuf),
    #[error(
        "cannot read a private key from the TLS key file `{}`: {source} (expected a PEM `PRIVATE KEY` block)",
        path.display()
    )]
    Key {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error(
        "cannot use the TLS key file `{}` with the certificate file `{}`: {source}",
        key.display(),
        cert.display()
    )]
    Config {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// The listener's TLS configuration, replaceable while serving.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Configs>,
}

#[derive(Clone)]
struct Configs {
    /// What connections are served with.
    serve: Arc<ServerConfig>,
    /// The same certificate offering only `http/1.1`, for connections refused over the
    /// connection cap: their answer is a fixed HTTP/1.1 response.
    refuse: Arc<ServerConfig>,
}

impl Tls {
    /// Reads the pair; an unreadable or mismatched pair is an error naming the file.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let current = RwLock::new(configs(&files)?);
        Ok(Tls { files, current })
    }

    /// Reads the files again and serves new connections with them. On an error the
    /// pair in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = configs(&self.files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The files this configuration comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    fn configs(&self) -> Configs {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.configs().serve)
    }

    pub(crate) fn refusal_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.configs().refuse)
    }
}

fn configs(files: &TlsFiles) -> Result<Configs, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Key {
        path: files.key.clone(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config_error = |source| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let mut serve = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(config_error)?;
    let mut refuse = serve.clone();
    serve.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    refuse.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Configs {
        serve: Arc::new(serve),
        refuse: Arc::new(refuse),
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |source| TlsError::Cert {
        path: path.to_path_buf(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(path.to_path_buf()));
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        };
        let err = Tls::load(files.clone()).err().unwrap().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let err = Tls::load(files).err().unwrap().to_string();
        assert!(
            err.contains("holds no certificate") && err.contains("cert.pem"),
            "{err}"
        );
    }
}
