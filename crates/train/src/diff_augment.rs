//! Differentiable augmentation (DiffAugment, Zhao et al. 2020): every image the discriminator sees,
//! real or generated, in its own step and in the generator's, is randomly translated and has a square cut
//! out, so a discriminator trained on a few thousand images cannot memorise them. Because the same
//! kind of transform is applied to generated images on the generator's side too, and it is
//! differentiable, the generator is not taught to draw the augmentations.
//!
//! Only geometric and occluding transforms are offered: DiffAugment's colour transforms (brightness,
//! saturation, contrast) would change what a text-to-image model is asked to draw ("a white bird").

use candle_core::{Device, Tensor};
use condor_core::Rng;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Settings of the differentiable augmentation, as fractions of the image side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffAugmentConfig {
    /// Largest shift, in each direction and axis, as a fraction of the side (DiffAugment: 1/8). The
    /// uncovered border is filled with zeros, the middle of the data range.
    pub translation: f64,
    /// Side of the zeroed square as a fraction of the image side (DiffAugment: 1/2); 0 for none. Its
    /// centre is anywhere in the image, so it may be clipped at the border.
    pub cutout: f64,
}

impl Default for DiffAugmentConfig {
    fn default() -> Self {
        Self { translation: 0.125, cutout: 0.5 }
    }
}

impl DiffAugmentConfig {
    /// Checks that both fractions lie in [0, 1].
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("translation", self.translation), ("cutout", self.cutout)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`training.diff_augment.{name}` must lie in [0, 1], got {v}"));
            }
        }
        Ok(())
    }

    /// Draws one transform per row for `rows` images of `height` x `width` pixels.
    pub fn draw(
        &self,
        rows: usize,
        height: usize,
        width: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> candle_core::Result<DiffAugmentPlan> {
        let (pad_y, pad_x) = (pixels(self.translation, height), pixels(self.translation, width));
        let (cut_h, cut_w) = (pixels(self.cutout, height), pixels(self.cutout, width));
        let padded_w = width + 2 * pad_x;
        let mut index = Vec::with_capacity(rows * height * width);
        let mut mask = Vec::with_capacity(rows * height * width);
        for _ in 0..rows {
            // Output pixel (y, x) reads input pixel (y - dy, x - dx): the image moves by (dy, dx).
            let dy = rng.random_range(-(pad_y as i64)..=pad_y as i64);
            let dx = rng.random_range(-(pad_x as i64)..=pad_x as i64);
            let (cy, cx) = (rng.random_range(0..height), rng.random_range(0..width));
            // The square's top-left corner; above or left of the image when the centre is near the border.
            let (top, left) = (cy as i64 - (cut_h / 2) as i64, cx as i64 - (cut_w / 2) as i64);
            for y in 0..height {
                for x in 0..width {
                    let (py, px) = ((y as i64 + pad_y as i64 - dy) as usize, (x as i64 + pad_x as i64 - dx) as usize);
                    index.push((py * padded_w + px) as u32);
                    let (yi, xi) = (y as i64, x as i64);
                    let cut = (top..top + cut_h as i64).contains(&yi) && (left..left + cut_w as i64).contains(&xi);
                    mask.push(if cut { 0f32 } else { 1.0 });
                }
            }
        }
        Ok(DiffAugmentPlan {
            index: Tensor::from_vec(index, (rows, 1, height * width), device)?,
            mask: Tensor::from_vec(mask, (rows, 1, height, width), device)?,
            pad: (pad_y, pad_x),
        })
    }
}

/// A fraction of a side in whole pixels (the largest shift, or the cut-out square's side).
fn pixels(fraction: f64, side: usize) -> usize {
    (fraction * side as f64).round() as usize
}

