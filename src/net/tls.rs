//! TLS on the reactor: [`TlsConfig`] and [`TlsConnector`] (a rustls client configuration),
//! the hand-written [`Handshake`] future, and [`TlsStream`], a [`TcpStream`] carrying a
//! rustls client session.
//!
//! rustls is sans-IO: it turns plaintext into TLS records and records back into plaintext,
//! and never touches a socket. This module moves the ciphertext between rustls and our
//! non-blocking socket through `read_tls` / `write_tls`, over a small adapter that turns the
//! socket's `Poll::Pending` into `WouldBlock` (the task's waker is already stored in the
//! reactor by then). So a TLS stream waits exactly as a TCP stream does: on the direction the
//! kernel said would block, and never in a loop.
//!
//! ```no_run
//! use volley::net::tls::{server_name, TlsConnector};
//! use volley::{Runtime, TcpStream};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let connector = TlsConnector::new()?; // Mozilla's roots, ALPN "http/1.1"
//!     let tcp = TcpStream::connect("93.184.215.14:443".parse().unwrap()).await?;
//!     let mut tls = connector.connect(server_name("example.com")?, tcp).await?;
//!     tls.write_all(b"GET / HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\n\r\n")
//!         .await?;
//!     let mut response = Vec::new();
//!     tls.read_to_end(&mut response).await?;
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Certificate failures say why: [`TlsErrorKind::of`] reads an error from this module and
//! tells an expired certificate from an unknown issuer or a wrong name.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::net::{IpAddr, Ipv6Addr, Shutdown as TcpShutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, Connection, DigitallySignedStruct,
    RootCertStore, ServerConfig, ServerConnection, SignatureScheme,
};

use crate::net::tcp_stream::TcpStream;

/// The rustls crate this module is built on, for [`TlsConnector::from_config`] and for the
/// types [`TlsStream::connection`] and [`rustls_error`] hand out.
pub use rustls;

/// The ALPN protocol identifier of HTTP/1.1, which [`TlsConfig`] offers by default.
pub const ALPN_HTTP_11: &[u8] = b"http/1.1";

// ---------------------------------------------------------------------------------------------
// Configuration

/// Settings for a [`TlsConnector`]: which roots to trust, whether to check certificates at
/// all, and the ALPN protocols to offer.
///
/// The default trusts Mozilla's root certificates (built in, from `webpki-roots`), checks
/// every certificate and offers ALPN `http/1.1`. TLS 1.2 and 1.3 are enabled, with rustls's
/// *ring* provider and its safe defaults.
///
/// ```no_run
/// use volley::net::tls::TlsConfig;
///
/// // Trust a private CA only.
/// let connector = TlsConfig::new()
///     .built_in_roots(false)
///     .add_root_certificates_pem(std::fs::read("private-ca.pem")?)
///     .build()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TlsConfig {
    built_in_roots: bool,
    #[cfg(feature = "native-roots")]
    native_roots: bool,
    /// Extra roots given as DER, checked when [`build`](Self::build) runs.
    roots_der: Vec<CertificateDer<'static>>,
    /// Extra roots given as PEM text, parsed when [`build`](Self::build) runs.
    roots_pem: Vec<Vec<u8>>,
    accept_invalid_certs: bool,
    alpn: Vec<Vec<u8>>,
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig::new()
    }
}

impl TlsConfig {
    /// The default settings: Mozilla's roots, certificates checked, ALPN `http/1.1`.
    pub fn new() -> TlsConfig {
        TlsConfig {
            built_in_roots: true,
            #[cfg(feature = "native-roots")]
            native_roots: false,
            roots_der: Vec::new(),
            roots_pem: Vec::new(),
            accept_invalid_certs: false,
            alpn: vec![ALPN_HTTP_11.to_vec()],
        }
    }

    /// Whether to trust Mozilla's root certificates, built into the binary (on by default).
    /// Turn it off to trust only the roots added here, such as a private CA.
    pub fn built_in_roots(mut self, enabled: bool) -> TlsConfig {
        self.built_in_roots = enabled;
        self
    }

