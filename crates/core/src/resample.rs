//! Gradient-safe 2x upsampling, shared by the plugins that upsample by interpolation.
//!
//! candle has no backward for its bilinear upsampling, and `upsample_nearest2d`'s gradient is wrong
//! when its input is used elsewhere (CANDLE_NOTES.md). On the CPU (f32, f64) this one is a single op
//! whose backward is its exact adjoint; elsewhere it is built from slices and sums.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use crate::kernels::{for_each_chunk, parallel_elements, real_op, Real};

/// Bilinear 2x upsampling (half-pixel centres) along one axis as a stride-2 transposed convolution's
/// kernel: input pixel `i` adds these weights to outputs `2i - 1 ..= 2i + 2`. Away from the edges this
/// is what [`upsample2x`] computes.
pub const BILINEAR_2X_TAPS: [f64; 4] = [0.25, 0.75, 0.75, 0.25];

/// Doubles a side of `x` along `dim` by linear interpolation with half-pixel centres (what bilinear
/// upsampling with `align_corners = false` does), edges replicated.
fn upsample_axis(x: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    let n = x.dim(dim)?;
    let (prev, next) = if n == 1 {
        (x.clone(), x.clone())
    } else {
        (
            Tensor::cat(&[&x.narrow(dim, 0, 1)?, &x.narrow(dim, 0, n - 1)?], dim)?,
            Tensor::cat(&[&x.narrow(dim, 1, n - 1)?, &x.narrow(dim, n - 1, 1)?], dim)?,
        )
    };
    let [near, far] = [BILINEAR_2X_TAPS[1], BILINEAR_2X_TAPS[0]];
    let even = ((x * near)? + (prev * far)?)?;
    let odd = ((x * near)? + (next * far)?)?;
    let mut dims = x.dims().to_vec();
    dims[dim] *= 2;
    Tensor::stack(&[&even, &odd], dim + 1)?.reshape(dims)
}

/// Bilinear 2x upsampling of `(B, C, H, W)` whose gradient is exact.
pub fn upsample2x(x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if crate::kernels::on_cpu(x) {
        return x.contiguous()?.apply_op1(Upsample { h, w, adjoint: false });
    }
    upsample2x_candle(x)
}

/// [`upsample2x`] in candle's ops.
fn upsample2x_candle(x: &Tensor) -> candle_core::Result<Tensor> {
    upsample_axis(&upsample_axis(x, 3)?, 2)
}

/// [`upsample2x`] of `h x w` planes (`adjoint: false`), or its adjoint from `2h x 2w` planes back to
/// `h x w` (its backward).
#[derive(Clone, Copy, Debug)]
struct Upsample {
    h: usize,
    w: usize,
    adjoint: bool,
}

/// Near and far weights of [`BILINEAR_2X_TAPS`].
fn taps<T: Real>() -> (T, T) {
    (T::from_f64(BILINEAR_2X_TAPS[1]), T::from_f64(BILINEAR_2X_TAPS[0]))
}

/// One line of `n` values to `2n` ([`upsample_axis`] on a line), the values `step` apart in both.
fn line_up<T: Real>(src: &[T], dst: &mut [T], n: usize, step: usize) {
    let (near, far) = taps::<T>();
    for i in 0..n {
        let (prev, next) = (i.saturating_sub(1), (i + 1).min(n - 1));
        let (a, p, q) = (&src[i * step..][..step], &src[prev * step..][..step], &src[next * step..][..step]);
        let (even, odd) = dst[2 * i * step..][..2 * step].split_at_mut(step);
        for j in 0..step {
            even[j] = a[j] * near + p[j] * far;
            odd[j] = a[j] * near + q[j] * far;
        }
    }
}

/// The adjoint of [`line_up`]: `2n` values back onto `n`.
fn line_down<T: Real>(src: &[T], dst: &mut [T], n: usize, step: usize) {
    let (near, far) = taps::<T>();
    dst[..n * step].fill(T::ZERO);
    for i in 0..n {
        let (prev, next) = (i.saturating_sub(1), (i + 1).min(n - 1));
        let (even, odd) = src[2 * i * step..][..2 * step].split_at(step);
        for j in 0..step {
            dst[i * step + j] += (even[j] + odd[j]) * near;
            dst[prev * step + j] += even[j] * far;
            dst[next * step + j] += odd[j] * far;
        }
    }
}

