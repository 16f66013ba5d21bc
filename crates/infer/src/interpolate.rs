//! Interpolation for animations: a generator's images along a path between two prompts' sentence
//! embeddings (latent code fixed) or between two latent codes (prompt fixed). Both paths are
//! spherical: sentence embeddings are unit vectors and Gaussian latents concentrate on a sphere, so a
//! straight line between two of them passes through codes the generator has never seen (White 2016,
//! "Sampling Generative Networks").

use candle_core::{DType, Device, Tensor};

use crate::error::{InferError, Result};

/// The most frames one interpolation draws.
pub const MAX_FRAMES: usize = 512;

/// The blend of each of `frames` frames: `0, 1/(frames-1), ..., 1`. Errors unless `frames` is 2 to
/// [`MAX_FRAMES`].
pub fn frame_positions(frames: usize) -> Result<Vec<f64>> {
    if !(2..=MAX_FRAMES).contains(&frames) {
        return Err(InferError::Request(format!("an interpolation needs 2 to {MAX_FRAMES} frames, not {frames}")));
    }
    Ok((0..frames).map(|i| i as f64 / (frames - 1) as f64).collect())
}

/// Spherical interpolation from `a` (at `t = 0`) to `b` (at `t = 1`) along the great circle of their
/// directions, with the length blended linearly. Nearly parallel vectors are blended linearly.
pub fn slerp(a: &[f32], b: &[f32], t: f64) -> Vec<f32> {
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
    let cos = if na > 0.0 && nb > 0.0 { (dot / (na * nb)).clamp(-1.0, 1.0) } else { 1.0 };
    let omega = cos.acos();
    let (wa, wb) = if omega.sin().abs() < 1e-6 {
        (1.0 - t, t)
    } else {
        // The slerp of the unit directions is a unit vector; give it the linearly blended length.
        let length = (1.0 - t) * na + t * nb;
        let (sa, sb) = (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin());
        (length * sa / na, length * sb / nb)
    };
    a.iter().zip(b).map(|(&x, &y)| (wa * f64::from(x) + wb * f64::from(y)) as f32).collect()
}

/// The rows of [`slerp`] from `a` to `b` (both `(1, D)` or `(D,)`) at `positions`: `(len, D)` float32.
pub fn slerp_rows(a: &Tensor, b: &Tensor, positions: &[f64], device: &Device) -> Result<Tensor> {
    let a: Vec<f32> = a.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let b: Vec<f32> = b.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    if a.len() != b.len() {
        return Err(InferError::Request(format!("cannot interpolate between {} and {} numbers", a.len(), b.len())));
    }
    let rows: Vec<f32> = positions.iter().flat_map(|&t| slerp(&a, &b, t)).collect();
    Ok(Tensor::from_vec(rows, (positions.len(), a.len()), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slerp_keeps_unit_vectors_on_the_sphere_and_hits_both_ends() {
        let a = [1.0f32, 0.0, 0.0];
        let b = [0.0f32, 1.0, 0.0];
        assert_eq!(slerp(&a, &b, 0.0), a.to_vec());
        let end = slerp(&a, &b, 1.0);
        assert!(end.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "{end:?}");
        let mid = slerp(&a, &b, 0.5);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((mid[0] - h).abs() < 1e-6 && (mid[1] - h).abs() < 1e-6 && mid[2] == 0.0, "{mid:?}");
        // A third of the way along a right angle is 30 degrees from `a`.
        let third = slerp(&a, &b, 1.0 / 3.0);
        assert!((third[0] - 0.75f32.sqrt()).abs() < 1e-6 && (third[1] - 0.5).abs() < 1e-6, "{third:?}");
    }

    #[test]
    fn slerp_blends_lengths_linearly_and_parallel_vectors_linearly() {
        let a = [2.0f32, 0.0];
        let b = [0.0f32, 4.0];
        let mid = slerp(&a, &b, 0.5);
        let len = (mid[0] * mid[0] + mid[1] * mid[1]).sqrt();
        assert!((len - 3.0).abs() < 1e-5, "length {len}");
        assert!((mid[0] / len - mid[1] / len).abs() < 1e-6, "45 degrees: {mid:?}");
        assert_eq!(slerp(&[1.0, 1.0], &[2.0, 2.0], 0.5), vec![1.5, 1.5]);
    }

    #[test]
    fn frame_positions_span_zero_to_one_and_refuse_too_few_or_too_many() {
        assert_eq!(frame_positions(3).unwrap(), vec![0.0, 0.5, 1.0]);
        assert!(frame_positions(1).unwrap_err().to_string().contains("2 to 512 frames"));
        assert!(frame_positions(MAX_FRAMES + 1).is_err());
    }
}
