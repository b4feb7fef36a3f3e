//! [`RobotsCache`]: each origin's robots.txt, fetched once with a [`Client`], kept for a
//! day, and asked of every URL: the I/O half of the layer, over the rules of `rules.rs`.
//!
//! One fetch per origin at a time (single-flight): the first caller for an origin spawns the
//! fetch as a task of its own and every caller, the first included, waits on the origin's
//! entry, a list of wakers, until the task stores the answer; a caller that goes away never
//! cancels the fetch for the others. A guard in the task stores an answer whatever happens
//! to it (a panic, the runtime dropping it), so no waiter is left waiting.
//!
//! The answer follows RFC 9309 §2.3.1: a 2xx is parsed (its first 500 KiB); up to 5 redirects
//! are followed, and more mean no robots.txt; a 4xx means no robots.txt, so everything is
//! allowed; a 5xx, a 429, or a request that fails (connection, timeout, a broken response)
//! means robots.txt is unreachable, and the origin is deferred until a retry. §2.4: an answer
//! is kept up to 24 hours, and a file that was had once is kept past that while the origin
//! is unreachable.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use url::Url;

use super::rules::{Robots, MAX_ROBOTS_BYTES};
use crate::http::client::Client;
use crate::http::error::{Error, Kind, Limit};
use crate::http::redirect::Policy;
use crate::http::request::Request;

/// What an origin's robots.txt says, as a [`RobotsCache`] found it.
#[derive(Debug, Clone)]
pub enum RobotsStatus {
    /// A 2xx: the rules the file gives this crawler, perhaps none.
    Rules(Rc<Robots>),
    /// No robots.txt to obey, so everything is allowed (RFC 9309 §2.3.1.3); says why.
    Unavailable(Unavailable),
    /// robots.txt could not be had, so nothing may be fetched from the origin for now
    /// (RFC 9309 §2.3.1.4); says why.
    Unreachable(Unreachable),
}

/// Why an origin has no robots.txt to obey, in [`RobotsStatus::Unavailable`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Unavailable {
    /// The server answered with this status: a 4xx (but 429), or a 3xx that is not a
    /// redirect to follow (no `Location`, a 304).
    Status(StatusCode),
    /// More redirects in a row than the cache follows (5 by default).
    TooManyRedirects(usize),
    /// A redirect led somewhere that cannot be fetched (another scheme, not a URL); the
    /// error says where.
    BadRedirect(Rc<Error>),
    /// The URL has no origin to ask: it is not `http` or `https`, or has no host.
    NoOrigin,
}

/// Why an origin's robots.txt could not be had, in [`RobotsStatus::Unreachable`] and
/// [`RobotsVerdict::Deferred`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Unreachable {
    /// The server answered with this status: a 5xx, or 429 Too Many Requests.
    Status(StatusCode),
    /// The request failed: no connection, a timeout, a response that broke HTTP/1.1, a body
    /// cut short. The error says which, for which URL.
    Error(Rc<Error>),
    /// The fetch ended without an answer: its task panicked or was dropped with its runtime.
    Interrupted,
}

/// Whether a crawler may fetch a URL, from [`RobotsCache::check`].
#[derive(Debug, Clone)]
pub enum RobotsVerdict {
    /// It may: robots.txt allows it, or there is none to obey.
    Allowed {
        /// The origin's `Crawl-delay` for this crawler, capped by
        /// [`max_crawl_delay`](RobotsCacheBuilder::max_crawl_delay): the least time to leave
        /// between two requests to the origin.
        crawl_delay: Option<Duration>,
    },
    /// robots.txt disallows it.
    Disallowed,
    /// The origin's robots.txt is unreachable: fetch nothing from it for now. A check after
    /// the [`retry_interval`](RobotsCacheBuilder::retry_interval) asks again.
    Deferred(Unreachable),
}

impl RobotsVerdict {
    /// True for [`RobotsVerdict::Allowed`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, RobotsVerdict::Allowed { .. })
    }

    /// The crawl delay of an allowed URL's origin; `None` otherwise.
    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            RobotsVerdict::Allowed { crawl_delay } => *crawl_delay,
            _ => None,
        }
    }
}

