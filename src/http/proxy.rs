//! Proxies: [`Proxy`], the routing table a client builds from its proxies or from the
//! environment ([`ProxyRoutes`]), `NO_PROXY` matching ([`NoProxy`]), and the `CONNECT`
//! handshake that opens a tunnel ([`open_tunnel`]). The settings themselves (the proxies,
//! `proxy_tunnel`, `proxy_env`) are in the client's `Config`.
//!
//! The route is decided per hop, so a redirect to another host is routed afresh:
//!
//! - [`Route::Direct`]: no proxy applies. The request goes to the origin in origin form,
//!   without the proxies' credentials.
//! - [`Route::Forward`]: an `http://` URL through an HTTP proxy. The connection goes to the
//!   proxy, the request line carries the absolute form (`GET http://host:port/p?q HTTP/1.1`),
//!   `Host` stays the origin's, and the proxy's credentials go in `Proxy-Authorization`. Such
//!   connections are pooled by proxy (address and credentials), whatever the origin.
//! - [`Route::Tunnel`]: an `https://` URL, or an `http://` one with `proxy_tunnel(true)`. The
//!   connection goes to the proxy, `CONNECT host:port` (with the credentials) opens a tunnel,
//!   and after a 2xx the request goes through it in origin form, as if direct. Tunnels are
//!   pooled per proxy and origin. A 407 is [`Kind::ProxyAuth`], another status
//!   [`Kind::ProxyTunnel`].
//!
//! Errors of a proxied request up to its response head name the proxy ([`Error::proxy`]),
//! never its credentials.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::rc::Rc;

use http::header::{HeaderValue, PROXY_AUTHORIZATION, USER_AGENT};
use http::HeaderMap;
use url::{Host, Url};

use super::conn::{read_head, send_request, Conn, Deadlines};
use super::error::{Error, Kind, Phase};
use super::pool::PoolKey;
use super::proto::encode::{basic_auth_from_url, basic_auth_value, Target};
use super::timings::Clock;

