//! 2-D convolutions on the CPU as one matrix product each, with their gradients as matrix products too.
//!
//! candle's CPU `conv_transpose2d` is a direct loop of dot products over the input channels, and its
//! `conv2d` backward computes the input gradient with that loop. For the small images a GAN trains on,
//! it took most of a training step. Here a convolution is im2col (gather every kernel tap's input
//! pixels into a matrix) then one matmul, and a transposed convolution is one matmul then col2im
//! (scatter-add the taps back onto the image). im2col and col2im are each other's adjoints, so each is
//! the other's backward, and candle's autograd sees only them and matmuls.
//!
//! On other devices, and for dtypes other than f32 and f64, [`conv2d`] and [`conv_transpose2d`] call
//! candle's own convolutions, which are fast there.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

/// Where a convolution's kernel taps fall: an image of `channels` x `image` pixels per batch item,
/// read (or written) by a `kernel` x `kernel` window at every point of a `grid` of positions, `stride`
/// apart, starting `padding` pixels before the image.
#[derive(Clone, Copy, Debug)]
struct Patches {
    batch: usize,
    channels: usize,
    image: (usize, usize),
    grid: (usize, usize),
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Patches {
    fn image_len(&self) -> usize {
        self.batch * self.channels * self.image.0 * self.image.1
    }

    /// Columns of the patch matrix: one per batch item and grid position.
    fn columns(&self) -> usize {
        self.batch * self.grid.0 * self.grid.1
    }

    /// The grid positions `g` whose tap at kernel offset `k` reads a pixel inside `size`
    /// (`g * stride + k - padding` in `0..size`), and the pixel the first of them reads.
    fn inside(&self, k: usize, size: usize, grid: usize) -> (std::ops::Range<usize>, usize) {
        let s = self.stride;
        let first = self.padding.saturating_sub(k).div_ceil(s);
        let end = (size + self.padding).saturating_sub(k).div_ceil(s).min(grid);
        (first..end.max(first), (first * s + k).saturating_sub(self.padding))
    }

    /// im2col: `(C, H, W)` images to the `(C * k * k, B * grid)` matrix of their taps (zero outside).
    fn gather<T: Copy + Default + Send + Sync>(&self, image: &[T]) -> Vec<T> {
        let (n, k, s) = (self.columns(), self.kernel, self.stride);
        let ((h, w), (gh, gw)) = (self.image, self.grid);
        let mut cols = vec![T::default(); self.channels * k * k * n];
        cols.par_chunks_mut(n).enumerate().for_each(|(row, out)| {
            let (c, ky, kx) = (row / (k * k), row / k % k, row % k);
            let (rows, y0) = self.inside(ky, h, gh);
            let (xs, x0) = self.inside(kx, w, gw);
            for b in 0..self.batch {
                let plane = &image[(b * self.channels + c) * h * w..][..h * w];
                for (i, gy) in rows.clone().enumerate() {
                    let src = plane[(y0 + i * s) * w + x0..].iter().step_by(s);
                    let dst = &mut out[(b * gh + gy) * gw..][xs.clone()];
                    dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v);
                }
            }
        });
        cols
    }

    /// col2im, the adjoint of [`Patches::gather`]: adds every tap of the `(C * k * k, B * grid)`
    /// matrix onto the pixel it reads.
    fn scatter<T: Copy + Default + Send + Sync + std::ops::AddAssign>(&self, cols: &[T]) -> Vec<T> {
        let (n, k, s) = (self.columns(), self.kernel, self.stride);
        let ((h, w), (gh, gw)) = (self.image, self.grid);
        let mut image = vec![T::default(); self.image_len()];
        image.par_chunks_mut(h * w).enumerate().for_each(|(plane_index, plane)| {
            let (b, c) = (plane_index / self.channels, plane_index % self.channels);
            for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                let row = &cols[((c * k + ky) * k + kx) * n..][..n];
                let (rows, y0) = self.inside(ky, h, gh);
                let (xs, x0) = self.inside(kx, w, gw);
                for (i, gy) in rows.enumerate() {
                    let taps = &row[(b * gh + gy) * gw..][xs.clone()];
                    let dst = plane[(y0 + i * s) * w + x0..].iter_mut().step_by(s);
                    dst.zip(taps).for_each(|(d, &t)| *d += t);
                }
            }
        });
        image
    }

    fn image_shape(&self) -> Shape {
        (self.batch, self.channels, self.image.0, self.image.1).into()
    }

    fn columns_shape(&self) -> Shape {
        (self.channels * self.kernel * self.kernel, self.columns()).into()
    }
}