    /// Whether to trust the platform's root certificates as well (off by default). They are
    /// loaded when [`build`](Self::build) runs; a certificate that cannot be parsed is
    /// skipped.
    #[cfg(feature = "native-roots")]
    pub fn native_roots(mut self, enabled: bool) -> TlsConfig {
        self.native_roots = enabled;
        self
    }

    /// Trusts one more root certificate, DER-encoded. It is parsed when
    /// [`build`](Self::build) runs, which fails if it is not a usable certificate.
    pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> TlsConfig {
        self.roots_der.push(CertificateDer::from(der.into()));
        self
    }

    /// Trusts every `CERTIFICATE` in a PEM bundle. It is parsed when
    /// [`build`](Self::build) runs, which fails if the bundle holds no certificate.
    pub fn add_root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> TlsConfig {
        self.roots_pem.push(pem.as_ref().to_vec());
        self
    }

    /// **Dangerous.** Accepts any server certificate: expired, self-signed, issued for
    /// another name, or by an unknown CA. Anyone on the path can then read and change the
    /// traffic. For tests against throwaway certificates only; never the default.
    ///
    /// The handshake signatures are still verified, so the server must hold the private key
    /// of the certificate it shows; which certificate that is goes unchecked.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> TlsConfig {
        self.accept_invalid_certs = accept;
        self
    }

    /// The ALPN protocols to offer, most preferred first (default: `http/1.1` alone). An
    /// empty list sends no ALPN extension.
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> TlsConfig {
        self.alpn = protocols;
        self
    }

    /// Builds the connector. Fails with [`io::ErrorKind::InvalidData`] if an added root
    /// certificate cannot be parsed, and with [`io::ErrorKind::InvalidInput`] if a PEM bundle
    /// holds no certificate or no root would be trusted at all.
    pub fn build(&self) -> io::Result<TlsConnector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut config = if self.accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(self.root_store()?)
                .with_no_client_auth()
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(TlsConnector::from_config(Arc::new(config)))
    }

    /// The roots to trust: built-in, native, then the ones added.
    fn root_store(&self) -> io::Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        if self.built_in_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        #[cfg(feature = "native-roots")]
        if self.native_roots {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
        for der in &self.roots_der {
            roots
                .add(der.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        for pem in &self.roots_pem {
            let mut found = false;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                roots
                    .add(cert)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                found = true;
            }
            if !found {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no CERTIFICATE block in the PEM root bundle",
                ));
            }
        }
        if roots.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no root certificate to trust: built-in roots are off and none was added",
            ));
        }
        Ok(roots)
    }
}

/// The verifier behind [`TlsConfig::danger_accept_invalid_certs`]: any certificate passes,
/// but the handshake signatures are checked against it with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server name to check a certificate against, from a URL's host.
///
/// An IP address, IPv6 in brackets or not, becomes [`ServerName::IpAddress`]: the
/// certificate's IP-address SANs are checked and no SNI is sent (SNI carries DNS names only).
/// Anything else must be a valid DNS name; it is sent as SNI and checked against the DNS
/// SANs. Fails with [`io::ErrorKind::InvalidInput`] otherwise.
pub fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    let invalid = |why: &dyn fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a valid TLS server name: {why}"),
        )
    };
    // Brackets hold an IPv6 address, as in a URL, and nothing else.
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip = inner.parse::<Ipv6Addr>().map_err(|e| invalid(&e))?;
        return Ok(ServerName::IpAddress(IpAddr::V6(ip).into()));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned()).map_err(|e| invalid(&e))
}

