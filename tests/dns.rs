//! `NativeResolver` against a test DNS responder on loopback: a thread with a blocking
//! `std::net::UdpSocket` (and, for truncated answers, a `TcpListener` on the same port) that
//! parses queries, records them, and answers from a small zone. No test touches a real name
//! server: every resolver here is built with `from_text` and pointed at the responder.

mod util;

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use volley::{Client, NativeResolver, Runtime};

use util::{block_on_bounded, block_on_watched, watchdog};

const A: u16 = 1;
const CNAME: u16 = 5;
const AAAA: u16 = 28;
const SOA: u16 = 6;

/// What the responder does with a query.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Answer from the zone.
    Answer,
    /// Record the query, send nothing.
    Silent,
    /// Send an empty answer with TC set; the TCP listener answers from the zone.
    Truncate,
    /// First a reply with the wrong ID and another address, then the right one.
    SpoofFirst,
    /// Answer from the zone, each query 200 ms after it came (one at a time).
    Slow,
    /// First a reply with the right ID and question but another address, sent from another
    /// port; then, 50 ms later, the right one from the server's port.
    SpoofPort,
    /// A reply with the right ID and question whose answer's owner name is a compression
    /// pointer to itself.
    CompressionLoop,
}

/// A record in the zone.
#[derive(Clone, Debug)]
enum Rec {
    Addr(IpAddr),
    Cname(&'static str),
}

#[derive(Clone, Debug, Default)]
struct Zone {
    names: HashMap<String, Vec<Rec>>,
    /// Put the records of CNAME targets in the answer too, as a recursive server does.
    chase: bool,
    /// The TTL of every record (60 by default).
    ttl: u32,
    /// With NXDOMAIN, an SOA in the authority section with this MINIMUM (and TTL).
    soa_minimum: Option<u32>,
}

impl Zone {
    fn new(chase: bool, records: &[(&str, Rec)]) -> Zone {
        let mut names: HashMap<String, Vec<Rec>> = HashMap::new();
        for (name, rec) in records {
            names.entry(name.to_string()).or_default().push(rec.clone());
        }
        Zone {
            names,
            chase,
            ttl: 60,
            soa_minimum: None,
        }
    }

    /// The response to `query`.
    fn respond(&self, query: &[u8], tc: bool) -> Option<Vec<u8>> {
        let (id, name, qtype, qend) = parse_query(query)?;
        let mut answers = Vec::new();
        let mut rcode = 0;
        if tc {
        } else if let Some(records) = self.names.get(&name) {
            let mut owner = name.clone();
            let mut records = records.clone();
            for _ in 0..10 {
                let mut next = None;
                for rec in &records {
                    match rec {
                        Rec::Addr(ip @ IpAddr::V4(v4)) if qtype == A => {
                            let _ = ip;
                            answers.push(rr(&owner, A, self.ttl, &v4.octets()));
                        }
                        Rec::Addr(IpAddr::V6(v6)) if qtype == AAAA => {
                            answers.push(rr(&owner, AAAA, self.ttl, &v6.octets()));
                        }
                        Rec::Cname(target) => {
                            answers.push(rr(&owner, CNAME, self.ttl, &encode_name(target)));
                            next = Some(target.to_string());
                        }
                        Rec::Addr(_) => {}
                    }
                }
                match next {
                    Some(target) if self.chase => {
                        records = self.names.get(&target).cloned().unwrap_or_default();
                        owner = target;
                    }
                    _ => break,
                }
            }
        } else {
            rcode = 3;
        }
        let mut authority = Vec::new();
        if let (3, Some(minimum)) = (rcode, self.soa_minimum) {
            let mut soa = encode_name("ns.test");
            soa.extend_from_slice(&encode_name("admin.test"));
            for field in [1u32, 3600, 600, 86400, minimum] {
                soa.extend_from_slice(&field.to_be_bytes());
            }
            authority.push(rr("test", SOA, minimum, &soa));
        }
        let mut msg = Vec::new();
        msg.extend_from_slice(&id.to_be_bytes());
        let flags: u16 = 0x8180 | if tc { 0x0200 } else { 0 } | rcode;
        msg.extend_from_slice(&flags.to_be_bytes());
        for count in [1u16, answers.len() as u16, authority.len() as u16, 0] {
            msg.extend_from_slice(&count.to_be_bytes());
        }
        msg.extend_from_slice(&query[12..qend]);
        for record in answers.into_iter().chain(authority) {
            msg.extend_from_slice(&record);
        }
        Some(msg)
    }
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// A resource record of class IN.
fn rr(owner: &str, rtype: u16, ttl: u32, data: &[u8]) -> Vec<u8> {
    let mut out = encode_name(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// ID, lower-cased name, type, and where the question ends. Names are uncompressed in a
/// query.
fn parse_query(msg: &[u8]) -> Option<(u16, String, u16, usize)> {
    let id = u16::from_be_bytes([*msg.first()?, *msg.get(1)?]);
    let mut pos = 12;
    let mut labels = Vec::new();
    for _ in 0..128 {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(pos + 1..pos + 1 + len)?).to_lowercase());
        pos += 1 + len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos + 1)?, *msg.get(pos + 2)?]);
    Some((id, labels.join("."), qtype, pos + 5))
}

