//! FID and KID checked against references: Inception features of fixed images against the original
//! PyTorch implementation (fixtures/fid_reference.json, made by scripts/inception_reference.py), the
//! Fréchet distance against scipy and against closed forms.
//!
//! The Inception test needs the weights of `just fid-weights` (data/fid/); without them it says so and
//! passes, unless CONDOR_REQUIRE_FID_WEIGHTS is set (CI sets it after fetching them).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use condor_core::derived_rng;
use condor_metrics::fid::{frechet_distance, kernel_inception_distance, FeatureStats};
use condor_metrics::FidInception;
use rand_distr::{Distribution, StandardNormal};

fn reference() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fid_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The two 3x64x64 images of scripts/inception_reference.py, values 0..255.
fn reference_images() -> Tensor {
    let s = 64usize;
    let mut v = vec![0f32; 2 * 3 * s * s];
    for c in 0..3 {
        for y in 0..s {
            for x in 0..s {
                v[(c * s + y) * s + x] = ((4 * x + 3 * y + 85 * c) % 256) as f32;
                v[((3 + c) * s + y) * s + x] = ((x * x + 3 * y * y + 37 * c * x + 11 * c) % 256) as f32;
            }
        }
    }
    Tensor::from_vec(v, (2, 3, s, s), &Device::Cpu).unwrap()
}

#[test]
fn inception_features_match_the_pytorch_reference() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let net = match FidInception::load_default(&root, &Device::Cpu) {
        Ok(net) => net,
        Err(e @ condor_metrics::Error::MissingWeights(_))
            if std::env::var_os("CONDOR_REQUIRE_FID_WEIGHTS").is_none() =>
        {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let ours = net.features_0_255(&reference_images()).unwrap().to_vec2::<f32>().unwrap();
    let expected = reference()["features"].clone();
    for (i, row) in ours.iter().enumerate() {
        let want: Vec<f32> = expected[i].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(row.len(), 2048);
        let dot: f64 = row.iter().zip(&want).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
        let norm = |v: &[f32]| v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let cosine = dot / (norm(row) * norm(&want));
        let max_err = row.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        eprintln!("image {i}: cosine {cosine:.8}, max abs error {max_err:.2e} (largest feature {max_ref:.3})");
        assert!(cosine >= 0.9999, "image {i}: cosine {cosine}");
        assert!(max_err <= 2e-3 * max_ref.max(1.0), "image {i}: max abs error {max_err}");
    }
}

fn gaussian_rows(n: usize, mean: &[f64], chol: &[Vec<f64>], seed: u64) -> Vec<Vec<f32>> {
    let d = mean.len();
    let mut rng = derived_rng(seed, &[]);
    (0..n)
        .map(|_| {
            let z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
            (0..d).map(|i| (mean[i] + (0..=i).map(|k| chol[i][k] * z[k]).sum::<f64>()) as f32).collect()
        })
        .collect()
}

#[test]
fn fid_of_a_set_with_itself_is_zero() {
    let chol = vec![vec![1.0, 0.0, 0.0], vec![0.5, 1.2, 0.0], vec![-0.3, 0.4, 0.8]];
    let rows = gaussian_rows(500, &[1.0, -2.0, 0.5], &chol, 1);
    let s = FeatureStats::from_rows(&rows, true).unwrap();
    let fid = frechet_distance(&s, &s).unwrap();
    assert!(fid.abs() < 1e-9, "{fid}");
    // KID is unbiased: between subsets of one set it is zero within its standard error, and far from
    // zero for a shifted set.
    let kid = kernel_inception_distance(&s, &s, 50, 100, 0).unwrap();
    let standard_error = kid.std / (kid.subsets as f64).sqrt();
    assert!(kid.mean.abs() < 3.0 * standard_error && kid.subset_size == 100, "{kid:?}");
    let shifted = FeatureStats::from_rows(&gaussian_rows(500, &[2.0, -1.0, 1.5], &chol, 2), true).unwrap();
    let far = kernel_inception_distance(&s, &shifted, 50, 100, 0).unwrap();
    assert!(far.mean > 20.0 * standard_error, "{far:?} vs {kid:?}");
}

fn stats(mean: Vec<f64>, cov: Vec<f64>) -> FeatureStats {
    FeatureStats { count: 2, mean, cov, features: None }
}

#[test]
fn fid_between_gaussians_equals_the_closed_form() {
    // Σ₂ = 4 Σ₁ with Σ₁ not diagonal: tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½) = tr Σ₁ (1 + 4 − 4) = tr Σ₁.
    let chol = [[1.0, 0.0, 0.0], [0.5, 1.2, 0.0], [-0.3, 0.4, 0.8]];
    let cov1: Vec<f64> = (0..9).map(|k| (0..3).map(|m| chol[k / 3][m] * chol[k % 3][m]).sum()).collect();
    let tr1 = cov1[0] + cov1[4] + cov1[8];
    let (m1, m2) = (vec![1.0, -2.0, 0.5], vec![0.0, 0.0, 2.5]);
    let closed = 1.0 + 4.0 + 4.0 + tr1;
    let exact =
        frechet_distance(&stats(m1.clone(), cov1.clone()), &stats(m2.clone(), cov1.iter().map(|v| 4.0 * v).collect()))
            .unwrap();
    assert!((exact - closed).abs() < 1e-10, "{exact} vs {closed}");

    // And from samples of the two Gaussians, within sampling error.
    let chol_v: Vec<Vec<f64>> = chol.iter().map(|r| r.to_vec()).collect();
    let chol2: Vec<Vec<f64>> = chol_v.iter().map(|r| r.iter().map(|v| 2.0 * v).collect()).collect();
    let a = FeatureStats::from_rows(&gaussian_rows(20_000, &m1, &chol_v, 2), false).unwrap();
    let b = FeatureStats::from_rows(&gaussian_rows(20_000, &m2, &chol2, 3), false).unwrap();
    let sampled = frechet_distance(&a, &b).unwrap();
    assert!((sampled - closed).abs() < 0.03 * closed, "{sampled} vs {closed}");
}

#[test]
fn fid_matches_scipy_on_non_commuting_covariances() {
    let a: Vec<Vec<f32>> = (0..40)
        .map(|i| (0..6).map(|j| ((0.7 * i as f64 + 1.3 * j as f64).sin() + 0.1 * j as f64) as f32).collect())
        .collect();
    let b: Vec<Vec<f32>> = (0..40)
        .map(|i| (0..6).map(|j| ((0.5 * (i * (j + 1)) as f64).cos() * (1.0 + 0.2 * j as f64) + 0.3) as f32).collect())
        .collect();
    let fid =
        frechet_distance(&FeatureStats::from_rows(&a, false).unwrap(), &FeatureStats::from_rows(&b, false).unwrap())
            .unwrap();
    let scipy = reference()["fid"].as_f64().unwrap();
    // The features pass through f32 here and stay f64 in numpy.
    assert!((fid - scipy).abs() < 1e-5 * scipy.max(1.0), "{fid} vs scipy {scipy}");
}
