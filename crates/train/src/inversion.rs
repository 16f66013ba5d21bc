//! Turning real images back into latents, for recipes that train an encoder (BiGAN/ALI, the VAE and
//! VAE-GAN): the encoder network's latents, and the sampling generator's images of them (the
//! reconstructions); and the encoder network such recipes declare.

use candle_core::Tensor;
use condor_core::{ModelSpec, NetworkDecl, NetworkKind, RecipeSetup};

use crate::error::{Result, TrainError};
use crate::networks::{as_network, forward_in_batches};
use crate::trainer::Trainer;

/// The name of the encoder network of every recipe that has one.
pub const ENCODER: &str = "e";

/// The encoder network `e` a recipe declares: `spec` with `outputs` columns (the recipe sets them; an
/// error message when the user set another number), trained with the run's generator optimizer, as the
/// papers' encoders and decoders share one.
pub fn encoder_network(
    spec: &ModelSpec,
    outputs: usize,
    setup: &RecipeSetup,
) -> std::result::Result<NetworkDecl, String> {
    Ok(NetworkDecl {
        name: ENCODER.into(),
        kind: NetworkKind::Network,
        spec: spec.with_field("outputs", outputs.into())?,
        optimizer: setup.generator_optimizer,
        ema: false,
        init_stream: 2,
    })
}

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

/// The latents the trained encoder gives `images` (a variational encoder's posterior means).
pub fn encode(trainer: &Trainer, images: &Tensor) -> Result<Tensor> {
    let e = trainer.network(ENCODER).ok_or_else(|| {
        let recipe = trainer.config().recipe.as_ref().map_or("adversarial", |s| s.plugin.as_str());
        TrainError::Config(format!(
            "the `{recipe}` recipe trains no encoder (network `{ENCODER}`); `bigan`, `vae` and `vae_gan` do"
        ))
    })?;
    let shape = trainer.data().sample_shape();
    if images.dims()[1..] != shape[..] {
        return Err(TrainError::Config(format!(
            "the encoder reads images of shape {shape:?}, not {:?}",
            &images.dims()[1..]
        )));
    }
    let out = forward_in_batches(as_network(ENCODER, &e.model)?, images, BATCH)?;
    // A variational encoder gives the posterior's means, then its log-variances: the code is the mean.
    let latent = trainer.sampling_generator()?.latent_dim();
    Ok(out.narrow(1, 0, latent.min(out.dim(1)?))?)
}
