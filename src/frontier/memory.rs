//! [`MemoryFrontier`]: a [`Frontier`] in this process's memory.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use url::Url;

use super::{
    fingerprint, shard_of, Fingerprint, Frontier, FrontierError, Leased, Outcome, ShardStatus,
    Status,
};
use crate::batch::HostGrouping;

/// A [`Frontier`] in memory, for the workers of one process: the same rules as the Redis
/// one (shards by host, leases that run out, completion idempotent by fingerprint), without
/// the machines. It keeps every fingerprint it was given and every outcome recorded.
///
/// ```
/// use std::time::Duration;
/// use volley::frontier::{Frontier, MemoryFrontier, Outcome};
/// use volley::Url;
///
/// let mut frontier = MemoryFrontier::new(8, Duration::from_secs(30));
/// let urls: Vec<Url> = ["http://a.test/1", "http://a.test/1", "http://b.test/"]
///     .iter()
///     .map(|u| Url::parse(u).unwrap())
///     .collect();
/// assert_eq!(frontier.put(&urls)?, 2); // the repeat is not added
/// let leased = frontier.lease(10)?;
/// assert_eq!(leased.len(), 2);
/// let done: Vec<_> = leased
///     .into_iter()
///     .map(|l| (l, Outcome { ok: true, record: "200".into() }))
///     .collect();
/// assert_eq!(frontier.complete(&done)?, 2);
/// assert!(frontier.is_drained()?);
/// # Ok::<(), volley::frontier::FrontierError>(())
/// ```
#[derive(Debug)]
pub struct MemoryFrontier {
    shards: Vec<Shard>,
    grouping: HostGrouping,
    lease: Duration,
    seen: HashSet<Fingerprint>,
    /// The outcome recorded for each fingerprint completed.
    outcomes: HashMap<Fingerprint, Outcome>,
    /// The shard to lease from first next time, so that every shard gets its turn.
    cursor: usize,
    next_id: u64,
}

#[derive(Debug, Default)]
struct Shard {
    queue: VecDeque<Entry>,
    /// By lease id: the entry and when its lease runs out.
    leased: BTreeMap<u64, (Entry, Instant)>,
    done: u64,
    failed: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    url: Url,
    fingerprint: Fingerprint,
    deliveries: u64,
}

impl MemoryFrontier {
    /// A frontier of `shards` shards (at least 1) whose leases last `lease`, grouping hosts
    /// by origin.
    pub fn new(shards: usize, lease: Duration) -> MemoryFrontier {
        MemoryFrontier {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
            grouping: HostGrouping::Origin,
            lease,
            seen: HashSet::new(),
            outcomes: HashMap::new(),
            cursor: 0,
            next_id: 0,
        }
    }

    /// Groups hosts as `grouping` says (by origin if not set); set it before the first put.
    pub fn hosts(mut self, grouping: HostGrouping) -> MemoryFrontier {
        self.grouping = grouping;
        self
    }

    /// The outcome recorded for `url`, if it was completed.
    pub fn outcome(&self, url: &Url) -> Option<&Outcome> {
        self.outcomes.get(&fingerprint(url))
    }

    /// Puts the entries whose lease ran out back at the front of their shard's queue.
    fn expire(&mut self, now: Instant) {
        for shard in &mut self.shards {
            let expired: Vec<u64> = shard
                .leased
                .iter()
                .filter(|(_, (_, until))| *until <= now)
                .map(|(&id, _)| id)
                .collect();
            for id in expired.into_iter().rev() {
                if let Some((entry, _)) = shard.leased.remove(&id) {
                    shard.queue.push_front(entry);
                }
            }
        }
    }
}

impl Frontier for MemoryFrontier {
    fn put(&mut self, urls: &[Url]) -> Result<usize, FrontierError> {
        let mut added = 0;
        for url in urls {
            let fingerprint = fingerprint(url);
            if !self.seen.insert(fingerprint) {
                continue;
            }
            let shard = shard_of(url, self.grouping, self.shards.len());
            self.shards[shard].queue.push_back(Entry {
                url: url.clone(),
                fingerprint,
                deliveries: 0,
            });
            added += 1;
        }
        Ok(added)
    }

    fn lease(&mut self, max: usize) -> Result<Vec<Leased>, FrontierError> {
        let now = Instant::now();
        self.expire(now);
        let mut leased = Vec::new();
        let n = self.shards.len();
        for i in 0..n {
            let index = (self.cursor + i) % n;
            let shard = &mut self.shards[index];
            while leased.len() < max {
                let Some(mut entry) = shard.queue.pop_front() else {
                    break;
                };
                entry.deliveries += 1;
                let id = self.next_id;
                self.next_id += 1;
                leased.push(Leased {
                    url: entry.url.clone(),
                    fingerprint: entry.fingerprint,
                    shard: index,
                    deliveries: entry.deliveries,
                    id: id.to_string(),
                });
                shard.leased.insert(id, (entry, now + self.lease));
            }
        }
        self.cursor = (self.cursor + 1) % n;
        Ok(leased)
    }

