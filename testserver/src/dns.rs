//! [`DnsServer`]: a small authoritative DNS server on loopback, over UDP and TCP on one port,
//! for testing and benchmarking the [`NativeResolver`](volley::NativeResolver) without a
//! network. It is not a real DNS server; its docs say what it does.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::dns_wire::{encode_name, read_name, tcp_frame, TcpFrameReader, EDNS_UDP_PAYLOAD};
use volley::net::{TcpListener, TcpStream, UdpSocket};

use volley::rt::Sleep;
use volley::sleep;
use volley::{spawn, JoinHandle};

/// The default TTL of answers, and the SOA's MINIMUM (the negative-caching TTL).
const DEFAULT_TTL: u32 = 300;

/// How many times [`DnsBuilder::bind`] with port 0 picks a new UDP port when the TCP port of
/// the same number is taken.
const BIND_TRIES: usize = 32;

/// The largest datagram: a UDP socket cuts longer ones silently, so the buffer holds any.
const UDP_BUFFER: usize = 65536;

/// The UDP receive buffer asked for. Clients on the same runtime send their queries in a
/// burst before the server's task runs: 200 lookups are 400 datagrams, and the usual default
/// buffer (`net.core.rmem_default`, 208 KiB) holds about 256 of them; the rest would be
/// dropped by the kernel and retried by the resolver only after its timeout.
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

/// Datagrams read in one turn of the UDP task before it lets other tasks run.
const UDP_BUDGET: usize = 64;

/// Answers waiting for their delay (or for the socket to take them) before the server stops
/// reading queries: a flood then overflows the kernel's buffer instead of our memory.
const MAX_PENDING_UDP: usize = 16 * 1024;

/// The same, per TCP connection; and the most answer bytes a TCP connection holds unwritten
/// before it stops reading queries (a client that does not read its answers).
const MAX_PENDING_TCP: usize = 256;
const MAX_UNWRITTEN_TCP: usize = 256 * 1024;

/// Bytes read from a TCP connection at once.
const TCP_READ: usize = 4096;

/// Turns of a TCP connection's loop (each a read, or a write) before it lets other tasks run.
const TCP_BUDGET: usize = 64;

/// A TCP connection with nothing to answer and no query for this long is closed
/// (RFC 7766 §6.2.3 asks servers to close idle connections).
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The most TCP connections open at once; further ones are closed as soon as accepted.
const MAX_CONNECTIONS: usize = 1024;

/// The largest message over TCP (its length prefix has 16 bits).
const MAX_TCP_MESSAGE: usize = 65535;

/// The largest UDP answer to a query without EDNS0 (RFC 1035 §4.2.1).
const PLAIN_UDP: usize = 512;

const HEADER_LEN: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_SOA: u16 = 6;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

// Header flags (RFC 1035 §4.1.1).
const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;

// Response codes.
const NOERROR: u8 = 0;
const NXDOMAIN: u8 = 3;
const REFUSED: u8 = 5;

/// The SOA's MNAME and RNAME, in wire form: `ns.volley-dns.invalid.` and
/// `hostmaster.volley-dns.invalid.`.
const SOA_MNAME: &[u8] = b"\x02ns\x0avolley-dns\x07invalid\x00";
const SOA_RNAME: &[u8] = b"\x0ahostmaster\x0avolley-dns\x07invalid\x00";

/// Configures a [`DnsServer`]: its records, TTL, delay and truncation;
/// [`bind`](DnsBuilder::bind) starts it.
///
/// ```
/// use std::time::Duration;
/// use volley_testserver::DnsServer;
///
/// let builder = DnsServer::builder()
///     .record("db.test", "192.0.2.7".parse().unwrap())
///     .record("db.test", "2001:db8::7".parse().unwrap())
///     .wildcard("web.test", "127.0.0.1".parse().unwrap())
///     .ttl(60)
///     .delay(Duration::from_millis(2));
/// # drop(builder);
/// ```
#[derive(Clone, Debug)]
#[must_use = "call .bind(addr) to start the server"]
pub struct DnsBuilder {
    /// `(name, address)` as given, checked by `bind`.
    records: Vec<(String, IpAddr)>,
    /// `(suffix, address)` as given, checked by `bind`.
    wildcards: Vec<(String, IpAddr)>,
    ttl: u32,
    delay: Duration,
    truncate_udp: bool,
}

impl Default for DnsBuilder {
    fn default() -> DnsBuilder {
        DnsBuilder {
            records: Vec::new(),
            wildcards: Vec::new(),
            ttl: DEFAULT_TTL,
            delay: Duration::ZERO,
            truncate_udp: false,
        }
    }
}

impl DnsBuilder {
    /// Adds an address record for exactly `name`: `A` for an IPv4 address, `AAAA` for an
    /// IPv6 one. Names match in any case, with or without a trailing dot. Call it again to
    /// give a name more addresses; they are answered in the order given.
    pub fn record(mut self, name: &str, ip: IpAddr) -> Self {
        self.records.push((name.to_owned(), ip));
        self
    }

    /// Adds an address record for every name strictly under `suffix`: `web.test` covers
    /// `h1.web.test` and `a.b.web.test`, not `web.test` itself (a leading `*.` is allowed and
    /// means the same). A name with records of its own ([`record`](Self::record)) gets only
    /// those; when several wildcards cover a name, the longest suffix wins. `"."` covers
    /// every name.
    pub fn wildcard(mut self, suffix: &str, ip: IpAddr) -> Self {
        self.wildcards.push((suffix.to_owned(), ip));
        self
    }