/// Makes TLS client sessions from one shared rustls configuration. Cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alpn: Vec<_> = self
            .config
            .alpn_protocols
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect();
        f.debug_struct("TlsConnector")
            .field("alpn", &alpn)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// A connector with the default [`TlsConfig`]: Mozilla's roots, ALPN `http/1.1`.
    pub fn new() -> io::Result<TlsConnector> {
        TlsConfig::new().build()
    }

    /// A connector over a rustls configuration built by hand (client certificates, other
    /// cipher suites, a custom verifier...).
    pub fn from_config(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector { config }
    }

    /// The rustls configuration every session starts from.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Starts a TLS session on a connected `stream` and returns the future of its handshake,
    /// which resolves once the handshake is done and every handshake byte is on the wire.
    ///
    /// The certificate is checked against `server_name` (see [`server_name`]). A certificate
    /// failure is an [`io::ErrorKind::InvalidData`] error whose inner error is the
    /// [`rustls::Error`]; [`TlsErrorKind::of`] says what was wrong. The handshake has no
    /// timeout of its own: wrap it in [`crate::timeout`]; dropping it closes the socket.
    pub fn connect(&self, server_name: ServerName<'static>, stream: TcpStream) -> Handshake {
        let state = match ClientConnection::new(self.config.clone(), server_name) {
            Ok(tls) => HandshakeState::Handshaking(TlsStream::new(stream, tls.into())),
            Err(e) => HandshakeState::Failed(io::Error::new(io::ErrorKind::InvalidInput, e)),
        };
        Handshake { state }
    }
}

/// Makes TLS server sessions from one shared rustls configuration, for a server on the
/// reactor (the embedded test server's HTTPS mode). Cheap to clone.
///
/// The server side of [`TlsStream`] works as the client side does, with the roles of the
/// handshake's flights swapped: [`accept`](Self::accept) reads the ClientHello first.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor").finish_non_exhaustive()
    }
}

impl PartialEq for TlsAcceptor {
    /// Two acceptors are equal if they share one configuration.
    fn eq(&self, other: &TlsAcceptor) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for TlsAcceptor {}

impl TlsAcceptor {
    /// An acceptor presenting the certificate chain of `cert_chain_pem` (leaf first) with the
    /// private key of `key_pem` (PKCS#8, PKCS#1 or SEC1), offering ALPN `http/1.1`, TLS 1.2
    /// and 1.3. Fails with [`io::ErrorKind::InvalidInput`] if either is missing or they do not
    /// match.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> io::Result<TlsAcceptor> {
        let invalid =
            |e: &dyn fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        if chain.is_empty() {
            return Err(invalid(
                &"no CERTIFICATE block in the PEM certificate chain",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| invalid(&e))?;
        config.alpn_protocols = vec![ALPN_HTTP_11.to_vec()];
        Ok(TlsAcceptor::from_config(Arc::new(config)))
    }

    /// An acceptor over a rustls server configuration built by hand.
    pub fn from_config(config: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor { config }
    }

    /// Starts a TLS server session on an accepted `stream` and returns the future of its
    /// handshake. It has no timeout of its own: wrap it in [`crate::timeout`].
    pub fn accept(&self, stream: TcpStream) -> Handshake {
        let state = match ServerConnection::new(self.config.clone()) {
            Ok(tls) => HandshakeState::Handshaking(TlsStream::new(stream, tls.into())),
            Err(e) => HandshakeState::Failed(io::Error::new(io::ErrorKind::InvalidInput, e)),
        };
        Handshake { state }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a TLS connection failed, read from an [`io::Error`] of this module by
/// [`TlsErrorKind::of`]: the first four are certificate problems a user can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The server's certificate, or one in its chain, has expired.
    CertExpired,
    /// The server's certificate, or one in its chain, is not valid yet (or the clock is off).
    CertNotYetValid,
    /// The chain does not lead to a trusted root: self-signed, a private CA that was not
    /// added to the [`TlsConfig`], or a missing intermediate certificate.
    UnknownIssuer,
    /// The certificate is valid, but not for the host name or IP address connected to.
    WrongName,
    /// The certificate was refused for another reason: revoked, badly signed, malformed, not
    /// meant for TLS servers, or absent.
    InvalidCert,
    /// The handshake or the record layer failed for a reason other than the certificate: an
    /// alert from the server, no protocol version or cipher suite in common, a malformed or
    /// unexpected message, a record that failed to decrypt.
    Protocol,
    /// Anything else rustls reports (no randomness, no clock...).
    Other,
}

impl TlsErrorKind {
    /// The kind of a TLS error from this module, or `None` if `err` is not one (a plain I/O
    /// error such as a reset, or [`io::ErrorKind::UnexpectedEof`] for a close without
    /// `close_notify`).
    pub fn of(err: &io::Error) -> Option<TlsErrorKind> {
        rustls_error(err).map(TlsErrorKind::from_rustls)
    }

    /// The kind of a rustls error.
    pub fn from_rustls(err: &rustls::Error) -> TlsErrorKind {
        use rustls::Error as E;
        match err {
            E::InvalidCertificate(cert) => match cert {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsErrorKind::CertExpired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsErrorKind::CertNotYetValid
                }
                CertificateError::UnknownIssuer => TlsErrorKind::UnknownIssuer,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsErrorKind::WrongName,
                _ => TlsErrorKind::InvalidCert,
            },
            E::NoCertificatesPresented
            | E::UnsupportedNameType
            | E::InvalidCertRevocationList(_) => TlsErrorKind::InvalidCert,
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::PeerIncompatible(_)
            | E::PeerMisbehaved(_)
            | E::AlertReceived(_)
            | E::DecryptError
            | E::PeerSentOversizedRecord
            | E::NoApplicationProtocol
            | E::HandshakeNotComplete
            | E::InvalidEncryptedClientHello(_) => TlsErrorKind::Protocol,
            _ => TlsErrorKind::Other,
        }
    }

    /// True for the certificate kinds: [`CertExpired`](Self::CertExpired),
    /// [`CertNotYetValid`](Self::CertNotYetValid), [`UnknownIssuer`](Self::UnknownIssuer),
    /// [`WrongName`](Self::WrongName) and [`InvalidCert`](Self::InvalidCert).
    pub fn is_certificate(self) -> bool {
        matches!(
            self,
            TlsErrorKind::CertExpired
                | TlsErrorKind::CertNotYetValid
                | TlsErrorKind::UnknownIssuer
                | TlsErrorKind::WrongName
                | TlsErrorKind::InvalidCert
        )
    }
}

impl fmt::Display for TlsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsErrorKind::CertExpired => "certificate expired",
            TlsErrorKind::CertNotYetValid => "certificate not valid yet",
            TlsErrorKind::UnknownIssuer => "certificate issued by an unknown authority",
            TlsErrorKind::WrongName => "certificate not valid for this name",
            TlsErrorKind::InvalidCert => "invalid certificate",
            TlsErrorKind::Protocol => "TLS protocol error",
            TlsErrorKind::Other => "TLS error",
        })
    }
}

