//! HTTPS: the server certificate and the rustls configuration.
//!
//! xapi keeps its key and certificate together in one PEM file (`xapi-ssl.pem`) that is
//! generated, self-signed, the first time the host starts; operators may replace it with
//! one signed by their own CA. We do the same in the data directory: `xapi-ssl.pem`
//! holds a private key and a certificate chain; if it is missing at start, a self-signed
//! certificate for the host name, `localhost` and the listen address is made and written
//! with mode 0600 (it contains the private key).

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

/// The certificate file's name in the data directory (xapi: `/etc/xensource/xapi-ssl.pem`).
pub const CERT_FILE: &str = "xapi-ssl.pem";

fn invalid(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// Writes a new self-signed certificate (with its key) to `path`, readable by the owner only.
pub fn generate(path: &Path, names: &[String]) -> io::Result<()> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| invalid(path, format!("cannot generate a certificate: {e}")))?;
    let pem = format!(
        "{}{}",
        certified.signing_key.serialize_pem(),
        certified.cert.pem()
    );
    let tmp = path.with_extension("pem.tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Loads `xapi-ssl.pem` from `data_dir`, generating it first if it does not exist, and
/// returns an acceptor for HTTP/1.1 over TLS 1.2/1.3.
pub fn acceptor(data_dir: &Path, names: &[String]) -> io::Result<TlsAcceptor> {
    let path = data_dir.join(CERT_FILE);
    if !path.exists() {
        generate(&path, names)?;
        tracing::info!("generated a self-signed certificate in {}", path.display());
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .map_err(|e| invalid(&path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&path, e))?;
    if certs.is_empty() {
        return Err(invalid(&path, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&path).map_err(|e| invalid(&path, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&path, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&path, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        acceptor(dir.path(), &names).unwrap();
        let path = dir.path().join(CERT_FILE);
        let first = std::fs::read(&path).unwrap();
        assert!(String::from_utf8_lossy(&first).contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        acceptor(dir.path(), &names).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
    }

    #[test]
    fn a_damaged_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CERT_FILE), "not a pem").unwrap();
        let err = acceptor(dir.path(), &["localhost".to_string()])
            .err()
            .expect("must fail");
        assert!(err.to_string().contains(CERT_FILE), "{err}");
    }
}