/// A test DNS server on loopback. Stops (and joins its threads) when dropped.
struct Responder {
    addr: SocketAddr,
    /// `(name, type, over TCP)` of every query, in arrival order.
    queries: Arc<Mutex<Vec<(String, u16, bool)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Responder {
    fn start(mode: Mode, zone: Zone) -> Responder {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (queries, stop, zone) = (queries.clone(), stop.clone(), zone.clone());
            udp.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            threads.push(thread::spawn(move || {
                let start = Instant::now();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                    let Ok((n, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    let query = &buf[..n];
                    let Some((id, name, qtype, _)) = parse_query(query) else {
                        continue;
                    };
                    queries.lock().unwrap().push((name.clone(), qtype, false));
                    match mode {
                        Mode::Silent => {}
                        Mode::Answer | Mode::Slow => {
                            if mode == Mode::Slow {
                                thread::sleep(Duration::from_millis(200));
                            }
                            let reply = zone.respond(query, false).unwrap();
                            udp.send_to(&reply, from).unwrap();
                        }
                        Mode::Truncate => {
                            let reply = zone.respond(query, true).unwrap();
                            udp.send_to(&reply, from).unwrap();
                        }
                        Mode::SpoofPort => {
                            let spoof = Zone::new(false, &[(&name, addr_rec("203.0.113.66"))]);
                            let spoof6 = Zone::new(false, &[(&name, addr_rec("2001:db8::66"))]);
                            let z = if qtype == A { spoof } else { spoof6 };
                            let bad = z.respond(query, false).unwrap();
                            let other = UdpSocket::bind("127.0.0.1:0").unwrap();
                            other.send_to(&bad, from).unwrap();
                            thread::sleep(Duration::from_millis(50));
                            let reply = zone.respond(query, false).unwrap();
                            udp.send_to(&reply, from).unwrap();
                        }
                        Mode::CompressionLoop => {
                            udp.send_to(&looping_reply(query), from).unwrap();
                        }
                        Mode::SpoofFirst => {
                            let spoof = Zone::new(false, &[(&name, addr_rec("203.0.113.66"))]);
                            let spoof6 = Zone::new(false, &[(&name, addr_rec("2001:db8::66"))]);
                            let z = if qtype == A { spoof } else { spoof6 };
                            let mut bad = z.respond(query, false).unwrap();
                            bad[..2].copy_from_slice(&id.wrapping_add(1).to_be_bytes());
                            udp.send_to(&bad, from).unwrap();
                            let reply = zone.respond(query, false).unwrap();
                            udp.send_to(&reply, from).unwrap();
                        }
                    }
                }
            }));
        }
        {
            let (queries, stop) = (queries.clone(), stop.clone());
            tcp.set_nonblocking(true).unwrap();
            threads.push(thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                    let Ok((mut conn, _)) = tcp.accept() else {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut len = [0u8; 2];
                    if conn.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if conn.read_exact(&mut query).is_err() {
                        continue;
                    }
                    let Some((_, name, qtype, _)) = parse_query(&query) else {
                        continue;
                    };
                    queries.lock().unwrap().push((name, qtype, true));
                    let reply = zone.respond(&query, false).unwrap();
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    let _ = conn.write_all(&framed);
                }
            }));
        }
        Responder {
            addr,
            queries,
            stop,
            threads,
        }
    }

    fn queries(&self) -> Vec<(String, u16, bool)> {
        self.queries.lock().unwrap().clone()
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (name, _, _) in self.queries() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A reply to `query` (its ID and question) with one A record whose owner name is a
/// pointer to itself: a decompression loop.
fn looping_reply(query: &[u8]) -> Vec<u8> {
    let (_, _, _, end) = parse_query(query).unwrap();
    let mut reply = query[..end].to_vec();
    reply[2] = 0x84; // QR, AA
    reply[3] = 0x00;
    reply[6..8].copy_from_slice(&1u16.to_be_bytes()); // ANCOUNT 1
    reply[8..12].fill(0); // no authority, no additional (the query's OPT is dropped)
    let at = reply.len() as u16;
    reply.extend_from_slice(&(0xc000 | at).to_be_bytes());
    reply.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 99]);
    reply
}

