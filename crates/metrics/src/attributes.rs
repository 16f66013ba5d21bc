//! A multi-attribute image classifier that judges generated images: one small CNN, one softmax head
//! per attribute (a bird's body colour, its pose, its background ...).
//!
//! Three stages of a 3x3 convolution, ReLU and 2x2 average pooling (32, 64, 128 channels), a hidden
//! layer of 256 (the features used for diversity) and the heads' logits. Trained with Adam on images
//! whose attributes are known exactly, such as rendered synthetic birds.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Optimizer};
use condor_core::{derived_rng, Params};
use rand::seq::SliceRandom;

use crate::error::{Error, Result};

/// How the classifier is trained.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributeTraining {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam's learning rate (divided by 10 for the last quarter of the epochs).
    pub lr: f64,
    /// Seed of the initial weights and the order.
    pub seed: u64,
}

impl Default for AttributeTraining {
    fn default() -> Self {
        Self { epochs: 10, batch_size: 64, lr: 2e-3, seed: 0 }
    }
}

/// One CNN with a softmax head per attribute.
pub struct AttributeClassifier {
    params: Params,
    side: usize,
    heads: Vec<usize>,
    trunk: ConvTrunk,
    out: Linear,
}

/// Size of the trunk's features.
pub(crate) const HIDDEN: usize = 256;

/// The convolutional trunk the judges share: three stages of a 3x3 convolution, ReLU and 2x2 average
/// pooling (32, 64, 128 channels), then a hidden layer of [`HIDDEN`] with ReLU.
pub(crate) struct ConvTrunk {
    conv: [Conv2d; 3],
    hidden: Linear,
}

impl ConvTrunk {
    /// The trunk for `(B, 3, side, side)` images, its variables under `vb`.
    pub(crate) fn new(side: usize, vb: &candle_nn::VarBuilder) -> Result<Self> {
        let pad = Conv2dConfig { padding: 1, ..Default::default() };
        let conv = [
            candle_nn::conv2d(3, 32, 3, pad, vb.pp("conv0"))?,
            candle_nn::conv2d(32, 64, 3, pad, vb.pp("conv1"))?,
            candle_nn::conv2d(64, 128, 3, pad, vb.pp("conv2"))?,
        ];
        let hidden = candle_nn::linear(128 * (side / 8) * (side / 8), HIDDEN, vb.pp("hidden"))?;
        Ok(Self { conv, hidden })
    }

    /// `(B, HIDDEN)` features of images in [-1, 1].
    pub(crate) fn features(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.to_dtype(DType::F32)?;
        for conv in &self.conv {
            h = conv.forward(&h)?.relu()?.avg_pool2d(2)?;
        }
        Ok(self.hidden.forward(&h.flatten_from(1)?)?.relu()?)
    }
}

/// Trains the trainable variables of `params` with Adam for `config.epochs` passes over `n` examples
/// in seeded orders (the learning rate divided by 10 for the last quarter): `loss` gives the loss of
/// the examples whose indices it is handed. Returns each epoch's mean loss; `who` names the model in
/// the error a non-finite loss gives.
pub(crate) fn train_epochs(
    params: &Params,
    n: usize,
    config: &AttributeTraining,
    device: &Device,
    who: &str,
    loss: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    let vars = params.trainable().into_iter().map(|(_, v)| v).collect();
    let adam = candle_nn::ParamsAdamW { lr: config.lr, weight_decay: 0.0, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(vars, adam)?;
    let mut losses = Vec::with_capacity(config.epochs);
    for epoch in 0..config.epochs {
        if epoch == config.epochs * 3 / 4 {
            opt.set_learning_rate(config.lr / 10.0);
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut derived_rng(config.seed, &[epoch as u64]));
        let (mut total, mut batches) = (0.0f32, 0);
        for chunk in order.chunks(config.batch_size) {
            let l = loss(&Tensor::from_slice(chunk, chunk.len(), device)?)?;
            opt.backward_step(&l)?;
            total += l.to_scalar::<f32>()?;
            batches += 1;
        }
        let mean = total / batches as f32;
        if !mean.is_finite() {
            return Err(Error::Input(format!("the {who}'s loss became {mean} in epoch {epoch}")));
        }
        losses.push(mean);
    }
    Ok(losses)
}

/// Saves `params`' trainable variables and the `shape` tensor (safetensors, atomically).
pub(crate) fn save_with_shape(params: &Params, shape: &[u32], path: &Path) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut map: HashMap<String, Tensor> =
        params.trainable().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
    map.insert("shape".into(), Tensor::from_slice(shape, shape.len(), &Device::Cpu)?);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&map, &tmp)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The tensors of a file saved by [`save_with_shape`] and its shape; `what` names the model in errors.