    /// The TTL of every answer, in seconds, and the SOA's MINIMUM, which resolvers use as
    /// the TTL of a negative answer (RFC 2308). Default 300.
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sends each answer this long after its query arrived, to play a distant resolver.
    /// Each query waits on its own: the server keeps reading and answering others meanwhile,
    /// so a burst of queries is answered after one delay, not one delay each. Default 0.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// With `true`, every UDP answer is truncated: the header and the question only, with
    /// the TC bit set, so that clients ask again over TCP, where they get the whole answer.
    /// Default `false` (an answer too large for the client's UDP payload is truncated
    /// anyway).
    pub fn truncate_udp(mut self, yes: bool) -> Self {
        self.truncate_udp = yes;
        self
    }

    /// Binds UDP and TCP on `addr` and starts serving on the runtime running on this thread.
    ///
    /// With port 0, the UDP socket is bound first, to a port the kernel picks, then TCP on
    /// the same port number; if that one is taken over TCP, another UDP port is tried, a few
    /// times. Only `addr`'s IP is ever bound. Fails outside a runtime, if the address cannot
    /// be bound, or if a record's name is not a valid DNS name (`InvalidInput`).
    pub fn bind(self, addr: SocketAddr) -> io::Result<DnsServer> {
        if !volley::rt::in_runtime() {
            return Err(io::Error::other(
                "volley_testserver::DnsServer::bind called outside a runtime: call it inside \
                 Runtime::block_on",
            ));
        }
        let zone = Zone::new(&self.records, &self.wildcards)?;
        let (udp, listener) = bind_pair(addr)?;
        let addr = udp.local_addr()?;
        let state = Rc::new(State {
            zone,
            ttl: self.ttl,
            delay: self.delay,
            truncate_udp: self.truncate_udp,
            stats: Cell::new(DnsServerStats::default()),
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(0),
        });
        let udp = Rc::new(RefCell::new(Some(udp)));
        let listener = Rc::new(RefCell::new(Some(listener)));
        let udp_task = spawn(serve_udp(udp.clone(), state.clone()));
        let accept_task = spawn(accept_loop(listener.clone(), state.clone()));
        Ok(DnsServer {
            state,
            udp,
            listener,
            udp_task,
            accept_task,
            addr,
        })
    }
}

/// Binds UDP and TCP on the same address; see [`DnsBuilder::bind`].
fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        let udp = bind_udp(addr)?;
        return Ok((udp, TcpListener::bind(addr)?));
    }
    let mut last = None;
    for _ in 0..BIND_TRIES {
        let udp = bind_udp(addr)?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(listener) => return Ok((udp, listener)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()))
}

/// Binds the UDP socket, with a receive buffer of [`UDP_RECEIVE_BUFFER`] if the kernel
/// allows (it caps the request at `net.core.rmem_max`).
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER);
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// What a [`DnsServer`] has done so far, from [`DnsServer::stats`].
///
/// Every well-formed query counts once in `queries` and once in exactly one of `a`, `aaaa`
/// and `other`, whichever transport it came over; a query asked over UDP and then again
/// over TCP (after a truncated answer) counts twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsServerStats {
    /// Well-formed queries received, over UDP and TCP; each was answered (or will be, once
    /// its delay has passed).
    pub queries: u64,
    /// Of those, queries for `A` records.
    pub a: u64,
    /// Queries for `AAAA` records.
    pub aaaa: u64,
    /// Queries for any other type (answered with no records).
    pub other: u64,
    /// Queries received over TCP.
    pub tcp: u64,
    /// Queries answered NXDOMAIN.
    pub nxdomain: u64,
    /// Messages dropped without an answer: too short, not a standard query (a response, or
    /// another opcode), not exactly one question, or a question that does not parse.
    pub malformed: u64,
}