impl fmt::Display for RobotsVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RobotsVerdict::Allowed { crawl_delay: None } => f.write_str("allowed by robots.txt"),
            RobotsVerdict::Allowed {
                crawl_delay: Some(delay),
            } => write!(f, "allowed by robots.txt, crawl-delay {delay:?}"),
            RobotsVerdict::Disallowed => f.write_str("disallowed by robots.txt"),
            RobotsVerdict::Deferred(why) => write!(f, "deferred: robots.txt unreachable ({why})"),
        }
    }
}

impl fmt::Display for RobotsStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RobotsStatus::Rules(robots) => {
                let n = robots.rule_count();
                let rules = if n == 1 { "rule" } else { "rules" };
                write!(f, "robots.txt with {n} {rules} for this crawler")?;
                match robots.crawl_delay() {
                    Some(delay) => write!(f, ", crawl-delay {delay:?}"),
                    None => Ok(()),
                }
            }
            RobotsStatus::Unavailable(why) => {
                write!(f, "no robots.txt to obey ({why}): everything allowed")
            }
            RobotsStatus::Unreachable(why) => {
                write!(f, "robots.txt unreachable ({why}): the origin is deferred")
            }
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Status(status) => write!(f, "{status}"),
            Unavailable::TooManyRedirects(max) => write!(f, "more than {max} redirects"),
            Unavailable::BadRedirect(e) => write!(f, "{e:#}"),
            Unavailable::NoOrigin => f.write_str("not an http or https URL with a host"),
        }
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreachable::Status(status) => write!(f, "{status}"),
            Unreachable::Error(e) => write!(f, "{e:#}"),
            Unreachable::Interrupted => f.write_str("the fetch ended without an answer"),
        }
    }
}

/// Each origin's robots.txt for one crawler: fetched once per origin with a [`Client`],
/// kept, and asked of every URL.
///
/// Cloning is cheap and shares the cache. Like the client, it belongs to the thread of its
/// runtime; its methods must run on a volley [`Runtime`](crate::Runtime).
///
/// ```
/// use volley::robots::{RobotsCache, RobotsVerdict};
/// use volley::{Client, Runtime, Url};
///
/// Runtime::new()?.block_on(async {
///     // Its robots.txt says `User-agent: *` and `Disallow: /deny`.
///     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
///     let robots = RobotsCache::new(Client::new(), "volley");
///
///     let page = Url::parse(&server.url("/html"))?;
///     assert!(robots.check(&page).await.is_allowed());
///     let denied = Url::parse(&server.url("/deny"))?;
///     assert!(matches!(robots.check(&denied).await, RobotsVerdict::Disallowed));
///     assert_eq!(robots.fetches(), 1); // one robots.txt for the origin
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RobotsCache {
    inner: Rc<Inner>,
}

struct Inner {
    client: Client,
    user_agent: String,
    settings: Settings,
    /// By origin (`scheme://host:port`).
    origins: RefCell<HashMap<String, Entry>>,
    /// robots.txt fetches started.
    fetches: Cell<u64>,
}

/// The settings of a [`RobotsCache`].
#[derive(Debug, Clone, Copy)]
struct Settings {
    max_age: Duration,
    retry_interval: Duration,
    max_crawl_delay: Duration,
    timeout: Duration,
    max_redirects: usize,
}

/// What the cache knows of one origin.
#[derive(Default)]
struct Entry {
    /// The answer, and until when it holds.
    known: Option<(RobotsStatus, Instant)>,
    /// While a fetch runs: the tasks waiting for its answer.
    waiting: Option<Vec<Waker>>,
}

impl fmt::Debug for RobotsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobotsCache")
            .field("user_agent", &self.inner.user_agent)
            .field("settings", &self.inner.settings)
            .field("origins", &self.inner.origins.borrow().len())
            .field("fetches", &self.inner.fetches.get())
            .finish()
    }
}

/// Configures a [`RobotsCache`]; from [`RobotsCache::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until it is built"]
pub struct RobotsCacheBuilder {
    client: Client,
    user_agent: String,
    settings: Settings,
}

