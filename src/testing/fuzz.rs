//! Entry points for the fuzz targets in `fuzz/`, and the incremental drivers they share with
//! the property tests in `http::props`. Not a public API: hidden, compiled only with the
//! `fuzzing` feature (and in this crate's own tests), and free to change.
//!
//! The drivers feed a byte stream to the sans-IO pieces the way the client does, in pieces
//! that arrive one read at a time. [`head`] and [`body`] run one stream whole and split at
//! input-derived points and panic if the outcomes differ, so a fuzzer finds divergences, not
//! only crashes. [`dns`] checks the DNS response parser against the header it reads on its
//! own, a small model of the CNAME chain, other spellings of the question, and DNS over TCP
//! framing, whole and split.

use std::net::IpAddr;
use std::ops::Range;

use http::Method;

use crate::dns::packet::{
    encode_name, name_to_string, parse_response, read_name, tcp_frame, Answer, DnsError, QType,
    Question, TcpFrameReader, MAX_CNAME_HOPS,
};

use crate::http::proto::body::{BodyDecoder, BodyError, Framing};
use crate::http::proto::head::{
    framing, parse_head, BodyPlan, HeadError, ResponseHead, MAX_INTERIM_RESPONSES,
};

/// A parsed head, flattened so that two can be compared (headers in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadSummary {
    pub(crate) version: http::Version,
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// The framing for a GET and for a HEAD request.
    pub(crate) plans: [Result<BodyPlan, HeadError>; 2],
}

impl HeadSummary {
    fn of(head: &ResponseHead) -> HeadSummary {
        HeadSummary {
            version: head.version,
            status: head.status.as_u16(),
            reason: head.reason.to_string(),
            headers: head
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            plans: [framing(&Method::GET, head), framing(&Method::HEAD, head)],
        }
    }
}

/// What reading a response head from a stream gave, as `conn::read_head` would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadOutcome {
    /// The final head. `interim` are the 1xx statuses skipped before it; `consumed` counts
    /// the bytes of all the heads, interim ones included.
    Head {
        interim: Vec<u16>,
        head: HeadSummary,
        consumed: usize,
    },
    /// The parser refused a head (after skipping `interim`).
    Error { interim: Vec<u16>, error: HeadError },
    /// The stream ended before a final head was complete or refused.
    Incomplete { interim: Vec<u16> },
}

/// When the head is re-parsed as bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    /// After every read.
    Eager,
    /// As `conn::read_head` does: after the first read, after a read that brought a `\n`, and
    /// once the buffer reaches the head limit.
    Client,
}

/// Splits `stream` at `cuts` (any order, duplicates and out-of-range cuts allowed; they are
/// clamped). Empty pieces are dropped: a read of 0 bytes means the peer closed.
pub(crate) fn pieces<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
    cuts.push(0);
    cuts.push(stream.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
}

/// Reads response heads from `pieces` as the client does: parse the buffer (when `feed`
/// says), skip 1xx interim heads other than 101, stop at the final head or an error.
///
/// Panics if the parser breaks one of the rules the client relies on: a complete head ends
/// with `\n` (so `Feed::Client` never misses one), lies within the buffer and the limit, and
/// parses the same from its own bytes alone; a partial head is below the limit.
pub(crate) fn read_head(pieces: &[&[u8]], max_head: usize, feed: Feed) -> HeadOutcome {
    let mut buf: Vec<u8> = Vec::new();
    let mut consumed = 0;
    let mut interim = Vec::new();
    let mut parse = true;
    let mut received_any = false;
    let mut pieces = pieces.iter().filter(|p| !p.is_empty());
    loop {
        if parse {
            match parse_head(&buf, max_head) {
                Ok(Some((head, len))) => {
                    assert!(
                        len > 0 && len <= buf.len(),
                        "head length {len} of {}",
                        buf.len()
                    );
                    assert!(
                        len <= max_head,
                        "head length {len} over the limit {max_head}"
                    );
                    assert_eq!(buf[len - 1], b'\n', "a complete head must end with LF");
                    let again = parse_head(&buf[..len], max_head)
                        .map(|r| r.map(|(h, l)| (HeadSummary::of(&h), l)));
                    let summary = HeadSummary::of(&head);
                    assert_eq!(
                        again,
                        Ok(Some((summary.clone(), len))),
                        "the head parses differently from its own bytes"
                    );
                    buf.drain(..len);
                    consumed += len;
                    if head.status.is_informational() && head.status.as_u16() != 101 {
                        interim.push(head.status.as_u16());
                        if interim.len() > MAX_INTERIM_RESPONSES {
                            return HeadOutcome::Error {
                                interim,
                                error: HeadError::Malformed(format!(
                                    "more than {MAX_INTERIM_RESPONSES} interim (1xx) responses"
                                )),
                            };
                        }
                        continue;
                    }
                    return HeadOutcome::Head {
                        interim,
                        head: summary,
                        consumed,
                    };
                }
                Ok(None) => assert!(buf.len() < max_head, "partial head at the limit"),
                Err(error) => return HeadOutcome::Error { interim, error },
            }
        }
        let Some(piece) = pieces.next() else {
            // At the close the client parses once more what came since its last parse.
            if !parse {
                if let Err(error) = parse_head(&buf, max_head) {
                    return HeadOutcome::Error { interim, error };
                }
            }
            return HeadOutcome::Incomplete { interim };
        };
        buf.extend_from_slice(piece);
        parse = match feed {
            Feed::Eager => true,
            Feed::Client => !received_any || piece.contains(&b'\n') || buf.len() >= max_head,
        };
        received_any = true;
    }
}

