//! [`ProxyServer`]: a minimal HTTP forward proxy on loopback, for testing a client's proxy
//! support without a network. Its docs say what it does.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use url::{Host, Url};

use super::codec::base64_decode;
use super::request::{parse_head, BodyFraming, ChunkedDecoder, Request, MAX_HEADERS};
use crate::net::{TcpListener, TcpStream};
use crate::rt::{in_runtime, spawn, timeout, JoinHandle};

/// The longest request head accepted (431 beyond).
const MAX_HEAD: usize = 64 * 1024;

/// The longest request body, and the longest response, relayed (413 and 502 beyond).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The most requests kept in the log; later ones are counted but not logged.
const MAX_LOG: usize = 10_000;

/// The `Via` header added both ways.
const VIA: &str = "1.1 volley-proxy";

/// Configures a [`ProxyServer`]; [`bind`](ProxyBuilder::bind) starts it.
#[derive(Clone, Debug)]
#[must_use = "call .bind(addr) to start the proxy"]
pub struct ProxyBuilder {
    /// `user:password` that `Proxy-Authorization: Basic` must carry.
    credentials: Option<String>,
    /// `CONNECT` targets (`host:port`, or `*`) and the status they get.
    refused: Vec<(String, u16)>,
    /// Names the proxy resolves (to loopback addresses only).
    hosts: HashMap<String, IpAddr>,
    upstream_timeout: Duration,
    idle_timeout: Duration,
}

impl Default for ProxyBuilder {
    fn default() -> ProxyBuilder {
        ProxyBuilder {
            credentials: None,
            refused: Vec::new(),
            hosts: HashMap::new(),
            upstream_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl ProxyBuilder {
    /// Requires `Proxy-Authorization: Basic` with these credentials on every request and
    /// `CONNECT`; others get 407.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some(format!("{user}:{password}"));
        self
    }

    /// Answers `CONNECT` to `target` (`host:port` as the client sends it, or `*` for any)
    /// with `status` (403 or 502, say) and closes, instead of opening a tunnel.
    pub fn refuse_connect(mut self, target: &str, status: u16) -> Self {
        self.refused.push((target.to_ascii_lowercase(), status));
        self
    }

    /// Resolves `host` to `ip`, which must be a loopback address (others are still refused
    /// with 403). Only `localhost` and mapped names are resolved: the proxy never asks DNS.
    pub fn resolve(mut self, host: &str, ip: IpAddr) -> Self {
        self.hosts.insert(host.to_ascii_lowercase(), ip);
        self
    }

    /// The longest wait to connect to an origin and read its whole response (default 30 s);
    /// past it the client gets 504.
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_timeout = timeout;
        self
    }

    /// Binds `addr` (port 0 picks a free port) and starts accepting on the runtime running
    /// on this thread. Fails outside a runtime, or if the address cannot be bound.
    pub fn bind(self, addr: SocketAddr) -> io::Result<ProxyServer> {
        if !in_runtime() {
            return Err(io::Error::other(
                "volley::server::ProxyServer::bind called outside a runtime: call it inside \
                 Runtime::block_on",
            ));
        }
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let state = Rc::new(State {
            config: self,
            stats: Cell::new(ProxyStats::default()),
            log: RefCell::new(Vec::new()),
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(0),
        });
        let accept_task = spawn(accept_loop(listener, state.clone()));
        Ok(ProxyServer {
            state,
            accept_task,
            addr,
        })
    }
}

/// What a [`ProxyServer`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted from clients.
    pub connections_accepted: u64,
    /// Requests other than `CONNECT` received (forwarded or not).
    pub requests: u64,
    /// Requests forwarded to an origin that answered.
    pub forwarded: u64,
    /// `CONNECT` requests received.
    pub connects: u64,
    /// Tunnels opened (`CONNECT` answered with 200).
    pub tunnels: u64,
    /// Answers of 407 Proxy Authentication Required.
    pub auth_failures: u64,
    /// Other refusals by the proxy itself: bad request, non-loopback target, refused
    /// `CONNECT`, origin unreachable or too slow.
    pub refused: u64,
}

