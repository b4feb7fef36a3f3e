//! Property tests of the sans-IO pieces: the response head parser and the body decoder give
//! the same outcome however the bytes arrive, never panic, and decode valid encodings back
//! to what was encoded.
//!
//! The drivers that feed them the way the client does, and compare a stream read whole with
//! the same stream read in pieces, live in [`crate::testing::fuzz`], shared with the fuzz targets
//! in `fuzz/`. The fuzzers' seed corpora and any regressions they found are replayed here
//! too.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::body::Framing;
use crate::testing::fuzz::{check_body, check_head, read_body, BodyEnd, BodyOutcome, HeadOutcome};

/// Cases per property. The whole module runs in a few seconds in a debug build.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

/// Up to 8 split points, as indexes into a stream of any length.
fn cuts() -> impl Strategy<Value = Vec<Index>> {
    vec(any::<Index>(), 0..8)
}

/// Cut positions in a stream of `len` bytes; with `bytewise`, every position (for a short
/// stream), so each prefix is seen.
fn positions(cuts: &[Index], len: usize, bytewise: bool) -> Vec<usize> {
    if bytewise && len <= 1024 {
        return (1..len).collect();
    }
    cuts.iter().map(|c| c.index(len + 1)).collect()
}

/// Head limits: tiny ones to reach the size checks, and the client's default.
fn head_limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(16usize),
        1 => Just(64),
        1 => Just(256),
        1 => Just(1024),
        1 => Just(8 * 1024),
        4 => Just(64 * 1024),
    ]
}

/// A line ending. A clean head uses CRLF or bare LF; a noisy one sometimes a lone CR or
/// nothing.
fn eol(noisy: bool) -> BoxedStrategy<&'static [u8]> {
    let ok = prop_oneof![2 => Just(&b"\r\n"[..]), 1 => Just(&b"\n"[..])];
    if noisy {
        prop_oneof![24 => ok, 1 => Just(&b"\r"[..]), 1 => Just(&b""[..])].boxed()
    } else {
        ok.boxed()
    }
}

/// An HTTP/1.x status line; a noisy one may have another version, a status code that is
/// not three digits, extra spaces or arbitrary bytes in the reason.
fn status_line(noisy: bool) -> BoxedStrategy<Vec<u8>> {
    let version = if noisy {
        prop_oneof![
            Just("HTTP/1.2"),
            Just("HTTP/2"),
            Just("http/1.1"),
            Just("HTTP/1.1 "),
            Just(""),
        ]
        .boxed()
    } else {
        prop_oneof![3 => Just("HTTP/1.1"), 1 => Just("HTTP/1.0")].boxed()
    };
    // A 1xx other than 101 is an interim head: the header lines after it are then read as
    // the next head's status line. The explicit interim heads are in `mostly_valid_head`.
    let code = prop_oneof![
        8 => (200u16..600).prop_map(|c| c.to_string()),
        2 => prop_oneof![Just(101u16), Just(204), Just(304)].prop_map(|c| c.to_string()),
        1 => prop_oneof![100u16..200, 600u16..1000].prop_map(|c| c.to_string()),
    ];
    let code = if noisy {
        prop_oneof![1 => code, 1 => "[0-9a-z]{0,5}"].boxed()
    } else {
        code.boxed()
    };
    let reason = if noisy {
        vec(any::<u8>(), 0..12).boxed()
    } else {
        prop_oneof![
            6 => "[A-Za-z ]{0,20}".prop_map(String::into_bytes),
            1 => vec(prop_oneof![Just(b'\t'), 0x80u8..=0xff, 0x21u8..0x7f], 0..12),
        ]
        .boxed()
    };
    let sep = if noisy {
        prop_oneof![Just(""), Just("  "), Just("\t")].boxed()
    } else {
        Just(" ").boxed()
    };
    // In a noisy head only one of the parts is noisy, so each is reached.
    let which = if noisy { 0u8..4 } else { 4..5 };
    (
        which,
        version,
        status_line_clean_parts(),
        code,
        sep,
        any::<bool>(),
        reason,
        eol(noisy),
    )
        .prop_map(
            |(which, version, clean, code, sep, has_reason, reason, eol)| {
                let (clean_version, clean_code, clean_reason) = clean;
                let version = if which == 0 { version } else { clean_version };
                let code = if which == 1 { code } else { clean_code };
                let sep = if which == 2 { sep } else { " " };
                let reason = if which == 3 { reason } else { clean_reason };
                let mut line = format!("{version}{sep}{code}").into_bytes();
                if has_reason {
                    line.push(b' ');
                    line.extend_from_slice(&reason);
                }
                line.extend_from_slice(eol);
                line
            },
        )
        .boxed()
}

