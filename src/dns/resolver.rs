//! [`NativeResolver`]: a DNS stub resolver on the reactor, with no helper thread (issue 7).
//!
//! A lookup goes:
//!
//! 1. An IP literal is its own answer; a name in the hosts file gets the file's addresses,
//!    without any query.
//! 2. Otherwise, each name from the search list in glibc's order ([`candidates`]) is asked
//!    for, until one has addresses. NXDOMAIN and NODATA move to the next candidate; when
//!    every candidate fails that way, the lookup fails with [`io::ErrorKind::NotFound`] and
//!    a message naming the name and the candidates tried.
//! 3. One candidate: one UDP socket bound to port 0 (the kernel picks a random source port
//!    on Linux) and connected to the server, so the kernel drops datagrams from any other
//!    address; the `A` and the `AAAA` query leave on it at once, each with its own random ID.
//!    A datagram counts only when [`parse_response`] accepts it for one of the two questions
//!    (ID, QR, opcode, echoed question): anything else (a late reply, a spoofed ID, a
//!    malformed message) is dropped and the wait goes on, for at most [`MAX_DATAGRAMS`]
//!    datagrams per try.
//! 4. The try waits for both answers until the per-try deadline (`timeout` in the conf). If
//!    only one has come by then and it has addresses, those are used and the missing family
//!    counts as empty: the grace period for the second answer is what is left of the first
//!    answer's try, never longer. An answer with the TC bit is asked again over TCP
//!    ([`tcp_frame`]), with a fresh timeout.
//! 5. A try that gets nothing, or only SERVFAIL, REFUSED or another error code (and no
//!    addresses), moves to the next name server; the servers are tried in order (rotated with
//!    `options rotate`), `attempts` rounds in all. When every try failed, the lookup fails
//!    with [`io::ErrorKind::TimedOut`] (no answer at all) or [`io::ErrorKind::Other`] (error
//!    codes), naming the name, and later candidates are not tried.
//! 6. An answer whose CNAME chain ends without addresses (a server that did not follow it)
//!    has its last target asked for in turn, at most [`MAX_CNAME_HOPS`] times. The target of
//!    the `A` answer is used when both answers have one.
//!
//! The addresses come back IPv6 first (the `AAAA` answer, then the `A` answer, each in
//! message order), as the client's Happy Eyeballs wants them.
//!
//! # Query IDs
//!
//! IDs come from SipHash (std's [`RandomState`], keyed from the OS's random source once per
//! thread and then per resolver) over a counter and the current time. That is not a
//! cryptographic generator, but the key is secret and each output is a hash of a fresh
//! input, so an off-path attacker cannot predict the next ID from the ones seen. With the
//! random source port, a spoofed reply has to guess about 31 bits (RFC 5452 §9.2).
//!
//! # Not done yet
//!
//! No cache of its own (the client keeps answers for [`DNS_TTL`](crate::DNS_TTL), whatever
//! the records' TTL), no negative cache, no coalescing of concurrent lookups of one name,
//! no `LOCALDOMAIN`, and it is not the client's default resolver yet: `SystemResolver`
//! stays the default until caching and coalescing are in.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use super::conf::{candidates, ResolvConf};
use super::hosts::Hosts;
use super::packet::{
    parse_response, tcp_frame, Answer, DnsError, QType, Query, TcpFrameReader, EDNS_UDP_PAYLOAD,
    MAX_CNAME_HOPS,
};
use crate::http::dns::{Resolve, Resolving};
use crate::net::{TcpStream, UdpSocket};
use crate::timer::timeout_at;

/// The most datagrams read in one try before giving up on it, so a flood of junk cannot
/// keep a lookup busy.
pub const MAX_DATAGRAMS: usize = 64;

/// The receive buffer: a little more than our EDNS0 payload, for servers that send more.
const RECV_BUF: usize = 2048;

/// The largest DNS-over-TCP frame plus its length prefix.
const MAX_TCP_BUFFER: usize = 2 + 65535;

