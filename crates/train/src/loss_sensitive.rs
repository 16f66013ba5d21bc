//! The Loss-Sensitive GAN (Qi 2017, "Loss-Sensitive Generative Adversarial Networks on Lipschitz
//! Densities") as a recipe: the discriminator is a learned loss `L(x) = softplus(d(x)) >= 0`, trained so
//! that a real sample's loss is below a generated one's by a margin that grows with how far apart
//! they are, `Delta(x, G(z)) = scale * mean_i |x_i - G(z)_i|`:
//!
//! `L_D = E relu(Delta(x, G(z)) + L(x) - L(G(z))) + gamma E L(x)`, `L_G = E L(G(z))`.
//!
//! The reference code makes `L` non-negative with a ReLU; a generated sample where `d < 0` then gets no
//! gradient from either side, and on the 2D mixtures whole batches stalled there, so `L` is the
//! smooth softplus of `d` here. Pairs are the rows of a real batch and a generated batch. The theory needs `L` Lipschitz. The
//! paper's experiments keep it so by weight decay (`[optimizer.discriminator] weight_decay`), and its
//! first version proposes penalising the gradient norm of `L` instead, which the authors' later code
//! (GLS-GAN-GP) does; that penalty is on by default here (WGAN-GP's form on interpolates, at weight
//! 1), because without it the learned loss grows without bound and the generator runs off after it.
//! On the ring of 8 Gaussians the generator also ran off at weight 10 and with no penalty, and came
//! onto the ring at weight 1 (docs/experiments/objectives-ring8.md).

use candle_core::{DType, Tensor};
use condor_core::{NetworkDecl, Recipe, RecipeSetup, Scalars, TrainContext};
use serde::{Deserialize, Serialize};

use crate::recipe_inputs::{discriminator_inputs, generator_inputs, Generated};
use crate::recipe_updates::update_generator;
use crate::regularizers::{gradient_penalty, GradientPenaltyConfig};

/// The registry name of the recipe.
pub const NAME: &str = "loss_sensitive";

/// The `[recipe] config` table of [`LossSensitive`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossSensitiveConfig {
    /// Margin per unit of mean absolute difference between a real and a generated sample. The
    /// reference code's 0.0002 per summed L1 unit on 64x64 RGB images is about 2.5 in these units.
    pub margin_scale: f64,
    /// Weight of the real samples' own loss `E L(x)`; the paper shows it can be 0 without conditions.
    pub gamma: f64,
    /// Discriminator (loss-function) steps per generator step.
    pub d_steps: usize,
    /// The gradient-norm penalty that keeps the learned loss Lipschitz; `None` leaves that to the
    /// optimizer's weight decay.
    pub gradient_penalty: Option<GradientPenaltyConfig>,
}

impl Default for LossSensitiveConfig {
    fn default() -> Self {
        Self {
            margin_scale: 1.0,
            gamma: 0.0,
            d_steps: 1,
            gradient_penalty: Some(GradientPenaltyConfig { weight: 1.0, ..Default::default() }),
        }
    }
}

/// The recipe: the run's generator `g` against its discriminator `d` used as the loss function.
pub struct LossSensitive {
    config: LossSensitiveConfig,
    networks: Vec<NetworkDecl>,
}

impl LossSensitive {
    /// The recipe for `config` with the run's usual pair of networks.
    pub fn new(config: LossSensitiveConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        condor_core::Error::check_non_negative(
            NAME,
            &[("margin_scale", config.margin_scale), ("gamma", config.gamma)],
        )?;
        if config.d_steps == 0 {
            return Err(invalid("d_steps must be at least 1"));
        }
        Ok(Self { config, networks: setup.generator_and_discriminator() })
    }
}

/// An error in this recipe's config.
fn invalid(message: impl Into<String>) -> condor_core::Error {
    condor_core::Error::recipe_config(NAME, message)
}

/// The learned loss `softplus(d)` of the discriminator's outputs `d`, in float32.
pub fn learned_loss(d: &Tensor) -> candle_core::Result<Tensor> {
    crate::losses::softplus(&d.to_dtype(DType::F32)?)
}

/// `(B,)` margins `scale * mean |x - y|` over each row's values.
pub fn margins(x: &Tensor, y: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
    (x - y)?.abs()?.flatten_from(1)?.mean(1)? * scale
}