/// The slice of a contiguous CPU storage a layout covers.
fn contiguous<'a, T>(data: &'a [T], layout: &Layout, op: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: expects a contiguous tensor"),
    }
}

/// im2col (image to patch matrix, [`Patches::gather`]) or col2im (patch matrix to image,
/// [`Patches::scatter`]) as a differentiable op. The two are adjoint, so each is the other's backward.
#[derive(Clone, Copy, Debug)]
struct Taps {
    patches: Patches,
    to_columns: bool,
}

impl Taps {
    /// Applies the op to a contiguous storage holding exactly its input.
    fn run<T>(&self, data: &[T], layout: &Layout) -> Result<Vec<T>>
    where
        T: Copy + Default + Send + Sync + std::ops::AddAssign,
    {
        let data = contiguous(data, layout, self.name())?;
        let (input, _) = self.shapes();
        if data.len() != input.elem_count() {
            candle_core::bail!("{}: expects {input:?}, got {} elements", self.name(), data.len());
        }
        Ok(if self.to_columns { self.patches.gather(data) } else { self.patches.scatter(data) })
    }

    /// The shapes of the op's input and output.
    fn shapes(&self) -> (Shape, Shape) {
        let (image, columns) = (self.patches.image_shape(), self.patches.columns_shape());
        if self.to_columns {
            (image, columns)
        } else {
            (columns, image)
        }
    }
}

impl CustomOp1 for Taps {
    fn name(&self) -> &'static str {
        if self.to_columns {
            "im2col"
        } else {
            "col2im"
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.run(v, layout)?),
            CpuStorage::F64(v) => CpuStorage::F64(self.run(v, layout)?),
            other => candle_core::bail!("{}: f32 or f64 only, not {:?}", self.name(), other.dtype()),
        };
        Ok((out, self.shapes().1))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let adjoint = Taps { to_columns: !self.to_columns, ..*self };
        grad.contiguous()?.apply_op1_no_bwd(&adjoint).map(Some)
    }
}

/// Whether the matmul path runs: on the CPU, in f32 or f64.
fn on_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Checks the arguments both convolutions share; returns the kernel side.
fn check(x: &Tensor, w: &Tensor, channels_dim: usize, stride: usize, op: &str) -> Result<usize> {
    let (_, c_in, _, _) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    if kh != kw || kh == 0 || stride == 0 {
        candle_core::bail!(
            "{op}: square non-empty kernels and a non-zero stride only, got {kh}x{kw} and stride {stride}"
        );
    }
    if w.dim(channels_dim)? != c_in {
        candle_core::bail!("{op}: the input has {c_in} channels, the kernel {}", w.dim(channels_dim)?);
    }
    Ok(kh)
}

/// 2-D convolution of `x` `(B, C_in, H, W)` with `w` `(C_out, C_in, k, k)`: what
/// `x.conv2d(w, padding, stride, 1, 1)` computes.
pub fn conv2d(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    let k = check(x, w, 1, stride, "conv2d")?;
    let (b, c_in, h, wd) = x.dims4()?;
    if h + 2 * padding < k || wd + 2 * padding < k {
        candle_core::bail!("conv2d: a {k}x{k} kernel does not fit a {h}x{wd} input with padding {padding}");
    }
    if !on_cpu(x) {
        return x.conv2d(w, padding, stride, 1, 1);
    }
    let c_out = w.dim(0)?;
    let grid = ((h + 2 * padding - k) / stride + 1, (wd + 2 * padding - k) / stride + 1);
    let patches = Patches { batch: b, channels: c_in, image: (h, wd), grid, kernel: k, stride, padding };
    let cols = x.contiguous()?.apply_op1(Taps { patches, to_columns: true })?;
    w.reshape((c_out, c_in * k * k))?.matmul(&cols)?.reshape((c_out, b, grid.0, grid.1))?.transpose(0, 1)?.contiguous()
}

