//! A BERT-family sentence encoder: mask-aware mean pooling of the last hidden state, L2-normalised.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use condor_core::{Conditioning, TextEncoder, TokenEmbeddings};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{Result, TextError};
use crate::pooling::AttentionPooling;

/// WordPiece never reads more than this many characters per word, so a prompt longer than
/// `max_tokens * MAX_CHARS_PER_TOKEN` characters cannot contribute more tokens: it is cut there first,
/// which keeps tokenising a huge prompt cheap.
const MAX_CHARS_PER_TOKEN: usize = 100;

/// The encodings of a batch of texts.
#[derive(Debug)]
pub struct Encoded {
    /// `(B, E)` L2-normalised sentence embeddings.
    pub sentences: Tensor,
    /// `(B, T, E)` last hidden states, padded to the longest text in the batch.
    pub tokens: Tensor,
    /// `(B, T)` 1 for a real token, 0 for padding (as f32).
    pub mask: Tensor,
    /// Indices of the texts that were longer than the model's limit and were truncated.
    pub truncated: Vec<usize>,
}

/// A sentence-transformers model (config.json + tokenizer.json + model.safetensors) on a device.
pub struct SentenceEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    max_tokens: usize,
    dim: usize,
    device: Device,
    pooling: Option<AttentionPooling>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(|e| TextError::BadFile { file: path.into(), reason: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| TextError::BadFile { file: path.into(), reason: e.to_string() })
}

impl SentenceEncoder {
    /// Loads a model folder onto `device`. Weights of any float dtype are computed in float32.
    pub fn load(folder: &Path, device: &Device) -> Result<Self> {
        let files = crate::source::ModelFiles::in_folder(folder)?;
        let config: BertConfig = read_json(&files.config)?;
        let tokenizer = Tokenizer::from_file(&files.tokenizer)
            .map_err(|e| TextError::BadFile { file: files.tokenizer.clone(), reason: e.to_string() })?;
        // sentence-transformers' own limit when present (256 for MiniLM), else the position table's.
        let max_tokens = match &files.sentence_config {
            Some(p) => read_json::<serde_json::Value>(p)?["max_seq_length"].as_u64().map(|v| v as usize),
            None => None,
        }
        .unwrap_or(config.max_position_embeddings)
        .min(config.max_position_embeddings);
        // SAFETY: the file is memory-mapped read-only and not modified while the model lives; candle
        // copies each tensor out of the map on load.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, device) }
            .map_err(|e| TextError::BadFile { file: files.weights.clone(), reason: e.to_string() })?;
        let model = BertModel::load(vb, &config).map_err(|e| TextError::BadFile {
            file: files.weights.clone(),
            reason: format!("does not fit config.json: {e}"),
        })?;
        Self::from_parts(model, tokenizer, max_tokens, config.hidden_size, device)
    }

    /// An encoder from a built model and tokenizer (for tests and custom models).
    pub fn from_parts(
        model: BertModel,
        mut tokenizer: Tokenizer,
        max_tokens: usize,
        dim: usize,
        device: &Device,
    ) -> Result<Self> {
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| TextError::Tokenizer(e.to_string()))?;
        Ok(Self { model, tokenizer, max_tokens, dim, device: device.clone(), pooling: None })
    }

    /// This encoder with `pooling` making its sentence embeddings in place of the mean (its tokens and
    /// mask stay the base model's).
    pub fn with_pooling(mut self, pooling: AttentionPooling) -> Result<Self> {
        if pooling.shape().input != self.dim {
            return Err(TextError::Mismatch(format!(
                "the pooling head reads {}-dimensional tokens but the encoder makes {}",
                pooling.shape().input,
                self.dim
            )));
        }
        self.pooling = Some(pooling);
        Ok(self)
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Encodes a batch: sentence embeddings, token embeddings and mask, padded to the longest text.
    /// Empty, whitespace-only or wordless texts are an error; over-long ones are truncated and reported
    /// (and logged as a warning).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Encoded> {
        if texts.is_empty() {
            return Err(TextError::NoPrompts);
        }
        let char_limit = self.max_tokens * MAX_CHARS_PER_TOKEN;
        let mut ids: Vec<Vec<u32>> = Vec::with_capacity(texts.len());
        let mut truncated = Vec::new();
        for (index, text) in texts.iter().enumerate() {
            if text.trim().is_empty() {
                return Err(TextError::EmptyPrompt { index, detail: " or only whitespace" });
            }
            let cut = match text.char_indices().nth(char_limit) {
                Some((byte, _)) => &text[..byte],
                None => text,
            };
            let enc = self.tokenizer.encode(cut, true).map_err(|e| TextError::Tokenizer(e.to_string()))?;
            let special = enc.get_special_tokens_mask().iter().filter(|&&m| m == 1).count();
            if enc.get_ids().len() <= special {
                return Err(TextError::EmptyPrompt { index, detail: " after normalisation (no words)" });
            }
            if !enc.get_overflowing().is_empty() || cut.len() < text.len() {
                log::warn!("prompt {index} is longer than {} tokens and was truncated", self.max_tokens);
                truncated.push(index);
            }
            ids.push(enc.get_ids().to_vec());
        }
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        let b = ids.len();
        let mut flat = vec![0u32; b * longest];
        let mut mask = vec![0f32; b * longest];
        for (i, row) in ids.iter().enumerate() {
            flat[i * longest..i * longest + row.len()].copy_from_slice(row);
            mask[i * longest..i * longest + row.len()].iter_mut().for_each(|m| *m = 1.0);
        }
        let input = Tensor::from_vec(flat, (b, longest), &self.device)?;
        let mask = Tensor::from_vec(mask, (b, longest), &self.device)?;
        let types = input.zeros_like()?;
        let hidden = self.model.forward(&input, &types, Some(&mask))?;
        let m = mask.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let mean = summed.broadcast_div(&m.sum(1)?)?;
        let mean = mean.broadcast_div(&mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)?;
        let sentences = match &self.pooling {
            Some(pooling) => pooling.forward(&hidden, &mask, &mean)?,
            None => mean,
        };
        Ok(Encoded { sentences, tokens: hidden, mask, truncated })
    }
}

impl TextEncoder for SentenceEncoder {
    fn embedding_dim(&self) -> usize {
        self.pooling.as_ref().map_or(self.dim, |p| p.shape().output)
    }

    fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    fn encode(&self, texts: &[&str]) -> condor_core::Result<Conditioning> {
        let e = self.encode_batch(texts)?;
        Ok(Conditioning {
            embedding: e.sentences,
            tokens: Some(TokenEmbeddings { embeddings: e.tokens, mask: e.mask }),
            layout: None,
        })
    }
}
