//! The variational autoencoder (Kingma and Welling 2014, "Auto-Encoding Variational Bayes") as a
//! recipe, and the Gaussian posterior it shares with VAE-GAN ([`crate::vae_gan`]).
//!
//! An encoder `e` maps an image to the mean and log-variance of a diagonal Gaussian posterior
//! `q(z | x)`; the run's generator decodes a draw `z = mean + exp(logvar / 2) * eps` back into an
//! image. Both minimise the negative evidence lower bound
//!
//! `L = E_x [ 1/(2 sigma^2) |x - G(z)|^2 + beta * KL(q(z | x) || N(0, I)) ]`,
//!
//! a Gaussian pixel likelihood of standard deviation `pixel_sigma` (on the data's [-1, 1] scale; the
//! constant dropped) and the closed-form KL divergence to the standard normal prior (`beta = 1` is the
//! ELBO). Samples are the generator's images of prior draws, as for every GAN, so `condor sample`,
//! the progress grids and the digit metrics read a VAE like any generator. This recipe trains no
//! discriminator: it ignores the run's `[discriminator]` table, which every run config states.

use candle_core::{DType, Tensor};
use condor_core::rng::normal;
use condor_core::{ModelSpec, NetworkDecl, Recipe, RecipeSetup, Rng, Scalars, TrainContext};
use serde::{Deserialize, Serialize};

use crate::inversion::encoder_network;
use crate::recipe_inputs::latent_size;

/// The registry name of the recipe.
pub const NAME: &str = "vae";

/// The `[recipe] config` table of [`Vae`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaeConfig {
    /// The latent size; when left out, the generator config's `latent_dim`.
    pub latent_dim: Option<usize>,
    /// The encoder (plugin and config; `outputs`, twice the latent size, and its input shape are filled).
    pub encoder: ModelSpec,
    /// Standard deviation of the Gaussian pixel likelihood, on the data's [-1, 1] scale: smaller trusts
    /// the pixels more against the prior.
    pub pixel_sigma: f64,
    /// Weight of the KL term (1 is the ELBO; the beta of beta-VAE).
    pub kl_weight: f64,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self {
            latent_dim: None,
            encoder: ModelSpec { plugin: "mlp".into(), config: serde_json::json!({}), pack: None },
            pixel_sigma: 0.3,
            kl_weight: 1.0,
        }
    }
}

/// The recipe: the run's generator `g` as decoder and the encoder `e`.
pub struct Vae {
    config: VaeConfig,
    latent: usize,
    networks: Vec<NetworkDecl>,
}

/// An error in this recipe's config.
fn invalid(message: impl Into<String>) -> condor_core::Error {
    condor_core::Error::recipe_config(NAME, message)
}

impl Vae {
    /// The recipe for `config` with the run's generator and optimizers.
    pub fn new(config: VaeConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        let latent = latent_size(config.latent_dim, setup).map_err(invalid)?;
        if !(config.pixel_sigma > 0.0 && config.pixel_sigma.is_finite()) {
            return Err(invalid(format!("pixel_sigma must be positive, not {}", config.pixel_sigma)));
        }
        condor_core::Error::check_non_negative(NAME, &[("kl_weight", config.kl_weight)])?;
        let mut networks = setup.generator_and_discriminator();
        networks.truncate(1);
        networks.push(encoder_network(&config.encoder, 2 * latent, setup).map_err(invalid)?);
        Ok(Self { config, latent, networks })
    }
}

/// A diagonal Gaussian posterior `q(z | x)` per row: the encoder's output split into means and
/// log-variances (float32).
pub struct Posterior {
    /// Means `(B, L)`.
    pub mean: Tensor,
    /// Log-variances `(B, L)`.
    pub log_var: Tensor,
}

impl Posterior {
    /// The posterior in an encoder's output `(B, 2 L)`: `L` means, then `L` log-variances.
    pub fn from_output(output: &Tensor, latent: usize) -> condor_core::Result<Self> {
        let output = output.to_dtype(DType::F32)?;
        let width = output.dim(1)?;
        if width != 2 * latent {
            return Err(condor_core::Error::InvalidInput(format!(
                "a variational encoder gives {} columns (means and log-variances of a {latent}-wide latent), not {width}",
                2 * latent
            )));
        }
        Ok(Self { mean: output.narrow(1, 0, latent)?, log_var: output.narrow(1, latent, latent)? })
    }

    /// The reparameterised draw `mean + exp(log_var / 2) * eps` for standard normal `eps` `(B, L)`.
    pub fn sample(&self, eps: &Tensor) -> candle_core::Result<Tensor> {
        &self.mean + (&self.log_var * 0.5)?.exp()?.mul(eps)?
    }

    /// The mean over rows of `KL(q || N(0, I)) = 1/2 sum_j (mean_j^2 + exp(log_var_j) - 1 - log_var_j)`.
    pub fn kl_to_prior(&self) -> candle_core::Result<Tensor> {
        let terms = ((self.mean.sqr()? + self.log_var.exp()?)? - 1.0)? - &self.log_var;
        (terms?.sum(1)? * 0.5)?.mean_all()
    }
}

