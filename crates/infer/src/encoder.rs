//! Opening the sentence encoder a model or run names.

use std::path::{Path, PathBuf};

use candle_core::Device;
use condor_text::cache::model_fingerprint;
use condor_text::pooling::{is_pooling_file, load_pooling, pooling_path};
use condor_text::{ModelSource, SentenceEncoder, TextError};

use crate::error::Result;

/// The folder of the text encoder `source` names: `shipped` is the MiniLM in `weights/`, anything
/// else a local model folder or a hub model id.
pub fn encoder_folder(source: &str) -> Result<PathBuf> {
    let source = if source == "shipped" { ModelSource::shipped() } else { ModelSource::parse(source) };
    Ok(source.resolve()?)
}

/// Loads the text encoder `source` names on `device`, with its fingerprint (for caches). A source
/// ending in `.safetensors` is an attention-pooling head ([`condor_text::pooling`]): the base
/// encoder it names is loaded and the head makes its sentence embeddings.
pub fn load_encoder(source: &str, device: &Device) -> Result<(SentenceEncoder, String)> {
    if is_pooling_file(source) {
        return load_pooled(&pooling_path(source), device);
    }
    let folder = encoder_folder(source)?;
    Ok((SentenceEncoder::load(&folder, device)?, model_fingerprint(&folder)?))
}

fn load_pooled(path: &Path, device: &Device) -> Result<(SentenceEncoder, String)> {
    if !path.is_file() {
        let hint = format!(
            "It is a text head made by `condor text-encoder pretrain --config <the run config> --out {}`.",
            path.display()
        );
        return Err(TextError::MissingFile { file: path.into(), hint }.into());
    }
    let head = load_pooling(path, device)?;
    if is_pooling_file(&head.base) {
        return Err(TextError::Mismatch(format!("{} names another pooling head as its base", path.display())).into());
    }
    let folder = encoder_folder(&head.base)?;
    let fingerprint = format!("{}-pool{:08x}", model_fingerprint(&folder)?, head.crc32);
    Ok((SentenceEncoder::load(&folder, device)?.with_pooling(head.pooling)?, fingerprint))
}