impl RobotsCacheBuilder {
    /// How long an answer is kept before robots.txt is fetched again (default 24 hours, the
    /// most RFC 9309 §2.4 advises). A file that was had is kept past this while its origin is
    /// unreachable.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.settings.max_age = max_age;
        self
    }

    /// How long an origin whose robots.txt was unreachable stays deferred before a check
    /// fetches it again (default 60 s).
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.settings.retry_interval = interval;
        self
    }

    /// The longest `Crawl-delay` a [`RobotsVerdict`] passes on (default 30 s): a longer one
    /// is cut to this.
    pub fn max_crawl_delay(mut self, max: Duration) -> Self {
        self.settings.max_crawl_delay = max;
        self
    }

    /// The total timeout of one robots.txt fetch, redirects and body included (default
    /// 10 s). The client's connect and read timeouts apply within it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// The most redirects followed in a row (default 5, as RFC 9309 §2.3.1.2 asks); one more
    /// means there is no robots.txt to obey.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.settings.max_redirects = max;
        self
    }

    /// Builds the cache.
    pub fn build(self) -> RobotsCache {
        RobotsCache {
            inner: Rc::new(Inner {
                client: self.client,
                user_agent: self.user_agent,
                settings: self.settings,
                origins: RefCell::default(),
                fetches: Cell::new(0),
            }),
        }
    }
}

impl RobotsCache {
    /// A cache with the default settings that fetches with `client` and reads the rules for
    /// the crawler `user_agent`: its product token, such as `volley` (a version after `/` is
    /// ignored, so the client's `User-Agent` will do).
    pub fn new(client: Client, user_agent: &str) -> RobotsCache {
        RobotsCache::builder(client, user_agent).build()
    }

    /// Starts configuring a cache, as [`new`](Self::new) would make it.
    pub fn builder(client: Client, user_agent: &str) -> RobotsCacheBuilder {
        RobotsCacheBuilder {
            client,
            user_agent: user_agent.to_owned(),
            settings: Settings {
                max_age: Duration::from_secs(24 * 60 * 60),
                retry_interval: Duration::from_secs(60),
                max_crawl_delay: Duration::from_secs(30),
                timeout: Duration::from_secs(10),
                max_redirects: 5,
            },
        }
    }

    /// The crawler whose rules are read.
    pub fn user_agent(&self) -> &str {
        &self.inner.user_agent
    }

    /// How many robots.txt fetches the cache has started.
    pub fn fetches(&self) -> u64 {
        self.inner.fetches.get()
    }

    /// Whether the crawler may fetch `url`, by its origin's robots.txt: fetched on the first
    /// call for the origin (callers for the same origin wait for the one fetch), then
    /// answered from the cache.
    pub async fn check(&self, url: &Url) -> RobotsVerdict {
        let status = self.status(url).await;
        self.verdict(&status, url)
    }

    /// The verdict `status` (of `url`'s origin) gives `url`, the crawl delay capped.
    pub(crate) fn verdict(&self, status: &RobotsStatus, url: &Url) -> RobotsVerdict {
        match status {
            RobotsStatus::Rules(robots) => {
                if robots.allowed(url) {
                    RobotsVerdict::Allowed {
                        crawl_delay: robots
                            .crawl_delay()
                            .map(|d| d.min(self.inner.settings.max_crawl_delay)),
                    }
                } else {
                    RobotsVerdict::Disallowed
                }
            }
            RobotsStatus::Unavailable(_) => RobotsVerdict::Allowed { crawl_delay: None },
            RobotsStatus::Unreachable(why) => RobotsVerdict::Deferred(why.clone()),
        }
    }

