//! The traits a model plugin implements.

use candle_core::Tensor;

use crate::{Conditioning, Result, StyleControl};

/// How a model is conditioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditioningKind {
    /// The model ignores conditioning.
    None,
    /// The model reads a `(B, dim)` vector per sample.
    Vector {
        /// Size of the conditioning vector.
        dim: usize,
    },
    /// The model reads the vector and also attends over `(B, T, dim)` token embeddings.
    Tokens {
        /// Size of each embedding.
        dim: usize,
    },
}

impl ConditioningKind {
    /// `Vector { dim }`, or `None` for `dim = 0` (the plugins' `cond_dim = 0` convention).
    pub fn vector_or_none(dim: usize) -> Self {
        if dim == 0 {
            Self::None
        } else {
            Self::Vector { dim }
        }
    }

    /// The conditioning to hand a model of this kind: none for an unconditional model.
    pub fn select(self, cond: Option<&Conditioning>) -> Option<&Conditioning> {
        if self == Self::None {
            None
        } else {
            cond
        }
    }

    /// Size of the conditioning vector, 0 when unconditional.
    pub fn dim(&self) -> usize {
        match self {
            Self::None => 0,
            Self::Vector { dim } | Self::Tokens { dim } => *dim,
        }
    }
}

/// A generator: maps latent codes `z: (B, latent_dim)` and optional conditioning to samples
/// `(B, ..sample_shape)`. Image generators return `(B, C, H, W)` in `[-1, 1]`.
///
/// Variables are created through the `VarBuilder` the plugin's constructor receives, so the pipeline
/// owns, trains and saves them; the generator only computes.
pub trait Generator: Send + Sync {
    /// Size of the latent code.
    fn latent_dim(&self) -> usize;
    /// Shape of one sample, without the batch dimension (`[2]` for points, `[C, H, W]` for images).
    fn sample_shape(&self) -> Vec<usize>;
    /// What conditioning the generator reads.
    fn conditioning(&self) -> ConditioningKind;
    /// Generates a batch. `train` selects training behaviour (batch statistics, dropout).
    fn forward(&self, z: &Tensor, cond: Option<&Conditioning>, train: bool) -> Result<Tensor>;
    /// An extra loss term the trainer adds to the generator's adversarial loss, already weighted (the
    /// KL term of conditioning augmentation, say). `None`, the default, adds nothing.
    fn regularization(&self, _cond: Option<&Conditioning>) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// The style space of a style-based generator, for truncation and style mixing. `None`, the
    /// default, for generators without one.
    fn styles(&self) -> Option<&dyn StyleControl> {
        None
    }
    /// The entries of the latent code that hold conditioning augmentation's standard normal draw
    /// (`c = mu + sigma * eps`), in generators that take it from the latent: truncation scales them
    /// in generators without a style space. `None`, the default, when there are none.
    fn augmentation_draw(&self) -> Option<std::ops::Range<usize>> {
        None
    }
    /// Which parts of the conditioning's layout (a box, keypoints) the generator reads; `None`, the
    /// default, for a generator that draws wherever it likes.
    fn layout(&self) -> crate::layout::LayoutKind {
        crate::layout::LayoutKind::None
    }
}

