//! Fréchet Inception Distance and Kernel Inception Distance on feature vectors, and cached feature
//! statistics of a real image set.
//!
//! - FID (Heusel et al. 2017): ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½). The trace of the square root is
//!   the sum of the square roots of the eigenvalues of Σ₁^½ Σ₂ Σ₁^½ (the same eigenvalues as Σ₁Σ₂, but a
//!   symmetric matrix), from two symmetric eigendecompositions by `faer`.
//! - KID (Bińkowski et al. 2018): the unbiased MMD² estimate with the kernel k(x, y) = (xᵀy / d + 1)³,
//!   averaged over random subsets, with its standard deviation over the subsets (as StyleGAN2-ADA's code).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use condor_core::derived_rng;
use faer::{Mat, Side};
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Mean and covariance of a set of feature vectors (float64), with the features themselves when kept
/// (KID needs them).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureStats {
    /// Number of vectors.
    pub count: usize,
    /// Mean, length `dim`.
    pub mean: Vec<f64>,
    /// Unbiased covariance (divided by count - 1), `dim x dim`, row-major.
    pub cov: Vec<f64>,
    /// The feature vectors, `count x dim`, row-major, when kept.
    pub features: Option<Vec<f32>>,
}

impl FeatureStats {
    /// Statistics of `rows` (each of the same length); `keep` keeps the vectors for KID.
    pub fn from_rows(rows: &[Vec<f32>], keep: bool) -> Result<Self> {
        let n = rows.len();
        let dim = rows.first().map_or(0, Vec::len);
        if n < 2 || dim == 0 || rows.iter().any(|r| r.len() != dim) {
            return Err(Error::Input(format!("feature statistics need at least 2 vectors of one length, got {n}")));
        }
        if rows.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::Input("feature vectors contain NaN or infinity".into()));
        }
        let mut mean = vec![0f64; dim];
        for r in rows {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let centred = Mat::<f64>::from_fn(n, dim, |i, j| rows[i][j] as f64 - mean[j]);
        let cov = centred.transpose() * &centred;
        let scale = 1.0 / (n as f64 - 1.0);
        let cov = (0..dim * dim).map(|k| cov[(k / dim, k % dim)] * scale).collect();
        let features = keep.then(|| rows.iter().flatten().copied().collect());
        Ok(Self { count: n, mean, cov, features })
    }

    /// Length of the feature vectors.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    fn cov_mat(&self) -> Mat<f64> {
        let d = self.dim();
        Mat::from_fn(d, d, |i, j| self.cov[i * d + j])
    }

    /// Writes the statistics (and features, if kept) as safetensors, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let d = self.dim();
        let cpu = Device::Cpu;
        let mut map = HashMap::new();
        map.insert("mean".to_string(), Tensor::from_slice(&self.mean, d, &cpu)?);
        map.insert("cov".to_string(), Tensor::from_slice(&self.cov, (d, d), &cpu)?);
        map.insert("count".to_string(), Tensor::new(&[self.count as f64], &cpu)?);
        if let Some(f) = &self.features {
            map.insert("features".to_string(), Tensor::from_slice(f, (self.count, d), &cpu)?);
        }
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let tmp = path.with_extension("safetensors.tmp");
        candle_core::safetensors::save(&map, &tmp)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads statistics written by [`Self::save`], checking their shapes.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |why: String| Error::BadFile { path: path.to_path_buf(), why };
        let map = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| bad(format!("not readable feature statistics ({e})")))?;
        let get = |k: &str| map.get(k).ok_or_else(|| bad(format!("no `{k}` tensor")));
        let mean = get("mean")?.to_vec1::<f64>().map_err(|e| bad(format!("mean: {e}")))?;
        let d = mean.len();
        let cov_t = get("cov")?;
        if cov_t.dims() != [d, d] {
            return Err(bad(format!("cov has shape {:?}, expected [{d}, {d}]", cov_t.dims())));
        }
        let cov = cov_t.flatten_all()?.to_vec1::<f64>().map_err(|e| bad(format!("cov: {e}")))?;
        let count = get("count")?.to_vec1::<f64>().map_err(|e| bad(format!("count: {e}")))?;
        let count = count.first().copied().unwrap_or(0.0) as usize;
        let features = match map.get("features") {
            Some(t) if t.dims() == [count, d] => Some(t.flatten_all()?.to_vec1::<f32>()?),
            Some(t) => return Err(bad(format!("features have shape {:?}, expected [{count}, {d}]", t.dims()))),
            None => None,
        };
        Ok(Self { count, mean, cov, features })
    }
}

