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
