//! Name resolution for the client: IP literals directly, names through `getaddrinfo` on a
//! helper thread ([`spawn_blocking`](crate::spawn_blocking)), with a small cache.
//!
//! The cache keeps an answer for a short fixed time ([`DNS_TTL`]), since `getaddrinfo` does
//! not report record TTLs, and holds at most [`DNS_CACHE_ENTRIES`] names.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use url::{Host, Url};

use super::error::{Error, Kind};

/// How long a resolved name is reused.
pub const DNS_TTL: Duration = Duration::from_secs(30);

/// The most names the cache holds.
pub const DNS_CACHE_ENTRIES: usize = 1024;

/// A cached answer: the addresses and when they expire.
type Answer = (Rc<[SocketAddr]>, Instant);

/// Resolved addresses by `(host, port)`.
#[derive(Debug, Default)]
pub(crate) struct DnsCache {
    entries: HashMap<(String, u16), Answer>,
}

impl DnsCache {
    fn get(&self, host: &str, port: u16) -> Option<Rc<[SocketAddr]>> {
        let (addrs, expires) = self.entries.get(&(host.to_owned(), port))?;
        (Instant::now() < *expires).then(|| addrs.clone())
    }

    fn insert(&mut self, host: String, port: u16, addrs: Rc<[SocketAddr]>) {
        let now = Instant::now();
        if self.entries.len() >= DNS_CACHE_ENTRIES {
            self.entries.retain(|_, (_, expires)| *expires > now);
            if self.entries.len() >= DNS_CACHE_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert((host, port), (addrs, now + DNS_TTL));
    }
}

/// The addresses to try for `url`, in the order to try them.
pub(crate) async fn resolve(
    cache: &std::cell::RefCell<DnsCache>,
    url: &Url,
) -> Result<Rc<[SocketAddr]>, Error> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Error::new(Kind::InvalidUrl(url.to_string())).with_source("no port"))?;
    let host = match url.host() {
        Some(Host::Ipv4(ip)) => return Ok(Rc::from([SocketAddr::from((ip, port))])),
        Some(Host::Ipv6(ip)) => return Ok(Rc::from([SocketAddr::from((ip, port))])),
        Some(Host::Domain(host)) => host,
        None => return Err(Error::new(Kind::InvalidUrl(url.to_string())).with_source("no host")),
    };
    if let Some(addrs) = cache.borrow().get(host, port) {
        return Ok(addrs);
    }
    let name = host.to_owned();
    let lookup =
        crate::spawn_blocking(move || (name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
    let addrs = match lookup.await {
        Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
        Ok(Ok(_)) => {
            return Err(Error::new(Kind::Dns)
                .with_url(url)
                .with_source(io::Error::new(io::ErrorKind::NotFound, "no addresses")))
        }
        Ok(Err(e)) => return Err(Error::new(Kind::Dns).with_url(url).with_source(e)),
        Err(e) => {
            return Err(Error::new(Kind::Dns)
                .with_url(url)
                .with_source(io::Error::from(e)))
        }
    };
    let addrs: Rc<[SocketAddr]> = addrs.into();
    cache
        .borrow_mut()
        .insert(host.to_owned(), port, addrs.clone());
    Ok(addrs)
}