/// A discriminator (or critic): maps samples `(B, ..sample_shape)` and optional conditioning to raw
/// logits `(B,)`. Losses apply their own link function (sigmoid for BCE, none for Wasserstein).
pub trait Discriminator: Send + Sync {
    /// What conditioning the discriminator reads.
    fn conditioning(&self) -> ConditioningKind;
    /// Shape of one sample it scores, without the batch dimension; the trainer checks it against the
    /// data and the generator before the first step. `None`, the default, for a discriminator that
    /// takes any shape.
    fn sample_shape(&self) -> Option<Vec<usize>> {
        None
    }
    /// Which parts of the conditioning's layout (a box, keypoints) the discriminator reads; `None`, the
    /// default, for one that judges the image wherever its object is.
    fn layout(&self) -> crate::layout::LayoutKind {
        crate::layout::LayoutKind::None
    }
    /// Scores a batch. `train` selects training behaviour (batch statistics, dropout).
    fn forward(&self, x: &Tensor, cond: Option<&Conditioning>, train: bool) -> Result<Tensor>;
    /// Scores one batch under each of several conditionings (GAN-CLS scores real images with their own
    /// and with mismatched captions): one logit vector per conditioning, as `forward` would give. The
    /// default calls `forward` once for each; a discriminator that reads the conditioning only after
    /// its image features overrides it to compute those once (and then updates batch-norm running
    /// statistics once for the batch).
    fn forward_each(&self, x: &Tensor, conds: &[Option<&Conditioning>], train: bool) -> Result<Vec<Tensor>> {
        conds.iter().map(|c| self.forward(x, *c, train)).collect()
    }
    /// Scores a batch as `forward` does, with the hidden feature maps the score was read from (each
    /// `(B, ...)`, first layer to last) for feature-matching losses. The default gives `None` for
    /// them: a discriminator that exposes no features.
    fn forward_with_features(
        &self,
        x: &Tensor,
        cond: Option<&Conditioning>,
        train: bool,
    ) -> Result<(Tensor, Option<Vec<Tensor>>)> {
        Ok((self.forward(x, cond, train)?, None))
    }
}

/// A sentence encoder: turns text into conditioning (sentence embeddings and, where the model has them,
/// token embeddings with a mask).
pub trait TextEncoder: Send + Sync {
    /// Size of the sentence and token embeddings.
    fn embedding_dim(&self) -> usize;
    /// Longest input in tokens; longer texts are truncated.
    fn max_tokens(&self) -> usize;
    /// Encodes a batch of texts. Empty or whitespace-only texts are an error.
    fn encode(&self, texts: &[&str]) -> Result<Conditioning>;
}

/// Checks that `z` is a `(batch, latent_dim)` latent batch; the error names `model`.
pub fn check_latent(model: &str, z: &Tensor, latent_dim: usize) -> Result<()> {
    if z.rank() != 2 || z.dims()[1] != latent_dim {
        return Err(crate::Error::InvalidInput(format!(
            "{model} expects z of shape (batch, {latent_dim}), got {:?}",
            z.dims()
        )));
    }
    Ok(())
}

/// Checks that `x` is a batch of samples of shape `shape` (`(batch, ..shape)`); the error names `model`.
pub fn check_samples(model: &str, x: &Tensor, shape: &[usize]) -> Result<()> {
    if x.rank() != shape.len() + 1 || x.dims()[1..] != *shape {
        let want: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        return Err(crate::Error::InvalidInput(format!(
            "{model} expects samples of shape (batch, {}), got {:?}",
            want.join(", "),
            x.dims()
        )));
    }
    Ok(())
}

/// Checks that a conditioning batch fits a model that expects `kind` and a batch of `batch` samples.
pub fn check_conditioning(kind: ConditioningKind, cond: Option<&Conditioning>, batch: usize) -> Result<()> {
    use crate::Error::InvalidInput;
    match (kind, cond) {
        (ConditioningKind::None, _) => Ok(()),
        (_, None) => Err(InvalidInput("this model is conditional but no conditioning was given".into())),
        (kind, Some(c)) => {
            if c.dim() != kind.dim() {
                return Err(InvalidInput(format!(
                    "conditioning has dimension {} but the model expects {}",
                    c.dim(),
                    kind.dim()
                )));
            }
            if c.batch_size() != batch {
                return Err(InvalidInput(format!("conditioning has {} rows for a batch of {batch}", c.batch_size())));
            }
            if matches!(kind, ConditioningKind::Tokens { .. }) && c.tokens.is_none() {
                return Err(InvalidInput("this model attends over tokens but none were given".into()));
            }
            Ok(())
        }
    }
}
