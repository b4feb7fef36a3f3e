//! [`NativeResolver`]: a DNS stub resolver on the reactor, with no helper thread (issue 7).
//!
//! A lookup goes:
//!
//! 1. An IP literal is its own answer; a name in the hosts file gets the file's addresses,
//!    without any query; `localhost` and names under `.localhost` that the hosts file does
//!    not list are `::1` and `127.0.0.1` (RFC 6761 §6.3), never asked of a server.
//! 2. Otherwise, each name from the search list in glibc's order ([`candidates`]) is asked
//!    for, until one has addresses. NXDOMAIN and NODATA move to the next candidate; when
//!    every candidate fails that way, the lookup fails with [`io::ErrorKind::NotFound`] and
//!    a message naming the name and the candidates tried.
//! 3. One candidate: one UDP socket bound to port 0 (the kernel picks a random source port
//!    on Linux) and connected to the server, so the kernel drops datagrams from any other
//!    address; the `A` and the `AAAA` query leave on it at once, each with its own random ID.
//!    A datagram counts only when [`parse_response`] accepts it for one of the two questions
//!    (ID, QR, opcode, echoed question): anything else (a late reply, a spoofed ID, a
//!    malformed message) is dropped and the wait goes on, for at most [`NativeResolver::MAX_DATAGRAMS`]
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
//! # Cache and coalescing
//!
//! Answers are cached per name as asked, lowercased (literals and hosts-file names never
//! reach the cache). A positive answer lives for its TTL, the smallest over the records used
//! (CNAMEs included, and over every query of a re-queried chain), clamped to
//! [1 s, 1 day]; a TTL of 0 is not cached. A negative one (NXDOMAIN or NODATA for every
//! candidate) lives for the SOA's negative TTL (the smallest over the candidates; 5 s when
//! an answer has no SOA), at most 5 minutes; 0 is not cached. Timeouts and server errors are
//! never cached. The cache holds at most [`CACHE_ENTRIES`] names: when full, expired entries
//! go first, then the oldest.
//!
//! Concurrent lookups of one name share one resolution: the first leads (it asks the
//! servers), the others wait for its result, errors included. If the leader's future is
//! dropped, the waiters are woken and one of them leads in its stead.
//!
//! Because the resolver honours TTLs itself, it tells the client so
//! (`Resolve::caches_answers`) and the client's fixed-time cache
//! ([`Config::DNS_TTL`](crate::Config::DNS_TTL)) is skipped for it: an answer with TTL 1 is
//! not kept for 30 s.
//!
//! # Configuration changes
//!
//! A resolver made by [`NativeResolver::from_system`] looks, at most every 5 seconds and
//! only when a lookup comes, whether `/etc/resolv.conf` or `/etc/hosts` changed (modification
//! time and length), and re-reads the one that did, as glibc does since 2.26. Cached answers
//! stay until their TTL. A setter fixes the configuration and ends the watching.
//!
//! # Counters
//!
//! [`NativeResolver::stats`] counts lookups by how they were answered (locally, from the
//! cache, by waiting for another lookup, or by asking), the queries sent over UDP and TCP,
//! the tries that failed, and the time spent asking: enough to see what the cache and the
//! coalescing saved.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use super::conf::{candidates, ResolvConf};
use super::hosts::Hosts;
use super::packet::{
    parse_response, tcp_frame, Answer, DnsError, QType, Query, TcpFrameReader, EDNS_UDP_PAYLOAD,
    MAX_CNAME_HOPS,
};
use super::resolve::{Resolve, Resolving};
use crate::net::{TcpStream, UdpSocket};
use crate::rt::timeout_at;

/// The receive buffer: a little more than our EDNS0 payload, for servers that send more.
const RECV_BUF: usize = 2048;

/// The largest DNS-over-TCP frame plus its length prefix.
const MAX_TCP_BUFFER: usize = 2 + 65535;

/// The most names the resolver's cache holds.
const CACHE_ENTRIES: usize = 10_000;

/// The longest a positive answer is cached, whatever its TTL.
const MAX_POSITIVE_TTL: u32 = 86_400;

/// How long a negative answer without an SOA is cached.
const DEFAULT_NEGATIVE_TTL: u32 = 5;

/// The longest a negative answer is cached.
const MAX_NEGATIVE_TTL: u32 = 300;

