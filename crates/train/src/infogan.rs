//! InfoGAN (Chen, Duan, Houthooft, Schulman, Sutskever and Abbeel 2016, "InfoGAN: Interpretable
//! Representation Learning by Information Maximizing Generative Adversarial Nets") as a recipe.
//!
//! The generator's latent starts with codes `c` ([`LatentCodes`]: one categorical code and some
//! continuous ones); a head `Q` on the discriminator's body predicts them from a generated sample, and
//! both networks add the variational lower bound of the mutual information `I(c; G(z, c))` to their
//! losses (the paper's `L_I`, weighted by lambda):
//!
//! `L_D = L_adv,D + L_I`, `L_G = L_adv,G + L_I`, with
//! `L_I = w_cat * CE(Q_cat(G(z, c)), c_cat) + w_cont * E 1/2 |Q_cont(G(z, c)) - c_cont|^2`,
//!
//! the cross-entropy of the categorical code and the negative log-likelihood (up to a constant) of the
//! continuous codes under a unit-variance Gaussian around Q's means, as the paper's code fixes the
//! variance. The adversarial terms are the non-saturating loss.
//!
//! The discriminator with its Q head is one network `d` (`mlp` by default) whose output's first column
//! is the real/fake logit, the next `categorical` columns Q's category logits and the last `continuous`
//! columns Q's means; the recipe sets its `outputs` and the generator's `codes` from its own config.

use candle_core::{DType, Tensor};
use condor_core::{
    LatentCodes, ModelSpec, Network, NetworkDecl, NetworkKind, Recipe, RecipeSetup, Scalars, TrainContext,
};
use serde::{Deserialize, Serialize};

use crate::losses::{mean_probability, LossKind, Targets};
use crate::recipe_inputs::{discriminator_inputs, generator_inputs, Generated};
use crate::recipe_updates::{update_discriminator, update_generator, DiscriminatorStep};

/// The registry name of the recipe.
pub const NAME: &str = "infogan";

/// The `[recipe] config` table of [`InfoGan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfoGanConfig {
    /// Categories of the categorical code (the paper's 10 for MNIST; 0 for none).
    pub categorical: usize,
    /// Number of continuous codes, each uniform on (-1, 1) (the paper's 2).
    pub continuous: usize,
    /// Weight of the categorical code's cross-entropy (the paper's lambda = 1).
    pub categorical_weight: f64,
    /// Weight of the continuous codes' Gaussian negative log-likelihood.
    pub continuous_weight: f64,
    /// Discriminator steps per generator step.
    pub d_steps: usize,
    /// The discriminator with its Q head (plugin and config; `outputs` and its input shape are filled).
    pub network: ModelSpec,
}

impl Default for InfoGanConfig {
    fn default() -> Self {
        Self {
            categorical: 10,
            continuous: 2,
            categorical_weight: 1.0,
            continuous_weight: 1.0,
            d_steps: 1,
            network: ModelSpec { plugin: "mlp".into(), config: serde_json::json!({}), pack: None },
        }
    }
}

impl InfoGanConfig {
    /// The latent codes this config asks of the generator.
    pub fn codes(&self) -> LatentCodes {
        LatentCodes { categorical: self.categorical, continuous: self.continuous }
    }

    /// Output columns of the discriminator network: the logit and Q's predictions.
    pub fn outputs(&self) -> usize {
        1 + self.categorical + self.continuous
    }
}

/// The recipe: the run's generator `g`, with codes, against the discriminator network `d` with its Q
/// head, trained with the run's discriminator optimizer.
pub struct InfoGan {
    config: InfoGanConfig,
    networks: Vec<NetworkDecl>,
}

/// An error in this recipe's config.
fn invalid(message: impl Into<String>) -> condor_core::Error {
    condor_core::Error::recipe_config(NAME, message)
}

impl InfoGan {
    /// The recipe for `config` with the run's generator.
    pub fn new(config: InfoGanConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        let weights =
            [("categorical_weight", config.categorical_weight), ("continuous_weight", config.continuous_weight)];
        condor_core::Error::check_non_negative(NAME, &weights)?;
        if config.categorical == 1 || config.codes().is_empty() {
            return Err(invalid(format!(
                "InfoGAN needs codes: a categorical code of at least 2 categories or a continuous code, not {} and {}",
                config.categorical, config.continuous
            )));
        }
        if config.d_steps == 0 {
            return Err(invalid("d_steps must be at least 1"));
        }
        let codes = serde_json::to_value(config.codes()).map_err(|e| invalid(e.to_string()))?;
        let mut networks = setup.generator_and_discriminator();
        networks[0].spec = networks[0].spec.with_field("codes", codes).map_err(invalid)?;
        networks[1].kind = NetworkKind::Network;
        networks[1].spec = config.network.with_field("outputs", config.outputs().into()).map_err(invalid)?;
        Ok(Self { config, networks })
    }
}