/// One request as the proxy received it, and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyRequest {
    /// The method, `CONNECT` included.
    pub method: String,
    /// The request target as sent: `http://host:port/path` or, for `CONNECT`, `host:port`.
    pub target: String,
    /// The `Host` header, if any.
    pub host: Option<String>,
    /// The `Proxy-Authorization` header, if any.
    pub proxy_authorization: Option<String>,
    /// The status the client got: the origin's, or the proxy's own (200 for a tunnel).
    pub status: u16,
}

/// A minimal HTTP forward proxy on the current thread's volley runtime, for tests. Dropping
/// it, or [`shutdown`](ProxyServer::shutdown), stops it and closes every connection and
/// tunnel.
///
/// ```
/// use volley::server::{ProxyServer, Server};
/// use volley::{Client, Proxy, Runtime};
///
/// let rt = Runtime::new()?;
/// rt.block_on(async {
///     let origin = Server::bind("127.0.0.1:0".parse().unwrap())?;
///     let proxy = ProxyServer::builder()
///         .basic_auth("user", "secret")
///         .bind("127.0.0.1:0".parse().unwrap())?;
///
///     let client = Client::builder()
///         .proxy(Proxy::http(&proxy.url())?.basic_auth("user", "secret"))
///         .build();
///     let resp = client.get(origin.url("/get")).send().await?;
///     assert_eq!(resp.status(), 200);
///     assert_eq!(proxy.stats().requests, 1);
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// What it does:
///
/// - A request in absolute form (`GET http://host:port/path HTTP/1.1`) is forwarded: the proxy
///   opens a new connection to the origin, sends the request in origin form with the client's
///   headers except the hop-by-hop ones (`Connection` and the headers it names,
///   `Proxy-Authorization`, `Proxy-Connection`, `Keep-Alive`, `TE`, `Trailer`, `Upgrade`,
///   `Expect`, and the body framing, which it redoes with `Content-Length`), plus
///   `Via: 1.1 volley-proxy` and `Connection: close`. It reads the whole response, then
///   answers with it, re-framed with `Content-Length` and `Via` added. The connection to the
///   client stays open for its next request unless the client asked to close.
/// - `CONNECT host:port` opens a connection to the target, answers
///   `200 Connection Established`, and copies bytes both ways until either side closes; then
///   it closes both.
/// - Targets must be loopback: an IP literal that is a loopback address, `localhost`, or a
///   name mapped with [`ProxyBuilder::resolve`]. Anything else gets 403, without a DNS lookup
///   or a connection: it never reaches the internet. An origin that refuses the connection
///   gets 502, one that does not answer within [`ProxyBuilder::upstream_timeout`] 504.
/// - With [`ProxyBuilder::basic_auth`], a request or `CONNECT` without the right
///   `Proxy-Authorization: Basic` gets `407 Proxy Authentication Required` with
///   `Proxy-Authenticate: Basic realm="volley-proxy"` (a forwarded request's connection stays
///   open; a `CONNECT`'s closes).
/// - [`ProxyBuilder::refuse_connect`] makes `CONNECT` to a target (or to any) get a chosen
///   status, 403 or 502 say, and a close.
/// - A request in origin form (the proxy is not an origin) gets 400; a malformed head 400,
///   then a close.
/// - [`ProxyServer::stats`] counts connections, forwarded requests, `CONNECT`s, tunnels and
///   refusals; [`ProxyServer::log`] lists every request with its `Host` and
///   `Proxy-Authorization` as received and the status answered.
pub struct ProxyServer {
    state: Rc<State>,
    accept_task: JoinHandle<()>,
    addr: SocketAddr,
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyServer")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish()
    }
}

