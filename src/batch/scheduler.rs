//! The host scheduler: which waiting request starts next.
//!
//! Every request belongs to a [`Host`] (`batch/host.rs`). A request starts only when its
//! host has a free slot, a token of its rate and no pause; until then it waits in the host's
//! queue, holding nothing. Hosts with waiting requests are served round-robin. A host that
//! waits for an instant (its pause ends, its next token comes) sits in a timer heap, and a
//! retry waiting out its backoff sits in another; [`Scheduler::next_wake`] tells the batch
//! when to look again. The batch (`batch/mod.rs`) feeds it requests and results and decides
//! retries with `batch/retry.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use url::Url;

use super::host::{
    host_key, is_key_of, quick_hash, Gate, Host, HostGrouping, HostKey, HostStats, Job, Rate,
};

/// What [`Scheduler::next`] found.
#[derive(Debug)]
pub(crate) enum Next {
    /// Start this job now: its host's slot and token are taken.
    Start(Job),
    /// This job's host is paused for longer than the batch waits: fail it, saying how long.
    TooLong(Job, Duration),
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Scheduler {
    /// Every host seen, by [`HostKey`]: never forgotten during a batch, since their
    /// statistics are part of its report.
    hosts: Vec<Host>,
    /// Hosts by the [`quick_hash`] of a URL's parts; a hash may stand for several hosts.
    by_hash: HashMap<u64, Vec<HostKey>, BuildHasherDefault<Prehashed>>,
    /// Hosts by key, for the groupings without a quick hash.
    by_name: HashMap<String, HostKey>,
    /// Hosts paused, or paused not long ago (the ones [`paused_hosts`](Self::paused_hosts)
    /// looks at, so that it need not look at every host).
    paused: Vec<HostKey>,
    /// Hosts with waiting requests to look at now, round-robin.
    ready: VecDeque<HostKey>,
    /// Hosts with waiting requests that may start at an instant, earliest first.
    timed: BinaryHeap<Reverse<(Instant, HostKey)>>,
    /// Retries waiting out their backoff: when, and a number that keys `delayed_jobs`.
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    delayed_jobs: HashMap<u64, Job>,
    next_delay_id: u64,
    /// Jobs waiting, in host queues or in backoff.
    waiting: usize,
    per_host: Option<usize>,
    rate: Option<Rate>,
    /// Hosts paused longer than this fail their waiting requests instead.
    max_wait: Duration,
    grouping: HostGrouping,
}

impl Scheduler {
    pub(crate) fn new(
        per_host: Option<usize>,
        rate: Option<Rate>,
        max_wait: Duration,
        grouping: HostGrouping,
    ) -> Self {
        Scheduler {
            hosts: Vec::new(),
            by_hash: HashMap::default(),
            by_name: HashMap::new(),
            paused: Vec::new(),
            ready: VecDeque::new(),
            timed: BinaryHeap::new(),
            delayed: BinaryHeap::new(),
            delayed_jobs: HashMap::new(),
            next_delay_id: 0,
            waiting: 0,
            per_host,
            rate,
            max_wait,
            grouping,
        }
    }

    /// The key of `url`'s host, registering the host on first sight.
    pub(crate) fn host_of(&mut self, url: &Url, now: Instant) -> HostKey {
        let grouping = self.grouping;
        let Some(hash) = quick_hash(url, grouping) else {
            let name = host_key(url, grouping);
            if let Some(&key) = self.by_name.get(&name) {
                return key;
            }
            let key = self.add_host(name.clone(), now);
            self.by_name.insert(name, key);
            return key;
        };
        let found = self.by_hash.get(&hash).and_then(|keys| {
            keys.iter()
                .copied()
                .find(|&k| is_key_of(&self.hosts[k].name, url, grouping))
        });
        if let Some(key) = found {
            return key;
        }
        let key = self.add_host(host_key(url, grouping), now);
        self.by_hash.entry(hash).or_default().push(key);
        key
    }

    fn add_host(&mut self, name: String, now: Instant) -> HostKey {
        self.hosts.push(Host::new(name, self.rate, now));
        self.hosts.len() - 1
    }

    /// The host of `key`.
    pub(crate) fn host(&mut self, key: HostKey) -> &mut Host {
        &mut self.hosts[key]
    }

    /// Jobs waiting, in host queues or in backoff.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// Hosts paused now.
    pub(crate) fn paused_hosts(&mut self, now: Instant) -> usize {
        let hosts = &mut self.hosts;
        self.paused.retain(|&key| {
            let paused = hosts[key].paused_until.is_some_and(|p| p > now);
            hosts[key].in_paused = paused;
            paused
        });
        self.paused.len()
    }