/// A DNS stub resolver native to the reactor: UDP and TCP on the runtime's own loop, no
/// helper thread.
///
/// A lookup answers IP literals and names in the hosts file without a query. Otherwise it
/// tries the names of the search list in glibc's order (`ndots`), each with an `A` and an
/// `AAAA` query sent at once over one UDP socket connected to the server (a random source
/// port from the kernel, random IDs from a keyed SipHash of a counter and the time; replies
/// with another ID or question are ignored). It waits for both answers until the per-try
/// timeout; one answer with addresses is enough when the other does not come by then.
/// NXDOMAIN and NODATA move to the next name; a timeout, SERVFAIL or REFUSED to the next
/// server, for `attempts` rounds; a truncated answer is asked again over TCP; a CNAME chain
/// ending without addresses is followed with new queries (at most
/// 8). Addresses come back IPv6 first. At most [`DNS_MAX_DATAGRAMS`](crate::DNS_MAX_DATAGRAMS)
/// datagrams are read per try.
///
/// Plug it into the client with
/// [`ClientBuilder::dns_resolver`](crate::ClientBuilder::dns_resolver):
///
/// ```no_run
/// let client = volley::Client::builder()
///     .dns_resolver(volley::NativeResolver::from_system())
///     .build();
/// # drop(client);
/// ```
///
/// It is meant to become the client's default resolver once it caches answers and
/// coalesces concurrent lookups; until then the default stays
/// [`SystemResolver`](crate::SystemResolver) (`getaddrinfo`).
///
/// Cloning is cheap and shares the configuration.
#[derive(Clone)]
pub struct NativeResolver {
    conf: Rc<ResolvConf>,
    hosts: Rc<Hosts>,
    ids: Rc<IdSource>,
}

impl fmt::Debug for NativeResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeResolver")
            .field("nameservers", &self.conf.nameservers)
            .field("search", &self.conf.search)
            .field("ndots", &self.conf.ndots)
            .field("timeout", &self.conf.timeout)
            .field("attempts", &self.conf.attempts)
            .field("hosts", &self.hosts.len())
            .finish()
    }
}

impl NativeResolver {
    /// Reads `/etc/resolv.conf` and `/etc/hosts` once, now, and applies the `RES_OPTIONS`
    /// environment variable. A file that cannot be read counts as empty (for resolv.conf:
    /// the name server `127.0.0.1:53`, as glibc does).
    pub fn from_system() -> NativeResolver {
        let read = |path| std::fs::read_to_string(path).unwrap_or_default();
        let mut conf = ResolvConf::parse(&read("/etc/resolv.conf"));
        if let Ok(options) = std::env::var("RES_OPTIONS") {
            conf.apply_options(&options);
        }
        NativeResolver::with_config(conf, Hosts::parse(&read("/etc/hosts")))
    }

    /// A resolver configured from the text of a resolv.conf and of a hosts file, without
    /// reading any file or the environment.
    pub fn from_text(resolv_conf: &str, hosts: &str) -> NativeResolver {
        NativeResolver::with_config(ResolvConf::parse(resolv_conf), Hosts::parse(hosts))
    }

    /// A resolver with this configuration.
    pub(crate) fn with_config(conf: ResolvConf, hosts: Hosts) -> NativeResolver {
        NativeResolver {
            conf: Rc::new(conf),
            hosts: Rc::new(hosts),
            ids: Rc::new(IdSource::new()),
        }
    }

    /// Replaces the name servers, with their ports (resolv.conf only knows port 53). At
    /// most three are kept, as glibc does; an empty list leaves them as they were.
    pub fn nameservers(mut self, servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        let servers: Vec<SocketAddr> = servers
            .into_iter()
            .take(super::conf::MAX_NAMESERVERS)
            .collect();
        if !servers.is_empty() {
            Rc::make_mut(&mut self.conf).nameservers = servers;
        }
        self
    }

    /// Sets how long one try waits for a server's answer (resolv.conf's `timeout`, which
    /// only has whole seconds). Raised to at least 1 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        Rc::make_mut(&mut self.conf).timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how many rounds over the servers a query makes (resolv.conf's `attempts`),
    /// from 1 to 5.
    pub fn attempts(mut self, attempts: u8) -> Self {
        Rc::make_mut(&mut self.conf).attempts = attempts.clamp(1, super::conf::MAX_ATTEMPTS);
        self
    }

