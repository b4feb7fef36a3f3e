//! cargo run --release --example fetch_many -- [OPTIONS] [URL...]
//!
//! Fetch many URLs at once, from one thread (or several, `--threads N`), and say how it went:
//! volley's main job, as a bulk tool.
//!
//! ```text
//! cargo run --release --example fetch_many                        # the seed's workload, below
//! cargo run --release --example fetch_many -- -c 1000 -n 20000    # more of it
//! cargo run --release --example fetch_many -- -n 1000 http://127.0.0.1:8080/get
//! cargo run --release --example fetch_many -- --json -n 100       # one JSON object on stdout
//! cargo run --release --example fetch_many -- --tls               # the same over HTTPS
//! # a list of URLs, one result per line in out.jsonl, bodies in pages/, polite to each host:
//! cargo run --release --example fetch_many -- -i urls.txt -o out.jsonl --save pages \
//!     --per-host 4 --rate 10
//! # killed half-way? The same command with --resume fetches only what is not in out.jsonl:
//! cargo run --release --example fetch_many -- -i urls.txt -o out.jsonl --resume
//! grep -v '^#' urls.txt | cargo run --release --example fetch_many -- -i - -o out.jsonl
//! # many hosts: sharded by host over two volley loops, on two threads
//! cargo run --release --example fetch_many -- -i urls.txt -o out.jsonl --threads 2
//! ```
//!
//! With no URL and no `-i` it starts the embedded httpbin-like server on a free loopback port
//! and replays seeds/001: 500 requests to an endpoint that answers after 100 ms, at most 100
//! in flight. One at a time that is 500 × 0.1 s = 50 s (the seed's `requests` loop took 55 s);
//! with 100 in flight it cannot take less than 500 / 100 × 0.1 s = 0.5 s. The seed's best
//! Python took 1.07 s (tornado with curl) and 1.78 s (aiohttp). The summary says how close
//! volley came.
//!
//! # Flags
//!
//! - `-c N`: at most N requests in flight (default 100).
//! - `-n N`: send N requests in all, cycling through the URL arguments (default: each URL once;
//!   500 with no URL). `{n}` in a URL argument is replaced by the request's sequence number,
//!   from 0, which makes every URL distinct, as the seed's random suffixes did, so that no
//!   cache answers. Not with `-i` (an error: the file says how many).
//! - `-m SECS`: the longest one request may take, from sending it to the end of its body.
//! - `-i FILE`: fetch the URLs of FILE, one per line (`-`: standard input), instead of URL
//!   arguments (not both). Surrounding whitespace is trimmed; blank lines and lines starting
//!   with `#` are skipped; a line is taken literally (no `{n}`). The file is read as the batch
//!   needs URLs, never whole, and no per-URL result is kept, so memory stays flat however long
//!   it is. A line that is not an `http://` or `https://` URL (or not UTF-8, or with a control
//!   character) does not stop the run: it is a failed result of its own, `"error_kind":
//!   "invalid_url"` in `-o`. An error reading FILE ends the input there, says so on stderr,
//!   and the run exits 1 after the URLs already read.
//! - `-o FILE`: write one JSON object per line (JSONL) to FILE for each URL, as it finishes
//!   (FILE is created, or truncated without `--resume`). Lines are whole: each is one write
//!   into a buffer that goes to FILE whenever no result is ready, and at least every 100 ms or
//!   256 lines while results keep coming, and at the end. See *Output lines* below.
//! - `--resume` (needs `-o`): first read FILE; each line that is a JSON object with a `url`
//!   marks that URL done, and done URLs met in the input are skipped: not fetched, not written
//!   again, counted as "skipped (resume)". A half-written last line (no newline, or not JSON:
//!   the run was killed while writing it) is cut off first, so its URL is fetched again; then
//!   new lines are appended. Only a 64-bit hash of each done URL is kept (FNV-1a, fixed, so it
//!   is the same across builds and Rust versions), 8 bytes each in a sorted vector. A run
//!   killed with `kill -9` and resumed fetches each remaining URL once; only the URLs in
//!   flight at the kill (at most `-c`) are fetched twice, and each input line still gets
//!   exactly one line. A URL the input names twice is fetched once: its repeat gets a line of
//!   its own with `"error_kind": "duplicate"` (not a failure), and is skipped on a resumed
//!   run. A missing FILE is created; one that is not a regular file, or whose whole lines
//!   are none of them results, is refused (it is not ours).
//! - `--per-host N`: at most N requests in flight to one host (scheme, host and port).
//! - `--rate R`: at most R requests per second started to each host (a float; burst 1).
//! - `--retries N`: retry a failed attempt up to N times (default 2): connect errors, resets,
//!   timeouts, and 429/502/503/504 responses, with full-jitter backoff; a 429 or 503 pauses
//!   its whole host for its `Retry-After`. See `volley::RetryPolicy`.
//! - `--max-retry-after SECS`: the longest host pause waited out (default 60); requests
//!   behind a longer one fail as `rate_limited`.
//! - `--save DIR`: save each response body (any status) to `DIR/<16 hex digits>`, the URL's
//!   FNV-1a hash (the `saved` field says which file). DIR is created. Bodies are then kept in
//!   memory until written, one per request in flight; without `--save` they are counted and
//!   dropped. A body that cannot be written fails that URL (`"error_kind": "save"`) and the
//!   run goes on.
//! - `--tls`: run the embedded server over HTTPS, with the TEST-ONLY certificate of
//!   `volley_testserver::testcert` (for 127.0.0.1 and localhost), which the client trusts with
//!   `add_root_certificate`. `https://` URLs need no flag: the client speaks both.
//! - `--system-dns`: resolve names with `getaddrinfo` on helper threads
//!   (`volley::Resolver::system()`) instead of the default, volley's own resolver on the
//!   event loop (`NativeResolver`), whose counters the report then shows.
//! - `--threads N`: run the batch on N volley loops, on N threads of their own
//!   (`volley::threaded::Client`), instead of one loop on this thread (default 1: see
//!   docs/performance.md). With N > 1 the URLs are sharded by host over the N loops, each
//!   with its own pool and DNS cache, so a host's `--per-host` limit, `--rate` and pauses stay
//!   exact; the loops share the `-c` slots, each taking what its hosts need (the embedded
//!   server, one host, is served by one loop). Results, `-o` lines and the
//!   summary are as with one loop; the report's DNS counters are not gathered. The loops go on
//!   while this thread writes `-o`, so after a `kill -9` a few hundred more URLs per loop (the
//!   results on their way to the file) may be fetched again by `--resume`.
//! - `--json`: print only one JSON object on stdout instead of the report, a stable interface
//!   for scripts: `{"requests", "ok", "failed", "bytes", "elapsed_s", "requests_per_s",
//!   "latency_ms": {"p50", "p90", "p99", "max"}, "threads", "retries", "skipped",
//!   "duplicates", "invalid", "gave_up", "save_failed", "hosts"}`; `threads` is the most threads the process had during
//!   the batch (0 where `/proc` is missing); `hosts` is the 20 hosts that took the most time,
//!   each `{"host", "requests", "ok", "failed", "retries", "throttled", "paused_s", "p50_ms",
//!   "p99_ms", "statuses": {"200": count, ...}}` (`requests` counts attempts, retries
//!   included; `throttled` counts 429s). `requests` and `failed` count invalid lines too.
//!
//! # Beyond one machine: `--enqueue`, `--from`, `--status` (feature `redis`)
//!
//! Built with `--features redis`, fetch_many can keep its URLs in a frontier in Redis
//! (`volley::frontier::RedisFrontier`: Redis streams, one per shard of hosts) and run as any
//! number of workers, on any number of machines, against it:
//!
//! ```text
//! cargo build --release --features redis --example fetch_many
//! fetch_many --enqueue redis://10.0.0.5:6379/crawl -i urls.txt    # add URLs (again: nothing)
//! fetch_many --from redis://10.0.0.5:6379/crawl -o out.jsonl --rate 10   # on each machine
//! fetch_many --status redis://10.0.0.5:6379/crawl                 # queued, leased, done, failed
//! ```
//!
//! - `--enqueue URL` (with `-i FILE` or URL arguments): adds each URL not added before (by a
//!   fingerprint of the normalised URL; enqueuing the same file twice adds nothing). Lines that
//!   are not URLs are not added, and make the exit status 1.
//! - `--from URL`: a worker. It holds its share of the frontier's busy shards (a host is in
//!   one shard, and a shard is held by one worker at a time, so `--rate` and `--per-host` hold
//!   across the cluster), leases URLs from them, fetches them with every setting above (`-c`,
//!   `--per-host`, `--rate`, `--retries`, `--threads`, `--save`), appends each result's line
//!   to `-o` (optional; created if missing), then records it in the frontier (its `results`
//!   stream, once per URL) and acknowledges it. It exits when the frontier is drained and
//!   nothing is leased by any worker: 0, or 1 if any of its URLs failed.
//! - With `--rate R`, a worker leases about R URLs of a shard ahead (at least 2): when
//!   workers rebalance, a shard's new holder waits until its old holder has done what it
//!   leased of it, so that no host has two workers at once; a short lease-ahead keeps that
//!   wait short.
//! - `--lease SECS` (default 60): how long a worker may miss its heartbeats (every tenth of
//!   this) before its shards and leases go to another. A worker killed with `kill -9` loses
//!   nothing: what it held is fetched again by the others after the lease; only those URLs
//!   may be fetched twice (and may have a line in two `-o` files), and each still has one
//!   result in the frontier. A worker that reaches Redis no more retries with backoff for
//!   30 s, then exits 1 naming the Redis URL.
//! - `--status URL`: each shard's queued, leased, done and failed URLs, and their sum
//!   (`--json`: as one object).
//!
//! # Output lines
//!
//! One object per URL, keys in alphabetical order:
//!
//! ```text
//! {"attempts":1,"bytes":35,"elapsed_ms":1.234,"error":null,"error_kind":null,
//!  "retry_reasons":[],"saved":null,"status":200,"url":"http://127.0.0.1:8080/get"}
//! ```
//!
//! - `url`: the URL as parsed (`http://a.test` becomes `http://a.test/`); for an invalid line,
//!   the line itself. `--resume` compares these.
//! - `status`: the final response's status code, or `null` when there was none.
//! - `bytes`: the body's length (decoded), 0 without a response.
//! - `attempts`: 1 + the retries; 0 for an invalid line or a duplicate (nothing was sent).
//! - `elapsed_ms`: the last attempt's total time, from sending to the end of the body (a
//!   float; 0 when nothing was sent).
//! - `error`: the error with its causes (`{:#}`), or `null`.
//! - `error_kind`: a snake_case label, or `null`: the error's `ErrorKind::name()`, with
//!   every proxy error as `proxy` and an unsupported scheme as `invalid_url`: `invalid_url`,
//!   `dns`, `connect`, `timeout`, `io` (reset or closed), `invalid_response`, `decode`,
//!   `too_large`, `too_many_redirects`, `rate_limited` (a pause longer than
//!   `--max-retry-after`), `certificate`, `tls`, `proxy`, `invalid_request`, `request_body`,
//!   `runtime`; and `save` (the body could not be written; `status` is still there) or
//!   `duplicate` (an earlier line named the same URL: not fetched, not a failure).
//! - `retry_reasons`: why each retried attempt was retried, e.g. `["status 503", "connect
//!   error"]`.
//! - `saved`: the file the body was saved to, or `null`.
//!
//! # Report and exit status
//!
//! The report counts requests, retries, URLs skipped by `--resume`, invalid lines, statuses
//! and errors, shows the latency percentiles and a histogram, the five hosts that took the
//! most time (requests, ok, retries, 429s, seconds paused, p50 and p99), the thread count (one:
//! the event loop does everything, name resolution included, unless `--system-dns` or
//! `--threads`) and, when names were looked up on one loop, the resolver's counters: lookups
//! answered locally, from its cache, by sharing a lookup in flight, or by asking, and the
//! queries sent. On a terminal, a progress bar runs on stderr meanwhile: done, failed, in
//! flight, waiting, paused hosts, retries.
//!
//! Exit status: 0 when every URL got a response that is not a failure; 1 when any URL failed
//! after its retries: an error (refused, reset, timed out, malformed, an invalid line, a body
//! that could not be saved...), or a final status that the retry policy retries (429, 502,
//! 503, 504) once the retries ran out; any other status, 404 or 500 included, is an answer, as
//! with curl without `-f`. Also 1 when `-i` could not be read to the end, when `-o` could not
//! be written, or when the batch cannot run at all (no runtime, no server). 2 for bad
//! arguments, including an `-i` FILE that cannot be opened, an `-o` FILE or `--save` DIR that
//! cannot be made, and an `-o` FILE that `--resume` does not recognize.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::future::poll_fn;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[cfg(feature = "redis")]
#[path = "fetch_many/frontier.rs"]
mod frontier;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use volley::batch::{
    BatchSummary, Duplicates, FetchResult, LatencyHistogram, Progress, RetryPolicy,
};
use volley::{
    Client, DnsStats, ErrorKind, Method, NativeResolver, Request, Resolver, Runtime, Url,
};