/// How many times one lookup takes over from a cancelled leader before asking on its own.
const MAX_TAKEOVERS: usize = 16;

/// A DNS stub resolver native to the reactor: UDP and TCP on the runtime's own loop, no
/// helper thread.
///
/// It is the client's default resolver: a [`Client`](crate::Client) built without
/// [`ClientBuilder::dns_resolver`](crate::ClientBuilder::dns_resolver) uses one made by
/// [`from_system`](Self::from_system) at its first lookup ([`Resolver::native`](crate::Resolver::native)).
///
/// A lookup answers IP literals, names in the hosts file and `localhost` without a query.
/// Otherwise it tries the names of the search list in glibc's order (`ndots`), each with an
/// `A` and an `AAAA` query sent at once over one UDP socket connected to the server (a random
/// source port from the kernel, random IDs from a keyed SipHash of a counter and the time;
/// replies from another address, or with another ID or question, are ignored). It waits for
/// both answers until the per-try timeout; one answer with addresses is enough when the other
/// does not come by then. NXDOMAIN and NODATA move to the next name; a timeout, SERVFAIL or
/// REFUSED to the next server, for `attempts` rounds; a truncated answer is asked again over
/// TCP; a CNAME chain ending without addresses is followed with new queries (at most 8).
/// Addresses come back IPv6 first. At most
/// [`MAX_DATAGRAMS`](Self::MAX_DATAGRAMS) datagrams are read per try.
///
/// Build one yourself to point it at other servers, or to read its [`stats`](Self::stats)
/// (a clone shares them):
///
/// ```no_run
/// use std::time::Duration;
///
/// let dns = volley::NativeResolver::from_system()
///     .nameservers(["192.0.2.53:53".parse().unwrap()])
///     .timeout(Duration::from_secs(1));
/// let client = volley::Client::builder().dns_resolver(dns.clone()).build();
/// // ... fetch ...
/// println!("{:?}", dns.stats());
/// # drop(client);
/// ```
///
/// Answers are cached for their records' TTL (negative ones for the SOA's negative TTL, at
/// most 5 minutes), and concurrent lookups of one name share one set of queries: see "Cache
/// and coalescing" in the docs of its source module (`src/dns/native.rs`). The client's
/// own fixed-time cache is skipped for this resolver
/// ([`Resolve::caches_answers`]).
///
/// What it does not do: NSS modules (LDAP, mDNS's `.local`, `myhostname`, ...); use
/// [`Resolver::system`](crate::Resolver::system) (`getaddrinfo` on a helper thread) where those are needed. Nor does
/// it sort addresses by RFC 6724 beyond "IPv6 first": Happy Eyeballs in the client races
/// the families instead.
///
/// Like everything in volley it is single-threaded (neither `Send` nor `Sync`). Cloning is
/// cheap and shares the configuration, the cache, the lookups in flight and the counters;
/// the setters ([`nameservers`](Self::nameservers), [`timeout`](Self::timeout),
/// [`attempts`](Self::attempts)) give the resolver they return a cache and counters of its
/// own.
#[derive(Clone)]
pub struct NativeResolver {
    conf: Rc<ResolvConf>,
    hosts: Rc<Hosts>,
    /// For a resolver made by `from_system` (and not changed by a setter since): the files
    /// it watches, and their latest contents, shared by its clones.
    files: Option<Rc<SystemFiles>>,
    ids: Rc<IdSource>,
    state: Rc<State>,
}

/// How often, at most, a resolver made by `from_system` looks whether `/etc/resolv.conf` or
/// `/etc/hosts` changed (Go's resolver checks as often).
const FILES_CHECK_EVERY: Duration = Duration::from_secs(5);

/// The system's resolv.conf and hosts file, re-read when they change.
struct SystemFiles {
    resolv_conf: PathBuf,
    hosts: PathBuf,
    every: Duration,
    latest: RefCell<Latest>,
}

/// What [`SystemFiles`] read last, and when it last looked.
struct Latest {
    checked: Instant,
    stamps: [Option<Stamp>; 2],
    conf: Rc<ResolvConf>,
    hosts: Rc<Hosts>,
}