/// The rustls error inside an [`io::Error`] from this module, if there is one.
///
/// The TLS errors are `io::Error::new(InvalidData, rustls_error)`: the rustls error is the
/// io::Error's inner error ([`io::Error::get_ref`]), and `Display` shows it.
pub fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A rustls error as an I/O error, keeping it as the inner error.
fn tls_error(err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

// ---------------------------------------------------------------------------------------------
// The stream

/// A TLS client session over a [`TcpStream`], driven by the runtime's reactor.
///
/// rustls holds the session: a buffer of ciphertext to send, one of ciphertext received and
/// one of decrypted plaintext. This type moves ciphertext between those buffers and the
/// socket; every syscall goes through [`TcpStream::poll_read`] or
/// [`TcpStream::poll_write_vectored`], so a `WouldBlock` clears the direction's readiness and
/// stores the task's waker, and `Poll::Pending` always waits for an event.
///
/// | state | rustls call | syscall | `Pending` until |
/// |---|---|---|---|
/// | handshake, records queued ([`Handshake`]) | `write_tls` | `writev` | WRITABLE |
/// | handshake, awaiting the server's flight | `read_tls`, `process_new_packets` | `read` | READABLE |
/// | reading, plaintext buffered | `reader().read` | none | — |
/// | reading, nothing decrypted | `read_tls`, `process_new_packets` | `read`, ≤ 4 KiB each | READABLE |
/// | writing | `writer().write` (encrypt, ≤ 64 KiB buffered), `write_tls` | `writev` | WRITABLE, if rustls's buffer is full |
/// | flushing ([`poll_flush`](Self::poll_flush)) | `write_tls` until `wants_write` is false | `writev` | WRITABLE |
/// | shutting down | `send_close_notify`, `write_tls` | `writev`, then `shutdown(SHUT_WR)` | WRITABLE |
///
/// The read side ends in one of three ways, which [`poll_read`](Self::poll_read) keeps apart:
/// the server's `close_notify` reads as `Ok(0)`; the TCP stream ending without one is an
/// [`io::ErrorKind::UnexpectedEof`] error (a truncation attack, or a careless server: a
/// close-delimited body must not be trusted then); a bad record is
/// [`io::ErrorKind::InvalidData`] with the [`rustls::Error`] inside.
///
/// Writes are encrypted into rustls's buffer and pushed to the socket as far as it takes
/// them, so [`poll_write`](Self::poll_write) may return before every byte is on the wire:
/// call [`poll_flush`](Self::poll_flush) (or [`flush`](Self::flush)) before waiting for a
/// reply. [`write_all`](Self::write_all) flushes by itself. While reading, bytes rustls
/// queued in reply (a TLS 1.3 key update) are sent along.
///
/// Dropping the stream closes the socket without `close_notify`; call
/// [`shutdown`](Self::shutdown) first for a clean close.
pub struct TlsStream {
    tcp: TcpStream,
    /// A client session, or a server one (from [`TlsAcceptor::accept`]).
    tls: Connection,
    write_side: WriteSide,
    /// The error rustls gave on the peer's records, if it did: once it has, the session is
    /// over, and every read reports it again (after the plaintext decrypted before it),
    /// without touching the socket.
    failed: Option<rustls::Error>,
    /// A socket error met after rustls had taken a write's bytes: that write said `Ok`, and
    /// the next one reports it.
    write_failed: Option<io::Error>,
}

/// How far [`TlsStream::poll_shutdown`] has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteSide {
    /// Writes are accepted.
    Open,
    /// `close_notify` is queued in rustls; it is being flushed.
    Closing,
    /// `close_notify` was sent and the TCP write side shut down.
    Closed,
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .field("handshaking", &self.tls.is_handshaking())
            .field("version", &self.tls.protocol_version())
            .field(
                "alpn",
                &self.tls.alpn_protocol().map(String::from_utf8_lossy),
            )
            .field("write_side", &self.write_side)
            .finish()
    }
}

