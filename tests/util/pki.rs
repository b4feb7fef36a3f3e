//! Test certificates made with rcgen at test time, shared by `tests/tls.rs` and
//! `tests/https.rs` (included with `#[path]`): a trusted CA, a good leaf for `localhost` and
//! 127.0.0.1, an expired one, one for another name, and one from a CA nobody trusts.
#![allow(dead_code)]

use std::sync::OnceLock;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
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
    PKI.get_or_init(|| {
        let ca = make_ca("volley test CA");
        let other_ca = make_ca("volley untrusted CA");
        Pki {
            ca_pem: ca.pem(),
            good: make_leaf(&["localhost", "127.0.0.1"], &ca, false),
            expired: make_leaf(&["localhost", "127.0.0.1"], &ca, true),
            wrong_name: make_leaf(&["wrong.example"], &ca, false),
            unknown_ca: make_leaf(&["localhost", "127.0.0.1"], &other_ca, false),
        }
    })
}

pub fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

pub fn make_leaf(names: &[&str], ca: &CertifiedIssuer<'static, KeyPair>, expired: bool) -> Leaf {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    Leaf {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}
