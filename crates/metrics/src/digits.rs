//! A digit classifier that judges generated digits: a small CNN trained on real ones.
//!
//! Two stages of a 3x3 convolution, ReLU and 2x2 average pooling (28 -> 14 -> 7; 32 then 64
//! channels), a hidden layer of 128 and ten logits. Trained with Adam on random shifts of the training digits. It must reach a
//! stated accuracy on held-out real digits before its verdicts on generated ones mean anything.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Optimizer};
use condor_core::{derived_rng, Params};
use rand::seq::SliceRandom;
use rand::Rng as _;

/// Side of the digits the classifier reads.
pub const SIDE: usize = 28;

/// How the classifier is trained.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgeTraining {
    /// Passes over the training digits.
    pub epochs: usize,
    /// Digits per step.
    pub batch_size: usize,
    /// Adam's learning rate (halved for the last third of the epochs).
    pub lr: f64,
    /// Random shifts of up to this many pixels, each way.
    pub max_shift: usize,
    /// Seed of the initial weights, the order and the shifts.
    pub seed: u64,
}

impl Default for JudgeTraining {
    fn default() -> Self {
        Self { epochs: 8, batch_size: 64, lr: 1e-3, max_shift: 2, seed: 0 }
    }
}

/// The CNN digit classifier.
pub struct DigitClassifier {
    params: Params,
    conv: [Conv2d; 2],
    hidden: Linear,
    out: Linear,
}

impl DigitClassifier {
    /// A classifier with seeded initial weights, on `device`.
    pub fn new(seed: u64, device: &Device) -> candle_core::Result<Self> {
        let params = Params::new(seed);
        let vb = params.var_builder(DType::F32, device);
        let pad = Conv2dConfig { padding: 1, ..Default::default() };
        let conv =
            [candle_nn::conv2d(1, 32, 3, pad, vb.pp("conv0"))?, candle_nn::conv2d(32, 64, 3, pad, vb.pp("conv1"))?];
        let hidden = candle_nn::linear(64 * 7 * 7, 128, vb.pp("hidden"))?;
        let out = candle_nn::linear(128, 10, vb.pp("out"))?;
        Ok(Self { params, conv, hidden, out })
    }

    fn check(x: &Tensor) -> candle_core::Result<()> {
        match x.dims() {
            [_, 1, SIDE, SIDE] => Ok(()),
            d => Err(candle_core::Error::Msg(format!("the digit classifier reads (B, 1, 28, 28) images, got {d:?}"))),
        }
    }

