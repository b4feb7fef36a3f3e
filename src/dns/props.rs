//! Property tests of the DNS message code: the parser never panics, on arbitrary bytes or on
//! mutations of a valid response, and a query built for any valid name is answered, through
//! the test responder, with exactly the addresses the responder put in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::packet::{encode_name, parse_response, DnsError, QType, Query, Question};
use crate::testing::dns_responder::{parse_query, RData, Response};

/// Cases per property. The module runs in about a second in a debug build.
const CASES: u32 = 512;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

/// A valid host name: 1 to 4 labels of letters, digits and hyphens, any case, maybe a
/// trailing dot, and sometimes one long label so names reach the 255-byte limit.
fn name() -> impl Strategy<Value = String> {
    let label = prop_oneof![
        8 => "[a-zA-Z0-9][a-zA-Z0-9-]{0,10}",
        1 => "[a-z]{63}",
    ];
    (vec(label, 1..5), any::<bool>())
        .prop_map(|(labels, dot)| {
            let mut name = labels.join(".");
            if dot {
                name.push('.');
            }
            name
        })
        .prop_filter("fits in 255 bytes", |name| encode_name(name).is_ok())
}

fn qtype() -> impl Strategy<Value = QType> {
    prop_oneof![Just(QType::A), Just(QType::Aaaa)]
}

/// A response to `question`, from a handful of shapes: addresses, a CNAME chain, NXDOMAIN.
fn response(name: String, qtype: QType) -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        vec(any::<[u8; 16]>(), 0..4),
        any::<bool>(),
        0u32..10_000,
    )
        .prop_map(move |(shape, raw, compress, ttl)| {
            let mut response = Response {
                compress,
                ..Response::to(1, &name, qtype.code())
            };
            let mut owner = name.clone();
            if shape % 3 == 1 {
                response = response.answer(&owner, ttl, RData::Cname("t.example".into()));
                owner = "t.example".into();
            }
            if shape % 5 == 2 {
                response.rcode = 3;
                response = response.authority(
                    "example",
                    ttl,
                    RData::Soa {
                        mname: "ns.example".into(),
                        rname: name.clone(),
                        minimum: 60,
                    },
                );
            }
            for bytes in raw {
                let data = match qtype {
                    QType::A => RData::A(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
                    QType::Aaaa => RData::Aaaa(Ipv6Addr::from(bytes)),
                };
                response = response.answer(&owner, ttl, data);
            }
            response.build()
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(Index, u8),
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
    Remove(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Remove),
    ]
}

fn apply(msg: &mut Vec<u8>, mutation: &Mutation) {
    if msg.is_empty() {
        return;
    }
    match mutation {
        Mutation::Set(i, b) => {
            let i = i.index(msg.len());
            msg[i] = *b;
        }
        Mutation::Flip(i, bit) => {
            let i = i.index(msg.len());
            msg[i] ^= 1 << bit;
        }
        Mutation::Truncate(i) => msg.truncate(i.index(msg.len())),
        Mutation::Insert(i, b) => msg.insert(i.index(msg.len() + 1), *b),
        Mutation::Remove(i) => {
            msg.remove(i.index(msg.len()));
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes, with a plausible header so the parser gets past the first checks.
    #[test]
    fn arbitrary_bytes_never_panic(
        mut msg in vec(any::<u8>(), 0..300),
        plausible in any::<bool>(),
        qtype in qtype(),
    ) {
        if plausible && msg.len() >= 4 {
            msg[..4].copy_from_slice(&[0, 1, 0x81, 0x80]);
        }
        let question = Question { id: 1, name: "www.example.com".into(), qtype };
        let got = parse_response(&msg, &question);
        if let Err(e) = got {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Valid responses mutated a few times: an answer or an error, never a panic; any
    /// addresses returned are of the type asked.
    #[test]
    fn mutated_responses_never_panic(
        (name, qtype, msg) in (name(), qtype()).prop_flat_map(|(name, qtype)| {
            (Just(name.clone()), Just(qtype), response(name, qtype))
        }),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut msg = msg;
        for m in &mutations {
            apply(&mut msg, m);
        }
        let question = Question { id: 1, name, qtype };
        if let Ok(answer) = parse_response(&msg, &question) {
            for addr in answer.addrs {
                prop_assert_eq!(addr.is_ipv4(), qtype == QType::A);
            }
        }
    }

    /// Query → responder → parser: the addresses come back, in order, for any valid name
    /// and whatever case the responder echoes it in.
    #[test]
    fn round_trip(
        name in name(),
        id in any::<u16>(),
        qtype in qtype(),
        raw in vec(any::<[u8; 16]>(), 1..6),
        ttl in 0u32..1_000_000,
        compress in any::<bool>(),
        upper in any::<bool>(),
    ) {
        let query = Query::new(id, &name, qtype).unwrap();
        let (got_id, got_name, got_type) = parse_query(&query.bytes).unwrap();
        prop_assert_eq!(got_id, id);
        prop_assert_eq!(&got_name, &name.trim_end_matches('.').to_ascii_lowercase());
        prop_assert_eq!(got_type, qtype.code());
        let echoed = if upper { got_name.to_ascii_uppercase() } else { got_name };
        let mut response = Response { compress, ..Response::to(id, &echoed, got_type) };
        let mut want: Vec<IpAddr> = Vec::new();
        for bytes in raw {
            let (addr, data) = match qtype {
                QType::A => {
                    let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
                    (IpAddr::V4(ip), RData::A(ip))
                }
                QType::Aaaa => {
                    let ip = Ipv6Addr::from(bytes);
                    (IpAddr::V6(ip), RData::Aaaa(ip))
                }
            };
            if !want.contains(&addr) {
                want.push(addr);
            }
            response = response.answer(&echoed, ttl, data);
        }
        let answer = parse_response(&response.build(), &query.question).unwrap();
        prop_assert_eq!(answer.addrs, want);
        prop_assert_eq!(answer.ttl, Some(ttl));
        prop_assert_eq!(answer.cname_target, None);
        // The same response checked against another ID is refused.
        let other = Question { id: id.wrapping_add(1), ..query.question };
        prop_assert!(
            matches!(
                parse_response(&response.build(), &other),
                Err(DnsError::WrongId { .. })
            ),
            "wrong id accepted"
        );
    }
}