    /// Resolves `name` to its addresses, IPv6 first. See the module docs. Errors are
    /// `NotFound` (no such name, or no addresses), `TimedOut` (no server answered),
    /// `InvalidInput` (a name that cannot be queried), or `Other` (servers answered with
    /// errors); their message names `name`.
    pub fn lookup(&self, name: &str) -> impl Future<Output = io::Result<Vec<IpAddr>>> + 'static {
        let this = self.clone();
        let name = name.to_owned();
        async move { this.lookup_owned(name).await }
    }

    async fn lookup_owned(self, name: String) -> io::Result<Vec<IpAddr>> {
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(&name);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(addrs) = self.hosts.get(&name) {
            return Ok(addrs.to_vec());
        }
        let tried = candidates(&name, &self.conf);
        if tried.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot look up an empty name",
            ));
        }
        let mut nodata = false;
        for candidate in &tried {
            match self.resolve_candidate(&name, candidate).await? {
                Found::Addrs(addrs) => return Ok(addrs),
                Found::NoData => nodata = true,
                Found::NxDomain => {}
            }
        }
        let why = if nodata {
            "no A or AAAA records (NODATA)"
        } else {
            "no such host (NXDOMAIN)"
        };
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{name}: {why}; tried {}", tried.join(", ")),
        ))
    }

    /// Asks for one candidate name, following CNAME chains that end without addresses.
    async fn resolve_candidate(&self, name: &str, candidate: &str) -> io::Result<Found> {
        let mut qname = candidate.to_owned();
        for _ in 0..=MAX_CNAME_HOPS {
            match self.query(name, &qname).await? {
                Outcome::Addrs(addrs) => return Ok(Found::Addrs(addrs)),
                Outcome::Cname(target) => qname = target,
                Outcome::NoData => return Ok(Found::NoData),
                Outcome::NxDomain => return Ok(Found::NxDomain),
            }
        }
        Err(io::Error::other(format!(
            "{name}: CNAME chain from {candidate} longer than {MAX_CNAME_HOPS} queries"
        )))
    }

    /// Asks the servers for `qname`'s A and AAAA records: `attempts` rounds over the servers,
    /// moving on after a timeout or an error code.
    async fn query(&self, name: &str, qname: &str) -> io::Result<Outcome> {
        let conf = &*self.conf;
        let servers = conf.nameservers.len();
        let first = if conf.rotate {
            self.ids.next_server(servers)
        } else {
            0
        };
        let mut failures: Vec<String> = Vec::new();
        let mut answered = false;
        for _ in 0..conf.attempts {
            for i in 0..servers {
                let server = conf.nameservers[(first + i) % servers];
                match self.ask(server, qname).await {
                    Ok(Try::Done(outcome)) => return Ok(outcome),
                    Ok(Try::NoAnswer) => failures.push(format!("{server}: no answer")),
                    Ok(Try::Failed(why)) => {
                        answered = true;
                        failures.push(format!("{server}: {why}"));
                    }
                    Err(e) => failures.push(format!("{server}: {e}")),
                }
            }
        }
        let kind = if answered {
            io::ErrorKind::Other
        } else {
            io::ErrorKind::TimedOut
        };
        failures.dedup();
        Err(io::Error::new(
            kind,
            format!(
                "{name}: no usable answer for {qname} ({})",
                failures.join("; ")
            ),
        ))
    }

    /// One try with one server: both queries over one UDP socket, TCP for truncated ones.
    async fn ask(&self, server: SocketAddr, qname: &str) -> io::Result<Try> {
        let conf = &*self.conf;
        let edns = conf.edns0.then_some(EDNS_UDP_PAYLOAD);
        let (id_a, id_aaaa) = self.ids.pair();
        let bad_name = |e: DnsError| io::Error::new(io::ErrorKind::InvalidInput, e);
        let queries = [
            Query::encode(id_aaaa, qname, QType::Aaaa, edns).map_err(bad_name)?,
            Query::encode(id_a, qname, QType::A, edns).map_err(bad_name)?,
        ];
        let mut got = udp_exchange(server, &queries, conf.timeout).await?;
        for (slot, query) in got.iter_mut().zip(&queries) {
            if matches!(slot, Some(Err(DnsError::Truncated))) {
                let deadline = Instant::now() + conf.timeout;
                *slot = match timeout_at(deadline, tcp_exchange(server, query)).await {
                    Ok(Ok(answer)) => Some(answer),
                    // A failed TCP retry leaves that family unanswered.
                    Ok(Err(_)) | Err(_) => None,
                };
            }
        }
        Ok(classify(got))
    }
}

