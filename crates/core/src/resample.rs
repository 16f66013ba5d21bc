//! Gradient-safe 2x upsampling, shared by the plugins that upsample by interpolation.
//!
//! candle has no backward for its bilinear upsampling, and `upsample_nearest2d`'s gradient is wrong
//! when its input is used elsewhere (CANDLE_NOTES.md), so this one is built from slices and sums.

use candle_core::Tensor;

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
    upsample_axis(&upsample_axis(x, 3)?, 2)
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