/// What tells a changed file: its modification time and length.
type Stamp = (Option<SystemTime>, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

impl SystemFiles {
    fn new(resolv_conf: PathBuf, hosts: PathBuf, every: Duration) -> SystemFiles {
        let stamps = [stamp(&resolv_conf), stamp(&hosts)];
        let latest = Latest {
            checked: Instant::now(),
            stamps,
            conf: Rc::new(read_resolv_conf(&resolv_conf)),
            hosts: Rc::new(read_hosts(&hosts)),
        };
        SystemFiles {
            resolv_conf,
            hosts,
            every,
            latest: RefCell::new(latest),
        }
    }

    /// The configuration to use now: re-read where a file changed, if the last look was
    /// `every` ago or more.
    fn current(&self) -> (Rc<ResolvConf>, Rc<Hosts>) {
        let mut latest = self.latest.borrow_mut();
        let now = Instant::now();
        if now.duration_since(latest.checked) >= self.every {
            latest.checked = now;
            let stamps = [stamp(&self.resolv_conf), stamp(&self.hosts)];
            if stamps[0] != latest.stamps[0] {
                latest.conf = Rc::new(read_resolv_conf(&self.resolv_conf));
            }
            if stamps[1] != latest.stamps[1] {
                latest.hosts = Rc::new(read_hosts(&self.hosts));
            }
            latest.stamps = stamps;
        }
        (latest.conf.clone(), latest.hosts.clone())
    }
}

/// A resolv.conf file with the environment applied as glibc does (an unreadable file counts
/// as empty).
fn read_resolv_conf(path: &Path) -> ResolvConf {
    let mut conf = ResolvConf::parse(&std::fs::read_to_string(path).unwrap_or_default());
    let env = |name| std::env::var(name).ok();
    let uname = rustix::system::uname();
    let hostname = uname.nodename().to_str().ok();
    conf.apply_environment(
        env("LOCALDOMAIN").as_deref(),
        env("RES_OPTIONS").as_deref(),
        hostname,
    );
    conf
}

fn read_hosts(path: &Path) -> Hosts {
    Hosts::parse(&std::fs::read_to_string(path).unwrap_or_default())
}

/// What a [`NativeResolver`] (with its clones) has done since it was made, or since a setter
/// gave it a fresh cache: see [`NativeResolver::stats`].
///
/// Every lookup that finishes is counted once, in exactly one of `local`, `cache_hits`,
/// `coalesced` and `resolved`, so they add up to `lookups` once no lookup is in flight and
/// none was dropped unfinished (a dropped one counts in `lookups` only). Queries are counted
/// as sent: each try with a server sends one `A` and one `AAAA` query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsStats {
    /// Lookups asked for.
    pub lookups: u64,
    /// Answered without the network or the cache: IP literals, the hosts file, `localhost`.
    pub local: u64,
    /// Answered from the cache (negative answers included).
    pub cache_hits: u64,
    /// Answered by a lookup of the same name that was already asking (coalesced).
    pub coalesced: u64,
    /// Lookups that asked the name servers.
    pub resolved: u64,
    /// Of those, the ones that ended in an error (no such name included).
    pub failed: u64,
    /// Queries sent over UDP.
    pub udp_queries: u64,
    /// Queries asked again over TCP, after a truncated answer.
    pub tcp_queries: u64,
    /// Tries with a server that gave nothing usable (no answer in time, or an error code),
    /// after which the next server or round was tried.
    pub failed_tries: u64,
    /// The time the `resolved` lookups spent asking, summed.
    pub resolve_time: Duration,
}

/// What a finished lookup gave, shareable: the addresses, or the error's kind and message.
type Shared = Result<Rc<[IpAddr]>, (io::ErrorKind, Rc<str>)>;

fn to_io(shared: Shared) -> io::Result<Vec<IpAddr>> {
    match shared {
        Ok(addrs) => Ok(addrs.to_vec()),
        Err((kind, msg)) => Err(io::Error::new(kind, msg.to_string())),
    }
}

fn to_shared(result: &io::Result<Vec<IpAddr>>) -> Shared {
    match result {
        Ok(addrs) => Ok(addrs.as_slice().into()),
        Err(e) => Err((e.kind(), e.to_string().into())),
    }
}

/// The cache and the lookups in flight, shared by clones.
#[derive(Default)]
struct State {
    cache: RefCell<Cache>,
    inflight: RefCell<HashMap<String, Rc<RefCell<Inflight>>>>,
    stats: Cell<DnsStats>,
}

