//! The run configuration: what to train, how, and for how long. Read from TOML or JSON.

use std::path::Path;

use condor_core::ModelSpec;
use condor_data::DatasetConfig;
use serde::{Deserialize, Serialize};

pub use condor_core::optimizer::{LrDecay, OptimizerConfig};

use crate::error::{io_err, Result, TrainError};
use crate::losses::LossKind;
use crate::tricks::{EmaConfig, InstanceNoiseConfig};

/// A whole training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Name of the run; its directory is `<runs root>/<name>`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Seed of every random draw: initialisation, data, noise.
    #[serde(default)]
    pub seed: u64,
    /// Number of training iterations (generator steps).
    pub steps: u64,
    /// Samples per batch, for both networks.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The training data.
    pub data: DatasetConfig,
    /// The generator plugin and its config.
    pub generator: ModelSpec,
    /// The discriminator plugin and its config.
    pub discriminator: ModelSpec,
    /// The training recipe and its config; absent, the built-in adversarial recipe, which reads
    /// `training` (the `adversarial` module).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<ModelSpec>,
    /// The adversarial objective and its tricks.
    #[serde(default)]
    pub training: TrainingConfig,
    /// Optimizers of both networks.
    #[serde(default)]
    pub optimizer: OptimizerPair,
    /// When to log, checkpoint and sample.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// The text encoder that turns captions into conditioning (captioned image datasets only).
    #[serde(default)]
    pub text: TextConfig,
}

/// Which sentence encoder conditions a text-to-image run, and where its embeddings are cached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextConfig {
    /// `shipped` (the MiniLM in `weights/`), a local model folder, or a hub model id.
    pub encoder: String,
    /// Folder for cached caption embeddings (keyed by model and caption set).
    pub cache_dir: std::path::PathBuf,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self { encoder: "shipped".into(), cache_dir: ".cache/condor/embeddings".into() }
    }
}

fn default_name() -> String {
    "run".into()
}
fn default_batch_size() -> usize {
    64
}

/// The adversarial objective: Algorithm 1 of Goodfellow et al. with the usual stabilising options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// The loss pair.
    pub loss: LossKind,
    /// Discriminator steps per generator step (k in Algorithm 1).
    pub d_steps: usize,
    /// Clip discriminator weights to [-c, c] after each of its steps (WGAN). Defaults to 0.01 for the
    /// Wasserstein loss.
    pub weight_clip: Option<f64>,
    /// One-sided label smoothing: real samples get target `1 - label_smoothing` (BCE, least squares).
    pub label_smoothing: f64,
    /// Noisy labels: each discriminator target is flipped with this probability (BCE, least squares).
    pub label_flip: f64,
    /// Gaussian noise added to every discriminator input, decaying to zero.
    pub instance_noise: Option<InstanceNoiseConfig>,
    /// An exponential moving average of the generator's weights, used for sampling.
    pub ema: Option<EmaConfig>,
    /// GAN-CLS (Reed et al. 2016): the discriminator also sees real images with mismatched captions
    /// (each row's caption taken from the next row) as fake; its loss is
    /// `real(x, c) + (fake(x, c_wrong) + fake(G(z, c), c)) / 2`.
    pub gan_cls: bool,
    /// The "where" counterpart of GAN-CLS, for what-and-where models (see
    /// [`crate::tricks::MismatchedBoxesConfig`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatched_boxes: Option<crate::tricks::MismatchedBoxesConfig>,
    /// GAN-INT (Reed et al. 2016): the generator also trains on `beta c + (1 - beta) c_next`, the
    /// interpolation of each row's caption embedding with the next row's, with `beta = interpolation`.
    pub gan_int: bool,
    /// `beta` of GAN-INT (0.5 in the paper).
    pub interpolation: f64,
    /// The lazy R1 gradient penalty on real images (see [`crate::regularizers`]).
    pub r1: Option<crate::regularizers::R1Config>,
    /// The one-centred gradient penalty at every discriminator step: WGAN-GP's on interpolates, or
    /// DRAGAN's around real samples (see [`crate::regularizers`]). It replaces the Wasserstein loss's
    /// default weight clipping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gradient_penalty: Option<crate::regularizers::GradientPenaltyConfig>,
    /// DF-GAN's matching-aware gradient penalty on real images and their own captions, at every
    /// discriminator step of a text-conditioned run (see [`crate::regularizers`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching_aware_penalty: Option<crate::regularizers::MatchingAwarePenaltyConfig>,
    /// Differentiable augmentation of every discriminator input, real and generated (see
    /// [`crate::diff_augment`]).
    pub diff_augment: Option<crate::diff_augment::DiffAugmentConfig>,
    /// The generator's text-image matching loss against the pretrained image encoder of the run's
    /// text head (see [`crate::matching`]); the head must be the run's `[text] encoder`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching: Option<crate::matching::MatchingConfig>,
    /// Arithmetic of the training passes: `f32`, or mixed precision with `bf16` or `f16` passes and
    /// float32 master weights (see [`crate::precision`]).
    pub precision: crate::precision::Precision,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            loss: LossKind::NonSaturating,
            d_steps: 1,
            weight_clip: None,
            label_smoothing: 0.0,
            label_flip: 0.0,
            instance_noise: None,
            ema: None,
            gan_cls: false,
            mismatched_boxes: None,
            gan_int: false,
            interpolation: 0.5,
            r1: None,
            gradient_penalty: None,
            matching_aware_penalty: None,
            diff_augment: None,
            matching: None,
            precision: Default::default(),
        }
    }
}

