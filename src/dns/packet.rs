//! DNS messages, sans-IO: build a query, parse and check a response.
//!
//! - `Query::new` writes a standard query (RFC 1035 §4.1): a header with RD set and one
//!   question for an `A` (RFC 1035 §3.4.1) or `AAAA` (RFC 3596 §2) record of class `IN`, then
//!   an EDNS0 OPT pseudo-record (RFC 6891 §6) advertising a UDP payload of
//!   [`EDNS_UDP_PAYLOAD`] bytes. 1232 is the size recommended by DNS Flag Day 2020: it fits
//!   in the IPv6 minimum MTU (1280) less the IPv6 and UDP headers, so answers are not
//!   fragmented, and it still lets most answers with a few dozen addresses arrive over UDP
//!   instead of the 512 bytes of plain RFC 1035 (§4.2.1). [`Query::encode`] can leave the OPT
//!   record out (glibc sends it only with `options edns0`).
//! - [`parse_response`] checks that a message answers our question (QR bit, ID, opcode, the
//!   question section echoed, as RFC 5452 §9.1 asks of a resolver), reads the RCODE (RFC 1035
//!   §4.1.1) and the TC bit, then follows the CNAME chain from the queried name through the
//!   answer section (RFC 1034 §3.6.2, §4.3.2) to the address records, with the smallest TTL
//!   along the way. A negative answer carries the negative-caching TTL from the SOA record
//!   in the authority section (RFC 2308 §5: the smaller of the SOA's TTL and its MINIMUM).
//! - [`tcp_frame`] and [`TcpFrameReader`] add and strip the two-byte length prefix of DNS
//!   over TCP (RFC 1035 §4.2.2, RFC 7766).
//!
//! The parser treats every byte as hostile: it never reads past the message, names are
//! decompressed (RFC 1035 §4.1.4) only through pointers that go strictly backwards, so there
//! can be no loop, and are at most 255 bytes (§3.1); counts that the message cannot hold are
//! errors, and nothing is allocated in proportion to a count. Every error is a [`DnsError`]
//! that says what was wrong and at which offset.
//!
//! Names are compared in wire form with ASCII letters folded to lower case (RFC 4343), so
//! `Example.COM` and `example.com.` are the same name.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The UDP payload size our queries advertise with EDNS0. See the module docs.
pub(crate) const EDNS_UDP_PAYLOAD: u16 = 1232;

/// The largest message plain DNS over UDP may carry without EDNS0 (RFC 1035 §4.2.1).
pub(crate) const PLAIN_UDP_PAYLOAD: usize = 512;

/// The longest name in wire form, length bytes and the root label included (RFC 1035 §3.1).
pub(crate) const MAX_NAME: usize = 255;

/// The longest label (RFC 1035 §3.1).
pub(crate) const MAX_LABEL: usize = 63;

/// The most CNAME records followed from the queried name.
pub(crate) const MAX_CNAME_HOPS: usize = 8;

/// The most compression pointers followed in one name. Pointers must go backwards, which
/// already rules out loops; this only bounds the work on a hostile message.
const MAX_POINTERS: usize = 64;

const HEADER_LEN: usize = 12;
const CLASS_IN: u16 = 1;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;

// Header flag bits (RFC 1035 §4.1.1), in the 16-bit word after the ID.
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;

/// The record type asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum QType {
    /// An IPv4 address (type 1).
    A,
    /// An IPv6 address (type 28, RFC 3596).
    Aaaa,
}

impl QType {
    /// The type's code on the wire.
    pub(crate) fn code(self) -> u16 {
        match self {
            QType::A => TYPE_A,
            QType::Aaaa => TYPE_AAAA,
        }
    }
}

impl fmt::Display for QType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QType::A => "A",
            QType::Aaaa => "AAAA",
        })
    }
}

/// What we asked, to check a response against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Question {
    /// The message ID of the query.
    pub(crate) id: u16,
    /// The name asked for, as given to [`Query::encode`] (any case, maybe a trailing dot).
    pub(crate) name: String,
    /// The type asked for.
    pub(crate) qtype: QType,
}

/// A query message, and the question to check its response against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Query {
    /// The message, to send as it is over UDP, or through [`tcp_frame`] over TCP.
    pub(crate) bytes: Vec<u8>,
    /// What it asks, for [`parse_response`].
    pub(crate) question: Question,
}

impl Query {
    /// A query for `name` with RD set and an EDNS0 OPT record advertising
    /// [`EDNS_UDP_PAYLOAD`] bytes.
    #[cfg(test)]
    pub(crate) fn new(id: u16, name: &str, qtype: QType) -> Result<Query, DnsError> {
        Query::encode(id, name, qtype, Some(EDNS_UDP_PAYLOAD))
    }

