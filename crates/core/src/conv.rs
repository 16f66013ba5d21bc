//! 2-D convolutions on the CPU as matrix products, with their gradients as matrix products too.
//!
//! candle's CPU `conv_transpose2d` is a direct loop of dot products over the input channels, and its
//! `conv2d` backward computes the input gradient with that loop. For the small images a GAN trains on,
//! it took most of a training step. Here a convolution is im2col (gather every kernel tap's input
//! pixels into a matrix) then a matrix product, and a transposed convolution is a product then col2im
//! (scatter-add the taps back onto the image), each one op in candle's graph whose backward is the
//! other two products (`kernels::conv`). The patch matrices are built chunk by chunk and never
//! kept: the graph holds only the op's input and weights.
//!
//! On other devices, and for dtypes other than f32 and f64, [`conv2d`] and [`conv_transpose2d`] call
//! candle's own convolutions, which are fast there.

use candle_core::{CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor};

use crate::activation::{bias_act, Activation};
use crate::kernels::conv::{matmul_scatter, patches_matmul, patches_outer};
use crate::kernels::direct;
use crate::kernels::patches::Patches;
use crate::kernels::{check_counts, on_cpu, real_op};

/// One of the three products of `kernels::conv`, as a candle op without a gradient of its own:
/// the pieces a convolution's forward and backward passes are made of.
#[derive(Clone, Copy, Debug)]
enum Product {
    /// `(images, w)` to `(B, m, grid)`: `W P(image)` per item.
    PatchesMatmul,
    /// `(g, w)` to `(B, C, H, W)`: `col2im(W^T g)` per item.
    MatmulScatter,
    /// `(g, images)` to `(m, taps)`: `sum_b g_b P(image_b)^T`.
    PatchesOuter,
}

/// A [`Product`] over `patches` with `m` rows of `W`; `direct`: computed by `kernels::direct`'s
/// loops on padded images instead of patch matrices (the same values, another summation order).
#[derive(Clone, Copy, Debug)]
struct ConvProduct {
    product: Product,
    patches: Patches,
    m: usize,
    direct: bool,
}

impl ConvProduct {
    /// Element counts of the two arguments and the output's shape.
    fn shapes(&self) -> (usize, usize, Shape) {
        let p = &self.patches;
        let images = p.batch * p.image_len();
        let g_side = p.batch * self.m * p.grid_len();
        let w = self.m * p.taps();
        match self.product {
            Product::PatchesMatmul => (images, w, (p.batch, self.m, p.grid.0, p.grid.1).into()),
            Product::MatmulScatter => (g_side, w, (p.batch, p.channels, p.image.0, p.image.1).into()),
            Product::PatchesOuter => (g_side, images, (self.m, p.taps()).into()),
        }
    }
}

impl CustomOp2 for ConvProduct {
    fn name(&self) -> &'static str {
        match (self.product, self.direct) {
            (Product::PatchesMatmul, false) => "conv-patches-matmul",
            (Product::MatmulScatter, false) => "conv-matmul-scatter",
            (Product::PatchesOuter, false) => "conv-patches-outer",
            (Product::PatchesOuter, true) => "conv-direct-weight-grad",
            (Product::PatchesMatmul, true) => "conv-direct",
            (Product::MatmulScatter, true) => "conv-direct-input-grad",
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n1, n2, shape) = self.shapes();
        check_counts(self.name(), &[(l1, n1), (l2, n2)])?;
        let (p, m) = (&self.patches, self.m);
        let label = || {
            let ((h, w), (gh, gw), k) = (p.image, p.grid, p.kernel);
            format!("{} {}x{}x{h}x{w} k{k}s{} -> {m}x{gh}x{gw}", self.name(), p.batch, p.channels, p.stride)
        };
        let out = crate::profile::timed(label, || {
            Ok::<_, candle_core::Error>(real_op!(self.name(), [(s1, l1), (s2, l2)], |a, b| match (
                self.product,
                self.direct
            ) {
                (Product::PatchesMatmul, false) => patches_matmul(a, b, m, p),
                (Product::MatmulScatter, false) => matmul_scatter(a, b, m, p),
                (Product::PatchesOuter, false) => patches_outer(a, b, m, p),
                (Product::PatchesOuter, true) => direct::weight_grad(a, b, m, p),
                (Product::PatchesMatmul, true) => direct::conv(a, b, m, p),
                (Product::MatmulScatter, true) => direct::input_grad(a, b, m, p),
            }))
        })?;
        Ok((out, shape))
    }
}