/// A proxy to send requests through: an HTTP proxy for `http://` URLs, `https://` URLs, or
/// both, with optional Basic credentials and hosts to bypass it for. Give it to
/// [`ClientBuilder::proxy`](crate::ClientBuilder::proxy).
///
/// ```
/// use volley::{Client, Proxy};
///
/// let client = Client::builder()
///     .proxy(Proxy::all("http://user:secret@127.0.0.1:3128")?.no_proxy("localhost, .internal"))
///     .build();
/// # drop(client);
/// # Ok::<(), volley::Error>(())
/// ```
///
/// # How requests go through it
///
/// - An `http://` URL is sent to the proxy with the absolute form of the request target
///   (`GET http://host:port/path?query HTTP/1.1`), the origin's `Host`, and
///   `Proxy-Authorization: Basic ...` when the proxy has credentials. Connections to the
///   proxy are kept alive and pooled by the proxy's address and credentials, whatever the
///   origin. A 407 from the proxy is returned as an ordinary [`Response`](crate::Response)
///   with status 407, as reqwest and curl do.
/// - An `https://` URL goes through a tunnel: `CONNECT host:443 HTTP/1.1`, with the same
///   credentials; after a 2xx the TLS handshake with the origin runs over the tunnel (the
///   proxy sees only ciphertext), and the connection carries the request as if direct.
///   Without the `tls` feature, such a request fails with
///   [`ErrorKind::UnsupportedScheme`](crate::ErrorKind::UnsupportedScheme) once its route is
///   decided, before any byte goes to the proxy.
///   [`ClientBuilder::proxy_tunnel`](crate::ClientBuilder::proxy_tunnel) sends `http://`
///   URLs through a tunnel too, as curl's `--proxytunnel` does. Tunnels are pooled per proxy
///   and origin. A 407 answer to `CONNECT` is the error
///   [`ErrorKind::ProxyAuth`](crate::ErrorKind::ProxyAuth), any other non-2xx
///   [`ErrorKind::ProxyTunnel`](crate::ErrorKind::ProxyTunnel).
/// - The proxy's credentials go to the proxy only: in `Proxy-Authorization` on requests to a
///   forward proxy and on `CONNECT`, never on a direct request or inside a tunnel (and the
///   proxy must not pass them on). A request's own `Proxy-Authorization` header replaces
///   them: on a request to a forward proxy, and on the `CONNECT` of a tunnelled request,
///   whose request to the origin then goes without it. On a direct request it is sent as
///   given, like any header the caller sets (and dropped on redirects to another origin, as
///   the redirect [`Policy`](crate::redirect::Policy) says).
/// - Errors of a proxied request up to its response head (connecting, the tunnel, sending,
///   the head) name the proxy ([`Error::proxy`]), never its credentials. A failed tunnel is
///   a connect error ([`Error::is_connect`]); bytes a proxy sends past its answer to
///   `CONNECT` fail it too, rather than pass for the origin's response.
///
/// Only `http://` proxies are supported: an `https://` proxy URL (TLS to the proxy), a SOCKS
/// one, or any other scheme is an [`ErrorKind::InvalidProxy`](crate::ErrorKind::InvalidProxy)
/// saying so. A URL without a scheme is taken as `http://`, and without a port as port 80
/// (curl assumes 1080).
///
/// # The environment
///
/// A client built without [`ClientBuilder::proxy`](crate::ClientBuilder::proxy) or
/// [`ClientBuilder::no_proxy`](crate::ClientBuilder::no_proxy) reads these variables once,
/// when it is built (see [`ClientBuilder::proxy_env`](crate::ClientBuilder::proxy_env) to
/// read them from elsewhere):
///
/// | variable | used for |
/// |---|---|
/// | `http_proxy`, else `HTTP_PROXY` | `http://` URLs; `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set (a CGI program, where a request's `Proxy:` header would arrive as `HTTP_PROXY`: "httpoxy") |
/// | `https_proxy`, else `HTTPS_PROXY` | `https://` URLs |
/// | `all_proxy`, else `ALL_PROXY` | either, when its own variable is not set |
/// | `no_proxy`, else `NO_PROXY` | hosts that bypass all of the above |
///
/// The lowercase name wins when both are set, as in curl (reqwest and Go look at the
/// uppercase one first; curl ignores `HTTP_PROXY` altogether). An empty value counts as
/// unset. A value that is not a usable proxy (a SOCKS URL, say) is not skipped silently:
/// each request that would use it fails with `InvalidProxy`, naming the variable. Proxies
/// given to the builder ignore the environment entirely, `NO_PROXY` included, as in reqwest.
///
/// # `NO_PROXY` and [`no_proxy`](Proxy::no_proxy)
///
/// A list of entries separated by commas (or whitespace), compared with the URL's host
/// without any DNS lookup; the rules of curl and reqwest:
///
/// - `*` (as any entry) matches every host.
/// - A name matches itself and every subdomain: `example.com`, `.example.com` and
///   `*.example.com` all match `example.com` and `api.example.com`, not `badexample.com`.
///   Case and a trailing dot do not matter.
/// - An IP address (IPv6 with or without brackets) matches that address when the URL has it
///   as its host; a CIDR block (`10.0.0.0/8`, `fd00::/8`) matches the addresses in it. A name
///   never matches an address, so `localhost` does not cover `127.0.0.1`: nothing bypasses
///   the proxy by default, loopback included (Go would bypass it).
/// - An entry may end in `:port` (`example.com:8080`, `[::1]:8080`, `10.1.2.3:80`); it then
///   matches only URLs to that port (the scheme's default when the URL has none). Without a
///   port, every port matches.
/// - Anything else that does not parse is ignored.
#[derive(Clone)]
pub struct Proxy {
    intercept: Intercept,
    target: ProxyTarget,
    no_proxy: Option<NoProxy>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("for", &self.intercept)
            .field("proxy", &self.target)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl Proxy {
    /// A proxy for `http://` URLs. `url` is an `http://` proxy URL, optionally with
    /// credentials (`http://user:password@host:port`, percent-encoded as in any URL).
    pub fn http(url: &str) -> Result<Proxy, Error> {
        Proxy::new(Intercept::Http, url)
    }

    /// A proxy for `https://` URLs, reached through `CONNECT` tunnels. `url` is still an
    /// `http://` proxy URL.
    pub fn https(url: &str) -> Result<Proxy, Error> {
        Proxy::new(Intercept::Https, url)
    }

    /// A proxy for both `http://` and `https://` URLs.
    pub fn all(url: &str) -> Result<Proxy, Error> {
        Proxy::new(Intercept::All, url)
    }

    fn new(intercept: Intercept, url: &str) -> Result<Proxy, Error> {
        let target = ProxyTarget::parse(url).map_err(|why| Error::new(Kind::InvalidProxy(why)))?;
        Ok(Proxy {
            intercept,
            target,
            no_proxy: None,
        })
    }

    /// Basic credentials for the proxy, sent as `Proxy-Authorization`; they replace any from
    /// the proxy URL.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Proxy {
        self.target.auth = sensitive(&basic_auth_value(user, password));
        self
    }

    /// Hosts that do not go through this proxy, in `NO_PROXY` syntax (see the type's docs):
    /// `"localhost, .internal, 10.0.0.0/8, example.com:8080"`. They are tried against the
    /// next proxy given to the builder, and go direct if none applies.
    pub fn no_proxy(mut self, list: &str) -> Proxy {
        self.no_proxy = Some(NoProxy::parse(list));
        self
    }

    /// The proxy's address as `http://host:port`, without credentials.
    pub fn url(&self) -> &str {
        &self.target.name
    }
}

