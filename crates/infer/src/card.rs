//! The model card: what inference needs to know about a trained generator, stored in its weights
//! file as the metadata entry `condor.card` (JSON). It names the generator plugin and config, the
//! text encoder, the data the model was trained on, the tensor group holding the weights, and where
//! they came from; nothing of the training setup (losses, optimizers, schedule) that wrote them.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use condor_core::ModelSpec;
use condor_data::DatasetConfig;
use serde::{Deserialize, Serialize};

use crate::file::{self, CheckpointError, WeightsFile};

/// The metadata key of the card.
pub const CARD_KEY: &str = "condor.card";

/// The tensor group of an exported model's generator.
pub const EXPORTED_GROUP: &str = "generator";

/// What a weights file's generator is and how to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// The run that trained it.
    pub name: String,
    /// The generator plugin and its resolved config.
    pub generator: ModelSpec,
    /// The sentence encoder whose embeddings condition it (`shipped`, a model folder or a hub id);
    /// `None` for a model without text conditioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_encoder: Option<String>,
    /// The data it was trained on: what evaluation compares it with, and the mixture a 2D model's
    /// scatter plots draw.
    pub data: DatasetConfig,
    /// The tensor group (name prefix) of the generator's weights in the file.
    pub weights: String,
    /// Whether the weights are the exponential moving average of training's generator.
    pub ema: bool,
    /// The training step the weights are from.
    pub step: u64,
    /// The Condor version that wrote the weights.
    pub written_by: String,
}

impl ModelCard {
    /// The card of `file`; `None` when it has none (a checkpoint written before cards).
    pub fn of(file: &WeightsFile) -> Result<Option<Self>, CheckpointError> {
        file.entry(CARD_KEY)
    }

    /// The metadata entry holding this card.
    pub fn metadata(&self) -> (String, String) {
        (CARD_KEY.to_string(), serde_json::to_string(self).expect("a model card serialises"))
    }

    /// Writes `generator` (weights by parameter name) as an exported model: its tensors under
    /// [`EXPORTED_GROUP`] and this card, with `weights` set to that group.
    pub fn export(&self, path: &Path, generator: &HashMap<String, Tensor>) -> Result<(), CheckpointError> {
        let card = Self { weights: EXPORTED_GROUP.to_string(), ..self.clone() };
        let tensors: Vec<(String, Tensor)> =
            generator.iter().map(|(n, t)| (format!("{EXPORTED_GROUP}.{n}"), t.clone())).collect();
        file::write(path, &tensors, HashMap::from([card.metadata()]))
    }
}
