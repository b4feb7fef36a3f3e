//! **TEST-ONLY** certificates for the embedded server's HTTPS mode: a CA, and a certificate
//! it issued for `localhost`, 127.0.0.1 and ::1 with its private key, valid until the year
//! 4096. They were generated once with rcgen and committed; **the private keys are public**,
//! so anyone can impersonate a server with them. Never trust [`CA_PEM`] outside tests and
//! examples on loopback.
//!
//! ```
//! use volley_testserver::{testcert, ServerConfig};
//!
//! let config = ServerConfig::default().tls(testcert::CERT_PEM, testcert::KEY_PEM)?;
//! let ca = volley::Certificate::from_pem(testcert::CA_PEM)?; // for the client
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The TEST-ONLY CA certificate that issued [`CERT_PEM`]: what a client adds with
/// [`ClientBuilder::add_root_certificate`](volley::ClientBuilder::add_root_certificate).
pub const CA_PEM: &[u8] = include_bytes!("ca.pem");

/// The TEST-ONLY server certificate, for `localhost`, `127.0.0.1` and `::1`, issued by
/// [`CA_PEM`], as PEM.
pub const CERT_PEM: &[u8] = include_bytes!("localhost.pem");

/// The private key of [`CERT_PEM`], as PKCS#8 PEM. Public: TEST-ONLY.
pub const KEY_PEM: &[u8] = include_bytes!("localhost.key");
