//! Structured latent codes (InfoGAN): the first columns of a generator's latent read as one categorical
//! code and some continuous codes. They are derived from the standard-normal latent every sampler
//! draws, so any sampler (training's grids, `condor sample`, a checkpoint served later) draws the
//! codes' prior, and a recipe reads the codes back from the latent it drew:
//!
//! - the categorical code is the arg-max of the first `categorical` columns, which for independent
//!   normal values is uniform over the categories; the generator sees it one-hot;
//! - each continuous code is `erf(z / sqrt 2)` of its column, uniform on (-1, 1) (the normal CDF
//!   mapped onto that interval), as the InfoGAN paper draws them;
//! - the remaining columns are the incompressible noise, as drawn.

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::Result;

/// How many leading latent columns are codes, and of which kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatentCodes {
    /// Categories of the categorical code; 0 for none (1 is refused: a code needs two values).
    pub categorical: usize,
    /// Number of continuous codes.
    pub continuous: usize,
}

impl LatentCodes {
    /// Latent columns the codes take.
    pub fn width(&self) -> usize {
        self.categorical + self.continuous
    }

    /// Whether there are no codes (the latent is plain noise).
    pub fn is_empty(&self) -> bool {
        self.width() == 0
    }

    /// An error unless the codes fit a latent of `latent_dim` columns and the categorical code has at
    /// least two categories.
    pub fn check(&self, latent_dim: usize) -> Result<()> {
        if self.categorical == 1 {
            return Err(crate::Error::InvalidInput("a categorical code needs at least 2 categories, not 1".into()));
        }
        if self.width() > latent_dim {
            return Err(crate::Error::InvalidInput(format!(
                "{} categorical and {} continuous code columns do not fit a latent of {latent_dim}",
                self.categorical, self.continuous
            )));
        }
        Ok(())
    }

    /// The generator's input for latents `z` `(B, latent_dim)`: the categorical columns replaced by
    /// the one-hot code, the continuous ones by their codes, the noise as drawn.
    pub fn apply(&self, z: &Tensor) -> Result<Tensor> {
        if self.is_empty() {
            return Ok(z.clone());
        }
        let latent_dim = z.dim(1)?;
        self.check(latent_dim)?;
        let mut parts = Vec::with_capacity(3);
        if self.categorical > 0 {
            parts.push(self.one_hot(z)?.to_dtype(z.dtype())?);
        }
        if self.continuous > 0 {
            parts.push(self.continuous_codes(z)?.to_dtype(z.dtype())?);
        }
        if latent_dim > self.width() {
            parts.push(z.narrow(1, self.width(), latent_dim - self.width())?);
        }
        Ok(Tensor::cat(&parts, 1)?)
    }

    /// The categorical code of each row of `z`: `(B,)` category indices (u32).
    pub fn categories(&self, z: &Tensor) -> Result<Tensor> {
        Ok(z.narrow(1, 0, self.categorical)?.argmax(D::Minus1)?)
    }

    /// The categorical code of each row of `z` one-hot: `(B, categorical)` float32.
    pub fn one_hot(&self, z: &Tensor) -> Result<Tensor> {
        let classes = Tensor::arange(0u32, self.categorical as u32, z.device())?.unsqueeze(0)?;
        let categories = self.categories(z)?.unsqueeze(1)?;
        Ok(categories.broadcast_eq(&classes)?.to_dtype(DType::F32)?)
    }

    /// The continuous codes of each row of `z`: `(B, continuous)` float32 values in (-1, 1).
    pub fn continuous_codes(&self, z: &Tensor) -> Result<Tensor> {
        let columns = z.narrow(1, self.categorical, self.continuous)?.to_dtype(DType::F32)?;
        Ok((columns / std::f64::consts::SQRT_2)?.erf()?)
    }

    /// A latent row whose codes are `category` and `values` (each in (-1, 1)) over the noise `noise`
    /// (the latent's remaining columns): the inverse of [`LatentCodes::apply`], for traversals.
    pub fn latent(&self, category: usize, values: &[f64], noise: &[f32]) -> Result<Vec<f32>> {
        if self.categorical > 0 && category >= self.categorical {
            return Err(crate::Error::InvalidInput(format!("category {category} is not below {}", self.categorical)));
        }
        if values.len() != self.continuous || values.iter().any(|v| v.is_nan() || v.abs() >= 1.0) {
            return Err(crate::Error::InvalidInput(format!(
                "expected {} continuous code values in (-1, 1), got {values:?}",
                self.continuous
            )));
        }
        // Any value above the others' is the arg-max; a margin keeps the inverse exact.
        let mut row: Vec<f32> = (0..self.categorical).map(|c| if c == category { 1.0 } else { 0.0 }).collect();
        row.extend(values.iter().map(|&v| (std::f64::consts::SQRT_2 * candle_core::cpu::erf::erf_inv(v)) as f32));
        row.extend_from_slice(noise);
        Ok(row)
    }