    /// A query for `name` with RD set; with `edns_payload`, an OPT record advertising that
    /// UDP payload size (values under 512 are raised to 512, RFC 6891 §6.2.3).
    pub(crate) fn encode(
        id: u16,
        name: &str,
        qtype: QType,
        edns_payload: Option<u16>,
    ) -> Result<Query, DnsError> {
        let qname = encode_name(name)?;
        let mut msg = Vec::with_capacity(HEADER_LEN + qname.len() + 4 + 11);
        msg.extend_from_slice(&id.to_be_bytes());
        msg.extend_from_slice(&FLAG_RD.to_be_bytes());
        let arcount: u16 = edns_payload.is_some().into();
        for count in [1u16, 0, 0, arcount] {
            msg.extend_from_slice(&count.to_be_bytes());
        }
        msg.extend_from_slice(&qname);
        msg.extend_from_slice(&qtype.code().to_be_bytes());
        msg.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Some(payload) = edns_payload {
            // OPT (RFC 6891 §6.1.2): root owner, type 41, CLASS = UDP payload size,
            // TTL = extended RCODE 0, version 0, flags 0 (no DO bit), no options.
            let payload = payload.max(PLAIN_UDP_PAYLOAD as u16);
            msg.push(0);
            msg.extend_from_slice(&TYPE_OPT.to_be_bytes());
            msg.extend_from_slice(&payload.to_be_bytes());
            msg.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        Ok(Query {
            bytes: msg,
            question: Question {
                id,
                name: name.to_owned(),
                qtype,
            },
        })
    }
}

/// Encodes a textual name as wire-form labels, ASCII letters lowered. A trailing dot (an
/// absolute name) is allowed; `"."` is the root. Labels are ASCII without control
/// characters or spaces; IDNs must arrive punycoded (the `url` crate does it).
pub(crate) fn encode_name(name: &str) -> Result<Vec<u8>, DnsError> {
    let bad = |why| DnsError::BadName {
        name: name.to_owned(),
        why,
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if !name.is_ascii() {
        return Err(bad("not ASCII (IDNs must be punycoded)"));
    }
    if name.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("control character or space"));
    }
    let mut wire = Vec::with_capacity(name.len() + 2);
    if name != "." {
        let relative = name.strip_suffix('.').unwrap_or(name);
        for label in relative.split('.') {
            if label.is_empty() {
                return Err(bad("empty label"));
            }
            if label.len() > MAX_LABEL {
                return Err(bad("label longer than 63 bytes"));
            }
            wire.push(label.len() as u8);
            wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    wire.push(0);
    if wire.len() > MAX_NAME {
        return Err(bad("longer than 255 bytes"));
    }
    Ok(wire)
}

/// The textual form of a wire name from [`read_name`], without a trailing dot (`"."` for the
/// root); `None` if a label holds a byte that could not be sent back through
/// [`encode_name`] (a dot, a space, a control or non-ASCII byte).
pub(crate) fn name_to_string(wire: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let label = wire.get(pos + 1..pos + 1 + usize::from(len))?;
        if label.iter().any(|&b| b <= b' ' || b >= 0x7f || b == b'.') {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.extend(label.iter().map(|&b| char::from(b)));
        pos += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    Some(out)
}

/// A positive or no-data answer. A name that does not exist is [`DnsError::NxDomain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The addresses of the asked type, for the name or the end of its CNAME chain, in
    /// message order, without duplicates.
    pub(crate) addrs: Vec<IpAddr>,
    /// The smallest TTL of the CNAME records and address records used, in seconds; `None`
    /// when none was used.
    pub(crate) ttl: Option<u32>,
    /// When the answer section has a CNAME chain from the name but no addresses at its end:
    /// the last target, which needs a query of its own.
    pub(crate) cname_target: Option<String>,
    /// For an answer without addresses: how long the absence may be cached, from the SOA in
    /// the authority section (RFC 2308 §5), if there is one.
    pub(crate) negative_ttl: Option<u32>,
}

/// A response code that is an error (RFC 1035 §4.1.1, RFC 6895 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rcode(pub(crate) u8);

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            7 => "YXRRSET",
            8 => "NXRRSET",
            9 => "NOTAUTH",
            10 => "NOTZONE",
            other => return write!(f, "RCODE {other}"),
        };
        f.write_str(name)
    }
}

