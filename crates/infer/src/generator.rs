//! A generator rebuilt from a weights file through the registry, by its model card.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use condor_core::{Generator, Params, Registry};

use crate::card::ModelCard;
use crate::error::Result;
use crate::file::{self, CheckpointError, WeightsFile};

/// A generator ready for inference, with its weights and card.
pub struct LoadedGenerator {
    /// The generator.
    pub generator: Box<dyn Generator>,
    /// Its variables.
    pub params: Params,
    /// What it is and where its weights came from.
    pub card: ModelCard,
}

impl LoadedGenerator {
    /// Reads a weights file that carries a model card (an exported model, or a checkpoint written by
    /// this version's trainer) and rebuilds its generator through `registry` on `device`.
    pub fn load(path: &Path, registry: &Registry, device: &Device) -> Result<Self> {
        let file = WeightsFile::read(path, device)?;
        if file.metadata.contains_key(crate::translator::TRANSLATION_CARD_KEY) {
            return Err(crate::translator::not_a_generator(path).into());
        }
        let card = ModelCard::of(&file)?.ok_or_else(|| CheckpointError::NotCondor {
            path: path.to_path_buf(),
            reason: "it has no model card (`condor.card`); `condor export` writes one for a checkpoint of an older \
                     version"
                .into(),
        })?;
        Self::from_file(&file, card, registry, device)
    }

    /// Rebuilds the generator `card` describes from the weights in `file`.
    pub fn from_file(file: &WeightsFile, card: ModelCard, registry: &Registry, device: &Device) -> Result<Self> {
        let weights = file::group(&file.tensors, &card.weights);
        Self::from_weights(&weights, card, &file.path, registry, device)
    }

    /// Rebuilds the generator `card` describes with `weights` (by parameter name) read from `source`
    /// (named in errors).
    pub fn from_weights(
        weights: &HashMap<String, Tensor>,
        card: ModelCard,
        source: &Path,
        registry: &Registry,
        device: &Device,
    ) -> Result<Self> {
        let params = Params::new(0);
        let generator = registry.build_generator(&card.generator, params.var_builder(DType::F32, device))?;
        params.load(weights).map_err(|reason| CheckpointError::Mismatch {
            path: source.to_path_buf(),
            reason: format!("generator: {reason}"),
        })?;
        Ok(Self { generator, params, card })
    }

    /// Writes this generator as an exported model: its weights and card, nothing of training.
    pub fn export(&self, path: &Path) -> Result<()> {
        let weights: HashMap<String, Tensor> =
            self.params.named().into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        Ok(self.card.export(path, &weights)?)
    }
}
