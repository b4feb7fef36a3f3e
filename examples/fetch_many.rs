//! cargo run --release --example fetch_many -- [-c N] [-n N] [-m SECS] [--json] [--tls] [--system-dns] [URL...]
//!
//! Fetch many URLs at once, from one thread, and say how it went: volley's main job.
//!
//! ```text
//! cargo run --release --example fetch_many                        # the seed's workload, below
//! cargo run --release --example fetch_many -- -c 1000 -n 20000    # more of it
//! cargo run --release --example fetch_many -- -n 1000 http://127.0.0.1:8080/get
//! cargo run --release --example fetch_many -- --json -n 100       # one JSON object on stdout
//! cargo run --release --example fetch_many -- --tls               # the same over HTTPS
//! ```
//!
//! With no URL it starts the embedded httpbin-like server on a free loopback port and replays
//! seeds/001: 500 requests to an endpoint that answers after 100 ms, at most 100 in flight.
//! One at a time that is 500 × 0.1 s = 50 s (the seed's `requests` loop took 55 s); with 100
//! in flight it cannot take less than 500 / 100 × 0.1 s = 0.5 s. The seed's best Python took
//! 1.07 s (tornado with curl) and 1.78 s (aiohttp). The summary says how close volley came.
//!
//! - `-c N`: at most N requests in flight (default 100).
//! - `-n N`: send N requests in all, cycling through the URLs (default: each URL once; 500
//!   with no URL). `{n}` in a URL is replaced by the request's sequence number, from 0, which
//!   makes every URL distinct, as the seed's random suffixes did, so that no cache answers.
//! - `-m SECS`: the longest one request may take, from sending it to the end of its body.
//! - `--tls`: run the embedded server over HTTPS, with the TEST-ONLY certificate of
//!   `volley_testserver::testcert` (for 127.0.0.1 and localhost), which the client trusts with
//!   `add_root_certificate`. `https://` URLs need no flag: the client speaks both.
//! - `--system-dns`: resolve names with `getaddrinfo` on helper threads
//!   (`volley::Resolver::system()`) instead of the default, volley's own resolver on the
//!   event loop (`NativeResolver`), whose counters the report then shows.
//! - `--json`: print only one JSON object on stdout instead of the report, a stable interface
//!   for scripts: `{"requests", "ok", "failed", "bytes", "elapsed_s", "requests_per_s",
//!   "latency_ms": {"p50", "p90", "p99", "max"}, "threads"}`, all numbers; `threads` is the
//!   most threads the process had during the batch (0 where `/proc` is missing).
//!
//! The report ends with that thread count (one: the event loop does everything, name
//! resolution included, unless `--system-dns`) and, when names were looked up, the
//! resolver's counters: lookups answered locally, from its cache, by sharing a lookup in
//! flight, or by asking, and the queries sent.
//!
//! On a terminal, a progress bar runs on stderr meanwhile. Exit status: 0 when every request
//! got a response (whatever its status code, as curl without `-f`); 1 when any request
//! failed (no response: refused, reset, timed out, malformed...), after the report, which
//! counts them and quotes the first errors, or when the batch cannot run at all (no runtime,
//! no server); 2 for bad arguments.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use volley::batch::{BatchSummary, LatencyHistogram, Progress};
use volley::{Client, DnsStats, NativeResolver, Resolver, Runtime};

/// The seed's workload: how many requests, how long each one waits, how many at once.
const SEED_REQUESTS: usize = 500;
const SEED_DELAY: Duration = Duration::from_millis(100);
const DEFAULT_CONCURRENCY: usize = 100;

/// Descriptors kept for everything but connections: stdio, the reactor, the listener, slack.
const RESERVED_FDS: u64 = 64;

/// How many error messages the report quotes in full.
const QUOTED_ERRORS: usize = 3;

const USAGE: &str =
    "usage: fetch_many [-c N] [-n N] [-m SECS] [--json] [--tls] [--system-dns] [URL...]