    /// What `url`'s origin's robots.txt says: fetched on the first call for the origin, or
    /// again once the answer is too old; callers for the same origin wait for the one fetch.
    pub async fn status(&self, url: &Url) -> RobotsStatus {
        let Some((origin, robots_url)) = robots_url(url) else {
            return RobotsStatus::Unavailable(Unavailable::NoOrigin);
        };
        // Set once this call waits for a fetch: its answer is this call's, however short
        // the time it holds for (a zero `max_age` or `retry_interval` included).
        let mut waited = false;
        poll_fn(|cx| {
            let mut origins = self.inner.origins.borrow_mut();
            let entry = origins.entry(origin.clone()).or_default();
            if let Some((status, until)) = &entry.known {
                let fetched = waited && entry.waiting.is_none();
                if fetched || Instant::now() < *until {
                    return Poll::Ready(status.clone());
                }
            }
            waited = true;
            match &mut entry.waiting {
                Some(waiting) => {
                    if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                        waiting.push(cx.waker().clone());
                    }
                }
                None => {
                    entry.waiting = Some(vec![cx.waker().clone()]);
                    drop(origins);
                    self.spawn_fetch(origin.clone(), robots_url.clone());
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Starts the fetch of `origin`'s robots.txt as a task of its own, which stores the
    /// answer and wakes the waiting callers.
    fn spawn_fetch(&self, origin: String, url: Url) {
        self.inner.fetches.set(self.inner.fetches.get() + 1);
        let done = Done {
            inner: self.inner.clone(),
            origin,
            status: None,
        };
        let task = crate::rt::spawn(async move {
            let inner = done.inner.clone();
            done.answer(fetch(&inner.client, url, &inner.user_agent, inner.settings).await);
        });
        // Detached: it runs to its end whoever waits.
        drop(task);
    }
}

/// An origin (`scheme://host:port`) and its robots.txt URL; `None` for a URL without an
/// http(s) origin.
pub(crate) fn robots_url(url: &Url) -> Option<(String, Url)> {
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return None;
    }
    let mut robots = url.clone();
    robots.set_path("/robots.txt");
    robots.set_query(None);
    robots.set_fragment(None);
    // Never fails for an http(s) URL with a host.
    let _ = robots.set_username("");
    let _ = robots.set_password(None);
    Some((url.origin().ascii_serialization(), robots))
}

/// Stores a fetch's answer for its origin when dropped, and wakes the callers waiting for it:
/// when the fetch is over, or if its task ends without one (then the answer is
/// [`Unreachable::Interrupted`]).
struct Done {
    inner: Rc<Inner>,
    origin: String,
    status: Option<RobotsStatus>,
}

impl Done {
    /// Stores `status` as the answer, by dropping the guard.
    fn answer(mut self, status: RobotsStatus) {
        self.status = Some(status);
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        let status = self
            .status
            .take()
            .unwrap_or(RobotsStatus::Unreachable(Unreachable::Interrupted));
        let settings = self.inner.settings;
        let now = Instant::now();
        let waiting = {
            let Ok(mut origins) = self.inner.origins.try_borrow_mut() else {
                return; // only while the cache itself is being torn down mid-borrow
            };
            let entry = origins.entry(std::mem::take(&mut self.origin)).or_default();
            let keep = match (&status, entry.known.take()) {
                // §2.4: a file had before is still obeyed while the origin is unreachable.
                (RobotsStatus::Unreachable(_), Some((old, _)))
                    if !matches!(old, RobotsStatus::Unreachable(_)) =>
                {
                    (old, now + settings.retry_interval)
                }
                (RobotsStatus::Unreachable(_), _) => (status, now + settings.retry_interval),
                _ => (status, now + settings.max_age),
            };
            entry.known = Some(keep);
            entry.waiting.take().unwrap_or_default()
        };
        for waker in waiting {
            waker.wake();
        }
    }
}

/// Fetches and reads one robots.txt, as RFC 9309 §2.3.1 says.
async fn fetch(client: &Client, url: Url, user_agent: &str, settings: Settings) -> RobotsStatus {
    let mut request = Request::new(Method::GET, url);
    request.timeout = Some(settings.timeout);
    request.redirect = Some(Policy::limited(settings.max_redirects));
    let mut response = match client.execute(request).await {
        Ok(response) => response,
        Err(e) => {
            return match e.kind() {
                Kind::TooManyRedirects(max) => {
                    RobotsStatus::Unavailable(Unavailable::TooManyRedirects(*max))
                }
                // Only a redirect can lead there: the first URL is http(s) with a host.
                Kind::UnsupportedScheme(_) | Kind::InvalidUrl(_) => {
                    RobotsStatus::Unavailable(Unavailable::BadRedirect(Rc::new(e)))
                }
                _ => RobotsStatus::Unreachable(Unreachable::Error(Rc::new(e))),
            };
        }
    };
    let status = response.status();
    if !status.is_success() {
        // A small body is read so the connection can be reused; a large one closes it.
        response.discard(64 * 1024).await;
        return if status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() >= 500 {
            RobotsStatus::Unreachable(Unreachable::Status(status))
        } else {
            RobotsStatus::Unavailable(Unavailable::Status(status))
        };
    }
    // One byte more than is parsed, so the parser knows the file was cut.
    let mut body = Vec::new();
    while body.len() <= MAX_ROBOTS_BYTES {
        match response.chunk().await {
            Ok(Some(piece)) => {
                let room = MAX_ROBOTS_BYTES + 1 - body.len();
                body.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            Ok(None) => break,
            // The client's own `max_body_size` is smaller: parse what it let through.
            Err(e)
                if matches!(
                    e.kind(),
                    Kind::TooLarge {
                        what: Limit::Body,
                        ..
                    }
                ) =>
            {
                break
            }
            Err(e) => return RobotsStatus::Unreachable(Unreachable::Error(Rc::new(e))),
        }
    }
    // A body longer than that is not read further: dropping the response closes its
    // connection.
    drop(response);
    RobotsStatus::Rules(Rc::new(Robots::parse(&body, user_agent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robots_url_keeps_the_origin_only() {
        let (origin, url) =
            robots_url(&Url::parse("http://ann:pw@Example.COM:8080/a/b?q=1#f").unwrap()).unwrap();
        assert_eq!(origin, "http://example.com:8080");
        assert_eq!(url.as_str(), "http://example.com:8080/robots.txt");
        let (origin, url) = robots_url(&Url::parse("https://[::1]/x").unwrap()).unwrap();
        assert_eq!(origin, "https://[::1]");
        assert_eq!(url.as_str(), "https://[::1]/robots.txt");
        assert!(robots_url(&Url::parse("mailto:ann@example.com").unwrap()).is_none());
        assert!(robots_url(&Url::parse("file:///etc/passwd").unwrap()).is_none());
    }

    #[test]
    fn outcomes_say_what_happened() {
        let verdict = |v: RobotsVerdict| v.to_string();
        assert_eq!(
            verdict(RobotsVerdict::Allowed { crawl_delay: None }),
            "allowed by robots.txt"
        );
        assert_eq!(
            verdict(RobotsVerdict::Allowed {
                crawl_delay: Some(Duration::from_millis(1500))
            }),
            "allowed by robots.txt, crawl-delay 1.5s"
        );
        assert_eq!(
            verdict(RobotsVerdict::Disallowed),
            "disallowed by robots.txt"
        );
        assert_eq!(
            verdict(RobotsVerdict::Deferred(Unreachable::Status(
                StatusCode::SERVICE_UNAVAILABLE
            ))),
            "deferred: robots.txt unreachable (503 Service Unavailable)"
        );
        let status = |s: RobotsStatus| s.to_string();
        assert_eq!(
            status(RobotsStatus::Unavailable(Unavailable::Status(
                StatusCode::NOT_FOUND
            ))),
            "no robots.txt to obey (404 Not Found): everything allowed"
        );
        assert_eq!(
            status(RobotsStatus::Unavailable(Unavailable::TooManyRedirects(5))),
            "no robots.txt to obey (more than 5 redirects): everything allowed"
        );
        assert_eq!(
            status(RobotsStatus::Unreachable(Unreachable::Interrupted)),
            "robots.txt unreachable (the fetch ended without an answer): the origin is deferred"
        );
        let rules = Robots::parse(b"User-agent: *\nDisallow: /a\nCrawl-delay: 2\n", "x");
        assert_eq!(
            status(RobotsStatus::Rules(Rc::new(rules))),
            "robots.txt with 1 rule for this crawler, crawl-delay 2s"
        );
    }
}