/// A valid version, status code and reason, for the parts of a noisy status line that are
/// left clean.
fn status_line_clean_parts() -> impl Strategy<Value = (&'static str, String, Vec<u8>)> {
    (
        prop_oneof![Just("HTTP/1.1"), Just("HTTP/1.0")],
        (200u16..600).prop_map(|c| c.to_string()),
        "[A-Za-z ]{0,20}".prop_map(String::into_bytes),
    )
}

fn header_name(noisy: bool) -> BoxedStrategy<Vec<u8>> {
    let ok = prop_oneof![
        2 => prop_oneof![
            Just("Content-Length"),
            Just("Transfer-Encoding"),
            Just("Connection"),
            Just("content-length"),
            Just("Set-Cookie"),
            Just("X-A"),
        ]
        .prop_map(|n| n.as_bytes().to_vec()),
        3 => "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}".prop_map(String::into_bytes),
    ];
    if noisy {
        prop_oneof![
            6 => ok,
            1 => vec(any::<u8>(), 0..8),
            1 => "[A-Za-z]{1,5}[ :@\\t][A-Za-z]{0,3}".prop_map(String::into_bytes),
        ]
        .boxed()
    } else {
        ok.boxed()
    }
}

fn header_value(noisy: bool) -> BoxedStrategy<Vec<u8>> {
    let ok = prop_oneof![
        6 => "[ -~]{0,40}".prop_map(String::into_bytes),
        4 => prop_oneof![
            Just("5"),
            Just("0"),
            Just("5, 5"),
            Just("5, 6"),
            Just("-1"),
            Just("18446744073709551615"),
            Just("18446744073709551616"),
            Just("chunked"),
            Just("gzip, chunked"),
            Just("chunked, gzip"),
            Just("close"),
            Just("keep-alive"),
        ]
        .prop_map(|v| v.as_bytes().to_vec()),
        1 => vec(prop_oneof![Just(b'\t'), Just(b' '), 0x80u8..=0xff, 0x21u8..0x7f], 0..24),
        // Huge values, past the small head limits and near the default one.
        1 => (any::<u8>(), 500usize..6000).prop_map(|(b, n)| vec![b'a' + b % 26; n]),
    ];
    if noisy {
        prop_oneof![6 => ok, 1 => vec(any::<u8>(), 0..16)].boxed()
    } else {
        ok.boxed()
    }
}

/// One header line; in a noisy head, sometimes continued by obs-fold.
fn header_line(noisy: bool) -> BoxedStrategy<Vec<u8>> {
    let sep = prop_oneof![8 => Just(": "), 2 => Just(":"), 1 => Just(":\t"), 1 => Just(":  ")];
    let sep = if noisy {
        prop_oneof![12 => sep, 1 => Just(" : ")].boxed()
    } else {
        sep.boxed()
    };
    let fold = if noisy {
        prop_oneof![
            6 => Just(None),
            1 => (eol(false), prop_oneof![Just(" "), Just("\t")], header_value(false))
                .prop_map(Some),
        ]
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        header_name(noisy),
        sep,
        header_value(noisy),
        fold,
        eol(noisy),
    )
        .prop_map(|(name, sep, value, fold, eol)| {
            let mut line = name;
            line.extend_from_slice(sep.as_bytes());
            line.extend_from_slice(&value);
            if let Some((fold_eol, ws, more)) = fold {
                line.extend_from_slice(fold_eol);
                line.extend_from_slice(ws.as_bytes());
                line.extend_from_slice(&more);
            }
            line.extend_from_slice(eol);
            line
        })
        .boxed()
}

