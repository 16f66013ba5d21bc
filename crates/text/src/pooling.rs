//! Attention pooling: a learned head that reads a sentence encoder's token embeddings and makes the
//! sentence embedding in place of the mean.
//!
//! Mean pooling keeps which words a sentence has but loses much of which word goes with which: in the
//! synthetic birds' captions a linear read-out of MiniLM's mean finds the wing colour of "a red bird
//! with blue wings" far less reliably than one that attends over the token embeddings. The head has
//! `K` learned queries; each takes a softmax-weighted sum of the (contextual) token embeddings, and a
//! linear map of those `K` sums and the mean makes the L2-normalised output. Its weights are trained
//! against images (see `condor pretrain-text`), as AttnGAN pretrains its text encoder (DAMSM), and
//! stored in a safetensors file that names the base encoder it reads.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Linear, Module, VarBuilder};

use crate::error::{Result, TextError};

/// The metadata key of the base encoder (`shipped`, a folder or a hub id) in a pooling file.
pub const BASE_KEY: &str = "condor.text.base";
/// The metadata key of the number of queries.
pub const QUERIES_KEY: &str = "condor.text.queries";

/// The shape of an [`AttentionPooling`] head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolingShape {
    /// Size of the token embeddings it reads (the base encoder's hidden size).
    pub input: usize,
    /// Number of learned queries.
    pub queries: usize,
    /// Size of the sentence embedding it makes.
    pub output: usize,
}

/// `K` learned attention queries over token embeddings and a linear map to the sentence embedding.
pub struct AttentionPooling {
    shape: PoolingShape,
    queries: Tensor,
    out: Linear,
}

/// The large negative score that padding tokens get before the softmax.
const MASKED: f64 = 1e4;

impl AttentionPooling {
    /// Builds the head from `vb` (`queries` of shape `(K, E)`, `out.weight` `((K + 1) E, D)`).
    pub fn new(shape: PoolingShape, vb: VarBuilder) -> candle_core::Result<Self> {
        let PoolingShape { input, queries, output } = shape;
        // Unit-variance queries: a token's score then starts at about its norm, so the softmax starts
        // far enough from uniform (mean pooling) for its gradient to move the queries.
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 };
        let q = vb.get_with_hints((queries, input), "queries", init)?;
        let out = candle_nn::linear((queries + 1) * input, output, vb.pp("out"))?;
        Ok(Self { shape, queries: q, out })
    }

    /// The head's shape.
    pub fn shape(&self) -> PoolingShape {
        self.shape
    }

    /// The `(B, D)` L2-normalised sentence embeddings of `(B, T, E)` tokens with their `(B, T)` mask
    /// (1 for a word, 0 for padding) and `(B, E)` mean-pooled embeddings.
    pub fn forward(&self, tokens: &Tensor, mask: &Tensor, mean: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, e) = tokens.dims3()?;
        let k = self.shape.queries;
        // (B, T, K) scores; padding never wins.
        let scores = tokens.reshape((b * t, e))?.matmul(&self.queries.t()?)?.reshape((b, t, k))?;
        let penalty = ((mask - 1.0)? * MASKED)?.unsqueeze(2)?;
        let weights = candle_nn::ops::softmax(&scores.broadcast_add(&penalty)?, 1)?;
        // (B, K, E): each query's weighted sum of the tokens.
        let pooled = weights.transpose(1, 2)?.contiguous()?.matmul(tokens)?;
        let joined = Tensor::cat(&[pooled.reshape((b, k * e))?, mean.clone()], 1)?;
        let v = self.out.forward(&joined)?;
        v.broadcast_div(&(v.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?)
    }
}

/// A pooling head read from a file, with the base encoder it was trained on.
pub struct PoolingFile {
    /// The head.
    pub pooling: AttentionPooling,
    /// The base encoder (`shipped`, a folder or a hub id) whose tokens it reads.
    pub base: String,
    /// CRC32 of the file's bytes (for cache fingerprints).
    pub crc32: u32,
}

/// Whether `source` names a pooling file rather than an encoder folder or hub id.
pub fn is_pooling_file(source: &str) -> bool {
    source.ends_with(".safetensors")
}

/// Where the pooling file `source` is: the path itself when it exists or is absolute, else the same
/// relative path in the source tree Condor was built from if it is there (as the shipped encoder is
/// found), else the path as given (for the error).
pub fn pooling_path(source: &str) -> std::path::PathBuf {
    let path = Path::new(source);
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    if in_tree.exists() {
        in_tree
    } else {
        path.to_path_buf()
    }
}

