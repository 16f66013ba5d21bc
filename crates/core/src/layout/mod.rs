//! Where to draw: a bounding box and part locations per sample ("Learning What and Where to Draw",
//! Reed et al. 2016), and the spatial transforms that carry features into and out of a box.
//!
//! Coordinates are fractions of the image: a box is `(x, y, w, h)` with `(x, y)` its top-left corner,
//! and a keypoint is `(x, y, visible)` with `visible` 1 or 0.
//!
//! The transforms ([`place_in_boxes`], [`crop_boxes`]) are bilinear resampling: each output cell is a
//! fixed mix of at most four input cells, and the mix depends on the box alone. Each sample's mix is a
//! `(out^2, in^2)` matrix built on the host and applied as one batched matrix product, so the
//! transforms run on any device and their gradient with respect to the features is candle's own
//! (the boxes are inputs, not learned, so they need none).

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// The named keypoints, in the order of a layout's `(B, K, 3)` keypoints. A side view shows one wing;
/// CUB's is whichever of its left and right wings is visible (their mean when both are).
pub const KEYPOINTS: [&str; 5] = ["head", "beak", "tail", "wing", "belly"];

/// Which parts of a [`Layout`] a model reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayoutKind {
    /// None: the model draws wherever it likes.
    #[default]
    None,
    /// The box.
    Boxes,
    /// The box and the keypoints.
    BoxesAndKeypoints,
}

impl LayoutKind {
    /// Checks that `cond` carries what a model of this kind reads, for a batch of `batch`.
    pub fn check(self, model: &str, cond: Option<&crate::Conditioning>, batch: usize) -> Result<()> {
        if self == Self::None {
            return Ok(());
        }
        let Some(layout) = cond.and_then(|c| c.layout.as_ref()) else {
            return Err(Error::InvalidInput(format!(
                "{model} draws where it is told: it needs a box for each sample (txt2img --box, or training \
                 data with `layout = true`)"
            )));
        };
        if layout.batch_size() != batch {
            return Err(Error::InvalidInput(format!("{} boxes for a batch of {batch}", layout.batch_size())));
        }
        if self == Self::BoxesAndKeypoints && layout.keypoints.is_none() {
            return Err(Error::InvalidInput(format!("{model} reads keypoints too, and none were given")));
        }
        Ok(())
    }
}

/// The boxes and (optionally) keypoints of a batch.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `(B, 4)` boxes `(x, y, w, h)`, fractions of the image.
    pub boxes: Tensor,
    /// `(B, K, 3)` keypoints `(x, y, visible)`, when the data has them.
    pub keypoints: Option<Tensor>,
}

impl Layout {
    /// A layout of boxes alone; fails unless `boxes` is `(B, 4)`.
    pub fn from_boxes(boxes: Tensor) -> Result<Self> {
        check_boxes(&boxes)?;
        Ok(Self { boxes, keypoints: None })
    }

    /// Number of samples.
    pub fn batch_size(&self) -> usize {
        self.boxes.dims()[0]
    }