impl State {
    fn count(&self, f: impl FnOnce(&mut DnsStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }
}

/// One lookup in flight, that others wait on.
#[derive(Default)]
struct Inflight {
    result: Option<Shared>,
    /// The leader's future was dropped before it finished: someone has to take over.
    abandoned: bool,
    waiters: Vec<Waker>,
}

/// Cached lookups by lowercased name.
#[derive(Default)]
struct Cache {
    entries: HashMap<String, Entry>,
}

struct Entry {
    value: Shared,
    inserted: Instant,
    expires: Instant,
}

impl Cache {
    fn get(&self, key: &str, now: Instant) -> Option<Shared> {
        let entry = self.entries.get(key)?;
        (now < entry.expires).then(|| entry.value.clone())
    }

    fn insert(&mut self, key: String, value: Shared, lifetime: Duration, now: Instant) {
        if self.entries.len() >= CACHE_ENTRIES && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= CACHE_ENTRIES {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.inserted)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        let entry = Entry {
            value,
            inserted: now,
            expires: now + lifetime,
        };
        self.entries.insert(key, entry);
    }
}

/// Marks the leader's slot: finished with a result, or abandoned if dropped before that.
/// Either way the slot leaves the in-flight table and every waiter is woken.
struct Lead {
    state: Rc<State>,
    key: String,
    slot: Rc<RefCell<Inflight>>,
    result: Option<Shared>,
}

impl Drop for Lead {
    fn drop(&mut self) {
        {
            let mut inflight = self.state.inflight.borrow_mut();
            if inflight
                .get(&self.key)
                .is_some_and(|s| Rc::ptr_eq(s, &self.slot))
            {
                inflight.remove(&self.key);
            }
        }
        let waiters = {
            let mut slot = self.slot.borrow_mut();
            match self.result.take() {
                Some(result) => slot.result = Some(result),
                None => slot.abandoned = true,
            }
            std::mem::take(&mut slot.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }
}

/// Waits for a leader: its result, or `None` if it was abandoned.
async fn wait_for(slot: Rc<RefCell<Inflight>>) -> Option<Shared> {
    std::future::poll_fn(|cx| {
        let mut slot = slot.borrow_mut();
        if let Some(result) = &slot.result {
            return Poll::Ready(Some(result.clone()));
        }
        if slot.abandoned {
            return Poll::Ready(None);
        }
        if !slot.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            slot.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    })
    .await
}

/// How long to cache a positive answer with this TTL, if at all.
fn positive_lifetime(ttl: Option<u32>) -> Option<Duration> {
    match ttl {
        None | Some(0) => None,
        Some(ttl) => Some(Duration::from_secs(u64::from(ttl.min(MAX_POSITIVE_TTL)))),
    }
}

/// How long to cache a negative answer with this negative TTL, if at all.
fn negative_lifetime(ttl: u32) -> Option<Duration> {
    (ttl > 0).then(|| Duration::from_secs(u64::from(ttl.min(MAX_NEGATIVE_TTL))))
}

fn min_ttl(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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
    /// The most datagrams read in one try before giving up on it, so a flood of junk cannot
    /// keep a lookup busy.
    pub const MAX_DATAGRAMS: usize = 64;

    /// Reads `/etc/resolv.conf` and `/etc/hosts` once, now, and applies the environment as
    /// glibc does: `LOCALDOMAIN` replaces the search list, `RES_OPTIONS` adds options, and
    /// with no search list at all the domain of the host name is searched. A file that cannot
    /// be read counts as empty (for resolv.conf: the name server `127.0.0.1:53`, as glibc
    /// does).
    ///
    /// Like glibc since 2.26, it notices when the files change: at most every 5 seconds, a
    /// lookup looks at their modification time and length, and re-reads a file that
    /// changed (a long-running crawler follows a new network's name servers). A resolver
    /// changed by a setter ([`nameservers`](Self::nameservers), [`timeout`](Self::timeout),
    /// [`attempts`](Self::attempts)) keeps the configuration it had then and stops looking.
    pub fn from_system() -> NativeResolver {
        let files = SystemFiles::new(
            "/etc/resolv.conf".into(),
            "/etc/hosts".into(),
            FILES_CHECK_EVERY,
        );
        NativeResolver::watching(files)
    }

    /// A resolver reading `files`, and re-reading them when they change.
    fn watching(files: SystemFiles) -> NativeResolver {
        let (conf, hosts) = files.current();
        NativeResolver {
            files: Some(Rc::new(files)),
            ..NativeResolver::with_config(ResolvConf::default(), Hosts::default())
        }
        .with_snapshot(conf, hosts)
    }

    fn with_snapshot(mut self, conf: Rc<ResolvConf>, hosts: Rc<Hosts>) -> NativeResolver {
        self.conf = conf;
        self.hosts = hosts;
        self
    }

    /// This resolver with the latest configuration of the files it watches, if any.
    fn refreshed(self) -> NativeResolver {
        match &self.files {
            Some(files) => {
                let (conf, hosts) = files.current();
                self.with_snapshot(conf, hosts)
            }
            None => self,
        }
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
            files: None,
            ids: Rc::new(IdSource::new()),
            state: Rc::default(),
        }
    }

    /// Replaces the name servers, with their ports (resolv.conf only knows port 53). At
    /// most three are kept, as glibc does; an empty list leaves them as they were.
    pub fn nameservers(mut self, servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        let servers: Vec<SocketAddr> = servers
            .into_iter()
            .take(super::conf::MAX_NAMESERVERS)
            .collect();
        self = self.refreshed();
        self.files = None;
        if !servers.is_empty() {
            Rc::make_mut(&mut self.conf).nameservers = servers;
        }
        self.state = Rc::default();
        self
    }

    /// Sets how long one try waits for a server's answer (resolv.conf's `timeout`, which
    /// only has whole seconds). Raised to at least 1 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self = self.refreshed();
        self.files = None;
        Rc::make_mut(&mut self.conf).timeout = timeout.max(Duration::from_millis(1));
        self.state = Rc::default();
        self
    }