impl ProxyServer {
    /// A proxy with the default settings (no credentials, no refusals), bound to `addr`.
    pub fn bind(addr: SocketAddr) -> io::Result<ProxyServer> {
        ProxyBuilder::default().bind(addr)
    }

    /// Starts configuring a proxy.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{local_addr}`: the proxy URL to give a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> ProxyStats {
        self.state.stats.get()
    }

    /// Every request received so far (up to 10,000), in order.
    pub fn log(&self) -> Vec<ProxyRequest> {
        self.state.log.borrow().clone()
    }

    /// Stops the proxy: the listener closes, and every connection and tunnel with it.
    pub fn shutdown(&self) {
        self.accept_task.abort();
        let conns = std::mem::take(&mut *self.state.conns.borrow_mut());
        for task in conns.into_values() {
            task.abort();
        }
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Shared by the handle, the accept loop and the connections.
#[derive(Debug)]
struct State {
    config: ProxyBuilder,
    stats: Cell<ProxyStats>,
    log: RefCell<Vec<ProxyRequest>>,
    conns: RefCell<HashMap<u64, JoinHandle<()>>>,
    next_conn: Cell<u64>,
}

impl State {
    fn count(&self, f: impl FnOnce(&mut ProxyStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    fn record(&self, entry: ProxyRequest) {
        let mut log = self.log.borrow_mut();
        if log.len() < MAX_LOG {
            log.push(entry);
        }
    }

    /// Whether `request` carries the credentials required, if any.
    fn authorized(&self, request: &Request) -> bool {
        let Some(want) = &self.config.credentials else {
            return true;
        };
        let Some(value) = request.header("proxy-authorization") else {
            return false;
        };
        let value = value.trim();
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("basic") => {
                base64_decode(token.trim()).is_some_and(|got| got == want.as_bytes())
            }
            _ => false,
        }
    }

    /// The loopback address to connect to for `url`'s host and port, or why not.
    fn resolve(&self, url: &Url) -> Result<SocketAddr, String> {
        let port = url.port_or_known_default().ok_or("no port")?;
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(Host::Domain(name)) => match self.config.hosts.get(name) {
                Some(ip) => *ip,
                None if name == "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
                None => {
                    return Err(format!(
                        "{name} is not a name this proxy resolves: it forwards to loopback only"
                    ))
                }
            },
            None => return Err("no host".into()),
        };
        if !ip.is_loopback() {
            return Err(format!(
                "{ip} is not a loopback address: this proxy forwards to loopback only"
            ));
        }
        Ok(SocketAddr::new(ip, port))
    }
}

/// Accepts clients until the task is aborted, spawning a task for each.
async fn accept_loop(mut listener: TcpListener, state: Rc<State>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // EMFILE and the like: the listener backs off by itself.
            continue;
        };
        let _ = stream.set_nodelay(true);
        state.count(|s| s.connections_accepted += 1);
        let id = state.next_conn.get();
        state.next_conn.set(id + 1);
        let guard = ConnGuard {
            state: state.clone(),
            id,
        };
        let conn_state = state.clone();
        let task = spawn(async move {
            let _guard = guard;
            serve(conn_state, stream, peer).await;
        });
        if !task.is_finished() {
            state.conns.borrow_mut().insert(id, task);
        }
    }
}

/// Forgets a connection's task when it ends.
struct ConnGuard {
    state: Rc<State>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let removed = match self.state.conns.try_borrow_mut() {
            Ok(mut conns) => conns.remove(&self.id),
            Err(_) => None,
        };
        drop(removed); // outside the borrow
    }
}

