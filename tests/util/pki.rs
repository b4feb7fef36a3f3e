//! Test certificates, shared by `tests/tls.rs` and `tests/https.rs` (included with `#[path]`):
//! a trusted CA, a good leaf for `localhost` and 127.0.0.1, an expired one, one for another
//! name, and one from a CA nobody trusts. **TEST-ONLY**: their private keys are public.
//!
//! They live in `tests/data/pki/` (the CA as PEM, each leaf's certificate and PKCS#8 key as
//! DER). They were made once with rcgen (ECDSA P-256; CAs with `keyCertSign`, leaves with
//! `serverAuth`) and committed, so that the tests need no certificate generator: the good ones
//! are valid from 1975 to 4096, the expired one only in 2020.
#![allow(dead_code)]

use std::sync::OnceLock;

use volley::net::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate chain and its private key, for the server.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Every certificate the tests use.
pub struct Pki {
    /// The trusted CA, as PEM (what a user would add).
    pub ca_pem: String,
    /// `localhost` and 127.0.0.1, by the trusted CA, valid 1975–4096.
    pub good: Leaf,
    /// `localhost` and 127.0.0.1, by the trusted CA, valid only in 2020.
    pub expired: Leaf,
    /// `wrong.example` only, by the trusted CA.
    pub wrong_name: Leaf,
    /// `localhost` and 127.0.0.1, by a CA that is not trusted.
    pub unknown_ca: Leaf,
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki {
        ca_pem: include_str!("../data/pki/ca.pem").to_owned(),
        good: leaf(
            include_bytes!("../data/pki/good.crt.der"),
            include_bytes!("../data/pki/good.key.der"),
        ),
        expired: leaf(
            include_bytes!("../data/pki/expired.crt.der"),
            include_bytes!("../data/pki/expired.key.der"),
        ),
        wrong_name: leaf(
            include_bytes!("../data/pki/wrong_name.crt.der"),
            include_bytes!("../data/pki/wrong_name.key.der"),
        ),
        unknown_ca: leaf(
            include_bytes!("../data/pki/unknown_ca.crt.der"),
            include_bytes!("../data/pki/unknown_ca.key.der"),
        ),
    })
}

fn leaf(cert: &'static [u8], key: &'static [u8]) -> Leaf {
    Leaf {
        chain: vec![CertificateDer::from(cert)],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
    }
}