/// The URLs a proxy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intercept {
    Http,
    Https,
    All,
}

impl Intercept {
    fn covers(self, scheme: &str) -> bool {
        match self {
            Intercept::Http => scheme == "http",
            Intercept::Https => scheme == "https",
            Intercept::All => scheme == "http" || scheme == "https",
        }
    }
}

/// Where a proxy is and how to authenticate to it.
#[derive(Clone)]
pub(crate) struct ProxyTarget {
    /// `http://host:port/`, without credentials: what is resolved and connected to.
    url: Url,
    /// `http://host:port`, for messages and pool keys.
    name: String,
    /// The `Proxy-Authorization` value, marked sensitive.
    auth: Option<HeaderValue>,
}

impl fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        let auth = if self.auth.is_some() {
            " (with credentials)"
        } else {
            ""
        };
        write!(f, "{}{auth}", self.name)
    }
}

impl ProxyTarget {
    /// Parses a proxy URL; the error says why it is unusable, without its credentials.
    fn parse(input: &str) -> Result<ProxyTarget, String> {
        let text = input.trim();
        let shown = redact(text);
        if text.is_empty() {
            return Err("the proxy url is empty".into());
        }
        if text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!(
                "proxy url {shown:?} contains a space or a control character"
            ));
        }
        // `host:port` alone means an HTTP proxy, as in curl (the URL parser would take
        // `localhost:3128` as a scheme and a path).
        let full: Cow<'_, str> = match scheme_end(text) {
            Some(_) => Cow::Borrowed(text),
            None => Cow::Owned(format!("http://{text}")),
        };
        let url = Url::parse(&full).map_err(|e| format!("proxy url {shown:?}: {e}"))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(format!(
                    "proxy url {shown:?}: https:// proxies (TLS to the proxy) are not supported \
                     yet; only http:// proxies are"
                ))
            }
            s if s.starts_with("socks") => {
                return Err(format!(
                    "proxy url {shown:?}: SOCKS proxies are not supported; only http:// proxies are"
                ))
            }
            other => {
                return Err(format!(
                    "proxy url {shown:?}: unsupported proxy scheme {other:?}; only http:// \
                     proxies are supported"
                ))
            }
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host,
            _ => return Err(format!("proxy url {shown:?} has no host")),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let name = format!("http://{host}:{port}");
        let clean =
            Url::parse(&format!("{name}/")).map_err(|e| format!("proxy url {shown:?}: {e}"))?;
        let auth = basic_auth_from_url(&url).and_then(|value| sensitive(&value));
        Ok(ProxyTarget {
            url: clean,
            name,
            auth,
        })
    }

    /// The pool key part naming this proxy and its credentials (by a hash, so that the key
    /// holds no secret): connections opened with other credentials are not shared.
    fn key(&self) -> String {
        match &self.auth {
            None => self.name.clone(),
            Some(auth) => format!("{}#{:016x}", self.name, fnv1a64(auth.as_bytes())),
        }
    }
}

fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Where `text`'s `scheme://` prefix ends, if it starts with one (RFC 3986: a letter, then
/// letters, digits, `+`, `-` or `.`). A `://` further on, in a query say, is not a scheme.
fn scheme_end(text: &str) -> Option<usize> {
    let at = text.find("://")?;
    let scheme = &text.as_bytes()[..at];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(at + 3)
}

/// `text` with any userinfo replaced by `***`, for messages: everything between the scheme
/// (if any) and the last `@`, since a password may hold a `/` that hides where the host
/// starts.
fn redact(text: &str) -> String {
    let start = scheme_end(text).unwrap_or(0);
    match text[start..].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_owned(),
    }
}

/// Hosts that bypass a proxy: a parsed `NO_PROXY` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NoProxy {
    /// `*` was in the list.
    all: bool,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// A domain and its subdomains, lowercase, punycode, no leading or trailing dot.
    Domain { name: String, port: Option<u16> },
    /// One address.
    Ip { ip: IpAddr, port: Option<u16> },
    /// A CIDR block.
    Net { net: IpAddr, prefix: u8 },
}

impl NoProxy {
    /// Parses a comma- or whitespace-separated list; entries that do not parse are ignored.
    pub(crate) fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
            match entry {
                "" => {}
                "*" => out.all = true,
                entry => out.rules.extend(Rule::parse(entry)),
            }
        }
        out
    }

    /// Whether `url`'s host (and port) bypasses the proxy.
    pub(crate) fn matches(&self, url: &Url) -> bool {
        if self.all {
            return true;
        }
        let Some(host) = url.host() else {
            return false;
        };
        let port = url.port_or_known_default();
        let ip = match host {
            Host::Ipv4(a) => Some(IpAddr::V4(a)),
            Host::Ipv6(a) => Some(IpAddr::V6(a)),
            Host::Domain(_) => None,
        };
        let port_ok = |rule: &Option<u16>| rule.is_none() || *rule == port;
        self.rules.iter().any(|rule| match rule {
            Rule::Domain { name, port } => match host {
                Host::Domain(domain) => domain_matches(domain, name) && port_ok(port),
                _ => false,
            },
            Rule::Ip { ip: want, port } => ip == Some(*want) && port_ok(port),
            Rule::Net { net, prefix } => ip.is_some_and(|ip| in_net(ip, *net, *prefix)),
        })
    }
}