/// Reads a pooling file: its tensors and the metadata naming the base encoder and the queries.
pub fn load_pooling(path: &Path, device: &Device) -> Result<PoolingFile> {
    let bad = |reason: String| TextError::BadFile { file: path.into(), reason };
    let bytes = std::fs::read(path).map_err(|source| TextError::Io { path: path.into(), source })?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let base =
        meta.get(BASE_KEY).cloned().ok_or_else(|| bad(format!("no `{BASE_KEY}` metadata: not a pooling head")))?;
    let queries: usize = meta
        .get(QUERIES_KEY)
        .and_then(|q| q.parse().ok())
        .ok_or_else(|| bad(format!("no `{QUERIES_KEY}` metadata: not a pooling head")))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| bad(e.to_string()))?;
    let q = tensors.get("queries").ok_or_else(|| bad("no `queries` tensor".into()))?;
    let w = tensors.get("out.weight").ok_or_else(|| bad("no `out.weight` tensor".into()))?;
    let (k, input) = q.dims2().map_err(|e| bad(e.to_string()))?;
    let (output, joined) = w.dims2().map_err(|e| bad(e.to_string()))?;
    if k != queries || joined != (queries + 1) * input {
        return Err(bad(format!(
            "queries {k}x{input} and output weights {output}x{joined} do not fit {queries} queries"
        )));
    }
    let shape = PoolingShape { input, queries, output };
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    let pooling = AttentionPooling::new(shape, vb).map_err(|e| bad(format!("does not fit its metadata: {e}")))?;
    Ok(PoolingFile { pooling, base, crc32: crc32fast::hash(&bytes) })
}

/// Writes a head's tensors (`queries`, `out.weight`, `out.bias`) and its base encoder to `path`
/// atomically (a temporary file renamed into place).
pub fn save_pooling(tensors: &HashMap<String, Tensor>, shape: PoolingShape, base: &str, path: &Path) -> Result<()> {
    let meta =
        HashMap::from([(BASE_KEY.to_string(), base.to_string()), (QUERIES_KEY.to_string(), shape.queries.to_string())]);
    let tmp = path.with_extension("safetensors.tmp");
    let io = |source| TextError::Io { path: path.into(), source };
    let views: Vec<(String, Tensor)> = tensors.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    safetensors::serialize_to_file(views.iter().map(|(k, v)| (k.as_str(), v)), Some(meta), &tmp)
        .map_err(|e| TextError::BadFile { file: tmp.clone(), reason: e.to_string() })?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn head() -> (VarMap, AttentionPooling) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let shape = PoolingShape { input: 6, queries: 2, output: 4 };
        let p = AttentionPooling::new(shape, vb).unwrap();
        (vm, p)
    }

    #[test]
    fn padding_tokens_change_nothing_and_outputs_are_unit_vectors() {
        let (_, p) = head();
        let dev = Device::Cpu;
        let tokens = Tensor::randn(0f32, 1.0, (1, 3, 6), &dev).unwrap();
        let mean = Tensor::randn(0f32, 1.0, (1, 6), &dev).unwrap();
        let a = p.forward(&tokens, &Tensor::ones((1, 3), DType::F32, &dev).unwrap(), &mean).unwrap();
        let junk = Tensor::randn(0f32, 5.0, (1, 2, 6), &dev).unwrap();
        let padded = Tensor::cat(&[&tokens, &junk], 1).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1., 0., 0.]], &dev).unwrap();
        let b = p.forward(&padded, &mask, &mean).unwrap();
        let diff: f32 = (a.clone() - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(diff < 1e-6, "padding moved the output by {diff}");
        let norm: f32 = a.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn a_saved_head_loads_with_its_base_and_computes_the_same() {
        let (vm, p) = head();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.safetensors");
        let tensors: HashMap<String, Tensor> =
            vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        save_pooling(&tensors, p.shape(), "shipped", &path).unwrap();
        let loaded = load_pooling(&path, &Device::Cpu).unwrap();
        assert_eq!(loaded.base, "shipped");
        assert_eq!(loaded.pooling.shape(), p.shape());
        let dev = Device::Cpu;
        let tokens = Tensor::randn(0f32, 1.0, (2, 4, 6), &dev).unwrap();
        let mask = Tensor::ones((2, 4), DType::F32, &dev).unwrap();
        let mean = tokens.mean(1).unwrap();
        let a: Vec<f32> = p.forward(&tokens, &mask, &mean).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> =
            loaded.pooling.forward(&tokens, &mask, &mean).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_file_without_the_metadata_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.safetensors");
        let t = Tensor::zeros((2, 6), DType::F32, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("queries".to_string(), t)]), &path).unwrap();
        let err = load_pooling(&path, &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("not a pooling head"), "{err}");
    }
}