/// `std::io::Read` and `Write` over our non-blocking socket, for rustls's `read_tls` and
/// `write_tls`: `Poll::Pending` becomes `WouldBlock`, by which time the socket has stored the
/// task's waker for that direction.
struct SyncIo<'a, 'b> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

fn would_block<T>(polled: Poll<io::Result<T>>) -> io::Result<T> {
    match polled {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl io::Read for SyncIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        would_block(self.tcp.poll_read(self.cx, buf))
    }
}

impl io::Write for SyncIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        would_block(self.tcp.poll_write(self.cx, buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        would_block(self.tcp.poll_write_vectored(self.cx, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // the socket buffers nothing of its own
    }
}

impl TlsStream {
    fn new(tcp: TcpStream, tls: Connection) -> TlsStream {
        TlsStream {
            tcp,
            tls,
            write_side: WriteSide::Open,
            failed: None,
            write_failed: None,
        }
    }

    /// Reads plaintext into `buf`. `Ok(0)` means the server sent `close_notify` (or `buf` is
    /// empty); a close without it is an [`io::ErrorKind::UnexpectedEof`] error.
    pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Read<'a> {
        Read::new(self, buf)
    }

    /// Encrypts some prefix of `buf` and returns how much; see
    /// [`poll_write`](Self::poll_write).
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> Write<'a> {
        Write::new(self, buf)
    }

    /// Writes all of `buf` and flushes: when it resolves, every byte is on the wire.
    pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> WriteAll<'a> {
        WriteAll::new(self, buf)
    }

    /// Sends every encrypted byte still buffered.
    pub fn flush(&mut self) -> Flush<'_> {
        Flush { stream: self }
    }

    /// Sends `close_notify`, flushes, and shuts down the TCP write side.
    pub fn shutdown(&mut self) -> Shutdown<'_> {
        Shutdown { stream: self }
    }

    /// Reads until the server's `close_notify`, appending to `buf`. Returns the number of
    /// bytes read. A close without `close_notify` is an error, the bytes so far kept in `buf`.
    pub fn read_to_end<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> ReadToEnd<'a> {
        ReadToEnd::new(self, buf)
    }

    /// Poll-style read, for hand-written state machines.
    ///
    /// Decrypted bytes already buffered are returned without a syscall. Otherwise the socket
    /// is read, and the records decrypted, until some plaintext comes out, the stream ends,
    /// or the socket would block.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.tls.reader().read(buf) {
                // `Ok(0)` with a non-empty `buf`: `close_notify` was received.
                Ok(n) => return Poll::Ready(Ok(n)),
                // Nothing decrypted, no `close_notify`, no EOF yet: more ciphertext needed.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // `UnexpectedEof`: the TCP stream ended without `close_notify`.
                Err(e) => return Poll::Ready(Err(e)),
            }
            // The plaintext decrypted before a bad record is all there is: then its error,
            // every time (rustls must not be given more ciphertext after one).
            if let Some(err) = &self.failed {
                return Poll::Ready(Err(tls_error(err.clone())));
            }
            if self.tls.wants_write() {
                // rustls queued a reply (a TLS 1.3 key update). Send what the socket takes;
                // if it is full, the reactor wakes us on WRITABLE as well. An error here is
                // left for the next write to report: the bytes to read may still be there.
                let _ = self.poll_write_tls(cx);
            }
            // `Ok(0)` (EOF) loops back once: the reader then says `Ok(0)` or `UnexpectedEof`.
            // A bad record loops back too, for the plaintext before it and then its error.
            match ready!(self.poll_read_tls(cx)) {
                Ok(_) => {}
                Err(_) if self.failed.is_some() => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Poll-style write, for hand-written state machines.
    ///
    /// Encrypts as much of `buf` as rustls's send buffer takes (up to 64 KiB buffered) and
    /// pushes ciphertext to the socket until it would block. Returns `Ok(n)` once `n > 0`
    /// bytes are accepted, which may be before they are on the wire: see
    /// [`poll_flush`](Self::poll_flush). `Pending` only while rustls's buffer is full and the
    /// socket is too.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_encrypt(cx, buf.is_empty(), |writer| writer.write(buf))
    }

    /// Poll-style vectored write: several buffers encrypted in one call, as
    /// [`poll_write`](Self::poll_write) does for one.
    pub fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let empty = bufs.iter().all(|b| b.is_empty());
        self.poll_encrypt(cx, empty, |writer| writer.write_vectored(bufs))
    }

    /// Poll-style flush: ready when every encrypted byte is on the wire.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_tls(cx)
    }

    /// Poll-style shutdown: queues `close_notify` (once), flushes, then shuts down the TCP
    /// write side. Reading stays possible, to see the server's own `close_notify`.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_side == WriteSide::Open {
            self.tls.send_close_notify();
            self.write_side = WriteSide::Closing;
        }
        if self.write_side == WriteSide::Closing {
            ready!(self.poll_write_tls(cx))?;
            match self.tcp.shutdown(TcpShutdown::Write) {
                // The peer may have reset the connection already; there is nothing to end.
                Err(e) if e.kind() != io::ErrorKind::NotConnected => {
                    return Poll::Ready(Err(e));
                }
                _ => {}
            }
            self.write_side = WriteSide::Closed;
        }
        Poll::Ready(Ok(()))
    }

    /// The ALPN protocol the server chose, if any (`Some(b"http/1.1")` with the default
    /// configuration and a server that speaks ALPN).
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.tls.alpn_protocol()
    }

    /// The rustls session (a client one, or a server one from [`TlsAcceptor::accept`]), for
    /// the protocol version, the cipher suite, the peer's certificates and the like.
    pub fn connection(&self) -> &Connection {
        &self.tls
    }

    /// The TCP stream underneath. Reading or writing it directly would corrupt the session.
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Drives the handshake: sends what rustls has queued, reads the server's flight, until
    /// the handshake is over and its last bytes are on the wire.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            // Our flight: the ClientHello, later the client's Finished. Pending: the reactor
            // wakes us on WRITABLE for this socket.
            ready!(self.poll_write_tls(cx))?;
            if !self.tls.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            // The server's flight. Pending: the reactor wakes us on READABLE.
            if ready!(self.poll_read_tls(cx))? == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                )));
            }
        }
    }

    /// Encrypts with `encrypt` and pushes ciphertext out: the body of `poll_write` and
    /// `poll_write_vectored`.
    fn poll_encrypt(
        &mut self,
        cx: &mut Context<'_>,
        empty: bool,
        mut encrypt: impl FnMut(&mut rustls::Writer<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if self.write_side != WriteSide::Open {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write on a TLS stream after shutdown",
            )));
        }
        if let Some(e) = self.write_failed.take() {
            return Poll::Ready(Err(e));
        }
        if empty {
            return Poll::Ready(Ok(0));
        }
        // Twice at most: a full buffer (0 taken) is flushed, then it takes bytes.
        for _ in 0..2 {
            let n = encrypt(&mut self.tls.writer())?;
            match self.poll_write_tls(cx) {
                // Taken: the bytes are rustls's now, so say so (a caller that retried after
                // an error would send them twice); the error is the next call's answer.
                Poll::Ready(Err(e)) if n > 0 => {
                    self.write_failed = Some(e);
                    return Poll::Ready(Ok(n));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                _ if n > 0 => return Poll::Ready(Ok(n)),
                // rustls's buffer is full and so is the socket: the reactor wakes us on
                // WRITABLE for this socket.
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {} // flushed: the buffer has room now
            }
        }
        Poll::Ready(Err(io::ErrorKind::WriteZero.into()))
    }

    /// Writes ciphertext from rustls to the socket until none is left (`Ready(Ok)`) or the
    /// socket would block (`Pending`, with the waker stored for WRITABLE).
    fn poll_write_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            let mut io = SyncIo {
                tcp: &mut self.tcp,
                cx,
            };
            match self.tls.write_tls(&mut io) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads ciphertext once from the socket (`Pending` if it would block, with the waker
    /// stored for READABLE) and has rustls process it. Returns the bytes read; 0 is EOF.
    fn poll_read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo {
            tcp: &mut self.tcp,
            cx,
        };
        let n = match self.tls.read_tls(&mut io) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Err(err) = self.tls.process_new_packets() {
            // rustls queued an alert saying why (bad_certificate...). Send it if the socket
            // takes it now; never wait for that.
            let _ = self.poll_write_tls(cx);
            self.failed = Some(err.clone());
            return Poll::Ready(Err(tls_error(err)));
        }
        Poll::Ready(Ok(n))
    }
}