impl Rule {
    fn parse(entry: &str) -> Option<Rule> {
        if let Some((addr, bits)) = entry.split_once('/') {
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            let net: IpAddr = addr.parse().ok()?;
            let prefix: u8 = bits.parse().ok()?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            return (prefix <= max).then_some(Rule::Net { net, prefix });
        }
        // An IPv6 address without brackets cannot have a port.
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return Some(Rule::Ip { ip, port: None });
        }
        if let Some(rest) = entry.strip_prefix('[') {
            let (ip, after) = rest.split_once(']')?;
            let ip: Ipv6Addr = ip.parse().ok()?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?.parse().ok()?),
            };
            return Some(Rule::Ip {
                ip: IpAddr::V6(ip),
                port,
            });
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
            None => (entry, None),
        };
        let host = host
            .strip_prefix("*.")
            .or_else(|| host.strip_prefix('.'))
            .unwrap_or(host)
            .trim_end_matches('.');
        if host.is_empty() {
            return None;
        }
        // Lowercase and punycode, as the URL's own host is.
        match Host::parse(host).ok()? {
            Host::Domain(name) => Some(Rule::Domain { name, port }),
            Host::Ipv4(ip) => Some(Rule::Ip {
                ip: IpAddr::V4(ip),
                port,
            }),
            Host::Ipv6(ip) => Some(Rule::Ip {
                ip: IpAddr::V6(ip),
                port,
            }),
        }
    }
}

/// `host` is `name` or a subdomain of it (`host` is lowercase already, as URLs have it).
fn domain_matches(host: &str, name: &str) -> bool {
    let host = host.trim_end_matches('.');
    match host.strip_suffix(name) {
        Some("") => true,
        Some(rest) => rest.ends_with('.'),
        None => false,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Reads an environment variable: `None` if unset (or not UTF-8). The setting
/// [`ClientBuilder::proxy_env`](crate::ClientBuilder::proxy_env).
#[derive(Clone)]
pub(crate) struct EnvLookup(Rc<Lookup>);

type Lookup = dyn Fn(&str) -> Option<String>;

impl EnvLookup {
    pub(crate) fn new(lookup: impl Fn(&str) -> Option<String> + 'static) -> EnvLookup {
        EnvLookup(Rc::new(lookup))
    }
}

impl fmt::Debug for EnvLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<lookup>")
    }
}

/// One line of the routing table.
#[derive(Debug, Clone)]
struct Entry {
    intercept: Intercept,
    /// The proxy, or why the environment's value for it is unusable.
    target: Result<ProxyTarget, String>,
    no_proxy: Option<NoProxy>,
}

/// A client's routing table, made once from its proxy settings (and from the environment)
/// when the client is built: the first entry that applies to a URL wins.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxyRoutes {
    /// `proxy_tunnel(true)`: `http://` URLs through a proxy go through `CONNECT` too.
    tunnel_http: bool,
    routes: Vec<Entry>,
}

impl ProxyRoutes {
    /// Makes the routing table: the proxies given to the builder (`explicit`) if there are
    /// any, else (unless `no_proxy()` was called: `env_off`) the environment's, read through
    /// `env` or from the process environment. Called once, when the client is built.
    pub(crate) fn new(
        explicit: &[Proxy],
        env_off: bool,
        env: Option<EnvLookup>,
        tunnel_http: bool,
    ) -> ProxyRoutes {
        let routes = if !explicit.is_empty() {
            explicit
                .iter()
                .map(|p| Entry {
                    intercept: p.intercept,
                    target: Ok(p.target.clone()),
                    no_proxy: p.no_proxy.clone(),
                })
                .collect()
        } else if env_off {
            Vec::new()
        } else {
            match env {
                Some(lookup) => from_env(&*lookup.0),
                None => from_env(&|name| std::env::var(name).ok()),
            }
        };
        ProxyRoutes {
            tunnel_http,
            routes,
        }
    }

