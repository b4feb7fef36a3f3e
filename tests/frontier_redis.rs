//! `RedisFrontier` against a real redis-server (started per test on a loopback port; see
//! `util/redis_server.rs`): dedup, shards held by one worker each, leases taken over from a
//! dead worker, late results recorded once, and a Redis restart mid-run.
#![cfg(feature = "redis")]

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use util::redis_server::RedisServer;
use volley::frontier::{Frontier, Leased, Outcome, RedisFrontier};
use volley::Url;

fn urls(n: usize, hosts: usize) -> Vec<Url> {
    (0..n)
        .map(|i| Url::parse(&format!("http://h{}.test/{i}", i % hosts)).unwrap())
        .collect()
}

fn open(server: &RedisServer, lease_ms: u64) -> RedisFrontier {
    RedisFrontier::builder(&server.url("crawl"))
        .shards(16)
        .lease(Duration::from_millis(lease_ms))
        .open()
        .expect("open the frontier")
}

fn outcomes(leased: &[Leased], worker: &str) -> Vec<(Leased, Outcome)> {
    leased
        .iter()
        .map(|l| {
            let record = format!("{} by {worker}", l.url);
            (l.clone(), Outcome { ok: true, record })
        })
        .collect()
}

/// Leases until `f` has nothing more for now, up to `rounds` tries.
fn lease_all(f: &mut RedisFrontier, rounds: usize) -> Vec<Leased> {
    let mut all = Vec::new();
    for _ in 0..rounds {
        let got = f.lease(100).unwrap();
        if got.is_empty() && !all.is_empty() {
            break;
        }
        all.extend(got);
    }
    all
}

/// Putting the same URLs again adds nothing, from any worker; the status counts them.
#[test]
fn put_adds_each_url_once() {
    let Some(server) = RedisServer::start("frontier_redis::put_adds_each_url_once", false) else {
        return;
    };
    let mut a = open(&server, 5000);
    let mut b = open(&server, 5000);
    let list = urls(300, 7);
    assert_eq!(a.put(&list).unwrap(), 300);
    assert_eq!(a.put(&list).unwrap(), 0);
    assert_eq!(b.put(&list[..50]).unwrap(), 0);
    // The same URL written another way is the same URL.
    let again = Url::parse("HTTP://H0.test:80/0#frag").unwrap();
    assert_eq!(b.put(&[again]).unwrap(), 0);
    let status = b.status().unwrap();
    assert_eq!(status.shards.len(), 16);
    assert_eq!(status.total().queued, 300);
    assert!(!b.is_drained().unwrap());
}

/// Two workers split the busy shards between them: each host's URLs are leased by one worker
/// only, both get some, and completing everything drains the frontier with one result each.
#[test]
fn two_workers_share_the_shards_and_never_a_host() {
    let Some(server) = RedisServer::start("frontier_redis::two_workers_share", false) else {
        return;
    };
    let mut a = open(&server, 5000);
    let mut b = open(&server, 5000);
    a.put(&urls(600, 12)).unwrap();
    // Both say they are alive before either takes its share.
    a.renew().unwrap();
    b.renew().unwrap();
    a.renew().unwrap();
    let mut by_host: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a.is_drained().unwrap() {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            a.status().unwrap().total()
        );
        for (f, name) in [(&mut a, "a"), (&mut b, "b")] {
            let leased = f.lease(50).unwrap();
            for l in &leased {
                by_host
                    .entry(l.url.host_str().unwrap().to_owned())
                    .or_default()
                    .insert(name);
            }
            total += f.complete(&outcomes(&leased, name)).unwrap();
        }
    }
    assert_eq!(total, 600);
    assert_eq!(by_host.len(), 12);
    for (host, workers) in &by_host {
        assert_eq!(workers.len(), 1, "{host} was leased by {workers:?}");
    }
    let workers: BTreeSet<&str> = by_host.values().flatten().copied().collect();
    assert_eq!(workers.len(), 2, "{by_host:?}");
    let results = a.results("0", 10_000).unwrap();
    assert_eq!(results.len(), 600);
    let distinct: BTreeSet<&String> = results.iter().map(|r| &r.1).collect();
    assert_eq!(distinct.len(), 600);
    assert_eq!(a.status().unwrap().total().done, 600);
}

