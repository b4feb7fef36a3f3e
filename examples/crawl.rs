//! cargo run --release --example crawl -- [-w WORKERS] [-p PAGES] [ROBOTS] [START_URL]
//! cargo run --release --example crawl -- --hosts N [--dns-delay MS] [-w WORKERS] [-p PAGES] [ROBOTS]
//! cargo run --release --example crawl --features redis -- --frontier redis://HOST:PORT/NAME [--join | START_URL] [-w WORKERS] [ROBOTS]
//!
//! where ROBOTS is `--ignore-robots` or `--max-crawl-delay SECS`.
//!
//! The seed's crawler (seeds/004): a queue of URLs, a few workers taking from it, links pulled
//! out of each page, kept only if they stay on the start URL's host and were not seen before,
//! and a limit on the pages visited. It obeys robots.txt (see below) unless told not to.
//!
//! ```text
//! cargo run --release --example crawl                       # the embedded server's /links/200/0
//! cargo run --release --example crawl -- -p 50              # stop after 50 pages (CI)
//! cargo run --release --example crawl -- -w 10 http://127.0.0.1:8080/links/100/0
//! cargo run --release --example crawl -- --hosts 200        # 1,000 pages over 200 host names
//! cargo run --release --example crawl -- --hosts 200 --dns-delay 20   # a distant resolver
//! cargo run --release --example crawl -- --ignore-robots    # fetch what robots.txt forbids
//! cargo run --release --example crawl --features redis -- --frontier redis://127.0.0.1:6379/site
//!                                                           # one worker of a shared crawl
//! cargo test --example crawl                                # the scanner's and robots tests
//! benches/dns_crawl.sh                                      # --hosts 200 at 0, 2 and 20 ms
//! ```
//!
//! With no URL it starts the embedded httpbin-like server on a free loopback port and crawls
//! `/links/200/0`: a site of 200 pages, `/links/200/0` to `/links/200/199`, each linking to
//! the 199 others. The first page discovers the whole site; every later page finds only links
//! already seen.
//!
//! - `-w N`: N workers (default 3, as in the seed's `gather(crawl(), crawl(), crawl())`; 50
//!   with `--hosts`); with `--frontier`, N requests at once.
//! - `-p N`: visit at most N pages (default 200; with `--hosts`, the whole site). URLs that
//!   robots.txt keeps the crawl from are not counted. Ignored with `--frontier`.
//! - `--ignore-robots`: fetch every URL, whatever robots.txt says, and never ask for it.
//! - `--max-crawl-delay SECS`: the longest `Crawl-delay` obeyed (default 30; decimals allowed).
//! - `--frontier redis://HOST:PORT/NAME`: be one worker of a crawl shared through Redis by any
//!   number of processes, on any machines (feature `redis`; see "Many machines" below).
//! - `--join`: with `--frontier`, put no start URL: only work on what the frontier holds.
//!
//! Without `--frontier`, the summary ends with the most threads the process had during the
//! crawl (entries of `/proc/self/task`, sampled as each page completes; "n/a" without
//! `/proc`): one means that nothing, name resolution included, left the event loop's thread.
//!
//! # robots.txt
//!
//! Before it requests a URL, a worker asks a `volley::RobotsCache` (RFC 9309), made with the
//! crawl's client and its User-Agent product token, `volley`. The cache fetches each origin's
//! `/robots.txt` once (workers that ask at the same time wait for the one fetch) and answers:
//!
//! - allowed: the page is fetched. If the origin's robots.txt gives a `Crawl-delay` for us
//!   (capped by `--max-crawl-delay`), requests to that origin start at least that far apart:
//!   each worker books the origin's next slot and sleeps until its own.
//! - disallowed: the URL is never requested; it is counted, printed as "disallowed by
//!   robots.txt", and listed in the summary.
//! - deferred: the origin's robots.txt was unreachable (a 5xx, a 429, no connection, a
//!   timeout), so nothing of that origin may be fetched for now; the URL is printed and
//!   counted as deferred, not fetched. (A 4xx robots.txt means there is none: all allowed.)
//!
//! The embedded site's robots.txt (`User-agent: *`, `Disallow: /deny`) forbids no page of
//! `/links` or `/web`; with `--hosts` each of the N host names is an origin of its own and is
//! asked once. A redirect is followed by the client without a second check: only the URL
//! that was queued is checked.
//!
//! # Many hosts: `--hosts N`
//!
//! With `--hosts N` it starts the embedded DNS server (`volley_testserver::DnsServer`) next to the
//! HTTP one, answering every name under `web.test` with 127.0.0.1, each answer
//! `--dns-delay MS` milliseconds after its query (default 2, a resolver nearby; 20 plays one
//! further away). It then crawls the HTTP server's `/web` site: N × 5 pages spread over the
//! N host names `h0.web.test` to `h{N-1}.web.test` (page `j` lives on host `j % N`), each page
//! with about 10 absolute links to pages of the site, mostly on other hosts. The crawl stays
//! on the site (any host under `web.test`) rather than on one origin.
//!
//! The client resolves names with a `volley::NativeResolver` that asks only that server (a
//! clone kept aside reads its `DnsStats`), wrapped in a `Resolve` that times every lookup the
//! client asks for. The client asks for a name whenever it opens a connection; the resolver
//! answers from its cache (by TTL), or joins a lookup of the same name already in flight
//! (coalescing), or asks the server, an `A` and an `AAAA` query. After the crawl a DNS section
//! reports the lookups and how they were answered, the queries sent (and those the server
//! counted), the queries a resolver without cache or coalescing would have sent (two per
//! lookup not answered locally) and so how many were saved, and the lookup latency the client
//! saw: p50, p90, p99 and max over every lookup, and the mean of those that asked.
//!
//! # Many machines: `--frontier`
//!
//! ```text
//! # on every machine, the same line: the start URL is put once (the frontier deduplicates)
//! cargo run --release --example crawl --features redis -- \
//!     --frontier redis://10.0.0.5:6379/site -w 20 http://10.0.0.9:8080/links/200/0
//! cargo test --features redis --test crawl_frontier      # two worker processes, one Redis
//! ```
//!
//! With `--frontier`, the crawl's queue and its set of URLs seen live in Redis, in a
//! `volley::frontier::RedisFrontier` named NAME, and this process is one worker of a crawl
//! that any number of processes share. It puts START_URL into the frontier (putting it again,
//! from another worker, adds nothing), then runs a `volley::frontier::Worker` over a
//! `volley::threaded::Client` until the frontier is drained: it leases URLs, fetches them
//! through one threaded batch (`-w` requests at once, at most 6 to one origin), scans each
//! successful HTML page's links as above (same scanner, same resolution; the scope is said
//! below), and puts them back into the frontier, which adds only the URLs it never had: each URL is
//! fetched once by the whole crawl, whichever worker found it. robots.txt is obeyed as above
//! unless `--ignore-robots` (each of the client's loops has its own cache, so each worker
//! fetches an origin's robots.txt at most once); `--max-crawl-delay` caps `Crawl-delay`.
//!
//! Each URL's outcome is recorded in the frontier once, as a JSON line (read them with
//! `RedisFrontier::results`): `{"url":"…","status":200,"error":null,"links":39}`, where
//! `links` counts the in-scope links found on the page, and `status` is null when there was no
//! response, `error` then naming its kind (`connect`, `timeout`, `disallowed_by_robots`,
//! `robots_unreachable`, ...; such URLs count as failed in the frontier's status). The worker
//! prints a line per URL, then, when the frontier is
//! drained (nothing queued, and nothing leased by any worker), a summary of its own part: the
//! URLs it leased and fetched, the outcomes it recorded, the new links it put back, those
//! robots.txt disallowed and those that failed; it exits 0, even if it fetched nothing
//! because other workers held everything. A Redis it cannot reach (at the start, or for more
//! than 30 s later) ends it with the frontier's error, which names the Redis URL: exit 1.
//!
//! **Scope.** Every worker must decide alike which links to follow, whichever of them fetched
//! the page, so the scope is derived from the page itself: a worker keeps each page's links
//! on *that page's own origin* (the origin of the URL it leased; a page that redirected off
//! it gives none). For a crawl from START_URL, every page is on START_URL's origin, so its
//! links stay there, as in the other modes; and a worker needs nothing but the frontier to
//! join a crawl, with or without a START_URL of its own. Workers given different START_URLs
//! share one frontier without getting in each other's way: each site is crawled on its own
//! origin, by whichever worker leases its pages. `--join` starts a worker that puts nothing
//! (started before anything is put, it finds the frontier drained and ends at once); with
//! neither `--join` nor START_URL the embedded server is started, as in the other modes,
//! and its `/links/200/0` put: a demonstration for one machine (other machines cannot reach
//! this one's loopback).
//!
//! The frontier keeps each host's URLs in one shard, held by one worker at a time: a site on
//! one origin is crawled by one worker at a time (the others wait, or work on other origins),
//! so that per-origin limits, pauses and `Crawl-delay` stay exact. More workers pay off over
//! many origins. `-p` is ignored in this mode (a note says so on stderr): the crawl ends
//! when the frontier is drained. `--hosts` is for one process only. Built without the
//! `redis` feature, the example rejects `--frontier` with a usage error (exit 2).
//!
//! # How it is built
//!
//! The workers are volley tasks sharing one `Rc<RefCell<Crawl>>`: the queue of URLs to visit,
//! the set of URLs seen, and counts. No lock: everything runs on one thread, and a task is
//! never interrupted between two `.await`s, so a `borrow_mut` that does not span an `.await`
//! cannot be contended.
//!
//! The seed's worker stops as soon as the queue is empty (`asyncio.QueueEmpty`), so two of its
//! three workers quit at once, before the first page has even arrived ("No more urls!"). Here
//! an idle worker waits instead, until another worker adds links or the crawl is over: the
//! crawl is over when the queue is empty *and* no worker is fetching (nobody can add more), or
//! when the page limit is reached. Waiting is a list of wakers: a worker that finds nothing
//! to do parks its waker there, and every worker that finishes a page wakes them all.
//!
//! Why not a `Batch` from `Client::fetch_all`? A batch takes its requests from an iterator,
//! and once the iterator says `None` the batch has no more input, while a crawl's input grows
//! as pages are read. A batch fits a crawl level by level (one batch per link depth), at the
//! cost of idle slots at the end of every level; tasks and a queue fit it as it is.
//!
//! Links are found by [`scan_links`], a small scanner over the HTML's tags: the `href` of `<a>`
//! and `<area>` tags (as the seed's `soup.find_all('a')`), quoted with `"` or `'` or unquoted,
//! attribute and tag names in any case, character references such as `&amp;` decoded; comments
//! and the insides of `<script>` and `<style>` skipped; `javascript:`, `mailto:`, `tel:` and
//! `data:` links dropped. A `<base href>` changes the base URL links resolve against.
//! [`resolve_link`] then resolves each against the page's URL (`url::Url::join`), drops the
//! fragment, and keeps it only if it is http(s) and in the crawl's [`Scope`]: on the start
//! URL's origin (scheme, host, port), or with `--hosts` on any host under `web.test`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use url::Url;
use volley::robots::{RobotsCache, RobotsVerdict};
use volley::{header, Client, DnsStats, HeaderMap, NativeResolver, Resolve, Resolving, Runtime};
use volley_testserver::{DnsServer, Server};

