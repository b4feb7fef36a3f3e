//! [`Certificate`], a root certificate to trust, and the client's one TLS connector made from
//! its settings (the TLS methods of [`ClientBuilder`](crate::ClientBuilder), in `Config`).
//! The handshake itself is `conn::start_tls`, over [`net::tls`](crate::net::tls).

use std::fmt;

use crate::net::tls::rustls::pki_types::pem::PemObject;
use crate::net::tls::rustls::pki_types::CertificateDer;
use crate::net::tls::{TlsConfig, TlsConnector};

use super::error::{Error, Kind};

/// A root certificate to trust, for
/// [`ClientBuilder::add_root_certificate`](crate::ClientBuilder::add_root_certificate): a
/// private CA, or a self-signed server certificate.
///
/// ```no_run
/// let pem = std::fs::read("private-ca.pem")?;
/// let ca = volley::Certificate::from_pem(&pem)?;
/// let client = volley::Client::builder().add_root_certificate(ca).build();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Certificate {
    der: CertificateDer<'static>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("der_len", &self.der.len())
            .finish()
    }
}

impl Certificate {
    /// The first `CERTIFICATE` block of PEM text. Fails with [`Kind::Tls`] if there is none
    /// or it is not valid base64.
    pub fn from_pem(pem: &[u8]) -> Result<Certificate, Error> {
        match CertificateDer::pem_slice_iter(pem).next() {
            Some(Ok(der)) => Ok(Certificate { der }),
            Some(Err(e)) => Err(Error::new(Kind::Tls(format!(
                "invalid PEM certificate: {e}"
            )))),
            None => Err(Error::new(Kind::Tls(
                "no CERTIFICATE block in the PEM text".into(),
            ))),
        }
    }

    /// Every `CERTIFICATE` block of a PEM bundle (at least one).
    pub fn from_pem_bundle(pem: &[u8]) -> Result<Vec<Certificate>, Error> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .map(|c| c.map(|der| Certificate { der }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::new(Kind::Tls(format!("invalid PEM certificate: {e}"))))?;
        if certs.is_empty() {
            return Err(Error::new(Kind::Tls(
                "no CERTIFICATE block in the PEM text".into(),
            )));
        }
        Ok(certs)
    }

    /// A DER-encoded certificate. Fails with [`Kind::Tls`] if it is not a DER `SEQUENCE`;
    /// the certificate itself is checked when the client is built
    /// ([`ClientBuilder::try_build`](crate::ClientBuilder::try_build)).
    pub fn from_der(der: &[u8]) -> Result<Certificate, Error> {
        if der.first() != Some(&0x30) || der.len() < 4 {
            return Err(Error::new(Kind::Tls(
                "not a DER-encoded certificate".into(),
            )));
        }
        Ok(Certificate {
            der: CertificateDer::from(der.to_vec()),
        })
    }

    /// The certificate, DER-encoded.
    pub fn as_der(&self) -> &[u8] {
        &self.der
    }
}

/// Builds the client's one connector, shared by all its connections (so TLS sessions resume).
pub(crate) fn connector(config: &TlsConfig) -> Result<TlsConnector, Error> {
    config
        .build()
        .map_err(|e| Error::new(Kind::Tls(e.to_string())))
}
