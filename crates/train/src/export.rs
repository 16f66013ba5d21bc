//! From training checkpoints to inference: the model card of any weights file Condor wrote (read from
//! the file, or made from the run config of a checkpoint written before cards), opening its generator,
//! exporting it, and repairing the batch-norm statistics of older checkpoints' EMA copies.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use condor_core::Registry;
use condor_infer::{LoadedGenerator, TextToImage, WeightsFile};

use crate::checkpoint::{card_of, Checkpoint};
use crate::error::{Result, TrainError};

/// Opens the generator of any weights file Condor wrote: a checkpoint (this version's or an older
/// one's) or an exported model.
pub fn open_generator(path: &Path, registry: &Registry, device: &Device) -> Result<LoadedGenerator> {
    generator_of(&WeightsFile::read(path, device)?, registry, device)
}

/// [`open_generator`] of a weights file already read.
pub fn generator_of(file: &WeightsFile, registry: &Registry, device: &Device) -> Result<LoadedGenerator> {
    Ok(LoadedGenerator::from_file(file, card_of(file)?, registry, device)?)
}

/// [`open_generator`] with its text encoder: the inference pipeline of any weights file Condor wrote.
pub fn open_model(path: &Path, registry: &Registry, device: &Device) -> Result<TextToImage> {
    Ok(TextToImage::new(open_generator(path, registry, device)?, device)?)
}

/// Writes the generator to sample from (the EMA copy when there is one) of the weights file `src` as an
/// exported model: its weights and model card, nothing of training. What `weights/` ships; it samples
/// like the original but cannot resume training.
///
/// With `text_head`, the pooling head the model was trained with (its card's text encoder) is copied
/// there and the exported card names the copy, so the model ships with its head.
pub fn export_generator(src: &Path, dest: &Path, text_head: Option<&Path>) -> Result<()> {
    let file = WeightsFile::read(src, &Device::Cpu)?;
    let mut card = card_of(&file)?;
    if let Some(head) = text_head {
        card.text_encoder = Some(copy_text_head(card.text_encoder.as_deref(), head)?);
    }
    let weights = condor_infer::file::group(&file.tensors, &card.weights);
    Ok(card.export(dest, &weights)?)
}

/// Copies the pooling head `trained_with` (a card's text encoder) to `to` and returns the name a card
/// gives the copy.
fn copy_text_head(trained_with: Option<&str>, to: &Path) -> Result<String> {
    let source = match trained_with {
        Some(s) if condor_text::pooling::is_pooling_file(s) => condor_text::pooling::pooling_path(s),
        other => {
            return Err(TrainError::Config(format!(
                "--text-head: the model's text encoder is {other:?}, not a pooling head (.safetensors) to copy"
            )))
        }
    };
    let name = to
        .to_str()
        .filter(|n| condor_text::pooling::is_pooling_file(n))
        .ok_or_else(|| TrainError::Config(format!("--text-head must be a .safetensors path, got {}", to.display())))?;
    if source != to {
        let bytes = std::fs::read(&source).map_err(|e| TrainError::Io { path: source.clone(), source: e })?;
        condor_infer::file::write_atomically(to, &bytes).map_err(|e| TrainError::Io { path: to.into(), source: e })?;
    }
    Ok(name.to_string())
}

/// Re-estimates the batch-norm statistics of the sampling generator (the EMA copy when there is one)
/// of checkpoint `src` for its own weights ([`crate::recalibrate_batch_norm`], on the run's training
/// data and seed), and writes the checkpoint with them to `dest`; everything else is kept. Training
/// does this itself at every checkpoint; this repairs checkpoints written before it did, whose EMA
/// copy carries the trained generator's statistics. Returns the number of batches used, or `None`
/// (writing nothing) when the generator has no batch norm.
pub fn recalibrate_checkpoint(src: &Path, dest: &Path, registry: &Registry, device: &Device) -> Result<Option<usize>> {
    let ckpt = Checkpoint::load(src, device)?;
    let card = ckpt.generator_card()?.clone();
    let group = card.weights.clone();
    let group = group.as_str();
    let loaded = LoadedGenerator::from_weights(&ckpt.group(group), card.clone(), &ckpt.path, registry, device)?;
    if !loaded.params.named().iter().any(|(n, _)| crate::tricks::is_batch_norm_statistic(n)) {
        return Ok(None);
    }
    let data = crate::text_data::build_data(&ckpt.config, device)?;
    let batches = match ckpt.config.training.ema {
        Some(e) if e.batch_norm_batches > 0 => e.batch_norm_batches,
        _ => crate::tricks::DEFAULT_BATCH_NORM_BATCHES,
    };
    let (batch_size, seed) = (ckpt.config.batch_size, ckpt.config.seed);
    let (g, params) = (loaded.generator.as_ref(), &loaded.params);
    crate::recalibrate_batch_norm(g, params, data.as_ref(), batches, batch_size, seed, device)?;
    let mut tensors: HashMap<String, Tensor> = ckpt.tensors.clone();
    for (name, var) in params.named() {
        tensors.insert(format!("{group}.{name}"), var.as_tensor().to_device(&Device::Cpu)?);
    }
    let tensors: Vec<(String, Tensor)> = tensors.into_iter().collect();
    crate::checkpoint::save(dest, &tensors, &ckpt.config, &ckpt.state, card.metadata())?;
    Ok(Some(batches))
}
