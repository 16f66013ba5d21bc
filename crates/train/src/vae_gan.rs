//! VAE-GAN (Larsen, Sønderby, Larochelle and Winther 2016, "Autoencoding beyond pixels using a learned
//! similarity metric") as a recipe: a VAE whose decoder is the run's generator and whose reconstruction
//! error is measured in a discriminator's features instead of in pixels, while the same discriminator
//! plays the GAN game against both the reconstructions and the prior samples.
//!
//! With `x` a real batch, `z ~ q(z | x)` the encoder's posterior draw, `x~ = G(z)` its reconstruction,
//! `x_p = G(z_p)` for `z_p ~ N(0, I)`, `f` the discriminator's last hidden layer and `D` its logit:
//! - `L_prior = KL(q(z | x) || N(0, I))` and `L_llike = 1/2 |f(x~) - f(x)|^2`, the negative
//!   log-likelihood of `f(x)` under a unit Gaussian around `f(x~)` (the paper's `L_llike^Dis_l`);
//! - discriminator: `BCE(D(x), 1) + BCE(D(x~), 0) + BCE(D(x_p), 0)` (the paper's `L_GAN`);
//! - encoder: `beta * L_prior + L_llike`;
//! - decoder: `gamma * L_llike + BCE(D(x~), 1) + BCE(D(x_p), 1)`, the paper's `gamma L_llike - L_GAN`
//!   with the non-saturating generator loss in place of `-log(1 - D)`.
//!
//! The discriminator is one network `d` (`mlp` by default) whose output is its logit followed by its
//! features; the recipe sets its `outputs` and `features`, and the encoder's `outputs` (means, then
//! log-variances, as for [`crate::vae`]).

use candle_core::Tensor;
use condor_core::{ModelSpec, NetworkDecl, NetworkKind, Recipe, RecipeSetup, Scalars, TrainContext};
use serde::{Deserialize, Serialize};

use crate::inversion::encoder_network;
use crate::losses::{bce_to, mean_probability};
use crate::recipe_inputs::{generator_inputs, latent_size};
use crate::recipe_updates::{log_and_update, update_discriminator, update_generator, DiscriminatorStep};
use crate::semi_supervised::split_output;
use crate::vae::{encode_and_decode, gaussian_nll, Encoded};

/// The registry name of the recipe.
pub const NAME: &str = "vae_gan";

/// The `[recipe] config` table of [`VaeGan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaeGanConfig {
    /// The latent size; when left out, the generator config's `latent_dim`.
    pub latent_dim: Option<usize>,
    /// The encoder (plugin and config; `outputs`, twice the latent size, and its input shape are filled).
    pub encoder: ModelSpec,
    /// The discriminator with its features (plugin and config; `outputs` and `features` are filled).
    pub network: ModelSpec,
    /// Weight of the feature reconstruction in the decoder's loss against the GAN term (the paper's gamma).
    pub gamma: f64,
    /// Weight of the KL term in the encoder's loss (1 in the paper).
    pub kl_weight: f64,
}

impl Default for VaeGanConfig {
    fn default() -> Self {
        let mlp = ModelSpec { plugin: "mlp".into(), config: serde_json::json!({}), pack: None };
        Self { latent_dim: None, encoder: mlp.clone(), network: mlp, gamma: 1e-2, kl_weight: 1.0 }
    }
}

/// The recipe: the run's generator `g` as decoder, the encoder `e` and the discriminator `d`.
pub struct VaeGan {
    config: VaeGanConfig,
    latent: usize,
    networks: Vec<NetworkDecl>,
}

/// An error in this recipe's config.
fn invalid(message: impl Into<String>) -> condor_core::Error {
    condor_core::Error::recipe_config(NAME, message)
}

impl VaeGan {
    /// The recipe for `config` with the run's generator and optimizers.
    pub fn new(config: VaeGanConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        let latent = latent_size(config.latent_dim, setup).map_err(invalid)?;
        condor_core::Error::check_non_negative(NAME, &[("gamma", config.gamma), ("kl_weight", config.kl_weight)])?;
        let mut networks = setup.generator_and_discriminator();
        networks[1].kind = NetworkKind::Network;
        let d = config.network.with_field("outputs", 1.into()).map_err(invalid)?;
        networks[1].spec = d.with_field("features", true.into()).map_err(invalid)?;
        networks.push(encoder_network(&config.encoder, 2 * latent, setup).map_err(invalid)?);
        Ok(Self { config, latent, networks })
    }
}

