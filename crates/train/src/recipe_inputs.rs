//! What the simple built-in recipes (loss-sensitive, energy-based, unrolled) draw each step: this
//! rank's real rows and a generated batch for a discriminator step, a generated batch for the
//! generator step, each with its conditioning, in the passes' dtype.

use candle_core::Tensor;
use condor_core::rng::normal;
use condor_core::{Batch, Conditioning, Generator, Rng, TrainContext};

/// This rank's rows of `batch` and of the conditioning, and `g`'s images of latents drawn from `rng`.
fn generated(
    cx: &dyn TrainContext,
    g: &dyn Generator,
    cond: Option<&Conditioning>,
    rng: &mut Rng,
) -> condor_core::Result<(Tensor, Option<Conditioning>)> {
    let dtype = cx.dtype();
    let z = cx.rows(&normal(rng, (cx.batch_size(), g.latent_dim()), cx.device())?, 1)?.to_dtype(dtype)?;
    let cond = cond.map(|c| cx.conditioning_rows(c, 1)).transpose()?;
    let cond = cond.map(|c| c.to_dtype(dtype)).transpose()?;
    let fake = g.forward(&z, g.conditioning().select(cond.as_ref()), true)?;
    Ok((fake, cond))
}

/// A discriminator step's inputs: this rank's real rows of `batch`, a batch from the frozen generator
/// `g` on latents drawn from `rng`, and the batch's conditioning.
pub fn discriminator_inputs(
    cx: &dyn TrainContext,
    batch: &Batch,
    rng: &mut Rng,
) -> condor_core::Result<(Tensor, Tensor, Option<Conditioning>)> {
    let (fake, cond) = generated(cx, cx.frozen_generator("g")?, batch.conditioning.as_ref(), rng)?;
    let real = cx.rows(&batch.samples, 1)?.to_dtype(cx.dtype())?;
    Ok((real, fake, cond))
}

/// The generator step's batch: the trainable generator `g`'s images of the iteration's generator draw,
/// with its conditioning.
pub fn generator_inputs(cx: &dyn TrainContext) -> condor_core::Result<(Tensor, Option<Conditioning>)> {
    let (cond, mut rng) = cx.generator_draw();
    generated(cx, cx.generator("g")?, cond.as_ref(), &mut rng)
}
