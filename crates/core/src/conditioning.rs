//! What a conditional model is conditioned on.

use candle_core::{Device, Tensor};

use crate::layout::Layout;
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
    /// Where each sample's object goes (a box, part locations), when the source provides it.
    pub layout: Option<Layout>,
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
        Ok(Self { embedding, tokens: None, layout: None })
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
        Ok(Self { embedding: self.embedding.to_dtype(dtype)?, tokens, layout: self.layout.clone() })
    }

    /// Each row repeated `n` times in place (rows `0, 0, .., 1, 1, ..`), with its tokens and layout.
    pub fn repeat_each(&self, n: usize) -> Result<Self> {
        let rep = |t: &Tensor| repeat_rows(t, n);
        let tokens = match &self.tokens {
            Some(t) => Some(TokenEmbeddings { embeddings: rep(&t.embeddings)?, mask: rep(&t.mask)? }),
            None => None,
        };
        let layout = self.layout.as_ref().map(|l| l.repeat_each(n)).transpose()?;
        Ok(Self { embedding: rep(&self.embedding)?, tokens, layout })
    }

    /// The same conditioning with `layout`.
    pub fn with_layout(self, layout: Option<Layout>) -> Self {
        Self { layout, ..self }
    }

    /// The same conditioning on another device.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let tokens = match &self.tokens {
            Some(t) => {
                Some(TokenEmbeddings { embeddings: t.embeddings.to_device(device)?, mask: t.mask.to_device(device)? })
            }
            None => None,
        };
        let layout = self.layout.as_ref().map(|l| l.map(|t| t.to_device(device))).transpose()?;
        Ok(Self { embedding: self.embedding.to_device(device)?, tokens, layout })
    }
}

/// Each row of `t` (along its first dimension) repeated `n` times in place: rows `0, 0, .., 1, 1, ..`.
pub fn repeat_rows(t: &Tensor, n: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims();
    let mut wide = vec![dims[0], n];
    wide.extend_from_slice(&dims[1..]);
    let mut flat = vec![dims[0] * n];
    flat.extend_from_slice(&dims[1..]);
    t.unsqueeze(1)?.broadcast_as(wide)?.reshape(flat)
}

/// Reed et al.'s spatial concatenation: tiles a `(B, P)` text code over the `H x W` positions of
/// `(B, C, H, W)` features and joins it to them, giving `(B, C + P, H, W)`.
pub fn join_tiled(features: &Tensor, code: &Tensor) -> candle_core::Result<Tensor> {
    let (b, _, h, w) = features.dims4()?;
    let p = code.dim(1)?;
    let tiled = code.reshape((b, p, 1, 1))?.broadcast_as((b, p, h, w))?;
    Tensor::cat(&[features, &tiled], 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tiled_repeats_each_samples_code_at_every_position() {
        let features = Tensor::arange(0f32, 16., &Device::Cpu).unwrap().reshape((2, 2, 2, 2)).unwrap();
        let code = Tensor::new(&[[100f32], [200.]], &Device::Cpu).unwrap();
        let joined = join_tiled(&features, &code).unwrap();
        assert_eq!(joined.dims(), &[2, 3, 2, 2]);
        let values = joined.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let expected: Vec<f32> =
            (0..8).map(|i| i as f32).chain([100.; 4]).chain((8..16).map(|i| i as f32)).chain([200.; 4]).collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn repeat_each_repeats_rows_in_place_with_their_layout() {
        let dev = Device::Cpu;
        let layout = crate::layout::Layout::from_boxes(
            Tensor::new(&[[0f32, 0., 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]], &dev).unwrap(),
        )
        .unwrap();
        let c = Conditioning::from_embedding(Tensor::new(&[[1f32, 2.], [3., 4.]], &dev).unwrap())
            .unwrap()
            .with_layout(Some(layout));
        let r = c.repeat_each(3).unwrap();
        assert_eq!(
            r.embedding.to_vec2::<f32>().unwrap(),
            vec![vec![1., 2.]; 3].into_iter().chain(vec![vec![3., 4.]; 3]).collect::<Vec<_>>()
        );
        let boxes = r.layout.unwrap().box_rows().unwrap();
        assert_eq!(boxes[2], [0., 0., 0.5, 0.5]);
        assert_eq!(boxes[3], [0.5, 0.5, 0.5, 0.5]);
    }
}