/// A DNS server on loopback for tests and benchmarks, on the current thread's volley
/// runtime: UDP and TCP (RFC 7766, two-byte length prefix) on one port, answering from a
/// fixed zone of address records. Dropping it, or [`shutdown`](DnsServer::shutdown), stops
/// it.
///
/// ```
/// use std::net::IpAddr;
/// use volley_testserver::DnsServer;
/// use volley::{NativeResolver, Runtime};
///
/// let rt = Runtime::new()?;
/// rt.block_on(async {
///     let dns = DnsServer::builder()
///         .wildcard("web.test", "127.0.0.1".parse().unwrap())
///         .bind("127.0.0.1:0".parse().unwrap())?;
///     let resolver = NativeResolver::from_text("", "").nameservers([dns.local_addr()]);
///
///     let addrs = resolver.lookup("h1.web.test").await?;
///     assert_eq!(addrs, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
///     assert!(resolver.lookup("nowhere.test").await.is_err()); // NXDOMAIN
///     let stats = dns.stats();
///     assert_eq!((stats.a, stats.aaaa, stats.nxdomain), (2, 2, 2));
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// It exists so that the resolver, the client and the examples can be exercised on loopback
/// with names of their own (`h17.web.test`), a chosen TTL and a chosen latency. It is not a
/// DNS server for real use: no zone files, no recursion, no DNSSEC, no record types beyond
/// `A`, `AAAA` and the `SOA` of negative answers, and it trusts its clients to be tests.
///
/// What it answers:
///
/// - Standard queries (opcode QUERY) with one question. The answer has the query's ID, its
///   question section as received (letter case included), QR and AA set, RD copied from the
///   query, RA set. Anything else (a message shorter than a header, a response, another
///   opcode, not exactly one question, answer or authority records in a query, a question
///   that does not parse) is counted in [`DnsServerStats::malformed`] and dropped without
///   an answer. Parsing never reads past the message.
/// - A name with records of the asked type ([`DnsBuilder::record`], or a
///   [`DnsBuilder::wildcard`] covering it) gets them all, with the [`DnsBuilder::ttl`], the
///   owner name compressed to a pointer to the question.
/// - A name with records, but none of the asked type (an `AAAA` query for a name with only
///   IPv4 addresses, or any type other than `A` and `AAAA`): NODATA, that is NOERROR with no
///   answer and an SOA in the authority section whose MINIMUM (and TTL) is the TTL.
/// - A name without records: NXDOMAIN, with the same SOA. There are no empty non-terminals:
///   with a record for `a.b.test` only, `b.test` is NXDOMAIN too.
/// - A class other than IN: REFUSED.
/// - The SOA belongs to the root zone (owner `.`), with MNAME `ns.volley-dns.invalid`: the
///   server plays the root of a private namespace.
/// - A query with an EDNS0 OPT record (RFC 6891) gets one back, advertising 1232 bytes. A
///   UDP answer larger than the query's payload size (512 bytes without EDNS0) is sent
///   truncated: the header and the question, with TC set, as every answer is with
///   [`DnsBuilder::truncate_udp`]. Over TCP an answer may have up to 65535 bytes (some
///   2,300 `AAAA` or 4,000 `A` records for one name; beyond that it is truncated too).
///   Queries may be pipelined on one TCP connection: each gets its answer after its own
///   delay, in order. A connection idle for 10 s is closed.
/// - With [`DnsBuilder::delay`], each answer leaves that long after its query arrived.
/// - The UDP socket asks for a 4 MiB receive buffer (the kernel caps it at
///   `net.core.rmem_max`), so that a burst of queries sent by many lookups at once, before
///   the server's task runs, is not dropped by the kernel.
///
/// The server only ever binds the address it is given (tests use `127.0.0.1:0`).
pub struct DnsServer {
    state: Rc<State>,
    /// Taken (and so closed) on shutdown.
    udp: Rc<RefCell<Option<UdpSocket>>>,
    /// Taken (and so closed) on shutdown.
    listener: Rc<RefCell<Option<TcpListener>>>,
    udp_task: JoinHandle<()>,
    accept_task: JoinHandle<()>,
    addr: SocketAddr,
}

impl fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsServer")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish()
    }
}

impl DnsServer {
    /// A server with an empty zone (every name is NXDOMAIN), bound to `addr`; see
    /// [`DnsBuilder::bind`].
    pub fn bind(addr: SocketAddr) -> io::Result<DnsServer> {
        DnsBuilder::default().bind(addr)
    }

    /// Starts configuring a server.
    pub fn builder() -> DnsBuilder {
        DnsBuilder::default()
    }

    /// The address the server listens on, for UDP and TCP alike: give it to
    /// [`NativeResolver::nameservers`](volley::NativeResolver::nameservers).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the server has done so far.
    pub fn stats(&self) -> DnsServerStats {
        self.state.stats.get()
    }