/// An answer to send: a status line and headers (without the blank line), and a body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    /// The proxy's own answer: `text` as a plain-text body.
    fn own(status: u16, extra: &[(&str, &str)], text: &str) -> Answer {
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nServer: volley-proxy\r\nContent-Type: text/plain; \
             charset=utf-8\r\nContent-Length: {}\r\n",
            super::response::reason(status),
            text.len()
        );
        for (name, value) in extra {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        Answer {
            status,
            head,
            body: text.as_bytes().to_vec(),
        }
    }

    fn encode(self, close: bool) -> Vec<u8> {
        let mut out = self.head.into_bytes();
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Serves one client connection: forwarded requests until one closes it, or one `CONNECT`.
async fn serve(state: Rc<State>, mut stream: TcpStream, peer: SocketAddr) {
    let local = stream.local_addr().unwrap_or(peer);
    let mut buf = Vec::new();
    loop {
        let read = timeout(
            state.config.idle_timeout,
            read_head(&mut stream, &mut buf, peer, local),
        )
        .await;
        let request = match read {
            Ok(Ok(Some(request))) => request,
            Ok(Err(status)) => {
                state.count(|s| s.refused += 1);
                let answer = Answer::own(status, &[], "malformed or oversized request head\n");
                let _ = stream.write_all(&answer.encode(true)).await;
                return linger(stream).await;
            }
            _ => return, // timeout, close or failure between requests
        };
        let connect = request.method.eq_ignore_ascii_case("CONNECT");
        state.count(|s| match connect {
            true => s.connects += 1,
            false => s.requests += 1,
        });
        let mut entry = ProxyRequest {
            method: request.method.clone(),
            target: request.target.clone(),
            host: request.header("host").map(str::to_owned),
            proxy_authorization: request.header("proxy-authorization").map(str::to_owned),
            status: 0,
        };
        if connect {
            return tunnel(&state, stream, buf, &request, entry).await;
        }
        let mut request = request;
        if let Err(status) = read_body(&mut stream, &mut buf, &mut request).await {
            state.count(|s| s.refused += 1);
            entry.status = status;
            state.record(entry);
            let answer = Answer::own(status, &[], "bad request body\n");
            let _ = stream.write_all(&answer.encode(true)).await;
            return linger(stream).await;
        }
        let answer = if state.authorized(&request) {
            forward(&state, &request).await
        } else {
            state.count(|s| s.auth_failures += 1);
            proxy_auth_required()
        };
        entry.status = answer.status;
        state.record(entry);
        let close = !request.keep_alive;
        if stream.write_all(&answer.encode(close)).await.is_err() {
            return;
        }
        if close {
            return linger(stream).await;
        }
    }
}

fn proxy_auth_required() -> Answer {
    Answer::own(
        407,
        &[("Proxy-Authenticate", "Basic realm=\"volley-proxy\"")],
        "proxy authentication required\n",
    )
}

/// Reads more bytes onto `buf`. 0: the peer closed.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 8 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Reads the next request head off the front of `buf`. `Ok(None)` if the client closed (or
/// failed) first; `Err(status)` for a malformed or oversized head.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Option<Request>, u16> {
    loop {
        if !buf.is_empty() {
            match parse_head(buf, peer, local) {
                Ok(Some((request, len))) => {
                    buf.drain(..len);
                    return Ok(Some(request));
                }
                Ok(None) if buf.len() >= MAX_HEAD => return Err(431),
                Ok(None) => {}
                Err(_) => return Err(400),
            }
        }
        match read_more(stream, buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Reads the request's body into `request.body`, as its framing says. `Err(status)` if it
/// is malformed, too large, or cut short.
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    request: &mut Request,
) -> Result<(), u16> {
    if request.framing != BodyFraming::None && request.expects_continue() && buf.is_empty() {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|_| 400u16)?;
    }
    match request.framing {
        BodyFraming::None => Ok(()),
        BodyFraming::Length(n) => {
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= MAX_MESSAGE)
                .ok_or(413u16)?;
            while buf.len() < n {
                if read_more(stream, buf).await.unwrap_or(0) == 0 {
                    return Err(400);
                }
            }
            request.body = buf.drain(..n).collect();
            Ok(())
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut body = Vec::new();
            loop {
                let (used, done) = decoder
                    .decode(buf, &mut body, MAX_MESSAGE)
                    .map_err(|_| 400u16)?;
                buf.drain(..used);
                if done {
                    request.body = body;
                    return Ok(());
                }
                if read_more(stream, buf).await.unwrap_or(0) == 0 {
                    return Err(400);
                }
            }
        }
    }
}

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1), plus the
/// framing, which the proxy redoes.
fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    const HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection_tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
}

