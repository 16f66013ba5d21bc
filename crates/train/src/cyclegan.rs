//! CycleGAN (Zhu, Park, Isola and Efros 2017, "Unpaired Image-to-Image Translation using
//! Cycle-Consistent Adversarial Networks") as a recipe: two translators `G: A -> B` (`g_ab`) and
//! `F: B -> A` (`g_ba`), two discriminators `D_A`, `D_B` (`d_a`, `d_b`), trained on unpaired data.
//!
//! With `a`, `b` real batches of the two domains, each iteration (as the authors' code orders it):
//! - translators, jointly (one backward pass, one Adam step each):
//!   `L_GAN(G) + L_GAN(F) + lambda L_cyc + lambda_id lambda L_id`, where the least-squares GAN terms
//!   are `mean (D_B(G(a)) - 1)^2 + mean (D_A(F(b)) - 1)^2`, the cycle term
//!   `|F(G(a)) - a|_1 + |G(F(b)) - b|_1` and the identity term `|G(b) - b|_1 + |F(a) - a|_1`
//!   (section 5.2, for colour preservation; `lambda_id = 0.5` in the code);
//! - discriminators: `(mean (D_B(b) - 1)^2 + mean D_B(h_B)^2) / 2`, and likewise `D_A`, where `h_B` are
//!   this step's translations `G(a)` passed through a history of 50 earlier ones (section 4; the
//!   halving "slows down the rate at which D learns relative to G").
//!
//! The translators and discriminators are the run's `[generator]` and `[discriminator]` tables
//! (`resnet_translator` and `patch_discriminator`, networks); the learning rate schedule is
//! `lr_decay = "hold_then_linear"` in the run's optimizer tables, the paper's 100 + 100 epochs.

use condor_core::{NetworkDecl, NetworkKind, Recipe, RecipeSetup, Scalars, TrainContext, TranslationPair};
use serde::{Deserialize, Serialize};

use crate::image_history::ImageHistory;
use crate::translation::{
    domain_batches, l1, mean, mse_to, translation_networks, translator_pair, DISCRIMINATORS, TRANSLATORS,
};

/// The registry name of the recipe.
pub const NAME: &str = "cyclegan";

/// The `[recipe] config` table of [`CycleGan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CycleGanConfig {
    /// Weight of the cycle-consistency loss (the paper's lambda).
    pub cycle_weight: f64,
    /// Weight of the identity loss, as a fraction of `cycle_weight` (0 turns it off).
    pub identity_weight: f64,
    /// Generated images each discriminator's history keeps (0 turns it off).
    pub history: usize,
}

impl Default for CycleGanConfig {
    fn default() -> Self {
        Self { cycle_weight: 10.0, identity_weight: 0.5, history: 50 }
    }
}

/// The recipe.
pub struct CycleGan {
    config: CycleGanConfig,
    networks: Vec<NetworkDecl>,
    /// The histories of translations into domain A (for `d_a`) and into domain B (for `d_b`).
    histories: [ImageHistory; 2],
}

impl CycleGan {
    /// The recipe for `config` with the run's translator, discriminator and optimizers.
    pub fn new(config: CycleGanConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        condor_core::Error::check_non_negative(
            NAME,
            &[("cycle_weight", config.cycle_weight), ("identity_weight", config.identity_weight)],
        )?;
        let networks = translation_networks(setup, NetworkKind::Network);
        let histories = [ImageHistory::new(config.history), ImageHistory::new(config.history)];
        Ok(Self { config, networks, histories })
    }
}

/// State names of the two histories.
const HISTORIES: [&str; 2] = ["history_a", "history_b"];

