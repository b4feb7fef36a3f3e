//! [`Frontier`]: the URLs of a crawl or a bulk fetch still to do, shared by the workers that
//! fetch them, so that the work outlives any one worker.
//!
//! A worker [`put`](Frontier::put)s URLs (each is added once: the frontier remembers the
//! [`fingerprint`] of every URL it was given), [`lease`](Frontier::lease)s some, fetches
//! them, and [`complete`](Frontier::complete)s each with its [`Outcome`]. A lease that is not
//! completed in time (its worker died, or stalled) goes back to the frontier for another
//! worker, so no URL is lost; completing is idempotent by fingerprint, so a URL that two
//! workers ended up fetching still has one final result.
//!
//! URLs are kept in **shards by host** (scheme, host and port, or as a [`HostGrouping`]
//! says): a host's URLs are always in the same shard, and a shard is leased to one worker at
//! a time, so the worker that holds a host keeps its slots, rate and pauses exact, as one
//! batch does.
//!
//! Two implementations: [`MemoryFrontier`], in memory, for one process (and the tests), and
//! `RedisFrontier` (feature `redis`), in Redis streams, for workers on any number of
//! machines. A [`Worker`] fetches what a frontier holds until it is drained, through a
//! [`threaded::Client`](crate::threaded::Client)'s batch.

mod memory;
#[cfg(feature = "redis")]
mod redis;
mod worker;

use std::fmt;

use url::Url;

use crate::batch::HostGrouping;

pub use memory::MemoryFrontier;
#[cfg(feature = "redis")]
pub use redis::{RedisFrontier, RedisFrontierBuilder};
pub use worker::{Leases, WorkReport, Worker};

/// URLs still to fetch, shared by workers. See the [module docs](self).
pub trait Frontier {
    /// Adds each URL not added before (by [`fingerprint`]) to its host's shard. Returns how
    /// many were new.
    fn put(&mut self, urls: &[Url]) -> Result<usize, FrontierError>;

    /// Leases about `max` URLs to this worker, for the frontier's lease time, from the
    /// shards it holds (taking free ones first): each host's URLs come from one shard, and so
    /// from one worker. A frontier that reads each shard held in one go may give up to
    /// `max` plus the number of shards held. Empty when none is free now, which does not
    /// mean that the frontier is drained (see [`is_drained`](Frontier::is_drained)).
    fn lease(&mut self, max: usize) -> Result<Vec<Leased>, FrontierError>;

    /// Records the final outcome of each leased URL and takes it off the frontier. A URL
    /// already recorded (its lease ran out and another worker completed it) is not recorded
    /// again. Returns how many were recorded now.
    fn complete(&mut self, done: &[(Leased, Outcome)]) -> Result<usize, FrontierError>;

    /// Keeps this worker's shards and leases from running out; call it more often than the
    /// lease time while working.
    fn renew(&mut self) -> Result<(), FrontierError>;

    /// True when no URL is queued and none is leased, by any worker.
    fn is_drained(&mut self) -> Result<bool, FrontierError>;

    /// Queued, leased, done and failed URLs, per shard.
    fn status(&mut self) -> Result<Status, FrontierError>;
}

/// A URL leased to this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// The URL.
    pub url: Url,
    /// Its [`fingerprint`].
    pub fingerprint: Fingerprint,
    /// Its host's shard.
    pub shard: usize,
    /// How many times it was leased, this time included: more than 1 after a worker that
    /// held it died or stalled.
    pub deliveries: u64,
    /// The implementation's handle on the lease.
    pub(crate) id: String,
}

/// How a leased URL ended, as [`Frontier::complete`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// True if it got a response (any status); false if it failed after its retries.
    pub ok: bool,
    /// What to keep of the result: the worker's choice (`fetch_many` stores its JSON line).
    pub record: String,
}

/// The counts of a frontier, per shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Each shard's counts, by shard.
    pub shards: Vec<ShardStatus>,
}

impl Status {
    /// The counts over every shard.
    pub fn total(&self) -> ShardStatus {
        self.shards
            .iter()
            .fold(ShardStatus::default(), |mut total, shard| {
                total.queued += shard.queued;
                total.leased += shard.leased;
                total.done += shard.done;
                total.failed += shard.failed;
                total
            })
    }
}

/// One shard's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStatus {
    /// Waiting to be leased.
    pub queued: u64,
    /// Leased and not completed.
    pub leased: u64,
    /// Completed with a response.
    pub done: u64,
    /// Completed with an error.
    pub failed: u64,
}

/// A URL's identity in a frontier: 128 bits of FNV-1a over its normalised form (see
/// [`fingerprint`]), the same on every machine and in every version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u128);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Fingerprint, Self::Err> {
        u128::from_str_radix(s, 16).map(Fingerprint)
    }
}

/// The fingerprint of `url`, normalised: the `url` crate's parse already lowercases the
/// scheme and host, drops a default port and resolves `.` and `..`; the fragment is dropped
/// too (it never reaches the server). So `HTTP://Example.com:80/a/./b#top` and
/// `http://example.com/a/b` are one URL.
pub fn fingerprint(url: &Url) -> Fingerprint {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let text = url.as_str();
    let text = match url.fragment() {
        Some(fragment) => &text[..text.len() - fragment.len() - 1],
        None => text,
    };
    let hash = text
        .bytes()
        .fold(OFFSET, |hash, b| (hash ^ u128::from(b)).wrapping_mul(PRIME));
    Fingerprint(hash)
}

/// The shard of `url`'s host among `shards`, grouped as `grouping` says: FNV-1a over the
/// host's key, the same on every machine.
pub fn shard_of(url: &Url, grouping: HostGrouping, shards: usize) -> usize {
    let key = crate::batch::host_key(url, grouping);
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % shards.max(1) as u64) as usize
}

/// Why a frontier could not do what was asked: which frontier, what, and why.
#[derive(Debug)]
pub struct FrontierError {
    /// The frontier (its URL, for Redis).
    pub frontier: String,
    /// What was being done.
    pub doing: &'static str,
    /// Why it failed.
    pub why: String,
}

impl fmt::Display for FrontierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frontier {}: cannot {}: {}",
            self.frontier, self.doing, self.why
        )
    }
}

impl std::error::Error for FrontierError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalise_and_are_stable() {
        let a = Url::parse("HTTP://Example.com:80/a/./b?q=1#top").unwrap();
        let b = Url::parse("http://example.com/a/b?q=1").unwrap();
        let c = Url::parse("http://example.com/a/b?q=2").unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&b), fingerprint(&c));
        let text = fingerprint(&b).to_string();
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fingerprint(&b));
        // FNV-1a 128 of "http://a/", computed apart from this code: a frontier shared by
        // machines relies on every build agreeing.
        let empty = Url::parse("http://a/").unwrap();
        assert_eq!(
            fingerprint(&empty).to_string(),
            "102ec8e73605ecaac4532dcd7caacab3"
        );
    }

    #[test]
    fn a_host_keeps_to_one_shard() {
        let shard = |u: &str| shard_of(&Url::parse(u).unwrap(), HostGrouping::Origin, 16);
        assert_eq!(shard("http://a.example/1"), shard("http://a.example/2?x"));
        let shards: std::collections::BTreeSet<usize> = (0..64)
            .map(|i| shard(&format!("http://h{i}.example/")))
            .collect();
        assert!(shards.len() > 8, "{shards:?}");
    }
}