/// The tokens of every `Connection` header among `headers`.
fn connection_tokens<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    headers
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| value.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Forwards an absolute-form request to its origin and returns the answer for the client.
async fn forward(state: &State, request: &Request) -> Answer {
    let refuse = |status: u16, why: &str| {
        state.count(|s| s.refused += 1);
        Answer::own(status, &[], &format!("{why}\n"))
    };
    let target = request.target.as_str();
    let url = match Url::parse(target) {
        Ok(url) if url.scheme() == "http" && target.starts_with("http://") => url,
        _ => {
            return refuse(
                400,
                "this is a proxy: send an absolute-form http:// request target, or CONNECT",
            )
        }
    };
    let addr = match state.resolve(&url) {
        Ok(addr) => addr,
        Err(why) => return refuse(403, &why),
    };
    let head = upstream_head(request, &url);
    let limit = state.config.upstream_timeout;
    let exchange = async {
        let mut upstream = TcpStream::connect(addr)
            .await
            .map_err(|e| (502, format!("cannot connect to {addr}: {e}")))?;
        let _ = upstream.set_nodelay(true);
        let mut message = head.into_bytes();
        message.extend_from_slice(&request.body);
        upstream
            .write_all(&message)
            .await
            .map_err(|e| (502, format!("cannot send to {addr}: {e}")))?;
        let mut response = Vec::new();
        while read_more(&mut upstream, &mut response)
            .await
            .map_err(|e| (502, format!("cannot read from {addr}: {e}")))?
            > 0
        {
            if response.len() > MAX_MESSAGE {
                return Err((502, format!("the response from {addr} is too large")));
            }
        }
        Ok(response)
    };
    let response = match timeout(limit, exchange).await {
        Ok(Ok(response)) => response,
        Ok(Err((status, why))) => return refuse(status, &why),
        Err(_) => {
            return refuse(
                504,
                &format!("no complete response from {addr} in {limit:?}"),
            )
        }
    };
    match relay(&request.method, &response) {
        Ok(answer) => {
            state.count(|s| s.forwarded += 1);
            answer
        }
        Err(why) => refuse(502, &format!("bad response from {addr}: {why}")),
    }
}

/// The request head to send to the origin: origin form, end-to-end headers, `Via`, and
/// `Connection: close` (the proxy reads the response to its end).
fn upstream_head(request: &Request, url: &Url) -> String {
    let target = request.target.split('#').next().unwrap_or("");
    let after_scheme = &target[target.find("://").map_or(0, |i| i + 3)..];
    let origin_form = match after_scheme.find(['/', '?']) {
        Some(i) if after_scheme[i..].starts_with('?') => format!("/{}", &after_scheme[i..]),
        Some(i) => after_scheme[i..].to_owned(),
        None => "/".to_owned(),
    };
    let mut head = format!("{} {origin_form} HTTP/1.1\r\n", request.method);
    let pairs = || {
        request
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    };
    let tokens = connection_tokens(pairs());
    for (name, value) in pairs() {
        if !is_hop_by_hop(name, &tokens) {
            let _ = write!(head, "{name}: {value}\r\n");
        }
    }
    if request.header("host").is_none() {
        let host = url.host_str().unwrap_or("");
        match url.port() {
            Some(port) => {
                let _ = write!(head, "Host: {host}:{port}\r\n");
            }
            None => {
                let _ = write!(head, "Host: {host}\r\n");
            }
        }
    }
    let _ = write!(head, "Via: {VIA}\r\nConnection: close\r\n");
    if request.framing != BodyFraming::None || !request.body.is_empty() {
        let _ = write!(head, "Content-Length: {}\r\n", request.body.len());
    }
    head.push_str("\r\n");
    head
}

