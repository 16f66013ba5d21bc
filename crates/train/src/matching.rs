//! The text-image matching loss of the generator (AttnGAN's DAMSM loss, sentence level): the image
//! encoder pretrained with the run's attention-pooling text head (`condor text-encoder pretrain`)
//! embeds each generated image, and the generator is penalised by the contrastive loss of those
//! embeddings against its captions' embeddings, so that an image must match its own caption better
//! than the batch's others. The discriminator's matching-aware terms reward the same thing, but only
//! as well as the discriminator has learnt it; this signal comes from a model trained on the real
//! pairs and is there from the first step.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use condor_text::pooling::{is_pooling_file, pooling_path};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::text_pretraining::{in_batch_contrastive_loss, ImageEncoder, SCALE_NAME};

/// `[training] matching = { weight = ... }`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingConfig {
    /// Weight of the loss in the generator's objective (AttnGAN's lambda).
    pub weight: f64,
}

/// The frozen image encoder and scale of a pooling file, and the loss's weight.
pub struct MatchingLoss {
    image: ImageEncoder,
    scale: Tensor,
    weight: f64,
}

/// Refuses a run's text encoder `encoder` unless it is a pretrained text head, whose image encoder
/// the matching loss reads.
pub fn require_text_head(encoder: &str) -> Result<()> {
    if is_pooling_file(encoder) {
        return Ok(());
    }
    Err(TrainError::Config(format!(
        "`training.matching` needs a pretrained text head as `[text] encoder` (a .safetensors file from \
         `condor text-encoder pretrain`), not `{encoder}`"
    )))
}

impl MatchingLoss {
    /// Loads the image side of the text encoder `encoder` (a pooling file) on `device`.
    pub fn load(encoder: &str, config: MatchingConfig, device: &Device) -> Result<Self> {
        require_text_head(encoder)?;
        let path = pooling_path(encoder);
        let tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&path, device)
            .map_err(|e| TrainError::Config(format!("cannot read {}: {e}", path.display())))?;
        let image = ImageEncoder::from_tensors(&tensors, device)?;
        let scale = tensors
            .get(SCALE_NAME)
            .ok_or_else(|| TrainError::Config(format!("{} has no `{SCALE_NAME}`", path.display())))?
            .to_dtype(DType::F32)?;
        Ok(Self { image, scale, weight: config.weight })
    }

    /// The weighted loss of `(B, C, S, S)` generated images against their captions' `(B, D)` embeddings.
    pub fn loss(&self, images: &Tensor, embeddings: &Tensor) -> Result<Tensor> {
        let image = self.image.embed(&images.to_dtype(DType::F32)?)?;
        let loss = in_batch_contrastive_loss(&embeddings.to_dtype(DType::F32)?, &image, &self.scale)?;
        Ok((loss * self.weight)?)
    }
}
