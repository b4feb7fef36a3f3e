//! Name resolution for the client: IP literals directly, fixed mappings (like curl's
//! `--resolve`), then a [`Resolve`] implementation, by default the
//! [`NativeResolver`] on the reactor ([`Resolver::native`]); the
//! system's `getaddrinfo` on a helper thread ([`SystemResolver`], [`Resolver::system`]) is the
//! option for set-ups that need NSS.
//!
//! For a resolver that does not cache by itself (`getaddrinfo`, or one of yours), answers
//! are cached for a short fixed time ([`DNS_TTL`]), since `getaddrinfo` does not report
//! record TTLs, and the cache holds at most [`DNS_CACHE_ENTRIES`] names. A resolver that
//! caches by TTL itself ([`Resolve::caches_answers`], like the native one) bypasses this
//! cache: it would otherwise keep short-lived answers for the full [`DNS_TTL`].

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use url::{Host, Url};

use super::error::{Error, Kind};
use crate::NativeResolver;

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

/// The future a [`Resolve`] returns.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>>>>;

/// Turns a host name into addresses. Implement it to plug in a resolver of your own.
///
/// The client asks only on a cache miss, and only for names: IP literals and fixed mappings
/// never reach it. An empty list counts as "not found".
pub trait Resolve {
    /// Resolves `host`; `port` goes into the returned addresses.
    fn resolve(&self, host: &str, port: u16) -> Resolving;

    /// Whether this resolver caches answers itself, honouring the records' TTLs. When it
    /// does, the client skips its own fixed-time cache ([`DNS_TTL`]) for it, so an answer is
    /// not kept longer than its TTL. Default: `false`.
    fn caches_answers(&self) -> bool {
        false
    }
}

/// The system's resolver: `getaddrinfo` on a helper thread, so the loop never blocks. It
/// honours `/etc/hosts`, NSS modules and the system's resolver configuration.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let name = host.to_owned();
        let lookup = crate::spawn_blocking(move || {
            (name.as_str(), port).to_socket_addrs().map(Vec::from_iter)
        });
        Box::pin(async move { lookup.await? })
    }
}

/// A resolver for [`ClientBuilder::dns_resolver`](crate::ClientBuilder::dns_resolver):
/// the native one (the default), the system's, or one of your own, behind one type.
///
/// ```no_run
/// use volley::{Client, Resolver};
///
/// // Hosts that only NSS knows (LDAP, mDNS's .local, ...): ask getaddrinfo.
/// let client = Client::builder().dns_resolver(Resolver::system()).build();
/// # drop(client);
/// ```
#[derive(Clone)]
pub struct Resolver {
    inner: Rc<dyn Resolve>,
}

impl Resolver {
    /// The [`NativeResolver`] on the reactor, configured by [`NativeResolver::from_system`]
    /// when it first looks up a name (so a client that only ever sees IP addresses reads no
    /// file). The client's default.
    pub fn native() -> Resolver {
        Resolver::custom(LazyNative::default())
    }

    /// The system's resolver, `getaddrinfo`, on a helper thread: see [`SystemResolver`].
    pub fn system() -> Resolver {
        Resolver::custom(SystemResolver)
    }

    /// A resolver of your own.
    pub fn custom(resolver: impl Resolve + 'static) -> Resolver {
        Resolver {
            inner: Rc::new(resolver),
        }
    }
}

impl Default for Resolver {
    /// [`Resolver::native`].
    fn default() -> Resolver {
        Resolver::native()
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolve for Resolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        self.inner.resolve(host, port)
    }

    fn caches_answers(&self) -> bool {
        self.inner.caches_answers()
    }
}

impl From<NativeResolver> for Resolver {
    fn from(resolver: NativeResolver) -> Resolver {
        Resolver::custom(resolver)
    }
}

impl From<SystemResolver> for Resolver {
    fn from(resolver: SystemResolver) -> Resolver {
        Resolver::custom(resolver)
    }
}

/// A [`NativeResolver`] made from the system's configuration at its first lookup.
#[derive(Default)]
struct LazyNative(OnceCell<NativeResolver>);

impl Resolve for LazyNative {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        self.0
            .get_or_init(NativeResolver::from_system)
            .resolve(host, port)
    }

    fn caches_answers(&self) -> bool {
        true
    }
}

/// How the client resolves names: fixed mappings first, then the resolver.
#[derive(Clone, Default)]
pub(crate) struct Names {
    pub(crate) fixed: HashMap<String, Vec<SocketAddr>>,
    pub(crate) resolver: Resolver,
}

impl fmt::Debug for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Names")
            .field("fixed", &self.fixed)
            .finish_non_exhaustive()
    }
}

/// The addresses to try for `url`, in the order to try them, and whether a resolver was
/// asked (not for IP literals, fixed mappings or names in this cache; always for a resolver
/// with its own cache, whose hits are quick).
pub(crate) async fn resolve(
    resolver: &Names,
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
    if let Some(fixed) = resolver.fixed.get(host) {
        let addrs = fixed
            .iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect();
        return Ok((addrs, false));
    }
    let own_cache = resolver.resolver.caches_answers();
    if !own_cache {
        if let Some(addrs) = cache.borrow().get(host, port) {
            return Ok((addrs, false));
        }
    }
    let addrs = match resolver.resolver.resolve(host, port).await {
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