/// The origin's whole response (read to its close), as an answer for the client: interim
/// responses dropped, hop-by-hop headers dropped, the body re-framed with `Content-Length`.
fn relay(method: &str, raw: &[u8]) -> Result<Answer, String> {
    let mut rest = raw;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let len = match parsed.parse(rest) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Err("the response head is cut short".into()),
            Err(e) => return Err(format!("malformed response head: {e}")),
        };
        let status = parsed.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            rest = &rest[len..];
            continue;
        }
        let pairs: Vec<(&str, String)> = parsed
            .headers
            .iter()
            .map(|h| (h.name, String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        let tokens = connection_tokens(pairs.iter().map(|(n, v)| (*n, v.as_str())));
        let chunked = pairs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|(_, v)| v.split(','))
            .last()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
        let length = pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim().parse::<usize>())
            .transpose()
            .map_err(|_| "invalid Content-Length")?;
        let head_only = method.eq_ignore_ascii_case("HEAD");
        let bodiless = head_only || status < 200 || status == 204 || status == 304;
        let raw_body = &rest[len..];
        let body = if bodiless {
            Vec::new()
        } else if chunked {
            let mut body = Vec::new();
            let (_, done) = ChunkedDecoder::new()
                .decode(raw_body, &mut body, MAX_MESSAGE)
                .map_err(|_| "malformed chunked body")?;
            if !done {
                return Err("the chunked body is cut short".into());
            }
            body
        } else if let Some(n) = length {
            raw_body
                .get(..n)
                .ok_or("the body is shorter than its Content-Length")?
                .to_vec()
        } else {
            raw_body.to_vec()
        };
        let reason = parsed.reason.unwrap_or("");
        let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
        for (name, value) in &pairs {
            // A HEAD response keeps the length of the body it describes.
            let keep_length = head_only && name.eq_ignore_ascii_case("content-length");
            if keep_length || !is_hop_by_hop(name, &tokens) {
                let _ = write!(head, "{name}: {value}\r\n");
            }
        }
        let _ = write!(head, "Via: {VIA}\r\n");
        if !bodiless {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
        return Ok(Answer { status, head, body });
    }
}