/// One optimizer per network (they may differ, as in the two time-scale update rule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerPair {
    /// The generator's optimizer.
    pub generator: OptimizerConfig,
    /// The discriminator's optimizer.
    pub discriminator: OptimizerConfig,
}

/// When the trainer writes logs, checkpoints and samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Write a line to `log.jsonl` every this many steps.
    pub log_every: u64,
    /// Write a checkpoint every this many steps (and always at the end).
    pub checkpoint_every: u64,
    /// Keep this many newest checkpoints.
    pub keep_checkpoints: usize,
    /// Write a sample plot every this many steps (0: only at the end).
    pub sample_every: u64,
    /// Samples drawn for each plot and for the final evaluation.
    pub sample_count: usize,
    /// Images per prompt in the progress grids of text-conditioned runs.
    pub preview_columns: usize,
    /// Steps at which a row of fixed-noise samples is added to `evolution.png` (say 100, 1000, 5000),
    /// so one picture shows how generation evolves. Text-conditioned runs draw one image per preview
    /// prompt, unconditional ones `preview_columns` images. Empty: no evolution picture.
    pub evolution_steps: Vec<u64>,
    /// Draw the next iteration's batches on a CPU thread during the current one (see
    /// [`crate::prefetch`]; the batches are the same either way).
    pub prefetch: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            log_every: 1,
            checkpoint_every: 500,
            keep_checkpoints: 3,
            sample_every: 500,
            sample_count: 1000,
            preview_columns: 8,
            evolution_steps: Vec::new(),
            prefetch: true,
        }
    }
}

impl RunConfig {
    /// Reads a config from a `.toml` or `.json` file. Errors name the file and the offending field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let parsed = if is_json { Self::from_json(&text) } else { Self::from_toml(&text) };
        parsed.map_err(|e| match e {
            TrainError::Config(m) => TrainError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| TrainError::Config(e.to_string().trim_end().to_string()))
    }

