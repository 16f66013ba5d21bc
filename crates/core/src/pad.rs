//! Reflection padding, which CycleGAN's ResNet generator puts before its convolutions so that the
//! image border is not read as a black frame.

use candle_core::{Result, Tensor};

/// The source index of each of the `n + 2 p` positions of a side of `n` reflected by `p`
/// (`p < n`): `p, .., 1, 0, 1, .., n - 1, n - 2, .., n - 1 - p`, as PyTorch's `ReflectionPad2d`.
fn reflected_indices(n: usize, p: usize) -> Vec<u32> {
    let n = n as i64;
    (-(p as i64)..n + p as i64)
        .map(|i| {
            let r = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            r as u32
        })
        .collect()
}

/// Pads `x` `(B, C, H, W)` by `p` on every side with its own mirror image (the border row or column
/// is not repeated). `p` must be smaller than both sides. Gradients flow back through the copies.
pub fn reflect_pad2d(x: &Tensor, p: usize) -> Result<Tensor> {
    if p == 0 {
        return Ok(x.clone());
    }
    let (_, _, h, w) = x.dims4()?;
    if p >= h || p >= w {
        candle_core::bail!("reflect_pad2d: padding {p} needs an image larger than {p}x{p}, got {h}x{w}");
    }
    let rows = Tensor::new(reflected_indices(h, p), x.device())?;
    let cols = Tensor::new(reflected_indices(w, p), x.device())?;
    x.index_select(&rows, 2)?.index_select(&cols, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::check_gradients;
    use crate::Params;
    use candle_core::{DType, Device};

    #[test]
    fn pads_with_the_mirror_image_without_repeating_the_border() {
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((1, 1, 3, 4)).unwrap();
        let y = reflect_pad2d(&x, 2).unwrap();
        assert_eq!(y.dims(), [1, 1, 7, 8]);
        let rows = y.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        // Row 0 is the input's row 2, row 2 its row 0; column 0 is its column 2.
        assert_eq!(rows[2], vec![2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        assert_eq!(rows[0], vec![10.0, 9.0, 8.0, 9.0, 10.0, 11.0, 10.0, 9.0]);
        assert_eq!(rows[6], rows[2]);
        assert!(reflect_pad2d(&x, 3).is_err(), "padding as large as a side");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let params = Params::new(3);
        let vb = params.var_builder(DType::F64, &Device::Cpu);
        let x = vb.get_with_hints((2, 2, 4, 5), "x", candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
        let g = vb.get_with_hints((2, 2, 8, 9), "weights", candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
        let checked = check_gradients(&params, 40, 1e-6, || (reflect_pad2d(&x, 2)?.sqr()? * &g)?.sum_all());
        assert!(checked.unwrap() >= 40);
    }
}
