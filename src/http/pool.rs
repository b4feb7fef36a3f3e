//! [`IdlePool`]: keep-alive connections waiting for their next request, by host, and
//! [`PoolHandle`], the shared handle through which a client checks them out and a response
//! checks its connection back in.
//!
//! A connection enters only after its response body was read to the end and neither side
//! asked to close. It leaves when a request to the same scheme, host and port takes it (newest
//! first, as it is the likeliest to be alive), when it has been idle longer than the idle
//! timeout, or when the check on checkout finds that the server closed it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::proto::encode::decimal;

/// Where a connection goes: `scheme://host:port`, in one string (one allocation per request;
/// the response hands the same string back with its connection).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey(String);

impl PoolKey {
    pub(crate) fn new(scheme: &str, host: &str, port: u16) -> PoolKey {
        let mut digits = [0; 20];
        let port = decimal(port.into(), &mut digits);
        let mut key = String::with_capacity(scheme.len() + host.len() + 4 + port.len());
        for part in [scheme, "://", host, ":", port] {
            key.push_str(part);
        }
        PoolKey(key)
    }

    /// A key made elsewhere: connections to a proxy, or tunnels through one, whose keys name
    /// the proxy (see `proxy.rs`); none of them can equal a `scheme://host:port` key.
    pub(crate) fn from_string(key: String) -> PoolKey {
        PoolKey(key)
    }
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

impl Idle {
    fn expired(&self, timeout: Option<Duration>, now: Instant) -> bool {
        timeout.is_some_and(|t| now.saturating_duration_since(self.since) >= t)
    }
}

/// Idle keep-alive connections by [`PoolKey`].
#[derive(Debug)]
pub(crate) struct IdlePool {
    idle: HashMap<PoolKey, Vec<Idle>>,
    idle_timeout: Option<Duration>,
    max_per_host: usize,
    /// When expired connections of every host were last dropped.
    last_sweep: Instant,
}

/// Idle connections per host that keep their read buffer. Checkout takes the newest first, so
/// a steady keep-alive load reuses these; past them (ten thousand connections back from a
/// large batch, say) a connection goes idle without its buffer and gets a new one when bytes
/// next arrive.
const BUFFERED_IDLE_PER_HOST: usize = 64;

/// How often a check-in also sweeps other hosts' expired connections.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl IdlePool {
    pub(crate) fn new(idle_timeout: Option<Duration>, max_per_host: usize) -> IdlePool {
        IdlePool {
            idle: HashMap::new(),
            idle_timeout,
            max_per_host,
            last_sweep: Instant::now(),
        }
    }

    /// Takes the newest idle connection for `key` that has not expired.
    pub(crate) fn take(&mut self, key: &PoolKey) -> Option<Conn> {
        let now = Instant::now();
        let list = self.idle.get_mut(key)?;
        let mut found = None;
        while let Some(idle) = list.pop() {
            if !idle.expired(self.idle_timeout, now) {
                found = Some(idle.conn);
                break;
            }
        }
        // An emptied list stays, so the connection's return does not allocate it again; the
        // periodic sweep drops lists that stay empty.
        found
    }

    /// Returns a connection whose exchange completed cleanly.
    pub(crate) fn put(&mut self, key: PoolKey, conn: Conn) {
        if self.max_per_host == 0 || self.idle_timeout == Some(Duration::ZERO) {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.sweep(now);
        }
        let list = self.idle.entry(key).or_default();
        if list.len() >= self.max_per_host {
            list.remove(0); // the oldest goes
        }
        let mut conn = conn;
        if list.len() >= BUFFERED_IDLE_PER_HOST {
            conn.buf.release();
        } else {
            conn.buf.idle();
        }
        list.push(Idle { conn, since: now });
    }

    /// Drops every expired connection.
    fn sweep(&mut self, now: Instant) {
        self.last_sweep = now;
        if self.idle_timeout.is_none() {
            return;
        }
        let timeout = self.idle_timeout;
        for list in self.idle.values_mut() {
            list.retain(|i| !i.expired(timeout, now));
        }
        self.idle.retain(|_, list| !list.is_empty());
    }

