//! DiscoGAN (Kim, Cha, Kim, Lee and Kim 2017, "Learning to Discover Cross-Domain Relations with
//! Generative Adversarial Networks") as a recipe: two translators `G_AB` (`g_ab`) and `G_BA`
//! (`g_ba`), two discriminators `D_A`, `D_B` (`d_a`, `d_b`), trained on unpaired data.
//!
//! With `a`, `b` real batches of the two domains (section 3.3):
//! - discriminators: `L_D_B = BCE(D_B(b), 1) + BCE(D_B(G_AB(a)), 0)`, and likewise `L_D_A`;
//! - translators, jointly: `L_G = L_GAN_B + L_CONST_A + L_GAN_A + L_CONST_B`, where
//!   `L_GAN_B = BCE(D_B(G_AB(a)), 1)` and the reconstruction loss `L_CONST_A = d(G_BA(G_AB(a)), a)`
//!   with `d` the mean squared error (one of the paper's choices, the one its code uses), weighted by
//!   `reconstruction_weight` (1 in the paper).
//!
//! The authors' code trains differently from the paper's text, and each difference is an option:
//! - feature matching (`feature_matching_weight`): the squared distance between the batch means of
//!   the discriminator's hidden features on real and on translated images, added to each GAN loss;
//! - a curriculum (`curriculum`): a weak reconstruction loss for the first steps, then a strong one;
//! - alternating updates (`discriminator_every = n`): the discriminators alone on every `n`th
//!   iteration, the translators alone on the others, both from the same forward pass.
//!
//! The code weighs `(0.1 GAN + 0.9 FM)(1 - r) + r RECON` with `r` 0.01 for its first 10,000
//! iterations and 0.5 after. Adam does not see a loss's scale, so that is GAN weight 1, feature
//! matching 9 and reconstruction `10 r / (1 - r)`: 0.101, then 10.
//!
//! The translators are the run's `[generator]` table (`encoder_decoder`, a network) and the
//! discriminators its `[discriminator]` table (`dcgan`, a discriminator).

use candle_core::Tensor;
use condor_core::{
    Discriminator, Network, NetworkDecl, NetworkKind, Recipe, RecipeSetup, Scalars, TrainContext, TranslationPair,
};
use serde::{Deserialize, Serialize};

use crate::losses::{bce_to, feature_matching, mean_probability};
use crate::translation::{domain_batches, mse, translation_networks, translator_pair, DISCRIMINATORS, TRANSLATORS};

/// The registry name of the recipe.
pub const NAME: &str = "discogan";

/// The `[recipe] config` table of [`DiscoGan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoGanConfig {
    /// Weight of the reconstruction losses against the GAN losses (after the curriculum, if any).
    pub reconstruction_weight: f64,
    /// Weight of the feature-matching losses against the GAN losses; 0, the paper's text, leaves
    /// them out. It needs a discriminator that exposes its hidden features (`dcgan` does).
    pub feature_matching_weight: f64,
    /// A weaker reconstruction weight for the first steps; `None` keeps one weight throughout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curriculum: Option<CurriculumConfig>,
    /// Update the discriminators alone on every `n`th iteration (the first among them) and the
    /// translators alone on the others; 1 updates both on each iteration, discriminators first.
    pub discriminator_every: u64,
}

impl Default for DiscoGanConfig {
    fn default() -> Self {
        Self { reconstruction_weight: 1.0, feature_matching_weight: 0.0, curriculum: None, discriminator_every: 1 }
    }
}

/// The reconstruction weight of the first `steps` iterations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumConfig {
    /// How many iterations use `reconstruction_weight`.
    pub steps: u64,
    /// The reconstruction weight while they last.
    pub reconstruction_weight: f64,
}

impl DiscoGanConfig {
    /// The reconstruction weight of iteration `step` (completed iterations before it).
    pub fn reconstruction_weight_at(&self, step: u64) -> f64 {
        match &self.curriculum {
            Some(c) if step < c.steps => c.reconstruction_weight,
            _ => self.reconstruction_weight,
        }
    }

    /// Whether iteration `step` updates the discriminators (and, when they alternate, only them).
    pub fn updates_discriminators(&self, step: u64) -> bool {
        step.is_multiple_of(self.discriminator_every)
    }

    /// Whether iteration `step` updates the translators.
    pub fn updates_translators(&self, step: u64) -> bool {
        self.discriminator_every == 1 || !self.updates_discriminators(step)
    }
}

/// The recipe.
pub struct DiscoGan {
    config: DiscoGanConfig,
    networks: Vec<NetworkDecl>,
}