/// One drawn transform per row: where each output pixel reads from in the zero-padded image, and
/// which output pixels are cut out.
#[derive(Clone, Debug)]
pub struct DiffAugmentPlan {
    /// `(rows, 1, H * W)` flat indices into the padded image.
    index: Tensor,
    /// `(rows, 1, H, W)`: 0 where cut out, 1 elsewhere.
    mask: Tensor,
    /// Zero padding added above and below, left and right.
    pad: (usize, usize),
}

impl DiffAugmentPlan {
    /// The plan restricted to some rows, by `select` applied to its per-row tensors (for a rank's
    /// shard of a batch drawn for the global batch).
    pub fn select_rows(&self, select: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> candle_core::Result<Self> {
        Ok(Self { index: select(&self.index)?, mask: select(&self.mask)?, pad: self.pad })
    }

    /// Applies the plan to images `x` `(rows, C, H, W)`; differentiable in `x`.
    pub fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (rows, _, hw) = self.index.dims3()?;
        if rows != b || hw != h * w {
            candle_core::bail!("augmentation drawn for {rows} images of {hw} pixels, applied to {b} of {h}x{w}");
        }
        let padded = x.pad_with_zeros(2, self.pad.0, self.pad.0)?.pad_with_zeros(3, self.pad.1, self.pad.1)?;
        let index = self.index.broadcast_as((b, c, hw))?.contiguous()?;
        let moved = padded.flatten_from(2)?.gather(&index, 2)?.reshape((b, c, h, w))?;
        moved.broadcast_mul(&self.mask.to_dtype(x.dtype())?)
    }
}