fn check_finite(m: &Mat<f64>, what: &str) -> Result<()> {
    let n = m.nrows();
    for i in 0..n {
        for j in 0..m.ncols() {
            if !m[(i, j)].is_finite() {
                return Err(Error::LinearAlgebra(format!("{what} contains NaN or infinity")));
            }
        }
    }
    Ok(())
}

/// tr((Σ₁Σ₂)^½) for symmetric positive semi-definite Σ₁, Σ₂: Σ₁^½ from Σ₁'s eigendecomposition, then the
/// eigenvalues of Σ₁^½ Σ₂ Σ₁^½. Eigenvalues below zero (rounding on singular matrices) count as zero.
pub fn trace_sqrt_product(a: &Mat<f64>, b: &Mat<f64>) -> Result<f64> {
    check_finite(a, "the first covariance")?;
    check_finite(b, "the second covariance")?;
    let evd = a.self_adjoint_eigen(Side::Lower).map_err(|e| Error::LinearAlgebra(format!("{e:?}")))?;
    let (u, s) = (evd.U(), evd.S().column_vector());
    let n = a.nrows();
    let scaled = Mat::<f64>::from_fn(n, n, |i, j| u[(i, j)] * s[j].max(0.0).sqrt());
    let sqrt_a = &scaled * u.transpose();
    let m = &sqrt_a * b * &sqrt_a;
    // Symmetrise away rounding before the symmetric solver reads one triangle.
    let m = Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let eig = m.self_adjoint_eigenvalues(Side::Lower).map_err(|e| Error::LinearAlgebra(format!("{e:?}")))?;
    Ok(eig.iter().map(|&v| v.max(0.0).sqrt()).sum())
}

/// The Fréchet distance between the Gaussians fitted to two feature sets.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    if a.dim() != b.dim() {
        return Err(Error::Input(format!("feature lengths differ: {} and {}", a.dim(), b.dim())));
    }
    let d = a.dim();
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
    let trace = |s: &FeatureStats| (0..d).map(|i| s.cov[i * d + i]).sum::<f64>();
    let cross = trace_sqrt_product(&a.cov_mat(), &b.cov_mat())?;
    Ok(mean_term + trace(a) + trace(b) - 2.0 * cross)
}

/// KID: mean and standard deviation over subsets of the unbiased MMD² estimate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kid {
    /// Mean over subsets.
    pub mean: f64,
    /// Standard deviation over subsets.
    pub std: f64,
    /// Subsets drawn.
    pub subsets: usize,
    /// Vectors per subset and side.
    pub subset_size: usize,
}

/// The unbiased MMD² between two equally sized sets `x`, `y` (`m x d`) with the cubic polynomial kernel
/// (xᵀy / d + 1)³.
pub fn mmd2_polynomial(x: &Mat<f64>, y: &Mat<f64>) -> f64 {
    let (m, d) = (x.nrows(), x.ncols() as f64);
    let kernel_sum = |a: &Mat<f64>, b: &Mat<f64>, skip_diagonal: bool| {
        let g = a * b.transpose();
        let mut total = 0.0;
        for i in 0..g.nrows() {
            for j in 0..g.ncols() {
                if !(skip_diagonal && i == j) {
                    total += (g[(i, j)] / d + 1.0).powi(3);
                }
            }
        }
        total
    };
    let within = kernel_sum(x, x, true) + kernel_sum(y, y, true);
    let m = m as f64;
    within / (m * (m - 1.0)) - 2.0 * kernel_sum(x, y, false) / (m * m)
}