/// What a candidate name gave.
enum Found {
    Addrs(Vec<IpAddr>),
    NoData,
    NxDomain,
}

/// What a name server said about one name, once usable.
#[derive(Debug)]
enum Outcome {
    /// Addresses, IPv6 first.
    Addrs(Vec<IpAddr>),
    /// A CNAME chain ending without addresses: ask for this name.
    Cname(String),
    NoData,
    NxDomain,
}

/// The result of one try with one server.
#[derive(Debug)]
enum Try {
    Done(Outcome),
    /// Neither answer came (or none that helps): next server.
    NoAnswer,
    /// An error code (SERVFAIL, REFUSED, ...) or an unusable answer: next server.
    Failed(String),
}

/// Turns the AAAA and A answers of one try into its result.
fn classify(got: [Option<Result<Answer, DnsError>>; 2]) -> Try {
    let mut addrs = Vec::new();
    let mut cname = None;
    let mut nxdomain = false;
    let mut nodata = 0;
    let mut failure = None;
    // The A answer's target wins: it comes second.
    for answer in got.into_iter().flatten() {
        match answer {
            Ok(answer) => {
                addrs.extend(answer.addrs);
                if answer.cname_target.is_some() && answer.negative_ttl.is_none() {
                    cname = answer.cname_target;
                } else {
                    nodata += 1;
                }
            }
            Err(DnsError::NxDomain { .. }) => nxdomain = true,
            Err(e) => failure = Some(e.to_string()),
        }
    }
    if !addrs.is_empty() {
        return Try::Done(Outcome::Addrs(addrs));
    }
    if nxdomain {
        return Try::Done(Outcome::NxDomain);
    }
    if let Some(why) = failure {
        return Try::Failed(why);
    }
    if let Some(target) = cname {
        return Try::Done(Outcome::Cname(target));
    }
    // Both families answered, neither with addresses. One NODATA alone is not enough: the
    // other may have had addresses.
    if nodata == 2 {
        Try::Done(Outcome::NoData)
    } else {
        Try::NoAnswer
    }
}

/// Sends both queries to `server` over one connected UDP socket and waits for their answers
/// until `timeout` has passed. Slot `i` holds the answer to `queries[i]`, if one came.
async fn udp_exchange(
    server: SocketAddr,
    queries: &[Query; 2],
    timeout: Duration,
) -> io::Result<[Option<Result<Answer, DnsError>>; 2]> {
    let local = match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let mut socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    for query in queries {
        socket.send(&query.bytes).await?;
    }
    let deadline = Instant::now() + timeout;
    let mut got: [Option<Result<Answer, DnsError>>; 2] = [None, None];
    let mut buf = vec![0u8; RECV_BUF];
    for _ in 0..MAX_DATAGRAMS {
        if got.iter().all(Option::is_some) {
            break;
        }
        let n = match timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            // ICMP port unreachable, say: this server will not answer.
            Ok(Err(e)) if got.iter().all(Option::is_none) => return Err(e),
            Ok(Err(_)) | Err(_) => break,
        };
        for (slot, query) in got.iter_mut().zip(queries) {
            if slot.is_some() {
                continue;
            }
            let answer = parse_response(&buf[..n], &query.question);
            // Anything else is not an answer to this question (another ID, another
            // question) or is malformed: ignored, as RFC 5452 §9.1 asks.
            let counts = matches!(
                answer,
                Ok(_)
                    | Err(DnsError::Truncated)
                    | Err(DnsError::NxDomain { .. })
                    | Err(DnsError::Server(_))
                    | Err(DnsError::CnameLoop { .. })
                    | Err(DnsError::CnameChainTooLong)
                    | Err(DnsError::BadCnameTarget { .. })
            );
            if counts {
                *slot = Some(answer);
                break;
            }
        }
    }
    Ok(got)
}

