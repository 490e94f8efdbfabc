//! HTTPS: turns the configured PEM certificate chain and private key into the rustls server
//! configuration every listener serves with. A file that is missing, unreadable, not PEM, or a
//! key that does not match the certificate is refused here, naming the file, before anything
//! listens. The crypto provider is ring, named explicitly (never the process default).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read the TLS {what}: {error}")]
    Read {
        path: PathBuf,
        what: &'static str,
        /// Not a `source`: the message says it already.
        error: std::io::Error,
    },
    /// Names the file and what is wrong with its PEM (never the key's bytes).
    #[error("{path}: not a PEM {what}: {reason}")]
    NotPem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("{key_file}: the private key does not match the certificate in {cert_file}")]
    KeyMismatch {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    #[error("{cert_file}, {key_file}: rustls refuses the certificate and key: {error}")]
    Refused {
        cert_file: PathBuf,
        key_file: PathBuf,
        error: rustls::Error,
    },
}

/// What a PEM file holds.
#[derive(Debug, Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

impl Pem {
    fn name(self) -> &'static str {
        match self {
            Pem::Certificate => "certificate",
            Pem::PrivateKey => "private key",
        }
    }

    /// The section a file of this kind must have.
    fn begin_line(self) -> &'static str {
        match self {
            Pem::Certificate => "-----BEGIN CERTIFICATE-----",
            Pem::PrivateKey => "-----BEGIN PRIVATE KEY----- (or RSA PRIVATE KEY, EC PRIVATE KEY)",
        }
    }
}

/// The server configuration for `files`: TLS 1.2 and 1.3, HTTP/1.1 (actix-web offers it by
/// ALPN; its `http2` feature is off).
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let cert_chain = read_certificates(&files.cert_file)?;
    let key = read_private_key(&files.key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let refused = |error| match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                cert_file: files.cert_file.clone(),
                key_file: files.key_file.clone(),
            }
        }
        error => TlsError::Refused {
            cert_file: files.cert_file.clone(),
            key_file: files.key_file.clone(),
            error,
        },
    };
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)
        .map_err(refused)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, Pem::Certificate)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| not_pem(path, Pem::Certificate, error))?;
    if chain.is_empty() {
        return Err(not_pem(path, Pem::Certificate, pem::Error::NoItemsFound));
    }
    Ok(chain)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, Pem::PrivateKey)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| not_pem(path, Pem::PrivateKey, error))
}

fn read(path: &Path, what: Pem) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        what: what.name(),
        error,
    })
}

/// Says what is wrong in words (the PEM parser's own messages print bytes as numbers).
fn not_pem(path: &Path, what: Pem, error: pem::Error) -> TlsError {
    let reason = match error {
        pem::Error::NoItemsFound => format!("no {} section found", what.begin_line()),
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".to_string(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_string(),
        pem::Error::Base64Decode(_) => "a section is not valid base64".to_string(),
        other => other.to_string(),
    };
    TlsError::NotPem {
        path: path.to_path_buf(),
        what: what.name(),
        reason,
    }
}