/// KID between the kept features of `real` and `fake`: `subsets` random subsets of
/// min(`max_subset_size`, both counts) vectors from each side, drawn from `seed`.
pub fn kernel_inception_distance(
    real: &FeatureStats,
    fake: &FeatureStats,
    subsets: usize,
    max_subset_size: usize,
    seed: u64,
) -> Result<Kid> {
    let (Some(rf), Some(ff)) = (&real.features, &fake.features) else {
        return Err(Error::Input("KID needs the feature vectors, not only their statistics".into()));
    };
    if real.dim() != fake.dim() {
        return Err(Error::Input(format!("feature lengths differ: {} and {}", real.dim(), fake.dim())));
    }
    let d = real.dim();
    let m = max_subset_size.min(real.count).min(fake.count);
    if m < 2 || subsets == 0 {
        return Err(Error::Input(format!("KID needs subsets of at least 2 vectors, got {m}")));
    }
    let mut rng = derived_rng(seed, &[0x4b1d]);
    let mut values = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let pick = |rng: &mut condor_core::Rng, src: &[f32], count: usize| {
            let idx = sample(rng, count, m).into_vec();
            Mat::<f64>::from_fn(m, d, |i, j| src[idx[i] * d + j] as f64)
        };
        let x = pick(&mut rng, rf, real.count);
        let y = pick(&mut rng, ff, fake.count);
        values.push(mmd2_polynomial(&x, &y));
    }
    let mean = values.iter().sum::<f64>() / subsets as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / subsets as f64;
    Ok(Kid { mean, std: var.sqrt(), subsets, subset_size: m })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, d: usize, f: impl Fn(usize, usize) -> f32) -> Vec<Vec<f32>> {
        (0..n).map(|i| (0..d).map(|j| f(i, j)).collect()).collect()
    }

    #[test]
    fn statistics_are_the_sample_mean_and_unbiased_covariance() {
        let s = FeatureStats::from_rows(&[vec![1.0, 2.0], vec![3.0, 6.0], vec![5.0, 1.0]], false).unwrap();
        assert_eq!(s.mean, vec![3.0, 3.0]);
        // var x = (4 + 0 + 4) / 2, var y = (1 + 9 + 4) / 2, cov = (-2*-1 + 0 + 2*-2) / 2.
        assert_eq!(s.cov, vec![4.0, -1.0, -1.0, 7.0]);
    }

    #[test]
    fn trace_sqrt_of_commuting_diagonals_is_the_sum_of_sqrt_products() {
        let a = Mat::<f64>::from_fn(3, 3, |i, j| if i == j { [1.0, 4.0, 9.0][i] } else { 0.0 });
        let b = Mat::<f64>::from_fn(3, 3, |i, j| if i == j { [4.0, 1.0, 0.0][i] } else { 0.0 });
        let t = trace_sqrt_product(&a, &b).unwrap();
        assert!((t - (2.0 + 2.0 + 0.0)).abs() < 1e-12, "{t}");
    }

    #[test]
    fn mmd_matches_a_direct_double_sum() {
        let x = Mat::<f64>::from_fn(4, 3, |i, j| ((i * 3 + j) as f64 * 0.37).sin());
        let y = Mat::<f64>::from_fn(4, 3, |i, j| ((i * 5 + j) as f64 * 0.21).cos() + 0.5);
        let k = |a: &Mat<f64>, i: usize, b: &Mat<f64>, j: usize| {
            let dot: f64 = (0..3).map(|c| a[(i, c)] * b[(j, c)]).sum();
            (dot / 3.0 + 1.0).powi(3)
        };
        let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
        for i in 0..4 {
            for j in 0..4 {
                if i != j {
                    xx += k(&x, i, &x, j);
                    yy += k(&y, i, &y, j);
                }
                xy += k(&x, i, &y, j);
            }
        }
        let direct = xx / 12.0 + yy / 12.0 - 2.0 * xy / 16.0;
        assert!((mmd2_polynomial(&x, &y) - direct).abs() < 1e-12);
    }

    #[test]
    fn statistics_round_trip_through_a_file() {
        let s = FeatureStats::from_rows(&rows(5, 3, |i, j| (i * j) as f32 + 0.5), true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.safetensors");
        s.save(&path).unwrap();
        assert_eq!(FeatureStats::load(&path).unwrap(), s);
        std::fs::write(&path, b"not safetensors").unwrap();
        assert!(FeatureStats::load(&path).unwrap_err().to_string().contains("stats.safetensors"));
    }
}
