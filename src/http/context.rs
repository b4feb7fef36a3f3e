//! [`ClientContext`]: what a client's clones and its requests share, the [`Config`] and what
//! was made from it once when the client was built (the idle pool, the DNS cache, the proxy
//! routing table, the TLS connector). It sits below the request flow, so that `policy.rs`
//! and `exchange.rs` take it without knowing the [`Client`](crate::Client) handle.

use std::cell::RefCell;

use super::config::Config;
use super::cookies::Cookies;
use super::error::Error;
use super::names::DnsCache;
use super::pool::PoolHandle;
use super::proxy::ProxyRoutes;

/// The state behind a [`Client`](crate::Client) (in an `Rc`, shared by its clones).
#[derive(Debug)]
pub(crate) struct ClientContext {
    pub(crate) config: Config,
    /// Idle keep-alive connections, also held by responses that will give theirs back.
    pub(crate) pool: PoolHandle,
    /// Answers of a resolver that does not cache them itself (see `names.rs`).
    pub(crate) dns: RefCell<DnsCache>,
    /// The routing table made from the proxy settings (and the environment).
    pub(crate) proxies: ProxyRoutes,
    /// The cookie store, if `cookie_store(true)` was set (feature `cookies`).
    pub(crate) cookies: Cookies,
    /// Made once from the settings and shared by every connection, so sessions resume.
    #[cfg(feature = "tls")]
    pub(crate) tls: crate::net::tls::TlsConnector,
}

impl ClientContext {
    /// Makes what the settings describe: reads the proxy environment (once), and builds the
    /// TLS connector, which fails if a TLS setting is unusable.
    pub(crate) fn new(mut config: Config) -> Result<ClientContext, Error> {
        let proxies = ProxyRoutes::new(
            &config.proxies,
            config.no_env_proxy,
            config.proxy_env.take(),
            config.proxy_tunnel,
        );
        #[cfg(feature = "tls")]
        let tls = super::tls::connector(&config.tls)?;
        Ok(ClientContext {
            pool: PoolHandle::new(config.pool_idle_timeout, config.pool_max_idle_per_host),
            dns: RefCell::new(DnsCache::default()),
            proxies,
            #[cfg(feature = "cookies")]
            cookies: Cookies::new(config.cookie_store),
            #[cfg(not(feature = "cookies"))]
            cookies: Cookies,
            #[cfg(feature = "tls")]
            tls,
            config,
        })
    }
}
