//! Optimizer settings: what every network's optimizer reads from a config, shared by the trainer and
//! by recipes that declare networks.

use serde::{Deserialize, Serialize};

/// Adam (or AdamW, with weight decay) settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 for plain Adam.
    pub weight_decay: f64,
    /// How the learning rate falls over the run.
    pub lr_decay: LrDecay,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self { lr: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, lr_decay: LrDecay::None }
    }
}

/// A learning-rate schedule over the run's `steps`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrDecay {
    /// Constant learning rate.
    #[default]
    None,
    /// Straight down to zero at the last step.
    Linear,
    /// Half a cosine period down to zero at the last step.
    Cosine,
    /// Constant for the first half of the run, then straight down to zero at the last step (CycleGAN's
    /// schedule: 100 epochs at the initial rate, 100 decaying).
    HoldThenLinear,
}

impl OptimizerConfig {
    /// The learning rate for iteration `step` (0-based) of a run of `total` steps.
    pub fn lr_at(&self, step: u64, total: u64) -> f64 {
        let progress = (step as f64 / total.max(1) as f64).min(1.0);
        match self.lr_decay {
            LrDecay::None => self.lr,
            LrDecay::Linear => self.lr * (1.0 - progress),
            LrDecay::Cosine => self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            LrDecay::HoldThenLinear => self.lr * (2.0 * (1.0 - progress)).min(1.0),
        }
    }
}

impl OptimizerConfig {
    /// Checks the values serde cannot: `what` names the config table in the error.
    #[allow(clippy::neg_cmp_op_on_partial_ord, reason = "`!(x > 0.0)` also rejects NaN")]
    pub fn validate(&self, what: &str) -> std::result::Result<(), String> {
        let o = self;
        if !(o.lr > 0.0) || !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) || !(o.eps > 0.0) {
            return Err(format!("`{what}` needs lr > 0, beta1 and beta2 in [0, 1), eps > 0"));
        }
        Ok(())
    }
}