const USAGE: &str = "usage: crawl [-w WORKERS] [-p PAGES] [ROBOTS] [START_URL]\n       \
                     crawl --hosts N [--dns-delay MS] [-w WORKERS] [-p PAGES] [ROBOTS]\n       \
                     crawl --frontier redis://HOST:PORT/NAME [--join | START_URL] \
                     [-w WORKERS] [ROBOTS]\n\
                     ROBOTS: --ignore-robots | --max-crawl-delay SECS\n\
                     --frontier: one worker of a crawl shared through Redis, until it is \
                     drained (-p is ignored); needs the `redis` feature";

const DEFAULT_WORKERS: usize = 3;
const DEFAULT_PAGES: usize = 200;
/// The embedded server's site: 200 pages that all link to one another.
const DEFAULT_START: &str = "/links/200/0";

/// `--hosts`: the domain of the site's host names, pages per host, and the defaults.
const SITE_DOMAIN: &str = "web.test";
const PAGES_PER_HOST: usize = 5;
const SITE_WORKERS: usize = 50;
const DEFAULT_DNS_DELAY_MS: u64 = 2;
/// The most hosts `--hosts` takes (the server's `/web` takes up to a million).
const MAX_HOSTS: usize = 100_000;

/// The longest `Crawl-delay` obeyed unless `--max-crawl-delay` says otherwise.
const DEFAULT_MAX_CRAWL_DELAY: Duration = Duration::from_secs(30);
/// The disallowed URLs the summary lists, at most.
const LISTED_DISALLOWED: usize = 20;

/// The longest one page may take, and the largest page read.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_PAGE_BYTES: u64 = 8 << 20;