/// The seed's workload: how many requests, how long each one waits, how many at once.
const SEED_REQUESTS: usize = 500;
const SEED_DELAY: Duration = Duration::from_millis(100);
const DEFAULT_CONCURRENCY: usize = 100;
const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// `--lease`: a worker that misses its heartbeats this long loses its shards to another.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Descriptors kept for everything but connections: stdio, the reactor, the listener, slack.
const RESERVED_FDS: u64 = 64;

/// How many error messages the report quotes in full.
const QUOTED_ERRORS: usize = 3;

/// How many characters of an invalid line its error message quotes.
const QUOTED_CHARS: usize = 200;

/// How many hosts the report and the `--json` summary list.
const REPORT_HOSTS: usize = 5;
const JSON_HOSTS: usize = 20;

/// `-o` goes to its file at least this often, and every this many lines, while results keep
/// coming (and whenever none is ready).
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_EVERY_LINES: usize = 256;

const USAGE: &str = "usage: fetch_many [-c N] [-n N] [-m SECS] [--json] [--tls] [--system-dns]
                  [-i FILE|-] [-o FILE [--resume]] [--per-host N] [--rate R]
                  [--retries N] [--max-retry-after SECS] [--save DIR] [--threads N] [URL...]
       fetch_many --enqueue REDIS (-i FILE|URL...) | --from REDIS [-o FILE] [--lease SECS]
                  [OPTIONS] | --status REDIS
  -c N                  at most N requests in flight (default 100)
  -n N                  N requests in all, cycling through the URLs; {n} in a URL is the
                        request's number (not with -i)
  -m SECS               the longest one request may take
  -i FILE               the URLs of FILE, one per line (- for stdin; # comments, blank lines)
  -o FILE               one JSON line per URL, as it finishes
  --resume              skip the URLs already in the -o FILE, then append to it
  --per-host N          at most N requests in flight per host
  --rate R              at most R requests per second started per host
  --retries N           retries per URL (default 2)
  --max-retry-after S   the longest host pause waited out (default 60 s)
  --save DIR            save each body to DIR/<16 hex digits of the URL's hash>
  --threads N           N volley loops on N threads, the URLs sharded by host (default 1)
  --enqueue REDIS       add the URLs (-i FILE or arguments) to the frontier at
                        redis://HOST:PORT/NAME (built with --features redis)
  --from REDIS          be a worker of that frontier until it is drained (-o appends)
  --lease SECS          a worker's shards go to another after SECS without heartbeat (60)
  --status REDIS        the frontier's queued, leased, done and failed URLs per shard
  --json                one JSON summary on stdout instead of the report
exit status: 0 if every URL got a response (any status but a final 429/502/503/504);
1 if any URL failed after its retries (an error, an invalid line, a body not saved, or a
final 429/502/503/504), if -i could not be read or -o written, or if the batch could not
run; 2 for bad arguments (including files that cannot be opened)";

/// How often, at most, the thread count is sampled during the batch.
const THREAD_SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The parsed command line.
#[derive(Debug)]
struct Args {
    concurrency: usize,
    requests: Option<usize>,
    max_time: Option<Duration>,
    json: bool,
    /// Serve the embedded server over HTTPS.
    tls: bool,
    /// Resolve with getaddrinfo on helper threads.
    system_dns: bool,
    urls: Vec<String>,
    /// `-i`: a file of URLs, `-` for stdin.
    input: Option<String>,
    /// `-o`: the JSONL file.
    output: Option<PathBuf>,
    resume: bool,
    per_host: Option<usize>,
    rate: Option<f64>,
    retries: u32,
    max_retry_after: Duration,
    save: Option<PathBuf>,
    /// `--threads`: how many volley loops run the batch.
    threads: usize,
    /// `--enqueue`, `--from`, `--status`: a Redis frontier's URL.
    enqueue: Option<String>,
    from: Option<String>,
    status: Option<String>,
    /// `--lease`: how long a worker holds its shards without a heartbeat.
    lease: Duration,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        concurrency: DEFAULT_CONCURRENCY,
        requests: None,
        max_time: None,
        json: false,
        tls: false,
        system_dns: false,
        urls: Vec::new(),
        input: None,
        output: None,
        resume: false,
        per_host: None,
        rate: None,
        retries: DEFAULT_RETRIES,
        max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        save: None,
        threads: 1,
        enqueue: None,
        from: None,
        status: None,
        lease: DEFAULT_LEASE,
    };
    let positive = |name: &str, value: Option<String>| -> Result<usize, String> {
        let value = value.ok_or_else(|| format!("{name} needs a value"))?;
        match value.parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name} wants a positive integer, not {value:?}")),
        }
    };
    // A number of seconds, at least `min` (exclusive when `positive`).
    let seconds = |name: &str, value: Option<String>, positive: bool| {
        let value = value.ok_or_else(|| format!("{name} needs a value"))?;
        let secs: f64 = value
            .parse()
            .map_err(|_| format!("{name} wants seconds, not {value:?}"))?;
        match Duration::try_from_secs_f64(secs) {
            Ok(t) if !(positive && t.is_zero()) => Ok(t),
            _ => Err(format!(
                "{name} wants a {} number of seconds, not {value:?}",
                if positive { "positive" } else { "non-negative" }
            )),
        }
    };
    let path = |name: &str, value: Option<String>| -> Result<String, String> {
        match value {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(format!("{name} needs a file name")),
        }
    };
    // A frontier's `redis://HOST:PORT/NAME`; only with the `redis` feature.
    let frontier_url = |name: &str, value: Option<String>| -> Result<String, String> {
        let value = value.ok_or_else(|| format!("{name} needs redis://HOST:PORT/NAME"))?;
        if !cfg!(feature = "redis") {
            return Err(format!(
                "{name}: this fetch_many was built without the redis feature \
                 (cargo run --release --features redis --example fetch_many)"
            ));
        }
        match Url::parse(&value) {
            Ok(url) if url.scheme() == "redis" && url.path().len() > 1 => Ok(value),
            _ => Err(format!(
                "{name} wants redis://HOST:PORT/NAME, not {value:?}"
            )),
        }
    };
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "-c" | "--concurrency" => args.concurrency = positive("-c", argv.next())?,
            "-n" | "--requests" => args.requests = Some(positive("-n", argv.next())?),
            "-m" | "--max-time" => args.max_time = Some(seconds("-m", argv.next(), true)?),
            "-i" | "--input" => args.input = Some(path("-i", argv.next())?),
            "-o" | "--output" => args.output = Some(path("-o", argv.next())?.into()),
            "--resume" => args.resume = true,
            "--per-host" => args.per_host = Some(positive("--per-host", argv.next())?),
            "--rate" => {
                let value = argv.next().ok_or("--rate needs a value")?;
                match value.parse::<f64>() {
                    Ok(r) if r.is_finite() && r > 0.0 => args.rate = Some(r),
                    _ => {
                        return Err(format!(
                            "--rate wants a positive number of requests per second, not {value:?}"
                        ))
                    }
                }
            }
            "--retries" => {
                let value = argv.next().ok_or("--retries needs a value")?;
                args.retries = value.parse().map_err(|_| {
                    format!("--retries wants a non-negative integer, not {value:?}")
                })?;
            }
            "--max-retry-after" => {
                args.max_retry_after = seconds("--max-retry-after", argv.next(), false)?
            }
            "--save" => args.save = Some(path("--save", argv.next())?.into()),
            "--threads" => args.threads = positive("--threads", argv.next())?,
            "--enqueue" => args.enqueue = Some(frontier_url("--enqueue", argv.next())?),
            "--from" => args.from = Some(frontier_url("--from", argv.next())?),
            "--status" => args.status = Some(frontier_url("--status", argv.next())?),
            "--lease" => args.lease = seconds("--lease", argv.next(), true)?,
            "--json" => args.json = true,
            "--tls" if cfg!(feature = "tls") => args.tls = true,
            "--system-dns" => args.system_dns = true,
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}"))
            }
            url => {
                // Check each URL now, with `{n}` filled in, rather than fail it n times later.
                match check_url(&url.replace("{n}", "0")) {
                    Ok(_) => args.urls.push(url.to_owned()),
                    Err(BadUrl::Syntax(e)) => return Err(format!("not a URL: {url:?} ({e})")),
                    Err(why) => return Err(format!("{url:?}: {why}")),
                }
            }
        }
    }
    let modes = [&args.enqueue, &args.from, &args.status];
    match modes.iter().filter(|m| m.is_some()).count() {
        0 => {}
        1 if args.enqueue.is_some() => {
            if args.input.is_none() && args.urls.is_empty() {
                return Err("--enqueue needs -i FILE or URLs: the URLs to add".into());
            }
            if args.requests.is_some() || args.output.is_some() || args.resume {
                return Err("--enqueue takes -i FILE or URLs only".into());
            }
        }
        1 if args.status.is_some() => {
            if args.input.is_some() || !args.urls.is_empty() || args.output.is_some() {
                return Err("--status takes no URLs, -i or -o".into());
            }
        }
        1 => {
            if args.input.is_some() || !args.urls.is_empty() || args.requests.is_some() {
                return Err("--from takes its URLs from the frontier: no -i, -n or URLs".into());
            }
            if args.resume {
                return Err("--from appends to -o: --resume is not needed".into());
            }
        }
        _ => return Err("--enqueue, --from and --status go one at a time".into()),
    }
    if args.resume && args.output.is_none() {
        return Err("--resume needs -o FILE: the file to resume".into());
    }
    if args.input.is_some() && args.requests.is_some() {
        return Err("-n cannot be used with -i: the file says how many URLs".into());
    }
    if args.input.is_some() && !args.urls.is_empty() {
        return Err("-i and URL arguments cannot be used together".into());
    }
    Ok(args)
}

