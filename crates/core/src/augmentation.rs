//! StackGAN's conditioning augmentation, shared by the generators that offer it: the embedding gives a
//! mean and a log standard deviation, the generator reads `mu + sigma * eps`, and
//! `kl_weight * KL(N(mu, sigma^2) || N(0, I))` joins its loss.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// Settings of conditioning augmentation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augmentation {
    /// Size of the sampled conditioning code.
    pub dim: usize,
    /// Weight of the KL term (StackGAN uses 1 to 2).
    pub kl_weight: f64,
}

impl Default for Augmentation {
    fn default() -> Self {
        Self { dim: 128, kl_weight: 1.0 }
    }
}

impl Augmentation {
    /// Splits a layer's `(B, 2 * dim)` output into `(mu, log sigma)`.
    pub fn split(&self, stats: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((stats.narrow(1, 0, self.dim)?, stats.narrow(1, self.dim, self.dim)?))
    }

    /// The weighted KL term for `(mu, log sigma)`.
    pub fn weighted_kl(&self, mu: &Tensor, log_sigma: &Tensor) -> candle_core::Result<Tensor> {
        kl_to_standard_normal(mu, log_sigma)? * self.kl_weight
    }
}

/// The reparameterised sample `mu + exp(log sigma) * eps`.
pub fn reparameterise(mu: &Tensor, log_sigma: &Tensor, eps: &Tensor) -> candle_core::Result<Tensor> {
    mu + log_sigma.exp()?.mul(eps)?
}

/// `KL(N(mu, sigma^2) || N(0, I))` per dimension, `0.5 (mu^2 + sigma^2 - 1) - log sigma`, averaged over
/// the batch and the dimensions (as StackGAN averages it).
pub fn kl_to_standard_normal(mu: &Tensor, log_sigma: &Tensor) -> candle_core::Result<Tensor> {
    let per_dim = ((mu.sqr()? + (log_sigma * 2.0)?.exp()?)? - 1.0)? * 0.5;
    (per_dim? - log_sigma)?.mean_all()
}
