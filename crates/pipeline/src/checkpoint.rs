//! Checkpoints: safetensors files holding the tensors of G, D, the EMA generator and both optimizers,
//! with the run config and training state in the metadata, so a checkpoint alone rebuilds its models.
//!
//! Tensor names are prefixed: `g.`, `d.`, `ema.`, `opt_g.`, `opt_d.`. Metadata keys: `condor.format`,
//! `condor.config` (the resolved run config, JSON), `condor.state` (JSON [`TrainState`]) and
//! `condor.checksum` (CRC32 of every tensor's name, dtype, shape and bytes). Files are written to a
//! temporary file in the same directory and renamed, so a crash never leaves a half-written checkpoint.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use safetensors::{tensor::View, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;

/// The checkpoint format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file does not exist.
    #[error("checkpoint {0} does not exist")]
    NotFound(PathBuf),
    /// Reading or writing failed.
    #[error("cannot access checkpoint {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a readable safetensors file (truncated, garbled) or its checksum does not match.
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A valid safetensors file that Condor did not write, or a newer format.
    #[error("{path} is not a Condor checkpoint this version can read: {reason}")]
    NotCondor {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The checkpoint does not fit the model or run it is loaded into.
    #[error("checkpoint {path} does not match: {reason}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The first difference found.
        reason: String,
    },
}

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
}

impl Checkpoint {
    /// The tensors under `prefix.`, with the prefix removed.
    pub fn group(&self, prefix: &str) -> HashMap<String, Tensor> {
        let p = format!("{prefix}.");
        self.tensors.iter().filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_string(), v.clone()))).collect()
    }

    /// The group of the generator to sample from: `ema` when the checkpoint has the EMA copy, else `g`.
    pub fn sampling_group(&self) -> &'static str {
        if self.has_group("ema") {
            "ema"
        } else {
            "g"
        }
    }

    /// Whether any tensor lives under `prefix.`.
    pub fn has_group(&self, prefix: &str) -> bool {
        let p = format!("{prefix}.");
        self.tensors.keys().any(|k| k.starts_with(&p))
    }

    /// Reads a checkpoint onto `device`, checking its format, metadata and checksum.
    pub fn load(path: &Path, device: &Device) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CheckpointError::NotFound(path.to_path_buf()),
            _ => CheckpointError::Io { path: path.to_path_buf(), source: e },
        })?;
        let corrupt = |reason: String| CheckpointError::Corrupt { path: path.to_path_buf(), reason };
        let not_condor = |reason: &str| CheckpointError::NotCondor { path: path.to_path_buf(), reason: reason.into() };
        let st =
            SafeTensors::deserialize(&bytes).map_err(|e| corrupt(format!("not a readable safetensors file ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let meta = header.metadata().clone().ok_or_else(|| not_condor("it has no metadata"))?;
        let format: u32 = meta
            .get("condor.format")
            .ok_or_else(|| not_condor("it has no `condor.format` entry"))?
            .parse()
            .map_err(|_| not_condor("`condor.format` is not a number"))?;
        if format > FORMAT_VERSION {
            return Err(not_condor(&format!("format {format} is newer than {FORMAT_VERSION}; upgrade Condor")));
        }
        let field = |key: &str| meta.get(key).ok_or_else(|| corrupt(format!("metadata `{key}` is missing")));
        let expected: u32 =
            field("condor.checksum")?.parse().map_err(|_| corrupt("checksum is not a number".into()))?;
        let mut views = st.tensors();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        let actual = checksum(views.iter().map(|(n, v)| (n.as_str(), v.dtype().to_string(), v.shape(), v.data())));
        if actual != expected {
            return Err(corrupt(format!("checksum {actual:08x} does not match the stored {expected:08x}")));
        }
        let config: RunConfig = serde_json::from_str(field("condor.config")?)
            .map_err(|e| corrupt(format!("metadata `condor.config`: {e}")))?;
        let state: TrainState = serde_json::from_str(field("condor.state")?)
            .map_err(|e| corrupt(format!("metadata `condor.state`: {e}")))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| corrupt(e.to_string()))?;
        Ok(Self { path: path.to_path_buf(), config, state, tensors })
    }
}

/// CRC32 over each tensor's name, dtype, shape and data, in the given (sorted) order.
fn checksum<'a>(items: impl Iterator<Item = (&'a str, String, &'a [usize], &'a [u8])>) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for (name, dtype, shape, data) in items {
        h.update(name.as_bytes());
        h.update(dtype.as_bytes());
        for d in shape {
            h.update(&(*d as u64).to_le_bytes());
        }
        h.update(data);
    }
    h.finalize()
}

/// Writes a checkpoint atomically: a temporary file in the same directory, flushed to disk, then
/// renamed over `path`.
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    config: &RunConfig,
    state: &TrainState,
) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    // Tensors are copied to the CPU once, so the checksum and the file see the same bytes.
    let host: Vec<(String, Tensor)> = sorted
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<_>>()
        .map_err(|e| CheckpointError::Io { path: path.to_path_buf(), source: std::io::Error::other(e) })?;
    let data: Vec<std::borrow::Cow<[u8]>> = host.iter().map(|(_, t)| View::data(t)).collect();
    let sum = checksum(
        host.iter().zip(&data).map(|((n, t), d)| (n.as_str(), View::dtype(t).to_string(), t.dims(), d.as_ref())),
    );
    let mut meta = HashMap::new();
    meta.insert("condor.format".to_string(), FORMAT_VERSION.to_string());
    meta.insert("condor.checksum".to_string(), sum.to_string());
    meta.insert("condor.config".to_string(), serde_json::to_string(config).expect("config serialises"));
    meta.insert("condor.state".to_string(), serde_json::to_string(state).expect("state serialises"));
    let bytes = safetensors::serialize(host.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
        .map_err(|e| io(std::io::Error::other(e)))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
