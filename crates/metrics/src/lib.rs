//! # condor-metrics: numbers to compare GANs by
//!
//! - Mode coverage on 2D Gaussian mixtures, the standard test for mode collapse (as in Unrolled GAN,
//!   VEEGAN and PacGAN).
//! - [`digits`]: a CNN digit classifier that judges generated digits, and the spread of an image set.
//! - [`attributes`]: a multi-attribute CNN that judges generated birds.
//! - [`clustering`]: an unsupervised clustering's accuracy under the best matching of clusters to labels;
//!   [`neighbours`]: the 1-nearest-neighbour accuracy of learned features.
//! - [`mode_histogram`]: the discrete modes (Stacked MNIST's digit triples) a set of samples reaches.
//! - [`inception`]: the Inception-v3 network of the standard FID; [`fid`]: FID, KID and cached
//!   feature statistics.

pub mod attributes;
pub mod clustering;
pub mod digits;
pub mod error;
pub mod fid;
pub mod inception;
pub mod locator;
pub mod mode_histogram;
pub mod neighbours;

pub use attributes::{AttributeClassifier, AttributeTraining};
pub use error::{Error, Result};
pub use fid::{frechet_distance, kernel_inception_distance, FeatureStats, Kid};
pub use inception::FidInception;
pub use locator::Locator;

use serde::{Deserialize, Serialize};

/// How well a set of 2D samples covers a mixture's modes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModeCoverage {
    /// Number of modes in the mixture.
    pub modes: usize,
    /// Modes hit by at least `min_hits` samples within `radius` of their centre.
    pub modes_hit: usize,
    /// Share of samples within `radius` of some mode ("high-quality" samples).
    pub high_quality: f64,
    /// High-quality samples per mode.
    pub per_mode: Vec<usize>,
    /// For conditional samples: share that landed within `radius` of the mode they were asked for.
    pub in_requested_mode: Option<f64>,
    /// The distance that counts as a hit (3 standard deviations by convention).
    pub radius: f32,
}

/// Scores `points` (pairs of x, y) against mode `centers`. A sample within `3 * std` of a centre is
/// high quality and counts for that mode; a mode is hit when it has at least `min_hits` such samples.
/// When `requested` gives each sample's asked-for mode, the share landing there is reported too.
pub fn mode_coverage(
    points: &[[f32; 2]],
    centers: &[[f32; 2]],
    std: f32,
    min_hits: usize,
    requested: Option<&[usize]>,
) -> ModeCoverage {
    let radius = 3.0 * std;
    let mut per_mode = vec![0usize; centers.len()];
    let mut in_requested = 0usize;
    for (i, p) in points.iter().enumerate() {
        let (nearest, dist) = centers
            .iter()
            .enumerate()
            .map(|(k, c)| (k, ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt()))
            .fold((0, f32::INFINITY), |best, cur| if cur.1 < best.1 { cur } else { best });
        if dist <= radius {
            per_mode[nearest] += 1;
            if requested.is_some_and(|r| r[i] == nearest) {
                in_requested += 1;
            }
        }
    }
    let n = points.len().max(1) as f64;
    ModeCoverage {
        modes: centers.len(),
        modes_hit: per_mode.iter().filter(|&&c| c >= min_hits.max(1)).count(),
        high_quality: per_mode.iter().sum::<usize>() as f64 / n,
        per_mode,
        in_requested_mode: requested.map(|_| in_requested as f64 / n),
        radius,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hits_quality_and_requested_modes() {
        let centers = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let points = [[0.1, 0.0], [0.0, -0.2], [10.0, 0.29], [5.0, 5.0], [0.0, 10.31]];
        let c = mode_coverage(&points, &centers, 0.1, 1, Some(&[0, 1, 1, 2, 2]));
        assert_eq!(c.per_mode, vec![2, 1, 0]);
        assert_eq!(c.modes_hit, 2);
        assert!((c.high_quality - 0.6).abs() < 1e-12);
        // Samples 0 and 2 land in their requested modes; sample 1 was asked for mode 1 but landed in
        // mode 0, and samples 3 and 4 land in none.
        assert!((c.in_requested_mode.unwrap() - 0.4).abs() < 1e-12);
        let strict = mode_coverage(&points, &centers, 0.1, 2, None);
        assert_eq!(strict.modes_hit, 1);
        assert_eq!(strict.in_requested_mode, None);
    }
}