/// A UDP socket and a TCP listener on the same loopback port (a few tries: the port the
/// kernel gives the UDP socket may be taken for TCP).
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Room for a burst of queries (hundreds at once in the batch tests): with the default
        // buffer the kernel drops some while the responder's one thread is answering.
        let _ = socket2::SockRef::from(&udp).set_recv_buffer_size(4 << 20);
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

fn addr_rec(s: &str) -> Rec {
    Rec::Addr(s.parse().unwrap())
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// The usual zone: `host.test` with both families, `v4.test` with only IPv4.
fn zone(chase: bool) -> Zone {
    Zone::new(
        chase,
        &[
            ("host.test", addr_rec("192.0.2.1")),
            ("host.test", addr_rec("2001:db8::1")),
            ("v4.test", addr_rec("192.0.2.4")),
            ("alias.test", Rec::Cname("middle.test")),
            ("middle.test", Rec::Cname("host.test")),
            ("test.example", addr_rec("127.0.0.1")),
        ],
    )
}

/// A resolver asking only `servers`, 200 ms per try, 2 attempts, no search list.
fn resolver(servers: &[SocketAddr], resolv_conf: &str, hosts: &str) -> NativeResolver {
    NativeResolver::from_text(resolv_conf, hosts)
        .nameservers(servers.iter().copied())
        .timeout(Duration::from_millis(200))
        .attempts(2)
}

fn lookup(resolver: &NativeResolver, name: &str) -> std::io::Result<Vec<IpAddr>> {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 20, resolver.lookup(name))
}

/// A responder in `mode` over the usual zone, and a resolver asking it, which has just
/// resolved `host.test` to both its addresses, IPv6 first.
fn resolves_host_test(mode: Mode) -> (Responder, NativeResolver) {
    let server = Responder::start(mode, zone(true));
    let r = resolver(&[server.addr], "", "");
    assert_eq!(
        lookup(&r, "host.test").unwrap(),
        ips(&["2001:db8::1", "192.0.2.1"]),
        "{mode:?}"
    );
    (server, r)
}