/// Reads heads from `stream` whole and split at `cuts`, under both feeding policies, and
/// returns the whole stream's outcome, or says how a split one differs. All four must be
/// equal: the client parses only when a read brought a `\n` (or at the limit), and once more
/// when the stream ends, so how the bytes arrive never changes the outcome.
pub(crate) fn check_head(
    stream: &[u8],
    cuts: &[usize],
    max_head: usize,
) -> Result<HeadOutcome, String> {
    let whole = read_head(&[stream], max_head, Feed::Eager);
    let split = pieces(stream, cuts);
    let eager = read_head(&split, max_head, Feed::Eager);
    if eager != whole {
        return Err(format!(
            "eager feeding in pieces {:?} differs:\n whole: {whole:?}\n split: {eager:?}",
            lengths(&split)
        ));
    }
    let client = read_head(&split, max_head, Feed::Client);
    let whole_client = read_head(&[stream], max_head, Feed::Client);
    if whole_client != whole {
        return Err(format!(
            "the client's policy differs on the whole stream:\n eager: {whole:?}\n client: {whole_client:?}"
        ));
    }
    if client != whole {
        return Err(format!(
            "client feeding in pieces {:?} differs:\n whole: {whole:?}\n split: {client:?}",
            lengths(&split)
        ));
    }
    Ok(whole)
}

/// How a body read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    /// The body is complete, `at` bytes into the stream; `trailers` of a chunked body.
    Done {
        at: usize,
        trailers: Option<Vec<(String, Vec<u8>)>>,
    },
    /// The decoder refused the stream (or, at EOF, found the body cut short).
    Error(BodyError),
    /// The stream ran out (without EOF) before the body ended; all of it was consumed or
    /// `consumed` says how much.
    Pending { consumed: usize },
}

/// What reading a body from a stream gave: the body data delivered, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyOutcome {
    pub(crate) data: Vec<u8>,
    pub(crate) end: BodyEnd,
}

/// Decodes a body from `pieces` as `Response`'s body reader does: decode what is buffered
/// until it is used up, the body is done or the decoder consumes nothing; then read the next
/// piece; after the last, report EOF if `eof`.
///
/// Panics if the decoder breaks its contract: consumes more than it was given, points its
/// data outside what it consumed, counts `received` wrong, or takes bytes once done.
pub(crate) fn read_body(
    framing: Framing,
    max_trailer_size: usize,
    pieces: &[&[u8]],
    eof: bool,
) -> BodyOutcome {
    let mut decoder = BodyDecoder::new(framing, max_trailer_size);
    assert_eq!(decoder.framing(), framing);
    let mut buf: Vec<u8> = Vec::new();
    let mut consumed = 0;
    let mut data = Vec::new();
    let mut pieces = pieces.iter().filter(|p| !p.is_empty());
    let end = 'read: loop {
        while !buf.is_empty() && !decoder.is_done() {
            let decoded = match decoder.decode(&buf) {
                Ok(decoded) => decoded,
                Err(e) => break 'read BodyEnd::Error(e),
            };
            assert!(
                decoded.consumed <= buf.len(),
                "consumed {} of {}",
                decoded.consumed,
                buf.len()
            );
            assert!(
                decoded.data.start <= decoded.data.end && decoded.data.end <= decoded.consumed,
                "data {:?} outside the {} bytes consumed",
                decoded.data,
                decoded.consumed
            );
            data.extend_from_slice(&buf[decoded.data.clone()]);
            buf.drain(..decoded.consumed);
            consumed += decoded.consumed;
            assert_eq!(decoder.received(), data.len() as u64, "received count");
            if decoded.consumed == 0 {
                break;
            }
        }
        if decoder.is_done() {
            break BodyEnd::Done {
                at: consumed,
                trailers: None,
            };
        }
        match pieces.next() {
            Some(piece) => buf.extend_from_slice(piece),
            None if eof => match decoder.finish() {
                Ok(()) => {
                    break BodyEnd::Done {
                        at: consumed,
                        trailers: None,
                    }
                }
                Err(e) => break BodyEnd::Error(e),
            },
            None => break BodyEnd::Pending { consumed },
        }
    };
    let end = match end {
        BodyEnd::Done { at, .. } => {
            assert!(decoder.is_done());
            // Done is final: the next response's bytes are not the body's.
            buf.extend_from_slice(b"0\r\n\r\nmore");
            let after = decoder.decode(&buf).expect("decode after done");
            assert_eq!(
                (after.consumed, after.data.len()),
                (0, 0),
                "decoded after done"
            );
            assert_eq!(decoder.finish(), Ok(()));
            let trailers = decoder.take_trailers().map(|map| {
                map.iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect()
            });
            BodyEnd::Done { at, trailers }
        }
        other => other,
    };
    assert_eq!(decoder.received(), data.len() as u64, "received count");
    BodyOutcome { data, end }
}

