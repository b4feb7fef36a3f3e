//! [`LatencyHistogram`]: constant-memory latency percentiles, HDR-style.
//!
//! Values are microseconds. Each power of two is split into [`SUB_BUCKETS`] linear buckets,
//! so every bucket is at most 1/64 (about 1.6 %) wide relative to its values, from 1 µs to
//! 2^40 µs (12 days), in at most 2,560 counters whatever the number of samples. While few
//! buckets are in use, only those are stored (sorted), so a histogram of a few samples (one
//! host's, in a batch of many hosts) takes a few words; past [`DENSE_AFTER`] of them it
//! switches to one counter per bucket (20 KiB), so a busy histogram counts in constant time.
//! The maximum is kept exactly. Histograms [`merge`](LatencyHistogram::merge) exactly: the
//! buckets are the same for all.

use std::fmt;
use std::time::Duration;

/// Linear buckets per power of two.
const SUB_BITS: u32 = 6;
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Powers of two covered.
const MAGNITUDES: usize = 40;
/// Buckets.
const BUCKETS: usize = SUB_BUCKETS * MAGNITUDES;
/// Buckets in use beyond which a histogram keeps a counter per bucket.
const DENSE_AFTER: usize = 48;

/// A latency histogram of fixed size. See the module docs.
#[derive(Clone, Default)]
pub struct LatencyHistogram {
    /// `(bucket, count)` of the buckets in use, by bucket, while there are few; empty once
    /// `dense` is in use.
    sparse: Vec<(u16, u64)>,
    /// A counter per bucket, once more than [`DENSE_AFTER`] are in use; empty before.
    dense: Vec<u64>,
    total: u64,
    max_us: u64,
    sum_us: u128,
}

/// The bucket of a value in microseconds.
fn bucket(us: u64) -> usize {
    if us < SUB_BUCKETS as u64 {
        return us as usize; // the first power-of-two range is exact
    }
    let magnitude = 63 - us.leading_zeros(); // >= SUB_BITS
    let shift = magnitude - SUB_BITS;
    let sub = (us >> shift) as usize - SUB_BUCKETS; // 0..SUB_BUCKETS
    let index = (shift as usize + 1) * SUB_BUCKETS + sub;
    index.min(BUCKETS - 1)
}

