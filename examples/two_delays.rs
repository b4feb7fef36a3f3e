//! cargo run --release --example two_delays -- [--quick] [URL...]
//!
//! The seed's first program (seeds/000): make two HTTP requests in parallel. One asks httpbin
//! to wait 5 s before it answers, the other 3 s; a correct program has both answers after
//! 5 s, not 8.
//!
//! ```text
//! cargo run --release --example two_delays                     # /delay/5 and /delay/3: ~5 s
//! cargo run --release --example two_delays -- --quick          # /delay/0.5 and /delay/0.3 (CI)
//! cargo run --release --example two_delays -- http://127.0.0.1:8080/delay/2 http://127.0.0.1:8080/get
//! ```
//!
//! With no URL it starts the embedded httpbin-like server on a free loopback port, on the same
//! thread, and asks it for `/delay/5` and `/delay/3`. The seed wrote its own event loop around
//! `select()` and drove generator tasks with it; here the loop is volley's, and each request is
//! a task made with `volley::spawn`. Each task prints its line the moment its response is
//! complete, so the lines come out in the order the responses finish (asyncio's
//! `as_completed`): `/delay/3` first, although it was started second. Then `main` awaits the
//! two `JoinHandle`s (asyncio's `gather`) for the total.
//!
//! The exit status is 0 if every request got a response and, for the built-in pair, if the
//! total was at least the longer delay (no timer fired early) and less than the two added up
//! (they really overlapped); else 1. Bad arguments exit 2.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use volley::{Client, Runtime};

const USAGE: &str = "usage: two_delays [--quick] [URL...]";

/// The seed's two delays, in seconds.
const DELAYS: [f64; 2] = [5.0, 3.0];

/// What the command line asks for.
#[derive(Debug)]
struct Args {
    /// Divide the built-in delays by 10.
    quick: bool,
    urls: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        urls: Vec::new(),
    };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            url => args.urls.push(url.to_owned()),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("two_delays: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("two_delays: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(two_delays(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("two_delays: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What one task found: how long its response took and what it was.
#[derive(Debug)]
struct Fetched {
    elapsed: Duration,
    outcome: Result<(u16, usize), volley::Error>,
}

/// Runs the requests at once; returns whether the run passed its checks.
async fn two_delays(args: Args) -> Result<bool, String> {
    // No URL: serve ourselves, on this thread. The server's /delay waits on a timer, so while
    // both requests wait, the thread is idle in the reactor's poll, as the seed's was in
    // select().
    let scale = if args.quick { 10.0 } else { 1.0 };
    let server = if args.urls.is_empty() {
        let addr = "127.0.0.1:0".parse().expect("a valid address");
        let server = volley_testserver::Server::bind(addr)
            .map_err(|e| format!("cannot start the embedded server: {e}"))?;
        Some(server)
    } else {
        None
    };
    let paths: Vec<String> = DELAYS
        .iter()
        .map(|secs| format!("/delay/{}", secs / scale))
        .collect();
    let urls: Vec<String> = match &server {
        Some(server) => paths.iter().map(|path| server.url(path)).collect(),
        None => args.urls.clone(),
    };
    match &server {
        Some(server) => println!(
            "two_delays: GET {} at the same time, from one thread (embedded server at {})\n",
            paths.join(" and "),
            server.url("/"),
        ),
        None => println!(
            "two_delays: {} URLs at the same time, from one thread\n",
            urls.len()
        ),
    }

    let client = Client::new();
    let start = Instant::now();
    // Start every request before awaiting any: `spawn` queues a task and returns at once.
    // Awaiting each request right after starting it would run them one after the other.
    let handles: Vec<_> = urls
        .iter()
        .cloned()
        .map(|url| {
            let client = client.clone();
            volley::spawn(async move {
                // Each `.await` below suspends this task until its socket is ready; the other
                // task runs meanwhile.
                let outcome = async {
                    let response = client.get(url.as_str()).send().await?;
                    let status = response.status().as_u16();
                    let body = response.bytes().await?;
                    Ok((status, body.len()))
                }
                .await;
                let elapsed = start.elapsed();
                // Printed by the task itself, as soon as its response is complete.
                match &outcome {
                    Ok((status, len)) => println!(
                        "  {:>7.3} s  {status}  {url}  ({len} bytes)",
                        elapsed.as_secs_f64()
                    ),
                    Err(e) => println!("  {:>7.3} s  failed: {e:#}", elapsed.as_secs_f64()),
                }
                Fetched { elapsed, outcome }
            })
        })
        .collect();

    // Gather: wait for every task. They have all been running since they were spawned, so
    // awaiting the slow one first costs nothing.
    let mut fetched = Vec::with_capacity(handles.len());
    for handle in handles {
        fetched.push(
            handle
                .await
                .map_err(|e| format!("a request task failed: {e}"))?,
        );
    }
    let total = start.elapsed();

    let failed = fetched.iter().filter(|f| f.outcome.is_err()).count();
    let sum: Duration = fetched.iter().map(|f| f.elapsed).sum();
    let longest = fetched.iter().map(|f| f.elapsed).max().unwrap_or_default();
    println!(
        "\n  total    {:>7.3} s  {} responses, in about the slowest one's time ({:.3} s)",
        total.as_secs_f64(),
        fetched.len() - failed,
        longest.as_secs_f64(),
    );
    println!(
        "  serially {:>7.3} s  the times added up: one request after the other",
        sum.as_secs_f64()
    );
    if server.is_some() && !args.quick {
        println!(
            "  the seed {:>7.3} s  /delay/5 and /delay/3 over the Internet to httpbin.org",
            5.16
        );
    }

    if failed > 0 {
        println!("FAILED: {failed} request(s) got no response");
        return Ok(false);
    }
    if server.is_some() {
        // The built-in pair must overlap: at least the longer delay, less than both added up.
        let at_least = Duration::from_secs_f64(DELAYS[0] / scale);
        let less_than = Duration::from_secs_f64(DELAYS.iter().sum::<f64>() / scale);
        if total < at_least || total >= less_than {
            println!(
                "FAILED: expected between {:.3} s and {:.3} s",
                at_least.as_secs_f64(),
                less_than.as_secs_f64()
            );
            return Ok(false);
        }
    }
    Ok(true)
}