exit status: 0 if every request got a response (any status code), 1 if any request failed
or the batch could not run, 2 for bad arguments";

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
    };
    let positive = |name: &str, value: Option<String>| -> Result<usize, String> {
        let value = value.ok_or_else(|| format!("{name} needs a value"))?;
        match value.parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name} wants a positive integer, not {value:?}")),
        }
    };
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "-c" | "--concurrency" => args.concurrency = positive("-c", argv.next())?,
            "-n" | "--requests" => args.requests = Some(positive("-n", argv.next())?),
            "-m" | "--max-time" => {
                let value = argv.next().ok_or("-m needs a value")?;
                let secs: f64 = value
                    .parse()
                    .map_err(|_| format!("-m wants seconds, not {value:?}"))?;
                match Duration::try_from_secs_f64(secs) {
                    Ok(t) if !t.is_zero() => args.max_time = Some(t),
                    _ => {
                        return Err(format!(
                            "-m wants a positive number of seconds, not {value:?}"
                        ))
                    }
                }
            }
            "--json" => args.json = true,
            "--tls" if cfg!(feature = "tls") => args.tls = true,
            "--system-dns" => args.system_dns = true,
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}"))
            }
            url => {
                // Check each URL now, with `{n}` filled in, rather than fail it n times later.
                let parsed = url::Url::parse(&url.replace("{n}", "0"))
                    .map_err(|e| format!("not a URL: {url:?} ({e})"))?;
                let schemes: &[&str] = if cfg!(feature = "tls") {
                    &["http", "https"]
                } else {
                    &["http"]
                };
                if !schemes.contains(&parsed.scheme()) {
                    return Err(format!(
                        "{url:?}: volley speaks {} only",
                        schemes.join(", ")
                    ));
                }
                args.urls.push(url.to_owned());
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    ExitCode::from(run(std::env::args().skip(1)))
}

/// Everything `main` does, returning the exit status (see the module docs).
fn run(argv: impl Iterator<Item = String>) -> u8 {
    let args = match parse_args(argv) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("fetch_many: {message}");
            }
            eprintln!("{USAGE}");
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
    match rt.block_on(fetch_many(args)) {
        Ok(summary) => exit_status(&summary),
        Err(message) => {
            eprintln!("fetch_many: {message}");
            1
        }
    }
}

/// The exit status of a batch that ran: 1 if any request failed, else 0.
fn exit_status(summary: &BatchSummary) -> u8 {
    u8::from(summary.failed > 0)
}

/// Runs the batch and prints its report; returns its summary.
async fn fetch_many(mut args: Args) -> Result<BatchSummary, String> {
    // No URL: serve ourselves. The embedded server runs as tasks on this same runtime, so the
    // one thread both sends the requests and answers them; its /delay is a timer, not a thread.
    let server = if args.urls.is_empty() {
        let addr = "127.0.0.1:0".parse().expect("a valid address");
        let server = volley_testserver::Server::bind_with(addr, server_config(args.tls)?)
            .map_err(|e| format!("cannot start the embedded server: {e}"))?;
        Some(server)
    } else {
        None
    };
    let urls = match &server {
        Some(server) => vec![server.url(&format!("/delay/{}?n={{n}}", SEED_DELAY.as_secs_f64()))],
        None => args.urls.clone(),
    };
    if server.is_some() {
        args.concurrency = fit_server_and_client(args.concurrency);
    }
    let total = match (args.requests, &server) {
        (Some(n), _) => n,
        (None, Some(_)) => SEED_REQUESTS,
        (None, None) => urls.len(),
    };

    let mut builder = trust_test_ca(Client::builder(), args.tls)?;
    if let Some(t) = args.max_time {
        builder = builder.timeout(t);
    }
    // The default resolver, made here so that its counters can be read (a clone shares them).
    let dns = NativeResolver::from_system();
    builder = match args.system_dns {
        true => builder.dns_resolver(Resolver::system()),
        false => builder.dns_resolver(dns.clone()),
    };
    let client = builder.build();

    if !args.json {
        let what = match urls.as_slice() {
            [url] => url.clone(),
            many => format!("{} URLs", many.len()),
        };
        println!(
            "fetching {total} × {what}, at most {} at a time\n",
            args.concurrency
        );
    }

    // The requests are made lazily, as slots free up: request i is URL i mod len with `{n}`
    // replaced by i. The range has an exact length, so the batch (and the bar) know the total.
    let requests = (0..total).map(|i| urls[i % urls.len()].replace("{n}", &i.to_string()));

    let bar = progress_bar(total as u64);
    let threads = Rc::new(Cell::new(thread_count()));
    let mut sampled = Duration::ZERO;
    let most_threads = threads.clone();
    let progress_bar = bar.clone();
    let batch = client
        .fetch_all(requests)
        .concurrency(args.concurrency)
        .keep_bodies(false) // only the counts matter: bodies are read, counted and dropped
        .on_progress(move |p: &Progress| {
            if p.elapsed >= sampled + THREAD_SAMPLE_EVERY {
                sampled = p.elapsed;
                most_threads.set(most_threads.get().max(thread_count()));
            }
            if let Some(bar) = &progress_bar {
                bar.set_position(p.done);
                let rate = p.done as f64 / p.elapsed.as_secs_f64().max(1e-3);
                bar.set_message(format!(
                    "{} failed, {} in flight, {rate:.0} req/s",
                    p.failed, p.in_flight
                ));
            }
        });

    // Results arrive in completion order. We keep none of them, only the first few error
    // messages: the summary the stream keeps is enough for the report, in constant memory.
    let mut stream = batch.stream();
    let mut quoted = Vec::new();
    while let Some(result) = stream.next().await {
        if let Err(e) = &result.outcome {
            if quoted.len() < QUOTED_ERRORS {
                // `{:#}`: the message and its causes, on one line.
                quoted.push(format!("{e:#}"));
            }
        }
    }
    let summary = stream.summary().clone();
    drop(stream);
    threads.set(threads.get().max(thread_count()));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    if args.json {
        println!("{}", json(&summary, threads.get()));
        return Ok(summary);
    }
    print!("{}", report(&summary));
    print!(
        "{}",
        resolution(threads.get(), (!args.system_dns).then(|| dns.stats()))
    );
    if !quoted.is_empty() {
        println!("\nfirst errors:");
        for message in &quoted {
            println!("  {message}");
        }
    }
    if server.is_some() {
        print!(
            "{}",
            seed_comparison(&summary, total, args.concurrency, SEED_DELAY)
        );
    }
    Ok(summary)
}