/// Why a string is not a URL this tool can fetch.
#[derive(Debug)]
enum BadUrl {
    Syntax(url::ParseError),
    Control,
    NotUtf8,
    TooLong,
    Scheme,
}

impl std::fmt::Display for BadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadUrl::Syntax(e) => write!(f, "not a URL ({e})"),
            BadUrl::Control => f.write_str("contains a control character"),
            BadUrl::NotUtf8 => f.write_str("not UTF-8"),
            BadUrl::TooLong => write!(f, "longer than {} KiB (cut here)", MAX_LINE / 1024),
            BadUrl::Scheme => write!(f, "volley speaks {} only", SCHEMES.join(", ")),
        }
    }
}

/// The schemes the client speaks.
const SCHEMES: &[&str] = if cfg!(feature = "tls") {
    &["http", "https"]
} else {
    &["http"]
};

/// `s` as a URL this tool can fetch. Control characters are refused rather than dropped
/// silently by the URL parser, which would fetch another URL than the one given.
fn check_url(s: &str) -> Result<Url, BadUrl> {
    if s.chars().any(char::is_control) {
        return Err(BadUrl::Control);
    }
    let url = Url::parse(s).map_err(BadUrl::Syntax)?;
    if !SCHEMES.contains(&url.scheme()) {
        return Err(BadUrl::Scheme);
    }
    Ok(url)
}

fn main() -> ExitCode {
    ExitCode::from(run(std::env::args().skip(1)))
}

/// Everything `main` does, returning the exit status (see the module docs).
fn run(argv: impl Iterator<Item = String>) -> u8 {
    let usage = |message: &str| {
        if !message.is_empty() {
            eprintln!("fetch_many: {message}");
        }
        eprintln!("{USAGE}");
        2
    };
    let args = match parse_args(argv) {
        Ok(args) => args,
        Err(message) => return usage(&message),
    };
    #[cfg(feature = "redis")]
    if let Some(status) = frontier::run(&args) {
        return status;
    }
    let files = match Files::open(&args) {
        Ok(files) => files,
        Err(message) => {
            eprintln!("fetch_many: {message}");
            return 2;
        }
    };
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fetch_many: cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(fetch_many(args, files)) {
        Ok(outcome) => outcome.exit_status(),
        Err(message) => {
            eprintln!("fetch_many: {message}");
            1
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files: the input, the output, resuming, saved bodies
// ---------------------------------------------------------------------------------------------

/// The files the command line names, opened before anything is fetched.
struct Files {
    /// `-i`: the reader and the name to quote. `Send`: with `--threads`, the input is read
    /// on the thread that deals the URLs to the loops.
    input: Option<(Box<dyn BufRead + Send>, String)>,
    /// `-o`, positioned at its end.
    output: Option<Output>,
    /// The done URLs of `--resume`: their hashes, sorted.
    done: Vec<u64>,
    save: Option<PathBuf>,
}

impl Files {
    fn open(args: &Args) -> Result<Files, String> {
        let mut input_file = None;
        let input = match args.input.as_deref() {
            None => None,
            // Not `stdin().lock()`, which is not `Send`: a buffer of our own over `Stdin`,
            // whose reads of 64 KiB go past its own buffer.
            Some("-") => Some((
                Box::new(BufReader::with_capacity(1 << 16, io::stdin())) as Box<dyn BufRead + Send>,
                "stdin".into(),
            )),
            Some(name) => {
                let file = File::open(name).map_err(|e| format!("cannot open -i {name}: {e}"))?;
                input_file = Some(file.try_clone().map_err(|e| format!("{name}: {e}"))?);
                let reader = BufReader::with_capacity(1 << 16, file);
                Some((Box::new(reader) as Box<dyn BufRead + Send>, name.to_owned()))
            }
        };
        let (output, done) = match &args.output {
            None => (None, Vec::new()),
            Some(path) => {
                if let Some(input) = &input_file {
                    refuse_same_file(input, path)?;
                }
                let (file, resumed) = open_output(path, args.resume)?;
                if resumed.lines > 0 || resumed.cut > 0 {
                    eprintln!(
                        "fetch_many: resuming {}: {} URLs done{}",
                        path.display(),
                        resumed.lines,
                        match resumed.cut {
                            0 => String::new(),
                            n => format!(", a half-written last line ({n} bytes) removed"),
                        }
                    );
                }
                if resumed.unreadable > 0 {
                    eprintln!(
                        "fetch_many: note: {} lines of {} are not results; their URLs are not \
                         skipped",
                        resumed.unreadable,
                        path.display()
                    );
                }
                (Some(Output::new(file, path.clone())), resumed.done)
            }
        };
        if let Some(dir) = &args.save {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create --save {}: {e}", dir.display()))?;
        }
        Ok(Files {
            input,
            output,
            done,
            save: args.save.clone(),
        })
    }
}

/// Fails if `output` is the file `input` is open on: `-o` would truncate the input.
fn refuse_same_file(input: &File, output: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Ok(b)) = (input.metadata(), std::fs::metadata(output)) else {
        return Ok(()); // no output file yet
    };
    if a.dev() == b.dev() && a.ino() == b.ino() {
        return Err(format!(
            "-o {} is the -i file: it would be overwritten",
            output.display()
        ));
    }
    Ok(())
}

/// The hash of a URL that `--resume` keeps and `--save` names files by: 64-bit FNV-1a. Fixed
/// (unlike the standard library's hashers, whose algorithm may change between Rust versions),
/// so a file written by one build is resumed by another.
fn url_hash(url: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in url.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What `--resume` found in the output file.
#[derive(Debug, Default)]
struct Resumed {
    /// The hashes of the URLs done, sorted and without repeats.
    done: Vec<u64>,
    /// Lines that name a URL.
    lines: u64,
    /// Whole lines that do not (kept, ignored).
    unreadable: u64,
    /// Bytes of a half-written last line, cut off.
    cut: u64,
}

/// The URL of one output line, if it is a JSON object with a string `url`.
fn url_of_line(line: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(line).ok()? {
        Value::Object(mut map) => match map.remove("url")? {
            Value::String(url) => Some(url),
            _ => None,
        },
        _ => None,
    }
}

/// The most bytes kept of one line of `-i` or `-o`: the rest of a longer line is read and
/// dropped, so that a file without newlines (`-i /dev/zero`) cannot fill the memory.
const MAX_LINE: usize = 64 * 1024;

/// One line, as [`read_line`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineRead {
    /// Bytes read in all, newline included: 0 at the end of the input.
    bytes: usize,
    /// The line ended with a newline (else with the input).
    newline: bool,
    /// It was longer than [`MAX_LINE`]: only its start was kept.
    long: bool,
}

/// Reads one line into `line` (without its newline), keeping at most [`MAX_LINE`] bytes.
fn read_line<R: BufRead + ?Sized>(reader: &mut R, line: &mut Vec<u8>) -> io::Result<LineRead> {
    line.clear();
    let mut read = LineRead {
        bytes: 0,
        newline: false,
        long: false,
    };
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read);
        }
        let (text, used) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                read.newline = true;
                (&available[..i], i + 1)
            }
            None => (available, available.len()),
        };
        let room = MAX_LINE - line.len();
        if text.len() > room {
            read.long = true;
        }
        line.extend_from_slice(&text[..text.len().min(room)]);
        reader.consume(used);
        read.bytes += used;
        if read.newline {
            return Ok(read);
        }
    }
}