impl DiscoGan {
    /// The recipe for `config` with the run's translator, discriminator and optimizers.
    pub fn new(config: DiscoGanConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        let curriculum = config.curriculum.as_ref().map_or(0.0, |c| c.reconstruction_weight);
        condor_core::Error::check_non_negative(
            NAME,
            &[
                ("reconstruction_weight", config.reconstruction_weight),
                ("feature_matching_weight", config.feature_matching_weight),
                ("curriculum.reconstruction_weight", curriculum),
            ],
        )?;
        if config.discriminator_every == 0 {
            return Err(condor_core::Error::InvalidInput(format!("{NAME}: discriminator_every must be at least 1")));
        }
        Ok(Self { config, networks: translation_networks(setup, NetworkKind::Discriminator) })
    }
}

/// One discriminator's reading of real images and of translations into its domain.
struct Judged {
    /// Logits on the real images.
    real: Tensor,
    /// Logits on the translations.
    fake: Tensor,
    /// Hidden features on the real and on the translated images, when feature matching asks for them.
    features: Option<(Vec<Tensor>, Vec<Tensor>)>,
}

impl Judged {
    /// `d`'s reading of `real` and `fake`, with its hidden features when `features` is set.
    fn new(d: &dyn Discriminator, real: &Tensor, fake: &Tensor, features: bool) -> condor_core::Result<Self> {
        if !features {
            return Ok(Self { real: d.forward(real, None, true)?, fake: d.forward(fake, None, true)?, features: None });
        }
        let (on_real, f_real) = d.forward_with_features(real, None, true)?;
        let (on_fake, f_fake) = d.forward_with_features(fake, None, true)?;
        let missing = || {
            condor_core::Error::InvalidInput(format!(
                "{NAME}: feature_matching_weight > 0 needs a discriminator that exposes its hidden features \
                 (`dcgan` does); this one does not"
            ))
        };
        Ok(Self {
            real: on_real,
            fake: on_fake,
            features: Some((f_real.ok_or_else(missing)?, f_fake.ok_or_else(missing)?)),
        })
    }

    /// `d`'s reading of the translations `fake` alone, for a translator loss without feature matching
    /// (which reads nothing of the real images): `real` holds zeros, not logits.
    fn translations_only(d: &dyn Discriminator, fake: &Tensor) -> condor_core::Result<Self> {
        let on_fake = d.forward(fake, None, true)?;
        Ok(Self { real: on_fake.zeros_like()?, fake: on_fake, features: None })
    }

    /// `BCE(D(real), 1) + BCE(D(fake), 0)`.
    fn discriminator_loss(&self) -> candle_core::Result<Tensor> {
        bce_to(&self.real, 1.0)? + bce_to(&self.fake, 0.0)?
    }

    /// The translator's GAN loss `BCE(D(fake), 1)`.
    fn gan_loss(&self) -> candle_core::Result<Tensor> {
        bce_to(&self.fake, 1.0)
    }

    /// The feature-matching loss summed over the hidden layers (zero without features).
    fn feature_matching(&self) -> candle_core::Result<Tensor> {
        let mut sum = Tensor::zeros((), candle_core::DType::F32, self.fake.device())?;
        if let Some((real, fake)) = &self.features {
            for (r, f) in real.iter().zip(fake) {
                sum = (sum
                    + feature_matching(&r.to_dtype(candle_core::DType::F32)?, &f.to_dtype(candle_core::DType::F32)?)?)?;
            }
        }
        Ok(sum)
    }
}

/// The two translators `[g_ab, g_ba]`: `frozen` ones pass no gradient to their weights.
fn translators(cx: &dyn TrainContext, frozen: bool) -> condor_core::Result<[&dyn Network; 2]> {
    let get = |name| if frozen { cx.frozen_network(name) } else { cx.network(name) };
    Ok([get(TRANSLATORS[0])?, get(TRANSLATORS[1])?])
}

/// The two discriminators `[d_a, d_b]`: `frozen` ones pass no gradient to their weights.
fn discriminators(cx: &dyn TrainContext, frozen: bool) -> condor_core::Result<[&dyn Discriminator; 2]> {
    let get = |name| if frozen { cx.frozen_discriminator(name) } else { cx.discriminator(name) };
    Ok([get(DISCRIMINATORS[0])?, get(DISCRIMINATORS[1])?])
}

/// A step's real batches and translations.
struct Translated {
    a: Tensor,
    b: Tensor,
    fake_a: Tensor,
    fake_b: Tensor,
}

impl DiscoGan {
    /// Both discriminators' readings of the step's images: `d_a` of real `a` and `fake_a`, `d_b` of
    /// real `b` and `fake_b`.
    fn judge(&self, d: [&dyn Discriminator; 2], t: &Translated, detach: bool) -> condor_core::Result<[Judged; 2]> {
        let features = self.config.feature_matching_weight > 0.0;
        let fake = |x: &Tensor| if detach { x.detach() } else { x.clone() };
        Ok([Judged::new(d[0], &t.a, &fake(&t.fake_a), features)?, Judged::new(d[1], &t.b, &fake(&t.fake_b), features)?])
    }