    /// Parses JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| TrainError::Config(e.to_string()))
    }

    /// The config as TOML, for the run directory.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# config does not serialise to TOML: {e}\n"))
    }

    /// Checks values that serde cannot, naming the field. Plugin configs are checked by the registry.
    #[allow(clippy::neg_cmp_op_on_partial_ord, reason = "`!(x > 0.0)` also rejects NaN")]
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(TrainError::Config(msg));
        let t = &self.training;
        if self.steps == 0 {
            return bad("`steps` must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("`batch_size` must be at least 1".into());
        }
        if t.d_steps == 0 {
            return bad("`training.d_steps` must be at least 1".into());
        }
        if !(0.0..0.5).contains(&t.label_smoothing) {
            return bad(format!("`training.label_smoothing` must be in [0, 0.5), got {}", t.label_smoothing));
        }
        if !(0.0..0.5).contains(&t.label_flip) {
            return bad(format!("`training.label_flip` must be in [0, 0.5), got {}", t.label_flip));
        }
        if !t.loss.uses_targets() && (t.label_smoothing > 0.0 || t.label_flip > 0.0) {
            return bad(format!(
                "`training.label_smoothing` and `training.label_flip` need a loss with targets \
                 (non_saturating, minimax, least_squares, boundary_seeking), not {:?}",
                t.loss
            ));
        }
        if let Some(c) = t.weight_clip {
            if !(c > 0.0) {
                return bad(format!("`training.weight_clip` must be positive, got {c}"));
            }
        }
        if let Some(n) = &t.instance_noise {
            if !(n.sigma >= 0.0) || n.decay_steps == 0 {
                return bad("`training.instance_noise` needs sigma >= 0 and decay_steps >= 1".into());
            }
        }
        if !(0.0..=1.0).contains(&t.interpolation) {
            return bad(format!("`training.interpolation` must be in [0, 1], got {}", t.interpolation));
        }
        if let Some(r) = &t.r1 {
            if !(r.gamma >= 0.0) || r.every == 0 || !(r.step > 0.0) {
                return bad("`training.r1` needs gamma >= 0, every >= 1 and step > 0".into());
            }
        }
        if let Some(p) = &t.gradient_penalty {
            if !(p.weight >= 0.0) || !(p.step > 0.0) {
                return bad("`training.gradient_penalty` needs weight >= 0 and step > 0".into());
            }
            if t.weight_clip.is_some() {
                return bad("`training.gradient_penalty` replaces `training.weight_clip`; set one of them".into());
            }
        }
        if let Some(p) = &t.matching_aware_penalty {
            if !(p.weight >= 0.0) || !(p.power >= 1.0) || !(p.step > 0.0) {
                return bad("`training.matching_aware_penalty` needs weight >= 0, power >= 1 and step > 0".into());
            }
        }
        if let Some(m) = &t.mismatched_boxes {
            if !(m.weight >= 0.0 && m.weight.is_finite()) {
                return bad(format!("`training.mismatched_boxes.weight` must be finite and >= 0, got {}", m.weight));
            }
        }
        if let Some(m) = &t.matching {
            if !(m.weight >= 0.0) {
                return bad(format!("`training.matching.weight` must be >= 0, got {}", m.weight));
            }
            crate::matching::require_text_head(&self.text.encoder)?;
        }
        if let Some(Err(msg)) = t.diff_augment.map(|a| a.validate()) {
            return bad(msg);
        }
        if let Some(e) = &t.ema {
            if !(0.0..1.0).contains(&e.decay) {
                return bad(format!("`training.ema.decay` must be in [0, 1), got {}", e.decay));
            }
        }
        for (name, o) in [("generator", &self.optimizer.generator), ("discriminator", &self.optimizer.discriminator)] {
            o.validate(&format!("optimizer.{name}")).or_else(bad)?;
        }
        if self.schedule.log_every == 0
            || self.schedule.checkpoint_every == 0
            || self.schedule.keep_checkpoints == 0
            || self.schedule.preview_columns == 0
        {
            return bad(
                "`schedule.log_every`, `checkpoint_every`, `keep_checkpoints` and `preview_columns` must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regularizers::{GradientPenaltyConfig, PenaltyPoints};

    const RING: &str =
        "steps = 10\n[data]\nkind = \"ring\"\n[generator]\nplugin = \"mlp\"\n[discriminator]\nplugin = \"mlp\"\n";

    #[test]
    fn objectives_and_penalties_read_from_toml_and_bad_settings_are_refused() {
        let c = RunConfig::from_toml(&format!(
            "{RING}[training]\nloss = \"jensen_shannon\"\ngradient_penalty = {{ points = \"perturbed\" }}\n"
        ))
        .unwrap();
        assert_eq!(c.training.loss, LossKind::JensenShannon);
        let p = GradientPenaltyConfig { points: PenaltyPoints::Perturbed, weight: 10.0, step: 1e-2 };
        assert_eq!(c.training.gradient_penalty, Some(p));
        let c =
            RunConfig::from_toml(&format!("{RING}[training]\nloss = \"boundary_seeking\"\nlabel_smoothing = 0.1\n"));
        assert_eq!(c.unwrap().training.loss, LossKind::BoundarySeeking);
        let refused = |training: &str| match RunConfig::from_toml(&format!("{RING}[training]\n{training}\n")) {
            Ok(c) => c.validate().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        let e = refused("loss = \"wasserstein\"\nweight_clip = 0.01\ngradient_penalty = {}");
        assert!(e.contains("replaces `training.weight_clip`"), "{e}");
        assert!(refused("gradient_penalty = { weight = -1.0 }").contains("weight >= 0"));
        let e = refused("loss = \"kullback_leibler\"\nlabel_smoothing = 0.1");
        assert!(e.contains("need a loss with targets"), "{e}");
        assert!(refused("loss = \"kl\"").contains("unknown variant `kl`"));
    }
}