/// Opens `-o`: created or truncated, or with `resume`, read for the URLs done, its
/// half-written last line cut off, and positioned at its end.
fn open_output(path: &Path, resume: bool) -> Result<(File, Resumed), String> {
    let name = path.display();
    if !resume {
        let file = File::create(path).map_err(|e| format!("cannot create -o {name}: {e}"))?;
        return Ok((file, Resumed::default()));
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("cannot open -o {name}: {e}"))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("--resume: -o {name} is not a regular file"));
    }
    let mut resumed = Resumed::default();
    let read_error = |e: io::Error| format!("cannot read -o {name} to resume it: {e}");
    let mut reader = BufReader::with_capacity(1 << 16, &file);
    let mut line = Vec::new();
    let mut end = 0u64; // of what was read
    let mut whole_lines = 0u64;
    let mut partial = None; // the start of a last line without its newline
    let mut last = None; // the start of the last whole line, and whether it is a result
    loop {
        let read = read_line(&mut reader, &mut line).map_err(read_error)?;
        if read.bytes == 0 {
            break;
        }
        let start = end;
        end += read.bytes as u64;
        if !read.newline {
            partial = Some(start);
            break;
        }
        whole_lines += 1;
        let url = url_of_line(&line).filter(|_| !read.long);
        last = Some((start, url.is_some()));
        match url {
            Some(url) => {
                resumed.done.push(url_hash(&url));
                resumed.lines += 1;
            }
            None => resumed.unreadable += 1,
        }
    }
    drop(reader);
    if resumed.lines == 0 && whole_lines > 0 {
        return Err(format!(
            "--resume: {name} has no line of fetch_many's output (a JSON object with a \"url\"); \
             not touching it"
        ));
    }
    // A line cut short by a kill: no newline, or a last line that is not a result.
    let keep = match (partial, last) {
        (Some(start), _) => start,
        (None, Some((start, false))) => {
            resumed.unreadable -= 1;
            start
        }
        _ => end,
    };
    resumed.cut = end - keep;
    if resumed.cut > 0 {
        file.set_len(keep)
            .map_err(|e| format!("cannot cut the half-written line of -o {name}: {e}"))?;
    }
    file.seek(SeekFrom::End(0))
        .map_err(|e| format!("cannot seek -o {name}: {e}"))?;
    resumed.done.sort_unstable();
    resumed.done.dedup();
    resumed.done.shrink_to_fit();
    Ok((file, resumed))
}

/// The `-o` file: whole lines into a buffer, flushed whenever no result is ready, every
/// [`FLUSH_EVERY`] and [`FLUSH_EVERY_LINES`], and at the end.
struct Output {
    writer: BufWriter<File>,
    path: PathBuf,
    /// One line, serialized here and written with one `write_all`.
    line: Vec<u8>,
    unflushed: usize,
    flushed_at: Instant,
    /// The first write error; nothing is written after it.
    error: Option<io::Error>,
}

impl Output {
    fn new(file: File, path: PathBuf) -> Output {
        Output {
            writer: BufWriter::with_capacity(1 << 16, file),
            path,
            line: Vec::with_capacity(512),
            unflushed: 0,
            flushed_at: Instant::now(),
            error: None,
        }
    }

    fn write(&mut self, record: &Value) {
        self.write_with(|line| {
            serde_json::to_writer(line, record).expect("a JSON value serializes");
        });
    }

    /// Writes the line `fill` puts in the (cleared) buffer, and its newline.
    fn write_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        if self.error.is_some() {
            return;
        }
        self.line.clear();
        fill(&mut self.line);
        self.line.push(b'\n');
        if let Err(e) = self.writer.write_all(&self.line) {
            self.error = Some(e);
            return;
        }
        self.unflushed += 1;
        if self.unflushed >= FLUSH_EVERY_LINES || self.flushed_at.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.unflushed == 0 || self.error.is_some() {
            return;
        }
        if let Err(e) = self.writer.flush() {
            self.error = Some(e);
        }
        self.unflushed = 0;
        self.flushed_at = Instant::now();
    }

    /// The first write error, as a message.
    fn failure(&self) -> Option<String> {
        let e = self.error.as_ref()?;
        Some(format!("cannot write -o {}: {e}", self.path.display()))
    }
}

// ---------------------------------------------------------------------------------------------
// The input: URL arguments or lines, less the URLs done
// ---------------------------------------------------------------------------------------------

/// What the input and the loop share: the output, the counts of lines that are not
/// requests, and the first errors to quote. With `--threads`, the input is read on the thread
/// that deals the URLs to the loops and the progress is told on a loop's thread, so this is
/// `Sync`; on one loop its locks are never contended.
struct Shared {
    output: Mutex<Option<Output>>,
    /// Hashes of the URLs `--resume` found done, sorted.
    done: Vec<u64>,
    skipped: AtomicU64,
    invalid: AtomicU64,
    quoted: Mutex<Vec<String>>,
    /// Why the input ended early.
    read_error: Mutex<Option<String>>,
}

/// Locks `mutex`, even if a thread panicked holding it: what it guards stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn new(output: Option<Output>, done: Vec<u64>) -> Shared {
        Shared {
            output: Mutex::new(output),
            done,
            skipped: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            quoted: Mutex::new(Vec::new()),
            read_error: Mutex::new(None),
        }
    }

    fn is_done(&self, url: &str) -> bool {
        !self.done.is_empty() && self.done.binary_search(&url_hash(url)).is_ok()
    }

    fn quote(&self, message: String) {
        let mut quoted = lock(&self.quoted);
        if quoted.len() < QUOTED_ERRORS {
            quoted.push(message);
        }
    }

    fn write(&self, record: &Value) {
        if let Some(output) = lock(&self.output).as_mut() {
            output.write(record);
        }
    }

    /// Writes a result's line, if there is a -o file.
    fn write_line(&self, line: &Line) {
        if let Some(output) = lock(&self.output).as_mut() {
            output.write_with(|buf| line.write_json(buf));
        }
    }

    fn flush(&self) {
        if let Some(output) = lock(&self.output).as_mut() {
            output.flush();
        }
    }

    /// The first error writing -o, as a message.
    fn write_failure(&self) -> Option<String> {
        lock(&self.output).as_ref().and_then(Output::failure)
    }

    /// A line that is not a URL: skipped if `--resume` found it done, else a failed result
    /// of its own, written at once.
    fn not_a_url(&self, line: &str, why: &BadUrl) {
        if self.is_done(line) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.invalid.fetch_add(1, Ordering::Relaxed);
        // The line is in `url`; the message quotes its start.
        let shown = match line.char_indices().nth(QUOTED_CHARS) {
            Some((end, _)) => format!("{:?}...", &line[..end]),
            None => format!("{line:?}"),
        };
        let error = format!("invalid url {shown}: {why}");
        self.write(&json!({
            "url": line,
            "status": null,
            "bytes": 0,
            "attempts": 0,
            "elapsed_ms": 0.0,
            "error": error,
            "error_kind": "invalid_url",
            "retry_reasons": [],
            "saved": null,
        }));
        self.quote(error);
    }
}

