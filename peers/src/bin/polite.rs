//! Mass fetching from rate-limited hosts: volley's host scheduler against reqwest with a
//! hand-written retry loop, side by side (issue 16's "numbers to reach").
//!
//! ```text
//! cargo run --release --manifest-path peers/Cargo.toml --bin polite -- --rounds 3
//! ```
//!
//! # The servers
//!
//! Three `volley_testserver` servers on their own threads, on 127.0.0.1, 127.0.0.2 and
//! 127.0.0.3: three hosts. Each URL is `/limit/20?window_ms=1000&retry_after=F&key=K&i=N`:
//! each host admits 20 requests in any one-second window and answers the others 429 with a
//! `Retry-After`, in seconds on the first two hosts and as an HTTP-date on the third. The
//! server counts the 429s it sends (`limited`) and the requests that arrive during a pause
//! it announced, more than 100 ms after announcing it (`early`: requests sent after the
//! client could have read the 429). `key` is new for every run, so each starts with empty
//! windows.
//!
//! # The scenarios
//!
//! 600 URLs, 200 per host, interleaved; at most 100 requests in flight.
//!
//! - `rate`: the client is told 18 requests per second per host. The floor is
//!   200 / 18 = 11.1 s. Goal: every URL ends 200, at most 2 % of the requests the servers
//!   see are answered 429, and the run takes at most 1.15 × the floor.
//! - `told`: no rate; the servers' 429s and `Retry-After`s are all the client learns. The
//!   floor is 200 / 20 = 10 s. Goal: every URL ends 200, within 2 × the floor, and no early
//!   request.
//!
//! # The clients
//!
//! - `volley`: one `fetch_all` batch, `.concurrency(100)`, with `.rate(18.0, 1)` in `rate`;
//!   default retry policy (two retries; waiting out a `Retry-After` does not spend one, up to
//!   ten times) and default `max_retry_after` (60 s).
//! - `reqwest`: tokio current-thread, one task per URL under a 100-permit semaphore, and the
//!   retry loop a user would write: on 429 or 503, sleep for the `Retry-After` (seconds or
//!   HTTP-date; 1 s if absent or invalid) while holding the permit, then try again, at most
//!   10 times; in `rate`, each host's requests are spaced 1/18 s apart by a per-host next-slot
//!   clock. It pauses the request, not the host: the others of the host keep going.
//!
//! The table gives, per scenario and client, the median over rounds of the elapsed time and
//! its ratio to the floor, and the sums of URLs that ended 200, requests the servers saw,
//! 429s and early requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use volley_peers::{install_ring_provider, median};
use volley_testserver::{Server, ServerThread};

const PER_HOST: usize = 200;
const LIMIT: u32 = 20;
const RATE: f64 = 18.0;
const CONCURRENCY: usize = 100;
const MAX_WAITS: u32 = 10;

/// What one run saw.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    elapsed: Duration,
    ended_200: usize,
    requests: u64,
    limited: u64,
    early: u64,
}

fn urls(servers: &[ServerThread], key: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for i in 0..PER_HOST {
        for (h, server) in servers.iter().enumerate() {
            let form = if h == 2 { "date" } else { "secs" };
            urls.push(server.url(&format!(
                "/limit/{LIMIT}?window_ms=1000&retry_after={form}&key={key}&i={i}"
            )));
        }
    }
    urls
}

fn totals(servers: &[ServerThread]) -> (u64, u64, u64) {
    servers.iter().fold((0, 0, 0), |(r, l, e), s| {
        let st = s.stats();
        (r + st.requests, l + st.limited, e + st.early)
    })
}

fn measure(servers: &[ServerThread], key: &str, rate: bool, client: &str) -> Run {
    let urls = urls(servers, key);
    let before = totals(servers);
    let started = Instant::now();
    let ended_200 = match client {
        "volley" => volley_run(urls, rate),
        "reqwest" => reqwest_run(urls, rate),
        other => panic!("unknown client {other}"),
    };
    let elapsed = started.elapsed();
    let after = totals(servers);
    Run {
        elapsed,
        ended_200,
        requests: after.0 - before.0,
        limited: after.1 - before.1,
        early: after.2 - before.2,
    }
}

fn volley_run(urls: Vec<String>, rate: bool) -> usize {
    let rt = volley::Runtime::new().expect("volley runtime");
    rt.block_on(async {
        let mut batch = volley::Client::new()
            .fetch_all(urls)
            .concurrency(CONCURRENCY)
            .keep_bodies(false);
        if rate {
            batch = batch.rate(RATE, 1);
        }
        let report = batch.run().await;
        report.summary.statuses.get(&200).copied().unwrap_or(0) as usize
    })
}