// ---------------------------------------------------------------------------------------------
// Futures

/// The future of [`TlsConnector::connect`]: the handshake, flushed to the last byte.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Handshake {
    state: HandshakeState,
}

// The stream is what the future carries and hands out: boxing it would cost an allocation
// per connection to shrink states that exist only before the first poll or after the last.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum HandshakeState {
    /// rustls refused to start a session (a configuration it cannot use); handed out on the
    /// first poll.
    Failed(io::Error),
    /// Writing rustls's records while it has some queued, reading the server's flight while
    /// it is handshaking. The ClientHello is queued from the start.
    Handshaking(TlsStream),
    /// The stream or the error was handed out.
    Done,
}

impl Future for Handshake {
    type Output = io::Result<TlsStream>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<TlsStream>> {
        match std::mem::replace(&mut self.state, HandshakeState::Done) {
            HandshakeState::Failed(e) => Poll::Ready(Err(e)),
            HandshakeState::Handshaking(mut stream) => match stream.poll_handshake(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(stream)),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => {
                    // The reactor wakes us on READABLE or WRITABLE for this socket, whichever
                    // the handshake waits for.
                    self.state = HandshakeState::Handshaking(stream);
                    Poll::Pending
                }
            },
            HandshakeState::Done => panic!("Handshake polled after completion"),
        }
    }
}

