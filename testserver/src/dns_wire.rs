//! The test DNS server's own wire helpers: names to labels and back, and TCP framing.
//!
//! Written apart from the client's `volley::dns` parser on purpose: a test server that shared
//! the code under test would agree with its bugs. These are small and strict: a query's name
//! must be uncompressed (the first name in a message has nothing to point back to), and every
//! length is checked before it is used.

use std::fmt;

/// The UDP payload size the server advertises in its OPT record (RFC 6891; the 2020 DNS flag
/// day's value).
pub(crate) const EDNS_UDP_PAYLOAD: u16 = 1232;

/// The longest label and name, in wire bytes (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;
const MAX_NAME: usize = 255;

/// Why a textual name cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadName {
    name: String,
    why: &'static str,
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid DNS name {:?}: {}", self.name, self.why)
    }
}

impl std::error::Error for BadName {}

/// Encodes a textual name as wire-form labels, ASCII letters lowered. A trailing dot is
/// allowed; `"."` is the root. Labels are ASCII without control characters or spaces.
pub(crate) fn encode_name(name: &str) -> Result<Vec<u8>, BadName> {
    let bad = |why| BadName {
        name: name.to_owned(),
        why,
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if !name.is_ascii() || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("not printable ASCII"));
    }
    let mut wire = Vec::with_capacity(name.len() + 2);
    if name != "." {
        for label in name.strip_suffix('.').unwrap_or(name).split('.') {
            if label.is_empty() || label.len() > MAX_LABEL {
                return Err(bad("a label is empty or longer than 63 bytes"));
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

/// Reads the uncompressed name at `start`: its wire form with ASCII letters lowered, and the
/// offset just after it. `None` for a cut name, a compression pointer, a reserved label type
/// or a name over 255 bytes.
pub(crate) fn read_name(msg: &[u8], start: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::new();
    let mut pos = start;
    loop {
        let len = *msg.get(pos)?;
        if len & 0xc0 != 0 {
            return None; // a pointer (0xc0) or a reserved label type (0x40, 0x80)
        }
        let len = usize::from(len);
        let label = msg.get(pos + 1..pos + 1 + len)?;
        name.push(len as u8);
        name.extend(label.iter().map(u8::to_ascii_lowercase));
        if name.len() > MAX_NAME {
            return None;
        }
        pos += 1 + len;
        if len == 0 {
            return Some((name, pos));
        }
    }
}

/// Prefixes `msg` with its two-byte length, for DNS over TCP (RFC 1035 §4.2.2); `None` if it
/// is longer than 65,535 bytes.
pub(crate) fn tcp_frame(msg: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(msg.len()).ok()?;
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    Some(framed)
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
        let len = usize::from(u16::from_be_bytes([*self.buf.first()?, *self.buf.get(1)?]));
        let msg = self.buf.get(2..2 + len)?.to_vec();
        self.buf.drain(..2 + len);
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table: textual names and their wire form, or the refusal.
    #[test]
    fn names_encode() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("Host.Test", Some(b"\x04host\x04test\x00")),
            ("host.test.", Some(b"\x04host\x04test\x00")),
            (".", Some(b"\x00")),
            ("", None),
            ("a..b", None),
            ("b\u{fc}cher.test", None),
            ("sp ace.test", None),
        ];
        for (name, want) in cases {
            assert_eq!(encode_name(name).ok().as_deref(), *want, "{name:?}");
        }
        assert!(encode_name(&format!("{}.test", "a".repeat(64))).is_err());
        assert!(encode_name(&vec!["a".repeat(63); 4].join(".")).is_err());
    }

    /// A name reads back lowered, and cut, compressed or oversized names are refused.
    #[test]
    fn names_read() {
        let msg = b"\x04HoSt\x04test\x00rest";
        assert_eq!(
            read_name(msg, 0),
            Some((b"\x04host\x04test\x00".to_vec(), 11))
        );
        for bad in [&b"\x04host\x04te"[..], b"\x04host\xc0\x00", b"\x40abc", b""] {
            assert_eq!(read_name(bad, 0), None, "{bad:?}");
        }
        let long: Vec<u8> = [b"\x3f".as_slice(), &[b'a'; 63]].concat().repeat(5);
        assert_eq!(read_name(&[long, vec![0]].concat(), 0), None);
    }

    /// Framed messages come back whole, whatever the pieces they arrive in.
    #[test]
    fn tcp_frames_round_trip() {
        let stream = [
            tcp_frame(b"one").unwrap(),
            tcp_frame(b"").unwrap(),
            tcp_frame(b"three").unwrap(),
        ]
        .concat();
        let mut reader = TcpFrameReader::default();
        let mut got = Vec::new();
        for byte in stream {
            reader.extend(&[byte]);
            while let Some(msg) = reader.next_message() {
                got.push(msg);
            }
        }
        assert_eq!(got, [b"one".to_vec(), vec![], b"three".to_vec()]);
        assert!(tcp_frame(&vec![0; 65_536]).is_none());
    }
}
