//! # condor-stylegan: a StyleGAN-like generator and a residual discriminator
//!
//! - [`StyleGanGenerator`] (after Karras et al., 2019 and 2020): z, normalised and joined with the
//!   text conditioning (embedded, or sampled by StackGAN's conditioning augmentation), goes through a
//!   mapping network (8 equalised-learning-rate layers by default) to a style vector w. The synthesis
//!   network starts from a learned 4x4 constant; each resolution has two 3x3 convolutions modulated by
//!   styles from w with weight demodulation (StyleGAN2), per-layer noise inputs with learned
//!   per-channel strengths, bilinear upsampling written from primitive ops (its gradient is exact), and
//!   toRGB outputs summed across resolutions. Training mixes the styles of two latents per sample
//!   (style mixing) and tracks the moving average of w for the truncation trick; the generator exposes
//!   its style space through [`condor_core::StyleControl`], so the pipeline's truncation and
//!   style-mixing grids work with it.
//! - [`ResidualDiscriminator`]: StyleGAN2's residual discriminator with minibatch standard deviation
//!   and a projection term for the conditioning, optionally with Reed et al.'s text code tiled over
//!   the 4x4 features (`text_concat`); it pairs with any generator.
//!
//! Registered as `"stylegan"` for both kinds by [`register`]. Sizes are powers of two from 8 to 1024.
//! The defaults are 32 pixels with 32 to 128 feature maps (`channel_base` 1024, `channel_max` 128);
//! `configs/birds-stylegan.toml` uses 8 to 64 for a 2-core CPU (a step of the defaults at
//! batch 64 takes 7.5 s there), and `configs/birds-stylegan-gpu.toml` has StyleGAN2-ADA's.

pub mod discriminator;
pub mod generator;
pub mod layers;

pub use condor_core::augmentation::Augmentation;
pub use discriminator::{ResidualDiscriminator, ResidualDiscriminatorConfig};
pub use generator::{StyleGanGenerator, StyleGanGeneratorConfig};

use condor_core::{Error, Registry};

/// The resolutions from 4 up to `size`, or an error unless `size` is a power of two in 8..=1024.
fn resolutions(size: usize, who: &str) -> condor_core::Result<Vec<usize>> {
    if !size.is_power_of_two() || !(8..=1024).contains(&size) {
        return Err(Error::InvalidInput(format!(
            "{who}: image_size must be a power of two from 8 to 1024, not {size}"
        )));
    }
    Ok(std::iter::successors(Some(4), |r| Some(r * 2)).take_while(|&r| r <= size).collect())
}

/// Feature maps at resolution `r`: `min(base / r, max)`, at least 1.
fn channels_at(r: usize, base: usize, max: usize) -> usize {
    (base / r).min(max).max(1)
}

/// Registers `"stylegan"` as a generator and as a discriminator.
pub fn register(registry: &mut Registry) -> condor_core::Result<()> {
    registry.register_generator("stylegan", StyleGanGenerator::new)?;
    registry.register_discriminator("stylegan", ResidualDiscriminator::new)
}

#[cfg(test)]
mod tests;
