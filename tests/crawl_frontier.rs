//! The `crawl` example's `--frontier` mode as a command-line tool: two worker processes crawl
//! one site through a real Redis (started per test on a loopback port; see
//! `util/redis_server.rs`), each page fetched once by the two of them; and a Redis that is not
//! there is a clear error. Each test runs the example's binary against a test server on
//! loopback.
//!
//! The binary is built (or found fresh) by `util::example::build`.
#![cfg(feature = "redis")]

mod util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::redis_server::RedisServer;
use volley::frontier::{Frontier, RedisFrontier};

/// The longest one run of the binary may take before the test kills it and fails.
const WATCHDOG: Duration = Duration::from_secs(60);

/// The pages of the test server's site `/links/40/{i}`.
const PAGES: usize = 40;

/// The example's binary, built (or found fresh) once per test process.
fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| util::example::build("crawl"))
}

/// The binary with `args`, stdout and stderr captured.
fn start(args: &[&str]) -> Child {
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crawl")
}

/// Waits for every child, killing all of them and failing past [`WATCHDOG`] (counted from
/// the call). Their output is a line per page and a summary, far below a pipe's buffer, so
/// reading it after the exit cannot block them.
fn finish_all(children: Vec<Child>) -> Vec<Output> {
    let deadline = Instant::now() + WATCHDOG;
    let mut children: Vec<Option<Child>> = children.into_iter().map(Some).collect();
    while children
        .iter_mut()
        .flatten()
        .any(|c| c.try_wait().unwrap().is_none())
    {
        if Instant::now() > deadline {
            let mut stderr = String::new();
            for child in children.iter_mut() {
                let mut child = child.take().unwrap();
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                stderr += &String::from_utf8_lossy(&out.stderr);
            }
            panic!("crawl still running after {WATCHDOG:?}; stderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    children
        .into_iter()
        .map(|c| c.unwrap().wait_with_output().unwrap())
        .collect()
}

/// The exit code; fails on a signal or a panic message.
fn code(out: &Output) -> i32 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    out.status.code().expect("an exit code, not a signal")
}

/// The number before `words` on the summary line that starts with `label`, as in
/// `  pages      40 fetched by this worker ...`.
fn summary_number(out: &Output, label: &str, words: &str) -> u64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in: {stdout}"));
    let before = line
        .split(words)
        .next()
        .and_then(|head| head.split_whitespace().last())
        .unwrap_or_else(|| panic!("no {words:?} in {line:?}"));
    before
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {before:?} in {line:?}"))
}

/// Two workers, started together, crawl the test server's 40-page site (every page links to
/// every other) through one Redis frontier: both end when it is drained, and exit 0; the
/// frontier holds one result per page, none twice, each a JSON line; the server saw each
/// page once, and robots.txt at most once per worker.
#[test]
fn two_workers_crawl_each_page_once() {
    let Some(redis) = RedisServer::start("crawl_frontier::two_workers", false) else {
        return;
    };
    let server = volley_testserver::Server::spawn_thread(util::local()).unwrap();
    let frontier = redis.url("site");
    let start_url = server.url(&format!("/links/{PAGES}/0"));
    binary(); // built before the clock starts
    let args = ["--frontier", &frontier, &start_url];
    let outputs = finish_all(vec![start(&args), start(&args)]);
    for out in &outputs {
        assert_eq!(
            code(out),
            0,
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let mut f = RedisFrontier::open(&frontier).unwrap();
    assert!(f.is_drained().unwrap());
    let results = f.results("0", 1000).unwrap();
    assert_eq!(results.len(), PAGES, "{results:#?}");
    let expected: BTreeSet<String> = (0..PAGES)
        .map(|i| server.url(&format!("/links/{PAGES}/{i}")))
        .collect();
    let urls: BTreeSet<String> = results.iter().map(|r| r.1.clone()).collect();
    assert_eq!(urls, expected, "one result per page, none twice");
    for (_, url, ok, record) in &results {
        assert!(ok, "{url}: {record}");
        let line: Value =
            serde_json::from_str(record).unwrap_or_else(|e| panic!("{e}: {record:?}"));
        assert_eq!(line["url"], url.as_str(), "{record}");
        assert_eq!(line["status"], 200, "{record}");
        assert!(line["error"].is_null(), "{record}");
        // Every page links to the 39 others.
        assert_eq!(line["links"], PAGES - 1, "{record}");
    }
    let status = f.status().unwrap().total();
    assert_eq!((status.done, status.failed), (PAGES as u64, 0));
    assert_eq!((status.queued, status.leased), (0, 0));

    let stats = server.stats();
    assert!(stats.robots_fetches <= 2, "{stats:?}");
    assert_eq!(
        stats.requests - stats.robots_fetches,
        PAGES as u64,
        "each page fetched once: {stats:?}"
    );
    // The workers' own summaries add up: 40 pages fetched, 40 outcomes recorded.
    let fetched: u64 = outputs
        .iter()
        .map(|o| summary_number(o, "pages", "fetched by this worker"))
        .sum();
    let recorded: u64 = outputs
        .iter()
        .map(|o| summary_number(o, "pages", "recorded by it"))
        .sum();
    assert_eq!((fetched, recorded), (PAGES as u64, PAGES as u64));
}

/// Runs `workers` crawl processes on `frontier` at once, each with its own arguments after
/// `--frontier FRONTIER`, and checks that each exits 0.
fn run_workers(frontier: &str, workers: &[&[&str]]) {
    binary(); // built before the watchdog's clock starts
    let children = workers
        .iter()
        .map(|args| {
            let mut all = vec!["--frontier", frontier];
            all.extend_from_slice(args);
            start(&all)
        })
        .collect();
    for out in finish_all(children) {
        assert_eq!(
            code(&out),
            0,
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Checks that the frontier holds one result for each of the `pages` pages of `/links` on
/// each of `servers`, and that each server saw each page once.
fn check_sites(frontier: &str, servers: &[&volley_testserver::ServerThread], pages: usize) {
    let mut f = RedisFrontier::open(frontier).unwrap();
    let results = f.results("0", 1000).unwrap();
    let urls: BTreeSet<&str> = results.iter().map(|r| r.1.as_str()).collect();
    let want = pages * servers.len();
    assert_eq!((results.len(), urls.len()), (want, want), "{results:#?}");
    for server in servers {
        for i in 0..pages {
            let url = server.url(&format!("/links/{pages}/{i}"));
            assert!(urls.contains(url.as_str()), "{url} missing");
        }
        let stats = server.stats();
        assert_eq!(
            stats.requests - stats.robots_fetches,
            pages as u64,
            "{stats:?}"
        );
    }
    assert_eq!(f.status().unwrap().total().done, want as u64);
}

/// A frontier that already holds another site's start: a worker given START_URL crawls both
/// sites whole, each on its own origin (a page's links are kept on the page's origin, not on
/// the worker's START_URL's), each page once.
#[test]
fn a_worker_crawls_every_site_of_the_frontier() {
    let Some(redis) = RedisServer::start("crawl_frontier::every_site", false) else {
        return;
    };
    let (a, b) = (local_server(), local_server());
    let frontier = redis.url("sites");
    let seed = volley::Url::parse(&b.url("/links/30/0")).unwrap();
    assert_eq!(
        RedisFrontier::open(&frontier)
            .unwrap()
            .put(&[seed])
            .unwrap(),
        1
    );
    run_workers(&frontier, &[&[&a.url("/links/30/0"), "-w", "4"]]);
    check_sites(&frontier, &[&a, &b], 30);
}

/// `--join`: two workers that put nothing crawl what the frontier holds, and end when it is
/// drained.
#[test]
fn joining_workers_crawl_what_the_frontier_holds() {
    let Some(redis) = RedisServer::start("crawl_frontier::join", false) else {
        return;
    };
    let server = local_server();
    let frontier = redis.url("joined");
    let seed = volley::Url::parse(&server.url("/links/25/0")).unwrap();
    RedisFrontier::open(&frontier)
        .unwrap()
        .put(&[seed])
        .unwrap();
    run_workers(&frontier, &[&["--join"], &["--join", "-w", "2"]]);
    check_sites(&frontier, &[&server], 25);
}

fn local_server() -> volley_testserver::ServerThread {
    volley_testserver::Server::spawn_thread(util::local()).unwrap()
}

/// `--frontier` naming a port where nothing listens: exit 1 at once, and a message on stderr
/// that names the frontier's URL; no request is made.
#[test]
fn an_unreachable_redis_is_a_clear_error() {
    let port = util::refused_port();
    let server = volley_testserver::Server::spawn_thread(util::local()).unwrap();
    let frontier = format!("redis://127.0.0.1:{port}/site");
    let start_url = server.url("/links/5/0");
    let out = finish_all(vec![start(&["--frontier", &frontier, &start_url])]).remove(0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 1, "stderr: {stderr}");
    assert!(stderr.contains(&frontier), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert_eq!(server.stats().requests, 0);
}