    /// Stops the server now: both sockets close at once, answers still waiting for their
    /// delay are dropped, and the TCP connections' tasks are cancelled, which closes their
    /// sockets when the runtime next turns (or when it is dropped). Calling it again does
    /// nothing.
    pub fn shutdown(&self) {
        drop(self.udp.borrow_mut().take());
        drop(self.listener.borrow_mut().take());
        self.udp_task.abort();
        self.accept_task.abort();
        let conns = std::mem::take(&mut *self.state.conns.borrow_mut());
        for task in conns.into_values() {
            task.abort();
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// The zone and the answers, sans-IO
// ---------------------------------------------------------------------------------------------

/// The records, by name in wire form with letters lowered.
#[derive(Debug, Default)]
struct Zone {
    /// Addresses of exactly this name, in the order given, without duplicates.
    exact: HashMap<Vec<u8>, Vec<IpAddr>>,
    /// Addresses of every name strictly under this suffix.
    wildcards: HashMap<Vec<u8>, Vec<IpAddr>>,
}

impl Zone {
    fn new(records: &[(String, IpAddr)], wildcards: &[(String, IpAddr)]) -> io::Result<Zone> {
        let wire = |name: &str| {
            encode_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
        };
        let add = |map: &mut HashMap<Vec<u8>, Vec<IpAddr>>, key: Vec<u8>, ip: IpAddr| {
            let addrs = map.entry(key).or_default();
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        };
        let mut zone = Zone::default();
        for (name, ip) in records {
            add(&mut zone.exact, wire(name)?, *ip);
        }
        for (suffix, ip) in wildcards {
            let suffix = match suffix.strip_prefix("*.") {
                Some(rest) => rest,
                None => suffix,
            };
            add(&mut zone.wildcards, wire(suffix)?, *ip);
        }
        Ok(zone)
    }

    /// The addresses of `name` (lowered wire form), or `None` if the zone does not have it.
    fn find(&self, name: &[u8]) -> Option<&[IpAddr]> {
        if let Some(addrs) = self.exact.get(name) {
            return Some(addrs);
        }
        // The suffixes strictly above the name, longest first: skip one label at a time.
        let mut pos = 0;
        while let Some(&len) = name.get(pos) {
            if len == 0 {
                break;
            }
            pos += 1 + usize::from(len);
            if let Some(addrs) = name.get(pos..).and_then(|s| self.wildcards.get(s)) {
                return Some(addrs);
            }
        }
        None
    }
}

/// What a query asks, read by [`parse_query`].
#[derive(Debug, PartialEq, Eq)]
struct Query<'a> {
    id: u16,
    /// Recursion desired: copied to the answer.
    rd: bool,
    /// The question section as received (name, type, class), to echo as it is. Its name is
    /// uncompressed: the first name in a message has nothing to point back to.
    question: &'a [u8],
    /// The name in wire form, letters lowered.
    name: Vec<u8>,
    qtype: u16,
    qclass: u16,
    /// The UDP payload size of the query's EDNS0 OPT record (at least 512), if it has one.
    edns: Option<u16>,
}

/// Reads a query, or `None` for a message to drop: see [`DnsServer`] for what is refused.
fn parse_query(msg: &[u8]) -> Option<Query<'_>> {
    let header = msg.get(..HEADER_LEN)?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let flags = word(2);
    let opcode = (flags >> 11) & 0xf;
    if flags & FLAG_QR != 0 || opcode != 0 {
        return None;
    }
    let (qdcount, ancount, nscount, arcount) = (word(4), word(6), word(8), word(10));
    if qdcount != 1 || ancount != 0 || nscount != 0 {
        return None;
    }
    let (name, end) = read_name(msg, HEADER_LEN)?;
    let fixed = msg.get(end..end + 4)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    // The first additional record, if it is an OPT: the root name, type 41, and the payload
    // size in the class field (RFC 6891 §6.1.2). Anything else there is ignored.
    let additional = &msg[end + 4..];
    let edns = match additional {
        [0, 0, 41, hi, lo, ..] if arcount > 0 && additional.len() >= 11 => {
            Some(u16::from_be_bytes([*hi, *lo]).max(PLAIN_UDP as u16))
        }
        _ => None,
    };
    Some(Query {
        id: word(0),
        rd: flags & FLAG_RD != 0,
        question: &msg[HEADER_LEN..end + 4],
        name,
        qtype,
        qclass,
        edns,
    })
}

/// The answer to `query` from `zone`, and its RCODE. At most `max_len` bytes: a larger one
/// comes back truncated (header and question, TC set).
fn answer(zone: &Zone, ttl: u32, query: &Query<'_>, max_len: usize) -> (Vec<u8>, u8) {
    let found = zone.find(&query.name);
    let rcode = match (query.qclass, found) {
        (CLASS_IN, Some(_)) => NOERROR,
        (CLASS_IN, None) => NXDOMAIN,
        _ => REFUSED,
    };
    let addrs: Vec<IpAddr> = match (rcode, query.qtype) {
        (NOERROR, TYPE_A) => found
            .unwrap_or(&[])
            .iter()
            .filter(|ip| ip.is_ipv4())
            .copied()
            .collect(),
        (NOERROR, TYPE_AAAA) => found
            .unwrap_or(&[])
            .iter()
            .filter(|ip| ip.is_ipv6())
            .copied()
            .collect(),
        _ => Vec::new(),
    };
    let soa = addrs.is_empty() && rcode != REFUSED;
    let mut msg = header(query, rcode, false);
    let mut answers = 0u16;
    for ip in &addrs {
        // Owner: a pointer to the question's name, at offset 12.
        msg.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
        match ip {
            IpAddr::V4(ip) => {
                push_record_fixed(&mut msg, TYPE_A, ttl, 4);
                msg.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                push_record_fixed(&mut msg, TYPE_AAAA, ttl, 16);
                msg.extend_from_slice(&ip.octets());
            }
        }
        answers += 1;
        if answers == u16::MAX {
            break;
        }
    }
    if soa {
        msg.push(0); // the root
        let len = SOA_MNAME.len() + SOA_RNAME.len() + 20;
        push_record_fixed(&mut msg, TYPE_SOA, ttl, len);
        msg.extend_from_slice(SOA_MNAME);
        msg.extend_from_slice(SOA_RNAME);
        // SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
        for field in [1u32, 7200, 3600, 1_209_600, ttl] {
            msg.extend_from_slice(&field.to_be_bytes());
        }
    }
    let additional = push_opt(&mut msg, query);
    set_counts(&mut msg, answers, u16::from(soa), additional);
    if msg.len() > max_len {
        return (truncated(query, rcode), rcode);
    }
    (msg, rcode)
}

/// The header and the question, with TC set and no records (but the OPT, if the query had
/// one): what a UDP client gets when the answer does not fit.
fn truncated(query: &Query<'_>, rcode: u8) -> Vec<u8> {
    let mut msg = header(query, rcode, true);
    let additional = push_opt(&mut msg, query);
    set_counts(&mut msg, 0, 0, additional);
    msg
}

/// A header (counts all zero but the question's) and the question.
fn header(query: &Query<'_>, rcode: u8, tc: bool) -> Vec<u8> {
    let mut flags = FLAG_QR | FLAG_RA | u16::from(rcode & 0xf);
    if rcode != REFUSED {
        flags |= FLAG_AA;
    }
    if query.rd {
        flags |= FLAG_RD;
    }
    if tc {
        flags |= FLAG_TC;
    }
    let mut msg = Vec::with_capacity(HEADER_LEN + query.question.len() + 96);
    msg.extend_from_slice(&query.id.to_be_bytes());
    msg.extend_from_slice(&flags.to_be_bytes());
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(query.question);
    msg
}

/// Type, class IN, TTL and RDLENGTH of a record whose owner name is already written.
fn push_record_fixed(msg: &mut Vec<u8>, rtype: u16, ttl: u32, rdlength: usize) {
    msg.extend_from_slice(&rtype.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    msg.extend_from_slice(&ttl.to_be_bytes());
    msg.extend_from_slice(&(rdlength as u16).to_be_bytes());
}

/// Adds our OPT record if the query had one; returns how many records it added.
fn push_opt(msg: &mut Vec<u8>, query: &Query<'_>) -> u16 {
    if query.edns.is_none() {
        return 0;
    }
    // Root owner, type 41, our payload size, extended RCODE 0, version 0, no flags, no data.
    msg.push(0);
    msg.extend_from_slice(&TYPE_OPT.to_be_bytes());
    msg.extend_from_slice(&EDNS_UDP_PAYLOAD.to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    1
}

fn set_counts(msg: &mut [u8], answers: u16, authority: u16, additional: u16) {
    msg[6..8].copy_from_slice(&answers.to_be_bytes());
    msg[8..10].copy_from_slice(&authority.to_be_bytes());
    msg[10..12].copy_from_slice(&additional.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// Serving: the UDP task, the accept loop and one task per TCP connection
// ---------------------------------------------------------------------------------------------

/// The transport a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// What the server's tasks share.
#[derive(Debug)]
struct State {
    zone: Zone,
    ttl: u32,
    delay: Duration,
    truncate_udp: bool,
    stats: Cell<DnsServerStats>,
    /// The TCP connections' tasks, to cancel on shutdown.
    conns: RefCell<HashMap<u64, JoinHandle<()>>>,
    next_conn: Cell<u64>,
}

impl State {
    fn count(&self, f: impl FnOnce(&mut DnsServerStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    /// The answer to the message `msg`, counted in the stats; `None` if it is dropped.
    fn respond(&self, msg: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let Some(query) = parse_query(msg) else {
            self.count(|s| s.malformed += 1);
            return None;
        };
        let max_len = match transport {
            Transport::Udp if self.truncate_udp => 0,
            Transport::Udp => usize::from(query.edns.unwrap_or(PLAIN_UDP as u16)),
            Transport::Tcp => MAX_TCP_MESSAGE,
        };
        let (reply, rcode) = answer(&self.zone, self.ttl, &query, max_len);
        self.count(|s| {
            s.queries += 1;
            match query.qtype {
                TYPE_A => s.a += 1,
                TYPE_AAAA => s.aaaa += 1,
                _ => s.other += 1,
            }
            if transport == Transport::Tcp {
                s.tcp += 1;
            }
            if rcode == NXDOMAIN {
                s.nxdomain += 1;
            }
        });
        Some(reply)
    }
}

/// Answers held back until their time, oldest first.
///
/// Every answer waits the same delay from its own query's arrival, so the order of arrival
/// is the order of departure, and one timer, re-armed for the oldest answer, does the work of
/// a timer per query.
struct Delayed<T> {
    delay: Duration,
    queue: VecDeque<(Instant, T)>,
    timer: Option<Sleep>,
}

impl<T> Delayed<T> {
    fn new(delay: Duration) -> Delayed<T> {
        Delayed {
            delay,
            queue: VecDeque::new(),
            timer: None,
        }
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    /// Holds `item` until the delay has passed from now.
    fn push(&mut self, item: T) {
        self.queue.push_back((Instant::now() + self.delay, item));
    }

    /// The oldest item if its time has come. `Pending` when none has: then, if one waits,
    /// the timer wakes the task at its time.
    fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        let Some(&(due, _)) = self.queue.front() else {
            return Poll::Pending; // nothing held: a push comes from the same task
        };
        let ready = Instant::now() >= due || {
            let timer = self.timer.get_or_insert_with(|| volley::sleep_until(due));
            if timer.deadline() != due {
                timer.reset(due);
            }
            // The timer wakes us at `due`.
            Pin::new(timer).poll(cx).is_ready()
        };
        match ready {
            true => Poll::Ready(self.queue.pop_front().expect("front seen above").1),
            false => Poll::Pending,
        }
    }
}

/// Answers UDP queries until the socket is taken away.
async fn serve_udp(socket: Rc<RefCell<Option<UdpSocket>>>, state: Rc<State>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    // Answers waiting for their delay, then answers the socket has not taken yet.
    let mut held: Delayed<(Vec<u8>, SocketAddr)> = Delayed::new(state.delay);
    let mut ready: VecDeque<(Vec<u8>, SocketAddr)> = VecDeque::new();
    poll_fn(|cx| {
        let mut socket = socket.borrow_mut();
        let Some(socket) = socket.as_mut() else {
            return Poll::Ready(()); // shut down
        };
        let mut budget = UDP_BUDGET;
        loop {
            // Read queries while there is room for their answers.
            let mut read = 0;
            // The socket said WouldBlock: the reactor wakes us on READABLE.
            let mut drained = false;
            while held.len() + ready.len() < MAX_PENDING_UDP && read < budget {
                match socket.poll_recv_from(cx, &mut buf) {
                    Poll::Ready(Ok((n, from))) => {
                        read += 1;
                        if let Some(reply) = state.respond(&buf[..n], Transport::Udp) {
                            if state.delay.is_zero() {
                                ready.push_back((reply, from));
                            } else {
                                held.push((reply, from));
                            }
                        }
                    }
                    // An ICMP error for an earlier answer (its client is gone): reported
                    // once, and the next read goes on as usual.
                    Poll::Ready(Err(_)) => read += 1,
                    Poll::Pending => {
                        drained = true;
                        break;
                    }
                }
            }
            budget -= read;
            while let Poll::Ready(answer) = held.poll_due(cx) {
                ready.push_back(answer);
            }
            while let Some((reply, to)) = ready.front() {
                match socket.poll_send_to(cx, reply, *to) {
                    // A failed send loses that answer only; the client will retry.
                    Poll::Ready(_) => drop(ready.pop_front()),
                    // The reactor wakes us on WRITABLE.
                    Poll::Pending => break,
                }
            }
            if budget == 0 {
                // Busy: let the other tasks run, and come back at once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Drained, or full with the timer or WRITABLE to wake us: wait. Reading stopped
            // only because the queues were full, and sending made room: read again.
            if drained || held.len() + ready.len() >= MAX_PENDING_UDP {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// Accepts TCP connections until the listener is taken away, spawning a task for each.
async fn accept_loop(listener: Rc<RefCell<Option<TcpListener>>>, state: Rc<State>) {
    loop {
        let next = poll_fn(|cx| match listener.borrow_mut().as_mut() {
            Some(listener) => listener.poll_accept(cx).map(Some),
            None => Poll::Ready(None),
        })
        .await;
        match next {
            None => return,
            Some(Ok((stream, _peer))) => {
                if state.conns.borrow().len() >= MAX_CONNECTIONS {
                    continue; // dropped: closed at once
                }
                let _ = stream.set_nodelay(true);
                let id = state.next_conn.get();
                state.next_conn.set(id + 1);
                let guard = ConnGuard {
                    state: state.clone(),
                    id,
                };
                let conn_state = state.clone();
                let task = spawn(async move {
                    let _guard = guard;
                    serve_tcp(stream, &conn_state).await;
                });
                state.conns.borrow_mut().insert(id, task);
            }
            // EMFILE and the like: the listener backs off by itself.
            Some(Err(_)) => {}
        }
    }
}

/// Unregisters a connection when its task ends or is dropped.
struct ConnGuard {
    state: Rc<State>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let removed = match self.state.conns.try_borrow_mut() {
            Ok(mut conns) => conns.remove(&self.id),
            Err(_) => None, // shutdown holds it, and is cancelling every task anyway
        };
        drop(removed); // outside the borrow
    }
}

/// Answers the queries of one TCP connection until the client closes it (and every answer
/// has left), an error, or [`TCP_IDLE`] without a query.
async fn serve_tcp(mut stream: TcpStream, state: &State) {
    let mut conn = TcpConn {
        buf: vec![0; TCP_READ].into_boxed_slice(),
        frames: TcpFrameReader::default(),
        eof: false,
        held: Delayed::new(state.delay),
        out: Vec::new(),
        written: 0,
        idle: sleep(TCP_IDLE),
    };
    poll_fn(|cx| conn.poll(cx, &mut stream, state)).await;
    let _ = stream.shutdown(Shutdown::Write);
}

/// One TCP connection's state between polls.
struct TcpConn {
    buf: Box<[u8]>,
    /// Bytes read and not yet a whole message.
    frames: TcpFrameReader,
    /// The client has closed its side: answer what is held, then close.
    eof: bool,
    /// Answers (framed) waiting for their delay.
    held: Delayed<Vec<u8>>,
    /// Framed answers to write, `written` bytes of them written already.
    out: Vec<u8>,
    written: usize,
    /// Closes the connection when it has been idle this long; pushed back by every read.
    idle: Sleep,
}

impl TcpConn {
    /// Reads queries, releases answers whose time has come, writes them; `Ready` when the
    /// connection is done.
    fn poll(&mut self, cx: &mut Context<'_>, stream: &mut TcpStream, state: &State) -> Poll<()> {
        for _ in 0..TCP_BUDGET {
            let mut progress = false;
            let room = self.held.len() < MAX_PENDING_TCP && self.out.len() < MAX_UNWRITTEN_TCP;
            if !self.eof && room {
                match stream.poll_read(cx, &mut self.buf) {
                    Poll::Ready(Ok(0)) => {
                        self.eof = true;
                        progress = true;
                    }
                    Poll::Ready(Ok(n)) => {
                        self.frames.extend(&self.buf[..n]);
                        while let Some(msg) = self.frames.next_message() {
                            let reply = state.respond(&msg, Transport::Tcp);
                            // Answers are at most 65535 bytes, so framing cannot fail.
                            if let Some(framed) = reply.and_then(|r| tcp_frame(&r)) {
                                self.held.push(framed);
                            }
                        }
                        self.idle.reset(Instant::now() + TCP_IDLE);
                        progress = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    // The reactor wakes us on READABLE.
                    Poll::Pending => {}
                }
            }
            while let Poll::Ready(framed) = self.held.poll_due(cx) {
                self.out.extend_from_slice(&framed);
            }
            while self.written < self.out.len() {
                match stream.poll_write(cx, &self.out[self.written..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(n)) => {
                        self.written += n;
                        progress = true;
                    }
                    // The reactor wakes us on WRITABLE.
                    Poll::Pending => break,
                }
            }
            if self.written == self.out.len() {
                self.out.clear();
                self.written = 0;
            }
            let quiet = self.held.len() == 0 && self.out.is_empty();
            if self.eof && quiet {
                return Poll::Ready(());
            }
            if !progress {
                // Every source has a waker: READABLE, or when full, the delay's timer or
                // WRITABLE; the idle timer too, while nothing is owed.
                if quiet && Pin::new(&mut self.idle).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
        }
        // Busy: let the other tasks run, and come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The question types the tests ask.
    #[derive(Clone, Copy, Debug)]
    enum QType {
        A = 1,
        Aaaa = 28,
    }

    impl fmt::Display for QType {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Debug::fmt(self, f)
        }
    }

    /// A query as a stub resolver sends it: RD set, one question of class IN, and with
    /// `edns` an OPT record offering 1,232 bytes. Written here, apart from the server's code
    /// and the client's, so that the tests check the server against a third reading.
    fn query(id: u16, name: &str, qtype: QType, edns: bool) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
        q.extend_from_slice(&encode_name(name).unwrap());
        q.extend_from_slice(&(qtype as u16).to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        if edns {
            q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        }
        q
    }

    /// What a resolver makes of an answer, short of CNAME chains (the server has none).
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum DnsError {
        NxDomain { negative_ttl: Option<u32> },
        Truncated,
        Other(&'static str),
    }

    /// The addresses and the negative-caching TTL (the SOA's MINIMUM, capped by its TTL).
    #[derive(Debug)]
    struct Parsed {
        addrs: Vec<IpAddr>,
        negative_ttl: Option<u32>,
    }

    /// Reads `reply` to `question` (a whole query message) as a stub resolver would.
    fn parse_response(reply: &[u8], question: &[u8]) -> Result<Parsed, DnsError> {
        let at = |i: usize| -> Result<u16, DnsError> {
            let b = reply.get(i..i + 2).ok_or(DnsError::Other("short"))?;
            Ok(u16::from_be_bytes([b[0], b[1]]))
        };
        let at32 = |i: usize| -> Result<u32, DnsError> {
            Ok(u32::from(at(i)?) << 16 | u32::from(at(i + 2)?))
        };
        if reply.get(..2) != question.get(..2) || at(2)? & FLAG_QR == 0 {
            return Err(DnsError::Other("not a reply to this query"));
        }
        if at(2)? & FLAG_TC != 0 {
            return Err(DnsError::Truncated);
        }
        let (_, qend) = read_name(question, HEADER_LEN).ok_or(DnsError::Other("question"))?;
        let echoed = reply
            .get(HEADER_LEN..qend + 4)
            .ok_or(DnsError::Other("short"))?;
        if !echoed.eq_ignore_ascii_case(&question[HEADER_LEN..qend + 4]) || at(4)? != 1 {
            return Err(DnsError::Other("question not echoed"));
        }
        let mut pos = qend + 4;
        let mut parsed = Parsed {
            addrs: Vec::new(),
            negative_ttl: None,
        };
        for section in 0..2 {
            for _ in 0..at(6 + 2 * section)? {
                // The owner: a pointer, or labels.
                while *reply.get(pos).ok_or(DnsError::Other("short"))? != 0 {
                    if reply[pos] & 0xc0 == 0xc0 {
                        pos += 1;
                        break;
                    }
                    pos += 1 + usize::from(reply[pos]);
                }
                pos += 1;
                let (rtype, ttl, len) = (at(pos)?, at32(pos + 4)?, usize::from(at(pos + 8)?));
                let data = reply
                    .get(pos + 10..pos + 10 + len)
                    .ok_or(DnsError::Other("short"))?;
                match (rtype, data.len()) {
                    (TYPE_A, 4) => parsed
                        .addrs
                        .push(IpAddr::from(<[u8; 4]>::try_from(data).unwrap())),
                    (TYPE_AAAA, 16) => parsed
                        .addrs
                        .push(IpAddr::from(<[u8; 16]>::try_from(data).unwrap())),
                    (TYPE_SOA, n) if n >= 20 => {
                        let minimum = u32::from_be_bytes(data[n - 4..].try_into().unwrap());
                        parsed.negative_ttl = Some(minimum.min(ttl));
                    }
                    _ => return Err(DnsError::Other("unexpected record")),
                }
                pos += 10 + len;
            }
        }
        match at(2)? & 0xf {
            0 => Ok(parsed),
            3 => Err(DnsError::NxDomain {
                negative_ttl: parsed.negative_ttl,
            }),
            _ => Err(DnsError::Other("error rcode")),
        }
    }

    fn zone() -> Zone {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        Zone::new(
            &[
                ("Host.Test.".into(), ip("192.0.2.1")),
                ("host.test".into(), ip("2001:db8::1")),
                ("host.test".into(), ip("192.0.2.1")),
                ("v4.test".into(), ip("192.0.2.4")),
                ("h1.web.test".into(), ip("192.0.2.9")),
            ],
            &[
                ("web.test".into(), ip("127.0.0.1")),
                ("*.deep.web.test".into(), ip("127.0.0.2")),
            ],
        )
        .unwrap()
    }

    /// Asks `name` for `qtype` as the resolver would, and parses the answer as it would.
    fn ask(name: &str, qtype: QType, max_len: usize) -> (Vec<u8>, u8) {
        let query = query(0x4242, name, qtype, true);
        let parsed = parse_query(&query).unwrap();
        answer(&zone(), 60, &parsed, max_len)
    }

    fn lookup(name: &str, qtype: QType) -> Result<Vec<IpAddr>, DnsError> {
        let query = query(0x4242, name, qtype, true);
        let parsed = parse_query(&query).unwrap();
        let (reply, _) = answer(&zone(), 60, &parsed, 1232);
        parse_response(&reply, &query).map(|a| a.addrs)
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// Table: a question and what the resolver's parser makes of the answer.
    #[test]
    fn answers_from_the_zone() {
        let nx = Err(DnsError::NxDomain {
            negative_ttl: Some(60),
        });
        type Case = (&'static str, QType, Result<Vec<IpAddr>, DnsError>);
        let cases: Vec<Case> = vec![
            ("host.test", QType::A, Ok(ips(&["192.0.2.1"]))),
            ("HOST.test.", QType::Aaaa, Ok(ips(&["2001:db8::1"]))),
            ("v4.test", QType::Aaaa, Ok(vec![])),
            ("h2.web.test", QType::A, Ok(ips(&["127.0.0.1"]))),
            ("a.b.web.test", QType::A, Ok(ips(&["127.0.0.1"]))),
            ("h2.web.test", QType::Aaaa, Ok(vec![])),
            ("h1.web.test", QType::A, Ok(ips(&["192.0.2.9"]))),
            ("x.deep.web.test", QType::A, Ok(ips(&["127.0.0.2"]))),
            ("deep.web.test", QType::A, Ok(ips(&["127.0.0.1"]))),
            ("web.test", QType::A, nx.clone()),
            ("nowhere.test", QType::Aaaa, nx.clone()),
            ("test", QType::A, nx),
        ];
        for (name, qtype, want) in cases {
            assert_eq!(lookup(name, qtype), want, "{name} {qtype}");
        }
    }

    #[test]
    fn nodata_carries_the_soa_minimum() {
        let query = query(7, "v4.test", QType::Aaaa, true);
        let (reply, rcode) = answer(&zone(), 42, &parse_query(&query).unwrap(), 1232);
        assert_eq!(rcode, NOERROR);
        let parsed = parse_response(&reply, &query).unwrap();
        assert_eq!(parsed.negative_ttl, Some(42));
    }

    #[test]
    fn header_flags_id_question_and_opt() {
        let mut bytes = query(0xbeef, "host.test", QType::A, false);
        bytes[2] &= !0x01; // RD off
                           // Letters in mixed case, as a resolver using 0x20 randomization sends them.
        bytes[13..22].copy_from_slice(b"HoSt\x04TeSt");
        let (reply, _) = answer(&zone(), 60, &parse_query(&bytes).unwrap(), 512);
        assert_eq!(&reply[..2], &[0xbe, 0xef]);
        assert_eq!(
            u16::from_be_bytes([reply[2], reply[3]]),
            0x8480,
            "QR AA RA, no RD"
        );
        assert_eq!(&reply[12..12 + 15], b"\x04HoSt\x04TeSt\x00\x00\x01\x00\x01");
        assert_eq!(&reply[10..12], &[0, 0], "no OPT without one in the query");
        let (reply, _) = ask("host.test", QType::A, 1232);
        assert_eq!(
            u16::from_be_bytes([reply[2], reply[3]]),
            0x8580,
            "RD copied"
        );
        assert_eq!(&reply[10..12], &[0, 1], "OPT echoed");
        assert_eq!(
            &reply[reply.len() - 11..reply.len() - 6],
            b"\x00\x00\x29\x04\xd0"
        );
    }

    #[test]
    fn too_large_for_udp_is_truncated() {
        let query = query(1, "host.test", QType::A, true);
        let (reply, _) = answer(&zone(), 60, &parse_query(&query).unwrap(), 20);
        assert_eq!(reply[2] & 0x02, 0x02, "TC");
        assert_eq!(&reply[6..10], &[0, 0, 0, 0], "no records");
        assert_eq!(
            parse_response(&reply, &query).map(|p| p.addrs),
            Err(DnsError::Truncated)
        );
    }

    #[test]
    fn other_types_and_classes() {
        let mut query = query(1, "host.test", QType::A, false);
        let n = query.len();
        query[n - 3] = 16; // TXT
        let (reply, rcode) = answer(&zone(), 60, &parse_query(&query).unwrap(), 512);
        assert_eq!(
            (rcode, &reply[6..10]),
            (NOERROR, &[0, 0, 0, 1][..]),
            "NODATA + SOA"
        );
        query[n - 1] = 3; // class CH
        let (reply, rcode) = answer(&zone(), 60, &parse_query(&query).unwrap(), 512);
        assert_eq!((rcode, &reply[6..10]), (REFUSED, &[0, 0, 0, 0][..]));
    }

    /// Hostile or wrong messages are dropped, never a panic.
    #[test]
    fn malformed_queries_are_refused() {
        let good = query(1, "host.test", QType::A, true);
        let mut response = good.clone();
        response[2] |= 0x80;
        let mut notify = good.clone();
        notify[2] |= 4 << 3;
        let mut two = good.clone();
        two[5] = 2;
        let mut answers = good.clone();
        answers[7] = 1;
        let mut pointer = good.clone();
        pointer[12] = 0xc0;
        pointer[13] = 12;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("short header", good[..11].to_vec()),
            ("header only", good[..12].to_vec()),
            ("cut in the name", good[..16].to_vec()),
            ("cut in the type", good[..24].to_vec()),
            ("a response", response),
            ("opcode NOTIFY", notify),
            ("two questions", two),
            ("answers in a query", answers),
            ("pointer loop", pointer),
            ("bad label type", {
                let mut m = good.clone();
                m[12] = 0x40;
                m
            }),
        ];
        for (what, msg) in cases {
            assert!(parse_query(&msg).is_none(), "{what}");
        }
        // Every prefix and every single-byte change of a good query: no panic.
        for len in 0..good.len() {
            let _ = parse_query(&good[..len]);
        }
        for i in 0..good.len() {
            for b in [0u8, 0x3f, 0x40, 0xc0, 0xff] {
                let mut m = good.clone();
                m[i] = b;
                if let Some(q) = parse_query(&m) {
                    let _ = answer(&zone(), 1, &q, 512);
                }
            }
        }
    }

    #[test]
    fn invalid_names_fail_bind() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(Zone::new(&[("a..b".into(), ip)], &[]).is_err());
        assert!(Zone::new(&[], &[("".into(), ip)]).is_err());
        assert!(Zone::new(&[], &[(".".into(), ip)]).is_ok());
    }
}