#[test]
fn a_and_aaaa_together_ipv6_first() {
    let (server, r) = resolves_host_test(Mode::Answer);
    let mut types: Vec<u16> = server.queries().iter().map(|q| q.1).collect();
    types.sort();
    assert_eq!(types, vec![A, AAAA]);
    // Only one family: NODATA for the other, no retry.
    assert_eq!(lookup(&r, "v4.test").unwrap(), ips(&["192.0.2.4"]));
    assert_eq!(server.queries().len(), 4);
    let size = std::mem::size_of_val(&r.lookup("host.test"));
    println!("lookup future: {size} bytes");
    assert!(size < 4096, "lookup future is {size} bytes");
}

#[test]
fn cname_chain_in_one_answer() {
    let server = Responder::start(Mode::Answer, zone(true));
    let r = resolver(&[server.addr], "", "");
    assert_eq!(
        lookup(&r, "alias.test").unwrap(),
        ips(&["2001:db8::1", "192.0.2.1"])
    );
    assert_eq!(server.names(), vec!["alias.test"]);
}

#[test]
fn cname_chain_requeried_when_the_server_does_not_follow_it() {
    let server = Responder::start(Mode::Answer, zone(false));
    let r = resolver(&[server.addr], "", "");
    assert_eq!(
        lookup(&r, "alias.test").unwrap(),
        ips(&["2001:db8::1", "192.0.2.1"])
    );
    assert_eq!(
        server.names(),
        vec!["alias.test", "middle.test", "host.test"]
    );
    assert_eq!(server.queries().len(), 6);
}

#[test]
fn nxdomain_names_the_name() {
    let server = Responder::start(Mode::Answer, zone(true));
    let r = resolver(&[server.addr], "", "");
    let err = lookup(&r, "nope.test").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let msg = err.to_string();
    assert!(
        msg.contains("nope.test") && msg.contains("NXDOMAIN"),
        "{msg}"
    );
    // NXDOMAIN is an answer: no second attempt.
    assert_eq!(server.queries().len(), 2);
}

/// The first server gives nothing usable (per `mode`); its try times out after 200 ms and
/// the second server answers.
fn first_server_useless_second_answers(mode: Mode) {
    let useless = Responder::start(mode, zone(true));
    let good = Responder::start(Mode::Answer, zone(true));
    let r = resolver(&[useless.addr, good.addr], "", "");
    let start = Instant::now();
    assert_eq!(
        lookup(&r, "host.test").unwrap(),
        ips(&["2001:db8::1", "192.0.2.1"])
    );
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(190), "{mode:?}: {took:?}");
    assert!(took < Duration::from_secs(2), "{mode:?}: {took:?}");
    assert_eq!((useless.queries().len(), good.queries().len()), (2, 2));
    let stats = r.stats();
    assert_eq!((stats.failed_tries, stats.udp_queries), (1, 4), "{stats:?}");
}

#[test]
fn silent_server_then_the_second_answers() {
    first_server_useless_second_answers(Mode::Silent);
}

#[test]
fn all_silent_times_out_after_attempts() {
    let silent = Responder::start(Mode::Silent, zone(true));
    let r = resolver(&[silent.addr], "", "");
    let err = lookup(&r, "host.test").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("host.test"), "{err}");
    // Two attempts, two queries each.
    assert_eq!(silent.queries().len(), 4);
}

#[test]
fn truncated_answer_asked_again_over_tcp() {
    let (server, _) = resolves_host_test(Mode::Truncate);
    let queries = server.queries();
    assert_eq!(queries.iter().filter(|q| q.2).count(), 2, "{queries:?}");
    assert_eq!(queries.iter().filter(|q| !q.2).count(), 2, "{queries:?}");
}

#[test]
fn spoofed_reply_with_wrong_id_ignored() {
    let (server, _) = resolves_host_test(Mode::SpoofFirst);
    assert_eq!(server.queries().len(), 2);
}