/// Decodes a body from `stream` whole and split at `cuts`, and returns the whole stream's
/// outcome, or says how the split one differs.
pub(crate) fn check_body(
    framing: Framing,
    max_trailer_size: usize,
    stream: &[u8],
    cuts: &[usize],
    eof: bool,
) -> Result<BodyOutcome, String> {
    let whole = read_body(framing, max_trailer_size, &[stream], eof);
    let split_pieces = pieces(stream, cuts);
    let split = read_body(framing, max_trailer_size, &split_pieces, eof);
    if split != whole {
        return Err(format!(
            "{framing:?} body in pieces {:?} (eof {eof}) differs:\n whole: {whole:?}\n split: {split:?}",
            lengths(&split_pieces)
        ));
    }
    Ok(whole)
}

fn lengths(pieces: &[&[u8]]) -> Vec<usize> {
    pieces.iter().map(|p| p.len()).collect()
}

/// Input bytes taken from the front of a fuzz input, zero once they run out.
struct Control<'a>(&'a [u8]);

impl<'a> Control<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to 8 raw cut points: a count byte, then two bytes each.
    fn raw_cuts(&mut self) -> Vec<usize> {
        let n = self.byte() % 9;
        (0..n).map(|_| usize::from(self.u16())).collect()
    }

    /// Up to 8 cut points ([`Control::raw_cuts`]). Returns the cuts, reduced modulo one more
    /// than the length of what follows them (the stream), and the stream.
    fn cuts_and_stream(mut self) -> (Vec<usize>, &'a [u8]) {
        let raw = self.raw_cuts();
        let stream = self.0;
        let cuts = raw.iter().map(|c| c % (stream.len() + 1)).collect();
        (cuts, stream)
    }
}

/// Head limits the fuzzer picks from: tiny ones reach the size checks, the last is the
/// client's default.
const HEAD_LIMITS: [usize; 8] = [16, 40, 100, 256, 1000, 4096, 16 * 1024, 64 * 1024];

/// Fuzz entry point for the response head parser.
///
/// Input: a control byte (the head limit), a cut count and cuts (two bytes each), then the
/// stream. The stream's heads are read whole and in pieces, eagerly and as the client does;
/// a final head's body is then decoded, whole and in pieces, with the framing it declares.
/// Panics on any mismatch.
pub fn head(data: &[u8]) {
    let mut control = Control(data);
    let flags = control.byte();
    let max_head = HEAD_LIMITS[usize::from(flags & 7)];
    let (cuts, stream) = control.cuts_and_stream();
    let outcome = check_head(stream, &cuts, max_head).unwrap_or_else(|e| panic!("{e}"));
    if let HeadOutcome::Head { head, consumed, .. } = outcome {
        if let Ok(plan) = &head.plans[0] {
            let rest = &stream[consumed..];
            let cuts: Vec<usize> = cuts.iter().map(|c| c.saturating_sub(consumed)).collect();
            if let Err(e) = check_body(plan.framing, 1024, rest, &cuts, flags & 8 != 0) {
                panic!("{e}");
            }
        }
    }
}

/// Trailer limits the fuzzer picks from.
const TRAILER_LIMITS: [usize; 4] = [0, 8, 64, 8 * 1024];

/// Fuzz entry point for the body decoder.
///
/// Input: a control byte (framing, EOF or not, trailer limit), for `Content-Length` two
/// bytes of length (or the largest lengths), a cut count and cuts (two bytes each), then
/// the stream. It is decoded whole and in pieces; panics on any mismatch.
pub fn body(data: &[u8]) {
    let mut control = Control(data);
    let flags = control.byte();
    let framing = match flags & 3 {
        0 => Framing::Chunked,
        1 => Framing::Length(match control.u16() {
            n @ 0..=0xfffd => u64::from(n),
            0xfffe => u64::from(u32::MAX) + 1,
            _ => u64::MAX,
        }),
        2 => Framing::UntilClose,
        _ => Framing::Empty,
    };
    let eof = flags & 4 != 0;
    let max_trailer_size = TRAILER_LIMITS[usize::from((flags >> 3) & 3)];
    let (cuts, stream) = control.cuts_and_stream();
    if let Err(e) = check_body(framing, max_trailer_size, stream, &cuts, eof) {
        panic!("{e}");
    }
}

/// Question names [`dns`] picks from when it does not take the message's own (or cannot).
const DNS_NAMES: [&str; 4] = ["www.example.com", "a.b", ".", "Example.COM."];

/// The length of a DNS header (RFC 1035 §4.1.1).
const DNS_HEADER: usize = 12;

const CLASS_IN: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;

/// A DNS header, read here independently of the parser.
#[derive(Debug, Clone, Copy)]
struct DnsHeader {
    id: u16,
    qr: bool,
    opcode: u8,
    tc: bool,
    rcode: u8,
    /// Question, answer and authority counts.
    counts: [u16; 3],
}

