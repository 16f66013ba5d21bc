//! Checkpoints: weights files ([`condor_infer::file`]) holding the tensors of every network of the
//! recipe, its EMA copy and every optimizer, with the run config and training state in the metadata, so
//! a checkpoint alone rebuilds and resumes its run. Each also carries the [`ModelCard`] of its sampling
//! generator, so inference opens it without the training configuration.
//!
//! Tensor names are prefixed by group: a network's name (`g.`, `d.`), `ema.`, `opt_<name>.` and
//! `recipe.`. Metadata keys: `condor.config` (the resolved run config, JSON), `condor.state` (JSON
//! [`TrainState`]) and `condor.card`, besides the format and checksum every weights file has.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use condor_core::ModelSpec;
use condor_infer::file::{self, WeightsFile};
use condor_infer::{ModelCard, TranslationCard};
use serde::{Deserialize, Serialize};

pub use condor_infer::file::{CheckpointError, FORMAT_VERSION};

use crate::config::RunConfig;

/// Where training stands, stored in the metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed training iterations. Every random draw of iteration `s` is derived from
    /// `(config.seed, s)`, so this number is the whole RNG and schedule state.
    pub step: u64,
    /// Steps taken by the generator's optimizer.
    pub opt_g_steps: u64,
    /// Steps taken by the discriminator's optimizer.
    pub opt_d_steps: u64,
    /// Steps taken by the optimizers of a recipe's other networks, by network name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub opt_steps: std::collections::BTreeMap<String, u64>,
    /// The Condor version that wrote the file.
    pub written_by: String,
    /// The float16 loss scale (mixed precision with `f16` only).
    #[serde(default)]
    pub loss_scale: Option<crate::precision::LossScale>,
}

impl TrainState {
    /// Steps taken by network `name`'s optimizer.
    pub fn optimizer_steps(&self, name: &str) -> u64 {
        match name {
            "g" => self.opt_g_steps,
            "d" => self.opt_d_steps,
            other => self.opt_steps.get(other).copied().unwrap_or(0),
        }
    }
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// Where it was read from.
    pub path: PathBuf,
    /// The resolved run config.
    pub config: RunConfig,
    /// The training state.
    pub state: TrainState,
    /// All tensors by full name.
    pub tensors: HashMap<String, Tensor>,
    /// The model card of the generator to sample from (for a checkpoint written before cards, the one
    /// its config and state describe); `None` for a translation recipe's checkpoint, which carries a
    /// [`TranslationCard`] instead.
    pub card: Option<ModelCard>,
}

impl Checkpoint {
    /// The tensors under `prefix.`, with the prefix removed.
    pub fn group(&self, prefix: &str) -> HashMap<String, Tensor> {
        file::group(&self.tensors, prefix)
    }

    /// The card of the generator to sample from; an error for a translation recipe's checkpoint.
    pub fn generator_card(&self) -> Result<&ModelCard, CheckpointError> {
        self.card.as_ref().ok_or_else(|| condor_infer::translator::not_a_generator(&self.path))
    }

    /// Whether any tensor lives under `prefix.`.
    pub fn has_group(&self, prefix: &str) -> bool {
        file::has_group(&self.tensors, prefix)
    }

    /// Reads a checkpoint onto `device`, checking its format, metadata and checksum.
    pub fn load(path: &Path, device: &Device) -> Result<Self, CheckpointError> {
        Self::from_file(WeightsFile::read(path, device)?)
    }

    /// The checkpoint in a weights file already read; an error when it lacks the run config or state
    /// (an exported model, which samples but cannot resume).
    pub fn from_file(file: WeightsFile) -> Result<Self, CheckpointError> {
        if !file.metadata.contains_key("condor.config") && ModelCard::of(&file)?.is_some() {
            return Err(CheckpointError::NotCondor {
                path: file.path,
                reason: "it is an exported model (weights and a model card) without the training state a \
                         checkpoint has; sample it, or resume from the run's own checkpoint"
                    .into(),
            });
        }
        let config: RunConfig = file.required("condor.config")?;
        let state: TrainState = file.required("condor.state")?;
        let card = if TranslationCard::of(&file)?.is_some() { None } else { Some(card_of(&file)?) };
        Ok(Self { path: file.path, config, state, tensors: file.tensors, card })
    }
}

/// The model card of any weights file Condor wrote: its own, or for a checkpoint written before cards,
/// the one its run config and state describe.
pub fn card_of(file: &WeightsFile) -> Result<ModelCard, CheckpointError> {
    if let Some(card) = ModelCard::of(file)? {
        return Ok(card);
    }
    if TranslationCard::of(file)?.is_some() {
        return Err(condor_infer::translator::not_a_generator(&file.path));
    }
    let config: RunConfig = file.required("condor.config")?;
    let state: TrainState = file.required("condor.state")?;
    let weights = if file::has_group(&file.tensors, "ema") { "ema" } else { "g" };
    // Before cards, the sampling generator was always the config's `generator`, network `g`.
    Ok(run_card(&config, config.generator.clone(), weights, weights == "ema", &state))
}

/// The model card of a run's generator `generator` whose weights are the tensor group `weights` (its
/// EMA copy when `ema`), at the training state `state`.
pub fn run_card(config: &RunConfig, generator: ModelSpec, weights: &str, ema: bool, state: &TrainState) -> ModelCard {
    ModelCard {
        name: config.name.clone(),
        generator,
        text_encoder: config.data.is_captioned().then(|| config.text.encoder.clone()),
        data: config.data.clone(),
        weights: weights.to_string(),
        ema,
        step: state.step,
        written_by: state.written_by.clone(),
    }
}

/// Writes a checkpoint atomically (see [`condor_infer::file::write`]), with the run config, the
/// training state and `card`, the metadata entry of the card of its sampling generator
/// ([`ModelCard::metadata`]) or of its translators ([`TranslationCard::metadata`]).
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    config: &RunConfig,
    state: &TrainState,
    card: (String, String),
) -> Result<(), CheckpointError> {
    let metadata = HashMap::from([
        ("condor.config".to_string(), serde_json::to_string(config).expect("config serialises")),
        ("condor.state".to_string(), serde_json::to_string(state).expect("state serialises")),
        card,
    ]);
    file::write(path, tensors, metadata)
}