/// The future of [`TlsStream::read`].
pub type Read<'a> = super::stream_futures::Read<'a, TlsStream>;

/// The future of [`TlsStream::write`].
pub type Write<'a> = super::stream_futures::Write<'a, TlsStream>;

/// The future of [`TlsStream::write_all`]: when it resolves, every byte is on the wire.
pub type WriteAll<'a> = super::stream_futures::WriteAll<'a, TlsStream>;

/// The future of [`TlsStream::read_to_end`].
pub type ReadToEnd<'a> = super::stream_futures::ReadToEnd<'a, TlsStream>;

impl super::stream_futures::sealed::PollStream for TlsStream {
    fn poll_read_bytes(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_read(cx, buf)
    }

    fn poll_write_bytes(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write(cx, buf)
    }

    fn poll_flush_bytes(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// The future of [`TlsStream::flush`]. No state of its own.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Flush<'a> {
    stream: &'a mut TlsStream,
}

impl Future for Flush<'_> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Pending: the reactor wakes us on WRITABLE for this socket.
        self.stream.poll_flush(cx)
    }
}

/// The future of [`TlsStream::shutdown`]. Its state is the stream's own write side.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Shutdown<'a> {
    stream: &'a mut TlsStream,
}

impl Future for Shutdown<'_> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Pending: the reactor wakes us on WRITABLE for this socket.
        self.stream.poll_shutdown(cx)
    }
}

