//! A CNN that reads where the object of an image is: its box `(x, y, w, h)` and five keypoints, as
//! fractions of the image. Trained on rendered synthetic birds, whose layouts are exact, it measures
//! whether a what-and-where generator drew its bird where it was asked.
//!
//! The judges' trunk ([`ConvTrunk`]) and a linear layer to the 14 numbers through a sigmoid, trained
//! with an L1 loss.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use condor_core::Params;

use crate::attributes::{load_with_shape, save_with_shape, train_epochs, AttributeTraining, ConvTrunk, HIDDEN};
use crate::error::{Error, Result};

/// Numbers a layout holds: the box's four and two for each of five keypoints.
pub const LAYOUT_VALUES: usize = 14;

/// The layout reader.
pub struct Locator {
    params: Params,
    side: usize,
    trunk: ConvTrunk,
    out: Linear,
}

impl Locator {
    /// A locator of `(B, 3, side, side)` images (side a multiple of 8), seeded initial weights.
    pub fn new(side: usize, seed: u64, device: &Device) -> Result<Self> {
        if side == 0 || !side.is_multiple_of(8) {
            return Err(Error::Input(format!("a locator needs a side divisible by 8, got {side}")));
        }
        let params = Params::new(seed);
        let vb = params.var_builder(DType::F32, device);
        let trunk = ConvTrunk::new(side, &vb)?;
        let out = candle_nn::linear(HIDDEN, LAYOUT_VALUES, vb.pp("out"))?;
        Ok(Self { params, side, trunk, out })
    }

    /// Side of the images it reads.
    pub fn side(&self) -> usize {
        self.side
    }

    /// `(B, 14)` layouts of images in [-1, 1]: box `(x, y, w, h)`, then `(x, y)` of each keypoint.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match x.dims() {
            [_, 3, h, w] if *h == self.side && *w == self.side => {}
            d => {
                return Err(Error::Input(format!(
                    "the locator reads (B, 3, {s}, {s}) images, got {d:?}",
                    s = self.side
                )))
            }
        }
        Ok(candle_nn::ops::sigmoid(&self.out.forward(&self.trunk.features(x)?)?)?)
    }

    /// The layouts of many images, 256 at a time.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<[f32; LAYOUT_VALUES]>> {
        let n = x.dim(0)?;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(256) {
            let rows = self.forward(&x.narrow(0, start, 256.min(n - start))?)?.to_vec2::<f32>()?;
            out.extend(rows.into_iter().map(|r| std::array::from_fn(|i| r[i])));
        }
        Ok(out)
    }

    /// Trains a locator on `images` `(N, 3, S, S)` in [-1, 1] and their `layouts`. Returns it and
    /// each epoch's mean L1 error.
    pub fn train(
        images: &Tensor,
        layouts: &[[f32; LAYOUT_VALUES]],
        config: &AttributeTraining,
    ) -> Result<(Self, Vec<f32>)> {
        let (n, _, side, _) = images.dims4()?;
        if n == 0 || n != layouts.len() {
            return Err(Error::Input(format!("{n} images need as many layouts, got {}", layouts.len())));
        }
        let model = Self::new(side, config.seed, images.device())?;
        let targets = Tensor::from_vec(layouts.concat(), (n, LAYOUT_VALUES), images.device())?;
        let losses = train_epochs(&model.params, n, config, images.device(), "locator", |idx| {
            let predicted = model.forward(&images.index_select(idx, 0)?)?;
            Ok((predicted - targets.index_select(idx, 0)?)?.abs()?.mean_all()?)
        })?;
        Ok((model, losses))
    }

    /// Saves the weights and the side (safetensors, atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_with_shape(&self.params, &[self.side as u32], path)
    }

    /// Loads a locator saved by [`Self::save`] onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (map, shape) = load_with_shape(path, "locator", device)?;
        let bad = |why: String| Error::BadFile { path: path.to_path_buf(), why };
        let &[side] = shape.as_slice() else {
            return Err(bad(format!("a locator's shape is its side, got {shape:?}")));
        };
        let model = Self::new(side as usize, 0, device)?;
        model.params.load(&map).map_err(|e| bad(e.to_string()))?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8x8 images with one bright square whose corner and side vary; the layout is the square's box
    /// and its centre for every keypoint.
    fn squares(n: usize) -> (Tensor, Vec<[f32; LAYOUT_VALUES]>) {
        let s = 8;
        let mut v = vec![-1f32; n * 3 * s * s];
        let mut layouts = Vec::new();
        for i in 0..n {
            let (x0, y0, side) = (i % 4, (i / 4) % 4, 2 + (i / 16) % 3);
            for c in 0..3 {
                for y in y0..(y0 + side).min(s) {
                    for x in x0..(x0 + side).min(s) {
                        v[((i * 3 + c) * s + y) * s + x] = 1.0;
                    }
                }
            }
            let f = |p: usize| p as f32 / s as f32;
            let (w, h) = (f((x0 + side).min(s) - x0), f((y0 + side).min(s) - y0));
            let mut l = [0f32; LAYOUT_VALUES];
            l[..4].copy_from_slice(&[f(x0), f(y0), w, h]);
            for k in 0..5 {
                l[4 + 2 * k] = f(x0) + w / 2.0;
                l[5 + 2 * k] = f(y0) + h / 2.0;
            }
            layouts.push(l);
        }
        (Tensor::from_vec(v, (n, 3, s, s), &Device::Cpu).unwrap(), layouts)
    }

    #[test]
    fn learns_where_the_square_is_and_round_trips() {
        let (x, layouts) = squares(48);
        let config = AttributeTraining { epochs: 30, batch_size: 16, lr: 3e-3, seed: 2 };
        let (model, losses) = Locator::train(&x, &layouts, &config).unwrap();
        assert!(losses.last().unwrap() < &(losses[0] / 4.0), "{losses:?}");
        let predicted = model.predict(&x).unwrap();
        let error: f32 =
            predicted.iter().zip(&layouts).map(|(p, l)| (p[0] - l[0]).abs() + (p[2] - l[2]).abs()).sum::<f32>()
                / (2 * layouts.len()) as f32;
        assert!(error < 0.04, "mean error {error} of the box's x and width");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locator.safetensors");
        model.save(&path).unwrap();
        assert_eq!(Locator::load(&path, &Device::Cpu).unwrap().predict(&x).unwrap(), predicted);
        assert!(model.forward(&Tensor::zeros((1, 3, 16, 16), DType::F32, &Device::Cpu).unwrap()).is_err());
    }
}