/// The parsed command line.
#[derive(Debug, PartialEq)]
struct Args {
    workers: usize,
    pages: usize,
    start: Option<Url>,
    /// `--hosts N`: crawl the embedded server's `/web` site over N host names.
    hosts: Option<usize>,
    /// `--dns-delay MS`: how long the embedded DNS server takes to answer.
    dns_delay: Duration,
    /// `--ignore-robots`: never ask for robots.txt, fetch every URL.
    ignore_robots: bool,
    /// `--max-crawl-delay SECS`: the longest `Crawl-delay` obeyed.
    max_crawl_delay: Duration,
    /// `--frontier redis://HOST:PORT/NAME`: be a worker of the crawl in that frontier.
    #[cfg(feature = "redis")]
    frontier: Option<String>,
    /// `--join`: with `--frontier`, put no start URL.
    #[cfg(feature = "redis")]
    join: bool,
    /// Whether `-p` was given (`--frontier` ignores it, and says so).
    #[cfg(feature = "redis")]
    pages_given: bool,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut workers = None;
    let mut pages = None;
    let mut start: Option<Url> = None;
    let mut hosts = None;
    let mut dns_delay = None;
    let mut ignore_robots = false;
    let mut max_crawl_delay = None;
    #[cfg(feature = "redis")]
    let (mut frontier, mut join) = (None::<String>, false);
    let number = |name: &str, value: Option<String>, least: u64| -> Result<u64, String> {
        let value = value.ok_or_else(|| format!("{name} needs a value"))?;
        match value.parse() {
            Ok(n) if n >= least => Ok(n),
            _ if least == 0 => Err(format!("{name} wants a whole number, not {value:?}")),
            _ => Err(format!("{name} wants a positive integer, not {value:?}")),
        }
    };
    let positive = |name: &str, value| number(name, value, 1).map(|n| n as usize);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "-w" | "--workers" => workers = Some(positive("-w", argv.next())?),
            "-p" | "--pages" => pages = Some(positive("-p", argv.next())?),
            "--hosts" => hosts = Some(positive("--hosts", argv.next())?),
            "--dns-delay" => {
                let ms = number("--dns-delay", argv.next(), 0)?;
                dns_delay = Some(Duration::from_millis(ms));
            }
            "--ignore-robots" => ignore_robots = true,
            "--max-crawl-delay" => {
                let value = argv.next().ok_or("--max-crawl-delay needs a value")?;
                let secs = value
                    .parse::<f64>()
                    .ok()
                    .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                    .ok_or_else(|| {
                        format!("--max-crawl-delay wants seconds (0 or more), not {value:?}")
                    })?;
                max_crawl_delay = Some(secs);
            }
            #[cfg(feature = "redis")]
            "--frontier" => {
                let value = argv.next().ok_or("--frontier needs a value")?;
                if !value.starts_with("redis://") {
                    return Err(format!(
                        "--frontier wants redis://HOST:PORT/NAME, not {value:?}"
                    ));
                }
                frontier = Some(value);
            }
            #[cfg(feature = "redis")]
            "--join" => join = true,
            #[cfg(not(feature = "redis"))]
            flag @ ("--frontier" | "--join") => {
                return Err(format!(
                    "{flag} needs the `redis` feature, and this example was built without it: \
                     cargo run --example crawl --features redis -- {flag} ..."
                ))
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}"))
            }
            url if start.is_none() => {
                let url = Url::parse(url).map_err(|e| format!("not a URL: {url:?} ({e})"))?;
                if url.scheme() != "http" {
                    return Err(format!("{url}: volley speaks plain http:// only"));
                }
                start = Some(url);
            }
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    match (hosts, &start) {
        (Some(_), Some(_)) => {
            return Err("--hosts crawls the embedded site: give no START_URL".into())
        }
        (Some(n), None) if n > MAX_HOSTS => {
            return Err(format!("--hosts takes at most {MAX_HOSTS}"))
        }
        (None, _) if dns_delay.is_some() => return Err("--dns-delay goes with --hosts".into()),
        _ => {}
    }
    if ignore_robots && max_crawl_delay.is_some() {
        return Err("--max-crawl-delay goes with robots.txt: not with --ignore-robots".into());
    }
    #[cfg(feature = "redis")]
    match (&frontier, join, &start) {
        (Some(_), _, _) if hosts.is_some() => {
            return Err(
                "--hosts crawls the embedded site in one process: not with --frontier".into(),
            )
        }
        (None, true, _) => return Err("--join goes with --frontier".into()),
        (Some(_), true, Some(_)) => {
            return Err("--join puts no start URL: give no START_URL".into())
        }
        _ => {}
    }
    Ok(Args {
        workers: workers.unwrap_or(match hosts {
            Some(_) => SITE_WORKERS,
            None => DEFAULT_WORKERS,
        }),
        pages: pages.unwrap_or(match hosts {
            Some(n) => n * PAGES_PER_HOST,
            None => DEFAULT_PAGES,
        }),
        start,
        hosts,
        dns_delay: dns_delay.unwrap_or(Duration::from_millis(DEFAULT_DNS_DELAY_MS)),
        ignore_robots,
        max_crawl_delay: max_crawl_delay.unwrap_or(DEFAULT_MAX_CRAWL_DELAY),
        #[cfg(feature = "redis")]
        frontier,
        #[cfg(feature = "redis")]
        join,
        #[cfg(feature = "redis")]
        pages_given: pages.is_some(),
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("crawl: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // A worker of a shared crawl: its own runtime and threads (not inside this one's).
    #[cfg(feature = "redis")]
    if let Some(frontier) = &args.frontier {
        return match distributed::crawl(frontier, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("crawl: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crawl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(crawl(args)) {
        // Nothing fetched at all is a failure; some pages failing is only reported.
        Ok(report) if report.visited > 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("crawl: {message}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The crawl: a shared queue and N worker tasks
// ---------------------------------------------------------------------------------------------

/// Which links the crawl follows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scope {
    /// Links on the start URL's origin: scheme, host and port.
    Origin(url::Origin),
    /// http(s) links to any host under this domain (`--hosts`: `web.test`), any port.
    Domain(String),
}

impl Scope {
    fn contains(&self, url: &Url) -> bool {
        match self {
            Scope::Origin(origin) => url.origin() == *origin,
            Scope::Domain(domain) => {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some_and(|host| {
                        host.len() > domain.len()
                            && host.ends_with(domain.as_str())
                            && host[..host.len() - domain.len()].ends_with('.')
                    })
            }
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Origin(origin) => f.write_str(&origin.ascii_serialization()),
            Scope::Domain(domain) => write!(f, "the hosts under {domain}"),
        }
    }
}

/// What the workers share.
#[derive(Debug)]
struct Crawl {
    /// URLs seen but not yet visited, oldest first: the crawl is breadth-first.
    queue: VecDeque<Url>,
    /// Every URL ever queued, so none is queued twice.
    seen: HashSet<Url>,
    /// Where links must stay.
    scope: Scope,
    /// Pages taken from the queue so far, and the most that may be.
    taken: usize,
    limit: usize,
    /// Workers fetching a page now: while any is, more links may come.
    busy: usize,
    /// Idle workers, woken when links are added or the crawl ends.
    idle: Vec<Waker>,
    /// Counts for the summary.
    visited: usize,
    errors: usize,
    links_found: usize,
    off_site: usize,
    bytes: u64,
    /// URLs robots.txt disallows, never requested, in the order found.
    disallowed: Vec<Url>,
    /// URLs not requested because their origin's robots.txt was unreachable.
    deferred: Vec<Url>,
    /// Per origin with a `Crawl-delay`: when the next request to it may start.
    next_slot: HashMap<String, Instant>,
    /// The most threads this process had, sampled as each page completes; `None` without
    /// `/proc`.
    max_threads: Option<usize>,
}

impl Crawl {
    /// Queues `url` unless it was seen before. Returns whether it was new.
    fn offer(&mut self, url: Url) -> bool {
        if self.seen.contains(&url) {
            return false;
        }
        self.seen.insert(url.clone());
        self.queue.push_back(url);
        true
    }

    /// Gives back a URL taken from the queue but not fetched (robots.txt): it does not count
    /// towards the page limit.
    fn not_fetched(&mut self) {
        self.busy -= 1;
        self.taken -= 1;
        self.wake_idle();
    }

    /// Books the next request to `url`'s origin, `delay` after the one before: returns when
    /// it may start.
    fn book(&mut self, url: &Url, delay: Duration) -> Instant {
        let now = Instant::now();
        let slot = self
            .next_slot
            .entry(url.origin().ascii_serialization())
            .or_insert(now);
        let at = (*slot).max(now);
        *slot = at + delay;
        at
    }

    /// Wakes every idle worker, to look at the queue again.
    fn wake_idle(&mut self) {
        for waker in self.idle.drain(..) {
            waker.wake();
        }
    }

    /// Notes how many threads the process has now.
    fn sample_threads(&mut self) {
        if let Some(now) = thread_count() {
            self.max_threads = Some(self.max_threads.map_or(now, |max| max.max(now)));
        }
    }
}

/// The threads of this process now: the entries of `/proc/self/task`; `None` without `/proc`.
fn thread_count() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

/// The next URL for a worker to visit, or `None` when the crawl is over.
async fn next_url(crawl: &RefCell<Crawl>) -> Option<Url> {
    poll_fn(|cx| {
        let mut c = crawl.borrow_mut();
        if c.taken >= c.limit {
            return Poll::Ready(None); // the page limit
        }
        if let Some(url) = c.queue.pop_front() {
            c.taken += 1;
            c.busy += 1;
            return Poll::Ready(Some(url));
        }
        if c.busy == 0 {
            return Poll::Ready(None); // nothing queued and nobody left to queue more
        }
        // Woken by the next worker that finishes a page.
        c.idle.push(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// One worker: take a URL, ask robots.txt (unless `robots` is `None`), fetch it, queue its
/// new links, until the crawl is over.
async fn worker(id: usize, client: Client, robots: Option<RobotsCache>, crawl: Rc<RefCell<Crawl>>) {
    while let Some(url) = next_url(&crawl).await {
        if let Some(robots) = &robots {
            match robots.check(&url).await {
                RobotsVerdict::Allowed { crawl_delay } => {
                    if let Some(delay) = crawl_delay {
                        let at = crawl.borrow_mut().book(&url, delay);
                        volley::sleep_until(at).await;
                    }
                }
                verdict => {
                    println!("[worker {id}] {verdict}: {url}");
                    let mut c = crawl.borrow_mut();
                    match verdict {
                        RobotsVerdict::Disallowed => c.disallowed.push(url),
                        _ => c.deferred.push(url),
                    }
                    c.not_fetched();
                    continue;
                }
            }
        }
        let scope = crawl.borrow().scope.clone();
        let page = fetch_page(&client, &url, &scope).await;
        let mut c = crawl.borrow_mut();
        c.busy -= 1;
        c.sample_threads();
        match page {
            Ok(page) => {
                c.visited += 1;
                // A redirect's target is visited too: don't queue it again.
                if let Some(to) = &page.redirected_to {
                    if c.scope.contains(to) {
                        c.seen.insert(to.clone());
                    }
                }
                c.bytes += page.bytes as u64;
                c.links_found += page.links.len();
                let found = page.links.len();
                let mut new = 0;
                let mut off_site = 0;
                for link in page.links.iter().cloned() {
                    match link {
                        Some(link) => new += usize::from(c.offer(link)),
                        None => off_site += 1,
                    }
                }
                c.off_site += off_site;
                println!(
                    "[worker {id}] {} {:>6} bytes {:>4} links ({new} new) {url}{}",
                    page.status,
                    page.bytes,
                    found,
                    match &page.redirected_to {
                        Some(to) => format!(" -> {to}"),
                        None => String::new(),
                    },
                );
            }
            Err(e) => {
                c.errors += 1;
                println!("[worker {id}] error: {e:#}");
            }
        }
        // New links, or perhaps the end of the crawl: either way the idle workers must look.
        c.wake_idle();
    }
}

/// What a worker learned from one page.
#[derive(Debug)]
struct Page {
    status: u16,
    bytes: usize,
    /// The final URL, if redirects led elsewhere.
    redirected_to: Option<Url>,
    /// Each link found: the URL to visit, or `None` for a link that leaves the site.
    links: Vec<Option<Url>>,
}

/// Fetches `url` and finds its links, if it is a successful HTML page on the site.
async fn fetch_page(client: &Client, url: &Url, scope: &Scope) -> Result<Page, volley::Error> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let final_url = response.url().clone();
    let is_html = is_html(response.headers());
    let body = response.bytes().await?;
    Ok(Page {
        status: status.as_u16(),
        bytes: body.len(),
        redirected_to: (final_url != *url).then(|| final_url.clone()),
        links: page_links(status.is_success() && is_html, &final_url, &body, scope),
    })
}

/// Whether a response with these headers may be HTML: its `Content-Type` says so, or there is
/// none.
fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.contains("html"))
}

/// The links of a page whose final URL is `final_url`, if it is a successful HTML page
/// (`html`) still in `scope`, else none: each the URL to visit, or `None` for a link that
/// leaves the scope.
fn page_links(html: bool, final_url: &Url, body: &[u8], scope: &Scope) -> Vec<Option<Url>> {
    // Only the links of successful HTML pages that are still on the site count. Links are
    // ASCII in practice; any bytes of another charset become U+FFFD and do not get in the way.
    if !html || !scope.contains(final_url) {
        return Vec::new();
    }
    let html = String::from_utf8_lossy(body);
    let scan = scan_links(&html);
    let base = scan
        .base
        .and_then(|base| final_url.join(&base).ok())
        .unwrap_or_else(|| final_url.clone());
    scan.hrefs
        .iter()
        .map(|href| resolve_link(&base, href, scope))
        .collect()
}

/// What the crawl did, for the exit status and the tests.
#[derive(Debug)]
struct Report {
    visited: usize,
    /// URLs robots.txt disallowed, and URLs of origins whose robots.txt was unreachable.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    disallowed: Vec<Url>,
    #[cfg_attr(not(test), allow(dead_code))]
    deferred: Vec<Url>,
}

async fn crawl(args: Args) -> Result<Report, String> {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    // No URL: serve ourselves, on this same thread.
    let server = match &args.start {
        Some(_) => None,
        None => Some(
            Server::bind(loopback).map_err(|e| format!("cannot start the embedded server: {e}"))?,
        ),
    };
    // --hosts: a DNS server for the site's names too, and a resolver that asks only it.
    let dns = match args.hosts {
        Some(_) => Some(SiteDns::start(loopback, args.dns_delay)?),
        None => None,
    };
    if args.hosts.is_some() {
        // Hundreds of hosts mean hundreds of connections, and as many on the server's side.
        let _ = volley::raise_fd_limit();
    }
    let start = match (&args.start, &server, args.hosts) {
        (Some(url), _, _) => url.clone(),
        (None, Some(server), Some(hosts)) => {
            let port = server.local_addr().port();
            let pages = hosts * PAGES_PER_HOST;
            Url::parse(&format!(
                "http://h0.{SITE_DOMAIN}:{port}/web/{hosts}/{pages}/0"
            ))
            .expect("a valid URL")
        }
        (None, Some(server), None) => Url::parse(&server.url(DEFAULT_START)).expect("a valid URL"),
        (None, None, _) => unreachable!("a server is started when no URL is given"),
    };
    let scope = match args.hosts {
        Some(_) => Scope::Domain(SITE_DOMAIN.to_owned()),
        None => Scope::Origin(start.origin()),
    };
    let mut start_clean = start.clone();
    start_clean.set_fragment(None);

    println!(
        "crawling {start_clean} with {} workers, at most {} pages, staying on {scope}",
        args.workers, args.pages,
    );
    if let Some(dns) = &dns {
        println!(
            "resolving with a NativeResolver that asks the embedded DNS server at {} \
             (*.{SITE_DOMAIN} is 127.0.0.1, answered after {} ms)",
            dns.server.local_addr(),
            args.dns_delay.as_millis()
        );
    }
    let crawl = Rc::new(RefCell::new(Crawl {
        queue: VecDeque::new(),
        seen: HashSet::new(),
        scope,
        taken: 0,
        limit: args.pages,
        busy: 0,
        idle: Vec::new(),
        visited: 0,
        errors: 0,
        links_found: 0,
        off_site: 0,
        bytes: 0,
        disallowed: Vec::new(),
        deferred: Vec::new(),
        next_slot: HashMap::new(),
        max_threads: None,
    }));
    crawl.borrow_mut().offer(start_clean);
    crawl.borrow_mut().sample_threads();

    let mut client = Client::builder()
        .timeout(PAGE_TIMEOUT)
        .max_body_size(MAX_PAGE_BYTES);
    if let Some(dns) = &dns {
        client = client.dns_resolver(dns.timed.clone());
    }
    let client = client.build();
    // robots.txt for the crawl's own product token: the `volley` of `volley/<version>`.
    let user_agent = client
        .config()
        .default_headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("volley")
        .to_owned();
    let robots = (!args.ignore_robots).then(|| {
        RobotsCache::builder(client.clone(), &user_agent)
            .max_crawl_delay(args.max_crawl_delay)
            .build()
    });
    match &robots {
        Some(_) => println!(
            "obeying robots.txt as {} (User-Agent {user_agent}), Crawl-delay up to {:?}\n",
            user_agent.split('/').next().unwrap_or_default(),
            args.max_crawl_delay
        ),
        None => println!("ignoring robots.txt (--ignore-robots)\n"),
    }
    let started = Instant::now();
    // The seed's `asyncio.gather(crawl(), crawl(), crawl())`: spawn them all, then await them.
    let workers: Vec<_> = (1..=args.workers)
        .map(|id| volley::spawn(worker(id, client.clone(), robots.clone(), crawl.clone())))
        .collect();
    for handle in workers {
        handle
            .await
            .map_err(|e| format!("a worker task failed: {e}"))?;
    }
    let elapsed = started.elapsed();

    let c = crawl.borrow();
    let reason = if c.taken >= c.limit && !c.queue.is_empty() {
        format!(
            "stopped at the page limit ({}), {} pages still queued",
            c.limit,
            c.queue.len()
        )
    } else {
        "no more pages to visit".to_owned()
    };
    println!("\n{reason}");
    println!("  pages      {} visited, {} errors", c.visited, c.errors);
    println!(
        "  links      {} found on the pages, {} distinct URLs on {}, {} leaving it",
        c.links_found,
        c.seen.len(),
        c.scope,
        c.off_site,
    );
    println!("  bytes      {}", c.bytes);
    match &robots {
        Some(robots) => {
            let origins = robots.fetches();
            println!(
                "  robots     {} disallowed by robots.txt, {} deferred (robots.txt unreachable); \
                 robots.txt fetched for {origins} {}",
                c.disallowed.len(),
                c.deferred.len(),
                if origins == 1 { "origin" } else { "origins" },
            );
            for url in c.disallowed.iter().take(LISTED_DISALLOWED) {
                println!("             disallowed by robots.txt: {url}");
            }
            if c.disallowed.len() > LISTED_DISALLOWED {
                println!(
                    "             ... and {} more",
                    c.disallowed.len() - LISTED_DISALLOWED
                );
            }
        }
        None => println!("  robots     ignored (--ignore-robots)"),
    }
    println!(
        "  elapsed    {:.3} s ({:.0} pages/s with {} workers)",
        elapsed.as_secs_f64(),
        (c.visited + c.errors) as f64 / elapsed.as_secs_f64().max(1e-6),
        args.workers
    );
    match c.max_threads {
        Some(n) => println!("  threads    at most {n} in this process during the crawl"),
        None => println!("  threads    n/a (no /proc/self/task)"),
    }
    if let Some(dns) = &dns {
        dns.report();
    }
    Ok(Report {
        visited: c.visited,
        disallowed: c.disallowed.clone(),
        deferred: c.deferred.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// --frontier: one worker of a crawl shared through Redis
// ---------------------------------------------------------------------------------------------

/// `--frontier`: a [`volley::frontier::Worker`] over a threaded client's batch, the crawl's
/// queue and seen set in a `RedisFrontier`. See "Many machines" in the header.
#[cfg(feature = "redis")]
mod distributed {
    use super::*;
    use volley::frontier::{Frontier, Leased, Outcome, RedisFrontier, Worker};
    use volley::{threaded, ErrorKind, FetchResult};

    /// The most requests at once to one origin (a browser's limit), whatever `-w` says.
    const PER_HOST: usize = 6;

    /// What this worker saw, for its summary.
    #[derive(Debug, Default)]
    struct Counts {
        /// Responses (any status), and their bytes.
        responses: u64,
        bytes: u64,
        /// URLs robots.txt disallowed, and URLs of origins whose robots.txt was unreachable.
        disallowed: u64,
        deferred: u64,
        /// Other errors.
        failed: u64,
        /// In-scope links found on the pages (repeats included), and links leaving the scope.
        links: u64,
        off_scope: u64,
    }

    /// Runs this worker until the frontier at `frontier_url` is drained.
    pub(super) fn crawl(frontier_url: &str, args: &Args) -> Result<(), String> {
        // The frontier first: a Redis that cannot be reached is an error before anything
        // starts (its message names the frontier's URL).
        let mut frontier = RedisFrontier::open(frontier_url).map_err(|e| e.to_string())?;
        // No START_URL and no --join: the embedded site, on a thread of its own, as long as
        // this worker runs.
        let server = match (&args.start, args.join) {
            (None, false) => Some(
                Server::spawn_thread(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                    .map_err(|e| format!("cannot start the embedded server: {e}"))?,
            ),
            _ => None,
        };
        let seed = match (&args.start, &server) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(server)) => Some(Url::parse(&server.url(DEFAULT_START)).expect("a URL")),
            (None, None) => None,
        };
        if let Some(mut seed) = seed {
            seed.set_fragment(None);
            let new = frontier.put(&[seed.clone()]).map_err(|e| e.to_string())?;
            println!(
                "put {seed} into the frontier ({})",
                if new == 1 { "new" } else { "already there" }
            );
        }
        if args.pages_given {
            eprintln!("crawl: -p is ignored with --frontier: the crawl ends when it is drained");
        }
        let per_host = args.workers.min(PER_HOST);
        println!(
            "crawling the frontier {frontier_url} as worker {}: {} requests at once, at most \
             {per_host} per origin, staying on {}",
            frontier.worker(),
            args.workers,
            match &args.start {
                Some(url) => format!(
                    "{} (pages of other sites in the frontier: on their own origin)",
                    url.origin().ascii_serialization()
                ),
                None => "each page's own origin".to_owned(),
            },
        );
        if args.ignore_robots {
            println!("ignoring robots.txt (--ignore-robots)\n");
        } else {
            println!(
                "obeying robots.txt as volley, Crawl-delay up to {:?}\n",
                args.max_crawl_delay
            );
        }

        let client = threaded::Client::builder()
            .configure(|b| b.timeout(PAGE_TIMEOUT).max_body_size(MAX_PAGE_BYTES))
            .build();
        let (workers, ignore_robots, max_crawl_delay) =
            (args.workers, args.ignore_robots, args.max_crawl_delay);
        let mut counts = Counts::default();
        let started = Instant::now();
        let report = Worker::new(&mut frontier, client)
            // Enough leased ahead to keep the batch busy, few to hand back if this dies.
            .window((workers * 4).max(16))
            .run(
                |batch| {
                    // The links are in the bodies: keep them (the default, said aloud).
                    let batch = batch
                        .concurrency(workers)
                        .per_host(per_host)
                        .keep_bodies(true);
                    if ignore_robots {
                        batch
                    } else {
                        batch.robots_with("volley", move |b| b.max_crawl_delay(max_crawl_delay))
                    }
                },
                |leased, result, found| record(leased, result, found, &mut counts),
            )
            .map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        let total = frontier.status().map_err(|e| e.to_string())?.total();

        let c = &counts;
        println!("\nthe frontier is drained: nothing queued, nothing leased by any worker");
        println!(
            "  pages      {} fetched by this worker ({} URLs leased), {} failed; {} recorded \
             by it",
            c.responses, report.fetched, c.failed, report.recorded
        );
        println!(
            "  links      {} found on its pages, {} new put back into the frontier, {} leaving \
             the scope",
            c.links, report.found, c.off_scope
        );
        if ignore_robots {
            println!("  robots     ignored (--ignore-robots)");
        } else {
            println!(
                "  robots     {} disallowed by robots.txt, {} deferred (robots.txt unreachable)",
                c.disallowed, c.deferred
            );
        }
        println!("  bytes      {}", c.bytes);
        println!(
            "  frontier   {} done, {} failed, by every worker",
            total.done, total.failed
        );
        println!(
            "  elapsed    {:.3} s ({:.0} pages/s)",
            elapsed.as_secs_f64(),
            report.fetched as f64 / elapsed.as_secs_f64().max(1e-6),
        );
        Ok(())
    }

    /// Where the links of the page leased as `page` must stay: on its own origin. Any worker
    /// derives it from the page alone, so all agree whichever fetched it; for a crawl from
    /// START_URL, every page is on START_URL's origin, and so are the links kept.
    pub(super) fn page_scope(page: &Url) -> Scope {
        Scope::Origin(page.origin())
    }

    /// One result: its links into `found`, a line on stdout, and its outcome, a JSON line.
    fn record(
        leased: &Leased,
        result: &FetchResult,
        found: &mut Vec<Url>,
        counts: &mut Counts,
    ) -> Outcome {
        let url = &leased.url;
        let (status, error, links) = match &result.outcome {
            Ok(page) => {
                let html = page.status.is_success() && is_html(&page.headers);
                let scope = page_scope(url);
                let links = page_links(html, &page.final_url, &page.body, &scope);
                let before = found.len();
                found.extend(links.iter().flatten().cloned());
                let in_scope = found.len() - before;
                counts.responses += 1;
                counts.bytes += page.body.len() as u64;
                counts.links += in_scope as u64;
                counts.off_scope += (links.len() - in_scope) as u64;
                println!(
                    "{} {:>6} bytes {:>4} links {url}{}",
                    page.status.as_u16(),
                    page.body.len(),
                    in_scope,
                    if page.final_url == *url {
                        String::new()
                    } else {
                        format!(" -> {}", page.final_url)
                    },
                );
                (Some(page.status.as_u16()), None, in_scope)
            }
            Err(e) => {
                match e.kind() {
                    ErrorKind::DisallowedByRobots => {
                        counts.disallowed += 1;
                        println!("disallowed by robots.txt: {url}");
                    }
                    ErrorKind::RobotsUnreachable(why) => {
                        counts.deferred += 1;
                        println!("deferred (robots.txt unreachable: {why}): {url}");
                    }
                    _ => {
                        counts.failed += 1;
                        println!("error: {e:#}");
                    }
                }
                (None, Some(e.kind().name()), 0)
            }
        };
        let record = serde_json::json!({
            "url": url.as_str(),
            "status": status,
            "error": error,
            "links": links,
        });
        Outcome {
            ok: result.outcome.is_ok(),
            record: record.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// --hosts: the embedded DNS server, a timed resolver, and the DNS report
// ---------------------------------------------------------------------------------------------

/// The DNS side of `--hosts`: the server, the resolver asking it, and the lookups' times.
struct SiteDns {
    server: DnsServer,
    /// A clone of the resolver the client uses: same cache, same counters.
    resolver: NativeResolver,
    /// What the client is given.
    timed: TimedResolver,
}

impl SiteDns {
    fn start(addr: SocketAddr, delay: Duration) -> Result<SiteDns, String> {
        let server = DnsServer::builder()
            .wildcard(SITE_DOMAIN, IpAddr::V4(Ipv4Addr::LOCALHOST))
            .delay(delay)
            .bind(addr)
            .map_err(|e| format!("cannot start the embedded DNS server: {e}"))?;
        // No resolv.conf, no hosts file: only the embedded server is asked.
        let resolver = NativeResolver::from_text("", "").nameservers([server.local_addr()]);
        let timed = TimedResolver {
            inner: resolver.clone(),
            times: Rc::default(),
        };
        Ok(SiteDns {
            server,
            resolver,
            timed,
        })
    }

    /// Prints the DNS section of the summary.
    fn report(&self) {
        let stats: DnsStats = self.resolver.stats();
        let server = self.server.stats();
        let mut times = self.timed.times.borrow().clone();
        times.sort_unstable();
        let sent = stats.udp_queries + stats.tcp_queries;
        // A resolver without cache or coalescing asks for A and AAAA on every lookup that
        // is not an IP literal or a hosts-file name.
        let naive = 2 * (stats.lookups - stats.local);
        let saved = naive as i64 - sent as i64;
        let share = match naive {
            0 => 0.0,
            n => 100.0 * saved as f64 / n as f64,
        };
        println!(
            "\ndns (NativeResolver, with its cache and coalescing, asking the embedded DnsServer)"
        );
        println!(
            "  lookups    {} by the client: {} local, {} cache hits, {} coalesced, {} resolved \
             ({} failed)",
            times.len(),
            stats.local,
            stats.cache_hits,
            stats.coalesced,
            stats.resolved,
            stats.failed
        );
        println!(
            "  queries    {sent} sent ({} UDP + {} TCP); the server counted {} ({} A, {} AAAA, \
             {} over TCP)",
            stats.udp_queries, stats.tcp_queries, server.queries, server.a, server.aaaa, server.tcp
        );
        println!(
            "  saved      {saved} of {naive} ({share:.1}%): without cache and coalescing, 2 queries \
             per lookup not answered locally"
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let asked = match stats.resolved {
            0 => "none asked".to_owned(),
            n => format!(
                "mean of the {n} that asked {:.3} ms",
                ms(stats.resolve_time / n as u32)
            ),
        };
        match times.last() {
            Some(&max) => println!(
                "  latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms; {asked}",
                ms(percentile(&times, 0.50)),
                ms(percentile(&times, 0.90)),
                ms(percentile(&times, 0.99)),
                ms(max),
            ),
            None => println!("  latency    no lookups"),
        }
    }
}

/// The nearest-rank `q` quantile of `sorted` (not empty).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A [`Resolve`] that times every lookup the client asks for, from the call to the answer,
/// and hands it to the native resolver.
#[derive(Clone)]
struct TimedResolver {
    inner: NativeResolver,
    times: Rc<RefCell<Vec<Duration>>>,
}

impl Resolve for TimedResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let started = Instant::now();
        let lookup = self.inner.resolve(host, port);
        let times = self.times.clone();
        Box::pin(async move {
            let result = lookup.await;
            times.borrow_mut().push(started.elapsed());
            result
        })
    }

    /// The native resolver caches by TTL: the client's own cache stays out of the way, so
    /// every lookup it needs reaches us, and is timed.
    fn caches_answers(&self) -> bool {
        self.inner.caches_answers()
    }
}

// ---------------------------------------------------------------------------------------------
// Links: a scanner over the HTML, then resolution and filtering
// ---------------------------------------------------------------------------------------------

/// What [`scan_links`] finds in a page.
#[derive(Debug, Default, PartialEq, Eq)]
struct Scan {
    /// The first `<base href>`, if any, as written (character references decoded).
    base: Option<String>,
    /// Every link's `href`, in page order, as written (trimmed, references decoded), without
    /// `javascript:`, `mailto:`, `tel:` and `data:` links and empty ones.
    hrefs: Vec<String>,
}

/// Finds the `href` of every `<a>` and `<area>` tag, and the first `<base href>`.
///
/// A scanner over tags, not a full HTML parser: it knows tags, attributes (quoted with `"`
/// or `'`, or unquoted), comments, and the raw text of `<script>` and `<style>`, so that an
/// `href=` in text, in another attribute's value, in a comment or in a script is not taken
/// for a link. Names match in any case. Only the first `href` of a tag counts, as in HTML.
fn scan_links(html: &str) -> Scan {
    let b = html.as_bytes();
    let mut scan = Scan::default();
    let mut i = 0;
    // Every index used to slice `html` is at an ASCII byte or the end: a char boundary.
    while let Some(lt) = find(b, i, b"<") {
        i = lt + 1;
        if b[i..].starts_with(b"!--") {
            // A comment runs to the next `-->`.
            i = find(b, i + 3, b"-->").map_or(b.len(), |end| end + 3);
            continue;
        }
        if matches!(b.get(i), Some(b'!' | b'?' | b'/')) {
            // <!DOCTYPE ...>, <?...?>, or an end tag: nothing to take.
            i = find(b, i, b">").map_or(b.len(), |end| end + 1);
            continue;
        }
        if !b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            continue; // a `<` in text, as in `a < b`
        }
        let name_start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let tag = html[name_start..i].to_ascii_lowercase();
        let mut href: Option<&str> = None;
        // Attributes, up to the end of the tag.
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            if b[i] == b'>' {
                i += 1;
                break;
            }
            let attr_start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/')
            {
                i += 1;
            }
            let attr = &html[attr_start..i];
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = None;
            if b.get(i) == Some(&b'=') {
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                match b.get(i) {
                    Some(&quote @ (b'"' | b'\'')) => {
                        let end = find(b, i + 1, &[quote]).unwrap_or(b.len());
                        value = Some(&html[i + 1..end]);
                        i = (end + 1).min(b.len());
                    }
                    Some(_) => {
                        let start = i;
                        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                            i += 1;
                        }
                        value = Some(&html[start..i]);
                    }
                    None => {}
                }
            } else if attr.is_empty() {
                i += 1; // a stray `=`: step over it
            }
            if href.is_none() && attr.eq_ignore_ascii_case("href") {
                href = value;
            }
        }
        match (tag.as_str(), href) {
            ("a" | "area", Some(href)) => {
                let href = decode_entities(href);
                let href = href.trim_matches(|c: char| c.is_ascii_whitespace());
                if !href.is_empty() && !is_not_a_page(href) {
                    scan.hrefs.push(href.to_owned());
                }
            }
            ("base", Some(href)) if scan.base.is_none() => {
                let href = decode_entities(href);
                scan.base = Some(
                    href.trim_matches(|c: char| c.is_ascii_whitespace())
                        .to_owned(),
                );
            }
            ("script" | "style", _) => {
                // Raw text: skip to the matching end tag, whatever it contains.
                let end = format!("</{tag}");
                i = find_ignore_case(b, i, end.as_bytes()).unwrap_or(b.len());
            }
            _ => {}
        }
    }
    scan
}

/// True for links that lead to no page: `javascript:`, `mailto:`, `tel:`, `data:`.
fn is_not_a_page(href: &str) -> bool {
    ["javascript:", "mailto:", "tel:", "data:"]
        .iter()
        .any(|scheme| {
            href.get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
        })
}

/// `href` resolved against `base`, without its fragment, if it is an http(s) URL in `scope`;
/// else `None`.
fn resolve_link(base: &Url, href: &str, scope: &Scope) -> Option<Url> {
    let mut url = base.join(href).ok()?;
    url.set_fragment(None);
    let web = matches!(url.scheme(), "http" | "https");
    (web && scope.contains(&url)).then_some(url)
}

/// Decodes HTML character references: `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&nbsp;`,
/// and numeric ones (`&#38;`, `&#x26;`). Others are left as they are.
fn decode_entities(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').and_then(|semi| {
            let name = &rest[1..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let code = match name.strip_prefix('#') {
                        Some(hex) if hex.starts_with(['x', 'X']) => {
                            u32::from_str_radix(&hex[1..], 16).ok()
                        }
                        Some(dec) => dec.parse().ok(),
                        None => None,
                    };
                    code.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The first index at or after `from` where `needle` starts.
fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// [`find`], ignoring ASCII case.
fn find_ignore_case(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hrefs(html: &str) -> Vec<String> {
        scan_links(html).hrefs
    }

    #[test]
    fn quoted_single_quoted_and_unquoted() {
        let html = r#"<a href="/one">1</a> <a href='/two'>2</a> <a href=/three>3</a>
                      <a href=four.html>4</a>"#;
        assert_eq!(hrefs(html), ["/one", "/two", "/three", "four.html"]);
    }

    #[test]
    fn names_in_any_case_and_spacing() {
        let html = "<A HREF=\"/upper\">x</A><a\nclass=x\n  HrEf = '/mixed' >y</a><AREA href=/map>";
        assert_eq!(hrefs(html), ["/upper", "/mixed", "/map"]);
    }

    #[test]
    fn character_references_are_decoded() {
        let html = r#"<a href="/search?q=1&amp;page=2">x</a><a href="/a&#38;b&#x26;c&lt;">y</a>
                      <a href="/keep&unknown;&">z</a>"#;
        assert_eq!(
            hrefs(html),
            ["/search?q=1&page=2", "/a&b&c<", "/keep&unknown;&"]
        );
    }

    #[test]
    fn non_page_schemes_and_empty_links_are_skipped() {
        let html = r#"<a href="javascript:void(0)">j</a><a href="MAILTO:x@example.com">m</a>
                      <a href="tel:+123">t</a><a href="data:text/plain,hi">d</a>
                      <a href="">e</a><a href="   ">s</a><a href=" /kept ">k</a><a>none</a>"#;
        assert_eq!(hrefs(html), ["/kept"]);
    }

    #[test]
    fn only_links_of_a_and_area_tags() {
        let html = r#"<link href="/style.css" rel=stylesheet><img src="/i.png" href="/img">
                      <abbr href="/abbr">x</abbr><a title="href=/not-this" href="/this">y</a>
                      <p>text with href="/in-text" in it, and a < b</p>"#;
        assert_eq!(hrefs(html), ["/this"]);
    }

    #[test]
    fn comments_scripts_and_styles_are_skipped() {
        let html = r#"<!-- <a href="/commented">x</a> --><a href="/after-comment">y</a>
            <script>var s = '<a href="/in-script">';</script>
            <STYLE>a[href="/in-style"] {}</STYLE><a href="/after-style">z</a>
            <!DOCTYPE html><a href="/last">w</a>"#;
        assert_eq!(hrefs(html), ["/after-comment", "/after-style", "/last"]);
    }

    #[test]
    fn first_href_of_a_tag_wins_and_base_is_found() {
        let html = r#"<base href="http://example.com/dir/"><base href="/ignored/">
                      <a href="/first" href="/second">x</a>"#;
        let scan = scan_links(html);
        assert_eq!(scan.base.as_deref(), Some("http://example.com/dir/"));
        assert_eq!(scan.hrefs, ["/first"]);
    }

    #[test]
    fn broken_html_does_not_panic() {
        for html in [
            "<",
            "<a",
            "<a href",
            "<a href=",
            "<a href=\"/unterminated",
            "<a =x href=/ok>",
            "<!--",
            "<script>",
            "<a href='é/ü'>",
            "&",
            "<a href=\"&#xFFFFFFFF;&#;&\">",
        ] {
            let _ = scan_links(html);
        }
        assert_eq!(hrefs("<a =x href=/ok>"), ["/ok"]);
        assert_eq!(hrefs("<a href='é/ü'>"), ["é/ü"]);
    }

    #[test]
    fn httpbin_links_page() {
        let html = "<html><head><title>Links</title></head><body>0 \
                    <a href='/links/3/1'>1</a> <a href='/links/3/2'>2</a> </body></html>";
        assert_eq!(hrefs(html), ["/links/3/1", "/links/3/2"]);
    }

    fn args(line: &str) -> Result<Args, String> {
        parse_args(line.split_whitespace().map(str::to_owned))
    }

    /// Defaults: 3 workers and 200 pages on one origin; with `--hosts N`, 50 workers, the
    /// whole site of N × 5 pages, and 2 ms per DNS answer. `-w` and `-p` win in both modes.
    #[test]
    fn workers_and_pages_defaults() {
        let plain = args("").unwrap();
        assert_eq!((plain.workers, plain.pages, plain.hosts), (3, 200, None));
        let hosts = args("--hosts 200").unwrap();
        assert_eq!(
            (hosts.workers, hosts.pages, hosts.hosts),
            (50, 1000, Some(200))
        );
        assert_eq!(hosts.dns_delay, Duration::from_millis(2));
        let set = args("-p 7 --hosts 10 -w 4 --dns-delay 0").unwrap();
        assert_eq!(
            (set.workers, set.pages, set.dns_delay),
            (4, 7, Duration::ZERO)
        );
        assert_eq!(args("-w 5 -p 9").unwrap().workers, 5);
        for bad in [
            "--hosts 3 http://127.0.0.1:1/",
            "--dns-delay 5",
            "--hosts 0",
            "--hosts",
            "--hosts 3 --dns-delay -1",
            "-w 0",
            "--max-crawl-delay",
            "--max-crawl-delay -1",
            "--max-crawl-delay soon",
            "--ignore-robots --max-crawl-delay 5",
        ] {
            assert!(args(bad).is_err(), "{bad}");
        }
    }

    /// `--frontier` and `--join`, with the `redis` feature: parsed, and checked against the
    /// flags they do not go with.
    #[cfg(feature = "redis")]
    #[test]
    fn frontier_flags() {
        let worker =
            args("--frontier redis://127.0.0.1:6379/site -w 7 http://127.0.0.1:1/").unwrap();
        assert_eq!(
            worker.frontier.as_deref(),
            Some("redis://127.0.0.1:6379/site")
        );
        assert_eq!(worker.workers, 7);
        assert!(!worker.join && !worker.pages_given);
        let join = args("--frontier redis://h:1/s --join -p 5").unwrap();
        assert!(join.join && join.pages_given && join.start.is_none());
        assert!(args("").unwrap().frontier.is_none());
        for bad in [
            "--frontier",
            "--frontier http://127.0.0.1:1/",
            "--frontier redis://h:1/s --hosts 3",
            "--join",
            "--join http://127.0.0.1:1/",
            "--frontier redis://h:1/s --join http://127.0.0.1:1/",
        ] {
            assert!(args(bad).is_err(), "{bad}");
        }
    }

    /// Built without the `redis` feature, `--frontier` and `--join` are usage errors that say
    /// why.
    #[cfg(not(feature = "redis"))]
    #[test]
    fn frontier_needs_the_redis_feature() {
        for line in ["--frontier redis://127.0.0.1:6379/site", "--join"] {
            let e = args(line).unwrap_err();
            assert!(e.contains("`redis` feature"), "{e}");
            assert!(e.contains("built without it"), "{e}");
        }
    }

    /// `--frontier`: a page's links stay on the page's own origin, START_URL's for a crawl
    /// from it, whichever worker fetched the page.
    #[cfg(feature = "redis")]
    #[test]
    fn frontier_scope() {
        use distributed::page_scope;
        let a = Url::parse("http://127.0.0.1:8080/links/3/0").unwrap();
        let b = Url::parse("http://127.0.0.2:9090/x").unwrap();
        assert_eq!(page_scope(&a), Scope::Origin(a.origin()));
        let html = b"<a href='/y'>y</a> <a href='http://127.0.0.1:8080/z'>z</a>";
        assert_eq!(
            page_links(true, &b, html, &page_scope(&b)),
            [Some(Url::parse("http://127.0.0.2:9090/y").unwrap()), None]
        );
        assert_eq!(
            page_links(true, &a, html, &page_scope(&a)),
            [
                Some(Url::parse("http://127.0.0.1:8080/y").unwrap()),
                Some(Url::parse("http://127.0.0.1:8080/z").unwrap())
            ]
        );
        // Not HTML, or not a success: no links.
        assert!(page_links(false, &a, html, &page_scope(&a)).is_empty());
    }

    /// robots.txt is obeyed by default, with `Crawl-delay` capped at 30 s; the flags change
    /// that.
    #[test]
    fn robots_flags() {
        let plain = args("").unwrap();
        assert!(!plain.ignore_robots);
        assert_eq!(plain.max_crawl_delay, Duration::from_secs(30));
        assert!(args("--ignore-robots --hosts 3").unwrap().ignore_robots);
        let capped = args("--max-crawl-delay 2.5 http://127.0.0.1:1/").unwrap();
        assert_eq!(capped.max_crawl_delay, Duration::from_millis(2500));
        assert_eq!(
            args("--max-crawl-delay 0").unwrap().max_crawl_delay,
            Duration::ZERO
        );
    }

    /// A site on a raw loopback server: its pages link to paths that its robots.txt
    /// disallows. Serves connections one at a time (each closed after its answer) and records
    /// every request's path and when it came; stops when dropped, or after 30 s.
    struct Site {
        addr: SocketAddr,
        log: std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Site {
        /// Serves `robots` (a status line and body) at `/robots.txt`, and the pages:
        /// `/` links to `/a`, `/private`, `/private/x` and `/b?x=1`; `/a` to `/private/y`,
        /// `/b?x=1` and `/`; every `/private` page to `/private/z`; `/b?x=1` to nothing.
        fn start(robots: (&'static str, &'static str)) -> Site {
            use std::io::{Read, Write};
            use std::sync::atomic::Ordering;
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let log = std::sync::Arc::default();
            let stop = std::sync::Arc::<std::sync::atomic::AtomicBool>::default();
            let thread = {
                let (log, stop): (std::sync::Arc<std::sync::Mutex<Vec<_>>>, _) =
                    (std::sync::Arc::clone(&log), stop.clone());
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                        let mut stream = match listener.accept() {
                            Ok((stream, _)) => stream,
                            Err(_) => {
                                std::thread::sleep(Duration::from_millis(2));
                                continue;
                            }
                        };
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut head = Vec::new();
                        let mut buf = [0; 4096];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&head);
                        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                        log.lock().unwrap().push((path.clone(), Instant::now()));
                        let links: &[&str] = match path.as_str() {
                            "/" => &["/a", "/private", "/private/x", "/b?x=1"],
                            "/a" => &["/private/y", "/b?x=1", "/"],
                            p if p.starts_with("/private") => &["/private/z"],
                            _ => &[],
                        };
                        let (status, content_type, body) = match path.as_str() {
                            "/robots.txt" => (robots.0, "text/plain", robots.1.to_owned()),
                            "/" | "/a" | "/b?x=1" => ("200 OK", "text/html", String::new()),
                            p if p.starts_with("/private") => {
                                ("200 OK", "text/html", String::new())
                            }
                            _ => ("404 Not Found", "text/html", String::new()),
                        };
                        let body = body
                            + &links
                                .iter()
                                .map(|l| format!("<a href=\"{l}\">{l}</a>\n"))
                                .collect::<String>();
                        let reply = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(reply.as_bytes());
                    }
                })
            };
            Site {
                addr,
                log,
                stop,
                thread: Some(thread),
            }
        }

        /// The paths requested, in order.
        fn paths(&self) -> Vec<String> {
            self.log
                .lock()
                .unwrap()
                .iter()
                .map(|(p, _)| p.clone())
                .collect()
        }

        /// Runs the crawl from `/` with `flags`, three workers.
        fn crawl(&self, flags: &str) -> Report {
            let line = format!("-w 3 {flags} http://{}/", self.addr);
            let args = args(&line).unwrap();
            Runtime::new().unwrap().block_on(crawl(args)).unwrap()
        }
    }

    impl Drop for Site {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    const DISALLOW_PRIVATE: (&str, &str) = ("200 OK", "User-agent: *\nDisallow: /private\n");

    /// The crawler never requests a path robots.txt disallows, and reports each as such.
    #[test]
    fn disallowed_paths_are_never_requested() {
        let site = Site::start(DISALLOW_PRIVATE);
        let report = site.crawl("");
        let paths = site.paths();
        assert!(
            !paths.iter().any(|p| p.starts_with("/private")),
            "requested: {paths:?}"
        );
        assert_eq!(paths[0], "/robots.txt", "asked first: {paths:?}");
        assert_eq!(paths.iter().filter(|p| *p == "/robots.txt").count(), 1);
        let mut pages: Vec<_> = paths[1..].to_vec();
        pages.sort();
        assert_eq!(pages, ["/", "/a", "/b?x=1"]);
        assert_eq!(report.visited, 3);
        let mut disallowed: Vec<_> = report.disallowed.iter().map(|u| u.path()).collect();
        disallowed.sort();
        assert_eq!(disallowed, ["/private", "/private/x", "/private/y"]);
        assert!(report.deferred.is_empty());
    }

    /// `--ignore-robots`: no robots.txt request, and the disallowed paths are fetched.
    #[test]
    fn ignore_robots_fetches_disallowed_paths() {
        let site = Site::start(DISALLOW_PRIVATE);
        let report = site.crawl("--ignore-robots");
        let mut paths = site.paths();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/",
                "/a",
                "/b?x=1",
                "/private",
                "/private/x",
                "/private/y",
                "/private/z"
            ]
        );
        assert_eq!(report.visited, 7);
        assert!(report.disallowed.is_empty());
    }

    /// robots.txt answers 503: the origin is deferred, and none of its pages is requested.
    #[test]
    fn an_unreachable_robots_txt_defers_the_site() {
        let site = Site::start(("503 Service Unavailable", "down for maintenance"));
        let report = site.crawl("");
        assert_eq!(site.paths(), ["/robots.txt"]);
        assert_eq!(report.visited, 0);
        assert_eq!(report.deferred.len(), 1);
        assert_eq!(report.deferred[0].path(), "/");
    }

    /// `Crawl-delay: 3600`, capped by `--max-crawl-delay 0.3`: three workers, yet the pages
    /// are requested one at least 0.3 s after the other (0.2 s allows for the server's side),
    /// and the crawl does not wait an hour.
    #[test]
    fn crawl_delay_spaces_requests_to_an_origin() {
        let site = Site::start((
            "200 OK",
            "User-agent: volley\nCrawl-delay: 3600\nDisallow: /private\n",
        ));
        let started = Instant::now();
        let report = site.crawl("--max-crawl-delay 0.3");
        assert_eq!(report.visited, 3);
        assert!(started.elapsed() < Duration::from_secs(20));
        let log = site.log.lock().unwrap().clone();
        let pages: Vec<_> = log.iter().filter(|(p, _)| p != "/robots.txt").collect();
        assert_eq!(pages.len(), 3, "{log:?}");
        for pair in pages.windows(2) {
            let gap = pair[1].1 - pair[0].1;
            assert!(
                gap >= Duration::from_millis(200),
                "{gap:?} between {pair:?}"
            );
        }
    }

    /// `--hosts` stays on the hosts under the domain, any port, and nowhere else.
    #[test]
    fn domain_scope() {
        let page = Url::parse("http://h0.web.test:8080/web/3/15/0").unwrap();
        let scope = Scope::Domain("web.test".into());
        let resolve = |href| resolve_link(&page, href, &scope).map(|u| u.to_string());
        assert_eq!(
            resolve("http://h2.web.test:8080/web/3/15/2#x").as_deref(),
            Some("http://h2.web.test:8080/web/3/15/2")
        );
        assert_eq!(
            resolve("/web/3/15/1").as_deref(),
            Some("http://h0.web.test:8080/web/3/15/1")
        );
        assert!(resolve("http://a.b.web.test:9/").is_some());
        assert_eq!(resolve("http://web.test:8080/"), None);
        assert_eq!(resolve("http://evilweb.test:8080/"), None);
        assert_eq!(resolve("http://h1.web.test.example:8080/"), None);
        assert_eq!(resolve("ftp://h1.web.test/"), None);
    }

    #[test]
    fn resolution_stays_on_the_origin_and_drops_fragments() {
        let page = Url::parse("http://127.0.0.1:8080/dir/page.html").unwrap();
        let scope = Scope::Origin(page.origin());
        let resolve = |href| resolve_link(&page, href, &scope).map(|u| u.to_string());
        assert_eq!(
            resolve("other.html#part").as_deref(),
            Some("http://127.0.0.1:8080/dir/other.html")
        );
        assert_eq!(
            resolve("../up?x=1").as_deref(),
            Some("http://127.0.0.1:8080/up?x=1")
        );
        assert_eq!(
            resolve("//127.0.0.1:8080/abs").as_deref(),
            Some("http://127.0.0.1:8080/abs")
        );
        assert_eq!(resolve("http://127.0.0.1:8081/other-port"), None);
        assert_eq!(resolve("https://127.0.0.1:8080/other-scheme"), None);
        assert_eq!(resolve("http://localhost:8080/other-host"), None);
        assert_eq!(resolve("ftp://127.0.0.1:8080/"), None);
        assert_eq!(
            resolve("#top").as_deref(),
            Some("http://127.0.0.1:8080/dir/page.html")
        );
    }
}
