//! What the simple built-in recipes (loss-sensitive, energy-based, unrolled, InfoGAN) draw each step:
//! this rank's real rows and a generated batch for a discriminator step, a generated batch for the
//! generator step, each with its conditioning and latents, in the passes' dtype.

use candle_core::Tensor;
use condor_core::rng::normal;
use condor_core::{Batch, Conditioning, Generator, RecipeSetup, Rng, TrainContext};

/// A generated batch: this rank's images, their conditioning and the latents they were drawn from.
pub struct Generated {
    /// The images (or samples).
    pub images: Tensor,
    /// Their conditioning, if the data has any.
    pub cond: Option<Conditioning>,
    /// The latents `(B, latent_dim)` (float32, this rank's rows).
    pub z: Tensor,
}

/// This rank's rows of the conditioning, and `g`'s images of latents drawn from `rng`.
fn generated(
    cx: &dyn TrainContext,
    g: &dyn Generator,
    cond: Option<&Conditioning>,
    rng: &mut Rng,
) -> condor_core::Result<Generated> {
    let dtype = cx.dtype();
    let z = cx.rows(&normal(rng, (cx.batch_size(), g.latent_dim()), cx.device())?, 1)?;
    let cond = cond.map(|c| cx.conditioning_rows(c, 1)).transpose()?;
    let cond = cond.map(|c| c.to_dtype(dtype)).transpose()?;
    let images = g.forward(&z.to_dtype(dtype)?, g.conditioning().select(cond.as_ref()), true)?;
    Ok(Generated { images, cond, z })
}

/// A discriminator step's inputs: this rank's real rows of `batch`, and a batch from the frozen
/// generator `g` on latents drawn from `rng` with the batch's conditioning.
pub fn discriminator_inputs(
    cx: &dyn TrainContext,
    batch: &Batch,
    rng: &mut Rng,
) -> condor_core::Result<(Tensor, Generated)> {
    let fake = generated(cx, cx.frozen_generator("g")?, batch.conditioning.as_ref(), rng)?;
    let real = cx.rows(&batch.samples, 1)?.to_dtype(cx.dtype())?;
    Ok((real, fake))
}

/// The generator step's batch: the trainable generator `g`'s images of the iteration's generator draw.
pub fn generator_inputs(cx: &dyn TrainContext) -> condor_core::Result<Generated> {
    let (cond, mut rng) = cx.generator_draw();
    generated(cx, cx.generator("g")?, cond.as_ref(), &mut rng)
}

/// The latent size of a recipe with an encoder: `given`, or else the run's generator config's
/// `latent_dim`; an error message when neither gives one of at least 1.
pub fn latent_size(given: Option<usize>, setup: &RecipeSetup) -> Result<usize, String> {
    let latent =
        match given {
            Some(n) => n,
            None => {
                setup.generator.config.get("latent_dim").and_then(|v| v.as_u64()).ok_or_else(|| {
                    "the generator config has no `latent_dim`; give the recipe's `latent_dim`".to_string()
                })? as usize
            }
        };
    if latent == 0 {
        return Err("latent_dim must be at least 1".into());
    }
    Ok(latent)
}