    /// Logs the discriminators' loss and scores, and returns the loss.
    fn discriminator_loss(
        &self,
        cx: &dyn TrainContext,
        judged: &[Judged; 2],
        log: &mut Scalars,
    ) -> condor_core::Result<Tensor> {
        let loss = (judged[0].discriminator_loss()? + judged[1].discriminator_loss()?)?;
        let real = ((mean_probability(&judged[0].real)? + mean_probability(&judged[1].real)?)? * 0.5)?;
        let fake = ((mean_probability(&judged[0].fake)? + mean_probability(&judged[1].fake)?)? * 0.5)?;
        let values = cx.scalars(&[&loss, &real, &fake])?;
        log.insert("loss_d".into(), cx.finite("discriminator loss", values[0])?);
        log.insert("d_real".into(), values[1]);
        log.insert("d_fake".into(), values[2]);
        Ok(loss)
    }

    /// Logs the translators' loss and its terms, and returns the loss: the GAN losses, the
    /// feature-matching losses and the reconstruction losses through `g = [g_ab, g_ba]`.
    fn translator_loss(
        &self,
        cx: &dyn TrainContext,
        g: [&dyn Network; 2],
        t: &Translated,
        judged: &[Judged; 2],
        log: &mut Scalars,
    ) -> condor_core::Result<Tensor> {
        let gan = (judged[0].gan_loss()? + judged[1].gan_loss()?)?;
        let matching = (judged[0].feature_matching()? + judged[1].feature_matching()?)?;
        let reconstruction =
            (mse(&g[1].forward(&t.fake_b, None, true)?, &t.a)? + mse(&g[0].forward(&t.fake_a, None, true)?, &t.b)?)?;
        let weight = self.config.reconstruction_weight_at(cx.step());
        let loss = ((&gan + (&matching * self.config.feature_matching_weight)?)? + (&reconstruction * weight)?)?;
        let values = cx.scalars(&[&loss, &gan, &reconstruction, &matching])?;
        log.insert("loss_g".into(), cx.finite("translator loss", values[0])?);
        log.insert("loss_gan".into(), values[1]);
        log.insert("reconstruction".into(), values[2]);
        if self.config.feature_matching_weight > 0.0 {
            log.insert("feature_matching".into(), values[3]);
        }
        Ok(loss)
    }

    /// The paper's iteration: the discriminators' update on detached translations, then the
    /// translators' against the updated discriminators.
    fn step_both(&self, cx: &mut dyn TrainContext, t: &Translated, log: &mut Scalars) -> condor_core::Result<()> {
        let judged = self.judge(discriminators(cx, false)?, t, true)?;
        let loss_d = self.discriminator_loss(cx, &judged, log)?;
        // The two losses share no weights: one backward pass gives each discriminator its own gradient.
        cx.update_jointly(&DISCRIMINATORS, &loss_d)?;

        let d = discriminators(cx, true)?;
        let judged = if self.config.feature_matching_weight > 0.0 {
            self.judge(d, t, false)?
        } else {
            // Without feature matching only the translations are scored again.
            [Judged::translations_only(d[0], &t.fake_a)?, Judged::translations_only(d[1], &t.fake_b)?]
        };
        let loss_g = self.translator_loss(cx, translators(cx, false)?, t, &judged, log)?;
        cx.update_jointly(&TRANSLATORS, &loss_g)?;
        Ok(())
    }

    /// The code's alternating iteration: one forward pass, both losses logged, one side updated.
    fn step_alternating(
        &self,
        cx: &mut dyn TrainContext,
        t: &Translated,
        log: &mut Scalars,
    ) -> condor_core::Result<()> {
        let d_turn = self.config.updates_discriminators(cx.step());
        let judged = self.judge(discriminators(cx, !d_turn)?, t, d_turn)?;
        let loss_d = self.discriminator_loss(cx, &judged, log)?;
        let loss_g = self.translator_loss(cx, translators(cx, d_turn)?, t, &judged, log)?;
        if d_turn {
            cx.update_jointly(&DISCRIMINATORS, &loss_d)?;
        } else {
            cx.update_jointly(&TRANSLATORS, &loss_g)?;
        }
        Ok(())
    }
}

impl Recipe for DiscoGan {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn sampling_network(&self) -> &str {
        TRANSLATORS[0]
    }

    fn translation(&self) -> Option<TranslationPair> {
        Some(translator_pair())
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let mut log = Scalars::new();
        let (a, b, _) = domain_batches(cx)?;
        // On a discriminator-only iteration the translators run frozen: no gradient reaches them.
        let g = translators(cx, !self.config.updates_translators(cx.step()))?;
        let (fake_b, fake_a) = (g[0].forward(&a, None, true)?, g[1].forward(&b, None, true)?);
        let t = Translated { a, b, fake_a, fake_b };
        if self.config.discriminator_every == 1 {
            self.step_both(cx, &t, &mut log)?;
        } else {
            self.step_alternating(cx, &t, &mut log)?;
        }
        Ok(log)
    }
}