/// The mean cross-entropy of `(B, K)` logits against `(B, K)` one-hot (or probability) targets, through
/// candle's generic log-softmax (which has a backward pass).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, 1)?;
    (log_p * targets)?.sum(1)?.neg()?.mean_all()
}

/// What the discriminator network's output `(B, 1 + categorical + continuous)` holds: the `(B,)`
/// real/fake logits, Q's `(B, categorical)` category logits and `(B, continuous)` means.
pub struct Heads {
    /// Real/fake logits.
    pub logits: Tensor,
    /// Category logits.
    pub categorical: Tensor,
    /// Continuous code means.
    pub continuous: Tensor,
}

/// The mutual-information terms of one batch, and Q's share of right categories.
pub struct Information {
    /// The weighted sum `L_I`.
    pub loss: Tensor,
    /// The categorical cross-entropy (0 without a categorical code).
    pub categorical: Tensor,
    /// The continuous codes' `1/2 |mean - c|^2`, summed over codes and averaged over the batch.
    pub continuous: Tensor,
    /// The share of rows whose most likely category is their code.
    pub accuracy: Tensor,
}

impl InfoGanConfig {
    /// Splits the network's output (in float32) into its heads.
    pub fn heads(&self, output: &Tensor) -> condor_core::Result<Heads> {
        let output = output.to_dtype(DType::F32)?;
        let width = output.dim(1)?;
        if width != self.outputs() {
            return Err(condor_core::Error::InvalidInput(format!(
                "the InfoGAN network gives {width} columns, not 1 + {} + {}",
                self.categorical, self.continuous
            )));
        }
        Ok(Heads {
            logits: output.narrow(1, 0, 1)?.squeeze(1)?,
            categorical: output.narrow(1, 1, self.categorical)?,
            continuous: output.narrow(1, 1 + self.categorical, self.continuous)?,
        })
    }

    /// `L_I` of Q's predictions `heads` for samples drawn from latents `z`.
    pub fn information(&self, heads: &Heads, z: &Tensor) -> condor_core::Result<Information> {
        let codes = self.codes();
        let zero = || Tensor::new(0f32, z.device());
        let (categorical, accuracy) = if self.categorical > 0 {
            let target = codes.one_hot(z)?;
            let right = heads.categorical.argmax(1)?.eq(&codes.categories(z)?)?.to_dtype(DType::F32)?.mean_all()?;
            (cross_entropy(&heads.categorical, &target)?, right)
        } else {
            (zero()?, zero()?)
        };
        let continuous = if self.continuous > 0 {
            let target = codes.continuous_codes(z)?;
            ((&heads.continuous - target)?.sqr()?.sum(1)?.mean_all()? * 0.5)?
        } else {
            zero()?
        };
        let loss = ((&categorical * self.categorical_weight)? + (&continuous * self.continuous_weight)?)?;
        Ok(Information { loss, categorical, continuous, accuracy })
    }
}

/// The categorical code Q finds in each of `images` (real ones, say), `batch` at a time: the most likely
/// category of the network's Q head, in evaluation mode.
pub fn predict_categories(
    config: &InfoGanConfig,
    network: &dyn Network,
    images: &Tensor,
    batch: usize,
) -> condor_core::Result<Vec<usize>> {
    if config.categorical == 0 {
        return Err(condor_core::Error::InvalidInput("this InfoGAN has no categorical code".into()));
    }
    let heads = config.heads(&crate::networks::forward_in_batches(network, images, batch)?)?;
    Ok(heads.categorical.argmax(1)?.to_vec1::<u32>()?.into_iter().map(|c| c as usize).collect())
}

/// The adversarial loss: non-saturating, as the paper's DCGAN-based networks.
const LOSS: LossKind = LossKind::NonSaturating;