impl DnsHeader {
    fn of(msg: &[u8]) -> Option<DnsHeader> {
        let h = msg.get(..DNS_HEADER)?;
        let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let flags = word(2);
        Some(DnsHeader {
            id: word(0),
            qr: flags & 0x8000 != 0,
            opcode: ((flags >> 11) & 0xf) as u8,
            tc: flags & 0x0200 != 0,
            rcode: (flags & 0xf) as u8,
            counts: [word(4), word(6), word(8)],
        })
    }
}

/// The question to check `msg` against, from the control byte `flags`: bits 0-1 say where
/// it comes from (0: the message's own ID, name and type; 1: the message's ID and name, the
/// type from bit 2; 2: the message's ID, a name of [`DNS_NAMES`] (bits 4-5) and the type
/// from bit 2; 3: the same with ID 0x1234). When the message has no printable question name,
/// modes 0 and 1 fall back to mode 2.
fn dns_question(flags: u8, msg: &[u8]) -> Question {
    let id = msg.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let flag_type = if flags & 4 == 0 {
        QType::A
    } else {
        QType::Aaaa
    };
    let fixed = DNS_NAMES[usize::from((flags >> 4) & 3)].to_owned();
    let mode = flags & 3;
    if mode <= 1 {
        if let Ok((wire, end)) = read_name(msg, DNS_HEADER) {
            if let Some(name) = name_to_string(&wire) {
                // `name_to_string` promises a name that `encode_name` takes back.
                assert_eq!(
                    encode_name(&name).as_deref(),
                    Ok(&wire[..]),
                    "name_to_string({wire:?}) = {name:?} does not encode back"
                );
                let qtype = match (mode, msg.get(end..end + 2)) {
                    (0, Some([0, 1])) => QType::A,
                    (0, Some([0, 28])) => QType::Aaaa,
                    _ => flag_type,
                };
                return Question { id, name, qtype };
            }
        }
    }
    Question {
        id: if mode == 3 { 0x1234 } else { id },
        name: fixed,
        qtype: flag_type,
    }
}

/// Other spellings of `name` that are the same DNS name (RFC 4343 case folding, a trailing
/// dot or none).
fn dns_spellings(name: &str) -> Vec<String> {
    let mut names = vec![name.to_ascii_uppercase(), name.to_ascii_lowercase()];
    if name != "." {
        let toggled = match name.strip_suffix('.') {
            Some(relative) => relative.to_owned(),
            None => format!("{name}."),
        };
        names.push(toggled.to_ascii_uppercase());
    }
    names
}

/// One resource record's fixed fields, read here independently of the parser.
#[derive(Debug)]
struct ModelRecord {
    owner: Vec<u8>,
    rtype: u16,
    class: u16,
    /// With the top bit read as zero (RFC 2181 §8), as the parser does.
    ttl: u32,
    rdata: Range<usize>,
}