/// Where URLs come from.
enum Source {
    /// URL arguments (or the embedded server's), cycled `total` times, `{n}` filled in.
    Generated {
        urls: Vec<String>,
        /// Each URL without `{n}`, parsed once: every turn of the cycle is the same URL,
        /// so it is cloned rather than formatted and parsed again (most of the tool's own
        /// work per request in a keep-alive run).
        fixed: Vec<Option<Url>>,
        next: usize,
        total: usize,
    },
    /// `-i`: lines, read one at a time.
    Lines {
        reader: Box<dyn BufRead + Send>,
        name: String,
        line: Vec<u8>,
    },
}

/// The batch's input: requests, made lazily as the batch asks for them. Lines that are not
/// URLs and URLs already done never reach the batch: they are counted (and the former
/// written to `-o`) here, as they are read. `Send`: with `--threads`, it is read on the
/// thread that deals the URLs to the loops.
struct Feed {
    source: Source,
    shared: Arc<Shared>,
}

impl Feed {
    /// The next URL string to consider, or `None` at the end of the input.
    fn next_string(&mut self) -> Option<String> {
        match &mut self.source {
            Source::Generated {
                urls, next, total, ..
            } => {
                if *next >= *total {
                    return None;
                }
                let url = urls[*next % urls.len()].replace("{n}", &next.to_string());
                *next += 1;
                Some(url)
            }
            Source::Lines { reader, name, line } => loop {
                let long = match read_line(reader, line) {
                    Ok(read) if read.bytes == 0 => return None,
                    Ok(read) => read.long,
                    Err(e) => {
                        *lock(&self.shared.read_error) = Some(format!(
                            "cannot read -i {name}: {e}; its other lines are not fetched"
                        ));
                        return None;
                    }
                };
                let text = line.trim_ascii();
                if text.is_empty() || text.starts_with(b"#") {
                    continue;
                }
                if long {
                    let text = String::from_utf8_lossy(text);
                    self.shared.not_a_url(&text, &BadUrl::TooLong);
                    continue;
                }
                match std::str::from_utf8(text) {
                    Ok(text) => return Some(text.to_owned()),
                    Err(_) => {
                        let text = String::from_utf8_lossy(text);
                        self.shared.not_a_url(&text, &BadUrl::NotUtf8);
                    }
                }
            },
        }
    }
}

impl Iterator for Feed {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        loop {
            if let Source::Generated {
                fixed, next, total, ..
            } = &mut self.source
            {
                if let Some(Some(url)) = (*next < *total).then(|| &fixed[*next % fixed.len()]) {
                    *next += 1;
                    if self.shared.is_done(url.as_str()) {
                        self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    return Some(Request::new(Method::GET, url.clone()));
                }
            }
            let text = self.next_string()?;
            match check_url(&text) {
                Ok(url) => {
                    if self.shared.is_done(url.as_str()) {
                        self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    return Some(Request::new(Method::GET, url));
                }
                Err(why) => self.shared.not_a_url(&text, &why),
            }
        }
    }