/// A worker that dies holding leases loses them once the lease runs out: another worker
/// takes its shards over and gets the very same URLs (delivered twice), and each URL ends
/// with one result.
#[test]
fn a_dead_workers_leases_are_taken_over() {
    let Some(server) = RedisServer::start("frontier_redis::a_dead_worker", false) else {
        return;
    };
    let mut a = open(&server, 1500);
    a.put(&urls(80, 4)).unwrap();
    let held_by_a = lease_all(&mut a, 10);
    assert_eq!(held_by_a.len(), 80);
    let worker_a = a.worker().to_owned();
    drop(a); // dies without completing or renewing

    let mut b = open(&server, 1500);
    assert_ne!(b.worker(), worker_a);
    assert!(
        b.lease(100).unwrap().is_empty(),
        "a's shards are still held"
    );
    std::thread::sleep(Duration::from_millis(2000));
    b.renew().unwrap();
    assert_eq!(b.held().len(), 4, "b holds every busy shard now");
    let taken = lease_all(&mut b, 10);
    let urls_a: BTreeSet<&str> = held_by_a.iter().map(|l| l.url.as_str()).collect();
    let urls_b: BTreeSet<&str> = taken.iter().map(|l| l.url.as_str()).collect();
    assert_eq!(taken.len(), 80);
    assert!(urls_a == urls_b, "b got other URLs than a held");
    assert!(taken.iter().all(|l| l.deliveries >= 2));
    assert_eq!(b.complete(&outcomes(&taken, "b")).unwrap(), 80);
    assert!(b.is_drained().unwrap());
    assert_eq!(b.results("0", 1000).unwrap().len(), 80);
}

/// A worker that stalls past its lease and completes late: its URLs were fetched again by
/// another, and the late results are not recorded a second time.
#[test]
fn a_late_result_is_recorded_once() {
    let Some(server) = RedisServer::start("frontier_redis::a_late_result", false) else {
        return;
    };
    let mut a = open(&server, 1500);
    a.put(&urls(30, 3)).unwrap();
    let slow = lease_all(&mut a, 10);
    assert_eq!(slow.len(), 30);
    std::thread::sleep(Duration::from_millis(2000)); // a stalls

    let mut b = open(&server, 1500);
    b.renew().unwrap();
    let again = lease_all(&mut b, 10);
    assert_eq!(again.len(), 30);
    assert_eq!(b.complete(&outcomes(&again, "b")).unwrap(), 30);
    assert_eq!(
        a.complete(&outcomes(&slow, "a")).unwrap(),
        0,
        "late: already recorded"
    );
    let results = b.results("0", 1000).unwrap();
    assert_eq!(results.len(), 30);
    assert!(results.iter().all(|r| r.3.ends_with("by b")));
    assert_eq!(b.status().unwrap().total().done, 30);
}

/// Redis restarted mid-run (append-only file on): the worker reconnects by itself, nothing
/// acknowledged is lost, and every URL still ends with one result.
#[test]
fn a_redis_restart_loses_nothing_acknowledged() {
    let Some(mut server) = RedisServer::start("frontier_redis::a_redis_restart", true) else {
        return;
    };
    let mut f = open(&server, 5000);
    f.put(&urls(200, 5)).unwrap();
    let first = f.lease(80).unwrap();
    assert!(!first.is_empty());
    let recorded = f.complete(&outcomes(&first, "w")).unwrap();
    assert_eq!(recorded, first.len());

    server.restart();
    // The next call reconnects (with backoff) and carries on.
    let mut total = recorded;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f.is_drained().unwrap() {
        assert!(Instant::now() < deadline);
        let leased = f.lease(50).unwrap();
        total += f.complete(&outcomes(&leased, "w")).unwrap();
    }
    assert_eq!(total, 200);
    let status = f.status().unwrap().total();
    assert_eq!((status.done, status.queued, status.leased), (200, 0, 0));
    assert_eq!(f.results("0", 1000).unwrap().len(), 200);
}