    /// How a request to `url` travels. An error if the proxy that applies came from an
    /// environment variable with an unusable value.
    pub(crate) fn route(&self, url: &Url) -> Result<Route<'_>, Error> {
        if self.routes.is_empty() {
            return Ok(Route::Direct);
        }
        let scheme = url.scheme();
        for entry in &self.routes {
            if !entry.intercept.covers(scheme)
                || entry.no_proxy.as_ref().is_some_and(|n| n.matches(url))
            {
                continue;
            }
            let target = entry
                .target
                .as_ref()
                .map_err(|why| Error::new(Kind::InvalidProxy(why.clone())).with_url(url))?;
            return Ok(match scheme == "https" || self.tunnel_http {
                true => Route::Tunnel(target),
                false => Route::Forward(target),
            });
        }
        Ok(Route::Direct)
    }

    /// `error` of a request to `url`, naming the proxy the request went through, if any.
    pub(crate) fn annotate(&self, error: Error, url: &Url) -> Error {
        if self.routes.is_empty() || error.proxy().is_some() {
            return error;
        }
        match self.route(url) {
            Ok(Route::Forward(proxy) | Route::Tunnel(proxy)) => error.with_proxy(&proxy.name),
            _ => error,
        }
    }
}

/// The routing table the environment gives, through `lookup`.
fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<Entry> {
    let get = |name: &'static str| {
        lookup(name)
            .filter(|value| !value.trim().is_empty())
            .map(|value| (name, value))
    };
    // httpoxy: in a CGI program, a request's `Proxy:` header arrives as `HTTP_PROXY`.
    let cgi = lookup("REQUEST_METHOD").is_some();
    let http = get("http_proxy").or_else(|| if cgi { None } else { get("HTTP_PROXY") });
    let https = get("https_proxy").or_else(|| get("HTTPS_PROXY"));
    let all = get("all_proxy").or_else(|| get("ALL_PROXY"));
    let no_proxy = get("no_proxy")
        .or_else(|| get("NO_PROXY"))
        .map(|(_, list)| NoProxy::parse(&list));
    [
        (Intercept::Http, http),
        (Intercept::Https, https),
        (Intercept::All, all),
    ]
    .into_iter()
    .filter_map(|(intercept, found)| {
        let (name, value) = found?;
        Some(Entry {
            intercept,
            target: ProxyTarget::parse(&value).map_err(|why| format!("{name}: {why}")),
            no_proxy: no_proxy.clone(),
        })
    })
    .collect()
}

/// How one request travels.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route<'a> {
    /// Straight to the origin.
    Direct,
    /// To a forward proxy, in absolute form.
    Forward(&'a ProxyTarget),
    /// Through a `CONNECT` tunnel, in origin form.
    Tunnel(&'a ProxyTarget),
}

impl<'a> Route<'a> {
    /// The form of the request target.
    pub(crate) fn target_form(&self) -> Target {
        match self {
            Route::Forward(_) => Target::Absolute,
            Route::Direct | Route::Tunnel(_) => Target::Origin,
        }
    }

    /// What to resolve and connect to: the proxy, or the origin itself.
    pub(crate) fn connect_url<'u>(&self, url: &'u Url) -> &'u Url
    where
        'a: 'u,
    {
        match self {
            Route::Direct => url,
            Route::Forward(proxy) | Route::Tunnel(proxy) => &proxy.url,
        }
    }

    /// The tunnel's proxy, when the route is one.
    pub(crate) fn tunnel(&self) -> Option<&ProxyTarget> {
        match self {
            Route::Tunnel(proxy) => Some(proxy),
            _ => None,
        }
    }

    /// The pool key for a request to `url`: the origin when direct, the proxy (whatever the
    /// origin) when forwarding, and both for a tunnel.
    pub(crate) fn pool_key(&self, url: &Url) -> Result<PoolKey, Error> {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(Error::new(Kind::InvalidUrl(url.to_string())));
        };
        Ok(match self {
            Route::Direct => PoolKey::new(url.scheme(), host, port),
            Route::Forward(proxy) => PoolKey::from_string(format!("proxy {}", proxy.key())),
            Route::Tunnel(proxy) => PoolKey::from_string(format!(
                "tunnel {} {}://{host}:{port}",
                proxy.key(),
                url.scheme()
            )),
        })
    }

    /// Adds the proxy's `Proxy-Authorization` to a request for a forward proxy, unless the
    /// request has its own. Nothing else gets the proxy's credentials: a tunnel's go in the
    /// `CONNECT` only, and so does a tunnelled request's own `Proxy-Authorization`, which is
    /// taken out of the request (it is meant for the proxy, not the origin).
    pub(crate) fn proxy_headers(&self, headers: &mut Cow<'_, HeaderMap>) {
        match self {
            Route::Forward(ProxyTarget {
                auth: Some(auth), ..
            }) if !headers.contains_key(PROXY_AUTHORIZATION) => {
                headers.to_mut().insert(PROXY_AUTHORIZATION, auth.clone());
            }
            Route::Tunnel(_) if headers.contains_key(PROXY_AUTHORIZATION) => {
                headers.to_mut().remove(PROXY_AUTHORIZATION);
            }
            _ => {}
        }
    }
}