/// A change to one byte of a generated stream.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => Just(Mutation::None),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Delete),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    match mutation {
        Mutation::None => {}
        Mutation::Replace(i, b) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Mutation::Delete(i) if !bytes.is_empty() => {
            bytes.remove(i.index(bytes.len()));
        }
        _ => {}
    }
    bytes
}

/// A response stream that is mostly a valid head: optional interim 1xx heads, a status
/// line, headers (sometimes more than the parser takes), the empty line (usually), then a
/// few bytes of body. One in three has noise in one of its lines (obs-fold, a bad byte, a
/// lone CR...), and one in three has one byte changed, inserted or deleted.
fn mostly_valid_head() -> impl Strategy<Value = Vec<u8>> {
    let interim = prop_oneof![
        6 => Just(""),
        1 => Just("HTTP/1.1 100 Continue\r\n\r\n"),
        1 => Just("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"),
        1 => Just("HTTP/1.1 100 Continue\n\nHTTP/1.1 102 Processing\r\n\r\n"),
    ];
    let headers = prop_oneof![
        12 => vec(header_line(false), 0..20),
        1 => vec(header_line(false), 120..140),
    ];
    // Where the noise goes: nowhere, the status line, or one header line.
    let noise = prop_oneof![
        4 => Just(None),
        1 => status_line(true).prop_map(|line| Some((None, line))),
        1 => (any::<Index>(), header_line(true)).prop_map(|(at, line)| Some((Some(at), line))),
    ];
    let end = prop_oneof![8 => Just(&b"\r\n"[..]), 3 => Just(&b"\n"[..]), 1 => Just(&b""[..])];
    (
        interim,
        status_line(false),
        headers,
        noise,
        end,
        vec(any::<u8>(), 0..32),
        mutation(),
    )
        .prop_map(
            |(interim, status, mut headers, noise, end, rest, mutation)| {
                let mut status = status;
                match noise {
                    None => {}
                    Some((None, line)) => status = line,
                    Some((Some(at), line)) => headers.insert(at.index(headers.len() + 1), line),
                }
                let mut stream = interim.as_bytes().to_vec();
                stream.extend_from_slice(&status);
                for line in headers {
                    stream.extend_from_slice(&line);
                }
                stream.extend_from_slice(end);
                stream.extend_from_slice(&rest);
                mutate(stream, &mutation)
            },
        )
}

/// Checks one head stream whole against split, and returns the whole outcome.
fn head_case(
    stream: &[u8],
    cuts: &[Index],
    bytewise: bool,
    max_head: usize,
) -> Result<HeadOutcome, TestCaseError> {
    let cuts = positions(cuts, stream.len(), bytewise);
    check_head(stream, &cuts, max_head).map_err(TestCaseError::fail)
}

/// Framings for streams of arbitrary bytes: small lengths that the stream may or may not
/// reach, and the largest.
fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        1 => Just(Framing::Empty),
        3 => (0u64..600).prop_map(Framing::Length),
        1 => Just(Framing::Length(u64::MAX)),
        4 => Just(Framing::Chunked),
        2 => Just(Framing::UntilClose),
    ]
}

fn trailer_limit() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 1 => Just(8), 1 => Just(64), 3 => Just(8 * 1024)]
}

/// A chunk extension: empty, or `;name`, `;name=value`, `;name="quoted"`, maybe after
/// whitespace.
fn extension() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        1 => "[a-z]{1,8}".prop_map(|n| format!(";{n}")),
        1 => ("[a-z]{1,8}", "[a-z0-9]{0,8}").prop_map(|(n, v)| format!(";{n}={v}")),
        1 => ("[a-z]{1,8}", "[ a-z0-9]{0,8}").prop_map(|(n, v)| format!(" ;{n}=\"{v}\";x")),
        1 => "[a-z]{1,40}".prop_map(|n| format!("\t;{n}")),
    ]
}