/// A Redis that is not there: a clear error naming the frontier, at once.
#[test]
fn an_unreachable_redis_is_a_clear_error() {
    let url = format!("redis://127.0.0.1:{}/crawl", util::refused_port());
    let e = RedisFrontier::open(&url).unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&url), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    let bad = RedisFrontier::open("redis://127.0.0.1:1/").unwrap_err();
    assert!(bad.to_string().contains("frontier's name"), "{bad}");
}

/// Three workers, each on a thread of its own with its own connection, fetch 600 URLs over
/// 6 hosts of a real test server through one Redis frontier: each URL is fetched once and
/// has one result, and the workers all end when it is drained.
#[test]
fn three_workers_fetch_every_url_once() {
    let Some(redis) = RedisServer::start("frontier_redis::three_workers", false) else {
        return;
    };
    let servers: Vec<volley_testserver::ServerThread> = (0..6)
        .map(|_| volley_testserver::Server::spawn_thread(util::local()).unwrap())
        .collect();
    let list: Vec<Url> = (0..600)
        .map(|i| Url::parse(&servers[i % 6].url(&format!("/get?i={i}"))).unwrap())
        .collect();
    open(&redis, 5000).put(&list).unwrap();
    let url = redis.url("crawl");
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut frontier = RedisFrontier::builder(&url)
                    .lease(Duration::from_secs(5))
                    .open()
                    .unwrap();
                volley::frontier::Worker::new(&mut frontier, volley::threaded::Client::new())
                    .window(50)
                    .renew_every(Duration::from_millis(500))
                    .run(
                        |batch| batch.concurrency(20),
                        |_, result, _| Outcome {
                            ok: result.outcome.is_ok(),
                            record: result.index.to_string(),
                        },
                    )
                    .unwrap()
            })
        })
        .collect();
    let reports: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let recorded: u64 = reports.iter().map(|r| r.recorded).sum();
    assert_eq!(recorded, 600, "{reports:?}");
    let fetched: u64 = reports.iter().map(|r| r.fetched).sum();
    assert_eq!(fetched, 600, "no URL was fetched twice");
    let requests: u64 = servers.iter().map(|s| s.stats().requests).sum();
    assert_eq!(requests, 600);
    let mut f = open(&redis, 5000);
    assert!(f.is_drained().unwrap());
    let status = f.status().unwrap().total();
    assert_eq!((status.done, status.failed), (600, 0));
    assert_eq!(f.results("0", 10_000).unwrap().len(), 600);
}

/// `lease_per_shard` keeps a worker from leasing far ahead of a host: no more of a shard
/// until what it holds of it is done.
#[test]
fn lease_per_shard_caps_what_a_worker_holds_of_a_host() {
    let Some(server) = RedisServer::start("frontier_redis::lease_per_shard", false) else {
        return;
    };
    let mut f = RedisFrontier::builder(&server.url("cap"))
        .shards(4)
        .lease_per_shard(10)
        .open()
        .unwrap();
    f.put(&urls(100, 1)).unwrap();
    let first = f.lease(100).unwrap();
    assert_eq!(first.len(), 10);
    assert!(
        f.lease(100).unwrap().is_empty(),
        "10 of the host are in hand"
    );
    assert_eq!(f.complete(&outcomes(&first, "w")).unwrap(), 10);
    assert_eq!(f.lease(100).unwrap().len(), 10);
}