/// Opens a tunnel to `url`'s origin through `proxy` on `conn`: `CONNECT host:port`, then the
/// proxy's answer. Runs under the connect timeout (and the total one). After `Ok`, `conn`
/// carries bytes to and from the origin, and nothing from the proxy is left in its buffer.
///
/// `headers` are the request's: its `User-Agent` goes on the `CONNECT`, and so does its own
/// `Proxy-Authorization` if it has one (else the proxy's configured credentials). Every
/// failure is a connect-phase error (the request never reached the origin): a timeout in
/// [`Phase::Connect`], a refusal [`Kind::ProxyAuth`] or [`Kind::ProxyTunnel`], anything
/// else (the proxy closed, sent garbage, a head over the limit, or bytes past its answer)
/// [`Kind::Connect`] with the cause as its source.
pub(crate) async fn open_tunnel(
    conn: &mut Conn,
    proxy: &ProxyTarget,
    url: &Url,
    headers: &HeaderMap,
    deadlines: &Deadlines,
    max_head: usize,
) -> Result<(), Error> {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(Error::new(Kind::InvalidUrl(url.to_string())));
    };
    let mut head = Vec::with_capacity(160);
    let _ = write!(
        head,
        "CONNECT {host}:{port} HTTP/1.1\r\nhost: {host}:{port}\r\n"
    );
    let credentials = headers.get(PROXY_AUTHORIZATION).or(proxy.auth.as_ref());
    for (name, value) in [
        (USER_AGENT, headers.get(USER_AGENT)),
        (PROXY_AUTHORIZATION, credentials),
    ] {
        if let Some(value) = value {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
    }
    head.extend_from_slice(b"\r\n");
    // The handshake is part of connecting: the connect timeout (and the total one) bound it
    // as a whole, and a timeout names the connect phase. Only without a connect timeout does
    // the read timeout bound each of its reads and writes.
    let inner = Deadlines {
        total: None,
        connect: None,
        read: deadlines.connect.map_or(deadlines.read, |_| None),
    };
    let handshake = async {
        send_request(conn, &[&head], &inner, url).await?;
        // The tunnel's answer is not the response: keep it out of the request's timings.
        let mut scratch = Clock::start();
        read_head(conn, &inner, url, max_head, &mut scratch)
            .await
            .map_err(|failure| failure.error)
    };
    let failed = |why: String| Error::new(Kind::Connect).with_url(url).with_source(why);
    let answer = deadlines
        .run(Phase::Connect, url, handshake)
        .await?
        .map_err(|e| {
            Error::new(Kind::Connect)
                .with_url(url)
                .with_source(NoAnswer(e))
        })?;
    match answer.status.as_u16() {
        // Anything past the answer came before the request was sent: not the origin's.
        200..=299 if !conn.buf.is_empty() => Err(failed(format!(
            "the proxy sent {} bytes after its answer to CONNECT",
            conn.buf.filled().len()
        ))),
        200..=299 => Ok(()),
        407 => Err(Error::new(Kind::ProxyAuth).with_url(url)),
        _ => Err(Error::new(Kind::ProxyTunnel(answer.status)).with_url(url)),
    }
}

/// A `CONNECT` that got no usable answer: the cause of the [`Kind::Connect`] error, with the
/// error of the exchange (a close, a timeout, an invalid head) as its own source.
#[derive(Debug)]
struct NoAnswer(Error);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reading the proxy's answer to CONNECT")
    }
}