/// The largest value in microseconds that falls in `index`.
fn bucket_high(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let shift = (index / SUB_BUCKETS - 1) as u32;
    let sub = (index % SUB_BUCKETS + SUB_BUCKETS) as u64;
    ((sub + 1) << shift) - 1
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.add(bucket(us), 1);
        self.total += 1;
        self.max_us = self.max_us.max(us);
        self.sum_us += u128::from(us);
    }

    /// Adds every sample of `other` to this histogram: the result is the histogram of both
    /// sets of samples, exactly (of another loop's or another host's, say).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (index, count) in other.in_use() {
            self.add(index, count);
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
        self.sum_us += other.sum_us;
    }

    /// Counts `count` samples in bucket `index` (< [`BUCKETS`]).
    fn add(&mut self, index: usize, count: u64) {
        if let Some(counter) = self.dense.get_mut(index) {
            *counter += count;
            return;
        }
        let key = index as u16; // < 2,560
        match self.sparse.binary_search_by_key(&key, |&(i, _)| i) {
            Ok(at) => self.sparse[at].1 += count,
            Err(at) => self.sparse.insert(at, (key, count)),
        }
        if self.sparse.len() > DENSE_AFTER {
            self.dense = vec![0; BUCKETS];
            for (i, c) in self.sparse.drain(..) {
                self.dense[usize::from(i)] = c;
            }
            self.sparse = Vec::new(); // its memory too
        }
    }

    /// `(bucket, count)` of the buckets in use, by bucket.
    fn in_use(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let sparse = self.sparse.iter().map(|&(i, c)| (usize::from(i), c));
        let dense = self.dense.iter().enumerate().filter(|(_, &c)| c > 0);
        sparse.chain(dense.map(|(i, &c)| (i, c)))
    }

    /// Number of latencies recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The latency at or below which `q` (0.0 to 1.0) of the samples fall, within 1.6 %, never
    /// above the maximum. Zero if empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.in_use() {
            seen += count;
            if seen >= rank {
                return Duration::from_micros(bucket_high(index).min(self.max_us));
            }
        }
        self.max()
    }

    /// The largest latency recorded, exactly.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The mean latency.
    pub fn mean(&self) -> Duration {
        match self.total {
            0 => Duration::ZERO,
            n => Duration::from_micros((self.sum_us / u128::from(n)) as u64),
        }
    }

    /// The counts grouped into at most `rows` equal ranges between the smallest and largest
    /// bucket in use (fewer when they span fewer buckets): `(upper bound, count)` pairs, for a
    /// small text histogram.
    pub fn rows(&self, rows: usize) -> Vec<(Duration, u64)> {
        let (Some((first, _)), Some((last, _))) = (self.in_use().next(), self.in_use().last())
        else {
            return Vec::new();
        };
        let low = bucket_high(first.saturating_sub(1)) as f64;
        let high = (bucket_high(last).min(self.max_us) as f64).max(low + 1.0);
        // No more rows than buckets in the range, or some rows could never hold a value.
        let rows = rows.clamp(1, last - first + 1);
        let step = (high - low) / rows as f64;
        let mut out: Vec<(Duration, u64)> = (1..=rows)
            .map(|r| {
                (
                    Duration::from_micros((low + step * r as f64).ceil() as u64),
                    0,
                )
            })
            .collect();
        for (i, count) in self.in_use() {
            let value = bucket_high(i).min(self.max_us) as f64;
            let row = (((value - low) / step).ceil() as usize).clamp(1, rows) - 1;
            out[row].1 += count;
        }
        out
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("len", &self.total)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value lands in a bucket whose upper bound is within 1/64 above it.
    #[test]
    fn buckets_are_tight() {
        for us in (0..5000).chain([1 << 20, (1 << 30) + 12345, 987_654_321]) {
            let high = bucket_high(bucket(us));
            assert!(high >= us, "{us} -> {high}");
            assert!(high - us <= us / 64 + 1, "{us} -> {high}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    /// Quantiles of a known uniform distribution, within the bucket precision.
    #[test]
    fn quantiles_of_a_uniform_distribution() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=1000 {
            h.record(Duration::from_millis(ms));
        }
        for (q, want_ms) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = h.quantile(q).as_secs_f64() * 1000.0;
            assert!((got - want_ms).abs() <= want_ms / 60.0, "p{q}: {got}");
        }
        assert_eq!(h.max(), Duration::from_millis(1000));
        assert_eq!(h.len(), 1000);
        assert_eq!(h.mean(), Duration::from_micros(500_500));
        let rows = h.rows(10);
        assert_eq!(rows.len(), 10);
        assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), 1000);
        // Values within a few buckets get no more rows than the buckets they span.
        let mut narrow = LatencyHistogram::default();
        for us in [100_000, 101_000, 102_500, 104_000, 106_000] {
            narrow.record(Duration::from_micros(us));
        }
        let rows = narrow.rows(10);
        assert!(rows.len() < 10, "{rows:?}");
        assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), 5);
    }

    /// A histogram past [`DENSE_AFTER`] buckets answers as it did sparse, and merged
    /// histograms answer as one histogram of all the samples.
    #[test]
    fn dense_and_merged_answer_as_sparse() {
        let values: Vec<u64> = (0..5000u64).map(|i| (i * 7919) % 100_000 + 1).collect();
        let mut whole = LatencyHistogram::default();
        let (mut a, mut b) = (LatencyHistogram::default(), LatencyHistogram::default());
        for (i, &us) in values.iter().enumerate() {
            whole.record(Duration::from_micros(us));
            let half = if i % 3 == 0 { &mut a } else { &mut b };
            half.record(Duration::from_micros(us));
        }
        assert!(!whole.dense.is_empty() && whole.sparse.is_empty());
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for q in [0.01, 0.5, 0.9, 0.99, 1.0] {
            let exact = sorted[((q * 5000.0) as usize).clamp(1, 5000) - 1];
            let got = whole.quantile(q).as_micros() as u64;
            assert!(
                got >= exact && got - exact <= exact / 64 + 1,
                "p{q}: {got} vs {exact}"
            );
        }
        // Merging a sparse histogram into an empty one, then a dense one.
        let mut few = LatencyHistogram::default();
        few.record(Duration::ZERO);
        let mut merged = LatencyHistogram::default();
        merged.merge(&a);
        merged.merge(&b);
        assert_eq!(merged.len(), 5000);
        assert_eq!((merged.max(), merged.mean()), (whole.max(), whole.mean()));
        assert_eq!(
            merged.in_use().collect::<Vec<_>>(),
            whole.in_use().collect::<Vec<_>>()
        );
        assert_eq!(merged.rows(7), whole.rows(7));
        merged.merge(&few);
        assert_eq!(merged.quantile(0.0), Duration::ZERO);
        assert_eq!(merged.len(), 5001);
    }

    /// An empty histogram answers zeros.
    #[test]
    fn empty_is_zero() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        assert!(h.rows(5).is_empty());
    }
}