#[test]
fn hosts_file_and_literals_without_a_query() {
    let server = Responder::start(Mode::Answer, zone(true));
    let r = resolver(
        &[server.addr],
        "",
        "192.0.2.77 host.test\n2001:db8::77 host.test\n",
    );
    assert_eq!(
        lookup(&r, "HOST.test.").unwrap(),
        ips(&["192.0.2.77", "2001:db8::77"])
    );
    assert_eq!(lookup(&r, "192.0.2.9").unwrap(), ips(&["192.0.2.9"]));
    assert_eq!(lookup(&r, "[::1]").unwrap(), ips(&["::1"]));
    assert_eq!(server.queries().len(), 0);
}

#[test]
fn search_list_and_ndots() {
    let server = Responder::start(Mode::Answer, zone(true));
    let r = resolver(
        &[server.addr],
        "search corp.test test\noptions ndots:2\n",
        "",
    );
    // One dot, under ndots: the search list first, then the name itself.
    let err = lookup(&r, "x.y").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(server.names(), vec!["x.y.corp.test", "x.y.test", "x.y"]);
    // Found on the second candidate: the third is not asked.
    let r = resolver(
        &[server.addr],
        "search corp.test test\noptions ndots:2\n",
        "",
    );
    assert_eq!(
        lookup(&r, "host").unwrap(),
        ips(&["2001:db8::1", "192.0.2.1"])
    );
    let names = server.names();
    assert_eq!(&names[3..], ["host.corp.test", "host.test"]);
    // An absolute name: only itself.
    assert_eq!(lookup(&r, "v4.test.").unwrap(), ips(&["192.0.2.4"]));
    assert_eq!(server.names().last().unwrap(), "v4.test");
}

#[test]
fn from_system_parses_without_lookup() {
    let r = NativeResolver::from_system();
    assert!(!format!("{r:?}").is_empty());
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect()
}

/// How many `spawn_blocking` helper threads (named `volley-blocking`) this process has.
fn blocking_threads() -> usize {
    thread_names()
        .iter()
        .filter(|n| n.starts_with("volley-blocking"))
        .count()
}

