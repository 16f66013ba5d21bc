//! Where a text encoder's files come from: a local folder, the copy shipped in `weights/`, or the
//! Hugging Face Hub (its local cache first).

use std::path::{Path, PathBuf};

use crate::error::{Result, TextError};

/// The folder name of the default model inside `weights/`.
pub const DEFAULT_MODEL_DIR: &str = "all-MiniLM-L6-v2";
/// The hub id of the default model.
pub const DEFAULT_HUB_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The files a sentence-transformers model folder holds.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    /// `config.json`: the BERT configuration.
    pub config: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `model.safetensors`: the weights (any float dtype).
    pub weights: PathBuf,
    /// `sentence_bert_config.json`, holding `max_seq_length`, when present.
    pub sentence_config: Option<PathBuf>,
}

impl ModelFiles {
    /// The files of a model folder; a missing one is an error naming it.
    pub fn in_folder(folder: &Path) -> Result<Self> {
        let need = |name: &str| {
            let p = folder.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(TextError::MissingFile {
                    file: p,
                    hint: "A text-encoder folder needs config.json, tokenizer.json and model.safetensors; \
                           `just weights` rebuilds the default one in weights/."
                        .into(),
                })
            }
        };
        let sentence = folder.join("sentence_bert_config.json");
        Ok(Self {
            config: need("config.json")?,
            tokenizer: need("tokenizer.json")?,
            weights: need("model.safetensors")?,
            sentence_config: sentence.is_file().then_some(sentence),
        })
    }
}

/// A text-encoder model to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A folder with the model files.
    Folder(PathBuf),
    /// A Hugging Face Hub model id, taken from the local cache or downloaded (unless `HF_HUB_OFFLINE=1`).
    Hub(String),
}

impl ModelSource {
    /// Reads a user's choice: an existing folder, or else a hub id such as
    /// `sentence-transformers/all-MiniLM-L6-v2`.
    pub fn parse(spec: &str) -> Self {
        let p = Path::new(spec);
        if p.is_dir() {
            Self::Folder(p.to_path_buf())
        } else {
            Self::Hub(spec.to_string())
        }
    }

    /// The shipped default: `$CONDOR_TEXT_ENCODER` if set, else `weights/all-MiniLM-L6-v2` under the
    /// current directory, else the copy in the source tree Condor was built from.
    pub fn shipped() -> Self {
        if let Some(p) = std::env::var_os("CONDOR_TEXT_ENCODER") {
            return Self::Folder(PathBuf::from(p));
        }
        let local = Path::new("weights").join(DEFAULT_MODEL_DIR);
        if local.is_dir() {
            return Self::Folder(local);
        }
        Self::Folder(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights").join(DEFAULT_MODEL_DIR))
    }

    /// The local folder holding the model, downloading into the hub cache if needed and allowed.
    pub fn resolve(&self) -> Result<PathBuf> {
        match self {
            Self::Folder(p) => {
                ModelFiles::in_folder(p)?;
                Ok(p.clone())
            }
            Self::Hub(repo) => resolve_hub(repo),
        }
    }
}

const HUB_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

fn resolve_hub(repo: &str) -> Result<PathBuf> {
    let cache = hf_hub::Cache::from_env();
    let cached = cache.model(repo.to_string());
    let found: Vec<Option<PathBuf>> = HUB_FILES.iter().map(|f| cached.get(f)).collect();
    if let Some(Some(first)) = found.first() {
        if found.iter().all(Option::is_some) {
            let dir = first.parent().map(Path::to_path_buf).unwrap_or_default();
            let _ = cached.get("sentence_bert_config.json");
            return Ok(dir);
        }
    }
    if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        return Err(TextError::Unavailable { repo: repo.into(), reason: "HF_HUB_OFFLINE is set".into() });
    }
    let unavailable =
        |e: hf_hub::api::sync::ApiError| TextError::Unavailable { repo: repo.into(), reason: e.to_string() };
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache).with_progress(true).build().map_err(unavailable)?;
    let model = api.model(repo.to_string());
    let mut dir = PathBuf::new();
    for f in HUB_FILES {
        dir = model.get(f).map_err(unavailable)?.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    let _ = model.get("sentence_bert_config.json");
    Ok(dir)
}

/// Copies a model folder to `dest` with its weights converted to `dtype` (float16 halves the size),
/// written atomically. Used by `just weights` to build the shipped copy.
pub fn export_model(src: &Path, dest: &Path, dtype: candle_core::DType) -> Result<()> {
    let files = ModelFiles::in_folder(src)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TextError::Io { path, source }
    };
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let mut copies = vec![files.config.clone(), files.tokenizer.clone()];
    copies.extend(files.sentence_config.clone());
    for f in copies {
        let to = dest.join(f.file_name().expect("model files have names"));
        std::fs::copy(&f, &to).map_err(io(&to))?;
    }
    let tensors = candle_core::safetensors::load(&files.weights, &candle_core::Device::Cpu)
        .map_err(|e| TextError::BadFile { file: files.weights.clone(), reason: e.to_string() })?;
    let converted: Vec<(String, candle_core::Tensor)> = tensors
        .into_iter()
        .map(|(k, t)| Ok((k, if t.dtype().is_float() { t.to_dtype(dtype)? } else { t })))
        .collect::<std::result::Result<_, candle_core::Error>>()?;
    let out = dest.join("model.safetensors");
    let tmp = dest.join(".model.safetensors.tmp");
    candle_core::safetensors::save(&converted.into_iter().collect(), &tmp)?;
    std::fs::rename(&tmp, &out).map_err(io(&out))
}
