//! Unrolled GAN (Metz, Poole, Pfau and Sohl-Dickstein 2016, "Unrolled Generative Adversarial
//! Networks") as a recipe: before each generator update the discriminator takes `k` more look-ahead
//! steps, the generator is updated against that look-ahead discriminator, and the discriminator is
//! then put back as it was. The generator thus answers where the discriminator is going rather than
//! where it is, which the paper shows spreads it over the modes.
//!
//! The paper backpropagates the generator's loss through the `k` discriminator updates, which needs
//! second-order gradients; candle has none. This recipe takes the first-order surrogate, which drops
//! that term: the generator's gradient is taken through the look-ahead discriminator with its weights
//! as constants. The paper notes the dropped term is what lets the generator anticipate the
//! discriminator's reaction; what the surrogate still buys is measured against `k = 0` in
//! docs/experiments/objectives-ring8.md.

use candle_core::{DType, Tensor};
use condor_core::{Batch, NetworkDecl, Recipe, RecipeSetup, Rng, Scalars, TrainContext};
use serde::{Deserialize, Serialize};

use crate::losses::{LossKind, Targets};
use crate::recipe_inputs::{discriminator_inputs, generator_inputs, Generated};
use crate::recipe_updates::{update_discriminator, update_generator, DiscriminatorStep};
use crate::tricks::label_targets;

/// The registry name of the recipe.
pub const NAME: &str = "unrolled";

/// The `[recipe] config` table of [`Unrolled`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnrolledConfig {
    /// Look-ahead discriminator steps before each generator update (the paper's 5 and 10; 0 is
    /// Algorithm 1).
    pub unrolling_steps: usize,
    /// Discriminator steps per iteration that are kept.
    pub d_steps: usize,
    /// The adversarial loss.
    pub loss: LossKind,
}

impl Default for UnrolledConfig {
    fn default() -> Self {
        Self { unrolling_steps: 5, d_steps: 1, loss: LossKind::NonSaturating }
    }
}

/// The recipe: the run's generator `g` against its discriminator `d`.
pub struct Unrolled {
    config: UnrolledConfig,
    networks: Vec<NetworkDecl>,
}

impl Unrolled {
    /// The recipe for `config` with the run's usual pair of networks.
    pub fn new(config: UnrolledConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        if config.d_steps == 0 {
            return Err(condor_core::Error::InvalidConfig {
                kind: "recipe",
                plugin: NAME.into(),
                message: "d_steps must be at least 1".into(),
            });
        }
        Ok(Self { config, networks: setup.generator_and_discriminator() })
    }

    /// One discriminator update on `batch` and a generated batch; logs its loss and scores.
    fn discriminator_update(
        &self,
        cx: &mut dyn TrainContext,
        batch: Batch,
        mut rng: Rng,
        log: &mut Scalars,
    ) -> condor_core::Result<()> {
        let (real, Generated { images: fake, cond, .. }) = discriminator_inputs(cx, &batch, &mut rng)?;
        let d = cx.discriminator("d")?;
        let d_cond = d.conditioning().select(cond.as_ref());
        let d_real = d.forward(&real, d_cond, true)?.to_dtype(DType::F32)?;
        let d_fake = d.forward(&fake, d_cond, true)?.to_dtype(DType::F32)?;
        let targets = label_targets(cx.batch_size(), 0.0, 0.0, &mut rng, cx.device())?;
        let targets = Targets { real: cx.rows(&targets.real, 1)?, fake: cx.rows(&targets.fake, 1)? };
        let loss = self.config.loss.discriminator(&d_real, &d_fake, &targets)?;
        let (real, fake) = (self.mean_score(&d_real)?, self.mean_score(&d_fake)?);
        let step = DiscriminatorStep { loss: &loss, what: "discriminator loss", real: &real, fake: &fake, extra: &[] };
        update_discriminator(cx, log, "d", step)?;
        Ok(())
    }

    /// The generator update against the discriminator as it is now (the look-ahead one when unrolling).
    fn generator_update(&self, cx: &mut dyn TrainContext, log: &mut Scalars) -> condor_core::Result<()> {
        let Generated { images: fake, cond, .. } = generator_inputs(cx)?;
        let d = cx.frozen_discriminator("d")?;
        let d_fake = d.forward(&fake, d.conditioning().select(cond.as_ref()), true)?.to_dtype(DType::F32)?;
        let loss = self.config.loss.generator(&d_fake)?;
        update_generator(cx, log, &loss, &[])?;
        Ok(())
    }

    /// Mean discriminator score: a probability for BCE losses, the raw score otherwise.
    fn mean_score(&self, logits: &Tensor) -> candle_core::Result<Tensor> {
        let s = if self.config.loss.is_probabilistic() { candle_nn::ops::sigmoid(logits)? } else { logits.clone() };
        s.mean_all()
    }
}

impl Recipe for Unrolled {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn batches_per_step(&self) -> usize {
        self.config.d_steps + self.config.unrolling_steps
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let mut log = Scalars::new();
        let missing = || condor_core::Error::InvalidInput("the iteration drew too few batches".into());
        for _ in 0..self.config.d_steps {
            let (batch, rng) = cx.next_batch().ok_or_else(missing)?;
            self.discriminator_update(cx, batch, rng, &mut log)?;
        }
        let k = self.config.unrolling_steps;
        if k > 0 {
            cx.snapshot("d")?;
            let mut look_ahead = Scalars::new();
            for _ in 0..k {
                let (batch, rng) = cx.next_batch().ok_or_else(missing)?;
                self.discriminator_update(cx, batch, rng, &mut look_ahead)?;
            }
            log.insert("d_fake_unrolled".into(), look_ahead["d_fake"]);
        }
        self.generator_update(cx, &mut log)?;
        if k > 0 {
            cx.restore("d")?;
        }
        Ok(log)
    }
}
