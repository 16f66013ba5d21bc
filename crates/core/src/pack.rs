//! PacGAN's packing (Lin et al. 2018, "PacGAN: The power of two samples in generative adversarial
//! networks"): the discriminator scores `m` samples at once, concatenated along their first feature
//! dimension (the channels of images, the coordinates of points), so a generator that drops modes
//! shows it in every pack and is penalised for it.
//!
//! Any discriminator plugin packs from the config, in any recipe: `[discriminator] pack = 2` builds
//! the plugin for samples `m` times as wide (the build context multiplies the first dimension) and
//! wraps it in [`Packed`], which keeps the contract of `(B,)` scores for `B` samples: each pack's
//! score is repeated for its `m` samples, so a loss averaged over the batch is PacGAN's loss averaged
//! over the packs, and labels, penalties and logs work unchanged. The batch must divide by `m`; packs
//! are consecutive samples of the batch (they are drawn independently, so any grouping serves).

use candle_core::Tensor;

use crate::model::ConditioningKind;
use crate::{Conditioning, Discriminator, Error, Result};

/// A discriminator that scores packs of `pack` consecutive samples (see the module docs).
pub struct Packed {
    inner: Box<dyn Discriminator>,
    pack: usize,
}

impl Packed {
    /// Wraps `inner`, built for packed samples, to score packs of `pack`. Packing takes an
    /// unconditional discriminator: a pack of samples has no single condition to read.
    pub fn new(inner: Box<dyn Discriminator>, pack: usize) -> Result<Self> {
        if pack < 2 {
            return Err(Error::InvalidInput(format!("packing needs at least 2 samples a pack, got {pack}")));
        }
        if inner.conditioning() != ConditioningKind::None {
            return Err(Error::InvalidInput(
                "packing (`pack`) takes an unconditional discriminator: a pack of samples has no one condition; \
                 set the discriminator's `cond_dim = 0`"
                    .into(),
            ));
        }
        Ok(Self { inner, pack })
    }

    /// Samples a pack holds.
    pub fn pack(&self) -> usize {
        self.pack
    }
}

/// The shape of one packed sample: `shape` with its first dimension `pack` times as large.
pub fn packed_shape(shape: &[usize], pack: usize) -> Vec<usize> {
    let mut packed = shape.to_vec();
    if let Some(first) = packed.first_mut() {
        *first *= pack;
    }
    packed
}

impl Discriminator for Packed {
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::None
    }

    fn sample_shape(&self) -> Option<Vec<usize>> {
        let mut shape = self.inner.sample_shape()?;
        if let Some(first) = shape.first_mut() {
            *first /= self.pack;
        }
        Some(shape)
    }

    fn forward(&self, x: &Tensor, _cond: Option<&Conditioning>, train: bool) -> Result<Tensor> {
        let dims = x.dims();
        let (Some(&b), true) = (dims.first(), dims.len() >= 2) else {
            return Err(Error::InvalidInput(format!("packed discriminator: samples of shape {dims:?}, no batch")));
        };
        if b % self.pack != 0 {
            return Err(Error::InvalidInput(format!(
                "packed discriminator: a batch of {b} samples does not divide into packs of {}",
                self.pack
            )));
        }
        // Consecutive samples are contiguous, so packing them along the first feature is a reshape.
        let mut shape = packed_shape(&dims[1..], self.pack);
        shape.insert(0, b / self.pack);
        let scores = self.inner.forward(&x.contiguous()?.reshape(shape)?, None, train)?;
        let per_pack = scores.reshape((b / self.pack, 1))?;
        Ok(per_pack.broadcast_as((b / self.pack, self.pack))?.contiguous()?.flatten_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module};

    /// An unconditional "discriminator" that sums each sample's features: easy to check by hand.
    struct SumScore(Option<Vec<usize>>);

    impl Discriminator for SumScore {
        fn conditioning(&self) -> ConditioningKind {
            ConditioningKind::None
        }
        fn sample_shape(&self) -> Option<Vec<usize>> {
            self.0.clone()
        }
        fn forward(&self, x: &Tensor, _: Option<&Conditioning>, _: bool) -> Result<Tensor> {
            Ok(x.flatten_from(1)?.sum(1)?)
        }
    }

    #[test]
    fn packs_are_consecutive_samples_and_their_score_is_repeated() {
        let x = Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap().reshape((6, 2, 2)).unwrap();
        let packed = Packed::new(Box::new(SumScore(Some(vec![4, 2]))), 2).unwrap();
        assert_eq!(packed.sample_shape(), Some(vec![2, 2]));
        let scores: Vec<f32> = packed.forward(&x, None, true).unwrap().to_vec1().unwrap();
        // Sample i holds 4i..4i+3; a pack of samples 2j and 2j+1 sums 0..8 shifted by 8j.
        let pack_sums = [28.0, 92.0, 156.0];
        let expected: Vec<f32> = pack_sums.iter().flat_map(|&s| [s, s]).collect();
        assert_eq!(scores, expected);
    }

    #[test]
    fn gradients_reach_every_sample_of_a_pack() {
        let x = candle_core::Var::from_tensor(&Tensor::ones((4, 3), candle_core::DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        let w = Tensor::new(&[[1f32], [2.], [3.], [4.], [5.], [6.]], &Device::Cpu).unwrap();
        struct Linear(candle_nn::Linear);
        impl Discriminator for Linear {
            fn conditioning(&self) -> ConditioningKind {
                ConditioningKind::None
            }
            fn forward(&self, x: &Tensor, _: Option<&Conditioning>, _: bool) -> Result<Tensor> {
                Ok(self.0.forward(x)?.flatten_all()?)
            }
        }
        let d = Linear(candle_nn::Linear::new(w.t().unwrap(), None));
        let packed = Packed::new(Box::new(d), 2).unwrap();
        // The mean of the repeated scores is the mean over packs: each pack's weights 1..6 split
        // between its two samples, every score counted twice over four samples.
        let loss = packed.forward(&x, None, true).unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let g: Vec<Vec<f32>> = grads.get(&x).unwrap().to_vec2().unwrap();
        assert_eq!(g[0], vec![0.5, 1.0, 1.5]);
        assert_eq!(g[1], vec![2.0, 2.5, 3.0]);
        assert_eq!(g[2], g[0]);
    }

    #[test]
    fn batches_that_do_not_divide_and_conditional_discriminators_are_errors() {
        let packed = Packed::new(Box::new(SumScore(None)), 3).unwrap();
        let x = Tensor::zeros((4, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let message = packed.forward(&x, None, true).unwrap_err().to_string();
        assert!(message.contains("4 samples") && message.contains("packs of 3"), "{message}");
        assert!(Packed::new(Box::new(SumScore(None)), 1).is_err());
        struct Conditional;
        impl Discriminator for Conditional {
            fn conditioning(&self) -> ConditioningKind {
                ConditioningKind::Vector { dim: 4 }
            }
            fn forward(&self, x: &Tensor, _: Option<&Conditioning>, _: bool) -> Result<Tensor> {
                Ok(x.clone())
            }
        }
        let message = Packed::new(Box::new(Conditional), 2).err().unwrap().to_string();
        assert!(message.contains("unconditional"), "{message}");
    }
}