pub(crate) fn load_with_shape(path: &Path, what: &str, device: &Device) -> Result<(HashMap<String, Tensor>, Vec<u32>)> {
    let bad = |why: String| Error::BadFile { path: path.to_path_buf(), why };
    let mut map =
        candle_core::safetensors::load(path, device).map_err(|e| bad(format!("not a readable {what} ({e})")))?;
    let shape = map.remove("shape").ok_or_else(|| bad("no `shape` tensor".into()))?.to_vec1::<u32>()?;
    Ok((map, shape))
}

impl AttributeClassifier {
    /// A classifier of `(B, 3, side, side)` images (side a multiple of 8) with `heads[i]` classes for
    /// attribute `i`, seeded initial weights, on `device`.
    pub fn new(side: usize, heads: &[usize], seed: u64, device: &Device) -> Result<Self> {
        if side == 0 || !side.is_multiple_of(8) || heads.is_empty() || heads.iter().any(|&h| h < 2) {
            return Err(Error::Input(format!(
                "an attribute classifier needs a side divisible by 8 and heads of 2+ classes, got {side}, {heads:?}"
            )));
        }
        let params = Params::new(seed);
        let vb = params.var_builder(DType::F32, device);
        let trunk = ConvTrunk::new(side, &vb)?;
        let out = candle_nn::linear(HIDDEN, heads.iter().sum(), vb.pp("out"))?;
        Ok(Self { params, side, heads: heads.to_vec(), trunk, out })
    }

    /// Side of the images it reads.
    pub fn side(&self) -> usize {
        self.side
    }

    /// Number of classes of each head.
    pub fn heads(&self) -> &[usize] {
        &self.heads
    }

    fn check(&self, x: &Tensor) -> Result<()> {
        match x.dims() {
            [_, 3, h, w] if *h == self.side && *w == self.side => Ok(()),
            d => Err(Error::Input(format!(
                "the attribute classifier reads (B, 3, {s}, {s}) images, got {d:?}",
                s = self.side
            ))),
        }
    }

