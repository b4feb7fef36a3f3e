//! The responder side of DNS messages, for tests: read a query's question and build a
//! response to it, optionally compressing names that repeat the question's name (a pointer to
//! offset 12, as most servers do).
//!
//! It shares no code with the resolver's parser (`dns::packet`): names are written and read
//! here by hand, so that a bug in the parser's name code cannot hide in both.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Record data the builder knows how to write.
#[derive(Clone, Debug)]
pub(crate) enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    /// An SOA with these names; only its MINIMUM matters to the parser.
    Soa {
        mname: String,
        rname: String,
        minimum: u32,
    },
    /// Any type, these bytes.
    Raw(u16, Vec<u8>),
}

/// One resource record of class IN.
#[derive(Clone, Debug)]
pub(crate) struct Rr {
    pub(crate) name: String,
    pub(crate) ttl: u32,
    pub(crate) data: RData,
}

impl Rr {
    pub(crate) fn new(name: &str, ttl: u32, data: RData) -> Rr {
        Rr {
            name: name.to_owned(),
            ttl,
            data,
        }
    }
}

/// A response to build. `question` is `(name, type code)`; the name is written as given
/// (case kept), so tests can echo it in another case.
#[derive(Clone, Debug)]
pub(crate) struct Response {
    pub(crate) id: u16,
    pub(crate) qr: bool,
    pub(crate) opcode: u8,
    pub(crate) tc: bool,
    pub(crate) rcode: u8,
    pub(crate) question: Option<(String, u16)>,
    pub(crate) answers: Vec<Rr>,
    pub(crate) authority: Vec<Rr>,
    /// Write owner names and CNAME targets equal to the question's name as a pointer to it.
    pub(crate) compress: bool,
}

impl Response {
    /// A NOERROR response to `(id, name, qtype)` with no records.
    pub(crate) fn to(id: u16, name: &str, qtype: u16) -> Response {
        Response {
            id,
            qr: true,
            opcode: 0,
            tc: false,
            rcode: 0,
            question: Some((name.to_owned(), qtype)),
            answers: Vec::new(),
            authority: Vec::new(),
            compress: false,
        }
    }

    /// Adds an answer record.
    pub(crate) fn answer(mut self, name: &str, ttl: u32, data: RData) -> Response {
        self.answers.push(Rr::new(name, ttl, data));
        self
    }

    /// Adds an authority record.
    pub(crate) fn authority(mut self, name: &str, ttl: u32, data: RData) -> Response {
        self.authority.push(Rr::new(name, ttl, data));
        self
    }

    /// The message bytes.
    pub(crate) fn build(&self) -> Vec<u8> {
        let mut msg = Vec::new();
        msg.extend_from_slice(&self.id.to_be_bytes());
        let mut flags = 0x0100 | 0x0080; // RD echoed, RA
        if self.qr {
            flags |= 0x8000;
        }
        if self.tc {
            flags |= 0x0200;
        }
        flags |= u16::from(self.opcode & 0xf) << 11;
        flags |= u16::from(self.rcode & 0xf);
        msg.extend_from_slice(&flags.to_be_bytes());
        let counts = [
            u16::from(self.question.is_some()),
            self.answers.len() as u16,
            self.authority.len() as u16,
            0,
        ];
        for count in counts {
            msg.extend_from_slice(&count.to_be_bytes());
        }
        let qname = self.question.as_ref().map(|(name, _)| lower_wire(name));
        if let Some((name, qtype)) = &self.question {
            msg.extend_from_slice(&wire_keep_case(name));
            msg.extend_from_slice(&qtype.to_be_bytes());
            msg.extend_from_slice(&1u16.to_be_bytes());
        }
        let name = |msg: &mut Vec<u8>, name: &str| {
            if self.compress && qname.as_deref() == Some(&lower_wire(name)[..]) {
                msg.extend_from_slice(&[0xc0, 12]);
            } else {
                msg.extend_from_slice(&wire_keep_case(name));
            }
        };
        for rr in self.answers.iter().chain(&self.authority) {
            name(&mut msg, &rr.name);
            let rtype = match &rr.data {
                RData::A(_) => 1u16,
                RData::Aaaa(_) => 28,
                RData::Cname(_) => 5,
                RData::Soa { .. } => 6,
                RData::Raw(rtype, _) => *rtype,
            };
            msg.extend_from_slice(&rtype.to_be_bytes());
            msg.extend_from_slice(&1u16.to_be_bytes());
            msg.extend_from_slice(&rr.ttl.to_be_bytes());
            let len_at = msg.len();
            msg.extend_from_slice(&[0, 0]);
            match &rr.data {
                RData::A(ip) => msg.extend_from_slice(&ip.octets()),
                RData::Aaaa(ip) => msg.extend_from_slice(&ip.octets()),
                RData::Cname(target) => name(&mut msg, target),
                RData::Soa {
                    mname,
                    rname,
                    minimum,
                } => {
                    name(&mut msg, mname);
                    name(&mut msg, rname);
                    for field in [1u32, 7200, 3600, 1_209_600, *minimum] {
                        msg.extend_from_slice(&field.to_be_bytes());
                    }
                }
                RData::Raw(_, bytes) => msg.extend_from_slice(bytes),
            }
            let rdlength = (msg.len() - len_at - 2) as u16;
            msg[len_at..len_at + 2].copy_from_slice(&rdlength.to_be_bytes());
        }
        msg
    }
}

/// A query's `(id, name, type code)`, the name lowered and without a trailing dot, as a
/// responder reads it; `None` for a message too short or with a compressed or unprintable
/// question name (queries never compress their only name).
pub(crate) fn parse_query(msg: &[u8]) -> Option<(u16, String, u16)> {
    let id = u16::from_be_bytes([*msg.first()?, *msg.get(1)?]);
    let mut labels = Vec::new();
    let mut pos = 12;
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            break;
        }
        let label = msg.get(pos + 1..pos + 1 + len).filter(|_| len < 64)?;
        if !label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
            return None;
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += 1 + len;
    }
    let qtype = msg.get(pos + 1..pos + 3)?;
    let name = if labels.is_empty() {
        ".".to_owned()
    } else {
        labels.join(".")
    };
    Some((id, name, u16::from_be_bytes([qtype[0], qtype[1]])))
}

/// Wire form with the letters lowered, as a resolver compares names.
fn lower_wire(name: &str) -> Vec<u8> {
    wire_keep_case(&name.to_ascii_lowercase())
}

/// Wire form keeping the letters' case.
fn wire_keep_case(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}