/// Asks `query` over TCP (RFC 7766) and parses the first message that comes back.
async fn tcp_exchange(server: SocketAddr, query: &Query) -> io::Result<Result<Answer, DnsError>> {
    let invalid = |e: DnsError| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut stream = TcpStream::connect(server).await?;
    stream
        .write_all(&tcp_frame(&query.bytes).map_err(invalid)?)
        .await?;
    let mut reader = TcpFrameReader::default();
    let mut buf = vec![0u8; RECV_BUF];
    // Each turn reads at least one byte, and a frame is at most MAX_TCP_BUFFER bytes.
    while reader.buffered() <= MAX_TCP_BUFFER {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        reader.extend(&buf[..n]);
        if let Some(msg) = reader.next_message() {
            return Ok(parse_response(&msg, &query.question));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "DNS over TCP: frame too long",
    ))
}

impl Resolve for NativeResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let lookup = self.lookup(host);
        Box::pin(async move {
            let ips = lookup.await?;
            Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect())
        })
    }
}

/// Query IDs (and the rotation counter): see "Query IDs" in the module docs.
#[derive(Debug)]
struct IdSource {
    key: RandomState,
    counter: Cell<u64>,
}

impl IdSource {
    fn new() -> IdSource {
        IdSource {
            key: RandomState::new(),
            counter: Cell::new(0),
        }
    }

    fn next(&self) -> u64 {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut hasher = self.key.build_hasher();
        hasher.write_u64(n);
        hasher.write_u128(now);
        hasher.finish()
    }

    /// Two different IDs.
    fn pair(&self) -> (u16, u16) {
        let bits = self.next();
        let first = bits as u16;
        let mut second = (bits >> 16) as u16;
        if second == first {
            second = first.wrapping_add(1 + (bits >> 32) as u16 % 0xfffe);
        }
        (first, second)
    }

    /// The server to start at, with `options rotate`.
    fn next_server(&self, servers: usize) -> usize {
        (self.next() % servers.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ() {
        let ids = IdSource::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let (a, b) = ids.pair();
            assert_ne!(a, b);
            seen.insert(a);
        }
        // 1000 draws from 65536 values: a handful of collisions at most.
        assert!(seen.len() > 950, "{}", seen.len());
    }

    #[test]
    fn classify_table() {
        let ok = |addrs: &[&str], cname: Option<&str>, negative_ttl: Option<u32>| {
            Some(Ok(Answer {
                addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
                ttl: None,
                cname_target: cname.map(str::to_owned),
                negative_ttl,
            }))
        };
        let show = |t: Try| format!("{t:?}");
        let nx = || Some(Err(DnsError::NxDomain { negative_ttl: None }));
        let servfail = || Some(Err(DnsError::Server(super::super::packet::Rcode(2))));
        let cases = [
            (
                [ok(&["::1"], None, None), ok(&["192.0.2.1"], None, None)],
                "Done(Addrs([::1, 192.0.2.1]))",
            ),
            (
                [None, ok(&["192.0.2.1"], None, None)],
                "Done(Addrs([192.0.2.1]))",
            ),
            ([None, ok(&[], None, None)], "NoAnswer"),
            ([None, None], "NoAnswer"),
            (
                [ok(&[], None, Some(5)), ok(&[], None, None)],
                "Done(NoData)",
            ),
            ([nx(), nx()], "Done(NxDomain)"),
            (
                [servfail(), ok(&["192.0.2.1"], None, None)],
                "Done(Addrs([192.0.2.1]))",
            ),
            (
                [servfail(), None],
                r#"Failed("DNS server answered SERVFAIL")"#,
            ),
            (
                [
                    ok(&[], Some("b.example"), None),
                    ok(&[], Some("c.example"), None),
                ],
                r#"Done(Cname("c.example"))"#,
            ),
            (
                [
                    ok(&[], Some("b.example"), Some(60)),
                    ok(&[], None, Some(60)),
                ],
                "Done(NoData)",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(show(classify(got)), want);
        }
    }
}
