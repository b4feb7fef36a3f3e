//! HTTPS settings of the client: [`Certificate`] and the TLS methods of
//! [`ClientBuilder`]. The handshake itself is `conn::start_tls`, over
//! [`net::tls`](crate::net::tls).

use std::fmt;

use crate::net::tls::rustls::pki_types::pem::PemObject;
use crate::net::tls::rustls::pki_types::CertificateDer;
use crate::net::tls::{TlsConfig, TlsConnector};

use super::client::ClientBuilder;
use super::error::{Error, Kind};

/// A root certificate to trust, for [`ClientBuilder::add_root_certificate`]: a private CA, or
/// a self-signed server certificate.
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
    /// ([`ClientBuilder::try_build`]).
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

/// The TLS settings of `https://` requests (feature `tls`, on by default). The client trusts
/// Mozilla's root certificates (built in, from `webpki-roots`), offers ALPN `http/1.1`, and
/// speaks TLS 1.2 and 1.3 through rustls with its *ring* provider.
impl ClientBuilder {
    /// Trusts one more root certificate, such as a private CA (repeat for more). Checked when
    /// the client is built: [`try_build`](Self::try_build) fails with [`Kind::Tls`] if it is
    /// not a usable certificate.
    pub fn add_root_certificate(mut self, cert: Certificate) -> Self {
        self.config.tls = self.config.tls.add_root_certificate_der(cert.der.to_vec());
        self
    }

    /// Whether to trust Mozilla's root certificates, built in (default `true`). Turn off to
    /// trust only the certificates added with [`add_root_certificate`](Self::add_root_certificate)
    /// (a client with no root at all fails to build).
    pub fn tls_built_in_roots(mut self, enabled: bool) -> Self {
        self.config.tls = self.config.tls.built_in_roots(enabled);
        self
    }

    /// Whether to trust the platform's root certificates too (default `false`; feature
    /// `native-roots`). They are loaded when the client is built.
    #[cfg(feature = "native-roots")]
    pub fn tls_native_roots(mut self, enabled: bool) -> Self {
        self.config.tls = self.config.tls.native_roots(enabled);
        self
    }

    /// **Dangerous.** Accepts any server certificate: expired, self-signed, issued for another
    /// name or by an unknown CA (default `false`). Anyone on the path can then read and change
    /// the traffic, credentials included. For tests against throwaway certificates only.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.config.tls = self.config.tls.danger_accept_invalid_certs(accept);
        self
    }
}