    /// Exact for URL arguments without `--resume`, so that the batch and the bar know the
    /// total; unknown otherwise.
    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.source {
            Source::Generated { next, total, .. } if self.shared.done.is_empty() => {
                (total - next, Some(total - next))
            }
            _ => (0, None),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// How the run went: the batch's summary and what the tool counted besides.
struct Outcome {
    summary: BatchSummary,
    skipped: u64,
    invalid: u64,
    /// Final responses with a status the retry policy retries (429, 502, 503, 504).
    gave_up: u64,
    save_failed: u64,
    /// `-i` could not be read to the end.
    input_failed: bool,
}

impl Outcome {
    /// The exit status of a run that ran: 1 if any URL failed, or the input could not be read
    /// to its end; else 0.
    fn exit_status(&self) -> u8 {
        let failed = self.summary.failed + self.invalid + self.gave_up + self.save_failed;
        u8::from(failed > 0 || self.input_failed)
    }
}

/// Runs the batch and prints its report.
async fn fetch_many(mut args: Args, files: Files) -> Result<Outcome, String> {
    // No URL: serve ourselves. The embedded server runs as tasks on this same runtime, so the
    // one thread both sends the requests and answers them; its /delay is a timer, not a thread.
    // (With --threads, the loops send the requests and this thread still answers them.)
    let server = if args.urls.is_empty() && files.input.is_none() {
        let addr = "127.0.0.1:0".parse().expect("a valid address");
        let server = volley_testserver::Server::bind_with(addr, server_config(args.tls)?)
            .map_err(|e| format!("cannot start the embedded server: {e}"))?;
        Some(server)
    } else {
        None
    };
    if server.is_some() {
        args.concurrency = fit_server_and_client(args.concurrency);
    }
    let Files {
        input,
        output,
        done,
        save,
    } = files;
    let resuming = output.is_some() && args.resume;

    let settings = ClientSettings {
        max_time: args.max_time,
        tls: args.tls,
        system_dns: args.system_dns,
    };
    let (client, dns) = BatchClient::new(&settings, args.threads)?;

    let shared = Arc::new(Shared::new(output, done));
    // The requests are made lazily, as slots free up: from the file's lines, or request i is
    // URL i mod len with `{n}` replaced by i.
    // A list of URLs may name one twice: the batch reports the repeats as duplicates. The
    // generated workload repeats URLs on purpose (without `{n}`), so it fetches every one.
    let duplicates = match input {
        Some(_) => Duplicates::Report,
        None => Duplicates::Fetch,
    };
    let on_threads = match args.threads {
        1 => String::new(),
        n => format!(", on {n} threads"),
    };
    let (source, total) = match input {
        Some((reader, name)) => {
            if !args.json {
                println!(
                    "fetching the URLs of {name}, at most {} at a time{on_threads}\n",
                    args.concurrency
                );
            }
            let source = Source::Lines {
                reader,
                name,
                line: Vec::new(),
            };
            (source, None)
        }
        None => {
            let urls = match &server {
                Some(server) => {
                    vec![server.url(&format!("/delay/{}?n={{n}}", SEED_DELAY.as_secs_f64()))]
                }
                None => std::mem::take(&mut args.urls),
            };
            let total = match (args.requests, &server) {
                (Some(n), _) => n,
                (None, Some(_)) => SEED_REQUESTS,
                (None, None) => urls.len(),
            };
            if !args.json {
                let what = match urls.as_slice() {
                    [url] => url.clone(),
                    many => format!("{} URLs", many.len()),
                };
                println!(
                    "fetching {total} × {what}, at most {} at a time{on_threads}\n",
                    args.concurrency
                );
            }
            let fixed = urls
                .iter()
                .map(|u| (!u.contains("{n}")).then(|| check_url(u).ok()).flatten())
                .collect();
            let source = Source::Generated {
                urls,
                fixed,
                next: 0,
                total,
            };
            (source, Some(total))
        }
    };
    let feed = Feed {
        source,
        shared: shared.clone(),
    };

    let policy = RetryPolicy::default().max_retries(args.retries);
    let bar = progress_bar((!resuming).then_some(total).flatten());
    // `Send`, as the progress of several loops is told on their threads.
    let threads = Arc::new(AtomicUsize::new(thread_count()));
    let mut sampled = Duration::ZERO;
    let most_threads = threads.clone();
    let progress_bar = bar.clone();
    let progress_shared = shared.clone();
    let on_progress = move |p: &Progress| {
        if p.elapsed >= sampled + THREAD_SAMPLE_EVERY {
            sampled = p.elapsed;
            most_threads.fetch_max(thread_count(), Ordering::Relaxed);
        }
        if let Some(bar) = &progress_bar {
            let invalid = progress_shared.invalid.load(Ordering::Relaxed);
            bar.set_position(p.done + invalid);
            let rate = p.done as f64 / p.elapsed.as_secs_f64().max(1e-3);
            let mut message = format!(
                "{} failed, {} in flight, {} waiting, {} paused hosts, {} retries, {rate:.0} req/s",
                p.failed + invalid,
                p.in_flight,
                p.waiting,
                p.paused_hosts,
                p.retries
            );
            let skipped = progress_shared.skipped.load(Ordering::Relaxed);
            if skipped > 0 {
                let _ = write!(message, ", {skipped} skipped");
            }
            bar.set_message(message);
        }
    };
    // The batch's settings, for either kind of batch: they have the same setters, and no
    // trait in common.
    macro_rules! with_settings {
        ($batch:expr) => {{
            let mut batch = $batch
                .concurrency(args.concurrency)
                .duplicates(duplicates)
                .retry(policy)
                .max_retry_after(args.max_retry_after)
                // Without --save only the counts matter: bodies are read, counted and dropped.
                .keep_bodies(save.is_some())
                .on_progress(on_progress);
            if let Some(n) = args.per_host {
                batch = batch.per_host(n);
            }
            if let Some(rate) = args.rate {
                batch = batch.rate(rate, 1);
            }
            batch
        }};
    }

    // Results arrive in completion order. Each is written to -o (and its body to --save) and
    // dropped: the summary the stream keeps is enough for the report, in constant memory.
    let mut stream = match &client {
        BatchClient::Local(client) => {
            Results::Local(with_settings!(client.fetch_all(feed)).stream())
        }
        BatchClient::Threaded(client) => {
            Results::Threaded(with_settings!(client.fetch_all(feed)).stream())
        }
    };
    let mut gave_up = 0;
    let mut save_failed = 0;
    let mut write_failed = None;
    loop {
        // Whenever no result is ready, what -o holds goes to its file before the loop waits.
        // On one loop, requests that slots freed start only then (this thread runs their
        // tasks while this one waits), so at any moment at most the requests in flight (`-c`)
        // have been sent without their line being in the file: what a `kill -9` can make
        // `--resume` fetch twice. (With --threads, the loops go on meanwhile.)
        let next = poll_fn(|cx| match stream.poll_next(cx) {
            Poll::Pending => {
                shared.flush();
                Poll::Pending
            }
            ready => ready,
        })
        .await;
        let Some(result) = next else { break };
        let line = Line::of(&result, &policy, save.as_deref());
        gave_up += u64::from(line.gave_up);
        save_failed += u64::from(line.save_failed);
        if let Some(error) = &line.error {
            shared.quote(error.clone());
        }
        shared.write_line(&line);
        if let Some(failure) = shared.write_failure() {
            write_failed = Some(failure);
            break;
        }
    }
    let summary = stream.summary().clone();
    drop(stream); // cancels what is still in flight, if -o failed
    shared.flush();
    threads.fetch_max(thread_count(), Ordering::Relaxed);
    let threads = threads.load(Ordering::Relaxed);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(failure) = write_failed.or_else(|| shared.write_failure()) {
        return Err(failure);
    }
    let read_error = lock(&shared.read_error).take();
    if let Some(message) = &read_error {
        eprintln!("fetch_many: {message}");
    }
    let outcome = Outcome {
        summary,
        skipped: shared.skipped.load(Ordering::Relaxed),
        invalid: shared.invalid.load(Ordering::Relaxed),
        gave_up,
        save_failed,
        input_failed: read_error.is_some(),
    };
    // Invalid lines are results too: failed ones, without a request.
    let mut counted = outcome.summary.clone();
    counted.requests += outcome.invalid;
    counted.failed += outcome.invalid;
    if outcome.invalid > 0 {
        *counted.errors.entry("invalid url").or_default() += outcome.invalid;
    }

    if args.json {
        println!("{}", json_summary(&counted, &outcome, threads));
        return Ok(outcome);
    }
    print!("{}", report(&counted, &outcome));
    print!("{}", top_hosts(&outcome.summary));
    print!("{}", resolution(threads, dns.map(|dns| dns.stats())));
    if args.threads > 1 && !args.system_dns {
        println!(
            "  dns        not counted with --threads > 1 (each loop has a resolver of its own)"
        );
    }
    let quoted = lock(&shared.quoted);
    if !quoted.is_empty() {
        println!("\nfirst errors:");
        for message in quoted.iter() {
            println!("  {message}");
        }
    }
    if let (Some(_), Some(total)) = (&server, total) {
        if outcome.skipped == 0 {
            print!(
                "{}",
                seed_comparison(&counted, total, args.concurrency, SEED_DELAY)
            );
        }
    }
    Ok(outcome)
}

/// The client settings of the command line, which every loop's client gets: `Send + Sync`, so
/// that with `--threads` each loop thread can apply them to a client of its own.
#[derive(Debug, Clone)]
struct ClientSettings {
    /// `-m`.
    max_time: Option<Duration>,
    /// `--tls`: trust the embedded server's TEST-ONLY CA.
    tls: bool,
    /// `--system-dns`.
    system_dns: bool,
}

/// Applies `s` to `builder`. Returns the native resolver it set too (none with
/// `--system-dns`), whose counters the report reads: a clone shares them. It is made here,
/// on the thread whose loop will use it, as a `NativeResolver` is not `Send`.
fn client_settings(
    builder: volley::ClientBuilder,
    s: &ClientSettings,
) -> Result<(volley::ClientBuilder, Option<NativeResolver>), String> {
    let mut builder = trust_test_ca(builder, s.tls)?;
    if let Some(t) = s.max_time {
        builder = builder.timeout(t);
    }
    Ok(match s.system_dns {
        true => (builder.dns_resolver(Resolver::system()), None),
        false => {
            let dns = NativeResolver::from_system();
            (builder.dns_resolver(dns.clone()), Some(dns))
        }
    })
}

/// The client that runs the batch.
enum BatchClient {
    /// One loop: this thread's runtime, which also runs the embedded server and reads the
    /// results.
    Local(Client),
    /// `--threads N`, N > 1: N loops on threads of their own, the URLs sharded by host.
    Threaded(volley::threaded::Client),
}

impl BatchClient {
    /// The client for `threads` loops, with the native resolver whose counters the report
    /// shows (one loop without `--system-dns` only: several loops have one each).
    fn new(
        settings: &ClientSettings,
        threads: usize,
    ) -> Result<(BatchClient, Option<NativeResolver>), String> {
        let (builder, dns) = client_settings(Client::builder(), settings)?;
        if threads == 1 {
            return Ok((BatchClient::Local(builder.build()), dns));
        }
        // The settings were just applied once, here, where an error can be told: on a loop
        // thread they cannot fail.
        let settings = settings.clone();
        let client = volley::threaded::Client::builder()
            .threads(threads)
            .configure(move |b| match client_settings(b, &settings) {
                Ok((b, _)) => b,
                Err(e) => panic!("the client settings applied once already: {e}"),
            })
            .build();
        Ok((BatchClient::Threaded(client), None))
    }
}

/// The results of either kind of batch. One per run: the sizes of its variants do not matter,
/// and the one-loop stream stays unboxed, as it was.
#[allow(clippy::large_enum_variant)]
enum Results {
    Local(volley::batch::BatchStream<Feed>),
    Threaded(volley::threaded::BatchStream),
}

impl Results {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<FetchResult>> {
        match self {
            Results::Local(stream) => stream.poll_next(cx),
            Results::Threaded(stream) => stream.poll_next(cx),
        }
    }

    fn summary(&self) -> &BatchSummary {
        match self {
            Results::Local(stream) => stream.summary(),
            Results::Threaded(stream) => stream.summary(),
        }
    }
}

/// One result, as it goes to `-o`.
#[derive(Debug)]
struct Line {
    url: String,
    status: Option<u16>,
    bytes: u64,
    attempts: usize,
    elapsed_ms: f64,
    error: Option<String>,
    error_kind: Option<&'static str>,
    retry_reasons: Vec<String>,
    saved: Option<String>,
    /// A final status the retry policy retries: the URL failed.
    gave_up: bool,
    save_failed: bool,
}

impl Line {
    /// The line of `result`, saving its body to `save` first if given.
    fn of(result: &FetchResult, policy: &RetryPolicy, save: Option<&Path>) -> Line {
        let url = match (&result.url, &result.outcome) {
            (Some(url), _) => url.as_str().to_owned(),
            (None, Err(e)) => match e.kind() {
                ErrorKind::InvalidUrl(input) => input.clone(),
                _ => String::new(),
            },
            (None, Ok(_)) => String::new(),
        };
        let elapsed_ms = (result.timings.total.as_secs_f64() * 1e6).round() / 1e3;
        let mut line = Line {
            status: None,
            bytes: 0,
            attempts: match &result.outcome {
                Err(e) if *e.kind() == ErrorKind::Duplicate => 0,
                _ => 1 + result.attempts.len(),
            },
            elapsed_ms,
            error: None,
            error_kind: None,
            retry_reasons: result
                .attempts
                .iter()
                .map(|a| a.reason.to_string())
                .collect(),
            saved: None,
            gave_up: false,
            save_failed: false,
            url,
        };
        match &result.outcome {
            Ok(fetched) => {
                let status = fetched.status.as_u16();
                line.status = Some(status);
                line.bytes = fetched.body_len;
                line.gave_up = policy.retries_status(status);
                if let Some(dir) = save {
                    let path = dir.join(format!("{:016x}", url_hash(&line.url)));
                    match std::fs::write(&path, &fetched.body) {
                        Ok(()) => line.saved = Some(path.display().to_string()),
                        Err(e) => {
                            line.error = Some(format!(
                                "cannot save the body of {} to {}: {e}",
                                line.url,
                                path.display()
                            ));
                            line.error_kind = Some("save");
                            line.save_failed = true;
                        }
                    }
                }
            }
            Err(e) => {
                // `{:#}`: the message and its causes, on one line.
                line.error = Some(format!("{e:#}"));
                line.error_kind = Some(error_kind(e.kind()));
            }
        }
        line
    }

    /// Writes the line as a JSON object into `out`, its keys in alphabetical order, as a
    /// `serde_json::Value` would be written, without building one (this runs per URL).
    fn write_json(&self, out: &mut Vec<u8>) {
        // A macro, not a generic function: naming serde's trait would need serde itself.
        macro_rules! field {
            ($open:literal, $key:literal, $value:expr) => {
                out.extend_from_slice(concat!($open, "\"", $key, "\":").as_bytes());
                serde_json::to_writer(&mut *out, $value).expect("a JSON value serializes");
            };
        }
        field!("{", "attempts", &self.attempts);
        field!(",", "bytes", &self.bytes);
        field!(",", "elapsed_ms", &self.elapsed_ms);
        field!(",", "error", &self.error);
        field!(",", "error_kind", &self.error_kind);
        field!(",", "retry_reasons", &self.retry_reasons);
        field!(",", "saved", &self.saved);
        field!(",", "status", &self.status);
        field!(",", "url", &self.url);
        out.push(b'}');
    }
}

/// The `error_kind` of an error: its kind's name, with the proxy kinds as one (`proxy`)
/// and a scheme the client does not speak as an invalid URL, as the docs above list them.
fn error_kind(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::UnsupportedScheme(_) => "invalid_url",
        ErrorKind::InvalidProxy(_) | ErrorKind::ProxyAuth | ErrorKind::ProxyTunnel(_) => "proxy",
        kind => kind.name(),
    }
}

fn fit_server_and_client(wanted: usize) -> usize {
    let limit = match volley::raise_fd_limit() {
        Ok(limit) => limit,
        Err(_) => rustix::process::getrlimit(rustix::process::Resource::Nofile).current,
    };
    let Some(limit) = limit else {
        return wanted; // unlimited
    };
    let fit = usize::try_from(limit.saturating_sub(RESERVED_FDS) / 2)
        .unwrap_or(usize::MAX)
        .max(1);
    if fit < wanted {
        eprintln!(
            "fetch_many: note: the open-file limit is {limit}, and the embedded server and the \
             client need a descriptor each per connection: {fit} in flight instead of {wanted}"
        );
    }
    wanted.min(fit)
}

/// A progress bar on stderr if stderr is a terminal, else none; a counter without a bar when
/// the total is not known (`-i`, `--resume`).
fn progress_bar(total: Option<usize>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let template = match total {
        Some(_) => "{elapsed_precise} [{wide_bar:.cyan/blue}] {pos}/{len} {msg}",
        None => "{elapsed_precise} {spinner} {pos} done: {msg}",
    };
    let style = ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(total.map(|n| n as u64), ProgressDrawTarget::stderr());
    bar.set_style(style);
    Some(bar)
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// The stable `--json` object: counts, bytes, seconds and milliseconds, all plain numbers,
/// and the hosts that took the most time.
fn json_summary(s: &BatchSummary, o: &Outcome, threads: usize) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // To the microsecond: 0.411, not 0.41100000000000003.
    let rounded = |x: f64| (x * 1000.0).round() / 1000.0;
    let hosts: Vec<Value> = o
        .summary
        .top_hosts(JSON_HOSTS)
        .into_iter()
        .map(|(host, h)| {
            let statuses: serde_json::Map<String, Value> = h
                .statuses
                .iter()
                .map(|(code, n)| (code.to_string(), Value::from(*n)))
                .collect();
            json!({
                "host": host,
                "requests": h.requests,
                "ok": h.ok,
                "failed": h.failed,
                "retries": h.retries,
                "throttled": h.throttled,
                "paused_s": rounded(h.paused.as_secs_f64()),
                "p50_ms": rounded(ms(h.latency.quantile(0.50))),
                "p99_ms": rounded(ms(h.latency.quantile(0.99))),
                "statuses": statuses,
            })
        })
        .collect();
    format!(
        concat!(
            r#"{{"requests":{},"ok":{},"failed":{},"bytes":{},"elapsed_s":{:.6},"#,
            r#""requests_per_s":{:.3},"latency_ms":{{"p50":{:.3},"p90":{:.3},"p99":{:.3},"max":{:.3}}},"#,
            r#""threads":{},"retries":{},"skipped":{},"duplicates":{},"invalid":{},"gave_up":{},"save_failed":{},"#,
            r#""hosts":{}}}"#
        ),
        s.requests,
        s.ok,
        s.failed,
        s.bytes,
        s.elapsed.as_secs_f64(),
        s.requests_per_s(),
        ms(s.latency.quantile(0.50)),
        ms(s.latency.quantile(0.90)),
        ms(s.latency.quantile(0.99)),
        ms(s.latency.max()),
        threads,
        s.retries,
        o.skipped,
        s.duplicates,
        o.invalid,
        o.gave_up,
        o.save_failed,
        Value::from(hosts),
    )
}

/// How many threads this process has now (0 where `/proc` is missing).
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |dir| dir.count())
}