/// Reads `count` records from `pos`; panics if one does not parse (the callers know the
/// parser read them all). Returns them and the offset after the last.
fn model_records(msg: &[u8], mut pos: usize, count: u16) -> (Vec<ModelRecord>, usize) {
    let mut records = Vec::new();
    for i in 0..count {
        let (owner, next) =
            read_name(msg, pos).unwrap_or_else(|e| panic!("record {i} at {pos}: {e}"));
        let fixed = msg
            .get(next..next + 10)
            .unwrap_or_else(|| panic!("record {i}: header at {next} past the end"));
        let word = |j: usize| u16::from_be_bytes([fixed[j], fixed[j + 1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdata = next + 10..next + 10 + usize::from(word(8));
        assert!(rdata.end <= msg.len(), "record {i}: data past the end");
        pos = rdata.end;
        records.push(ModelRecord {
            owner,
            rtype: word(0),
            class: word(2),
            ttl: if ttl > i32::MAX as u32 { 0 } else { ttl },
            rdata,
        });
    }
    (records, pos)
}

/// Where the CNAME chain from the question's name leads, by the model.
#[derive(Debug)]
enum ModelChain {
    /// At `end`, after `hops` CNAME records, with these addresses (of the asked type, in
    /// message order, without duplicates) and the smallest TTL of the records used.
    Ends {
        addrs: Vec<IpAddr>,
        ttl: Option<u32>,
        end: Vec<u8>,
        hops: usize,
    },
    /// It loops or is longer than [`MAX_CNAME_HOPS`].
    Fails,
    /// A name on the chain has more than one CNAME record (not valid DNS, RFC 2181 §10.1):
    /// which one to follow is the parser's choice.
    Ambiguous,
}

/// Follows the chain from `qname` through the class IN records of `answers`: the name's
/// addresses if it has any, else its CNAME's target.
fn model_chain(msg: &[u8], answers: &[ModelRecord], qname: Vec<u8>, qtype: QType) -> ModelChain {
    let mut current = qname;
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut ttl: Option<u32> = None;
    let min = |ttl: Option<u32>, t: u32| Some(ttl.map_or(t, |old| old.min(t)));
    loop {
        let mut addrs = Vec::new();
        let mut found = false;
        for r in answers {
            if r.class == CLASS_IN && r.rtype == qtype.code() && r.owner == current {
                let data = &msg[r.rdata.clone()];
                let addr = match qtype {
                    QType::A => IpAddr::from(<[u8; 4]>::try_from(data).expect("A data of 4")),
                    QType::Aaaa => {
                        IpAddr::from(<[u8; 16]>::try_from(data).expect("AAAA data of 16"))
                    }
                };
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
                ttl = min(ttl, r.ttl);
                found = true;
            }
        }
        if found {
            return ModelChain::Ends {
                addrs,
                ttl,
                end: current,
                hops: seen.len(),
            };
        }
        let mut cnames = answers
            .iter()
            .filter(|r| r.class == CLASS_IN && r.rtype == TYPE_CNAME && r.owner == current);
        let Some(cname) = cnames.next() else {
            return ModelChain::Ends {
                addrs,
                ttl,
                end: current,
                hops: seen.len(),
            };
        };
        if cnames.next().is_some() {
            return ModelChain::Ambiguous;
        }
        let (target, end) = read_name(msg, cname.rdata.start).expect("CNAME target");
        assert_eq!(end, cname.rdata.end, "CNAME target does not fill its data");
        seen.push(std::mem::replace(&mut current, target));
        if seen.contains(&current) || seen.len() > MAX_CNAME_HOPS {
            return ModelChain::Fails;
        }
        ttl = min(ttl, cname.ttl);
    }
}

/// For a message whose header and question the parser accepted and whose answer and
/// authority sections it read: the model's chain, and the negative-caching TTLs the class
/// IN SOA records of the authority section offer (`min(TTL, MINIMUM)`, RFC 2308 §5).
fn dns_model(msg: &[u8], question: &Question, header: DnsHeader) -> (ModelChain, Vec<u32>) {
    let qname = encode_name(&question.name).expect("the question's name encodes");
    let (wire, end) = read_name(msg, DNS_HEADER).expect("question name");
    assert_eq!(wire, qname, "accepted another question name");
    assert_eq!(
        msg.get(end..end + 4),
        Some(&[question.qtype.code().to_be_bytes(), CLASS_IN.to_be_bytes()].concat()[..]),
        "accepted another question type or class"
    );
    let (answers, pos) = model_records(msg, end + 4, header.counts[1]);
    let (authority, _) = model_records(msg, pos, header.counts[2]);
    let soa_ttls = authority
        .iter()
        .filter(|r| r.class == CLASS_IN && r.rtype == TYPE_SOA && r.rdata.len() >= 4)
        .map(|r| {
            let m = &msg[r.rdata.end - 4..r.rdata.end];
            r.ttl.min(u32::from_be_bytes([m[0], m[1], m[2], m[3]]))
        })
        .collect();
    (model_chain(msg, &answers, qname, question.qtype), soa_ttls)
}

/// Checks what `parse_response(msg, question)` returned against what the module promises:
/// the header checks (RFC 1035 §4.1.1, RFC 5452 §9.1), errors that point at what they name,
/// and for an answer, the chain and TTLs of the model. Panics on a violation.
fn check_dns_outcome(msg: &[u8], question: &Question, outcome: &Result<Answer, DnsError>) {
    let len = msg.len();
    if let Err(e) = outcome {
        assert!(!e.to_string().is_empty(), "{e:?} displays as nothing");
    }
    let Some(header) = DnsHeader::of(msg) else {
        assert!(
            matches!(outcome, Err(DnsError::Short { at: 0, len: l, .. }) if *l == len),
            "a {len}-byte message gave {outcome:?}"
        );
        return;
    };
    let [qd, an, ns] = header.counts.map(usize::from);
    let fits = DNS_HEADER + 5 * qd + 11 * (an + ns) <= len;
    match outcome {
        Ok(answer) => {
            assert!(header.qr, "accepted a query");
            assert_eq!(header.id, question.id, "accepted another ID");
            assert_eq!(header.opcode, 0, "accepted another opcode");
            assert_eq!(header.rcode, 0, "accepted an error RCODE");
            assert!(!header.tc, "accepted a truncated response");
            assert_eq!(qd, 1, "accepted {qd} questions");
            assert!(fits, "accepted counts {:?} in {len} bytes", header.counts);
            check_dns_answer(msg, question, header, answer);
        }
        Err(DnsError::NotResponse) => assert!(!header.qr),
        Err(DnsError::WrongId { expected, got }) => {
            assert_eq!((*expected, *got), (question.id, header.id));
            assert_ne!(expected, got);
        }
        Err(DnsError::BadOpcode(op)) => assert!(*op == header.opcode && *op != 0),
        Err(DnsError::CountsTooLarge { counts, len: l }) => {
            assert_eq!((*counts, *l), (header.counts, len));
            assert!(!fits, "counts {counts:?} fit in {len} bytes");
        }
        Err(DnsError::Truncated) => assert!(header.tc),
        Err(DnsError::NxDomain { negative_ttl }) => {
            assert_eq!(header.rcode, 3);
            assert!(negative_ttl.is_none_or(|t| t <= i32::MAX as u32));
        }
        Err(DnsError::Server(rcode)) => {
            assert_eq!(rcode.0, header.rcode);
            assert!(rcode.0 != 0 && rcode.0 != 3, "{rcode:?}");
        }
        Err(DnsError::QuestionMismatch(_)) => {
            // Our question, echoed exactly, is not a mismatch.
            if qd == 1 {
                if let Ok((wire, end)) = read_name(msg, DNS_HEADER) {
                    let ours = encode_name(&question.name).ok() == Some(wire)
                        && msg.get(end..end + 2) == Some(&question.qtype.code().to_be_bytes())
                        && msg.get(end + 2..end + 4) == Some(&CLASS_IN.to_be_bytes());
                    assert!(!ours, "our own question refused");
                }
            }
        }
        Err(DnsError::Short { at, len: l, .. }) => assert!(*l == len && *at <= len),
        Err(DnsError::BadPointer { at, target }) => {
            let bytes = msg.get(*at..*at + 2).expect("pointer within the message");
            assert_eq!(bytes[0] & 0xc0, 0xc0, "not a pointer at {at}");
            let pointed = usize::from(bytes[0] & 0x3f) << 8 | usize::from(bytes[1]);
            assert_eq!(*target, pointed);
        }
        Err(DnsError::BadLabelType { at, byte }) => {
            assert_eq!(msg.get(*at), Some(byte));
            assert!(matches!(byte & 0xc0, 0x40 | 0x80), "{byte:#04x}");
        }
        Err(DnsError::NameTooLong { at } | DnsError::TooManyPointers { at }) => {
            assert!(*at >= DNS_HEADER && *at < len, "name at {at}");
        }
        Err(DnsError::BadRdata { at, .. }) => assert!(*at > DNS_HEADER && *at <= len),
        Err(DnsError::BadCnameTarget { at }) => {
            assert!(*at < len);
            let (chain, _) = dns_model(msg, question, header);
            match chain {
                ModelChain::Ends {
                    addrs, end, hops, ..
                } => {
                    assert!(
                        addrs.is_empty() && hops > 0,
                        "{addrs:?} after {hops} CNAMEs"
                    );
                    assert_eq!(name_to_string(&end), None, "a printable target refused");
                }
                ModelChain::Ambiguous => {}
                ModelChain::Fails => panic!("the chain fails, not its target"),
            }
        }
        Err(DnsError::CnameLoop { .. } | DnsError::CnameChainTooLong) => {
            let (chain, _) = dns_model(msg, question, header);
            assert!(
                !matches!(chain, ModelChain::Ends { .. }),
                "{outcome:?} but the chain ends: {chain:?}"
            );
        }
        Err(e @ (DnsError::BadName { .. } | DnsError::FrameTooLong(_))) => {
            panic!("{e:?} from parse_response with a valid question")
        }
    }
}

/// Checks an answer the parser accepted (see [`Answer`]'s docs) against the model.
fn check_dns_answer(msg: &[u8], question: &Question, header: DnsHeader, answer: &Answer) {
    let Answer {
        addrs,
        ttl,
        cname_target,
        negative_ttl,
    } = answer;
    let addr_len = match question.qtype {
        QType::A => 4,
        QType::Aaaa => 16,
    };
    for (i, addr) in addrs.iter().enumerate() {
        assert_eq!(
            addr.is_ipv4(),
            question.qtype == QType::A,
            "{addr} for {}",
            question.qtype
        );
        assert!(!addrs[..i].contains(addr), "{addr} twice");
    }
    // Each address takes a record: an owner name of a byte or more, 10 fixed bytes, the data.
    assert!(addrs.len() <= usize::from(header.counts[1]));
    assert!(addrs.len() * (11 + addr_len) <= msg.len() - DNS_HEADER);
    assert_eq!(
        ttl.is_some(),
        !addrs.is_empty() || cname_target.is_some(),
        "TTL {ttl:?} with {addrs:?} and target {cname_target:?}"
    );
    assert!(ttl.is_none_or(|t| t <= i32::MAX as u32), "TTL {ttl:?}");
    assert!(negative_ttl.is_none_or(|t| t <= i32::MAX as u32));
    if !addrs.is_empty() {
        assert_eq!(*negative_ttl, None, "negative TTL with addresses");
        assert_eq!(*cname_target, None, "CNAME target with addresses");
    }
    if let Some(target) = cname_target {
        let wire = encode_name(target)
            .unwrap_or_else(|e| panic!("CNAME target {target:?} cannot be queried: {e}"));
        assert_ne!(
            Ok(wire),
            encode_name(&question.name),
            "the CNAME target is the name asked"
        );
    }

    let (chain, soa_ttls) = dns_model(msg, question, header);
    match chain {
        ModelChain::Ends {
            addrs: want,
            ttl: want_ttl,
            end,
            hops,
        } => {
            assert!(hops <= MAX_CNAME_HOPS);
            assert_eq!(addrs, &want, "addresses (model chain of {hops} CNAMEs)");
            assert_eq!(*ttl, want_ttl, "TTL");
            let want_target = if want.is_empty() && hops > 0 {
                Some(name_to_string(&end).expect("printable target"))
            } else {
                None
            };
            assert_eq!(cname_target, &want_target, "CNAME target");
        }
        ModelChain::Fails => panic!("accepted a CNAME chain that loops or is too long"),
        ModelChain::Ambiguous => {}
    }
    if addrs.is_empty() {
        match negative_ttl {
            None => assert!(
                soa_ttls.is_empty(),
                "an SOA {soa_ttls:?} but no negative TTL"
            ),
            Some(t) => assert!(soa_ttls.contains(t), "negative TTL {t} not of {soa_ttls:?}"),
        }
    }
}

/// Reads DNS-over-TCP messages from `pieces` as the resolver does: add each read to a
/// [`TcpFrameReader`], then take every whole message. Returns them, and how many bytes are
/// left buffered.
fn read_frames(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
    let mut reader = TcpFrameReader::default();
    let mut messages = Vec::new();
    for piece in pieces {
        reader.extend(piece);
        while let Some(msg) = reader.next_message() {
            messages.push(msg);
        }
    }
    (messages, reader.buffered())
}

/// Frames `msg` for TCP twice, then the first `tail` bytes of a third frame, and reads the
/// stream whole and cut at `raw_cuts`: both must give `msg` twice, with the partial frame
/// left buffered, and each message must parse as `msg` did. Then reads `msg` itself as a
/// TCP stream, whole and split, and checks the two agree with a plain walk of the prefixes.
fn check_dns_tcp(
    msg: &[u8],
    tail: u8,
    raw_cuts: &[usize],
    question: &Question,
    outcome: &Result<Answer, DnsError>,
) {
    match tcp_frame(msg) {
        Err(e) => assert_eq!(
            (e, msg.len() > usize::from(u16::MAX)),
            (DnsError::FrameTooLong(msg.len()), true)
        ),
        Ok(frame) => {
            assert_eq!(frame[..2], (msg.len() as u16).to_be_bytes());
            assert_eq!(&frame[2..], msg);
            let partial = usize::from(tail) % frame.len();
            let stream = [&frame[..], &frame[..], &frame[..partial]].concat();
            let cuts: Vec<usize> = raw_cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            let whole = read_frames(&[&stream]);
            assert_eq!(whole, (vec![msg.to_vec(), msg.to_vec()], partial));
            let split_pieces = pieces(&stream, &cuts);
            let split = read_frames(&split_pieces);
            assert_eq!(split, whole, "in pieces {:?}", lengths(&split_pieces));
            for received in &split.0 {
                assert_eq!(&parse_response(received, question), outcome);
            }
        }
    }

    let mut rest = msg;
    let mut want = Vec::new();
    while let Some(prefix) = rest.get(..2) {
        let n = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        let Some(message) = rest.get(2..2 + n) else {
            break;
        };
        want.push(message.to_vec());
        rest = &rest[2 + n..];
    }
    let want = (want, rest.len());
    assert_eq!(read_frames(&[msg]), want, "as a TCP stream");
    let cuts: Vec<usize> = raw_cuts.iter().map(|c| c % (msg.len() + 1)).collect();
    let split_pieces = pieces(msg, &cuts);
    assert_eq!(
        read_frames(&split_pieces),
        want,
        "as a TCP stream in pieces {:?}",
        lengths(&split_pieces)
    );
}

/// [`dns`], returning what the parser made of the message.
pub(crate) fn check_dns(data: &[u8]) -> Result<Answer, DnsError> {
    let mut control = Control(data);
    let flags = control.byte();
    let tail = control.byte();
    let raw_cuts = control.raw_cuts();
    let msg = control.0;
    let question = dns_question(flags, msg);
    let outcome = parse_response(msg, &question);
    assert_eq!(parse_response(msg, &question), outcome, "not deterministic");
    check_dns_outcome(msg, &question, &outcome);

    for name in dns_spellings(&question.name) {
        let other = Question {
            name,
            ..question.clone()
        };
        assert_eq!(
            parse_response(msg, &other),
            outcome,
            "{:?} parses otherwise than {:?}",
            other.name,
            question.name
        );
    }
    // Another ID than the message's (not the question's: in mode 3 they differ).
    let message_id = DnsHeader::of(msg).map_or(question.id, |h| h.id);
    let other = Question {
        id: message_id.wrapping_add(1),
        ..question.clone()
    };
    let with_other_id = parse_response(msg, &other);
    assert!(with_other_id.is_err(), "accepted under another ID");
    check_dns_outcome(msg, &other, &with_other_id);
    if outcome.is_ok() {
        let other = Question {
            qtype: match question.qtype {
                QType::A => QType::Aaaa,
                QType::Aaaa => QType::A,
            },
            ..question.clone()
        };
        let with_other_type = parse_response(msg, &other);
        assert!(
            matches!(with_other_type, Err(DnsError::QuestionMismatch(_))),
            "accepted for {} and {}: {with_other_type:?}",
            question.qtype,
            other.qtype
        );
    }

    check_dns_tcp(msg, tail, &raw_cuts, &question, &outcome);
    outcome
}

/// Fuzz entry point for the DNS response parser and DNS-over-TCP framing.
///
/// Input: a control byte (where the expected question comes from: see `dns_question`), a
/// byte for the length of a partial TCP frame, a cut count and cuts (two bytes each), then
/// the message. The message is parsed as the response to that question, which is usually
/// its own, and the outcome checked: an answer against the header, a model of the CNAME
/// chain, the TTL and SOA rules; an error against the bytes it points at. The same message
/// must parse the same under other spellings of the name, never under another ID (or, once
/// accepted, another type), and the same after a trip through TCP framing, whole and in
/// pieces. Panics on any violation.
pub fn dns(data: &[u8]) {
    let _ = check_dns(data);
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::dns::packet::Rcode;

    /// The files of `fuzz/<dir>/<target>/`, if the directory exists.
    fn corpus(dir: &str, target: &str) -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.expect("corpus entry").path()).collect();
        files.sort();
        files
    }

    /// Every committed input of the `dns` fuzzer (the seeds, and the inputs that once found
    /// a bug) passes the entry point.
    #[test]
    fn dns_corpora_replay() {
        let mut replayed = 0;
        for dir in ["seeds", "regressions"] {
            for path in corpus(dir, "dns") {
                let data = std::fs::read(&path).expect("read corpus file");
                let result = std::panic::catch_unwind(|| dns(&data));
                assert!(result.is_ok(), "{} fails", path.display());
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no corpus files under fuzz/seeds/dns");
    }

    /// The seeds reach the parser's paths their names say (fuzz/make_seeds.py writes them),
    /// not only its first checks.
    #[test]
    fn dns_seeds_reach_their_paths() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut checked = 0;
        for path in corpus("seeds", "dns") {
            let name = path.file_name().unwrap().to_str().unwrap();
            let kind = name
                .strip_prefix("seed-")
                .unwrap()
                .trim_end_matches("-split");
            let got = check_dns(&std::fs::read(&path).unwrap());
            let ok = |addrs: &[&str], ttl: Option<u32>| -> bool {
                matches!(&got, Ok(a) if a.addrs == addrs.iter().map(|s| v4(s)).collect::<Vec<_>>()
                    && a.ttl == ttl && a.cname_target.is_none() && a.negative_ttl.is_none())
            };
            let pass = match kind {
                "a" => ok(&["192.0.2.1", "192.0.2.2"], Some(60)),
                "a-edns" => ok(&["192.0.2.9"], Some(60)),
                "aaaa" => ok(&["2001:db8::1"], Some(3600)),
                "cname-chain" => ok(&["198.51.100.7"], Some(60)),
                "cname-dangling" => got.as_ref().is_ok_and(|a| {
                    a.cname_target.as_deref() == Some("alias.example.org")
                        && a.addrs.is_empty()
                        && a.ttl == Some(300)
                }),
                "cname-loop" => matches!(got, Err(DnsError::CnameLoop { .. })),
                "nxdomain-soa" => {
                    got == Err(DnsError::NxDomain {
                        negative_ttl: Some(300),
                    })
                }
                "nodata-soa" => got.as_ref().is_ok_and(|a| {
                    a.addrs.is_empty() && a.ttl.is_none() && a.negative_ttl == Some(900)
                }),
                "tc" => got == Err(DnsError::Truncated),
                "servfail-no-question" => got == Err(DnsError::Server(Rcode(2))),
                "other-name" => got == Err(DnsError::QuestionMismatch("another name")),
                "tcp-stream" => got.is_err(),
                other => panic!("seed {other} has no expected outcome here"),
            };
            assert!(pass, "{name}: {got:?}");
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} seeds");
    }

    /// "Another ID" is another than the message's, not the expected question's: with the
    /// fixed ID 0x1234 (mode 3) and a message of ID 0x1235, the message is accepted under
    /// 0x1235 (found by the fuzzer in the harness itself; the parser was right).
    #[test]
    fn dns_another_id_is_the_messages_plus_one() {
        use crate::testing::dns_responder::{RData, Response};
        let msg = Response::to(0x1235, "www.example.com", 1)
            .answer(
                "www.example.com",
                60,
                RData::A("192.0.2.1".parse().unwrap()),
            )
            .build();
        let data = [&[3u8, 0, 0][..], &msg].concat();
        assert_eq!(
            check_dns(&data),
            Err(DnsError::WrongId {
                expected: 0x1234,
                got: 0x1235
            })
        );
        let data = [&[0u8, 0, 0][..], &msg].concat();
        assert!(check_dns(&data).is_ok());
    }

    /// The model agrees with the parser on hand-made cases: a chain of exactly
    /// `MAX_CNAME_HOPS` is followed, one more is refused.
    #[test]
    fn dns_model_on_long_chains() {
        use crate::testing::dns_responder::{RData, Response};
        for hops in [MAX_CNAME_HOPS, MAX_CNAME_HOPS + 1] {
            let mut response = Response::to(7, "h0.example", 1);
            for i in 0..hops {
                response = response.answer(
                    &format!("h{i}.example"),
                    100 + i as u32,
                    RData::Cname(format!("h{}.example", i + 1)),
                );
            }
            response = response.answer(
                &format!("h{hops}.example"),
                5,
                RData::A("192.0.2.1".parse().unwrap()),
            );
            let msg = response.build();
            let data = [&[0u8, 9, 2, 3, 0, 40, 0][..], &msg].concat();
            let got = check_dns(&data);
            if hops == MAX_CNAME_HOPS {
                assert_eq!(got.unwrap().addrs, vec![v4("192.0.2.1")]);
            } else {
                assert_eq!(got, Err(DnsError::CnameChainTooLong));
            }
        }

        fn v4(s: &str) -> IpAddr {
            s.parse().unwrap()
        }
    }
}