/// GETs `http://{host}:{port}/get` from an embedded server on 127.0.0.1 with `client`, on
/// a runtime of its own: the status and the body.
fn get_from_embedded_server(client: Client, host: &str) -> (u16, String) {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 20, async {
        let http = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = http.local_addr().port();
        let resp = client
            .get(format!("http://{host}:{port}/get"))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

/// End to end: the client resolves `test.example` through the responder and fetches from
/// the embedded server. No `spawn_blocking` helper may start: the blocking pool exposes no
/// count, so the test looks for its threads (named `volley-blocking`) in `/proc/self/task`.
/// No test in this binary uses `spawn_blocking`, so none may exist before or after.
#[test]
fn client_end_to_end_without_helper_threads() {
    let _dog = watchdog("client_end_to_end_without_helper_threads", 30);
    let server = Responder::start(Mode::Answer, zone(true));
    assert_eq!(blocking_threads(), 0);
    let client = Client::builder()
        .dns_resolver(resolver(&[server.addr], "", ""))
        .build();
    let (status, body) = get_from_embedded_server(client, "test.example");
    assert_eq!(status, 200);
    assert!(body.contains("test.example"), "{body}");
    assert_eq!(blocking_threads(), 0);
    assert_eq!(server.names(), vec!["test.example"]);
}

/// How many queries of this type the responder got.
fn count(server: &Responder, qtype: u16) -> usize {
    server.queries().iter().filter(|q| q.1 == qtype).count()
}

/// A positive answer is cached for its TTL (1 s here), then asked again.
#[test]
fn positive_answer_cached_for_its_ttl() {
    let _dog = watchdog("positive_answer_cached_for_its_ttl", 30);
    let mut z = zone(true);
    z.ttl = 1;
    let server = Responder::start(Mode::Answer, z);
    let r = resolver(&[server.addr], "", "");
    let want = ips(&["2001:db8::1", "192.0.2.1"]);
    assert_eq!(lookup(&r, "host.test").unwrap(), want);
    assert_eq!(server.queries().len(), 2);
    // Within the TTL, in another case: from the cache, and a clone shares it.
    assert_eq!(lookup(&r.clone(), "HOST.Test").unwrap(), want);
    assert_eq!(server.queries().len(), 2);
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(lookup(&r, "host.test").unwrap(), want);
    assert_eq!(server.queries().len(), 4);
}

/// NXDOMAIN with an SOA whose MINIMUM is 1: cached for 1 s, then asked again.
#[test]
fn nxdomain_cached_for_the_soa_minimum() {
    let _dog = watchdog("nxdomain_cached_for_the_soa_minimum", 30);
    let mut z = zone(true);
    z.soa_minimum = Some(1);
    let server = Responder::start(Mode::Answer, z);
    let r = resolver(&[server.addr], "", "");
    let first = lookup(&r, "nope.test").unwrap_err();
    assert_eq!(first.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(server.queries().len(), 2);
    let again = lookup(&r, "nope.test").unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(again.to_string(), first.to_string());
    assert_eq!(server.queries().len(), 2);
    thread::sleep(Duration::from_millis(1100));
    assert!(lookup(&r, "nope.test").is_err());
    assert_eq!(server.queries().len(), 4);
}

/// Fifty concurrent lookups of one name, with a slow server: one A and one AAAA query.
#[test]
fn concurrent_lookups_share_one_query() {
    let _dog = watchdog("concurrent_lookups_share_one_query", 30);
    let server = Responder::start(Mode::Slow, zone(true));
    let r = resolver(&[server.addr], "", "").timeout(Duration::from_secs(2));
    let rt = Runtime::new().unwrap();
    let results = block_on_bounded(&rt, 20, async {
        let handles: Vec<_> = (0..50)
            .map(|_| volley::spawn(r.lookup("host.test")))
            .collect();
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        results
    });
    for result in results {
        assert_eq!(result.unwrap(), ips(&["2001:db8::1", "192.0.2.1"]));
    }
    assert_eq!((count(&server, A), count(&server, AAAA)), (1, 1));
}

/// The first lookup (the one asking) is dropped while others wait: one of them asks again,
/// and all get the answer.
#[test]
fn cancelled_first_lookup_is_taken_over() {
    let _dog = watchdog("cancelled_first_lookup_is_taken_over", 30);
    let server = Responder::start(Mode::Slow, zone(true));
    let r = resolver(&[server.addr], "", "").timeout(Duration::from_secs(2));
    let rt = Runtime::new().unwrap();
    let results = block_on_bounded(&rt, 20, async {
        let mut first = Box::pin(r.lookup("host.test"));
        // Polled once: it sends its queries and leads.
        std::future::poll_fn(|cx| {
            assert!(first.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        let handles: Vec<_> = (0..3)
            .map(|_| volley::spawn(r.lookup("host.test")))
            .collect();
        volley::sleep(Duration::from_millis(50)).await;
        assert!(!server.queries().is_empty());
        drop(first);
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        results
    });
    for result in results {
        assert_eq!(result.unwrap(), ips(&["2001:db8::1", "192.0.2.1"]));
    }
    // The cancelled leader's two queries, and one pair from the lookup that took over.
    thread::sleep(Duration::from_millis(50));
    assert_eq!((count(&server, A), count(&server, AAAA)), (2, 2));
}

/// The test: 1,000 URLs over 200 host names through the client with the native
/// resolver make exactly one A and one AAAA query per name, and every request succeeds.
#[test]
fn batch_of_1000_urls_over_200_hosts_asks_each_name_once() {
    let _dog = watchdog("batch_of_1000_urls_over_200_hosts_asks_each_name_once", 60);
    let hosts: Vec<String> = (0..200).map(|i| format!("h{i}.test")).collect();
    let records: Vec<(&str, Rec)> = hosts
        .iter()
        .map(|h| (h.as_str(), addr_rec("127.0.0.1")))
        .collect();
    let server = Responder::start(Mode::Answer, Zone::new(true, &records));
    let rt = Runtime::new().unwrap();
    let report = block_on_bounded(&rt, 45, async {
        let http = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = http.local_addr().port();
        let client = Client::builder()
            .dns_resolver(resolver(&[server.addr], "", "").timeout(Duration::from_secs(2)))
            .build();
        let urls: Vec<String> = (0..1000)
            .map(|i| format!("http://h{}.test:{port}/get?i={i}", i % 200))
            .collect();
        client.fetch_all(urls).concurrency(100).run().await
    });
    let failed: Vec<String> = report
        .results
        .iter()
        .filter_map(|r| r.outcome.as_ref().err().map(|e| format!("{e:#}")))
        .take(3)
        .collect();
    assert_eq!(
        (report.summary.ok, report.summary.failed),
        (1000, 0),
        "{failed:?}"
    );
    let (a, aaaa) = (count(&server, A), count(&server, AAAA));
    println!("1000 URLs, 200 hosts: {a} A and {aaaa} AAAA queries");
    assert_eq!((a, aaaa), (200, 200));
    assert_eq!(server.names().len(), 200);
}

/// A reply with the right ID and question from another port is dropped (the socket is
/// connected to the server), and the server's own answer is used.
#[test]
fn spoofed_reply_from_another_port_ignored() {
    let (server, r) = resolves_host_test(Mode::SpoofPort);
    assert_eq!(server.queries().len(), 2);
    assert_eq!(r.stats().failed_tries, 0);
}

/// A server whose replies hold a compression loop is treated as silent: its try times out
/// and the next server answers.
#[test]
fn compression_loop_ignored_then_next_server() {
    let _dog = watchdog("compression_loop_ignored_then_next_server", 30);
    first_server_useless_second_answers(Mode::CompressionLoop);
    let looping = Responder::start(Mode::CompressionLoop, zone(true));
    // Alone, the looping server gives a timeout naming the name, never addresses.
    let r = resolver(&[looping.addr], "", "");
    let e = lookup(&r, "host.test").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(e.to_string().contains("host.test"), "{e}");
}

/// An internationalised name goes out as the `url` crate's punycode (IDNA) form.
#[test]
fn internationalised_name_is_asked_in_punycode() {
    let _dog = watchdog("internationalised_name_is_asked_in_punycode", 30);
    let server = Responder::start(
        Mode::Answer,
        Zone::new(true, &[("xn--bcher-kva.test", addr_rec("127.0.0.1"))]),
    );
    let client = Client::builder()
        .dns_resolver(resolver(&[server.addr], "", ""))
        .build();
    let (status, _) = get_from_embedded_server(client, "B\u{fc}cher.test");
    assert_eq!(status, 200);
    assert_eq!(server.names(), vec!["xn--bcher-kva.test"]);
}

/// The client's default resolver is the native one: `localhost` (in the hosts file, or by
/// RFC 6761 when it is not) is answered without `getaddrinfo`, so no helper thread starts.
#[test]
fn default_client_resolves_without_helper_threads() {
    let _dog = watchdog("default_client_resolves_without_helper_threads", 30);
    let (status, _) = get_from_embedded_server(Client::new(), "localhost");
    assert_eq!(status, 200);
    assert_eq!(blocking_threads(), 0);
}

const THREADS_CHILD: &str = "VOLLEY_DNS_THREADS_CHILD";

/// How many threads this process has.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The "one thread" check: a child process (so that no other test's threads count)
/// runs a batch of 1,000 URLs over 200 names, resolved by the native resolver against the
/// parent's responder, and samples its thread count after every request. It may never grow
/// past what it was before the batch (the test harness's own threads).
#[test]
fn large_batch_resolves_on_one_thread() {
    if let Ok(dns) = std::env::var(THREADS_CHILD) {
        return threads_child(dns.parse().unwrap());
    }
    let _dog = watchdog("large_batch_resolves_on_one_thread", 90);
    let hosts: Vec<String> = (0..200).map(|i| format!("h{i}.test")).collect();
    let records: Vec<(&str, Rec)> = hosts
        .iter()
        .map(|h| (h.as_str(), addr_rec("127.0.0.1")))
        .collect();
    let server = Responder::start(Mode::Answer, Zone::new(true, &records));
    // The watchdog bounds the child too: `output()` waits for it.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "large_batch_resolves_on_one_thread",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(THREADS_CHILD, server.addr.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("child: 1000 ok"), "{stdout}");
    for line in stdout
        .lines()
        .filter_map(|l| l.find("child:").map(|at| &l[at..]))
    {
        println!("{line}");
    }
    assert_eq!((count(&server, A), count(&server, AAAA)), (200, 200));
}

fn threads_child(dns: SocketAddr) {
    let before = thread_count();
    let rt = Runtime::new().unwrap();
    let most = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = most.clone();
    let resolver = resolver(&[dns], "", "").timeout(Duration::from_secs(2));
    let stats = resolver.clone();
    // No `block_on_bounded`: its watchdog is a thread. The parent bounds this process.
    let report = rt.block_on(async move {
        let http = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = http.local_addr().port();
        let client = Client::builder().dns_resolver(resolver).build();
        let urls: Vec<String> = (0..1000)
            .map(|i| format!("http://h{}.test:{port}/get?i={i}", i % 200))
            .collect();
        client
            .fetch_all(urls)
            .concurrency(100)
            .on_progress(move |_| seen.set(seen.get().max(thread_count())))
            .run()
            .await
    });
    let stats = stats.stats();
    println!(
        "child: {} ok, threads {before} before, at most {} during the batch; {stats:?}",
        report.summary.ok,
        most.get()
    );
    assert_eq!(report.summary.ok, 1000);
    assert_eq!(
        most.get(),
        before,
        "threads before and at most during the batch"
    );
    assert_eq!((stats.resolved, stats.udp_queries), (200, 400));
    assert_eq!(
        stats.lookups,
        stats.resolved + stats.cache_hits + stats.coalesced
    );
}

/// Requests dropped while the native resolver waits on a silent server (the leader's UDP
/// socket open and its per-try timer armed, a second request waiting on the same lookup)
/// leave the runtime as it was: no task, no I/O source, no timer.
#[test]
fn dropped_lookups_leave_nothing_behind() {
    let server = Responder::start(Mode::Silent, zone(true));
    let rt = Runtime::new().unwrap();
    let counts = |rt: &Runtime| {
        let s = rt.stats();
        (s.tasks, s.io_sources, s.timers)
    };
    block_on_watched(&rt, 30, async {
        let dns = resolver(&[server.addr], "", "").timeout(Duration::from_secs(10));
        let client = Client::builder().dns_resolver(dns.clone()).build();
        let before = counts(&rt);
        let requests: Vec<_> = (0..2)
            .map(|_| {
                let client = client.clone();
                volley::spawn(async move { client.get("http://host.test:1/").send().await })
            })
            .collect();
        // Until the queries have arrived: the lookup is waiting for its answers.
        let started = Instant::now();
        while server.queries().len() < 2 && started.elapsed() < Duration::from_secs(5) {
            volley::sleep(Duration::from_millis(5)).await;
        }
        let during = counts(&rt);
        assert_eq!(during.0, before.0 + 2, "{during:?}");
        assert_eq!(during.1, before.1 + 1, "the UDP socket: {during:?}");
        assert!(during.2 > before.2, "the per-try timer: {during:?}");
        for request in &requests {
            request.abort();
        }
        for request in requests {
            assert!(request.await.unwrap_err().is_cancelled());
        }
        assert_eq!(counts(&rt), before);
        let stats = dns.stats();
        assert_eq!((stats.lookups, stats.resolved, stats.coalesced), (2, 0, 0));
    });
}