    /// Logits `(B, 10)` for images `(B, 1, 28, 28)` in [-1, 1].
    pub fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.out.forward(&self.features(x)?)
    }

    /// The hidden layer's activations `(B, 128)` for images `(B, 1, 28, 28)` in [-1, 1]: the features
    /// a Fréchet distance between sets of digits compares.
    pub fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Self::check(x)?;
        let mut h = x.clone();
        for conv in &self.conv {
            h = conv.forward(&h)?.relu()?.avg_pool2d(2)?;
        }
        self.hidden.forward(&h.flatten_from(1)?)?.relu()
    }

    /// The features of `x` in batches of 256, as rows for [`crate::fid::FeatureStats`].
    pub fn feature_rows(&self, x: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
        let n = x.dim(0)?;
        let mut rows = Vec::with_capacity(n);
        for start in (0..n).step_by(256) {
            rows.extend(self.features(&x.narrow(0, start, 256.min(n - start))?)?.to_vec2::<f32>()?);
        }
        Ok(rows)
    }

    /// The predicted digit of each image, in batches of 256.
    pub fn predict(&self, x: &Tensor) -> candle_core::Result<Vec<usize>> {
        let n = x.dim(0)?;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(256) {
            let logits = self.logits(&x.narrow(0, start, 256.min(n - start))?)?;
            out.extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?.into_iter().map(|v| v as usize));
        }
        Ok(out)
    }

    /// Share of images whose predicted digit is their label.
    pub fn accuracy(&self, x: &Tensor, labels: &[usize]) -> candle_core::Result<f64> {
        let p = self.predict(x)?;
        Ok(p.iter().zip(labels).filter(|(a, b)| a == b).count() as f64 / labels.len().max(1) as f64)
    }

    /// Trains a classifier on `images` `(N, 1, 28, 28)` in [-1, 1] with their `labels`. Returns it and
    /// the mean loss of each epoch.
    pub fn train(images: &Tensor, labels: &[usize], config: &JudgeTraining) -> candle_core::Result<(Self, Vec<f32>)> {
        Self::check(images)?;
        let device = images.device();
        let n = images.dim(0)?;
        if n != labels.len() || n == 0 || labels.iter().any(|&l| l > 9) {
            return Err(candle_core::Error::Msg(format!("{n} images need as many labels in 0..=9")));
        }
        let model = Self::new(config.seed, device)?;
        let vars = model.params.trainable().into_iter().map(|(_, v)| v).collect();
        let adam = candle_nn::ParamsAdamW { lr: config.lr, weight_decay: 0.0, ..Default::default() };
        let mut opt = candle_nn::AdamW::new(vars, adam)?;
        // Shifted copies are windows of the digits on a border of background (-1).
        let s = config.max_shift;
        let padded = ((images + 1.0)?.pad_with_zeros(2, s, s)?.pad_with_zeros(3, s, s)? - 1.0)?;
        let labels_t = Tensor::from_vec(labels.iter().map(|&l| l as u32).collect::<Vec<_>>(), n, device)?;
        let mut losses = Vec::with_capacity(config.epochs);
        for epoch in 0..config.epochs {
            if epoch == config.epochs * 2 / 3 {
                opt.set_learning_rate(config.lr / 2.0);
            }
            let mut rng = derived_rng(config.seed, &[epoch as u64]);
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            let (mut total, mut batches) = (0.0f32, 0);
            for chunk in order.chunks(config.batch_size) {
                let mut crops = Vec::with_capacity(chunk.len());
                for &i in chunk {
                    let (dy, dx) = (rng.random_range(0..=2 * s), rng.random_range(0..=2 * s));
                    crops.push(padded.get(i)?.narrow(1, dy, SIDE)?.narrow(2, dx, SIDE)?);
                }
                let x = Tensor::stack(&crops, 0)?;
                let ids = Tensor::from_vec(chunk.iter().map(|&i| i as u32).collect::<Vec<_>>(), chunk.len(), device)?;
                let y = labels_t.index_select(&ids, 0)?;
                let loss = candle_nn::loss::cross_entropy(&model.logits(&x)?, &y)?;
                opt.backward_step(&loss)?;
                total += loss.to_scalar::<f32>()?;
                batches += 1;
            }
            losses.push(total / batches as f32);
        }
        Ok((model, losses))
    }

    /// Writes the weights as safetensors.
    pub fn save(&self, path: &std::path::Path) -> candle_core::Result<()> {
        let tensors: std::collections::HashMap<String, Tensor> =
            self.params.named().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
        let tmp = path.with_extension("tmp");
        candle_core::safetensors::save(&tensors, &tmp)?;
        std::fs::rename(&tmp, path).map_err(candle_core::Error::wrap)
    }

    /// Reads weights written by [`Self::save`].
    pub fn load(path: &std::path::Path, device: &Device) -> candle_core::Result<Self> {
        let model = Self::new(0, device)?;
        let tensors = candle_core::safetensors::load(path, device)?;
        model.params.load(&tensors).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        Ok(model)
    }
}

/// The Fréchet distance between two sets of digit images `(N, 1, 28, 28)` in [-1, 1] in the judge's
/// feature space: an MNIST FID (lower is closer), comparable between models scored with one judge
/// against one reference set of one size.
pub fn frechet_digit_distance(judge: &DigitClassifier, a: &Tensor, b: &Tensor) -> crate::Result<f64> {
    let stats = |x: &Tensor| crate::FeatureStats::from_rows(&judge.feature_rows(x)?, false);
    crate::frechet_distance(&stats(a)?, &stats(b)?)
}

