//! The client's name layer: IP literals directly, fixed mappings (like curl's `--resolve`),
//! then the client's [`Resolver`](crate::Resolver) (by default the
//! [`NativeResolver`](crate::NativeResolver) on the reactor; see `dns/`), with a small cache
//! in front of resolvers that do not cache.
//!
//! For a resolver that does not cache by itself (`getaddrinfo`, or one of yours), answers
//! are cached for a short fixed time ([`Config::DNS_TTL`]), since `getaddrinfo` does not
//! report record TTLs, and the cache holds at most [`Config::DNS_CACHE_ENTRIES`] names. A
//! resolver that caches by TTL itself ([`Resolve::caches_answers`], like the native one)
//! bypasses this cache: it would otherwise keep short-lived answers for the full
//! [`Config::DNS_TTL`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use url::{Host, Url};

use super::config::Config;
use super::error::{Error, Kind};
use crate::dns::resolve::Resolve;

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
        if self.entries.len() >= Config::DNS_CACHE_ENTRIES {
            self.entries.retain(|_, (_, expires)| *expires > now);
            if self.entries.len() >= Config::DNS_CACHE_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries
            .insert((host, port), (addrs, now + Config::DNS_TTL));
    }
}

/// The addresses to try for `url`, in the order to try them, and whether a resolver was
/// asked (not for IP literals, fixed mappings or names in this cache; always for a resolver
/// with its own cache, whose hits are quick).
pub(crate) async fn resolve(
    config: &Config,
    cache: &std::cell::RefCell<DnsCache>,
    url: &Url,
) -> Result<(Rc<[SocketAddr]>, bool), Error> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Error::new(Kind::InvalidUrl(url.to_string())).with_source("no port"))?;
    let host = match url.host() {
        Some(Host::Ipv4(ip)) => return Ok((Rc::from([SocketAddr::from((ip, port))]), false)),
        Some(Host::Ipv6(ip)) => return Ok((Rc::from([SocketAddr::from((ip, port))]), false)),
        Some(Host::Domain(host)) => host,
        None => return Err(Error::new(Kind::InvalidUrl(url.to_string())).with_source("no host")),
    };
    if let Some(fixed) = config.fixed_addrs.get(host) {
        let addrs = fixed
            .iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect();
        return Ok((addrs, false));
    }
    let own_cache = config.resolver.caches_answers();
    if !own_cache {
        if let Some(addrs) = cache.borrow().get(host, port) {
            return Ok((addrs, false));
        }
    }
    let addrs = match config.resolver.resolve(host, port).await {
        Ok(addrs) if !addrs.is_empty() => addrs,
        Ok(_) => {
            let none = io::Error::new(io::ErrorKind::NotFound, "no addresses");
            return Err(Error::new(Kind::Dns).with_url(url).with_source(none));
        }
        Err(e) => return Err(Error::new(Kind::Dns).with_url(url).with_source(e)),
    };
    let addrs: Rc<[SocketAddr]> = addrs.into();
    if !own_cache {
        cache
            .borrow_mut()
            .insert(host.to_owned(), port, addrs.clone());
    }
    Ok((addrs, true))
}
