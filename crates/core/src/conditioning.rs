//! What a conditional model is conditioned on.

use candle_core::{Device, Tensor};

use crate::{Error, Result};

/// Per-token embeddings and their mask, for models that attend over words.
#[derive(Clone, Debug)]
pub struct TokenEmbeddings {
    /// `(B, T, E)` hidden states of the text encoder.
    pub embeddings: Tensor,
    /// `(B, T)` mask: 1 for a real token, 0 for padding.
    pub mask: Tensor,
}

/// A batch of conditioning: one vector per sample, and optionally per-token embeddings.
///
/// For text models the vector is a sentence embedding; for toy tasks it can be any vector, such as the
/// one-hot index of a mixture mode.
#[derive(Clone, Debug)]
pub struct Conditioning {
    /// `(B, E)` conditioning vectors.
    pub embedding: Tensor,
    /// `(B, T, E)` token embeddings with their mask, when the source provides them.
    pub tokens: Option<TokenEmbeddings>,
}

impl Conditioning {
    /// Conditioning made of vectors only. Fails unless `embedding` is `(B, E)`.
    pub fn from_embedding(embedding: Tensor) -> Result<Self> {
        if embedding.rank() != 2 {
            return Err(Error::InvalidInput(format!(
                "a conditioning embedding must be (batch, dim), got shape {:?}",
                embedding.dims()
            )));
        }
        Ok(Self { embedding, tokens: None })
    }

    /// One-hot vectors of `classes` entries for the given class indices.
    pub fn one_hot(indices: &[usize], classes: usize, device: &Device) -> Result<Self> {
        let mut data = vec![0f32; indices.len() * classes];
        for (row, &class) in indices.iter().enumerate() {
            if class >= classes {
                return Err(Error::InvalidInput(format!("class {class} is out of range 0..{classes}")));
            }
            data[row * classes + class] = 1.0;
        }
        Self::from_embedding(Tensor::from_vec(data, (indices.len(), classes), device)?)
    }

    /// Number of samples in the batch.
    pub fn batch_size(&self) -> usize {
        self.embedding.dims()[0]
    }

    /// Size of each conditioning vector.
    pub fn dim(&self) -> usize {
        self.embedding.dims()[1]
    }

    /// The same conditioning with its embeddings in `dtype` (the token mask keeps its own).
    pub fn to_dtype(&self, dtype: candle_core::DType) -> Result<Self> {
        let tokens = match &self.tokens {
            Some(t) => Some(TokenEmbeddings { embeddings: t.embeddings.to_dtype(dtype)?, mask: t.mask.clone() }),
            None => None,
        };
        Ok(Self { embedding: self.embedding.to_dtype(dtype)?, tokens })
    }

    /// The same conditioning on another device.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let tokens = match &self.tokens {
            Some(t) => {
                Some(TokenEmbeddings { embeddings: t.embeddings.to_device(device)?, mask: t.mask.to_device(device)? })
            }
            None => None,
        };
        Ok(Self { embedding: self.embedding.to_device(device)?, tokens })
    }
}