/// Answers a `CONNECT`: a refusal, or a tunnel until either side closes.
async fn tunnel(
    state: &State,
    mut client: TcpStream,
    early: Vec<u8>,
    request: &Request,
    mut entry: ProxyRequest,
) {
    let target = request.target.to_ascii_lowercase();
    let refusal = if !state.authorized(request) {
        state.count(|s| s.auth_failures += 1);
        Err(proxy_auth_required())
    } else if let Some(&(_, status)) = state
        .config
        .refused
        .iter()
        .find(|(t, _)| t == "*" || *t == target)
    {
        state.count(|s| s.refused += 1);
        let why = format!("CONNECT to {target} refused by configuration\n");
        Err(Answer::own(status, &[], &why))
    } else {
        match connect_target(state, &target).await {
            Ok(upstream) => Ok(upstream),
            Err((status, why)) => {
                state.count(|s| s.refused += 1);
                Err(Answer::own(status, &[], &format!("{why}\n")))
            }
        }
    };
    let mut upstream = match refusal {
        Ok(upstream) => upstream,
        Err(answer) => {
            entry.status = answer.status;
            state.record(entry);
            let _ = client.write_all(&answer.encode(true)).await;
            return linger(client).await;
        }
    };
    entry.status = 200;
    state.record(entry);
    state.count(|s| s.tunnels += 1);
    let established = b"HTTP/1.1 200 Connection Established\r\nVia: 1.1 volley-proxy\r\n\r\n";
    if client.write_all(established).await.is_err() {
        return;
    }
    // Bytes the client sent after the CONNECT head, without waiting for the answer.
    if !early.is_empty() && upstream.write_all(&early).await.is_err() {
        return;
    }
    splice(&mut client, &mut upstream).await;
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

/// Connects to a `CONNECT` target (`host:port`, a port required), loopback only.
async fn connect_target(state: &State, target: &str) -> Result<TcpStream, (u16, String)> {
    let has_port = target
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    let url = match Url::parse(&format!("http://{target}/")) {
        Ok(url) if has_port => url,
        _ => {
            return Err((
                400,
                format!("bad CONNECT target {target:?}: want host:port"),
            ))
        }
    };
    let addr = state.resolve(&url).map_err(|why| (403, why))?;
    match timeout(state.config.upstream_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err((502, format!("cannot connect to {addr}: {e}"))),
        Err(_) => Err((504, format!("no connection to {addr}"))),
    }
}

/// Bytes read from one side and not yet written to the other.
struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            buf: vec![0; 16 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Moves bytes from `from` to `to` until one would block (`Pending`), or `from` closes or
    /// either fails (`Ready`). At most `budget` reads, so that a busy tunnel lets other tasks
    /// run: `Ready(false)` when the budget is spent.
    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut TcpStream,
        to: &mut TcpStream,
        budget: &mut u32,
    ) -> Poll<bool> {
        loop {
            while self.start < self.end {
                match to.poll_write(cx, &self.buf[self.start..self.end]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(true),
                    Poll::Ready(Ok(n)) => self.start += n,
                    Poll::Pending => return Poll::Pending,
                }
            }
            if *budget == 0 {
                return Poll::Ready(false);
            }
            *budget -= 1;
            match from.poll_read(cx, &mut self.buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(true),
                Poll::Ready(Ok(n)) => {
                    self.start = 0;
                    self.end = n;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Copies bytes both ways between `a` and `b` until either side closes or fails.
async fn splice(a: &mut TcpStream, b: &mut TcpStream) {
    let mut a_to_b = Pipe::new();
    let mut b_to_a = Pipe::new();
    poll_fn(|cx| {
        let mut budget = 64;
        let forward = a_to_b.poll_copy(cx, a, b, &mut budget);
        let backward = b_to_a.poll_copy(cx, b, a, &mut budget);
        match (forward, backward) {
            (Poll::Ready(true), _) | (_, Poll::Ready(true)) => Poll::Ready(()),
            (Poll::Ready(false), _) | (_, Poll::Ready(false)) => {
                // Out of budget with work left: run again after the other tasks.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => Poll::Pending,
        }
    })
    .await
}

/// Closes gracefully: FIN, then what the client still sends is read and dropped until it
/// closes too or 2 s pass, so that it reads the answer rather than a reset.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(2) {
        match timeout(Duration::from_secs(2), stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_responses_reframed() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close, x-hop\r\n\
                    X-Hop: 1\r\nX-Keep: 2\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n0\r\n\r\n";
        let answer = relay("GET", raw).unwrap();
        let bytes = String::from_utf8(answer.encode(false)).unwrap();
        assert_eq!(
            bytes,
            "HTTP/1.1 200 OK\r\nX-Keep: 2\r\nVia: 1.1 volley-proxy\r\nContent-Length: 5\r\n\r\nhello"
        );
        let head = relay("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n").unwrap();
        let bytes = String::from_utf8(head.encode(true)).unwrap();
        assert_eq!(
            bytes,
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nVia: 1.1 volley-proxy\r\n\
             Connection: close\r\n\r\n"
        );
        assert!(relay("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert!(relay("GET", b"garbage\r\n\r\n").is_err());
        let until_close = relay("GET", b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!(until_close.body, b"all of it");
    }
}
