//! The optional contract of style-based generators (StyleGAN and kin): a mapping from latent code and
//! conditioning to a style vector `w`, and a synthesis network steered by one style per layer. A
//! generator that exposes it through [`crate::Generator::styles`] gets the pipeline's truncation trick
//! and style-mixing grids for free.

use candle_core::Tensor;

use crate::{Conditioning, Result};

/// Where the per-layer noise inputs of a synthesis network come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoiseInputs {
    /// Drawn from a generator seeded by each sample's latent vector: one latent vector still fixes one
    /// image, and different latents get different noise (what `forward` uses).
    #[default]
    FromLatent,
    /// The network's stored noise maps, the same for every sample.
    Fixed,
    /// No noise.
    Zero,
}

/// A generator whose latent code is first mapped to a style vector `w` that steers each layer.
pub trait StyleControl {
    /// Number of style inputs (one per modulated layer, the StyleGAN2 way of counting).
    fn style_count(&self) -> usize;
    /// Size of `w`.
    fn style_dim(&self) -> usize;
    /// Maps latents `(B, latent_dim)` and conditioning to styles `(B, style_dim)`, in inference mode.
    fn map(&self, z: &Tensor, cond: Option<&Conditioning>) -> Result<Tensor>;
    /// The moving average of `w` tracked during training, `(style_dim,)`.
    fn average_style(&self) -> Result<Tensor>;
    /// Draws images from per-layer styles `(B, style_count, style_dim)`. `z` is the latent batch whose
    /// vectors seed the noise under [`NoiseInputs::FromLatent`].
    fn synthesize(&self, ws: &Tensor, z: &Tensor, noise: NoiseInputs) -> Result<Tensor>;
}