    /// A traversal grid's latents, row by row: one row per category (one row without a categorical
    /// code), one column per value of continuous code `code`, the other continuous codes at 0 and the
    /// noise `noise` everywhere, so that rows differ only in the category and columns only in the code.
    pub fn traversal(&self, code: usize, values: &[f64], noise: &[f32]) -> Result<Vec<Vec<f32>>> {
        if code >= self.continuous {
            return Err(crate::Error::InvalidInput(format!(
                "continuous code {code} does not exist; there are {}",
                self.continuous
            )));
        }
        let mut rows = Vec::new();
        for category in 0..self.categorical.max(1) {
            for &v in values {
                let mut codes = vec![0.0; self.continuous];
                codes[code] = v;
                rows.push(self.latent(category, &codes, noise)?);
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn codes_come_from_the_latent_and_back() {
        let codes = LatentCodes { categorical: 3, continuous: 2 };
        let z =
            Tensor::new(&[[0.1f32, 2.0, -1.0, 0.0, 1.0, 7.0], [3.0, 0.0, 0.5, -1.0, 0.0, 8.0]], &Device::Cpu).unwrap();
        let x = codes.apply(&z).unwrap().to_vec2::<f32>().unwrap();
        // erf(1 / sqrt 2) = 0.682689: the normal's mass within one standard deviation.
        let expected = [[0.0, 1.0, 0.0, 0.0, 0.682_689, 7.0], [1.0, 0.0, 0.0, -0.682_689, 0.0, 8.0]];
        for (row, want) in x.iter().zip(expected) {
            for (a, b) in row.iter().zip(want) {
                assert!((a - b).abs() < 1e-5, "{row:?} vs {want:?}");
            }
        }
        assert_eq!(codes.categories(&z).unwrap().to_vec1::<u32>().unwrap(), vec![1, 0]);
        let row = codes.latent(2, &[0.5, -0.25], &[7.0]).unwrap();
        let back = codes.apply(&Tensor::new(row.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap()).unwrap();
        let back = back.squeeze(0).unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in back.iter().zip([0.0, 0.0, 1.0, 0.5, -0.25, 7.0]) {
            assert!((a - b).abs() < 1e-5, "{back:?}");
        }
    }

    #[test]
    fn bad_codes_are_refused() {
        let codes = LatentCodes { categorical: 10, continuous: 2 };
        assert!(codes.check(11).is_err());
        assert!(codes.check(12).is_ok());
        assert!(LatentCodes { categorical: 1, continuous: 0 }.check(4).is_err());
        assert!(codes.latent(10, &[0.0, 0.0], &[]).is_err());
        assert!(codes.latent(0, &[1.0, 0.0], &[]).is_err());
        assert!(codes.latent(0, &[0.0], &[]).is_err());
        assert!(codes.traversal(2, &[0.0], &[]).is_err());
    }

    #[test]
    fn a_traversal_varies_the_category_by_row_and_one_code_by_column() {
        let codes = LatentCodes { categorical: 2, continuous: 2 };
        let rows = codes.traversal(1, &[-0.5, 0.5], &[3.0]).unwrap();
        let z = Tensor::new(rows, &Device::Cpu).unwrap();
        let x = codes.apply(&z).unwrap().to_vec2::<f32>().unwrap();
        let expected = [
            [1.0, 0.0, 0.0, -0.5, 3.0],
            [1.0, 0.0, 0.0, 0.5, 3.0],
            [0.0, 1.0, 0.0, -0.5, 3.0],
            [0.0, 1.0, 0.0, 0.5, 3.0],
        ];
        for (row, want) in x.iter().zip(expected) {
            for (a, b) in row.iter().zip(want) {
                assert!((a - b).abs() < 1e-5, "{row:?} vs {want:?}");
            }
        }
    }
}