    /// Pauses `key` until `until` (or longer, if it already is).
    pub(crate) fn pause(&mut self, key: HostKey, until: Instant, now: Instant) {
        let host = &mut self.hosts[key];
        host.pause(until, now);
        if !host.in_paused {
            host.in_paused = true;
            self.paused.push(key);
        }
    }

    /// Starts a new job at once if its host has nothing waiting and is open, else queues it.
    pub(crate) fn offer(&mut self, job: Job, now: Instant) -> Option<Next> {
        let per_host = self.per_host;
        let max_wait = self.max_wait;
        let host = &mut self.hosts[job.host];
        if host.queue.is_empty() {
            match host.gate(per_host, now) {
                Gate::Open => {
                    host.start(!job.attempts.is_empty(), now);
                    return Some(Next::Start(job));
                }
                Gate::Until(at) if at.saturating_duration_since(now) > max_wait => {
                    return Some(Next::TooLong(job, at - now));
                }
                _ => {}
            }
        }
        self.enqueue(job, false);
        None
    }

    /// Puts a job in its host's queue (at the front for a retry) and lists the host.
    pub(crate) fn enqueue(&mut self, job: Job, front: bool) {
        let key = job.host;
        let host = &mut self.hosts[key];
        if front {
            host.queue.push_front(job);
        } else {
            host.queue.push_back(job);
        }
        self.waiting += 1;
        if !host.listed {
            host.listed = true;
            self.ready.push_back(key);
        }
    }

    /// Holds a retry until `until`, then puts it at the front of its host's queue.
    pub(crate) fn delay(&mut self, job: Job, until: Instant) {
        let id = self.next_delay_id;
        self.next_delay_id += 1;
        self.delayed.push(Reverse((until, id)));
        self.delayed_jobs.insert(id, job);
        self.waiting += 1;
    }

    /// A request of `key` finished: its slot is free.
    pub(crate) fn finish(&mut self, key: HostKey) {
        let host = &mut self.hosts[key];
        host.in_flight = host.in_flight.saturating_sub(1);
        if !host.listed && !host.queue.is_empty() {
            host.listed = true;
            self.ready.push_back(key);
        }
    }

    /// The next job that may start now, or one to fail; `None` when none may.
    pub(crate) fn next(&mut self, now: Instant) -> Option<Next> {
        while let Some(&Reverse((at, id))) = self.delayed.peek() {
            if at > now {
                break;
            }
            self.delayed.pop();
            if let Some(job) = self.delayed_jobs.remove(&id) {
                self.waiting -= 1;
                self.enqueue(job, true);
            }
        }
        while let Some(Reverse((at, _))) = self.timed.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, key))) = self.timed.pop() {
                self.ready.push_back(key);
            }
        }
        let per_host = self.per_host;
        let max_wait = self.max_wait;
        for _ in 0..self.ready.len() {
            let key = self.ready.pop_front()?;
            let host = &mut self.hosts[key];
            if host.queue.is_empty() {
                host.listed = false;
                continue;
            }
            match host.gate(per_host, now) {
                Gate::Open => {
                    let job = host.queue.pop_front()?;
                    host.start(!job.attempts.is_empty(), now);
                    if host.queue.is_empty() {
                        host.listed = false;
                    } else {
                        self.ready.push_back(key);
                    }
                    self.waiting -= 1;
                    return Some(Next::Start(job));
                }
                Gate::Until(at) if at.saturating_duration_since(now) > max_wait => {
                    // Fail the waiting requests one by one; the host stays listed until
                    // its queue is empty.
                    let job = host.queue.pop_front()?;
                    self.ready.push_front(key);
                    self.waiting -= 1;
                    return Some(Next::TooLong(job, at - now));
                }
                Gate::Until(at) => self.timed.push(Reverse((at, key))),
                // Listed again when one of its requests finishes.
                Gate::Full => host.listed = false,
            }
        }
        None
    }

    /// The earliest instant at which a waiting job may start, if one waits for time.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let timed = self.timed.peek().map(|Reverse((at, _))| *at);
        let delayed = self.delayed.peek().map(|Reverse((at, _))| *at);
        match (timed, delayed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes every waiting job out (the queue timeout passed).
    pub(crate) fn drain(&mut self) -> Vec<Job> {
        let mut jobs: Vec<Job> = self.delayed_jobs.drain().map(|(_, job)| job).collect();
        self.delayed.clear();
        for host in &mut self.hosts {
            jobs.extend(host.queue.drain(..));
            host.listed = false;
        }
        self.ready.clear();
        self.timed.clear();
        self.waiting = 0;
        jobs
    }

    /// Every host's statistics, by `scheme://host:port`.
    pub(crate) fn stats(&self) -> impl Iterator<Item = (&str, &HostStats)> {
        self.hosts.iter().map(|h| (h.name.as_str(), &h.stats))
    }
}

