//! Seeded random numbers. candle's CPU generator cannot be seeded, so every random draw in Condor
//! (initialisation, noise, data order) comes from here.

use candle_core::{Device, Shape, Tensor};
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The generator used everywhere: ChaCha8, portable and reproducible across platforms.
pub type Rng = rand_chacha::ChaCha8Rng;

/// A generator for one purpose, derived from a run seed and a path of indices
/// (for example `[step, sub_step]`). The same inputs always give the same stream, so a run can resume
/// from its step number alone.
pub fn derived_rng(seed: u64, path: &[u64]) -> Rng {
    let mut h = splitmix64(seed);
    for &p in path {
        h = splitmix64(h ^ splitmix64(p.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    }
    Rng::seed_from_u64(h)
}

/// Every random stream a run draws from, with its path under the run seed ([`derived_rng`]). The
/// paths are those of earlier releases, so old runs reproduce; two pairs share a path
/// (`FixedNoise` and `Init(0)`, `BatchNorm` and `Init(1)`), harmless because the first draws the
/// initial weights' seed and the second draws noise, but new streams take free paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Real batch `j` of iteration `step` (and, at `j = k`, the generator's conditioning draw, then
    /// everything the iteration draws after it: noise, labels, augmentation).
    Iteration {
        /// The iteration.
        step: u64,
        /// The draw within it.
        draw: u64,
    },
    /// The seed of a network's initial weights, by its [`crate::recipe::NetworkDecl::init_stream`].
    Init(u64),
    /// The fixed noise of progress plots and evaluation grids (`sub` picks the plot).
    FixedNoise(Option<u64>),
    /// Re-estimating batch-norm statistics of the EMA generator (batch `i`).
    BatchNorm(u64),
    /// The seed of the captioned-data loader's shuffles and crops.
    Loader,
}

impl Stream {
    /// The stream's path under the run seed.
    pub fn path(self) -> Vec<u64> {
        match self {
            Self::Iteration { step, draw } => vec![step, draw],
            Self::Init(n @ (0 | 1)) => vec![u64::MAX - n],
            Self::Init(n) => vec![u64::MAX - 16, n],
            Self::FixedNoise(None) => vec![u64::MAX],
            Self::FixedNoise(Some(sub)) => vec![u64::MAX, sub],
            Self::BatchNorm(i) => vec![u64::MAX - 1, i],
            Self::Loader => vec![u64::MAX - 7],
        }
    }

    /// The stream's generator for run seed `seed`.
    pub fn rng(self, seed: u64) -> Rng {
        derived_rng(seed, &self.path())
    }
}

/// A stable 64-bit FNV-1a hasher, fed in pieces (for seeds and cache keys, not for security).
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// A stable 64-bit hash of a string (FNV-1a), for deriving per-name seeds.
pub fn hash_name(name: &str) -> u64 {
    let mut h = Fnv64::default();
    h.update(name.as_bytes());
    h.finish()
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A float32 tensor of standard normal draws.
pub fn normal(rng: &mut Rng, shape: impl Into<Shape>, device: &Device) -> candle_core::Result<Tensor> {
    let shape = shape.into();
    let data: Vec<f32> = (0..shape.elem_count()).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_vec(data, shape, device)
}

/// A float32 tensor of uniform draws in `[lo, hi)`.
pub fn uniform(
    rng: &mut Rng,
    lo: f32,
    hi: f32,
    shape: impl Into<Shape>,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let shape = shape.into();
    let data: Vec<f32> = (0..shape.elem_count()).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(data, shape, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn derived_streams_repeat_and_differ() {
        let a = derived_rng(7, &[3, 1]).next_u64();
        assert_eq!(a, derived_rng(7, &[3, 1]).next_u64());
        assert_ne!(a, derived_rng(7, &[3, 2]).next_u64());
        assert_ne!(a, derived_rng(8, &[3, 1]).next_u64());
        assert_ne!(derived_rng(7, &[1, 3]).next_u64(), a);
    }

    #[test]
    fn normal_draws_have_unit_moments() {
        let mut rng = derived_rng(1, &[]);
        let t = normal(&mut rng, 20_000, &Device::Cpu).unwrap();
        let v: Vec<f32> = t.to_vec1().unwrap();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }
}