/// Applies `config`'s augmentation, drawn from `rng`, to `x`, or returns `x` unchanged when there is
/// none; nothing is drawn then, so runs without augmentation keep their random streams.
pub fn augment(config: Option<&DiffAugmentConfig>, x: &Tensor, rng: &mut Rng) -> candle_core::Result<Tensor> {
    match config {
        Some(c) => {
            let (b, _, h, w) = x.dims4()?;
            c.draw(b, h, w, rng, x.device())?.apply(x)
        }
        None => Ok(x.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::Init;
    use condor_core::rng::derived_rng;
    use condor_core::{gradcheck::check_gradients, Params};

    /// Values of `t` `(B, C, H, W)` as a lookup by (image, channel, row, column).
    fn grid(t: &Tensor) -> impl Fn(usize, usize, usize, usize) -> f64 {
        let (_, c, h, w) = t.dims4().unwrap();
        let v: Vec<f64> = t.flatten_all().unwrap().to_vec1().unwrap();
        move |i, ch, y, x| v[((i * c + ch) * h + y) * w + x]
    }

    fn ramp(b: usize, c: usize, h: usize, w: usize) -> Tensor {
        let n = b * c * h * w;
        Tensor::arange(1f64, n as f64 + 1.0, &Device::Cpu).unwrap().reshape((b, c, h, w)).unwrap()
    }

    /// `b` ramps of `c` channels of 8x8, the plan drawn for them from `seed`, and its output.
    fn augmented(config: DiffAugmentConfig, b: usize, c: usize, seed: u64) -> (Tensor, Tensor, DiffAugmentPlan) {
        let x = ramp(b, c, 8, 8);
        let plan = config.draw(b, 8, 8, &mut derived_rng(seed, &[]), &Device::Cpu).unwrap();
        let y = plan.apply(&x).unwrap();
        (x, y, plan)
    }

    #[test]
    fn translation_moves_every_channel_by_the_same_whole_pixels_and_fills_with_zeros() {
        let (x, y, _) = augmented(DiffAugmentConfig { translation: 0.25, cutout: 0.0 }, 6, 2, 3);
        assert_eq!(y.dims(), &[6, 2, 8, 8]);
        let (xs, ys) = (grid(&x), grid(&y));
        let mut shifts = Vec::new();
        for i in 0..6 {
            // Recover the shift from one pixel that stayed inside, then check every pixel against it.
            let shift = (-2i64..=2)
                .flat_map(|dy| (-2i64..=2).map(move |dx| (dy, dx)))
                .find(|&(dy, dx)| ys(i, 0, 4, 4) == xs(i, 0, (4 - dy) as usize, (4 - dx) as usize))
                .expect("a shift of at most 2 pixels");
            for ch in 0..2 {
                for y in 0..8i64 {
                    for x in 0..8i64 {
                        let (sy, sx) = (y - shift.0, x - shift.1);
                        let inside = (0..8).contains(&sy) && (0..8).contains(&sx);
                        let want = if inside { xs(i, ch, sy as usize, sx as usize) } else { 0.0 };
                        assert_eq!(ys(i, ch, y as usize, x as usize), want, "shift {shift:?} at ({y}, {x})");
                    }
                }
            }
            shifts.push(shift);
        }
        // Rows draw their own shifts.
        assert!(shifts.iter().any(|s| *s != shifts[0]), "{shifts:?}");
    }

    #[test]
    fn cutout_zeroes_one_square_per_image_and_leaves_the_rest() {
        let (x, y, plan) = augmented(DiffAugmentConfig { translation: 0.0, cutout: 0.5 }, 16, 3, 5);
        let (xs, ys) = (grid(&x), grid(&y));
        for i in 0..16 {
            let zeroed: Vec<(usize, usize)> =
                (0..8).flat_map(|r| (0..8).map(move |c| (r, c))).filter(|&(r, c)| ys(i, 0, r, c) == 0.0).collect();
            // A 4x4 square, clipped at the border: a rectangle of 2..=4 by 2..=4 pixels.
            let rows: Vec<usize> = zeroed.iter().map(|p| p.0).collect();
            let cols: Vec<usize> = zeroed.iter().map(|p| p.1).collect();
            let (h, w) = (
                rows.iter().max().unwrap() - rows.iter().min().unwrap() + 1,
                cols.iter().max().unwrap() - cols.iter().min().unwrap() + 1,
            );
            assert!((2..=4).contains(&h) && (2..=4).contains(&w) && zeroed.len() == h * w, "{zeroed:?}");
            for ch in 0..3 {
                for r in 0..8 {
                    for c in 0..8 {
                        let want = if zeroed.contains(&(r, c)) { 0.0 } else { xs(i, ch, r, c) };
                        assert_eq!(ys(i, ch, r, c), want);
                    }
                }
            }
        }
        let kept: f64 = plan.mask.to_dtype(DType::F64).unwrap().mean_all().unwrap().to_scalar().unwrap();
        assert!(kept > 0.75 && kept < 0.97, "kept {kept}");
    }

    #[test]
    fn gradients_flow_back_through_the_transform() {
        let params = Params::new(7);
        let x = params
            .var_builder(DType::F64, &Device::Cpu)
            .get_with_hints((3, 2, 8, 8), "x", Init::Randn { mean: 0.0, stdev: 1.0 })
            .unwrap();
        let plan = DiffAugmentConfig::default().draw(3, 8, 8, &mut derived_rng(9, &[]), &Device::Cpu).unwrap();
        let weights = ramp(3, 2, 8, 8).sin().unwrap();
        let checked = check_gradients(&params, 40, 1e-6, || {
            let y = plan.apply(&x)?;
            (y.sqr()? * &weights)?.sum_all()
        })
        .unwrap();
        assert!(checked >= 40, "{checked}");
    }

    #[test]
    fn no_augmentation_draws_nothing_and_changes_nothing() {
        let x = ramp(2, 1, 4, 4);
        let mut rng = derived_rng(1, &[]);
        let y = augment(None, &x, &mut rng).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(flat(&y), flat(&x));
        assert_eq!(rng.random::<u64>(), derived_rng(1, &[]).random::<u64>());
        let bad = DiffAugmentConfig { translation: 1.5, cutout: 0.5 };
        assert!(bad.validate().unwrap_err().contains("translation"));
    }
}