/// A hasher for keys that are hashes already: it passes a `u64` through.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else is folded in (FNV-1a), still correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::Request;
    use http::Method;

    fn job(s: &mut Scheduler, index: usize, url: &str, now: Instant) -> Job {
        let url = Url::parse(url).unwrap();
        Job {
            index,
            host: s.host_of(&url, now),
            request: Request::new(Method::GET, url),
            attempts: Vec::new(),
            exhausted: 0,
            fingerprint: None,
        }
    }

    fn started(next: Option<Next>) -> Option<usize> {
        match next {
            Some(Next::Start(job)) => Some(job.index),
            _ => None,
        }
    }

    #[test]
    fn per_host_slots_round_robin() {
        let t = Instant::now();
        let mut s = Scheduler::new(Some(1), None, Duration::from_secs(60), HostGrouping::Origin);
        let mut order = Vec::new();
        for (i, url) in [
            "http://a/1",
            "http://a/2",
            "http://b/1",
            "http://a/3",
            "http://b/2",
        ]
        .into_iter()
        .enumerate()
        {
            let j = job(&mut s, i, url, t);
            if let Some(i) = started(s.offer(j, t)) {
                order.push(i);
            }
        }
        assert_eq!(order, [0, 2]);
        assert_eq!(s.waiting(), 3);
        assert!(s.next(t).is_none(), "both hosts are full");
        let a = s.host_of(&Url::parse("http://a/").unwrap(), t);
        let b = s.host_of(&Url::parse("http://b/").unwrap(), t);
        s.finish(b);
        s.finish(a);
        assert_eq!(started(s.next(t)), Some(4));
        assert_eq!(started(s.next(t)), Some(1));
        assert!(s.next(t).is_none());
        s.finish(a);
        assert_eq!(started(s.next(t)), Some(3));
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn a_paused_host_waits_and_others_go() {
        let t = Instant::now();
        let mut s = Scheduler::new(None, None, Duration::from_secs(60), HostGrouping::Origin);
        let a = s.host_of(&Url::parse("http://a/").unwrap(), t);
        s.pause(a, t + Duration::from_secs(1), t);
        let ja = job(&mut s, 0, "http://a/1", t);
        assert!(s.offer(ja, t).is_none());
        let jb = job(&mut s, 1, "http://b/1", t);
        assert_eq!(started(s.offer(jb, t)), Some(1));
        assert!(s.next(t).is_none());
        assert_eq!(s.next_wake(), Some(t + Duration::from_secs(1)));
        assert_eq!(s.paused_hosts(t), 1);
        assert_eq!(started(s.next(t + Duration::from_secs(1))), Some(0));
        assert_eq!(s.paused_hosts(t + Duration::from_secs(1)), 0);
        s.pause(a, t + Duration::from_secs(3), t);
        assert_eq!(s.paused_hosts(t), 1, "listed again");
    }

    #[test]
    fn a_pause_beyond_the_cap_fails_the_waiting() {
        let t = Instant::now();
        let mut s = Scheduler::new(None, None, Duration::from_secs(5), HostGrouping::Origin);
        let a = s.host_of(&Url::parse("http://a/").unwrap(), t);
        let ja = job(&mut s, 0, "http://a/1", t);
        s.enqueue(ja, false);
        s.pause(a, t + Duration::from_secs(10), t);
        match s.next(t) {
            Some(Next::TooLong(job, wait)) => {
                assert_eq!(job.index, 0);
                assert_eq!(wait, Duration::from_secs(10));
            }
            other => panic!("{other:?}"),
        }
        let ja = job(&mut s, 1, "http://a/2", t);
        assert!(matches!(s.offer(ja, t), Some(Next::TooLong(..))));
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn rate_and_backoff_timers() {
        let t = Instant::now();
        let rate = Rate {
            per_s: 2.0,
            burst: 1.0,
        };
        let mut s = Scheduler::new(
            None,
            Some(rate),
            Duration::from_secs(60),
            HostGrouping::Origin,
        );
        let j0 = job(&mut s, 0, "http://a/1", t);
        let j1 = job(&mut s, 1, "http://a/2", t);
        assert_eq!(started(s.offer(j0, t)), Some(0));
        assert!(s.offer(j1, t).is_none());
        assert!(s.next(t).is_none());
        assert_eq!(s.next_wake(), Some(t + Duration::from_millis(500)));
        assert_eq!(started(s.next(t + Duration::from_millis(500))), Some(1));
        let j2 = job(&mut s, 2, "http://b/1", t);
        s.delay(j2, t + Duration::from_secs(3));
        assert_eq!(s.next_wake(), Some(t + Duration::from_secs(3)));
        assert!(s.next(t + Duration::from_secs(2)).is_none());
        assert_eq!(started(s.next(t + Duration::from_secs(3))), Some(2));
        assert_eq!(s.drain().len(), 0);
    }
}
