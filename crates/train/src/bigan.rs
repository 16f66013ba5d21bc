//! BiGAN (Donahue, Krähenbühl and Darrell 2016, "Adversarial Feature Learning"), also ALI (Dumoulin et
//! al. 2016, "Adversarially Learned Inference"), as a recipe: besides the generator `G: z -> x`, an
//! encoder `E: x -> z` is trained, and the discriminator tells apart pairs `(x, E(x))` of a real image
//! and its code from pairs `(G(z), z)` of a drawn code and its image. At the optimum the two joint
//! distributions agree, so `E` inverts `G`: it turns a real image back into the latent that draws it.
//!
//! With the non-saturating loss on the discriminator's logit `D(x, z)`:
//! `L_D = BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0)`, `L_G = BCE(D(G(z), z), 1)`, `L_E = BCE(D(x, E(x)), 0)`.
//!
//! The discriminator is one network `d` (`mlp` by default) that reads the latent as its conditioning
//! vector, joined to the flattened image; the encoder `e` is any network whose output is a latent (`mlp`
//! by default). The recipe sets their widths from the latent size; `e` trains with the run's generator
//! optimizer, as the paper's encoder and generator share one.

use candle_core::{DType, Tensor};
use condor_core::{Conditioning, ModelSpec, NetworkDecl, NetworkKind, Recipe, RecipeSetup, Scalars, TrainContext};
use serde::{Deserialize, Serialize};

use crate::inversion::encoder_network;
use crate::losses::{bce_to, mean_probability};
use crate::recipe_inputs::{discriminator_inputs, generator_inputs, latent_size, Generated};
use crate::recipe_updates::{update_discriminator, DiscriminatorStep};

/// The registry name of the recipe.
pub const NAME: &str = "bigan";

/// The `[recipe] config` table of [`BiGan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BiGanConfig {
    /// The latent size; when left out, the generator config's `latent_dim`.
    pub latent_dim: Option<usize>,
    /// The encoder (plugin and config; `outputs` and its input shape are filled).
    pub encoder: ModelSpec,
    /// The discriminator of pairs (plugin and config; `outputs` and `cond_dim` are filled).
    pub network: ModelSpec,
    /// Discriminator steps per generator and encoder step.
    pub d_steps: usize,
}

impl Default for BiGanConfig {
    fn default() -> Self {
        let mlp = ModelSpec { plugin: "mlp".into(), config: serde_json::json!({}), pack: None };
        Self { latent_dim: None, encoder: mlp.clone(), network: mlp, d_steps: 1 }
    }
}

/// The recipe: the run's generator `g`, the encoder `e` and the pair discriminator `d`.
pub struct BiGan {
    config: BiGanConfig,
    networks: Vec<NetworkDecl>,
}

/// An error in this recipe's config.
fn invalid(message: impl Into<String>) -> condor_core::Error {
    condor_core::Error::recipe_config(NAME, message)
}

impl BiGan {
    /// The recipe for `config` with the run's generator and optimizers.
    pub fn new(config: BiGanConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        let latent = latent_size(config.latent_dim, setup).map_err(invalid)?;
        if config.d_steps == 0 {
            return Err(invalid("d_steps must be at least 1"));
        }
        let mut networks = setup.generator_and_discriminator();
        networks[1].kind = NetworkKind::Network;
        let d = config.network.with_field("outputs", 1.into()).map_err(invalid)?;
        networks[1].spec = d.with_field("cond_dim", latent.into()).map_err(invalid)?;
        networks.push(encoder_network(&config.encoder, latent, setup).map_err(invalid)?);
        Ok(Self { config, networks })
    }
}

/// The logits `(B,)` of the pair discriminator `d` for images `x` and latents `z`.
fn pair_logits(d: &dyn condor_core::Network, x: &Tensor, z: &Tensor) -> condor_core::Result<Tensor> {
    let cond = Conditioning::from_embedding(z.to_dtype(x.dtype())?)?;
    Ok(d.forward(x, Some(&cond), true)?.to_dtype(DType::F32)?.squeeze(1)?)
}

impl Recipe for BiGan {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn batches_per_step(&self) -> usize {
        self.config.d_steps
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let mut log = Scalars::new();
        let mut last_real = None;
        while let Some((batch, mut rng)) = cx.next_batch() {
            let (real, fake) = discriminator_inputs(cx, &batch, &mut rng)?;
            let codes = cx.frozen_network("e")?.forward(&real, None, true)?;
            let d = cx.network("d")?;
            let (on_real, on_fake) = (pair_logits(d, &real, &codes)?, pair_logits(d, &fake.images, &fake.z)?);
            let loss = (bce_to(&on_real, 1.0)? + bce_to(&on_fake, 0.0)?)?;
            let (real_score, fake_score) = (mean_probability(&on_real)?, mean_probability(&on_fake)?);
            let step = DiscriminatorStep {
                loss: &loss,
                what: "discriminator loss",
                real: &real_score,
                fake: &fake_score,
                extra: &[],
            };
            update_discriminator(cx, &mut log, "d", step)?;
            last_real = Some(real);
        }
        let real = last_real.ok_or_else(|| condor_core::Error::InvalidInput("the iteration drew no batch".into()))?;
        let Generated { images, z, .. } = generator_inputs(cx)?;
        let loss_g = bce_to(&pair_logits(cx.frozen_network("d")?, &images, &z)?, 1.0)?;
        let codes = cx.network("e")?.forward(&real, None, true)?;
        let loss_e = bce_to(&pair_logits(cx.frozen_network("d")?, &real, &codes)?, 0.0)?;
        let values = cx.scalars(&[&loss_g, &loss_e])?;
        log.insert("loss_g".into(), cx.finite("generator loss", values[0])?);
        log.insert("loss_e".into(), cx.finite("encoder loss", values[1])?);
        cx.update("g", &loss_g)?;
        cx.update("e", &loss_e)?;
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_losses_match_hand_computed_values() {
        let logits = Tensor::new(&[0.0f32, 2f32.ln()], &Device::Cpu).unwrap();
        // sigmoid(0) = 1/2 and sigmoid(ln 2) = 2/3: -ln(1/2) and -ln(2/3) toward 1; -ln(1/2), -ln(1/3) toward 0.
        let to_one = bce_to(&logits, 1.0).unwrap().to_scalar::<f32>().unwrap();
        let to_zero = bce_to(&logits, 0.0).unwrap().to_scalar::<f32>().unwrap();
        assert!((to_one - (2f32.ln() + 1.5f32.ln()) / 2.0).abs() < 1e-6, "{to_one}");
        assert!((to_zero - (2f32.ln() + 3f32.ln()) / 2.0).abs() < 1e-6, "{to_zero}");
    }
}