impl Recipe for InfoGan {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn batches_per_step(&self) -> usize {
        self.config.d_steps
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let mut log = Scalars::new();
        while let Some((batch, mut rng)) = cx.next_batch() {
            let (real, fake) = discriminator_inputs(cx, &batch, &mut rng)?;
            let d = cx.network("d")?;
            let d_cond = d.conditioning().select(fake.cond.as_ref());
            let real = self.config.heads(&d.forward(&real, d_cond, true)?)?;
            let fake_heads = self.config.heads(&d.forward(&fake.images, d_cond, true)?)?;
            let ones = real.logits.ones_like()?;
            let targets = Targets { real: ones.clone(), fake: ones.zeros_like()? };
            let info = self.config.information(&fake_heads, &fake.z)?;
            let loss = (LOSS.discriminator(&real.logits, &fake_heads.logits, &targets)? + &info.loss)?;
            let (real, fake) = (mean_probability(&real.logits)?, mean_probability(&fake_heads.logits)?);
            let step =
                DiscriminatorStep { loss: &loss, what: "discriminator loss", real: &real, fake: &fake, extra: &[] };
            update_discriminator(cx, &mut log, "d", step)?;
        }
        let Generated { images, cond, z } = generator_inputs(cx)?;
        let d = cx.frozen_network("d")?;
        let heads = self.config.heads(&d.forward(&images, d.conditioning().select(cond.as_ref()), true)?)?;
        let info = self.config.information(&heads, &z)?;
        let loss = (LOSS.generator(&heads.logits)? + &info.loss)?;
        let extra = [
            ("info_categorical", &info.categorical),
            ("info_continuous", &info.continuous),
            ("code_accuracy", &info.accuracy),
        ];
        update_generator(cx, &mut log, &loss, &extra)?;
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cross_entropy_matches_hand_computed_values() {
        let dev = Device::Cpu;
        // Row 1: logits 0, ln 3 → p = 1/4, 3/4; target class 1: -ln(3/4). Row 2: equal logits, -ln(1/2).
        let logits = Tensor::new(&[[0.0f32, 3f32.ln()], [5.0, 5.0]], &dev).unwrap();
        let targets = Tensor::new(&[[0.0f32, 1.0], [1.0, 0.0]], &dev).unwrap();
        let ce = cross_entropy(&logits, &targets).unwrap().to_scalar::<f32>().unwrap();
        let want = ((-(0.75f32).ln()) + 2f32.ln()) / 2.0;
        assert!((ce - want).abs() < 1e-6, "{ce} vs {want}");
    }

    #[test]
    fn the_information_term_reads_the_codes_from_the_latent() {
        let dev = Device::Cpu;
        let config = InfoGanConfig { categorical: 2, continuous: 1, continuous_weight: 0.5, ..Default::default() };
        // Codes: category 1 and erf(0) = 0; category 0 and erf(1/sqrt 2) = 0.682689.
        let z = Tensor::new(&[[0.0f32, 1.0, 0.0, 9.0], [2.0, 0.0, 1.0, 9.0]], &dev).unwrap();
        // Q: logits (0, ln 3) and (0, 0); means 1 and 0.682689; the first column is D's logit.
        let output = Tensor::new(&[[7.0f32, 0.0, 3f32.ln(), 1.0], [7.0, 0.0, 0.0, 0.682_689]], &dev).unwrap();
        let heads = config.heads(&output).unwrap();
        assert_eq!(heads.logits.to_vec1::<f32>().unwrap(), vec![7.0, 7.0]);
        let info = config.information(&heads, &z).unwrap();
        let scalar = |t: &Tensor| t.to_scalar::<f32>().unwrap();
        let ce = ((-(0.75f32).ln()) + 2f32.ln()) / 2.0;
        // Continuous: 1/2 (1 - 0)^2 for the first row, 0 for the second: mean 0.25.
        assert!((scalar(&info.categorical) - ce).abs() < 1e-6);
        assert!((scalar(&info.continuous) - 0.25).abs() < 1e-6);
        assert!((scalar(&info.loss) - (ce + 0.5 * 0.25)).abs() < 1e-6);
        // Row 1 predicts category 1 (right); row 2's tie goes to category 0 (right).
        assert_eq!(scalar(&info.accuracy), 1.0);
        assert!(config.heads(&output.narrow(1, 0, 3).unwrap()).is_err());
    }

    #[test]
    fn the_cross_entropy_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let var = candle_core::Var::new(&[[0.3f64, -1.2, 0.7], [2.0, 0.1, -0.4]], &dev).unwrap();
        let targets = Tensor::new(&[[0.0f64, 0.0, 1.0], [0.0, 1.0, 0.0]], &dev).unwrap();
        let grads = cross_entropy(var.as_tensor(), &targets).unwrap().backward().unwrap();
        let analytic = grads.get(var.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        let base = var.as_tensor().to_vec2::<f64>().unwrap();
        let h = 1e-6;
        for i in 0..2 {
            for j in 0..3 {
                let at = |delta: f64| {
                    let mut v = base.clone();
                    v[i][j] += delta;
                    let t = Tensor::new(v, &dev).unwrap();
                    cross_entropy(&t, &targets).unwrap().to_scalar::<f64>().unwrap()
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                assert!((numeric - analytic[i][j]).abs() < 1e-6, "[{i}][{j}]: {numeric} vs {}", analytic[i][j]);
            }
        }
    }
}