impl Recipe for CycleGan {
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
        let (a, b, mut rng) = domain_batches(cx)?;
        let (g, f) = (cx.network(TRANSLATORS[0])?, cx.network(TRANSLATORS[1])?);
        let (fake_b, fake_a) = (g.forward(&a, None, true)?, f.forward(&b, None, true)?);
        let (cycled_a, cycled_b) = (f.forward(&fake_b, None, true)?, g.forward(&fake_a, None, true)?);
        let (d_a, d_b) = (cx.frozen_network(DISCRIMINATORS[0])?, cx.frozen_network(DISCRIMINATORS[1])?);
        let gan =
            (mse_to(&d_b.forward(&fake_b, None, true)?, 1.0)? + mse_to(&d_a.forward(&fake_a, None, true)?, 1.0)?)?;
        let cycle = (l1(&cycled_a, &a)? + l1(&cycled_b, &b)?)?;
        let lambda = self.config.cycle_weight;
        let mut loss_g = (&gan + (&cycle * lambda)?)?;
        let identity = if self.config.identity_weight > 0.0 {
            let identity = (l1(&g.forward(&b, None, true)?, &b)? + l1(&f.forward(&a, None, true)?, &a)?)?;
            loss_g = (loss_g + (&identity * (lambda * self.config.identity_weight))?)?;
            identity
        } else {
            cycle.zeros_like()?
        };
        let values = cx.scalars(&[&loss_g, &gan, &cycle, &identity])?;
        log.insert("loss_g".into(), cx.finite("translator loss", values[0])?);
        for (k, v) in ["loss_gan", "cycle", "identity"].into_iter().zip(&values[1..]) {
            log.insert(k.into(), *v);
        }
        cx.update_jointly(&TRANSLATORS, &loss_g)?;

        // The discriminators see this step's translations, made before the translators' update.
        let seen_b = self.histories[1].query(&fake_b, &mut rng)?;
        let seen_a = self.histories[0].query(&fake_a, &mut rng)?;
        let (d_a, d_b) = (cx.network(DISCRIMINATORS[0])?, cx.network(DISCRIMINATORS[1])?);
        let (on_real_a, on_fake_a) = (d_a.forward(&a, None, true)?, d_a.forward(&seen_a, None, true)?);
        let (on_real_b, on_fake_b) = (d_b.forward(&b, None, true)?, d_b.forward(&seen_b, None, true)?);
        let loss_d_a = ((mse_to(&on_real_a, 1.0)? + mse_to(&on_fake_a, 0.0)?)? * 0.5)?;
        let loss_d_b = ((mse_to(&on_real_b, 1.0)? + mse_to(&on_fake_b, 0.0)?)? * 0.5)?;
        let loss_d = (&loss_d_a + &loss_d_b)?;
        let real = ((mean(&on_real_a)? + mean(&on_real_b)?)? * 0.5)?;
        let fake = ((mean(&on_fake_a)? + mean(&on_fake_b)?)? * 0.5)?;
        let values = cx.scalars(&[&loss_d, &loss_d_a, &loss_d_b, &real, &fake])?;
        log.insert("loss_d".into(), cx.finite("discriminator loss", values[0])?);
        for (k, v) in ["loss_d_a", "loss_d_b", "d_real", "d_fake"].into_iter().zip(&values[1..]) {
            log.insert(k.into(), *v);
        }
        // The two losses share no weights: one backward pass gives each discriminator its own gradient.
        cx.update_jointly(&DISCRIMINATORS, &loss_d)?;
        Ok(log)
    }

    fn state(&self) -> Vec<(String, candle_core::Tensor)> {
        let mut out = Vec::new();
        for (name, history) in HISTORIES.iter().zip(&self.histories) {
            if let Ok(Some(t)) = history.to_tensor() {
                out.push((name.to_string(), t));
            }
        }
        out
    }

    fn load_state(
        &mut self,
        tensors: &std::collections::HashMap<String, candle_core::Tensor>,
    ) -> condor_core::Result<()> {
        for (name, history) in HISTORIES.iter().zip(&mut self.histories) {
            *history = ImageHistory::new(self.config.history);
            if let Some(t) = tensors.get(*name) {
                history.load(t).map_err(|e| condor_core::Error::InvalidInput(format!("{name}: {e}")))?;
            }
        }
        Ok(())
    }
}