/// The wait a 429's `Retry-After` asks for: seconds or an HTTP-date; 1 s otherwise.
fn told_wait(response: &reqwest::Response) -> Duration {
    let value = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Duration::from_secs(secs);
    }
    match httpdate::parse_http_date(value) {
        Ok(date) => date
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
        Err(_) => Duration::from_secs(1),
    }
}

fn reqwest_run(urls: Vec<String>, rate: bool) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    install_ring_provider();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        // Each host's next free slot, for the rate.
        let slots: Rc<std::cell::RefCell<HashMap<String, Instant>>> = Rc::default();
        let local = tokio::task::LocalSet::new();
        let mut handles = Vec::new();
        for url in urls {
            let client = client.clone();
            let permits = permits.clone();
            let slots = slots.clone();
            handles.push(local.spawn_local(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore");
                let host = url::Url::parse(&url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default();
                for _ in 0..=MAX_WAITS {
                    if rate {
                        let at = {
                            let mut slots = slots.borrow_mut();
                            let next = slots.entry(host.clone()).or_insert_with(Instant::now);
                            let at = (*next).max(Instant::now());
                            *next = at + Duration::from_secs_f64(1.0 / RATE);
                            at
                        };
                        tokio::time::sleep_until(at.into()).await;
                    }
                    let Ok(response) = client.get(&url).send().await else {
                        return false;
                    };
                    let status = response.status().as_u16();
                    if status == 429 || status == 503 {
                        let wait = told_wait(&response);
                        let _ = response.bytes().await;
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let _ = response.bytes().await;
                    return status == 200;
                }
                false
            }));
        }
        local
            .run_until(async {
                let mut ok = 0;
                for handle in handles {
                    if handle.await.unwrap_or(false) {
                        ok += 1;
                    }
                }
                ok
            })
            .await
    })
}

fn main() {
    let mut rounds = 3;
    let mut clients = vec!["volley".to_owned(), "reqwest".to_owned()];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--clients" => {
                clients = args
                    .next()
                    .expect("--clients LIST")
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let servers: Vec<ServerThread> = (1..=3)
        .map(|i| {
            let addr: SocketAddr = format!("127.0.0.{i}:0").parse().unwrap();
            Server::spawn_thread(addr).expect("server")
        })
        .collect();
    let scenarios = [
        ("rate", true, PER_HOST as f64 / RATE),
        ("told", false, PER_HOST as f64 / f64::from(LIMIT)),
    ];
    let mut runs: HashMap<(String, String), Vec<Run>> = HashMap::new();
    for round in 0..rounds {
        for (name, rate, _) in scenarios {
            let mut order = clients.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for client in &order {
                let key = format!("{name}-{client}-{round}");
                let run = measure(&servers, &key, rate, client);
                println!(
                    "round {round} {name:4} {client:8} {:6.2} s  200: {:3}/600  requests {:4}  429s {:3}  early {}",
                    run.elapsed.as_secs_f64(),
                    run.ended_200,
                    run.requests,
                    run.limited,
                    run.early
                );
                runs.entry((name.to_owned(), client.clone()))
                    .or_default()
                    .push(run);
            }
        }
    }
    println!(
        "\nmedians over {rounds} rounds (600 URLs, 3 hosts, 20 per 1 s window each, c={CONCURRENCY}):"
    );
    println!("scenario client    elapsed  × floor  ended 200  requests  429 share  early");
    for (name, _, floor) in scenarios {
        for client in &clients {
            let Some(list) = runs.get(&(name.to_owned(), client.clone())) else {
                continue;
            };
            let secs: Vec<f64> = list.iter().map(|r| r.elapsed.as_secs_f64()).collect();
            let elapsed = median(secs);
            let sum = |f: fn(&Run) -> u64| list.iter().map(f).sum::<u64>();
            let requests = sum(|r| r.requests);
            let limited = sum(|r| r.limited);
            println!(
                "{name:8} {client:8} {elapsed:6.2} s  {:6.2}  {:>4}/{:<4}  {requests:8}  {:8.2} %  {}",
                elapsed / floor,
                sum(|r| r.ended_200 as u64),
                600 * list.len(),
                100.0 * limited as f64 / requests.max(1) as f64,
                sum(|r| r.early)
            );
        }
    }
}