    /// Hidden features `(B, 256)` of images in [-1, 1].
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.check(x)?;
        self.trunk.features(x)
    }

    /// Log-probabilities of each head: one `(B, classes)` tensor per attribute.
    pub fn log_probs(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let logits = self.out.forward(&self.features(x)?)?;
        let mut out = Vec::with_capacity(self.heads.len());
        let mut start = 0;
        for &classes in &self.heads {
            out.push(candle_nn::ops::log_softmax(&logits.narrow(1, start, classes)?, D::Minus1)?);
            start += classes;
        }
        Ok(out)
    }

    /// Log-probabilities of many images, 256 at a time: `[image][head][class]`.
    pub fn predict_log_probs(&self, x: &Tensor) -> Result<Vec<Vec<Vec<f32>>>> {
        let n = x.dim(0)?;
        let mut out: Vec<Vec<Vec<f32>>> = Vec::with_capacity(n);
        for start in (0..n).step_by(256) {
            let heads = self.log_probs(&x.narrow(0, start, 256.min(n - start))?)?;
            let heads: Vec<Vec<Vec<f32>>> =
                heads.iter().map(|h| h.to_vec2::<f32>()).collect::<candle_core::Result<_>>()?;
            for i in 0..heads[0].len() {
                out.push(heads.iter().map(|h| h[i].clone()).collect());
            }
        }
        Ok(out)
    }

    /// The most likely class of each head for each image: `[image][head]`.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<Vec<usize>>> {
        Ok(self.predict_log_probs(x)?.iter().map(|heads| heads.iter().map(|lp| argmax(lp)).collect()).collect())
    }

    /// Per-head accuracy on images with known `labels` (`[image][head]`).
    pub fn accuracy(&self, x: &Tensor, labels: &[Vec<usize>]) -> Result<Vec<f64>> {
        let predicted = self.predict(x)?;
        let mut correct = vec![0usize; self.heads.len()];
        for (p, l) in predicted.iter().zip(labels) {
            for h in 0..self.heads.len() {
                correct[h] += usize::from(p[h] == l[h]);
            }
        }
        Ok(correct.iter().map(|&c| c as f64 / labels.len().max(1) as f64).collect())
    }

    /// Trains a classifier with `heads` on `images` `(N, 3, S, S)` in [-1, 1] and their `labels`
    /// (`[image][head]`). Returns it and the mean loss (summed over heads) of each epoch.
    pub fn train(
        images: &Tensor,
        labels: &[Vec<usize>],
        heads: &[usize],
        config: &AttributeTraining,
    ) -> Result<(Self, Vec<f32>)> {
        let (n, _, side, _) = images.dims4()?;
        let model = Self::new(side, heads, config.seed, images.device())?;
        model.check(images)?;
        if n != labels.len()
            || n == 0
            || labels.iter().any(|l| l.len() != heads.len() || l.iter().zip(heads).any(|(v, h)| v >= h))
        {
            return Err(Error::Input(format!("{n} images need as many label rows of {} heads in range", heads.len())));
        }
        let device = images.device();
        let label_tensors: Vec<Tensor> = (0..heads.len())
            .map(|h| Tensor::from_vec(labels.iter().map(|l| l[h] as u32).collect::<Vec<_>>(), n, device))
            .collect::<candle_core::Result<_>>()?;
        let losses = train_epochs(&model.params, n, config, device, "attribute classifier", |idx| {
            let x = images.index_select(idx, 0)?;
            let mut loss = Tensor::zeros((), DType::F32, device)?;
            for (lp, target) in model.log_probs(&x)?.iter().zip(&label_tensors) {
                loss = (loss + candle_nn::loss::nll(lp, &target.index_select(idx, 0)?)?)?;
            }
            Ok(loss)
        })?;
        Ok((model, losses))
    }

    /// Saves the weights, the side and the heads (safetensors, atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let shape: Vec<u32> = std::iter::once(self.side as u32).chain(self.heads.iter().map(|&h| h as u32)).collect();
        save_with_shape(&self.params, &shape, path)
    }

    /// Loads a classifier saved by [`Self::save`] onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bad = |why: String| Error::BadFile { path: path.to_path_buf(), why };
        let (map, shape) = load_with_shape(path, "classifier", device)?;
        let (side, heads) = shape.split_first().ok_or_else(|| bad("empty `shape`".into()))?;
        let heads: Vec<usize> = heads.iter().map(|&h| h as usize).collect();
        let model = Self::new(*side as usize, &heads, 0, device)?;
        model.params.load(&map).map_err(|e| bad(e.to_string()))?;
        Ok(model)
    }
}

/// Index of the largest value (the first of equals).
pub fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().fold(0, |best, (i, v)| if *v > values[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Images whose two attributes are "which half is bright" and "red or blue".
    fn toy(n: usize) -> (Tensor, Vec<Vec<usize>>) {
        let s = 8;
        let mut v = vec![-1f32; n * 3 * s * s];
        let mut labels = Vec::new();
        for i in 0..n {
            let (half, colour) = (i % 2, (i / 2) % 2);
            for y in 0..s {
                for x in 0..s {
                    if (x < s / 2) == (half == 0) {
                        v[((i * 3 + if colour == 0 { 0 } else { 2 }) * s + y) * s + x] = 1.0;
                    }
                }
            }
            labels.push(vec![half, colour]);
        }
        (Tensor::from_vec(v, (n, 3, s, s), &Device::Cpu).unwrap(), labels)
    }

    #[test]
    fn learns_two_attributes_and_round_trips() {
        let (x, labels) = toy(64);
        let config = AttributeTraining { epochs: 30, batch_size: 16, lr: 3e-3, seed: 1 };
        let (model, losses) = AttributeClassifier::train(&x, &labels, &[2, 2], &config).unwrap();
        assert!(losses.last().unwrap() < &(losses[0] / 10.0), "{losses:?}");
        assert_eq!(model.accuracy(&x, &labels).unwrap(), vec![1.0, 1.0]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("judge.safetensors");
        model.save(&path).unwrap();
        let back = AttributeClassifier::load(&path, &Device::Cpu).unwrap();
        assert_eq!(back.predict_log_probs(&x).unwrap(), model.predict_log_probs(&x).unwrap());
        assert!(back.check(&Tensor::zeros((1, 3, 16, 16), DType::F32, &Device::Cpu).unwrap()).is_err());
    }
}