/// Why a name or a message was refused. Offsets are from the start of the DNS message (after
/// the TCP length prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DnsError {
    /// A name given to [`Query::encode`] cannot be sent.
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The message ends inside something.
    Short {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        at: usize,
        /// The message length.
        len: usize,
    },
    /// A compression pointer that does not point strictly backwards, or into the header.
    BadPointer {
        /// Where the pointer is.
        at: usize,
        /// Where it points.
        target: usize,
    },
    /// A name with more than [`MAX_POINTERS`] compression pointers.
    TooManyPointers {
        /// Where the name starts.
        at: usize,
    },
    /// A name longer than 255 bytes once decompressed.
    NameTooLong {
        /// Where the name starts.
        at: usize,
    },
    /// A label type other than a plain label or a pointer (0x40 and 0x80 prefixes).
    BadLabelType {
        /// Where the label is.
        at: usize,
        /// Its first byte.
        byte: u8,
    },
    /// The message is a query, not a response (QR is 0).
    NotResponse,
    /// The response has another ID than our query: late, or spoofed.
    WrongId {
        /// Our query's ID.
        expected: u16,
        /// The response's.
        got: u16,
    },
    /// The response has an opcode other than QUERY.
    BadOpcode(u8),
    /// The counts in the header need more bytes than the message has.
    CountsTooLarge {
        /// Question, answer and authority counts.
        counts: [u16; 3],
        /// The message length.
        len: usize,
    },
    /// The question section does not echo our question.
    QuestionMismatch(&'static str),
    /// A record's data length does not fit its type or the message.
    BadRdata {
        /// Where the record's data starts.
        at: usize,
        /// The record type.
        rtype: u16,
        /// The RDLENGTH field.
        rdlength: u16,
    },
    /// The TC bit is set: the answer did not fit, ask again over TCP.
    Truncated,
    /// The name does not exist (RCODE 3).
    NxDomain {
        /// How long that may be cached, from the SOA in the authority section.
        negative_ttl: Option<u32>,
    },
    /// The server answered with another error code (SERVFAIL, REFUSED, ...).
    Server(Rcode),
    /// The CNAME chain comes back to a name already on it.
    CnameLoop {
        /// The name seen twice.
        name: String,
    },
    /// The CNAME chain is longer than [`MAX_CNAME_HOPS`].
    CnameChainTooLong,
    /// A CNAME target that is not a host name we could query.
    BadCnameTarget {
        /// Where the record's data starts.
        at: usize,
    },
    /// A TCP frame longer than 65535 bytes.
    FrameTooLong(usize),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::BadName { name, why } => write!(f, "invalid DNS name {name:?}: {why}"),
            DnsError::Short { what, at, len } => write!(
                f,
                "malformed DNS message: {what} at offset {at} runs past its end ({len} bytes)"
            ),
            DnsError::BadPointer { at, target } => write!(
                f,
                "malformed DNS message: compression pointer at offset {at} to offset {target} \
                 does not point back to an earlier name"
            ),
            DnsError::TooManyPointers { at } => write!(
                f,
                "malformed DNS message: name at offset {at} has more than {MAX_POINTERS} \
                 compression pointers"
            ),
            DnsError::NameTooLong { at } => write!(
                f,
                "malformed DNS message: name at offset {at} is longer than {MAX_NAME} bytes"
            ),
            DnsError::BadLabelType { at, byte } => write!(
                f,
                "malformed DNS message: unknown label type {byte:#04x} at offset {at}"
            ),
            DnsError::NotResponse => f.write_str("DNS message is a query, not a response"),
            DnsError::WrongId { expected, got } => {
                write!(f, "DNS response has ID {got}, the query had {expected}")
            }
            DnsError::BadOpcode(op) => write!(f, "DNS response has opcode {op}, not QUERY"),
            DnsError::CountsTooLarge { counts, len } => write!(
                f,
                "malformed DNS message: {} questions, {} answers and {} authority records \
                 cannot fit in {len} bytes",
                counts[0], counts[1], counts[2]
            ),
            DnsError::QuestionMismatch(what) => {
                write!(f, "DNS response does not answer our question: {what}")
            }
            DnsError::BadRdata {
                at,
                rtype,
                rdlength,
            } => write!(
                f,
                "malformed DNS message: record of type {rtype} at offset {at} has data length \
                 {rdlength}"
            ),
            DnsError::Truncated => {
                f.write_str("DNS response truncated (TC bit set); retry over TCP")
            }
            DnsError::NxDomain { .. } => f.write_str("DNS name does not exist (NXDOMAIN)"),
            DnsError::Server(rcode) => write!(f, "DNS server answered {rcode}"),
            DnsError::CnameLoop { name } => write!(f, "DNS CNAME chain loops at {name}"),
            DnsError::CnameChainTooLong => {
                write!(f, "DNS CNAME chain longer than {MAX_CNAME_HOPS} records")
            }
            DnsError::BadCnameTarget { at } => write!(
                f,
                "DNS CNAME record at offset {at} points to a name that is not a host name"
            ),
            DnsError::FrameTooLong(len) => {
                write!(f, "DNS message of {len} bytes is too long for a TCP frame")
            }
        }
    }
}

impl std::error::Error for DnsError {}

/// Reads `N` bytes at `at`, or says what ran past the end.
fn take<const N: usize>(msg: &[u8], at: usize, what: &'static str) -> Result<[u8; N], DnsError> {
    msg.get(at..at.saturating_add(N))
        .and_then(|s| s.try_into().ok())
        .ok_or(DnsError::Short {
            what,
            at,
            len: msg.len(),
        })
}

fn u16_at(msg: &[u8], at: usize, what: &'static str) -> Result<u16, DnsError> {
    take::<2>(msg, at, what).map(u16::from_be_bytes)
}

fn u32_at(msg: &[u8], at: usize, what: &'static str) -> Result<u32, DnsError> {
    take::<4>(msg, at, what).map(u32::from_be_bytes)
}

/// Reads the (possibly compressed) name at `start`. Returns it in uncompressed wire form with
/// ASCII letters lowered, and the offset just after it in the message.
///
/// Each pointer must point before the start of the labels being read, so offsets only go
/// down and a loop is impossible; pointers into the header are refused too.
pub(crate) fn read_name(msg: &[u8], start: usize) -> Result<(Vec<u8>, usize), DnsError> {
    let mut name = Vec::new();
    let mut pos = start;
    // Labels before `limit` have not been read yet; a pointer must go below it.
    let mut limit = start;
    let mut end = None;
    let mut pointers = 0;
    loop {
        let [byte] = take::<1>(msg, pos, "name label")?;
        match byte & 0xc0 {
            0x00 => {
                let len = usize::from(byte);
                if name.len() + 1 + len + usize::from(len != 0) > MAX_NAME {
                    return Err(DnsError::NameTooLong { at: start });
                }
                if len == 0 {
                    name.push(0);
                    return Ok((name, end.unwrap_or(pos + 1)));
                }
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::Short {
                    what: "name label",
                    at: pos,
                    len: msg.len(),
                })?;
                name.push(byte);
                name.extend(label.iter().map(u8::to_ascii_lowercase));
                pos += 1 + len;
            }
            0xc0 => {
                let [_, low] = take::<2>(msg, pos, "compression pointer")?;
                let target = usize::from(byte & 0x3f) << 8 | usize::from(low);
                if target >= limit || target < HEADER_LEN {
                    return Err(DnsError::BadPointer { at: pos, target });
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DnsError::TooManyPointers { at: start });
                }
                end.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            _ => return Err(DnsError::BadLabelType { at: pos, byte }),
        }
    }
}

/// One resource record's fixed fields.
struct Record {
    owner: Vec<u8>,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdlength: u16,
    /// Where the data starts.
    rdata: usize,
}