impl Upsample {
    /// One plane: rows (along the width) then columns, or the adjoint in the reverse order.
    fn plane<T: Real>(&self, src: &[T], dst: &mut [T]) {
        let (h, w) = (self.h, self.w);
        let mut mid = vec![T::ZERO; h * 2 * w];
        if self.adjoint {
            line_down(src, &mut mid, h, 2 * w);
            for (m, d) in mid.chunks_exact(2 * w).zip(dst.chunks_exact_mut(w)) {
                line_down(m, d, w, 1);
            }
        } else {
            for (s, m) in src.chunks_exact(w).zip(mid.chunks_exact_mut(2 * w)) {
                line_up(s, m, w, 1);
            }
            line_up(&mid, dst, h, 2 * w);
        }
    }

    fn run<T: Real>(&self, src: &[T]) -> Vec<T> {
        let (small, large) = (self.h * self.w, 4 * self.h * self.w);
        let (from, to) = if self.adjoint { (large, small) } else { (small, large) };
        let mut out = vec![T::ZERO; src.len() / from * to];
        for_each_chunk(&mut out, to, parallel_elements(src.len()), |i, d| self.plane(&src[i * from..][..from], d));
        out
    }
}

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        if self.adjoint {
            "upsample2x-adjoint"
        } else {
            "upsample2x"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let expected = if self.adjoint { (2 * self.h, 2 * self.w) } else { (self.h, self.w) };
        if (h, w) != expected {
            candle_core::bail!("{}: expects {expected:?} planes, got {:?}", self.name(), l.shape());
        }
        let out = real_op!(self.name(), [(s, l)], |x| self.run(x));
        let shape = if self.adjoint { (b, c, self.h, self.w) } else { (b, c, 2 * self.h, 2 * self.w) };
        Ok((out, shape.into()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let adjoint = Upsample { adjoint: !self.adjoint, ..*self };
        grad.contiguous()?.apply_op1_no_bwd(&adjoint).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::check_gradients;
    use crate::rng::normal;
    use crate::{derived_rng, Params};
    use candle_core::{DType, Device};

    #[test]
    fn upsampling_is_bilinear_with_half_pixel_centres() {
        let x = Tensor::new(&[[[[0f32, 4.0], [8.0, 12.0]]]], &Device::Cpu).unwrap();
        let up = upsample2x(&x).unwrap();
        assert_eq!(up.dims(), &[1, 1, 4, 4]);
        // Along a row: [0, 4] -> [0, 1, 3, 4]; along a column: [0, 8] -> [0, 2, 6, 8].
        let expected = [0.0, 1.0, 3.0, 4.0, 2.0, 3.0, 5.0, 6.0, 6.0, 7.0, 9.0, 10.0, 8.0, 9.0, 11.0, 12.0];
        assert_eq!(up.flatten_all().unwrap().to_vec1::<f32>().unwrap(), expected);
    }

    #[test]
    fn the_fused_op_matches_the_slices_with_gradients() {
        for (h, w) in [(1, 1), (1, 3), (4, 4), (5, 3)] {
            let x =
                candle_core::Var::from_tensor(&normal(&mut derived_rng(3, &[]), (2, 3, h, w), &Device::Cpu).unwrap())
                    .unwrap();
            let g = normal(&mut derived_rng(4, &[]), (2, 3, 2 * h, 2 * w), &Device::Cpu).unwrap();
            let (a, b) = (upsample2x(&x).unwrap(), upsample2x_candle(&x).unwrap());
            let diff =
                |p: &Tensor, q: &Tensor| (p - q).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff(&a, &b) < 1e-6, "{h}x{w}");
            let ga = (a * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &g).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(diff(ga.get(&x).unwrap(), gb.get(&x).unwrap()) < 1e-5, "{h}x{w} gradient");
        }
    }

    #[test]
    fn upsampling_gradient_matches_finite_differences_when_its_input_is_reused() {
        // The case where candle's upsample_nearest2d goes wrong: the input also feeds another branch.
        let params = Params::new(1);
        let x = params
            .var_builder(DType::F64, &Device::Cpu)
            .get_with_hints((2, 3, 4, 4), "x", candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 })
            .unwrap();
        let target =
            normal(&mut derived_rng(2, &[]), (2, 3, 8, 8), &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
        let checked = check_gradients(&params, 20, 1e-6, || {
            let up = upsample2x(&x)?;
            (up.mul(&target)?.sum_all()? + x.sqr()?.sum_all()?)? + up.sqr()?.mean_all()?
        })
        .unwrap();
        assert!(checked >= 20);
    }
}