    /// Applies `f` to the boxes and the keypoints alike (row selection, rolling, device moves).
    pub fn map(&self, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> candle_core::Result<Self> {
        Ok(Self { boxes: f(&self.boxes)?, keypoints: self.keypoints.as_ref().map(f).transpose()? })
    }

    /// Each row repeated `n` times in place (rows `0, 0, .., 1, 1, ..`).
    pub fn repeat_each(&self, n: usize) -> candle_core::Result<Self> {
        self.map(|t| crate::conditioning::repeat_rows(t, n))
    }

    /// The rows of `self` then those of `other`; keypoints survive only where both have them.
    pub fn cat(&self, other: &Self) -> candle_core::Result<Self> {
        let keypoints = match (&self.keypoints, &other.keypoints) {
            (Some(a), Some(b)) => Some(Tensor::cat(&[a, b], 0)?),
            _ => None,
        };
        Ok(Self { boxes: Tensor::cat(&[&self.boxes, &other.boxes], 0)?, keypoints })
    }

    /// `(1 - t) self + t other`: the box between two boxes. Keypoints are mixed where both are visible
    /// and dropped (visible 0) elsewhere.
    pub fn lerp(&self, other: &Self, t: f64) -> candle_core::Result<Self> {
        let mix = |a: &Tensor, b: &Tensor| (a * (1.0 - t))? + (b * t)?;
        let keypoints = match (&self.keypoints, &other.keypoints) {
            (Some(a), Some(b)) => {
                let xy = mix(&a.narrow(2, 0, 2)?, &b.narrow(2, 0, 2)?)?;
                let visible = (a.narrow(2, 2, 1)? * b.narrow(2, 2, 1)?)?;
                Some(Tensor::cat(&[&xy, &visible], 2)?)
            }
            _ => None,
        };
        Ok(Self { boxes: mix(&self.boxes, &other.boxes)?, keypoints })
    }

    /// The boxes as host rows.
    pub fn box_rows(&self) -> Result<Vec<[f32; 4]>> {
        box_rows(&self.boxes)
    }
}

/// Fails unless `boxes` is `(B, 4)`.
fn check_boxes(boxes: &Tensor) -> Result<()> {
    match boxes.dims() {
        [_, 4] => Ok(()),
        d => Err(Error::InvalidInput(format!("boxes must be (batch, 4) as (x, y, w, h), got shape {d:?}"))),
    }
}

/// The `(B, 4)` boxes as host rows.
pub fn box_rows(boxes: &Tensor) -> Result<Vec<[f32; 4]>> {
    check_boxes(boxes)?;
    let rows = boxes.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(rows.into_iter().map(|r| [r[0], r[1], r[2], r[3]]).collect())
}

/// Checks one box: finite, of positive size, inside the image (with a little slack for rounding).
pub fn check_box(b: [f32; 4]) -> std::result::Result<(), String> {
    let [x, y, w, h] = b;
    const SLACK: f32 = 1e-3;
    if !b.iter().all(|v| v.is_finite()) {
        return Err(format!("the box {b:?} has a value that is not a number"));
    }
    if w <= 0.0 || h <= 0.0 {
        return Err(format!("the box {b:?} must have a positive width and height"));
    }
    if x < -SLACK || y < -SLACK || x + w > 1.0 + SLACK || y + h > 1.0 + SLACK {
        return Err(format!(
            "the box {b:?} must lie inside the image: x and y at least 0, x + w and y + h at most 1 (fractions)"
        ));
    }
    Ok(())
}

/// `(B, 1, side, side)`: the share of each cell that the sample's box covers (1 inside, 0 outside,
/// fractional on its edges).
pub fn box_masks(boxes: &[[f32; 4]], side: usize, device: &Device) -> Result<Tensor> {
    let cell = 1.0 / side as f32;
    let overlap = |start: f32, len: f32, i: usize| {
        let (a, b) = (i as f32 * cell, (i + 1) as f32 * cell);
        ((start + len).min(b) - start.max(a)).max(0.0) / cell
    };
    let mut out = Vec::with_capacity(boxes.len() * side * side);
    for &[x, y, w, h] in boxes {
        for i in 0..side {
            let oy = overlap(y, h, i);
            out.extend((0..side).map(|j| oy * overlap(x, w, j)));
        }
    }
    Ok(Tensor::from_vec(out, (boxes.len(), 1, side, side), device)?)
}

/// `(B, K, side, side)`: a Gaussian bump of standard deviation `sigma` cells, peak 1, at each visible
/// keypoint of `(B, K, 3)` `keypoints`; all zero for an invisible one.
pub fn keypoint_maps(keypoints: &Tensor, side: usize, sigma: f32) -> Result<Tensor> {
    let (b, k, three) = keypoints.dims3()?;
    if three != 3 {
        return Err(Error::InvalidInput(format!("keypoints must be (batch, K, 3), got {:?}", keypoints.dims())));
    }
    let rows = keypoints.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; b * k * side * side];
    for (p, map) in rows.chunks(3).zip(out.chunks_mut(side * side)) {
        if p[2] <= 0.5 {
            continue;
        }
        let (cx, cy) = (p[0] * side as f32 - 0.5, p[1] * side as f32 - 0.5);
        for (i, row) in map.chunks_mut(side).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let d2 = (j as f32 - cx).powi(2) + (i as f32 - cy).powi(2);
                *v = (-d2 / (2.0 * sigma * sigma)).exp();
            }
        }
    }
    Ok(Tensor::from_vec(out, (b, k, side, side), keypoints.device())?)
}