/// A chunk size in hex, in either case, maybe with leading zeros.
fn hex(size: usize, upper: bool, zeros: usize) -> String {
    let digits = if upper {
        format!("{size:X}")
    } else {
        format!("{size:x}")
    };
    format!("{}{digits}", "0".repeat(zeros))
}

/// A valid chunked encoding: the body, the encoded stream, and the trailers it carries
/// (name lowercased, value).
#[derive(Debug, Clone)]
struct Chunked {
    body: Vec<u8>,
    encoded: Vec<u8>,
    trailers: Vec<(String, Vec<u8>)>,
}

fn chunked() -> impl Strategy<Value = Chunked> {
    let chunk = (
        1usize..300,
        any::<bool>(),
        prop_oneof![4 => Just(0usize), 1 => 1usize..4],
        extension(),
    );
    let trailer = ("[A-Za-z][A-Za-z0-9-]{0,12}", "[!-~]([ -~]{0,20}[!-~])?");
    (
        vec(any::<u8>(), 0..2000),
        vec(chunk, 1..12),
        extension(),
        vec(trailer, 0..6),
    )
        .prop_map(|(body, chunks, last_ext, trailers)| {
            let mut encoded = Vec::new();
            let mut rest = &body[..];
            let mut chunks = chunks.iter().cycle();
            while !rest.is_empty() {
                let (size, upper, zeros, ext) = chunks.next().expect("cycle");
                let (data, after) = rest.split_at((*size).min(rest.len()));
                encoded.extend_from_slice(hex(data.len(), *upper, *zeros).as_bytes());
                encoded.extend_from_slice(ext.as_bytes());
                encoded.extend_from_slice(b"\r\n");
                encoded.extend_from_slice(data);
                encoded.extend_from_slice(b"\r\n");
                rest = after;
            }
            encoded.extend_from_slice(b"0");
            encoded.extend_from_slice(last_ext.as_bytes());
            encoded.extend_from_slice(b"\r\n");
            for (name, value) in &trailers {
                encoded.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            encoded.extend_from_slice(b"\r\n");
            Chunked {
                body,
                encoded,
                trailers: trailers
                    .into_iter()
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.into_bytes()))
                    .collect(),
            }
        })
}

fn body_case(
    framing: Framing,
    max_trailer_size: usize,
    stream: &[u8],
    cuts: &[Index],
    bytewise: bool,
    eof: bool,
) -> Result<BodyOutcome, TestCaseError> {
    let cuts = positions(cuts, stream.len(), bytewise);
    check_body(framing, max_trailer_size, stream, &cuts, eof).map_err(TestCaseError::fail)
}