/// Reads the record at `pos`; returns it and the offset after it.
fn read_record(msg: &[u8], pos: usize) -> Result<(Record, usize), DnsError> {
    let (owner, pos) = read_name(msg, pos)?;
    let fixed = take::<10>(msg, pos, "record header")?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    // RFC 2181 §8: a TTL with the top bit set is read as zero.
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    let rdlength = u16::from_be_bytes([fixed[8], fixed[9]]);
    let rdata = pos + 10;
    let end = rdata + usize::from(rdlength);
    if end > msg.len() {
        return Err(DnsError::BadRdata {
            at: rdata,
            rtype,
            rdlength,
        });
    }
    let record = Record {
        owner,
        rtype,
        class,
        ttl,
        rdlength,
        rdata,
    };
    Ok((record, end))
}

/// What an answer-section record says, when it matters to us.
enum Data {
    Addr(IpAddr),
    /// The target, and where the record's data starts.
    Cname(Vec<u8>, usize),
}

/// Parses `msg` as the response to `expected`. See the module docs for what is checked.
pub(crate) fn parse_response(msg: &[u8], expected: &Question) -> Result<Answer, DnsError> {
    let header = take::<HEADER_LEN>(msg, 0, "header")?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let (id, flags) = (word(0), word(2));
    let (qdcount, ancount, nscount) = (word(4), word(6), word(8));
    if flags & FLAG_QR == 0 {
        return Err(DnsError::NotResponse);
    }
    if id != expected.id {
        return Err(DnsError::WrongId {
            expected: expected.id,
            got: id,
        });
    }
    let opcode = ((flags >> 11) & 0xf) as u8;
    if opcode != 0 {
        return Err(DnsError::BadOpcode(opcode));
    }
    let rcode = (flags & 0xf) as u8;
    // A question takes at least 5 bytes, a record at least 11: refuse counts the message
    // cannot hold before reading any. (The additional section is never read.)
    let least = 5 * usize::from(qdcount) + 11 * (usize::from(ancount) + usize::from(nscount));
    if HEADER_LEN + least > msg.len() {
        return Err(DnsError::CountsTooLarge {
            counts: [qdcount, ancount, nscount],
            len: msg.len(),
        });
    }

    // The question section. A server may leave it out of an error response (FORMERR, for
    // one); otherwise it must be ours, exactly.
    let qname = encode_name(&expected.name)?;
    let mut pos = HEADER_LEN;
    match qdcount {
        0 if rcode != 0 => return Err(rcode_error(rcode, None)),
        1 => {
            let (name, next) = read_name(msg, pos)?;
            let qtype = u16_at(msg, next, "question type")?;
            let qclass = u16_at(msg, next + 2, "question class")?;
            if name != qname {
                return Err(DnsError::QuestionMismatch("another name"));
            }
            if qtype != expected.qtype.code() {
                return Err(DnsError::QuestionMismatch("another type"));
            }
            if qclass != CLASS_IN {
                return Err(DnsError::QuestionMismatch("another class"));
            }
            pos = next + 4;
        }
        _ => return Err(DnsError::QuestionMismatch("not exactly one question")),
    }
    if flags & FLAG_TC != 0 {
        return Err(DnsError::Truncated);
    }

    // The answer section: the records that can be on our chain.
    let mut answers: Vec<(Vec<u8>, u32, Data)> = Vec::new();
    for _ in 0..ancount {
        let (record, next) = read_record(msg, pos)?;
        pos = next;
        if record.class != CLASS_IN {
            continue;
        }
        let data = match (record.rtype, record.rdlength) {
            (TYPE_A, 4) if expected.qtype == QType::A => {
                let octets = take::<4>(msg, record.rdata, "A record")?;
                Data::Addr(IpAddr::V4(Ipv4Addr::from(octets)))
            }
            (TYPE_AAAA, 16) if expected.qtype == QType::Aaaa => {
                let octets = take::<16>(msg, record.rdata, "AAAA record")?;
                Data::Addr(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            (TYPE_A, _) | (TYPE_AAAA, _) if record.rtype == expected.qtype.code() => {
                return Err(DnsError::BadRdata {
                    at: record.rdata,
                    rtype: record.rtype,
                    rdlength: record.rdlength,
                })
            }
            (TYPE_CNAME, _) => {
                let (target, end) = read_name(msg, record.rdata)?;
                if end != record.rdata + usize::from(record.rdlength) {
                    return Err(DnsError::BadRdata {
                        at: record.rdata,
                        rtype: record.rtype,
                        rdlength: record.rdlength,
                    });
                }
                Data::Cname(target, record.rdata)
            }
            _ => continue,
        };
        answers.push((record.owner, record.ttl, data));
    }

    // The authority section: an SOA gives the negative-caching TTL.
    let mut negative_ttl = None;
    for _ in 0..nscount {
        let (record, next) = read_record(msg, pos)?;
        pos = next;
        if record.rtype == TYPE_SOA && record.class == CLASS_IN && negative_ttl.is_none() {
            let bad = DnsError::BadRdata {
                at: record.rdata,
                rtype: record.rtype,
                rdlength: record.rdlength,
            };
            let (_, after_mname) = read_name(msg, record.rdata)?;
            let (_, after_rname) = read_name(msg, after_mname)?;
            // SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM: 20 bytes, ending the data.
            if after_rname + 20 != record.rdata + usize::from(record.rdlength) {
                return Err(bad);
            }
            let minimum = u32_at(msg, after_rname + 16, "SOA MINIMUM")?;
            negative_ttl = Some(record.ttl.min(minimum));
        }
    }

    // Follow the chain from the queried name.
    let mut current = qname;
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut ttl: Option<u32> = None;
    let mut addrs = Vec::new();
    // Where the data of the last CNAME followed starts.
    let mut last_cname_at = 0;
    loop {
        let mut addr_ttl = None;
        for (owner, record_ttl, data) in &answers {
            if let Data::Addr(addr) = data {
                if *owner == current {
                    if !addrs.contains(addr) {
                        addrs.push(*addr);
                    }
                    addr_ttl = Some(addr_ttl.unwrap_or(u32::MAX).min(*record_ttl));
                }
            }
        }
        if let Some(addr_ttl) = addr_ttl {
            ttl = Some(ttl.unwrap_or(u32::MAX).min(addr_ttl));
            break;
        }
        let next = answers
            .iter()
            .find_map(|(owner, record_ttl, data)| match data {
                Data::Cname(target, at) if *owner == current => Some((target, *record_ttl, *at)),
                _ => None,
            });
        let Some((target, record_ttl, at)) = next else {
            break;
        };
        last_cname_at = at;
        seen.push(std::mem::replace(&mut current, target.clone()));
        if seen.contains(&current) {
            return Err(DnsError::CnameLoop {
                name: name_to_string(&current).unwrap_or_else(|| "(unprintable)".into()),
            });
        }
        if seen.len() > MAX_CNAME_HOPS {
            return Err(DnsError::CnameChainTooLong);
        }
        ttl = Some(ttl.unwrap_or(u32::MAX).min(record_ttl));
    }

    if rcode != 0 {
        return Err(rcode_error(rcode, negative_ttl));
    }
    let cname_target = if addrs.is_empty() && !seen.is_empty() {
        let target =
            name_to_string(&current).ok_or(DnsError::BadCnameTarget { at: last_cname_at })?;
        Some(target)
    } else {
        None
    };
    Ok(Answer {
        negative_ttl: if addrs.is_empty() { negative_ttl } else { None },
        addrs,
        ttl,
        cname_target,
    })
}

fn rcode_error(rcode: u8, negative_ttl: Option<u32>) -> DnsError {
    match rcode {
        3 => DnsError::NxDomain { negative_ttl },
        other => DnsError::Server(Rcode(other)),
    }
}

/// Prefixes `msg` with its two-byte length, for DNS over TCP (RFC 1035 §4.2.2).
pub(crate) fn tcp_frame(msg: &[u8]) -> Result<Vec<u8>, DnsError> {
    let len = u16::try_from(msg.len()).map_err(|_| DnsError::FrameTooLong(msg.len()))?;
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    Ok(framed)
}

/// Collects length-prefixed DNS messages from a TCP stream, however the bytes arrive.
#[derive(Debug, Default)]
pub(crate) struct TcpFrameReader {
    buf: Vec<u8>,
}

impl TcpFrameReader {
    /// Adds bytes read from the stream.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, without its prefix, if it has arrived; the bytes after it
    /// stay for the next call.
    pub(crate) fn next_message(&mut self) -> Option<Vec<u8>> {
        let len = usize::from(u16::from_be_bytes(self.buf.get(..2)?.try_into().ok()?));
        if self.buf.len() < 2 + len {
            return None;
        }
        let msg = self.buf[2..2 + len].to_vec();
        self.buf.drain(..2 + len);
        Some(msg)
    }

    /// How many bytes are buffered and not yet returned.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::dns_responder::{RData, Response};

    const ID: u16 = 0x1234;

    fn question(name: &str, qtype: QType) -> Question {
        Question {
            id: ID,
            name: name.to_owned(),
            qtype,
        }
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn a(s: &str) -> RData {
        RData::A(s.parse().unwrap())
    }

    fn cname(s: &str) -> RData {
        RData::Cname(s.to_owned())
    }

    fn soa(minimum: u32) -> RData {
        RData::Soa {
            mname: "ns1.example.com".into(),
            rname: "hostmaster.example.com".into(),
            minimum,
        }
    }

    fn ok(addrs: &[&str], ttl: Option<u32>) -> Result<Answer, DnsError> {
        Ok(Answer {
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            ttl,
            cname_target: None,
            negative_ttl: None,
        })
    }

    #[test]
    fn query_bytes() {
        let q = Query::encode(0xabcd, "Www.Example.com.", QType::Aaaa, None)
            .unwrap()
            .bytes;
        let want: &[u8] = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
            \x03www\x07example\x03com\x00\x00\x1c\x00\x01";
        assert_eq!(q, want);
        let q = Query::new(1, "a", QType::A).unwrap().bytes;
        assert_eq!(&q[10..12], &[0, 1], "ARCOUNT 1 for the OPT record");
        assert_eq!(
            &q[q.len() - 11..],
            b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
        );
        assert_eq!(
            Query::new(1, ".", QType::A).unwrap().bytes[12],
            0,
            "the root"
        );
    }

    #[test]
    fn query_name_validation() {
        let l63 = "a".repeat(63);
        let l64 = "a".repeat(64);
        // 4 labels of 63 = 4 * 64 + 1 = 257 wire bytes; 3 of 63 and one of 61 = 255.
        let too_long = [l63.as_str(); 4].join(".");
        let longest = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
        assert_eq!(encode_name(&longest).unwrap().len(), 255);
        assert!(
            encode_name(&format!("{longest}.")).is_ok(),
            "trailing dot is free"
        );
        assert!(encode_name(&l63).is_ok());
        let cases: &[(&str, &str)] = &[
            ("", "empty name"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("a..", "empty label"),
            (&l64, "label longer than 63 bytes"),
            (&too_long, "longer than 255 bytes"),
            ("bücher.example", "not ASCII (IDNs must be punycoded)"),
            ("a b", "control character or space"),
            ("a\0b", "control character or space"),
        ];
        for (name, why) in cases {
            match Query::new(1, name, QType::A) {
                Err(DnsError::BadName { why: got, .. }) => assert_eq!(got, *why, "{name:?}"),
                other => panic!("{name:?}: {other:?}"),
            }
        }
        assert!(encode_name("xn--bcher-kva.example").is_ok());
    }

    /// Table: a response built with the test responder, and what parsing it should give.
    #[test]
    fn responses() {
        let q = "www.example.com";
        let base = || Response::to(ID, q, 1);
        let cases: Vec<(&str, Response, QType, Result<Answer, DnsError>)> = vec![
            (
                "one A",
                base().answer(q, 300, a("192.0.2.1")),
                QType::A,
                ok(&["192.0.2.1"], Some(300)),
            ),
            (
                "two A, smallest TTL, duplicate dropped",
                base()
                    .answer(q, 300, a("192.0.2.1"))
                    .answer(q, 60, a("192.0.2.2"))
                    .answer(q, 300, a("192.0.2.1")),
                QType::A,
                ok(&["192.0.2.1", "192.0.2.2"], Some(60)),
            ),
            (
                "AAAA",
                Response::to(ID, q, 28).answer(q, 30, RData::Aaaa("2001:db8::1".parse().unwrap())),
                QType::Aaaa,
                ok(&["2001:db8::1"], Some(30)),
            ),
            (
                "compressed names, question echoed in another case",
                Response {
                    compress: true,
                    ..Response::to(ID, "WWW.Example.COM", 1)
                }
                .answer(q, 300, a("192.0.2.1")),
                QType::A,
                ok(&["192.0.2.1"], Some(300)),
            ),
            (
                "unrelated records ignored",
                base()
                    .answer("other.example.com", 1, a("192.0.2.9"))
                    .answer(q, 5, RData::Aaaa("2001:db8::1".parse().unwrap()))
                    .answer(q, 5, RData::Raw(16, b"\x03txt".to_vec()))
                    .answer(q, 300, a("192.0.2.1")),
                QType::A,
                ok(&["192.0.2.1"], Some(300)),
            ),
            (
                "CNAME chain in order",
                base()
                    .answer(q, 100, cname("b.example.net"))
                    .answer("b.example.net", 50, cname("c.example.org"))
                    .answer("c.example.org", 200, a("192.0.2.3")),
                QType::A,
                ok(&["192.0.2.3"], Some(50)),
            ),
            (
                "CNAME chain out of order",
                base()
                    .answer("c.example.org", 200, a("192.0.2.3"))
                    .answer("b.example.net", 150, cname("c.example.org"))
                    .answer(q, 100, cname("b.example.net")),
                QType::A,
                ok(&["192.0.2.3"], Some(100)),
            ),
            (
                "CNAME chain without addresses: query the target",
                base().answer(q, 100, cname("b.example.net")).answer(
                    "b.example.net",
                    70,
                    cname("C.example.org"),
                ),
                QType::A,
                Ok(Answer {
                    addrs: vec![],
                    ttl: Some(70),
                    cname_target: Some("c.example.org".into()),
                    negative_ttl: None,
                }),
            ),
            (
                "CNAME loop",
                base().answer(q, 100, cname("b.example.net")).answer(
                    "b.example.net",
                    100,
                    cname(q),
                ),
                QType::A,
                Err(DnsError::CnameLoop { name: q.into() }),
            ),
            (
                "CNAME to itself",
                base().answer(q, 100, cname(q)),
                QType::A,
                Err(DnsError::CnameLoop { name: q.into() }),
            ),
            (
                "CNAME chain of 9",
                (0..9).fold(base(), |r, i| {
                    let owner = if i == 0 {
                        q.to_owned()
                    } else {
                        format!("c{i}.example")
                    };
                    r.answer(&owner, 1, cname(&format!("c{}.example", i + 1)))
                }),
                QType::A,
                Err(DnsError::CnameChainTooLong),
            ),
            (
                "CNAME chain of 8 is fine",
                (0..8)
                    .fold(base(), |r, i| {
                        let owner = if i == 0 {
                            q.to_owned()
                        } else {
                            format!("c{i}.example")
                        };
                        r.answer(&owner, 1, cname(&format!("c{}.example", i + 1)))
                    })
                    .answer("c8.example", 9, a("192.0.2.8")),
                QType::A,
                ok(&["192.0.2.8"], Some(1)),
            ),
            (
                "NXDOMAIN with SOA: min(SOA TTL, MINIMUM)",
                Response { rcode: 3, ..base() }.authority("example.com", 900, soa(3600)),
                QType::A,
                Err(DnsError::NxDomain {
                    negative_ttl: Some(900),
                }),
            ),
            (
                "NXDOMAIN with SOA, smaller MINIMUM",
                Response { rcode: 3, ..base() }.authority("example.com", 900, soa(60)),
                QType::A,
                Err(DnsError::NxDomain {
                    negative_ttl: Some(60),
                }),
            ),
            (
                "NXDOMAIN without SOA",
                Response { rcode: 3, ..base() },
                QType::A,
                Err(DnsError::NxDomain { negative_ttl: None }),
            ),
            (
                "NODATA with SOA",
                base().authority("example.com", 900, soa(300)),
                QType::A,
                Ok(Answer {
                    addrs: vec![],
                    ttl: None,
                    cname_target: None,
                    negative_ttl: Some(300),
                }),
            ),
            (
                "SERVFAIL",
                Response { rcode: 2, ..base() },
                QType::A,
                Err(DnsError::Server(Rcode(2))),
            ),
            (
                "REFUSED without a question",
                Response {
                    rcode: 5,
                    question: None,
                    ..base()
                },
                QType::A,
                Err(DnsError::Server(Rcode(5))),
            ),
            (
                "TC set",
                Response { tc: true, ..base() },
                QType::A,
                Err(DnsError::Truncated),
            ),
            (
                "wrong ID",
                Response::to(ID + 1, q, 1).answer(q, 1, a("192.0.2.1")),
                QType::A,
                Err(DnsError::WrongId {
                    expected: ID,
                    got: ID + 1,
                }),
            ),
            (
                "wrong question name",
                Response::to(ID, "www.example.net", 1).answer(q, 1, a("192.0.2.1")),
                QType::A,
                Err(DnsError::QuestionMismatch("another name")),
            ),
            (
                "wrong question type",
                Response::to(ID, q, 28).answer(q, 1, a("192.0.2.1")),
                QType::A,
                Err(DnsError::QuestionMismatch("another type")),
            ),
            (
                "no question in a NOERROR response",
                Response {
                    question: None,
                    ..base()
                },
                QType::A,
                Err(DnsError::QuestionMismatch("not exactly one question")),
            ),
            (
                "QR not set",
                Response {
                    qr: false,
                    ..base()
                },
                QType::A,
                Err(DnsError::NotResponse),
            ),
            (
                "opcode STATUS",
                Response {
                    opcode: 2,
                    ..base()
                },
                QType::A,
                Err(DnsError::BadOpcode(2)),
            ),
            (
                "A with rdlength 5",
                base().answer(q, 1, RData::Raw(1, vec![192, 0, 2, 1, 0])),
                QType::A,
                Err(DnsError::BadRdata {
                    at: 12 + 17 + 4 + 17 + 10,
                    rtype: 1,
                    rdlength: 5,
                }),
            ),
            (
                "AAAA with rdlength 4",
                Response::to(ID, q, 28).answer(q, 1, RData::Raw(28, vec![0; 4])),
                QType::Aaaa,
                Err(DnsError::BadRdata {
                    at: 12 + 17 + 4 + 17 + 10,
                    rtype: 28,
                    rdlength: 4,
                }),
            ),
        ];
        for (what, response, qtype, want) in cases {
            let msg = response.build();
            let got = parse_response(&msg, &question(q, qtype));
            assert_eq!(got, want, "{what}");
            // Every prefix is refused, never a panic.
            for cut in 0..msg.len() {
                let _ = parse_response(&msg[..cut], &question(q, qtype));
            }
        }
    }

    /// A valid response to `a.b` (id 0x1234, A), then `tail` as the answer section, with
    /// ANCOUNT `ancount`. The question name is at offset 12, 5 bytes; the answers start at 21.
    fn raw(ancount: u16, tail: &[u8]) -> Vec<u8> {
        let mut msg = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        msg.extend_from_slice(&ancount.to_be_bytes());
        msg.extend_from_slice(&[0, 0, 0, 0]);
        msg.extend_from_slice(b"\x01a\x01b\x00\x00\x01\x00\x01");
        msg.extend_from_slice(tail);
        msg
    }

    /// An A record's fixed part and data after its owner name.
    const A_REST: &[u8] = b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01";

    #[test]
    fn hostile_messages() {
        let q = question("a.b", QType::A);
        let with_owner = |owner: &[u8]| raw(1, &[owner, A_REST].concat());
        let mut long_name = Vec::new();
        for _ in 0..4 {
            long_name.push(63);
            long_name.extend_from_slice(&[b'x'; 63]);
        }
        long_name.push(0);
        // 126 one-byte labels (252 bytes) and a pointer back to "a.b" (5 bytes): 257.
        let mut long_via_pointer = Vec::new();
        for _ in 0..126 {
            long_via_pointer.extend_from_slice(b"\x01x");
        }
        long_via_pointer.extend_from_slice(&[0xc0, 12]);

        let cases: Vec<(&str, Vec<u8>, DnsError)> = vec![
            (
                "truncated header",
                vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0],
                DnsError::Short {
                    what: "header",
                    at: 0,
                    len: 7,
                },
            ),
            (
                "self-pointer",
                with_owner(&[0xc0, 21]),
                DnsError::BadPointer { at: 21, target: 21 },
            ),
            (
                "two-pointer cycle",
                // At 21: a pointer to 23; at 23: a pointer to 21 (a backwards pointer, but
                // the cycle starts with a forward one).
                with_owner(&[0xc0, 23, 0xc0, 21]),
                DnsError::BadPointer { at: 21, target: 23 },
            ),
            (
                "label then a pointer back to it",
                // At 21: label "x", then a pointer to 21: the cycle a backwards-only rule
                // based on the pointer's own offset would miss.
                with_owner(&[1, b'x', 0xc0, 21]),
                DnsError::BadPointer { at: 23, target: 21 },
            ),
            (
                "forward pointer",
                with_owner(&[0xc0, 40]),
                DnsError::BadPointer { at: 21, target: 40 },
            ),
            (
                "pointer into the header",
                with_owner(&[0xc0, 4]),
                DnsError::BadPointer { at: 21, target: 4 },
            ),
            (
                "pointer past the end",
                with_owner(&[0xff, 0xff]),
                DnsError::BadPointer {
                    at: 21,
                    target: 0x3fff,
                },
            ),
            (
                "pointer cut in half",
                raw(1, &[0xc0]),
                DnsError::CountsTooLarge {
                    counts: [1, 1, 0],
                    len: 22,
                },
            ),
            (
                "label past the end",
                // Long enough for the counts, but the label claims 40 bytes.
                raw(1, &[40, b'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                DnsError::Short {
                    what: "name label",
                    at: 21,
                    len: 33,
                },
            ),
            (
                "name over 255 bytes",
                with_owner(&long_name),
                DnsError::NameTooLong { at: 21 },
            ),
            (
                "name over 255 bytes through a pointer",
                with_owner(&long_via_pointer),
                DnsError::NameTooLong { at: 21 },
            ),
            (
                "label type 0x40",
                with_owner(&[0x41, b'x', 0]),
                DnsError::BadLabelType { at: 21, byte: 0x41 },
            ),
            (
                "answer count 65535 in a short packet",
                raw(65535, &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]),
                DnsError::CountsTooLarge {
                    counts: [1, 65535, 0],
                    len: 37,
                },
            ),
            (
                "second answer missing",
                raw(
                    2,
                    &[
                        [0xc0, 12].as_slice(),
                        A_REST,
                        &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0],
                    ]
                    .concat(),
                ),
                DnsError::Short {
                    what: "record header",
                    at: 39,
                    len: 46,
                },
            ),
            (
                "rdlength past the end",
                raw(
                    1,
                    b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x08\xc0\x00\x02\x01",
                ),
                DnsError::BadRdata {
                    at: 33,
                    rtype: 1,
                    rdlength: 8,
                },
            ),
            (
                "CNAME data longer than its name",
                raw(
                    1,
                    b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x03\xc0\x0c\x00",
                ),
                DnsError::BadRdata {
                    at: 33,
                    rtype: 5,
                    rdlength: 3,
                },
            ),
        ];
        for (what, msg, want) in cases {
            assert_eq!(parse_response(&msg, &q), Err(want.clone()), "{what}");
            assert!(!want.to_string().is_empty());
        }
        // The valid baseline those cases break.
        assert_eq!(
            parse_response(&with_owner(&[0xc0, 12]), &q),
            ok(&["192.0.2.1"], Some(60))
        );
        assert_eq!(
            parse_response(&with_owner(&[1, b'A', 1, b'B', 0]), &q),
            ok(&["192.0.2.1"], Some(60))
        );
    }

    #[test]
    fn valid_chains_of_pointers() {
        // a.b has a CNAME to x.a.b, written as "x" + a pointer to the question's name; the
        // A record's owner is a pointer to that target: two jumps, both backwards.
        let mut tail = vec![0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 10, 0, 4];
        let target_at = 21 + tail.len();
        tail.extend_from_slice(&[1, b'x', 0xc0, 12]);
        tail.extend_from_slice(&[0xc0, target_at as u8]);
        tail.extend_from_slice(A_REST);
        let msg = raw(2, &tail);
        let got = parse_response(&msg, &question("a.b", QType::A));
        assert_eq!(got, ok(&["192.0.2.1"], Some(10)));
        let (name, end) = read_name(&msg, target_at + 4).unwrap();
        assert_eq!(name, b"\x01x\x01a\x01b\x00");
        assert_eq!(end, target_at + 6);
    }

    #[test]
    fn ttl_with_top_bit_is_zero() {
        let mut msg = Response::to(ID, "a.b", 1)
            .answer("a.b", 1, a("192.0.2.1"))
            .build();
        let ttl_at = msg.len() - 10;
        msg[ttl_at..ttl_at + 4].copy_from_slice(&0x8000_0000u32.to_be_bytes());
        let got = parse_response(&msg, &question("a.b", QType::A)).unwrap();
        assert_eq!(got.ttl, Some(0));
        assert_eq!(got.addrs, vec![v4("192.0.2.1")]);
    }

    #[test]
    fn error_messages() {
        let cases = [
            (
                DnsError::BadPointer { at: 21, target: 40 },
                "malformed DNS message: compression pointer at offset 21 to offset 40 does not \
                 point back to an earlier name",
            ),
            (DnsError::Server(Rcode(2)), "DNS server answered SERVFAIL"),
            (DnsError::Server(Rcode(5)), "DNS server answered REFUSED"),
            (DnsError::Server(Rcode(12)), "DNS server answered RCODE 12"),
            (
                DnsError::Truncated,
                "DNS response truncated (TC bit set); retry over TCP",
            ),
        ];
        for (error, want) in cases {
            assert_eq!(error.to_string(), want);
        }
    }

    #[test]
    fn tcp_framing() {
        let a = Query::new(1, "a.example", QType::A).unwrap().bytes;
        let b = Query::new(2, "b.example", QType::Aaaa).unwrap().bytes;
        let stream = [tcp_frame(&a).unwrap(), tcp_frame(&b).unwrap()].concat();
        assert_eq!(&stream[..2], &(a.len() as u16).to_be_bytes());
        for step in 1..=stream.len() {
            let mut reader = TcpFrameReader::default();
            let mut got = Vec::new();
            for piece in stream.chunks(step) {
                reader.extend(piece);
                while let Some(msg) = reader.next_message() {
                    got.push(msg);
                }
            }
            assert_eq!(got, vec![a.clone(), b.clone()], "step {step}");
            assert_eq!(reader.buffered(), 0);
        }
        let mut reader = TcpFrameReader::default();
        reader.extend(&[0, 0, 0]);
        assert_eq!(reader.next_message(), Some(vec![]));
        assert_eq!(reader.next_message(), None);
        assert_eq!(reader.buffered(), 1);
        assert_eq!(
            tcp_frame(&vec![0; 65536]),
            Err(DnsError::FrameTooLong(65536))
        );
    }
}