/// The thread count, and the native resolver's counters if it looked anything up.
fn resolution(threads: usize, dns: Option<DnsStats>) -> String {
    let mut out = String::new();
    let threads = match threads {
        0 => "n/a (no /proc)".to_owned(),
        n => format!("{n} (the most this process had during the batch)"),
    };
    let _ = writeln!(
        out,
        "
  threads    {threads}"
    );
    let Some(d) = dns.filter(|d| d.lookups > 0) else {
        return out;
    };
    let mean = match d.resolved {
        0 => String::new(),
        n => format!(", {} each on average", ms(d.resolve_time.div_f64(n as f64))),
    };
    let _ = writeln!(
        out,
        "  dns        {} lookups: {} local (IP literal, hosts file, localhost), {} from the cache, {} shared \
         with a lookup in flight, {} asked the servers ({} failed{mean})",
        d.lookups, d.local, d.cache_hits, d.coalesced, d.resolved, d.failed
    );
    let _ = writeln!(
        out,
        "             {} queries sent ({} over TCP), {} tries without a usable answer",
        d.udp_queries + d.tcp_queries,
        d.tcp_queries,
        d.failed_tries
    );
    out
}

/// The human report: a table of counts, the latency percentiles, a small histogram, and the
/// hosts that took the most time.
fn report(s: &BatchSummary, o: &Outcome) -> String {
    let mut out = String::new();
    let mut rows = vec![
        ("requests", s.requests.to_string()),
        ("ok", format!("{} (a complete response, any status)", s.ok)),
        ("failed", s.failed.to_string()),
        ("bytes", bytes(s.bytes)),
        ("elapsed", format!("{:.3} s", s.elapsed.as_secs_f64())),
        ("req/s", format!("{:.1}", s.requests_per_s())),
        ("statuses", tally(s.statuses.iter().map(|(k, v)| (k, *v)))),
        ("errors", tally(s.errors.iter().map(|(k, v)| (k, *v)))),
        ("retries", s.retries.to_string()),
    ];
    if o.gave_up > 0 {
        rows.push((
            "gave up",
            format!(
                "{} (a final 429, 502, 503 or 504 after the retries)",
                o.gave_up
            ),
        ));
    }
    if o.invalid > 0 {
        rows.push(("invalid", format!("{} lines that are not URLs", o.invalid)));
    }
    if s.duplicates > 0 {
        rows.push((
            "duplicates",
            format!("{} (an earlier line named the same URL)", s.duplicates),
        ));
    }
    if o.save_failed > 0 {
        rows.push(("not saved", format!("{} bodies", o.save_failed)));
    }
    rows.push(("skipped", format!("{} (done already: --resume)", o.skipped)));
    for (name, value) in rows {
        let _ = writeln!(out, "  {name:<10} {value}");
    }

    if s.latency.is_empty() {
        out.push_str("\nno responses, so no latencies\n");
        return out;
    }
    let _ = writeln!(
        out,
        "\nlatency of the {} responses (request sent to body read; queueing not counted):",
        s.latency.len()
    );
    let percentiles = [
        ("p50", s.latency.quantile(0.50)),
        ("p90", s.latency.quantile(0.90)),
        ("p99", s.latency.quantile(0.99)),
        ("max", s.latency.max()),
        ("mean", s.latency.mean()),
    ];
    let line: Vec<String> = percentiles
        .iter()
        .map(|(name, d)| format!("{name} {}", ms(*d)))
        .collect();
    let _ = writeln!(out, "  {}", line.join("   "));

    // Up to ten rows from the fastest to the slowest, each labelled by its upper bound.
    let rows = histogram_rows(&s.latency, 10);
    let widest = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let labels: Vec<String> = rows.iter().map(|(upper, _)| ms(*upper)).collect();
    let label_width = labels.iter().map(|l| l.len()).max().unwrap_or(0);
    let count_width = widest.to_string().len();
    out.push('\n');
    for ((_, count), label) in rows.iter().zip(&labels) {
        let width = (count * 40).div_ceil(widest) as usize;
        let _ = writeln!(
            out,
            "  ≤ {label:>label_width$} │{count:>count_width$} {}",
            "█".repeat(width)
        );
    }
    out
}

/// The hosts that took the most time, as a table (nothing when there is none).
fn top_hosts(s: &BatchSummary) -> String {
    let hosts = s.top_hosts(REPORT_HOSTS);
    if hosts.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let width = hosts.iter().map(|(h, _)| h.len()).max().unwrap_or(0).max(4);
    let _ = writeln!(
        out,
        "\ntop hosts by time ({} of {}; requests count every attempt):",
        hosts.len(),
        s.hosts.len()
    );
    let _ = writeln!(
        out,
        "  {:<width$} {:>9} {:>9} {:>8} {:>6} {:>9} {:>10} {:>10}",
        "host", "requests", "ok", "retries", "429s", "paused", "p50", "p99"
    );
    for (host, h) in hosts {
        let (p50, p99) = match h.latency.is_empty() {
            true => ("-".to_owned(), "-".to_owned()),
            false => (ms(h.latency.quantile(0.50)), ms(h.latency.quantile(0.99))),
        };
        let _ = writeln!(
            out,
            "  {host:<width$} {:>9} {:>9} {:>8} {:>6} {:>7.1} s {p50:>10} {p99:>10}",
            h.requests,
            h.ok,
            h.retries,
            h.throttled,
            h.paused.as_secs_f64()
        );
    }
    out
}