    /// Number of idle connections held.
    pub(crate) fn len(&self) -> usize {
        self.idle.values().map(Vec::len).sum()
    }
}

/// A client's [`IdlePool`], shared by the client and its responses: a request checks a
/// connection out through it, and a response whose body was read to the end checks its
/// connection back in. Cloning is cheap (an `Rc`); it holds the pool, not the client.
#[derive(Debug, Clone)]
pub(crate) struct PoolHandle(Rc<RefCell<IdlePool>>);

impl PoolHandle {
    pub(crate) fn new(idle_timeout: Option<Duration>, max_per_host: usize) -> PoolHandle {
        PoolHandle(Rc::new(RefCell::new(IdlePool::new(
            idle_timeout,
            max_per_host,
        ))))
    }

    /// Checks out a live idle connection for `key`, dropping any the server has closed.
    pub(crate) async fn checkout(&self, key: &PoolKey) -> Option<Conn> {
        loop {
            let mut conn = self.0.borrow_mut().take(key)?;
            if poll_fn(|cx| Poll::Ready(conn.is_reusable(cx))).await {
                return Some(conn);
            }
        }
    }

    /// Returns a connection whose exchange completed cleanly.
    pub(crate) fn put(&self, key: PoolKey, conn: Conn) {
        self.0.borrow_mut().put(key, conn);
    }

    /// Number of idle connections held.
    pub(crate) fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::TcpStream;

    /// A connection whose read buffer holds a heap allocation with nothing unconsumed.
    fn conn_with_buffer(listener: &std::net::TcpListener) -> (Conn, std::net::TcpStream) {
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let peer = client.peer_addr().unwrap();
        let mut conn = Conn::new(TcpStream::from_std(client).unwrap(), peer);
        conn.buf.fill_for_test(b"x");
        conn.buf.consume(1);
        assert!(conn.buf.has_heap());
        (conn, server)
    }

    /// A buffer that grew for a large body is given back when its connection goes idle;
    /// a small one is kept for the next exchange.
    #[test]
    fn grown_buffers_are_given_back_when_idle() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut pool = IdlePool::new(None, usize::MAX);
        let key = PoolKey::new("http", "127.0.0.1", 80);
        let (mut grown, _server) = conn_with_buffer(&listener);
        grown.buf.fill_for_test(&[0; 40_000]);
        grown.buf.consume(40_000);
        let (small, _server2) = conn_with_buffer(&listener);
        pool.put(key.clone(), grown);
        pool.put(key.clone(), small);
        assert!(!pool.idle[&key][0].conn.buf.has_heap());
        assert!(pool.idle[&key][1].conn.buf.has_heap());
    }

    #[test]
    fn idle_connections_past_the_first_per_host_give_back_their_buffers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut pool = IdlePool::new(None, usize::MAX);
        let key = PoolKey::new("http", "127.0.0.1", 80);
        let mut servers = Vec::new();
        for _ in 0..BUFFERED_IDLE_PER_HOST + 6 {
            let (conn, server) = conn_with_buffer(&listener);
            servers.push(server);
            pool.put(key.clone(), conn);
        }
        let kept: Vec<bool> = pool.idle[&key]
            .iter()
            .map(|i| i.conn.buf.has_heap())
            .collect();
        assert_eq!(kept.len(), BUFFERED_IDLE_PER_HOST + 6);
        assert!(kept[..BUFFERED_IDLE_PER_HOST].iter().all(|&k| k));
        assert!(kept[BUFFERED_IDLE_PER_HOST..].iter().all(|&k| !k));
        // Another host starts with buffered connections again.
        let other = PoolKey::new("http", "127.0.0.2", 80);
        let (conn, _server) = conn_with_buffer(&listener);
        pool.put(other.clone(), conn);
        assert!(pool.idle[&other][0].conn.buf.has_heap());
    }
}