#[cfg(feature = "futures-io")]
mod futures_io_impls {
    use super::*;

    impl futures_io::AsyncRead for TlsStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_read(cx, buf)
        }
    }

    impl futures_io::AsyncWrite for TlsStream {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write(cx, buf)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_vectored(cx, bufs)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_flush(cx)
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_shutdown(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hosts as URLs give them, and the server names they become.
    #[test]
    fn server_names_from_url_hosts() {
        let cases: &[(&str, Option<&str>)] = &[
            ("example.com", Some("DnsName(\"example.com\")")),
            ("localhost", Some("DnsName(\"localhost\")")),
            ("127.0.0.1", Some("IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))")),
            (
                "[::1]",
                Some("IpAddress(V6(Ipv6Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])))"),
            ),
            (
                "::1",
                Some("IpAddress(V6(Ipv6Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])))"),
            ),
            ("", None),
            ("bad host", None),
            ("[example.com]", None),
        ];
        for (host, expected) in cases {
            let got = server_name(host).ok().map(|n| format!("{n:?}"));
            assert_eq!(got.as_deref(), *expected, "host {host:?}");
        }
        let err = server_name("bad host").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// rustls errors and the kinds they map to; plain I/O errors have none.
    #[test]
    fn error_kinds() {
        use rustls::Error as E;
        let cases = [
            (
                E::InvalidCertificate(CertificateError::Expired),
                TlsErrorKind::CertExpired,
            ),
            (
                E::InvalidCertificate(CertificateError::NotValidYet),
                TlsErrorKind::CertNotYetValid,
            ),
            (
                E::InvalidCertificate(CertificateError::UnknownIssuer),
                TlsErrorKind::UnknownIssuer,
            ),
            (
                E::InvalidCertificate(CertificateError::NotValidForName),
                TlsErrorKind::WrongName,
            ),
            (
                E::InvalidCertificate(CertificateError::Revoked),
                TlsErrorKind::InvalidCert,
            ),
            (E::NoCertificatesPresented, TlsErrorKind::InvalidCert),
            (
                E::AlertReceived(rustls::AlertDescription::HandshakeFailure),
                TlsErrorKind::Protocol,
            ),
            (E::DecryptError, TlsErrorKind::Protocol),
            (E::General("x".into()), TlsErrorKind::Other),
        ];
        for (err, kind) in cases {
            let io_err = tls_error(err.clone());
            assert_eq!(io_err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(TlsErrorKind::of(&io_err), Some(kind), "{err:?}");
            assert_eq!(rustls_error(&io_err), Some(&err));
        }
        let plain = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(TlsErrorKind::of(&plain), None);
        assert!(TlsErrorKind::WrongName.is_certificate());
        assert!(!TlsErrorKind::Protocol.is_certificate());
    }

    /// Building a configuration: no roots at all, or a PEM bundle without a certificate,
    /// is refused at once rather than failing every handshake later.
    #[test]
    fn config_refuses_what_cannot_work() {
        let err = TlsConfig::new().built_in_roots(false).build().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = TlsConfig::new()
            .add_root_certificates_pem("no certificate here")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = TlsConfig::new()
            .add_root_certificate_der(vec![0x30, 0x03, 0x01, 0x01, 0xff])
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Danger mode needs no roots.
        TlsConfig::new()
            .built_in_roots(false)
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let connector = TlsConnector::new().unwrap();
        assert_eq!(
            connector.config().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
    }
}