/// The loss function's objective for learned losses `l_real`, `l_fake` (`(B, 1)`, at least 0) and
/// margins `(B,)`: `E relu(margin + l_real - l_fake) + gamma E l_real`.
pub fn loss_function_objective(
    l_real: &Tensor,
    l_fake: &Tensor,
    margin: &Tensor,
    gamma: f64,
) -> candle_core::Result<Tensor> {
    let (l_real, l_fake) = (l_real.flatten_all()?, l_fake.flatten_all()?);
    let violation = (margin + (&l_real - &l_fake)?)?.relu()?.mean_all()?;
    if gamma == 0.0 {
        return Ok(violation);
    }
    violation + (l_real.mean_all()? * gamma)?
}

impl Recipe for LossSensitive {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn batches_per_step(&self) -> usize {
        self.config.d_steps
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let mut log = Scalars::new();
        let bs = cx.batch_size();
        while let Some((batch, mut rng)) = cx.next_batch() {
            let (real, Generated { images: fake, cond, .. }) = discriminator_inputs(cx, &batch, &mut rng)?;
            let d = cx.discriminator("d")?;
            let d_cond = d.conditioning().select(cond.as_ref());
            let l_real = learned_loss(&d.forward(&real, d_cond, true)?)?;
            let l_fake = learned_loss(&d.forward(&fake, d_cond, true)?)?;
            let margin = margins(&real.to_dtype(DType::F32)?, &fake.to_dtype(DType::F32)?, self.config.margin_scale)?;
            let mut loss = loss_function_objective(&l_real, &l_fake, &margin, self.config.gamma)?;
            let values = cx.scalars(&[&loss, &l_real.mean_all()?, &l_fake.mean_all()?, &margin.mean_all()?])?;
            log.insert("loss_d".into(), cx.finite("loss-function objective", values[0])?);
            log.insert("d_real".into(), values[1]);
            log.insert("d_fake".into(), values[2]);
            log.insert("margin".into(), values[3]);
            if let Some(c) = self.config.gradient_penalty {
                let rows = |x: &Tensor| cx.rows(x, 1);
                let points = c.points.draw(&real, &fake, bs, &mut rng, &rows)?;
                let penalty = gradient_penalty(d, &points, d_cond, c.weight, c.step)?;
                log.insert("gradient_penalty".into(), cx.finite("gradient penalty", penalty.value as f32)?);
                loss = (loss + penalty.surrogate.to_dtype(DType::F32)?)?;
            }
            cx.update("d", &loss)?;
        }
        let Generated { images: fake, cond, .. } = generator_inputs(cx)?;
        let d = cx.frozen_discriminator("d")?;
        let l_fake = learned_loss(&d.forward(&fake, d.conditioning().select(cond.as_ref()), true)?)?;
        let loss = l_fake.mean_all()?;
        update_generator(cx, &mut log, &loss, &[])?;
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_objective_charges_only_pairs_whose_margin_is_not_kept() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[0.0f32, 0.0], [1.0, 1.0], [0.0, 2.0]], &dev).unwrap();
        let y = Tensor::new(&[[1.0f32, -1.0], [1.0, 1.0], [0.0, 0.0]], &dev).unwrap();
        // Mean |x - y| per row: 1, 0, 1; scaled by 0.5.
        let m = margins(&x, &y, 0.5).unwrap();
        assert_eq!(m.to_vec1::<f32>().unwrap(), vec![0.5, 0.0, 0.5]);
        let l_real = Tensor::new(&[[0.2f32], [0.0], [1.0]], &dev).unwrap();
        let l_fake = Tensor::new(&[[1.0f32], [0.5], [1.2]], &dev).unwrap();
        // Violations: relu(0.5 + 0.2 - 1.0) = 0, relu(0 + 0 - 0.5) = 0, relu(0.5 + 1.0 - 1.2) = 0.3.
        let v = loss_function_objective(&l_real, &l_fake, &m, 0.0).unwrap().to_scalar::<f32>().unwrap();
        assert!((v - 0.1).abs() < 1e-6, "{v}");
        // gamma adds gamma * mean L(x) = 2 * 0.4.
        let v = loss_function_objective(&l_real, &l_fake, &m, 2.0).unwrap().to_scalar::<f32>().unwrap();
        assert!((v - 0.9).abs() < 1e-6, "{v}");
    }
}
