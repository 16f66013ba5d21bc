//! Dataset caption embeddings, encoded once and stored, so that training never re-encodes.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use crate::encoder::SentenceEncoder;
use crate::error::{Result, TextError};

/// A fingerprint of a model folder: CRC32s of its config, tokenizer and weights files.
pub fn model_fingerprint(folder: &Path) -> Result<String> {
    let files = crate::source::ModelFiles::in_folder(folder)?;
    let mut parts = Vec::new();
    for f in [&files.config, &files.tokenizer, &files.weights] {
        let bytes = std::fs::read(f).map_err(|source| TextError::Io { path: f.clone(), source })?;
        parts.push(format!("{:08x}", crc32fast::hash(&bytes)));
    }
    Ok(parts.join(""))
}

/// A hash of an ordered list of captions.
pub fn captions_hash(captions: &[String]) -> String {
    let mut h = condor_core::rng::Fnv64::default();
    h.update(&(captions.len() as u64).to_le_bytes());
    for c in captions {
        h.update(&(c.len() as u64).to_le_bytes());
        h.update(c.as_bytes());
    }
    format!("{:016x}", h.finish())
}

/// Where the embeddings of `captions` by the model with `fingerprint` are cached under `dir`.
pub fn cache_path(dir: &Path, fingerprint: &str, captions: &[String]) -> PathBuf {
    dir.join(format!("embeddings-{fingerprint}-{}.safetensors", captions_hash(captions)))
}

/// The `(N, E)` sentence embeddings of `captions` (on the CPU), read from the cache file for this model
/// and these captions if it exists, otherwise encoded in batches of `batch` with a progress bar and
/// stored (atomically) for next time.
pub fn cached_embeddings(
    encoder: &SentenceEncoder,
    fingerprint: &str,
    captions: &[String],
    dir: &Path,
    batch: usize,
) -> Result<Tensor> {
    let path = cache_path(dir, fingerprint, captions);
    if let Ok(mut t) = candle_core::safetensors::load(&path, &Device::Cpu) {
        if let Some(e) = t.remove("embeddings").filter(|e| e.dims().first() == Some(&captions.len())) {
            return Ok(e);
        }
        log::warn!("ignoring unusable embedding cache {}", path.display());
    }
    let bar = ProgressBar::new(captions.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("encoding captions [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
            .expect("valid template"),
    );
    let mut parts = Vec::new();
    for chunk in captions.chunks(batch.max(1)) {
        let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
        parts.push(encoder.encode_batch(&texts)?.sentences.to_device(&Device::Cpu)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let all = if parts.is_empty() {
        Tensor::zeros((0, 0), candle_core::DType::F32, &Device::Cpu)?
    } else {
        Tensor::cat(&parts, 0)?
    };
    std::fs::create_dir_all(dir).map_err(|source| TextError::Io { path: dir.into(), source })?;
    let tmp = path.with_extension("tmp");
    candle_core::safetensors::save(&std::collections::HashMap::from([("embeddings".to_string(), all.clone())]), &tmp)?;
    std::fs::rename(&tmp, &path).map_err(|source| TextError::Io { path: path.clone(), source })?;
    Ok(all)
}
