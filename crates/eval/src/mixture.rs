//! Mode coverage of generators trained on 2D Gaussian mixtures.

use candle_core::Device;
use condor_core::rng::Stream;
use condor_core::Generator;
use condor_data::DatasetConfig;
use condor_infer::sample::mixture_samples;
use condor_metrics::ModeCoverage;

use crate::error::Result;

/// Mode coverage of `n` samples (see [`condor_metrics::mode_coverage`]); `min_hits` samples within
/// 3 sigma make a mode count as hit.
pub fn mixture_coverage(
    g: &dyn Generator,
    data: &DatasetConfig,
    n: usize,
    min_hits: usize,
    seed: u64,
    device: &Device,
) -> Result<ModeCoverage> {
    let mixture = data.mixture()?;
    let (points, requested) = mixture_samples(g, &mixture, n, &mut Stream::FixedNoise(Some(1)).rng(seed), device)?;
    Ok(condor_metrics::mode_coverage(&points, mixture.centers(), mixture.std(), min_hits, requested.as_deref()))
}