    /// Sets how many rounds over the servers a query makes (resolv.conf's `attempts`),
    /// from 1 to 5.
    pub fn attempts(mut self, attempts: u8) -> Self {
        self = self.refreshed();
        self.files = None;
        Rc::make_mut(&mut self.conf).attempts = attempts.clamp(1, super::conf::MAX_ATTEMPTS);
        self.state = Rc::default();
        self
    }

    /// Resolves `name` to its addresses, IPv6 first. See the module docs. Errors are
    /// `NotFound` (no such name, or no addresses), `TimedOut` (no server answered),
    /// `InvalidInput` (a name that cannot be queried), or `Other` (servers answered with
    /// errors); their message names `name`. Answers come from the cache when fresh there, and
    /// a lookup of a name already being looked up waits for that one.
    pub fn lookup(&self, name: &str) -> impl Future<Output = io::Result<Vec<IpAddr>>> + 'static {
        let this = self.clone();
        let name = name.to_owned();
        async move { this.lookup_owned(name).await }
    }

    /// What the resolver and its clones have done so far: see [`DnsStats`].
    pub fn stats(&self) -> DnsStats {
        self.state.stats.get()
    }

    async fn lookup_owned(self, name: String) -> io::Result<Vec<IpAddr>> {
        let this = self.refreshed();
        this.lookup_now(name).await
    }

    async fn lookup_now(self, name: String) -> io::Result<Vec<IpAddr>> {
        self.state.count(|s| s.lookups += 1);
        if let Some(addrs) = self.local_answer(&name) {
            self.state.count(|s| s.local += 1);
            return Ok(addrs);
        }
        let key = name.to_ascii_lowercase();
        for _ in 0..MAX_TAKEOVERS {
            if let Some(hit) = self.state.cache.borrow().get(&key, Instant::now()) {
                self.state.count(|s| s.cache_hits += 1);
                return to_io(hit);
            }
            let slot = self.state.inflight.borrow().get(&key).cloned();
            match slot {
                Some(slot) => match wait_for(slot).await {
                    Some(result) => {
                        self.state.count(|s| s.coalesced += 1);
                        return to_io(result);
                    }
                    // The leader was cancelled: look again, and lead if nobody else does.
                    None => continue,
                },
                None => return self.lead(key, &name).await,
            }
        }
        // Leaders cancelled over and over: ask on our own.
        self.resolve_name(&name).await.0
    }