/// Mostly false: feeding byte by byte is slow for heads, which are re-parsed each time.
fn bytewise() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.1)
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes: the head reader gives the same outcome whole and in pieces.
    #[test]
    fn head_arbitrary_bytes_split_anywhere(
        stream in vec(any::<u8>(), 0..600),
        cuts in cuts(),
        bytewise in bytewise(),
        max_head in head_limit(),
    ) {
        head_case(&stream, &cuts, bytewise, max_head)?;
    }

    /// Arbitrary bytes after a valid status line, so the header parser sees them.
    #[test]
    fn head_arbitrary_headers_split_anywhere(
        tail in vec(any::<u8>(), 0..600),
        cuts in cuts(),
        bytewise in bytewise(),
        max_head in head_limit(),
    ) {
        let mut stream = b"HTTP/1.1 200 OK\r\n".to_vec();
        stream.extend_from_slice(&tail);
        head_case(&stream, &cuts, bytewise, max_head)?;
    }

    /// Mostly valid heads: the same outcome whole and in pieces.
    #[test]
    fn head_mostly_valid_split_anywhere(
        stream in mostly_valid_head(),
        cuts in cuts(),
        bytewise in bytewise(),
        max_head in head_limit(),
    ) {
        head_case(&stream, &cuts, bytewise, max_head)?;
    }

    /// A valid head with its headers is read back as written, with the body bytes after it
    /// left unconsumed, however it is split.
    #[test]
    fn head_valid_reads_back(
        status in 200u16..600,
        headers in vec(("[A-Za-z][A-Za-z0-9-]{0,12}", "[!-~]([ -~]{0,30}[!-~])?"), 0..30),
        crlf in any::<bool>(),
        rest in vec(any::<u8>(), 0..64),
        cuts in cuts(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut head = format!("HTTP/1.1 {status} Reason Phrase{eol}");
        for (name, value) in &headers {
            head.push_str(&format!("{name}: {value}{eol}"));
        }
        head.push_str(eol);
        let mut stream = head.clone().into_bytes();
        stream.extend_from_slice(&rest);
        match head_case(&stream, &cuts, false, 64 * 1024)? {
            HeadOutcome::Head { interim, head: parsed, consumed } => {
                prop_assert!(interim.is_empty());
                prop_assert_eq!(consumed, head.len());
                prop_assert_eq!(parsed.status, status);
                prop_assert_eq!(parsed.reason, "Reason Phrase");
                let want: Vec<(String, Vec<u8>)> = headers
                    .iter()
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
                    .collect();
                // HeaderMap groups repeated names; compare as sorted multisets.
                let mut got = parsed.headers;
                got.sort();
                let mut want = want;
                want.sort();
                prop_assert_eq!(got, want);
            }
            other => prop_assert!(false, "valid head not read: {:?}", other),
        }
    }

    /// Arbitrary bytes, every framing, with and without EOF: the same body, end and error
    /// whole and in pieces.
    #[test]
    fn body_arbitrary_bytes_split_anywhere(
        framing in framing(),
        max_trailer_size in trailer_limit(),
        stream in vec(any::<u8>(), 0..800),
        cuts in cuts(),
        bytewise in bytewise(),
        eof in any::<bool>(),
    ) {
        body_case(framing, max_trailer_size, &stream, &cuts, bytewise, eof)?;
    }

    /// Mostly valid chunked bodies (one byte maybe changed, maybe cut short), and bytes that
    /// look like chunk framing: the same outcome whole and in pieces.
    #[test]
    fn body_mostly_valid_chunked_split_anywhere(
        chunked in chunked(),
        mutation in mutation(),
        cut_short in prop::option::weighted(0.2, any::<Index>()),
        framing_soup in vec(
            prop_oneof![
                Just(b'0'), Just(b'1'), Just(b'a'), Just(b'F'), Just(b'\r'), Just(b'\n'),
                Just(b';'), Just(b' '), Just(b'\t'), Just(b':'), Just(b'x'), Just(b'='),
            ],
            0..200,
        ),
        soup in any::<bool>(),
        max_trailer_size in trailer_limit(),
        cuts in cuts(),
        bytewise in bytewise(),
        eof in any::<bool>(),
    ) {
        let mut stream = if soup { framing_soup } else { mutate(chunked.encoded, &mutation) };
        if let Some(at) = cut_short {
            stream.truncate(at.index(stream.len() + 1));
        }
        body_case(Framing::Chunked, max_trailer_size, &stream, &cuts, bytewise, eof)?;
    }

    /// A valid chunked encoding of a random body, with random chunk sizes, extensions and
    /// trailers, decodes to that body and those trailers, ends exactly at its last byte, and
    /// leaves what follows.
    #[test]
    fn body_valid_chunked_round_trips(
        chunked in chunked(),
        after in vec(any::<u8>(), 0..32),
        cuts in cuts(),
        bytewise in bytewise(),
        eof in any::<bool>(),
    ) {
        let mut stream = chunked.encoded.clone();
        stream.extend_from_slice(&after);
        let outcome = body_case(Framing::Chunked, 8 * 1024, &stream, &cuts, bytewise, eof)?;
        prop_assert_eq!(&outcome.data, &chunked.body);
        let BodyEnd::Done { at, trailers } = outcome.end else {
            return Err(TestCaseError::fail(format!("not done: {:?}", outcome.end)));
        };
        prop_assert_eq!(at, chunked.encoded.len());
        let mut want = chunked.trailers;
        want.sort();
        let mut got = trailers.unwrap_or_default();
        got.sort();
        prop_assert_eq!(got, want);
    }

    /// A Content-Length body followed by more bytes: the decoder takes exactly the length
    /// and stops; cut short, it needs more, and at EOF it is truncated.
    #[test]
    fn body_length_stops_exactly(
        body in vec(any::<u8>(), 1..2000),
        after in vec(any::<u8>(), 0..64),
        cut_short in prop::option::weighted(0.3, any::<Index>()),
        cuts in cuts(),
        bytewise in bytewise(),
        eof in any::<bool>(),
    ) {
        let n = body.len();
        let mut stream = body.clone();
        stream.extend_from_slice(&after);
        let short = cut_short.map(|at| at.index(n));
        if let Some(at) = short {
            stream.truncate(at);
        }
        let outcome = body_case(Framing::Length(n as u64), 1024, &stream, &cuts, bytewise, eof)?;
        match short {
            None => {
                prop_assert_eq!(&outcome.data, &body);
                prop_assert_eq!(outcome.end, BodyEnd::Done { at: n, trailers: None });
            }
            Some(at) => {
                prop_assert_eq!(&outcome.data[..], &body[..at]);
                let want = if eof {
                    BodyEnd::Error(super::body::BodyError::Truncated {
                        expected: Some(n as u64),
                        received: at as u64,
                    })
                } else {
                    BodyEnd::Pending { consumed: at }
                };
                prop_assert_eq!(outcome.end, want);
            }
        }
    }

    /// A body until close is everything, at EOF.
    #[test]
    fn body_until_close_is_everything(
        stream in vec(any::<u8>(), 0..2000),
        cuts in cuts(),
    ) {
        let outcome = body_case(Framing::UntilClose, 1024, &stream, &cuts, false, true)?;
        prop_assert_eq!(&outcome.data, &stream);
        prop_assert_eq!(outcome.end, BodyEnd::Done { at: stream.len(), trailers: None });
    }

    /// The fuzz entry points themselves never panic on arbitrary input.
    #[test]
    fn fuzz_entry_points_hold(data in vec(any::<u8>(), 0..400)) {
        crate::testing::fuzz::head(&data);
        crate::testing::fuzz::body(&data);
    }
}