impl std::error::Error for NoAnswer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// The `NO_PROXY` rules, entry by entry.
    #[test]
    fn no_proxy_matches() {
        let cases: &[(&str, &str, bool)] = &[
            ("example.com", "http://example.com/", true),
            ("example.com", "http://api.example.com/", true),
            ("example.com", "http://a.b.example.com:8080/", true),
            ("example.com", "http://badexample.com/", false),
            ("example.com", "http://example.com.evil/", false),
            (".example.com", "http://example.com/", true),
            (".example.com", "http://api.example.com/", true),
            ("*.example.com", "http://api.example.com/", true),
            ("EXAMPLE.com.", "http://Example.COM./", true),
            ("api.example.com", "http://example.com/", false),
            ("*", "http://anything/", true),
            ("a, *", "http://anything/", true),
            ("127.0.0.1", "http://127.0.0.1:8080/", true),
            ("127.0.0.1", "http://127.0.0.2/", false),
            ("127.0.0.1", "http://localhost/", false),
            ("localhost", "http://127.0.0.1/", false),
            ("localhost", "http://localhost:1234/", true),
            ("127.0.0.0/8", "http://127.9.9.9/", true),
            ("127.0.0.0/8", "http://128.0.0.1/", false),
            ("10.0.0.0/0", "http://1.2.3.4/", true),
            ("10.0.0.0/33", "http://10.0.0.1/", false),
            ("::1", "http://[::1]:80/", true),
            ("[::1]", "http://[::1]/", true),
            ("[::1]:8080", "http://[::1]:8080/", true),
            ("[::1]:8080", "http://[::1]:8081/", false),
            ("fd00::/8", "http://[fd12::1]/", true),
            ("fd00::/8", "http://[fe80::1]/", false),
            ("example.com:8080", "http://example.com:8080/", true),
            ("example.com:8080", "http://example.com/", false),
            ("example.com:80", "http://example.com/", true),
            ("example.com:443", "https://example.com/", true),
            ("127.0.0.1:99", "http://127.0.0.1:99/", true),
            ("127.0.0.1:99", "http://127.0.0.1:98/", false),
            ("a.test b.test", "http://b.test/", true),
            (" a.test ,, b.test ", "http://b.test/", true),
            ("example.com:x", "http://example.com/", false),
            ("", "http://example.com/", false),
            (".", "http://example.com/", false),
        ];
        for &(list, target, want) in cases {
            assert_eq!(
                NoProxy::parse(list).matches(&url(target)),
                want,
                "NO_PROXY={list:?} for {target}"
            );
        }
    }

    /// Proxy URLs: accepted forms, refused schemes, and no credentials in messages.
    #[test]
    fn parses_proxy_urls() {
        let ok = [
            ("http://127.0.0.1:3128", "http://127.0.0.1:3128", false),
            ("127.0.0.1:3128", "http://127.0.0.1:3128", false),
            ("localhost:3128", "http://localhost:3128", false),
            ("http://proxy", "http://proxy:80", false),
            (
                "HTTP://Proxy.Example:8080/ignored",
                "http://proxy.example:8080",
                false,
            ),
            ("http://u:p@[::1]:3128", "http://[::1]:3128", true),
            ("http://u@p:1", "http://p:1", true),
        ];
        for (input, name, auth) in ok {
            let target = ProxyTarget::parse(input).unwrap();
            assert_eq!(
                (target.name.as_str(), target.auth.is_some()),
                (name, auth),
                "{input}"
            );
            assert!(!format!("{target:?}").contains("u:p"));
        }
        let target = ProxyTarget::parse("http://user:pa%20ss@h:1").unwrap();
        assert_eq!(
            target.auth.unwrap(),
            basic_auth_value("user", "pa ss").as_str()
        );
        let bad = [
            ("socks5://user:secret@h:1080", "SOCKS"),
            ("http://user:se/cret@h:1", "proxy url"),
            ("socks5h://h:1080", "SOCKS"),
            ("https://h:443", "https:// proxies"),
            ("ftp://h", "unsupported proxy scheme \"ftp\""),
            ("http://", "http://"),
            ("", "empty"),
            ("http://h:1/\r\nX: y", "control"),
            ("http://h:99999", "proxy url"),
        ];
        for (input, says) in bad {
            let why = ProxyTarget::parse(input).unwrap_err();
            assert!(why.contains(says), "{input:?}: {why}");
            assert!(!why.contains("secret") && !why.contains("cret@"), "{why}");
        }
        assert_eq!(redact("socks5://u:p@h:1/x"), "socks5://***@h:1/x");
        assert_eq!(redact("http://u:p/w@h:1"), "http://***@h:1");
        assert_eq!(redact("u:p@h:1"), "***@h:1");
        assert_eq!(redact("http://h:1"), "http://h:1");
        // A `://` past the start is no scheme: the userinfo before it is still hidden.
        assert_eq!(
            redact("user:secret@proxy.test:3128/?next=http://x"),
            "***@proxy.test:3128/?next=http://x"
        );
        assert_eq!(scheme_end("http://h"), Some(7));
        assert_eq!(scheme_end("svn+ssh://h"), Some(10));
        for text in ["h:1", "u:p@h/?x=http://y", "://h", "1http://h", "a b://h"] {
            assert_eq!(scheme_end(text), None, "{text}");
        }
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    /// Which proxy the environment gives each scheme.
    fn routed(vars: &'static [(&'static str, &'static str)], target: &str) -> Option<String> {
        let config = ProxyRoutes::new(&[], false, Some(EnvLookup::new(env(vars))), false);
        match config.route(&url(target)) {
            Ok(Route::Direct) => None,
            Ok(Route::Forward(p)) => Some(format!("forward {}", p.name)),
            Ok(Route::Tunnel(p)) => Some(format!("tunnel {}", p.name)),
            Err(e) => Some(format!("error {e}")),
        }
    }

    /// Lowercase before uppercase, the scheme's own before ALL_PROXY, NO_PROXY for all,
    /// httpoxy, empty values, and unusable values as errors.
    #[test]
    fn environment_rules() {
        let f = |s: &str| Some(format!("forward http://{s}"));
        let t = |s: &str| Some(format!("tunnel http://{s}"));
        let h = "http://x.test/";
        let s = "https://x.test/";
        assert_eq!(routed(&[], h), None);
        assert_eq!(routed(&[("HTTP_PROXY", "up:1")], h), f("up:1"));
        assert_eq!(routed(&[("http_proxy", "low:1")], h), f("low:1"));
        assert_eq!(
            routed(&[("HTTP_PROXY", "up:1"), ("http_proxy", "low:1")], h),
            f("low:1")
        );
        assert_eq!(
            routed(&[("HTTP_PROXY", "up:1"), ("http_proxy", "")], h),
            f("up:1")
        );
        assert_eq!(routed(&[("HTTP_PROXY", "up:1")], s), None);
        assert_eq!(routed(&[("HTTPS_PROXY", "s:1")], s), t("s:1"));
        assert_eq!(
            routed(&[("HTTPS_PROXY", "up:1"), ("https_proxy", "low:1")], s),
            t("low:1")
        );
        assert_eq!(routed(&[("ALL_PROXY", "all:1")], h), f("all:1"));
        assert_eq!(routed(&[("ALL_PROXY", "all:1")], s), t("all:1"));
        assert_eq!(
            routed(&[("ALL_PROXY", "up:1"), ("all_proxy", "low:1")], h),
            f("low:1")
        );
        assert_eq!(
            routed(&[("ALL_PROXY", "all:1"), ("HTTP_PROXY", "h:1")], h),
            f("h:1")
        );
        assert_eq!(
            routed(&[("ALL_PROXY", "all:1"), ("HTTP_PROXY", "h:1")], s),
            t("all:1")
        );
        // httpoxy: HTTP_PROXY is ignored under CGI; the others are not.
        let cgi: &[(&str, &str)] = &[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "evil:1")];
        assert_eq!(routed(cgi, h), None);
        assert_eq!(
            routed(
                &[
                    ("REQUEST_METHOD", ""),
                    ("HTTP_PROXY", "evil:1"),
                    ("http_proxy", "ok:1")
                ],
                h
            ),
            f("ok:1")
        );
        assert_eq!(
            routed(
                &[
                    ("REQUEST_METHOD", "GET"),
                    ("HTTP_PROXY", "evil:1"),
                    ("ALL_PROXY", "all:1")
                ],
                h
            ),
            f("all:1")
        );
        // NO_PROXY: lowercase first, for every proxy.
        let np: &[(&str, &str)] = &[("ALL_PROXY", "p:1"), ("NO_PROXY", "x.test")];
        assert_eq!(routed(np, h), None);
        assert_eq!(routed(np, s), None);
        assert_eq!(routed(np, "http://y.test/"), f("p:1"));
        let both: &[(&str, &str)] = &[
            ("ALL_PROXY", "p:1"),
            ("NO_PROXY", "x.test"),
            ("no_proxy", "y.test"),
        ];
        assert_eq!(routed(both, h), f("p:1"));
        assert_eq!(routed(both, "http://y.test/"), None);
        // An unusable value fails the requests it applies to, naming the variable.
        let socks = routed(&[("ALL_PROXY", "socks5://u:secret@h:1")], h).unwrap();
        assert!(socks.starts_with("error invalid proxy for http://x.test/: ALL_PROXY: "));
        assert!(
            socks.contains("SOCKS") && !socks.contains("secret"),
            "{socks}"
        );
        assert_eq!(
            routed(&[("ALL_PROXY", "socks5://h:1")], "ftp://x.test/"),
            None
        );
    }

    /// Pool keys keep direct, forwarded and tunnelled connections apart, and forwarded ones
    /// apart by credentials.
    #[test]
    fn pool_keys() {
        let a = ProxyTarget::parse("http://p:1").unwrap();
        let b = ProxyTarget::parse("http://u:x@p:1").unwrap();
        let c = ProxyTarget::parse("http://u:y@p:1").unwrap();
        let o = url("http://o.test/x");
        let o2 = url("http://o2.test:81/");
        let key = |r: Route<'_>, u: &Url| r.pool_key(u).unwrap();
        assert_eq!(key(Route::Forward(&a), &o), key(Route::Forward(&a), &o2));
        assert_ne!(key(Route::Forward(&a), &o), key(Route::Forward(&b), &o));
        assert_ne!(key(Route::Forward(&b), &o), key(Route::Forward(&c), &o));
        assert_ne!(key(Route::Tunnel(&a), &o), key(Route::Tunnel(&a), &o2));
        assert_ne!(key(Route::Tunnel(&a), &o), key(Route::Forward(&a), &o));
        assert_ne!(key(Route::Direct, &o), key(Route::Forward(&a), &o));
        assert!(!format!("{:?}", key(Route::Forward(&b), &o)).contains("dTp4"));
    }
}