/// The discriminator's logits `(B,)` and features `(B, F)` of real, reconstructed and prior-drawn rows
/// (in one pass), each split back out: `[real, reconstructed, drawn]`.
fn logits_and_features(
    d: &dyn condor_core::Network,
    images: [&Tensor; 3],
) -> condor_core::Result<[(Tensor, Tensor); 3]> {
    let (logits, features) = split_output(&d.forward(&Tensor::cat(&images, 0)?, None, true)?, 1)?;
    let logits = logits.squeeze(1)?;
    let mut start = 0;
    let mut part = |x: &Tensor| -> condor_core::Result<(Tensor, Tensor)> {
        let n = x.dim(0)?;
        let out = (logits.narrow(0, start, n)?, features.narrow(0, start, n)?);
        start += n;
        Ok(out)
    };
    Ok([part(images[0])?, part(images[1])?, part(images[2])?])
}

impl Recipe for VaeGan {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let mut log = Scalars::new();
        let Encoded { real, posterior, reconstructions } = encode_and_decode(cx, self.latent, false)?;
        let drawn = generator_inputs(cx)?.images;

        let (rec, prior) = (reconstructions.detach(), drawn.detach());
        let [(on_real, _), (on_rec, _), (on_prior, _)] = logits_and_features(cx.network("d")?, [&real, &rec, &prior])?;
        let loss_d = ((bce_to(&on_real, 1.0)? + bce_to(&on_rec, 0.0)?)? + bce_to(&on_prior, 0.0)?)?;
        let (real_score, prior_score) = (mean_probability(&on_real)?, mean_probability(&on_prior)?);
        let rec_score = mean_probability(&on_rec)?;
        let step = DiscriminatorStep {
            loss: &loss_d,
            what: "discriminator loss",
            real: &real_score,
            fake: &prior_score,
            extra: &[("d_reconstructed", &rec_score)],
        };
        update_discriminator(cx, &mut log, "d", step)?;

        let d = cx.frozen_network("d")?;
        let [(_, f_real), (on_rec, f_rec), (on_prior, _)] = logits_and_features(d, [&real, &reconstructions, &drawn])?;
        let llike = gaussian_nll(&f_rec, &f_real.detach(), 1.0)?;
        let kl = posterior.kl_to_prior()?;
        let loss_e = ((&kl * self.config.kl_weight)? + &llike)?;
        let gan = (bce_to(&on_rec, 1.0)? + bce_to(&on_prior, 1.0)?)?;
        let loss_g = ((&llike * self.config.gamma)? + &gan)?;
        // The encoder first: an update writes its weights in place, and the decoder's backward pass
        // reads the decoder's weights, which must still be those of the forward pass.
        let extra = [("reconstruction", &llike), ("kl", &kl)];
        log_and_update(cx, &mut log, "e", ("loss_e", "encoder loss", &loss_e), &extra)?;
        update_generator(cx, &mut log, &loss_g, &[("loss_gan", &gan)])?;
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use condor_core::Conditioning;

    /// A network whose output is its input's two columns (a logit, then one feature), to check the split.
    struct Echo;
    impl condor_core::Network for Echo {
        fn conditioning(&self) -> condor_core::ConditioningKind {
            condor_core::ConditioningKind::None
        }
        fn forward(&self, x: &Tensor, _: Option<&Conditioning>, _: bool) -> condor_core::Result<Tensor> {
            Ok(x.clone())
        }
    }

    #[test]
    fn the_passes_are_split_back_into_real_reconstructed_and_drawn_rows() {
        let dev = &Device::Cpu;
        let rows = |v: &[[f32; 2]]| Tensor::new(v.concat(), dev).unwrap().reshape((v.len(), 2)).unwrap();
        let (a, b, c) = (rows(&[[1.0, 10.0]]), rows(&[[2.0, 20.0], [3.0, 30.0]]), rows(&[[4.0, 40.0]]));
        let [(l0, f0), (l1, f1), (l2, f2)] = logits_and_features(&Echo, [&a, &b, &c]).unwrap();
        assert_eq!((l0.to_vec1::<f32>().unwrap(), f0.to_vec2::<f32>().unwrap()), (vec![1.0], vec![vec![10.0]]));
        assert_eq!(
            (l1.to_vec1::<f32>().unwrap(), f1.to_vec2::<f32>().unwrap()),
            (vec![2.0, 3.0], vec![vec![20.0], vec![30.0]])
        );
        assert_eq!((l2.to_vec1::<f32>().unwrap(), f2.to_vec2::<f32>().unwrap()), (vec![4.0], vec![vec![40.0]]));
    }
}