/// The decoder's outcome does not depend on the framing bytes after a finished body.
#[test]
fn length_body_ignores_what_follows() {
    let outcome = read_body(Framing::Length(3), 1024, &[b"abcdef"], false);
    assert_eq!(outcome.data, b"abc");
    assert_eq!(
        outcome.end,
        BodyEnd::Done {
            at: 3,
            trailers: None
        }
    );
}

/// Every file of the fuzzers' corpora in the repository (the seeds, and the inputs that
/// once found a bug) passes the fuzz entry points.
#[test]
fn fuzz_corpora_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (target, run) in [
        ("head", crate::testing::fuzz::head as fn(&[u8])),
        ("body", crate::testing::fuzz::body),
    ] {
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("corpus entry").path();
                let data = std::fs::read(&path).expect("read corpus file");
                let result = std::panic::catch_unwind(|| run(&data));
                assert!(result.is_ok(), "{} fails", path.display());
                replayed += 1;
            }
        }
    }
    assert!(replayed > 0, "no corpus files under {}", root.display());
}

/// A parse error in bytes that no later `\n` follows is still reported as malformed, not as
/// a close in the middle of the head: the client parses once more when the stream ends
/// (found by comparing split and whole streams; it used to depend on how bytes arrived).
#[test]
fn a_late_parse_error_is_malformed_not_a_close() {
    use crate::testing::fuzz::{pieces, read_head, Feed};
    let stream = b"HTTX";
    let whole = read_head(&[stream], 1024, Feed::Client);
    assert!(
        matches!(&whole, HeadOutcome::Error { error, .. } if error.to_string().contains("version")),
        "{whole:?}"
    );
    let split = pieces(stream, &[2]);
    assert_eq!(read_head(&split, 1024, Feed::Client), whole);
    assert_eq!(read_head(&split, 1024, Feed::Eager), whole);
    assert_eq!(check_head(stream, &[2], 1024), Ok(whole));
}
