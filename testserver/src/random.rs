//! The byte generator of `/bytes/{n}?seed=S`: xorshift64*, so that a test can regenerate
//! exactly what the server sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Added to (xored into) the seed so that seed 0 gives a non-zero state: the golden-ratio
/// constant of SplitMix64.
const SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// The xorshift64* output multiplier (Vigna, "An experimental exploration of Marsaglia's
/// xorshift generators, scrambled", 2016).
const MULTIPLIER: u64 = 0x2545_F491_4F6C_DD1D;

/// The generator behind `/bytes/{n}?seed=S`.
#[derive(Clone, Debug)]
pub(crate) struct XorShift64Star {
    state: u64,
}

impl XorShift64Star {
    /// Seeds the generator: the state is `seed ^ 0x9E3779B97F4A7C15`, or that constant itself
    /// if the xor is zero (xorshift never leaves state 0).
    pub(crate) fn new(seed: u64) -> XorShift64Star {
        let state = match seed ^ SEED_MIX {
            0 => SEED_MIX,
            s => s,
        };
        XorShift64Star { state }
    }

    /// The next 64-bit output.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(MULTIPLIER)
    }

    /// Fills `buf` with the little-endian bytes of successive outputs; a last partial word is
    /// truncated. Filling in pieces whose lengths are multiples of 8 gives the same bytes as one
    /// fill.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// The `len` bytes that `/bytes/{len}?seed={seed}` sends.
///
/// The generator is xorshift64* (shifts 12, 25, 27; output multiplier `0x2545F4914F6CDD1D`),
/// its state seeded with `seed ^ 0x9E3779B97F4A7C15` (or `0x9E3779B97F4A7C15` if that is zero).
/// Each output is written as 8 little-endian bytes, and the last output is truncated to fit.
///
/// ```
/// let bytes = volley_testserver::seeded_bytes(42, 10);
/// assert_eq!(bytes.len(), 10);
/// assert_eq!(bytes, volley_testserver::seeded_bytes(42, 10));
/// assert_ne!(bytes, volley_testserver::seeded_bytes(43, 10));
/// ```
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    XorShift64Star::new(seed).fill(&mut out);
    out
}

/// A seed that differs on every call (for `/bytes` without `?seed=`, `/uuid` and `/cache`):
/// the wall clock's nanoseconds and a counter, mixed by SplitMix64's finaliser.
pub(crate) fn clock_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut z = nanos ^ count.wrapping_mul(SEED_MIX);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_match_one_fill() {
        let whole = seeded_bytes(7, 1001);
        let mut rng = XorShift64Star::new(7);
        let mut pieces = vec![0; 1001];
        let (a, b) = pieces.split_at_mut(512);
        rng.fill(a);
        rng.fill(b);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn zero_state_is_avoided() {
        let mut rng = XorShift64Star::new(SEED_MIX);
        assert_ne!(rng.next_u64(), 0);
    }
}
