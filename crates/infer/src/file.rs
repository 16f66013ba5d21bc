//! Condor's weights files: safetensors with metadata, written atomically and read back with their
//! format and checksum checked. Training checkpoints and exported models are both such files.
//!
//! Metadata keys shared by every file: `condor.format` (this module's [`FORMAT_VERSION`]) and
//! `condor.checksum` (CRC32 of every tensor's name, dtype, shape and bytes). A file is written to a
//! temporary file in the same directory and renamed, so a crash never leaves a half-written one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use safetensors::{tensor::View, SafeTensors};
use serde::de::DeserializeOwned;

/// The file format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a weights file (a checkpoint or an exported model) could not be used.
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

/// A weights file read into memory: its tensors and metadata.
pub struct WeightsFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The metadata entries, JSON values under `condor.*` keys.
    pub metadata: HashMap<String, String>,
    /// All tensors by full name.
    pub tensors: HashMap<String, Tensor>,
}

impl WeightsFile {
    /// Reads a file onto `device`, checking its format and checksum.
    pub fn read(path: &Path, device: &Device) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CheckpointError::NotFound(path.to_path_buf()),
            _ => CheckpointError::Io { path: path.to_path_buf(), source: e },
        })?;
        let corrupt = |reason: String| CheckpointError::Corrupt { path: path.to_path_buf(), reason };
        let not_condor = |reason: &str| CheckpointError::NotCondor { path: path.to_path_buf(), reason: reason.into() };
        let st =
            SafeTensors::deserialize(&bytes).map_err(|e| corrupt(format!("not a readable safetensors file ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let metadata = header.metadata().clone().ok_or_else(|| not_condor("it has no metadata"))?;
        let format: u32 = metadata
            .get("condor.format")
            .ok_or_else(|| not_condor("it has no `condor.format` entry"))?
            .parse()
            .map_err(|_| not_condor("`condor.format` is not a number"))?;
        if format > FORMAT_VERSION {
            return Err(not_condor(&format!("format {format} is newer than {FORMAT_VERSION}; upgrade Condor")));
        }
        let expected: u32 = metadata
            .get("condor.checksum")
            .ok_or_else(|| corrupt("metadata `condor.checksum` is missing".into()))?
            .parse()
            .map_err(|_| corrupt("checksum is not a number".into()))?;
        let mut views = st.tensors();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        let actual = checksum(views.iter().map(|(n, v)| (n.as_str(), v.dtype().to_string(), v.shape(), v.data())));
        if actual != expected {
            return Err(corrupt(format!("checksum {actual:08x} does not match the stored {expected:08x}")));
        }
        let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| corrupt(e.to_string()))?;
        Ok(Self { path: path.to_path_buf(), metadata, tensors })
    }

    /// The JSON metadata entry `key`, parsed; `None` when the file has no such entry.
    pub fn entry<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CheckpointError> {
        self.metadata
            .get(key)
            .map(|text| {
                serde_json::from_str(text).map_err(|e| CheckpointError::Corrupt {
                    path: self.path.clone(),
                    reason: format!("metadata `{key}`: {e}"),
                })
            })
            .transpose()
    }

    /// The JSON metadata entry `key`, parsed; an error naming it when it is missing.
    pub fn required<T: DeserializeOwned>(&self, key: &str) -> Result<T, CheckpointError> {
        self.entry(key)?.ok_or_else(|| CheckpointError::Corrupt {
            path: self.path.clone(),
            reason: format!("metadata `{key}` is missing"),
        })
    }
}

/// The tensors of `tensors` under `prefix.`, with the prefix removed.
pub fn group(tensors: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    let p = format!("{prefix}.");
    tensors.iter().filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_string(), v.clone()))).collect()
}

/// Whether any tensor of `tensors` lives under `prefix.`.
pub fn has_group(tensors: &HashMap<String, Tensor>, prefix: &str) -> bool {
    let p = format!("{prefix}.");
    tensors.keys().any(|k| k.starts_with(&p))
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

/// Writes a weights file atomically: a temporary file in the same directory, flushed to disk, then
/// renamed over `path`. `metadata` holds the caller's entries (JSON values); the format and checksum
/// are added here.
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    // Tensors are copied to the CPU once, so the checksum and the file see the same bytes.
    let host: Vec<(String, Tensor)> = sorted
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<_>>()
        .map_err(|e| io(std::io::Error::other(e)))?;
    let data: Vec<std::borrow::Cow<[u8]>> = host.iter().map(|(_, t)| View::data(t)).collect();
    let sum = checksum(
        host.iter().zip(&data).map(|((n, t), d)| (n.as_str(), View::dtype(t).to_string(), t.dims(), d.as_ref())),
    );
    let mut meta = metadata;
    meta.insert("condor.format".to_string(), FORMAT_VERSION.to_string());
    meta.insert("condor.checksum".to_string(), sum.to_string());
    let bytes = safetensors::serialize(host.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
        .map_err(|e| io(std::io::Error::other(e)))?;
    write_atomically(path, &bytes).map_err(io)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
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
    result
}