/// 2-D transposed convolution of `x` `(B, C_in, H, W)` with `w` `(C_in, C_out, k, k)`: what
/// `x.conv_transpose2d(w, padding, output_padding, stride, 1)` computes.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    padding: usize,
    output_padding: usize,
    stride: usize,
) -> Result<Tensor> {
    let k = check(x, w, 0, stride, "conv_transpose2d")?;
    let (b, c_in, h, wd) = x.dims4()?;
    let side = |n: usize| ((n - 1) * stride + k + output_padding).checked_sub(2 * padding).filter(|&s| s > 0);
    let (Some(oh), Some(ow)) = (side(h), side(wd)) else {
        candle_core::bail!("conv_transpose2d: padding {padding} leaves no output for a {h}x{wd} input");
    };
    if !on_cpu(x) {
        return x.conv_transpose2d(w, padding, output_padding, stride, 1);
    }
    let c_out = w.dim(1)?;
    // The output is the image whose patches, on the input's grid, are these columns (col2im).
    let patches = Patches { batch: b, channels: c_out, image: (oh, ow), grid: (h, wd), kernel: k, stride, padding };
    let xm = x.transpose(0, 1)?.contiguous()?.reshape((c_in, b * h * wd))?;
    let cols = w.reshape((c_in, c_out * k * k))?.t()?.matmul(&xm)?;
    cols.contiguous()?.apply_op1(Taps { patches, to_columns: false })
}

/// Adds a per-channel bias `(C,)` to `(B, C, H, W)`, if there is one.
pub fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

/// A 2-D convolution layer (square kernel, no dilation or groups) that runs [`conv2d`]; a drop-in
/// for `candle_nn::Conv2d` with the same `weight` `(C_out, C_in, k, k)` and `bias` `(C_out,)`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    padding: usize,
    stride: usize,
}

impl Conv2d {
    /// The layer with these parameters.
    pub fn new(weight: Tensor, bias: Option<Tensor>, padding: usize, stride: usize) -> Self {
        Self { weight, bias, padding, stride }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        add_bias(conv2d(x, &self.weight, self.padding, self.stride)?, self.bias.as_ref())
    }
}

/// A 2-D transposed convolution layer (square kernel, no dilation) that runs [`conv_transpose2d`];
/// a drop-in for `candle_nn::ConvTranspose2d` with the same `weight` `(C_in, C_out, k, k)` and `bias`.
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Option<Tensor>,
    padding: usize,
    stride: usize,
}