    /// The answer for an IP literal, a name in the hosts file, or `localhost`.
    fn local_answer(&self, name: &str) -> Option<Vec<IpAddr>> {
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Some(vec![ip]);
        }
        if let Some(addrs) = self.hosts.get(name) {
            return Some(addrs.to_vec());
        }
        is_localhost(name).then(|| vec![Ipv6Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into()])
    }

    /// Resolves `name` for every lookup of `key` waiting, and caches the result.
    async fn lead(&self, key: String, name: &str) -> io::Result<Vec<IpAddr>> {
        let slot = Rc::new(RefCell::new(Inflight::default()));
        self.state
            .inflight
            .borrow_mut()
            .insert(key.clone(), slot.clone());
        let mut lead = Lead {
            state: self.state.clone(),
            key,
            slot,
            result: None,
        };
        let (result, lifetime) = self.resolve_name(name).await;
        let shared = to_shared(&result);
        if let Some(lifetime) = lifetime {
            let now = Instant::now();
            let key = lead.key.clone();
            self.state
                .cache
                .borrow_mut()
                .insert(key, shared.clone(), lifetime, now);
        }
        lead.result = Some(shared);
        drop(lead);
        result
    }

    /// Asks the servers for `name` (no cache): the result, and how long it may be cached.
    async fn resolve_name(&self, name: &str) -> (io::Result<Vec<IpAddr>>, Option<Duration>) {
        let started = Instant::now();
        let result = match self.resolve_uncached(name).await {
            Ok((addrs, ttl)) => (Ok(addrs), positive_lifetime(ttl)),
            Err((e, negative)) => (Err(e), negative.and_then(negative_lifetime)),
        };
        let failed = result.0.is_err();
        self.state.count(|s| {
            s.resolved += 1;
            s.failed += u64::from(failed);
            s.resolve_time += started.elapsed();
        });
        result
    }

    /// The addresses and their TTL, or the error and, for a negative answer, its negative TTL.
    async fn resolve_uncached(
        &self,
        name: &str,
    ) -> Result<(Vec<IpAddr>, Option<u32>), (io::Error, Option<u32>)> {
        let tried = candidates(name, &self.conf);
        if tried.is_empty() {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "cannot look up an empty name");
            return Err((e, None));
        }
        let mut nodata = false;
        let mut negative = u32::MAX;
        for candidate in &tried {
            let found = self
                .resolve_candidate(name, candidate)
                .await
                .map_err(|e| (e, None))?;
            match found {
                Found::Addrs(addrs, ttl) => return Ok((addrs, ttl)),
                Found::NoData(ttl) => {
                    nodata = true;
                    negative = negative.min(ttl.unwrap_or(DEFAULT_NEGATIVE_TTL));
                }
                Found::NxDomain(ttl) => {
                    negative = negative.min(ttl.unwrap_or(DEFAULT_NEGATIVE_TTL));
                }
            }
        }
        let why = if nodata {
            "no A or AAAA records (NODATA)"
        } else {
            "no such host (NXDOMAIN)"
        };
        let e = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{name}: {why}; tried {}", tried.join(", ")),
        );
        Err((e, Some(negative)))
    }

    /// Asks for one candidate name, following CNAME chains that end without addresses.
    async fn resolve_candidate(&self, name: &str, candidate: &str) -> io::Result<Found> {
        let mut qname = candidate.to_owned();
        // The smallest TTL of the CNAMEs followed so far.
        let mut chain_ttl = None;
        for _ in 0..=MAX_CNAME_HOPS {
            match self.query(name, &qname).await? {
                Outcome::Addrs(addrs, ttl) => {
                    return Ok(Found::Addrs(addrs, min_ttl(chain_ttl, ttl)))
                }
                Outcome::Cname(target, ttl) => {
                    chain_ttl = min_ttl(chain_ttl, ttl);
                    qname = target;
                }
                Outcome::NoData(ttl) => return Ok(Found::NoData(min_ttl(chain_ttl, ttl))),
                Outcome::NxDomain(ttl) => return Ok(Found::NxDomain(min_ttl(chain_ttl, ttl))),
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
                let result = self.ask(server, qname).await;
                if !matches!(result, Ok(Try::Done(_))) {
                    self.state.count(|s| s.failed_tries += 1);
                }
                match result {
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
        self.state.count(|s| s.udp_queries += queries.len() as u64);
        let mut got = udp_exchange(server, &queries, conf.timeout).await?;
        for (slot, query) in got.iter_mut().zip(&queries) {
            if matches!(slot, Some(Err(DnsError::Truncated))) {
                self.state.count(|s| s.tcp_queries += 1);
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

/// `localhost` or a name under `.localhost`, any case, with or without the final dot.
fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
    let tail = b"localhost";
    name.len() >= tail.len()
        && name[name.len() - tail.len()..].eq_ignore_ascii_case(tail)
        && (name.len() == tail.len() || name[name.len() - tail.len() - 1] == b'.')
}

/// What a candidate name gave, with the TTL (negative TTL for `NoData` and `NxDomain`).
enum Found {
    Addrs(Vec<IpAddr>, Option<u32>),
    NoData(Option<u32>),
    NxDomain(Option<u32>),
}

/// What a name server said about one name, once usable, with the TTL (the negative TTL for
/// `NoData` and `NxDomain`, from the SOA if there was one).
#[derive(Debug)]
enum Outcome {
    /// Addresses, IPv6 first.
    Addrs(Vec<IpAddr>, Option<u32>),
    /// A CNAME chain ending without addresses: ask for this name.
    Cname(String, Option<u32>),
    NoData(Option<u32>),
    NxDomain(Option<u32>),
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
    let mut addrs_ttl = None;
    let mut cname = None;
    let mut nxdomain = None;
    let mut nodata = 0;
    let mut negative_ttl = None;
    let mut failure = None;
    // The A answer's target wins: it comes second.
    for answer in got.into_iter().flatten() {
        match answer {
            Ok(answer) => {
                if !answer.addrs.is_empty() {
                    addrs_ttl = min_ttl(addrs_ttl, answer.ttl);
                }
                addrs.extend(answer.addrs);
                if answer.cname_target.is_some() && answer.negative_ttl.is_none() {
                    cname = answer.cname_target.map(|t| (t, answer.ttl));
                } else {
                    nodata += 1;
                    negative_ttl = min_ttl(negative_ttl, answer.negative_ttl);
                }
            }
            Err(DnsError::NxDomain { negative_ttl }) => {
                nxdomain = Some(min_ttl(nxdomain.flatten(), negative_ttl));
            }
            Err(e) => failure = Some(e.to_string()),
        }
    }
    if !addrs.is_empty() {
        return Try::Done(Outcome::Addrs(addrs, addrs_ttl));
    }
    if let Some(ttl) = nxdomain {
        return Try::Done(Outcome::NxDomain(ttl));
    }
    if let Some(why) = failure {
        return Try::Failed(why);
    }
    if let Some((target, ttl)) = cname {
        return Try::Done(Outcome::Cname(target, ttl));
    }
    // Both families answered, neither with addresses. One NODATA alone is not enough: the
    // other may have had addresses.
    if nodata == 2 {
        Try::Done(Outcome::NoData(negative_ttl))
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
    for _ in 0..NativeResolver::MAX_DATAGRAMS {
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
    /// `true`: answers are cached here for their TTL, so the client does not cache them again.
    fn caches_answers(&self) -> bool {
        true
    }

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
    fn cache_is_capped_expired_entries_first_then_the_oldest() {
        let mut cache = Cache::default();
        let t0 = Instant::now();
        let value = || -> Shared { Ok(Rc::from([IpAddr::from([192, 0, 2, 1])])) };
        let long = Duration::from_secs(3600);
        // Full: entry i inserted at t0 + i ms; entry 7 expires early.
        for i in 0..CACHE_ENTRIES {
            let at = t0 + Duration::from_millis(i as u64);
            let life = if i == 7 {
                Duration::from_millis(1)
            } else {
                long
            };
            cache.insert(format!("n{i}.test"), value(), life, at);
        }
        assert_eq!(cache.entries.len(), CACHE_ENTRIES);
        let later = t0 + Duration::from_secs(60);
        // One more: the expired entry goes, nothing else.
        cache.insert("new1.test".into(), value(), long, later);
        assert_eq!(cache.entries.len(), CACHE_ENTRIES);
        assert!(!cache.entries.contains_key("n7.test"));
        assert!(cache.get("n0.test", later).is_some());
        // Another: nothing expired, so the oldest (n0) goes.
        cache.insert("new2.test".into(), value(), long, later);
        assert_eq!(cache.entries.len(), CACHE_ENTRIES);
        assert!(cache.get("n0.test", later).is_none());
        assert!(cache.get("n1.test", later).is_some());
        assert!(cache.get("new1.test", later).is_some() && cache.get("new2.test", later).is_some());
        // Replacing a name already there evicts nothing.
        cache.insert("n2.test".into(), value(), long, later);
        assert_eq!(cache.entries.len(), CACHE_ENTRIES);
        assert!(cache.get("n1.test", later).is_some());
    }

    #[test]
    fn system_files_are_re_read_when_they_change() {
        let dir = std::env::temp_dir().join(format!("volley-dns-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (conf_path, hosts_path) = (dir.join("resolv.conf"), dir.join("hosts"));
        std::fs::write(&conf_path, "nameserver 192.0.2.1\n").unwrap();
        std::fs::write(&hosts_path, "192.0.2.10 box.test\n").unwrap();
        let server = |r: &NativeResolver| r.clone().refreshed().conf.nameservers[0];
        let host = |r: &NativeResolver| r.clone().refreshed().local_answer("box.test");
        let watching = |every| {
            NativeResolver::watching(SystemFiles::new(
                conf_path.clone(),
                hosts_path.clone(),
                every,
            ))
        };
        let r = watching(Duration::ZERO);
        let slow = watching(Duration::from_secs(3600));
        assert_eq!(server(&r), "192.0.2.1:53".parse().unwrap());
        // Another length, so the change shows even if the mtime's resolution hides it.
        std::fs::write(&conf_path, "nameserver 198.51.100.1\nsearch x.test\n").unwrap();
        std::fs::write(&hosts_path, "192.0.2.11 box.test other.test\n").unwrap();
        assert_eq!(server(&r), "198.51.100.1:53".parse().unwrap());
        assert_eq!(host(&r), Some(vec![IpAddr::from([192, 0, 2, 11])]));
        // A clone sees the same; one that looks only hourly has not looked yet.
        assert_eq!(server(&r.clone()), "198.51.100.1:53".parse().unwrap());
        assert_eq!(server(&slow), "192.0.2.1:53".parse().unwrap());
        // A setter keeps what the resolver has now and stops watching.
        let fixed = r.clone().attempts(3);
        std::fs::write(&conf_path, "nameserver 203.0.113.1\n").unwrap();
        assert_eq!(server(&fixed), "198.51.100.1:53".parse().unwrap());
        assert_eq!(server(&r), "203.0.113.1:53".parse().unwrap());
        // A file that goes away counts as empty (the default server), as at start.
        std::fs::remove_file(&conf_path).unwrap();
        assert_eq!(server(&r), "127.0.0.1:53".parse().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn localhost_names() {
        for name in ["localhost", "LocalHost.", "a.localhost", "x.y.LOCALHOST."] {
            assert!(is_localhost(name), "{name}");
        }
        for name in [
            "",
            "localhos",
            "notlocalhost",
            "localhost.example",
            "a-localhost",
        ] {
            assert!(!is_localhost(name), "{name}");
        }
        let resolver = NativeResolver::from_text("", "");
        let want: Vec<IpAddr> = vec![Ipv6Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into()];
        assert_eq!(resolver.local_answer("app.localhost"), Some(want));
        // The hosts file wins.
        let resolver = NativeResolver::from_text("", "127.0.0.1 localhost\n");
        assert_eq!(
            resolver.local_answer("localhost"),
            Some(vec![Ipv4Addr::LOCALHOST.into()])
        );
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
                "Done(Addrs([::1, 192.0.2.1], None))",
            ),
            (
                [None, ok(&["192.0.2.1"], None, None)],
                "Done(Addrs([192.0.2.1], None))",
            ),
            ([None, ok(&[], None, None)], "NoAnswer"),
            ([None, None], "NoAnswer"),
            (
                [ok(&[], None, Some(5)), ok(&[], None, None)],
                "Done(NoData(Some(5)))",
            ),
            ([nx(), nx()], "Done(NxDomain(None))"),
            (
                [servfail(), ok(&["192.0.2.1"], None, None)],
                "Done(Addrs([192.0.2.1], None))",
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
                r#"Done(Cname("c.example", None))"#,
            ),
            (
                [
                    ok(&[], Some("b.example"), Some(60)),
                    ok(&[], None, Some(60)),
                ],
                "Done(NoData(Some(60)))",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(show(classify(got)), want);
        }
    }
}