/// The concurrency to use when the embedded server runs in this process: at most `wanted`,
/// and few enough for the descriptors allowed.
///
/// The batch keeps its own sockets within the open-file limit, but it does not know about the
/// server: here every connection costs two descriptors, the client's end and the server's.
/// Past the limit the server's `accept` fails with `EMFILE` while the client's connect has
/// already succeeded (the kernel completes it), and those requests wait for a response until
/// they time out. So raise the limit to the hard one, and stay under half of it.
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

/// A progress bar on stderr if stderr is a terminal, else none.
fn progress_bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let style =
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar:.cyan/blue}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(style);
    Some(bar)
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// The stable `--json` object: counts, bytes, seconds and milliseconds, all plain numbers.
fn json(s: &BatchSummary, threads: usize) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        concat!(
            r#"{{"requests":{},"ok":{},"failed":{},"bytes":{},"elapsed_s":{:.6},"#,
            r#""requests_per_s":{:.3},"latency_ms":{{"p50":{:.3},"p90":{:.3},"p99":{:.3},"max":{:.3}}},"#,
            r#""threads":{}}}"#
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

/// The human report: a table of counts, the latency percentiles and a small histogram.
fn report(s: &BatchSummary) -> String {
    let mut out = String::new();
    let rows = [
        ("requests", s.requests.to_string()),
        ("ok", format!("{} (a complete response, any status)", s.ok)),
        ("failed", s.failed.to_string()),
        ("bytes", bytes(s.bytes)),
        ("elapsed", format!("{:.3} s", s.elapsed.as_secs_f64())),
        ("req/s", format!("{:.1}", s.requests_per_s())),
        ("statuses", tally(s.statuses.iter().map(|(k, v)| (k, *v)))),
        ("errors", tally(s.errors.iter().map(|(k, v)| (k, *v)))),
    ];
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

    /// Every request answered (the embedded server, five of its 100 ms requests): status 0.
    #[test]
    fn answered_requests_exit_0() {
        assert_eq!(run(argv(&["--json", "-n", "5"])), 0);
    }

    /// Bad arguments: status 2.
    #[test]
    fn bad_arguments_exit_2() {
        assert_eq!(run(argv(&["-c", "0"])), 2);
        assert_eq!(run(argv(&["ftp://example.test/"])), 2);
    }
}