/// `histogram.rows(wanted)`, or fewer rows if the rows would be narrower than the histogram's
/// buckets. A bucket is up to 1/64 of its values wide (about 1.6 ms at 100 ms), and rows
/// narrower than that come out alternately full and empty: ten rows over 100 to 106 ms, say.
fn histogram_rows(histogram: &LatencyHistogram, wanted: usize) -> Vec<(Duration, u64)> {
    let rows = histogram.rows(wanted);
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return rows;
    };
    let step = match rows.get(1) {
        Some(second) => second.0.saturating_sub(first.0),
        None => return rows,
    };
    let bucket = last.0 / 64;
    if step >= bucket {
        return rows;
    }
    let span = last.0.saturating_sub(first.0) + step;
    // Rounded down: a bucket may be as narrow as 1/128 of its values, so this is at most the
    // number of buckets the values span.
    let fit = (span.as_secs_f64() / bucket.as_secs_f64()).floor() as usize;
    histogram.rows(fit.clamp(1, wanted))
}

/// How the seed's workload went against its floor and against running it serially: both
/// computed from the workload, not run.
fn seed_comparison(s: &BatchSummary, total: usize, concurrency: usize, delay: Duration) -> String {
    let delay_s = delay.as_secs_f64();
    let waves = total.div_ceil(concurrency);
    let floor = waves as f64 * delay_s;
    let serial = total as f64 * delay_s;
    let took = s.elapsed.as_secs_f64();
    let mut out = String::new();
    if s.failed > 0 {
        let _ = writeln!(
            out,
            "\nnot compared with the seed's numbers: {} of the {total} requests failed",
            s.failed
        );
        return out;
    }
    let _ = writeln!(
        out,
        "\nagainst the seed's numbers ({total} requests of {delay_s} s, {concurrency} at a time):"
    );
    let _ = writeln!(
        out,
        "  floor      {floor:>8.3} s   ⌈{total} / {concurrency}⌉ × {delay_s} s: every slot busy, no overhead"
    );
    let _ = writeln!(
        out,
        "  volley     {took:>8.3} s   {:+.1} % over the floor",
        (took / floor - 1.0) * 100.0
    );
    let _ = writeln!(
        out,
        "  serially   {serial:>8.3} s   {total} × {delay_s} s, one at a time: {:.0}× slower",
        serial / took
    );
    if total == SEED_REQUESTS && concurrency == DEFAULT_CONCURRENCY && delay == SEED_DELAY {
        out.push_str(
            "  the seed:  requests 55.2 s, grequests 4.12 s, aiohttp 1.78 s, tornado+curl 1.07 s\n",
        );
    }
    out
}

/// `d` in milliseconds, with two decimals below 10 ms and one above.
fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// A byte count for people, with the exact count when it is rounded.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit} ({n} bytes)")
}

/// `key × count` pairs, or `none`.
fn tally<K: std::fmt::Display>(pairs: impl Iterator<Item = (K, u64)>) -> String {
    let parts: Vec<String> = pairs.map(|(k, n)| format!("{k} × {n}")).collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The embedded server's settings: HTTPS with the TEST-ONLY certificate if `tls`.
fn server_config(tls: bool) -> Result<volley_testserver::ServerConfig, String> {
    let config = volley_testserver::ServerConfig::default();
    #[cfg(feature = "tls")]
    if tls {
        use volley_testserver::testcert;
        return config
            .tls(testcert::CERT_PEM, testcert::KEY_PEM)
            .map_err(|e| format!("cannot load the test certificate: {e}"));
    }
    let _ = tls;
    Ok(config)
}

/// Trusts the TEST-ONLY CA of the embedded server's certificate, if `tls`.
fn trust_test_ca(
    builder: volley::ClientBuilder,
    tls: bool,
) -> Result<volley::ClientBuilder, String> {
    #[cfg(feature = "tls")]
    if tls {
        let ca = volley::Certificate::from_pem(volley_testserver::testcert::CA_PEM)
            .map_err(|e| format!("{e:#}"))?;
        return Ok(builder.add_root_certificate(ca));
    }
    let _ = tls;
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> impl Iterator<Item = String> {
        args.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Regression (issue 14): a batch whose every request failed exited 0. Five URLs on a
    /// port nobody listens on: the run ends with status 1.
    #[test]
    fn failed_requests_exit_1() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port(); // the listener is closed again: connecting is refused
        let url = format!("http://127.0.0.1:{port}/x?{{n}}");
        assert_eq!(run(argv(&["--json", "-n", "5", &url])), 1);
    }

    /// Every request answered (the embedded server, five of its 100 ms requests): status 0,
    /// on one loop and on two.
    #[test]
    fn answered_requests_exit_0() {
        assert_eq!(run(argv(&["--json", "-n", "5"])), 0);
        assert_eq!(run(argv(&["--json", "-n", "5", "--threads", "2"])), 0);
    }

    /// Bad arguments: status 2.
    #[test]
    fn bad_arguments_exit_2() {
        assert_eq!(run(argv(&["-c", "0"])), 2);
        assert_eq!(run(argv(&["ftp://example.test/"])), 2);
        assert_eq!(run(argv(&["--resume"])), 2);
        assert_eq!(run(argv(&["-i", "-", "-n", "3"])), 2);
        assert_eq!(run(argv(&["--rate", "-1"])), 2);
        assert_eq!(run(argv(&["--rate", "inf"])), 2);
        assert_eq!(run(argv(&["--max-retry-after", "-1"])), 2);
        assert_eq!(run(argv(&["--threads", "0"])), 2);
        assert_eq!(run(argv(&["--threads", "two"])), 2);
    }

    /// The new flags and their defaults.
    #[test]
    fn parses_the_bulk_flags() {
        let args = parse_args(argv(&[])).unwrap();
        assert_eq!(args.retries, DEFAULT_RETRIES);
        assert_eq!(args.max_retry_after, DEFAULT_MAX_RETRY_AFTER);
        assert!(args.input.is_none() && args.output.is_none() && args.save.is_none());
        assert_eq!(args.threads, 1);
        let args = parse_args(argv(&[
            "-i",
            "-",
            "-o",
            "out.jsonl",
            "--resume",
            "--per-host",
            "4",
            "--rate",
            "2.5",
            "--retries",
            "0",
            "--max-retry-after",
            "0",
            "--save",
            "bodies",
            "--threads",
            "4",
        ]))
        .unwrap();
        assert_eq!(args.input.as_deref(), Some("-"));
        assert_eq!(args.output.as_deref(), Some(Path::new("out.jsonl")));
        assert!(args.resume);
        assert_eq!(args.per_host, Some(4));
        assert_eq!(args.rate, Some(2.5));
        assert_eq!(args.retries, 0);
        assert_eq!(args.max_retry_after, Duration::ZERO);
        assert_eq!(args.save.as_deref(), Some(Path::new("bodies")));
        assert_eq!(args.threads, 4);
    }

    /// The hash of `--resume` and `--save` is 64-bit FNV-1a: its published test vectors, and
    /// the test server's implementation.
    /// The hand-written line is what serde_json would write for the same object.
    #[test]
    fn lines_are_the_json_objects_they_stand_for() {
        for line in [
            Line {
                url: "http://a.test/\"q\"?x=\u{e9}".into(),
                status: Some(503),
                bytes: 12,
                attempts: 3,
                elapsed_ms: 1.234,
                error: Some("boom \n line".into()),
                error_kind: Some("connect"),
                retry_reasons: vec!["status 503".into(), "connect error".into()],
                saved: Some("/tmp/x".into()),
                gave_up: true,
                save_failed: false,
            },
            Line {
                url: String::new(),
                status: None,
                bytes: 0,
                attempts: 0,
                elapsed_ms: 0.0,
                error: None,
                error_kind: None,
                retry_reasons: Vec::new(),
                saved: None,
                gave_up: false,
                save_failed: false,
            },
        ] {
            let mut written = Vec::new();
            line.write_json(&mut written);
            let expected = json!({
                "url": line.url, "status": line.status, "bytes": line.bytes,
                "attempts": line.attempts, "elapsed_ms": line.elapsed_ms, "error": line.error,
                "error_kind": line.error_kind, "retry_reasons": line.retry_reasons,
                "saved": line.saved,
            });
            assert_eq!(String::from_utf8(written).unwrap(), expected.to_string());
        }
    }

    #[test]
    fn url_hash_is_fnv1a_64() {
        assert_eq!(url_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(url_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(url_hash("foobar"), 0x8594_4171_f739_67e8);
        let url = "http://127.0.0.1:8080/get?i=1";
        assert_eq!(url_hash(url), volley_testserver::fnv1a64(url.as_bytes()));
    }

    /// Lines that are not URLs this tool fetches, and why.
    #[test]
    fn checks_urls() {
        assert!(check_url("http://a.test/x").is_ok());
        assert!(matches!(check_url("a.test/x"), Err(BadUrl::Syntax(_))));
        assert!(matches!(check_url("mailto:a@b.test"), Err(BadUrl::Scheme)));
        assert!(matches!(
            check_url("http://a.test/\rx"),
            Err(BadUrl::Control)
        ));
        assert!(matches!(
            check_url("http://a.test/\tx"),
            Err(BadUrl::Control)
        ));
        // The URL as written to -o and compared by --resume is the parsed one.
        assert_eq!(
            check_url("HTTP://A.test").unwrap().as_str(),
            "http://a.test/"
        );
    }
}
