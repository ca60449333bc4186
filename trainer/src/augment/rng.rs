//! Random streams keyed by what they are for, so that every random choice is a pure function of
//! `(seed, epoch, image index, view)` and does not depend on thread scheduling, batch composition
//! or the order in which images are processed.
//!
//! Each stream is a ChaCha8 generator whose 256-bit key is derived from the key words by
//! SplitMix64 mixing, with a domain tag so that, say, the shuffle of epoch 3 and the augmentation
//! of image 3 never share a stream.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Domain tag of the per-view augmentation streams.
const DOMAIN_VIEW: u64 = 0x7669_6577; // "view"
/// Domain tag of the per-epoch shuffle streams.
const DOMAIN_SHUFFLE: u64 = 0x7368_7566; // "shuf"

/// A seeded random stream with the few draws the augmentations need.
#[derive(Clone, Debug)]
pub struct StreamRng(ChaCha8Rng);

impl StreamRng {
    /// The stream of augmentation draws for one view of one image in one epoch.
    pub fn for_view(seed: u64, epoch: u64, index: u64, view: u32) -> Self {
        Self::from_words(&[DOMAIN_VIEW, seed, epoch, index, u64::from(view)])
    }

    /// The stream that shuffles the dataset at the start of an epoch.
    pub fn for_shuffle(seed: u64, epoch: u64) -> Self {
        Self::from_words(&[DOMAIN_SHUFFLE, seed, epoch])
    }

    /// A stream keyed by arbitrary words (for tests and tools).
    pub fn from_words(words: &[u64]) -> Self {
        let mut h = 0x6d63_6c72_5f72_6e67_u64; // "mclr_rng"
        for &w in words {
            h = splitmix64(h ^ w);
        }
        let mut key = [0_u8; 32];
        for (i, chunk) in key.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&splitmix64(h.wrapping_add(i as u64)).to_le_bytes());
        }
        Self(ChaCha8Rng::from_seed(key))
    }

    /// A uniform `f64` in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
    }

    /// A uniform `f64` in `[lo, hi)` (`lo` when the range is empty).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// `true` with probability `p` (`p ≤ 0` never, `p ≥ 1` always; one draw either way).
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A uniform integer in `0..n` without modulo bias (Lemire's method); `0` when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        loop {
            let m = u128::from(self.0.next_u64()) * u128::from(n);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Fisher–Yates shuffles `items` in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// One SplitMix64 step: a bijective 64-bit mix with good avalanche.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