/// Mean Euclidean distance between all pairs of rows of `x` `(N, ...)` (0 for fewer than two rows):
/// the spread of a set of images, to compare generated digits of one class with real ones.
pub fn mean_pairwise_distance(x: &Tensor) -> candle_core::Result<f64> {
    let n = x.dim(0)?;
    if n < 2 {
        return Ok(0.0);
    }
    let flat = x.flatten_from(1)?.to_dtype(DType::F64)?;
    let sq = flat.sqr()?.sum(1)?;
    let gram = flat.matmul(&flat.t()?)?;
    let d2 = (sq.unsqueeze(1)?.broadcast_add(&sq.unsqueeze(0)?)? - (gram * 2.0)?)?.relu()?;
    let total: f64 = d2.sqrt()?.sum_all()?.to_scalar()?;
    Ok(total / (n * (n - 1)) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frechet_digit_distance_is_zero_for_one_set_and_grows_with_a_shift() {
        let dev = &Device::Cpu;
        let judge = DigitClassifier::new(0, dev).unwrap();
        let mut rng = derived_rng(3, &[]);
        let a = condor_core::rng::uniform(&mut rng, -1.0, 1.0, (64, 1, SIDE, SIDE), dev).unwrap();
        let same = frechet_digit_distance(&judge, &a, &a).unwrap();
        let near = frechet_digit_distance(&judge, &a, &(&a * 0.9).unwrap()).unwrap();
        let far = frechet_digit_distance(&judge, &a, &(&a * 0.5).unwrap()).unwrap();
        assert!(same.abs() < 1e-6, "{same}");
        assert!(0.0 < near && near < far, "{near} {far}");
    }

    #[test]
    fn pairwise_distance_matches_a_direct_sum() {
        let x = Tensor::new(&[[0f32, 0.0], [3.0, 4.0], [0.0, 1.0]], &Device::Cpu).unwrap();
        // Pairs: 5, 1, sqrt(9 + 9) = 4.2426...
        let want = (5.0 + 1.0 + 18f64.sqrt()) / 3.0;
        assert!((mean_pairwise_distance(&x).unwrap() - want).abs() < 1e-9);
        assert_eq!(mean_pairwise_distance(&x.narrow(0, 0, 1).unwrap()).unwrap(), 0.0);
    }

    /// Ten made-up "digits": digit d is a bar at row 2 + 2d. Easy, but only a classifier that learns
    /// (and is not fooled by the shifts) gets them all.
    fn bars(per_class: usize) -> (Tensor, Vec<usize>) {
        let mut v = vec![-1f32; per_class * 10 * SIDE * SIDE];
        let mut labels = Vec::new();
        for i in 0..per_class * 10 {
            let d = i % 10;
            let row = 3 + 2 * d + i / 10 % 2;
            for x in 6 + i / 20 % 3..22 {
                v[i * SIDE * SIDE + row * SIDE + x] = 1.0;
            }
            labels.push(d);
        }
        (Tensor::from_vec(v, (per_class * 10, 1, SIDE, SIDE), &Device::Cpu).unwrap(), labels)
    }

    #[test]
    fn the_classifier_learns_saves_and_loads() {
        let (x, y) = bars(6);
        let config = JudgeTraining { epochs: 30, batch_size: 20, lr: 2e-3, max_shift: 0, seed: 3 };
        let (model, losses) = DigitClassifier::train(&x, &y, &config).unwrap();
        assert!(losses[0] > 2.0 && *losses.last().unwrap() < 0.1, "{losses:?}");
        assert_eq!(model.accuracy(&x, &y).unwrap(), 1.0);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("judge.safetensors");
        model.save(&path).unwrap();
        let back = DigitClassifier::load(&path, &Device::Cpu).unwrap();
        let (a, b) = (model.logits(&x).unwrap(), back.logits(&x).unwrap());
        assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
        // Same seed, same classifier.
        let (again, _) = DigitClassifier::train(&x, &y, &config).unwrap();
        assert_eq!(again.logits(&x).unwrap().to_vec2::<f32>().unwrap(), a.to_vec2::<f32>().unwrap());
        let e = model.logits(&Tensor::zeros((1, 3, 28, 28), DType::F32, &Device::Cpu).unwrap()).unwrap_err();
        assert!(e.to_string().contains("(B, 1, 28, 28)"), "{e}");
    }
}
