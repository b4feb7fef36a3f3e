#!/usr/bin/env python3
"""Writes the seed corpora fuzz/seeds/{head,body,dns}/ from the unit tests' cases.

Input layout (see src/testing/fuzz.rs):
  head: flags (bits 0-2: head limit index, bit 3: EOF for the body), cut count (0-8),
        two little-endian bytes per cut, then the stream.
  body: flags (bits 0-1: 0 chunked, 1 length, 2 until close, 3 empty; bit 2: EOF;
        bits 3-4: trailer limit index), for a length two LE bytes of it, cut count, cuts,
        then the stream.
  dns:  flags (bits 0-1: the question: 0 the message's own, 1 its ID and name with the
        type of bit 2, 2 its ID with a fixed name (bits 4-5) and the type of bit 2, 3 the
        same with ID 0x1234; bit 2: AAAA), the length of a partial TCP frame, cut count,
        cuts (into the TCP stream of two frames and the partial one), then the message.
Each cut is taken modulo one more than the stream's length.
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def cuts(points):
    return bytes([len(points)]) + b"".join(struct.pack("<H", p) for p in points)


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


HEADS = [
    ("404", b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nabc"),
    ("http10", b"HTTP/1.0 200 OK\r\n\r\n"),
    ("empty-reason", b"HTTP/1.1 200 \r\n\r\n"),
    ("garbage", b"garbage\r\n\r\n"),
    ("code-2000", b"HTTP/1.1 2000 OK\r\n\r\n"),
    ("http2", b"HTTP/2 200 OK\r\n\r\n"),
    ("bad-name", b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
    ("big", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 2000 + b"\r\n\r\n"),
    ("fifty", b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(50)) + b"\r\n"),
    ("too-many", b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(129)) + b"\r\n"),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("chunked-trailers", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n"),
    ("te-over-two", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("chunked-not-final", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
    ("te-and-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("until-close", b"HTTP/1.1 200 OK\r\n\r\nall of it"),
    ("204", b"HTTP/1.1 204 No Content\r\nContent-Length: 50\r\n\r\n"),
    ("304", b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("100-then-200", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("103-then-200", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
    ("101", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00"),
    ("close-among", b"HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\nContent-Length: 1\r\n\r\nx"),
    ("keep-alive-10", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"),
    ("cl-list", b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("cl-differ", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
    ("cl-overflow", b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n"),
    ("cl-max", b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"),
    ("bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n"),
    ("obs-text", b"HTTP/1.1 200 \xc3\xa9t\xe9\r\nX: caf\xe9\r\n\r\n"),
]

for i, (name, stream) in enumerate(HEADS):
    # Whole with the default limit; and in pieces with a limit from the table.
    write("head", f"seed-{name}", bytes([7]) + cuts([]) + stream)
    points = [len(stream) // 3, len(stream) // 2 + 1, len(stream) - 1]
    write("head", f"seed-{name}-split", bytes([i % 8 | 8]) + cuts(points) + stream)

# (name, framing, length, eof, stream)
BODIES = [
    ("empty", 3, 0, False, b"junk"),
    ("length-exact", 1, 5, False, b"hello"),
    ("length-rest", 1, 5, False, b"helloHTTP/1.1"),
    ("length-short", 1, 10, True, b"hello"),
    ("length-huge", 1, 0xFFFF, True, b"abc"),
    ("until-close", 2, 0, True, b"all of it"),
    ("chunked-simple", 0, 0, False, b"5\r\nhello\r\n0\r\n\r\n"),
    ("chunked-two", 0, 0, False, b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"),
    ("chunked-hex", 0, 0, False, b"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"),
    ("chunked-zeros", 0, 0, False, b"0005\r\nhello\r\n000\r\n\r\n"),
    ("chunked-ext", 0, 0, False, b"5;name=value;x\r\nhello\r\n0;last\r\n\r\n"),
    ("chunked-ws-ext", 0, 0, False, b"5 ;a=b\r\nhello\r\n0\r\n\r\n"),
    ("chunked-trailers", 0, 0, False, b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum: 42\r\n\r\n"),
    ("chunked-next", 0, 0, False, b"0\r\n\r\nHTTP/1.1"),
    ("chunked-trunc-data", 0, 0, True, b"5\r\nhel"),
    ("chunked-trunc-last", 0, 0, True, b"5\r\nhello\r\n"),
    ("chunked-trunc-trailers", 0, 0, True, b"0\r\nX: y\r\n"),
    ("chunked-not-hex", 0, 0, False, b"zz\r\n"),
    ("chunked-negative", 0, 0, False, b"-5\r\nhello\r\n"),
    ("chunked-empty-line", 0, 0, False, b"\r\n"),
    ("chunked-overflow", 0, 0, False, b"1ffffffffffffffff\r\n"),
    ("chunked-bare-lf", 0, 0, False, b"5\nhello"),
    ("chunked-too-long", 0, 0, False, b"3\r\nhello\r\n"),
    ("chunked-cr-no-lf", 0, 0, False, b"5\r\nhello\rX"),
    ("chunked-bad-trailer", 0, 0, False, b"0\r\nno colon here\r\n\r\n"),
    ("chunked-big-trailers", 0, 0, False, b"0\r\n" + b"".join(b"X-Header-%d: some value here\r\n" % i for i in range(100)) + b"\r\n"),
    ("chunked-long-ext", 0, 0, False, b"5;" + b"x" * 4106),
]

for i, (name, framing, length, eof, stream) in enumerate(BODIES):
    flags = framing | (4 if eof else 0) | (3 << 3)
    head = bytes([flags]) + (struct.pack("<H", length) if framing == 1 else b"")
    write("body", f"seed-{name}", head + cuts([]) + stream)
    points = [1, len(stream) // 2, len(stream) - 2]
    flags = framing | (4 if eof else 0) | ((i % 4) << 3)
    head = bytes([flags]) + (struct.pack("<H", length) if framing == 1 else b"")
    write("body", f"seed-{name}-split", head + cuts(points) + stream)


# DNS responses (RFC 1035 §4.1). Names keep their case; b"\xc0\x0c" points at the question.
def name(text):
    labels = [l for l in text.rstrip(".").split(".") if l]
    return b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0"


def ptr(offset):
    return struct.pack(">H", 0xC000 | offset)


def dns_header(flags, qd, an, ns, ar=0, ident=0x1234):
    return struct.pack(">HHHHHH", ident, flags, qd, an, ns, ar)


def rr(owner, rtype, ttl, rdata, cls=1):
    return owner + struct.pack(">HHIH", rtype, cls, ttl, len(rdata)) + rdata


A, CNAME, SOA, AAAA, OPT = 1, 5, 6, 28, 41
NOERROR, TC, NXDOMAIN, SERVFAIL = 0x8180, 0x8380, 0x8183, 0x8182
WWW = name("www.example.com")  # at 12; "example.com" at 16
QA = WWW + struct.pack(">HH", A, 1)
QAAAA = WWW + struct.pack(">HH", AAAA, 1)


def soa(minimum):
    # ns1.example.com and hostmaster.example.com, compressed to the question's suffix.
    return b"\x03ns1" + ptr(16) + b"\x0ahostmaster" + ptr(16) + struct.pack(
        ">IIIII", 2024010101, 7200, 3600, 1209600, minimum)


def cname_chain():
    # www.example.com -> cdn.example.net -> edge.example.net -> A, TTLs 300, 60, 120.
    msg = dns_header(NOERROR, 1, 3, 0) + QA
    msg += ptr(12) + struct.pack(">HHIH", CNAME, 1, 300, 17)
    cdn = len(msg)
    msg += name("cdn.example.net")
    msg += ptr(cdn) + struct.pack(">HHIH", CNAME, 1, 60, 7)
    edge = len(msg)
    msg += b"\x04edge" + ptr(cdn + 4)
    return msg + rr(ptr(edge), A, 120, bytes([198, 51, 100, 7]))


def cname_loop():
    # www.example.com -> a.example.com -> www.example.com
    msg = dns_header(NOERROR, 1, 2, 0) + QA
    msg += ptr(12) + struct.pack(">HHIH", CNAME, 1, 60, 4)
    a = len(msg)
    msg += b"\x01a" + ptr(16)
    return msg + rr(ptr(a), CNAME, 60, ptr(12))


DNS = [
    ("a", dns_header(NOERROR, 1, 2, 0) + QA + rr(WWW, A, 300, bytes([192, 0, 2, 1]))
     + rr(b"\x03WWW\x07Example\x03COM\x00", A, 60, bytes([192, 0, 2, 2]))),
    ("aaaa", dns_header(NOERROR, 1, 1, 0) + QAAAA
     + rr(ptr(12), AAAA, 3600, bytes.fromhex("20010db8000000000000000000000001"))),
    ("a-edns", dns_header(NOERROR, 1, 1, 0, 1) + QA + rr(ptr(12), A, 60, bytes([192, 0, 2, 9]))
     + b"\0" + struct.pack(">HHIH", OPT, 1232, 0, 0)),
    ("cname-chain", cname_chain()),
    ("cname-dangling", dns_header(NOERROR, 1, 1, 0) + QA
     + rr(ptr(12), CNAME, 300, name("alias.example.org"))),
    ("cname-loop", cname_loop()),
    ("nxdomain-soa", dns_header(NXDOMAIN, 1, 0, 1) + QA + rr(ptr(16), SOA, 900, soa(300))),
    ("nodata-soa", dns_header(NOERROR, 1, 0, 1) + QAAAA + rr(ptr(16), SOA, 900, soa(3600))),
    ("tc", dns_header(TC, 1, 0, 0) + QA),
    ("servfail-no-question", dns_header(SERVFAIL, 0, 0, 0)),
]

for label, msg in DNS:
    write("dns", f"seed-{label}", bytes([0, 0]) + cuts([]) + msg)
for label, msg in DNS[:4]:
    # In pieces, with a partial third frame, and the type from the control byte.
    stream = 2 * (len(msg) + 2)
    points = [1, stream // 3, stream // 2 + 1, stream - 1]
    aaaa = 4 if msg[29:31] == struct.pack(">H", AAAA) else 0
    write("dns", f"seed-{label}-split", bytes([1 | aaaa, len(msg) // 2]) + cuts(points) + msg)
# Checked against another name: a mismatch.
write("dns", "seed-other-name", bytes([2 | 1 << 4, 0]) + cuts([]) + DNS[0][1])
# Two queries framed for TCP: not a response, but a stream of two messages.
query = dns_header(0x0100, 1, 0, 0) + QA
write("dns", "seed-tcp-stream", bytes([0, 0]) + cuts([3])
      + (struct.pack(">H", len(query)) + query) * 2)
