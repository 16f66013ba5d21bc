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
//! The translators are the run's `[generator]` table (`encoder_decoder`, a network) and the
//! discriminators its `[discriminator]` table (`dcgan`, a discriminator).

use condor_core::{NetworkDecl, NetworkKind, Recipe, RecipeSetup, Scalars, TrainContext, TranslationPair};
use serde::{Deserialize, Serialize};

use crate::losses::{bce_to, mean_probability};
use crate::translation::{domain_batches, mse, translation_networks, translator_pair, DISCRIMINATORS, TRANSLATORS};

/// The registry name of the recipe.
pub const NAME: &str = "discogan";

/// The `[recipe] config` table of [`DiscoGan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoGanConfig {
    /// Weight of the reconstruction losses against the GAN losses.
    pub reconstruction_weight: f64,
}

impl Default for DiscoGanConfig {
    fn default() -> Self {
        Self { reconstruction_weight: 1.0 }
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
        condor_core::Error::check_non_negative(NAME, &[("reconstruction_weight", config.reconstruction_weight)])?;
        Ok(Self { config, networks: translation_networks(setup, NetworkKind::Discriminator) })
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
        let (g_ab, g_ba) = (cx.network(TRANSLATORS[0])?, cx.network(TRANSLATORS[1])?);
        let (fake_b, fake_a) = (g_ab.forward(&a, None, true)?, g_ba.forward(&b, None, true)?);

        let (d_a, d_b) = (cx.discriminator(DISCRIMINATORS[0])?, cx.discriminator(DISCRIMINATORS[1])?);
        let (on_real_a, on_fake_a) = (d_a.forward(&a, None, true)?, d_a.forward(&fake_a.detach(), None, true)?);
        let (on_real_b, on_fake_b) = (d_b.forward(&b, None, true)?, d_b.forward(&fake_b.detach(), None, true)?);
        let loss_d_a = (bce_to(&on_real_a, 1.0)? + bce_to(&on_fake_a, 0.0)?)?;
        let loss_d_b = (bce_to(&on_real_b, 1.0)? + bce_to(&on_fake_b, 0.0)?)?;
        let loss_d = (&loss_d_a + &loss_d_b)?;
        let real = ((mean_probability(&on_real_a)? + mean_probability(&on_real_b)?)? * 0.5)?;
        let fake = ((mean_probability(&on_fake_a)? + mean_probability(&on_fake_b)?)? * 0.5)?;
        let values = cx.scalars(&[&loss_d, &real, &fake])?;
        log.insert("loss_d".into(), cx.finite("discriminator loss", values[0])?);
        log.insert("d_real".into(), values[1]);
        log.insert("d_fake".into(), values[2]);
        // The two losses share no weights: one backward pass gives each discriminator its own gradient.
        cx.update_jointly(&DISCRIMINATORS, &loss_d)?;

        let (d_a, d_b) = (cx.frozen_discriminator(DISCRIMINATORS[0])?, cx.frozen_discriminator(DISCRIMINATORS[1])?);
        let gan =
            (bce_to(&d_b.forward(&fake_b, None, true)?, 1.0)? + bce_to(&d_a.forward(&fake_a, None, true)?, 1.0)?)?;
        let (g_ab, g_ba) = (cx.network(TRANSLATORS[0])?, cx.network(TRANSLATORS[1])?);
        let reconstruction =
            (mse(&g_ba.forward(&fake_b, None, true)?, &a)? + mse(&g_ab.forward(&fake_a, None, true)?, &b)?)?;
        let loss_g = (&gan + (&reconstruction * self.config.reconstruction_weight)?)?;
        let values = cx.scalars(&[&loss_g, &gan, &reconstruction])?;
        log.insert("loss_g".into(), cx.finite("translator loss", values[0])?);
        log.insert("loss_gan".into(), values[1]);
        log.insert("reconstruction".into(), values[2]);
        cx.update_jointly(&TRANSLATORS, &loss_g)?;
        Ok(log)
    }
}