/// A convolution (`x` `(B, C_in, H, W)`, `w` `(C_out, C_in, k, k)`) or, `transposed`, a transposed
/// convolution (`w` `(C_in, C_out, k, k)`) as one differentiable op whose gradients are [`Product`]s.
/// `patches` describe the side that is gathered into patches: the input of a convolution, the output of
/// a transposed one; the other side is the grid.
#[derive(Clone, Copy, Debug)]
struct ConvOp {
    patches: Patches,
    /// Channels on the grid side: the output's for a convolution, the input's for a transposed one.
    m: usize,
    transposed: bool,
}

impl ConvOp {
    fn product(&self, product: Product) -> ConvProduct {
        let applies = match product {
            Product::PatchesOuter => direct::weight_grad_applies,
            Product::PatchesMatmul | Product::MatmulScatter => direct::applies,
        };
        let direct = !self.transposed && applies(&self.patches, self.m);
        ConvProduct { product, patches: self.patches, m: self.m, direct }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        if self.transposed {
            "conv-transpose2d"
        } else {
            "conv2d"
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let forward = if self.transposed { Product::MatmulScatter } else { Product::PatchesMatmul };
        self.product(forward).cpu_fwd(s1, l1, s2, l2)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // The input gradient runs the other direction; it is skipped for inputs nothing trains through
        // (a batch of images).
        let data = if self.transposed { Product::PatchesMatmul } else { Product::MatmulScatter };
        let dx = x.track_op().then(|| grad.apply_op2_no_bwd(w, &self.product(data))).transpose()?;
        // The weight gradient pairs the grid side's values with the patches of the other side.
        let (grid_side, patch_side) = if self.transposed { (x, &grad) } else { (&grad, x) };
        let dw = w
            .track_op()
            .then(|| grid_side.apply_op2_no_bwd(patch_side, &self.product(Product::PatchesOuter))?.reshape(w.shape()))
            .transpose()?;
        Ok((dx, dw))
    }
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
    let grid = ((h + 2 * padding - k) / stride + 1, (wd + 2 * padding - k) / stride + 1);
    let patches = Patches { batch: b, channels: c_in, image: (h, wd), grid, kernel: k, stride, padding };
    x.contiguous()?.apply_op2(&w.contiguous()?, ConvOp { patches, m: w.dim(0)?, transposed: false })
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
    // The output is the image whose patches, on the input's grid, the product makes (col2im).
    let patches = Patches { batch: b, channels: w.dim(1)?, image: (oh, ow), grid: (h, wd), kernel: k, stride, padding };
    x.contiguous()?.apply_op2(&w.contiguous()?, ConvOp { patches, m: c_in, transposed: true })
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

    /// `act(conv(x) + bias)`, the bias and activation as one op.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        bias_act(&conv2d(x, &self.weight, self.padding, self.stride)?, self.bias.as_ref(), act)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Activation::Identity)
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

    /// `act(conv_transpose(x) + bias)`, the bias and activation as one op.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let y = conv_transpose2d(x, &self.weight, self.padding, 0, self.stride)?;
        bias_act(&y, self.bias.as_ref(), act)
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Activation::Identity)
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
    /// for `vars`, relative to the largest value where that exceeds one (a weight gradient sums a
    /// whole batch's grid: its values grow with it, and so does f32's rounding).
    fn assert_same_with_gradients(ours: Tensor, theirs: Tensor, vars: [&Var; 2], case: &str) {
        let scale = |t: &Tensor| t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-4 * scale(&theirs).max(1.0), "forward, {case}");
        // Weight the outputs so every output position has its own gradient.
        let g = random(ours.dims(), 200);
        let ours = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let theirs = (theirs * &g).unwrap().sum_all().unwrap().backward().unwrap();
        for v in vars {
            let (ours, theirs) = (ours.get(v).unwrap(), theirs.get(v).unwrap());
            let d = max_diff(ours, theirs);
            assert!(d < 1e-4 * scale(theirs).max(1.0), "gradient, {case}: {d}");
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
    fn large_grids_and_uneven_chunks_match_candle() {
        // Grids of 256 positions and more take one product per item; 9 items split into uneven chunks.
        let x = Var::from_tensor(&random(&[9, 3, 34, 34], 1)).unwrap();
        let w = Var::from_tensor(&random(&[5, 3, 4, 4], 2)).unwrap();
        let (ours, theirs) = (conv2d(&x, &w, 1, 2).unwrap(), x.conv2d(&w, 1, 2, 1, 1).unwrap());
        assert_same_with_gradients(ours, theirs, [&x, &w], "conv2d, 17x17 grid");
        let x = Var::from_tensor(&random(&[9, 5, 16, 16], 3)).unwrap();
        let w = Var::from_tensor(&random(&[5, 3, 4, 4], 4)).unwrap();
        let ours = conv_transpose2d(&x, &w, 1, 0, 2).unwrap();
        let theirs = x.conv_transpose2d(&w, 1, 0, 2, 1).unwrap();
        assert_same_with_gradients(ours, theirs, [&x, &w], "conv_transpose2d, 16x16 grid");
    }

    #[test]
    fn direct_convolutions_and_their_gradients_match_candle() {
        // Stride-1 "same" 3x3 convolutions on rows 8, 16 and 32 wide take `kernels::direct`; odd channel
        // counts leave a remainder of output channels in both directions, and rectangular images
        // check that only the widths are special.
        let cases = [(3, 1, 5, 8, 8), (3, 1, 3, 7, 16), (3, 1, 2, 3, 8), (3, 1, 8, 8, 32)];
        for (i, &(k, pad, c_in, c_out, side)) in cases.iter().enumerate() {
            let p = Patches {
                batch: 3,
                channels: c_in,
                image: (side / 2 + 1, side),
                grid: (side / 2 + 1, side),
                kernel: k,
                stride: 1,
                padding: pad,
            };
            assert!(direct::applies(&p, c_out), "case {i} should take the direct kernels");
            let x = Var::from_tensor(&random(&[3, c_in, side / 2 + 1, side], i as u64)).unwrap();
            let w = Var::from_tensor(&random(&[c_out, c_in, k, k], 100 + i as u64)).unwrap();
            let ours = conv2d(&x, &w, pad, 1).unwrap();
            let theirs = x.conv2d(&w, pad, 1, 1, 1).unwrap();
            assert_same_with_gradients(ours, theirs, [&x, &w], &format!("direct case {i}"));
        }
    }

    #[test]
    fn direct_gradients_match_finite_differences() {
        let params = Params::new(5);
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 };
        let vb = params.var_builder(DType::F64, &Device::Cpu);
        let x = vb.get_with_hints((2, 3, 4, 8), "x", init).unwrap();
        let w = vb.get_with_hints((5, 3, 3, 3), "w", init).unwrap();
        let g = random(&[2, 5, 4, 8], 9).to_dtype(DType::F64).unwrap();
        let checked = check_gradients(&params, 30, 1e-6, || (conv2d(&x, &w, 1, 1)? * &g)?.sum_all());
        assert!(checked.unwrap() >= 30);
        // Rows 32 wide take the direct weight gradient too, with a remainder of output channels.
        let params = Params::new(6);
        let vb = params.var_builder(DType::F64, &Device::Cpu);
        let x = vb.get_with_hints((2, 2, 3, 32), "x", init).unwrap();
        let w = vb.get_with_hints((3, 2, 3, 3), "w", init).unwrap();
        let p = Patches { batch: 2, channels: 2, image: (3, 32), grid: (3, 32), kernel: 3, stride: 1, padding: 1 };
        assert!(direct::weight_grad_applies(&p, 3));
        let g = random(&[2, 3, 3, 32], 10).to_dtype(DType::F64).unwrap();
        let checked = check_gradients(&params, 30, 1e-6, || (conv2d(&x, &w, 1, 1)? * &g)?.sum_all());
        assert!(checked.unwrap() >= 30);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // Large enough to run on several threads; every output and gradient must be the same bits.
        let x = Var::from_tensor(&random(&[16, 32, 16, 16], 5)).unwrap();
        let w = Var::from_tensor(&random(&[64, 32, 4, 4], 6)).unwrap();
        let wt = Var::from_tensor(&random(&[64, 32, 4, 4], 7)).unwrap();
        let wd = Var::from_tensor(&random(&[64, 32, 3, 3], 8)).unwrap();
        // Rows 32 wide: the direct weight gradient, split over blocks of output channels.
        let x32 = Var::from_tensor(&random(&[8, 16, 32, 32], 9)).unwrap();
        let w32 = Var::from_tensor(&random(&[16, 16, 3, 3], 10)).unwrap();
        let run = |threads: usize| -> Vec<Vec<f32>> {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let y = conv2d(&x, &w, 1, 2).unwrap();
                let z = conv_transpose2d(&y, &wt, 1, 0, 2).unwrap();
                let z = conv2d(&z, &wd, 1, 1).unwrap(); // the direct kernels
                let z32 = conv2d(&x32, &w32, 1, 1).unwrap();
                let loss = (z.sqr().unwrap().sum_all().unwrap() + z32.sqr().unwrap().sum_all().unwrap()).unwrap();
                let grads = loss.backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                vec![
                    flat(&z),
                    flat(grads.get(&x).unwrap()),
                    flat(grads.get(&w).unwrap()),
                    flat(grads.get(&wt).unwrap()),
                    flat(grads.get(&wd).unwrap()),
                    flat(grads.get(&x32).unwrap()),
                    flat(grads.get(&w32).unwrap()),
                ]
            })
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(2), run(3));
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
