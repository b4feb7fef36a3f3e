//! Entry points for the fuzz targets in `fuzz/`, and the incremental drivers they share with
//! the property tests in `http::props`. Not a public API: hidden, compiled only with the
//! `fuzzing` feature (and in this crate's own tests), and free to change.
//!
//! The drivers feed a byte stream to the sans-IO pieces the way the client does, in pieces
//! that arrive one read at a time. [`head`] and [`body`] run one stream whole and split at
//! input-derived points and panic if the outcomes differ, so a fuzzer finds divergences, not
//! only crashes.

use http::Method;

use crate::http::body::{BodyDecoder, BodyError, Framing};
use crate::http::conn::MAX_INTERIM_RESPONSES;
use crate::http::head::{framing, parse_head, BodyPlan, HeadError, ResponseHead};

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
            reason: head.reason.clone(),
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

    /// Up to 8 cut points: a count byte, then two bytes each. Returns the cuts, reduced
    /// modulo one more than the length of what follows them (the stream), and the stream.
    fn cuts_and_stream(mut self) -> (Vec<usize>, &'a [u8]) {
        let n = self.byte() % 9;
        let raw: Vec<usize> = (0..n).map(|_| usize::from(self.u16())).collect();
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
