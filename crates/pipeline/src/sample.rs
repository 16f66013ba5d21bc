//! Sampling from trained generators: from a live trainer or from a checkpoint, to tensors, plots and
//! metrics.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use condor_core::rng::normal;
use condor_core::{derived_rng, Conditioning, ConditioningKind, Generator, Params, Registry, Rng};
use condor_data::{DatasetConfig, Mixture};
use condor_metrics::ModeCoverage;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::config::RunConfig;
use crate::error::{PipelineError, Result};
use crate::plot;

/// The random stream of the fixed noise used for progress plots, distinct from training streams.
pub const FIXED_NOISE_STREAM: u64 = u64::MAX;

/// A generator rebuilt from a checkpoint (the EMA copy when the checkpoint has one).
pub struct LoadedGenerator {
    /// The generator, ready for inference.
    pub generator: Box<dyn Generator>,
    /// Its variables.
    pub params: Params,
    /// The run config stored in the checkpoint.
    pub config: RunConfig,
    /// The step the checkpoint was written at.
    pub step: u64,
    /// Whether these are the EMA weights.
    pub is_ema: bool,
}

impl LoadedGenerator {
    /// Reads a checkpoint and rebuilds its generator through `registry` on `device`.
    pub fn load(path: &Path, registry: &Registry, device: &Device) -> Result<Self> {
        let ckpt = Checkpoint::load(path, device)?;
        let is_ema = ckpt.has_group("ema");
        let params = Params::new(0);
        let generator = registry.build_generator(&ckpt.config.generator, params.var_builder(DType::F32, device))?;
        params.load(&ckpt.group(if is_ema { "ema" } else { "g" })).map_err(|reason| CheckpointError::Mismatch {
            path: path.to_path_buf(),
            reason: format!("generator: {reason}"),
        })?;
        Ok(Self { generator, params, config: ckpt.config, step: ckpt.state.step, is_ema })
    }
}

/// Draws `n` samples in inference mode with latent codes from `rng`.
pub fn generate(
    g: &dyn Generator,
    n: usize,
    cond: Option<&Conditioning>,
    rng: &mut Rng,
    device: &Device,
) -> Result<Tensor> {
    let z = normal(rng, (n, g.latent_dim()), device)?;
    Ok(g.forward(&z, g.conditioning().select(cond), false)?)
}

/// Samples from a generator trained on a 2D mixture. A conditional generator is asked for each mode
/// in turn (`i % modes`), and the requested modes are returned with the points.
pub fn mixture_samples(
    g: &dyn Generator,
    mixture: &Mixture,
    n: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<(Vec<[f32; 2]>, Option<Vec<usize>>)> {
    let modes = mixture.centers().len();
    let requested: Option<Vec<usize>> =
        (g.conditioning() != ConditioningKind::None).then(|| (0..n).map(|i| i % modes).collect());
    let cond = requested.as_ref().map(|r| Conditioning::one_hot(r, modes, device)).transpose()?;
    let out = generate(g, n, cond.as_ref(), rng, device)?;
    if out.dims() != [n, 2] {
        return Err(PipelineError::Config(format!("expected 2D points, the generator made {:?}", out.dims())));
    }
    let flat: Vec<f32> = out.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    Ok((flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect(), requested))
}

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
    let mixture = data.mixture().map_err(|e| PipelineError::Config(e.to_string()))?;
    let (points, requested) =
        mixture_samples(g, &mixture, n, &mut derived_rng(seed, &[FIXED_NOISE_STREAM, 1]), device)?;
    Ok(condor_metrics::mode_coverage(&points, mixture.centers(), mixture.std(), min_hits, requested.as_deref()))
}

/// Writes a picture of `n` samples: a scatter plot for 2D points, an image grid for images.
pub fn write_samples(
    path: &Path,
    g: &dyn Generator,
    data: &DatasetConfig,
    n: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<()> {
    match g.sample_shape().as_slice() {
        [2] => {
            let mixture = data.mixture().map_err(|e| PipelineError::Config(e.to_string()))?;
            let (points, requested) = mixture_samples(g, &mixture, n, rng, device)?;
            plot::scatter_png(path, &points, mixture.centers(), 3.0 * mixture.std(), requested.as_deref())
        }
        [_, _, _] => {
            let images = generate(g, n, None, rng, device)?;
            plot::image_grid_png(path, &images, (n as f64).sqrt().ceil() as usize)
        }
        other => Err(PipelineError::Config(format!("no picture for samples of shape {other:?}"))),
    }
}