/// The mean over rows of `1/2 |a - b|^2 / sigma^2`, the sum running over each row's elements: the
/// negative log-likelihood of `a` under a Gaussian around `b` of standard deviation `sigma` (up to a
/// constant), in float32.
pub fn gaussian_nll(a: &Tensor, b: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
    let diff = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.flatten_from(1)?;
    (diff.sqr()?.sum(1)? * (0.5 / (sigma * sigma)))?.mean_all()
}

/// This rank's rows of standard normal noise `(B, latent)` drawn from `rng` for the global batch.
pub fn posterior_noise(cx: &dyn TrainContext, latent: usize, rng: &mut Rng) -> condor_core::Result<Tensor> {
    cx.rows(&normal(rng, (cx.batch_size(), latent), cx.device())?, 1)
}

/// What encoding a real batch and decoding the posterior draw gives: this rank's real rows, the
/// posterior and the reconstructions.
pub struct Encoded {
    /// This rank's real rows, in the passes' dtype.
    pub real: Tensor,
    /// The encoder's posterior of them.
    pub posterior: Posterior,
    /// The generator's images of the posterior draws.
    pub reconstructions: Tensor,
}

/// Encodes the iteration's real batch with `e` and decodes a posterior draw with `g`, each trainable
/// or frozen as asked.
pub fn encode_and_decode(cx: &mut dyn TrainContext, latent: usize, frozen: bool) -> condor_core::Result<Encoded> {
    let (batch, mut rng) =
        cx.next_batch().ok_or_else(|| condor_core::Error::InvalidInput("the iteration drew no batch".into()))?;
    let real = cx.rows(&batch.samples, 1)?.to_dtype(cx.dtype())?;
    let e = if frozen { cx.frozen_network("e")? } else { cx.network("e")? };
    let posterior = Posterior::from_output(&e.forward(&real, None, true)?, latent)?;
    let z = posterior.sample(&posterior_noise(cx, latent, &mut rng)?)?;
    let cond = batch.conditioning.map(|c| cx.conditioning_rows(&c, 1)).transpose()?;
    let cond = cond.map(|c| c.to_dtype(cx.dtype())).transpose()?;
    let g = if frozen { cx.frozen_generator("g")? } else { cx.generator("g")? };
    let reconstructions = g.forward(&z.to_dtype(cx.dtype())?, g.conditioning().select(cond.as_ref()), true)?;
    Ok(Encoded { real, posterior, reconstructions })
}

impl Recipe for Vae {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let Encoded { real, posterior, reconstructions } = encode_and_decode(cx, self.latent, false)?;
        let reconstruction = gaussian_nll(&reconstructions, &real, self.config.pixel_sigma)?;
        let kl = posterior.kl_to_prior()?;
        let loss = (&reconstruction + (&kl * self.config.kl_weight)?)?;
        let values = cx.scalars(&[&loss, &reconstruction, &kl])?;
        let mut log = Scalars::new();
        log.insert("loss_g".into(), cx.finite("negative ELBO", values[0])?);
        log.insert("reconstruction".into(), values[1]);
        log.insert("kl".into(), values[2]);
        // The encoder first: an update writes its weights in place, and the generator's backward pass
        // reads the generator's weights, which must still be those of the forward pass.
        cx.update("e", &loss)?;
        cx.update("g", &loss)?;
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_kl_and_the_likelihood_match_hand_computed_values() {
        let dev = &Device::Cpu;
        // Row 1: mean (1, 0), log-variance (0, ln 2): 1/2 (1 + 1 - 1 - 0) + 1/2 (0 + 2 - 1 - ln 2).
        // Row 2: the prior itself, KL 0.
        let output = Tensor::new(&[[1f32, 0.0, 0.0, 2f32.ln()], [0.0, 0.0, 0.0, 0.0]], dev).unwrap();
        let posterior = Posterior::from_output(&output, 2).unwrap();
        let kl = posterior.kl_to_prior().unwrap().to_scalar::<f32>().unwrap();
        let row1 = 0.5 * 1.0 + 0.5 * (1.0 - 2f32.ln());
        assert!((kl - row1 / 2.0).abs() < 1e-6, "{kl}");
        // eps = (1, -1): (1 + 1, 0 - sqrt 2) and (1, -1).
        let eps = Tensor::new(&[[1f32, -1.0], [1.0, -1.0]], dev).unwrap();
        let z = posterior.sample(&eps).unwrap().to_vec2::<f32>().unwrap();
        assert!((z[0][0] - 2.0).abs() < 1e-6 && (z[0][1] + 2f32.sqrt()).abs() < 1e-6, "{z:?}");
        assert_eq!(z[1], vec![1.0, -1.0]);
        // Rows differing by (0.5, 0.5) and by 0: 1/2 * 0.5 / 0.25 = 1 and 0, mean 0.5.
        let a = Tensor::new(&[[0.5f32, -0.5], [0.0, 1.0]], dev).unwrap();
        let b = Tensor::new(&[[0.0f32, 0.0], [0.0, 1.0]], dev).unwrap();
        let nll = gaussian_nll(&a, &b, 0.5).unwrap().to_scalar::<f32>().unwrap();
        assert!((nll - 0.5).abs() < 1e-6, "{nll}");
        let err = Posterior::from_output(&output, 3).err().unwrap().to_string();
        assert!(err.contains("6 columns"), "{err}");
    }
}
