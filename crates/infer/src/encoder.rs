//! Opening the sentence encoder a model or run names.

use std::path::PathBuf;

use candle_core::Device;
use condor_text::cache::model_fingerprint;
use condor_text::{ModelSource, SentenceEncoder};

use crate::error::Result;

/// The folder of the text encoder `source` names: `shipped` is the MiniLM in `weights/`, anything
/// else a local model folder or a hub model id.
pub fn encoder_folder(source: &str) -> Result<PathBuf> {
    let source = if source == "shipped" { ModelSource::shipped() } else { ModelSource::parse(source) };
    Ok(source.resolve()?)
}

/// Loads the text encoder `source` names on `device`, with its fingerprint (for caches).
pub fn load_encoder(source: &str, device: &Device) -> Result<(SentenceEncoder, String)> {
    let folder = encoder_folder(source)?;
    Ok((SentenceEncoder::load(&folder, device)?, model_fingerprint(&folder)?))
}