impl ConvTranspose2d {
    /// The layer with these parameters (no output padding).
    pub fn new(weight: Tensor, bias: Option<Tensor>, padding: usize, stride: usize) -> Self {
        Self { weight, bias, padding, stride }
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        add_bias(conv_transpose2d(x, &self.weight, self.padding, 0, self.stride)?, self.bias.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::check_gradients;
    use crate::rng::normal;
    use crate::{derived_rng, Params};
    use candle_core::{DType, Device, Var};

    fn random(shape: &[usize], seed: u64) -> Tensor {
        normal(&mut derived_rng(seed, &[]), shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Asserts that two computations of one convolution agree to 1e-4, and so do their gradients
    /// for `vars`.
    fn assert_same_with_gradients(ours: Tensor, theirs: Tensor, vars: [&Var; 2], case: &str) {
        assert!(max_diff(&ours, &theirs) < 1e-4, "forward, {case}");
        // Weight the outputs so every output position has its own gradient.
        let g = random(ours.dims(), 200);
        let ours = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let theirs = (theirs * &g).unwrap().sum_all().unwrap().backward().unwrap();
        for v in vars {
            let d = max_diff(ours.get(v).unwrap(), theirs.get(v).unwrap());
            assert!(d < 1e-4, "gradient, {case}: {d}");
        }
    }

    /// (kernel, stride, padding, side) cases: DCGAN's 4/2/1, the final 4x4 valid convolution, 3x3
    /// same, the resize layer's 6/2/2, and odd sizes and kernels that do not divide by the stride.
    const CASES: [(usize, usize, usize, usize); 7] =
        [(4, 2, 1, 8), (4, 1, 0, 4), (3, 1, 1, 5), (6, 2, 2, 4), (3, 2, 1, 7), (5, 3, 2, 9), (1, 1, 0, 3)];

    #[test]
    fn conv2d_and_its_gradients_match_candle() {
        // Square inputs: for a 8x9 input with stride 2 candle's own conv2d backward fails (its input
        // gradient comes out 8x8); `gradients_match_finite_differences` covers uneven sizes.
        for (i, &(k, s, p, n)) in CASES.iter().enumerate() {
            let x = Var::from_tensor(&random(&[2, 3, n, n], i as u64)).unwrap();
            let w = Var::from_tensor(&random(&[4, 3, k, k], 100 + i as u64)).unwrap();
            let ours = conv2d(&x, &w, p, s).unwrap();
            let theirs = x.conv2d(&w, p, s, 1, 1).unwrap();
            assert_same_with_gradients(ours, theirs, [&x, &w], &format!("case {i}"));
        }
    }

    #[test]
    fn conv_transpose2d_and_its_gradients_match_candle() {
        for (i, &(k, s, p, n)) in CASES.iter().enumerate() {
            for output_padding in 0..s {
                let x = Var::from_tensor(&random(&[2, 3, n, n + 1], i as u64)).unwrap();
                let w = Var::from_tensor(&random(&[3, 4, k, k], 100 + i as u64)).unwrap();
                if (n - 1) * s + k + output_padding <= 2 * p {
                    continue;
                }
                let ours = conv_transpose2d(&x, &w, p, output_padding, s).unwrap();
                let theirs = x.conv_transpose2d(&w, p, output_padding, s, 1).unwrap();
                let case = format!("case {i}, output padding {output_padding}");
                assert_same_with_gradients(ours, theirs, [&x, &w], &case);
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        // Independent of candle's own convolutions: float64 central differences.
        let var = |params: &Params, name: &str, shape: (usize, usize, usize, usize)| {
            let init = candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 };
            params.var_builder(DType::F64, &Device::Cpu).get_with_hints(shape, name, init).unwrap()
        };
        let weights = |shape: &[usize]| random(shape, 7).to_dtype(DType::F64).unwrap();
        let params = Params::new(3);
        let (x, w) = (var(&params, "x", (1, 2, 5, 5)), var(&params, "w", (2, 3, 4, 4)));
        let g = weights(&[1, 3, 10, 10]);
        let checked = check_gradients(&params, 20, 1e-6, || (conv_transpose2d(&x, &w, 1, 0, 2)? * &g)?.sum_all());
        assert!(checked.unwrap() >= 20);
        let params = Params::new(4);
        let (x, w) = (var(&params, "x", (1, 2, 5, 5)), var(&params, "w", (3, 2, 4, 4)));
        let g = weights(&[1, 3, 2, 2]);
        let checked = check_gradients(&params, 20, 1e-6, || (conv2d(&x, &w, 1, 2)? * &g)?.sum_all());
        assert!(checked.unwrap() >= 20);
    }

    #[test]
    fn mismatched_channels_are_an_error() {
        let x = random(&[1, 3, 4, 4], 0);
        assert!(conv2d(&x, &random(&[2, 4, 3, 3], 1), 1, 1).is_err());
        assert!(conv_transpose2d(&x, &random(&[4, 2, 3, 3], 1), 1, 0, 1).is_err());
        assert!(conv2d(&x, &random(&[2, 3, 7, 7], 1), 1, 1).is_err());
    }
}