    fn complete(&mut self, done: &[(Leased, Outcome)]) -> Result<usize, FrontierError> {
        let mut recorded = 0;
        for (leased, outcome) in done {
            let Some(shard) = self.shards.get_mut(leased.shard) else {
                continue;
            };
            if let Ok(id) = leased.id.parse::<u64>() {
                shard.leased.remove(&id);
            }
            // A lease that ran out may be queued again: it is done now.
            shard
                .queue
                .retain(|entry| entry.fingerprint != leased.fingerprint);
            if self.outcomes.contains_key(&leased.fingerprint) {
                continue;
            }
            match outcome.ok {
                true => shard.done += 1,
                false => shard.failed += 1,
            }
            self.outcomes.insert(leased.fingerprint, outcome.clone());
            recorded += 1;
        }
        Ok(recorded)
    }

    fn renew(&mut self) -> Result<(), FrontierError> {
        let until = Instant::now() + self.lease;
        for shard in &mut self.shards {
            for (_, deadline) in shard.leased.values_mut() {
                *deadline = until;
            }
        }
        Ok(())
    }

    fn is_drained(&mut self) -> Result<bool, FrontierError> {
        Ok(self
            .shards
            .iter()
            .all(|s| s.queue.is_empty() && s.leased.is_empty()))
    }

    fn status(&mut self) -> Result<Status, FrontierError> {
        self.expire(Instant::now());
        let shards = self
            .shards
            .iter()
            .map(|s| ShardStatus {
                queued: s.queue.len() as u64,
                leased: s.leased.len() as u64,
                done: s.done,
                failed: s.failed,
            })
            .collect();
        Ok(Status { shards })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<Url> {
        list.iter().map(|u| Url::parse(u).unwrap()).collect()
    }

    fn ok(leased: Vec<Leased>) -> Vec<(Leased, Outcome)> {
        leased
            .into_iter()
            .map(|l| {
                let record = l.url.to_string();
                (l, Outcome { ok: true, record })
            })
            .collect()
    }

    /// A lease that runs out goes back to the queue and is leased again, with its deliveries
    /// counted; completing both leases records one outcome.
    #[test]
    fn an_expired_lease_is_leased_again_and_recorded_once() {
        let mut f = MemoryFrontier::new(4, Duration::from_millis(20));
        assert_eq!(
            f.put(&urls(&["http://a.test/1", "http://b.test/2"]))
                .unwrap(),
            2
        );
        let first = f.lease(10).unwrap();
        assert_eq!(first.len(), 2);
        assert!(f.lease(10).unwrap().is_empty(), "both are leased");
        assert!(!f.is_drained().unwrap());
        std::thread::sleep(Duration::from_millis(40));
        let again = f.lease(10).unwrap();
        assert_eq!(again.len(), 2);
        assert!(again.iter().all(|l| l.deliveries == 2));
        // The first worker was only slow: its late results and the second's make one each.
        assert_eq!(f.complete(&ok(first)).unwrap(), 2);
        assert_eq!(f.complete(&ok(again)).unwrap(), 0);
        assert!(f.is_drained().unwrap());
        let total = f.status().unwrap().total();
        assert_eq!(
            (total.done, total.failed, total.queued, total.leased),
            (2, 0, 0, 0)
        );
    }

    /// Renewing keeps leases from running out.
    #[test]
    fn renewed_leases_stay_leased() {
        let mut f = MemoryFrontier::new(2, Duration::from_millis(60));
        f.put(&urls(&["http://a.test/1"])).unwrap();
        let leased = f.lease(1).unwrap();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(25));
            f.renew().unwrap();
        }
        assert!(f.lease(1).unwrap().is_empty());
        f.complete(&[(
            leased[0].clone(),
            Outcome {
                ok: false,
                record: "x".into(),
            },
        )])
        .unwrap();
        assert_eq!(f.status().unwrap().total().failed, 1);
        assert_eq!(f.outcome(&leased[0].url).unwrap().record, "x");
    }

    /// A host's URLs are all in one shard.
    #[test]
    fn a_hosts_urls_share_a_shard() {
        let mut f = MemoryFrontier::new(16, Duration::from_secs(5));
        let list: Vec<String> = (0..50)
            .map(|i| format!("http://h{}.test/{i}", i % 5))
            .collect();
        let list: Vec<&str> = list.iter().map(String::as_str).collect();
        assert_eq!(f.put(&urls(&list)).unwrap(), 50);
        let leased = f.lease(100).unwrap();
        assert_eq!(leased.len(), 50);
        let mut shard_of_host = HashMap::new();
        for l in &leased {
            let host = l.url.host_str().unwrap().to_owned();
            assert_eq!(*shard_of_host.entry(host).or_insert(l.shard), l.shard);
        }
    }
}
