//! Turning real images back into latents, for recipes that train an encoder (BiGAN/ALI, VAE-GAN): the
//! encoder network's latents, and the sampling generator's images of them (the reconstructions).

use candle_core::Tensor;

use crate::error::{Result, TrainError};
use crate::networks::{as_network, forward_in_batches};
use crate::trainer::Trainer;

/// The name of the encoder network of every recipe that has one.
pub const ENCODER: &str = "e";

/// Rows encoded or decoded at a time.
const BATCH: usize = 256;

/// The latents `(N, latent_dim)` the trained encoder gives `images` (`(N, ...)` in [-1, 1], the data's
/// sample shape), and the generator's reconstructions of them.
pub fn reconstruct(trainer: &Trainer, images: &Tensor) -> Result<(Tensor, Tensor)> {
    let latents = encode(trainer, images)?;
    let g = trainer.sampling_generator()?;
    let n = latents.dim(0)?;
    let parts = (0..n)
        .step_by(BATCH)
        .map(|start| g.forward(&latents.narrow(0, start, BATCH.min(n - start))?, None, false))
        .collect::<condor_core::Result<Vec<_>>>()?;
    Ok((latents, Tensor::cat(&parts, 0)?))
}

/// The latents the trained encoder gives `images`.
pub fn encode(trainer: &Trainer, images: &Tensor) -> Result<Tensor> {
    let e = trainer.network(ENCODER).ok_or_else(|| {
        let recipe = trainer.config().recipe.as_ref().map_or("adversarial", |s| s.plugin.as_str());
        TrainError::Config(format!("the `{recipe}` recipe trains no encoder (network `{ENCODER}`); `bigan` does"))
    })?;
    let shape = trainer.data().sample_shape();
    if images.dims()[1..] != shape[..] {
        return Err(TrainError::Config(format!(
            "the encoder reads images of shape {shape:?}, not {:?}",
            &images.dims()[1..]
        )));
    }
    Ok(forward_in_batches(as_network(ENCODER, &e.model)?, images, BATCH)?)
}