/// The four input cells and weights of a bilinear read at continuous cell coordinate `(sy, sx)`
/// (cell centres at `i + 0.5`) of an `n x n` grid, the edge repeated beyond it.
fn bilinear_taps(sy: f32, sx: f32, n: usize) -> [(usize, f32); 4] {
    let axis = |s: f32| {
        let s = (s - 0.5).clamp(0.0, (n - 1) as f32);
        let i0 = (s.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, s - i0 as f32)
    };
    let ((y0, y1, fy), (x0, x1, fx)) = (axis(sy), axis(sx));
    [
        (y0 * n + x0, (1.0 - fy) * (1.0 - fx)),
        (y0 * n + x1, (1.0 - fy) * fx),
        (y1 * n + x0, fy * (1.0 - fx)),
        (y1 * n + x1, fy * fx),
    ]
}

/// Which way a box transform goes.
#[derive(Clone, Copy)]
enum Direction {
    /// The whole input into the box of the output; zero outside the box.
    Place,
    /// The box of the input onto the whole output.
    Crop,
}

/// The `(B, out^2, in^2)` resampling matrices of `boxes` for `direction`.
fn sampling_matrices(boxes: &[[f32; 4]], n_in: usize, n_out: usize, direction: Direction) -> Vec<f32> {
    let (cells_in, cells_out) = (n_in * n_in, n_out * n_out);
    let mut m = vec![0f32; boxes.len() * cells_out * cells_in];
    for (&[x, y, w, h], mb) in boxes.iter().zip(m.chunks_mut(cells_out * cells_in)) {
        for (o, row) in mb.chunks_mut(cells_in).enumerate() {
            // The output cell's centre, as a fraction of the output.
            let (py, px) = (((o / n_out) as f32 + 0.5) / n_out as f32, ((o % n_out) as f32 + 0.5) / n_out as f32);
            let (sy, sx) = match direction {
                Direction::Place => {
                    if px < x || px >= x + w || py < y || py >= y + h {
                        continue;
                    }
                    ((py - y) / h * n_in as f32, (px - x) / w * n_in as f32)
                }
                Direction::Crop => ((y + py * h) * n_in as f32, (x + px * w) * n_in as f32),
            };
            for (i, weight) in bilinear_taps(sy, sx, n_in) {
                row[i] += weight;
            }
        }
    }
    m
}

/// Applies per-sample resampling to `x` `(B, C, n_in, n_in)`, giving `(B, C, n_out, n_out)`.
fn resample(x: &Tensor, boxes: &[[f32; 4]], n_out: usize, direction: Direction) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h != w {
        return Err(Error::InvalidInput(format!("box transforms take square features, got {h}x{w}")));
    }
    if boxes.len() != b {
        return Err(Error::InvalidInput(format!("{} boxes for a batch of {b}", boxes.len())));
    }
    let m = sampling_matrices(boxes, h, n_out, direction);
    let m = Tensor::from_vec(m, (b, n_out * n_out, h * w), x.device())?.to_dtype(x.dtype())?;
    let flat = x.reshape((b, c, h * w))?;
    Ok(flat.matmul(&m.t()?)?.reshape((b, c, n_out, n_out))?)
}

/// Reed et al.'s spatial transform into the box: each sample's `(C, n, n)` features stretched over its
/// box in a `side x side` map, zero outside the box.
pub fn place_in_boxes(x: &Tensor, boxes: &[[f32; 4]], side: usize) -> Result<Tensor> {
    resample(x, boxes, side, Direction::Place)
}

/// The inverse transform: each sample's box region of its `(C, S, S)` features, resampled to
/// `side x side`.
pub fn crop_boxes(x: &Tensor, boxes: &[[f32; 4]], side: usize) -> Result<Tensor> {
    resample(x, boxes, side, Direction::Crop)
}

/// Intersection over union of two boxes `(x, y, w, h)`.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let ix = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let iy = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests;
