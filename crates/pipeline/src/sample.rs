//! Sampling from trained generators: from a live trainer or from a checkpoint, to tensors, plots and
//! metrics.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use condor_core::rng::{normal, Stream};
use condor_core::{Conditioning, ConditioningKind, Generator, Params, Registry, Rng};
use condor_data::{DatasetConfig, Mixture};
use condor_metrics::ModeCoverage;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::config::RunConfig;
use crate::error::{PipelineError, Result};
use crate::plot;
use crate::styles::{generate_styled, StyleOptions};

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
        Self::from_checkpoint(&Checkpoint::load(path, device)?, registry, device)
    }

    /// Rebuilds the sampling generator ([`Checkpoint::sampling_group`]) of a checkpoint already read.
    pub fn from_checkpoint(ckpt: &Checkpoint, registry: &Registry, device: &Device) -> Result<Self> {
        let group = ckpt.sampling_group();
        let params = Params::new(0);
        let generator = registry.build_generator(&ckpt.config.generator, params.var_builder(DType::F32, device))?;
        params.load(&ckpt.group(group)).map_err(|reason| CheckpointError::Mismatch {
            path: ckpt.path.clone(),
            reason: format!("generator: {reason}"),
        })?;
        Ok(Self { generator, params, config: ckpt.config.clone(), step: ckpt.state.step, is_ema: group == "ema" })
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

/// Points drawn from a 2D generator, with the mode each was asked for when it is conditional.
pub type MixtureSamples = (Vec<[f32; 2]>, Option<Vec<usize>>);

/// Samples from a generator trained on a 2D mixture. A conditional generator is asked for each mode
/// in turn (`i % modes`), and the requested modes are returned with the points.
pub fn mixture_samples(
    g: &dyn Generator,
    mixture: &Mixture,
    n: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<MixtureSamples> {
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
    let (points, requested) = mixture_samples(g, &mixture, n, &mut Stream::FixedNoise(Some(1)).rng(seed), device)?;
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

/// `n` images for each row of `cond` (one row per prompt): the same `n` latent codes, drawn from
/// `rng`, for every prompt, so the rows differ only by their prompt. Returns `(P * n, C, H, W)` in
/// [-1, 1], prompt by prompt.
pub fn prompt_samples(
    g: &dyn Generator,
    cond: &Conditioning,
    n: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<Tensor> {
    prompt_samples_styled(g, cond, n, rng, device, &StyleOptions::default())
}

/// [`prompt_samples`] under style options (truncation, noise mode) for style-based generators.
pub fn prompt_samples_styled(
    g: &dyn Generator,
    cond: &Conditioning,
    n: usize,
    rng: &mut Rng,
    device: &Device,
    options: &StyleOptions,
) -> Result<Tensor> {
    if !(1..=1024).contains(&n) {
        return Err(PipelineError::Config(format!("the number of images per prompt must be 1 to 1024, not {n}")));
    }
    let p = cond.batch_size();
    let z = normal(rng, (n, g.latent_dim()), device)?;
    let z = z.unsqueeze(0)?.broadcast_as((p, n, g.latent_dim()))?.reshape((p * n, g.latent_dim()))?;
    let e = cond.embedding.to_device(device)?;
    let e = e.unsqueeze(1)?.broadcast_as((p, n, e.dim(1)?))?.reshape((p * n, e.dim(1)?))?;
    generate_styled(g, &z, Some(&Conditioning::from_embedding(e)?), options)
}

/// `(N, C, S, S)` images in [-1, 1] (C = 3, or 1 for grey) as 8-bit RGB rows, one `Vec` per image.
pub fn to_rgb8(images: &Tensor) -> Result<Vec<Vec<u8>>> {
    let (_, c, h, w) = images.dims4()?;
    if (c != 3 && c != 1) || h != w {
        return Err(PipelineError::Config(format!("expected square RGB or grey images, got {:?}", images.dims())));
    }
    let images = if c == 1 { images.repeat((1, 3, 1, 1))? } else { images.clone() };
    let n = images.dim(0)?;
    let flat: Vec<f32> = ((images.to_dtype(DType::F32)? + 1.0)? * 0.5)?.flatten_all()?.to_vec1()?;
    let per = 3 * h * w;
    Ok((0..n).map(|i| condor_data::images::planes_to_rgb8(&flat[i * per..(i + 1) * per], h)).collect())
}

/// Writes prompt samples (from [`prompt_samples`]) as a grid: one row of `n` images per prompt, the
/// prompt printed under the row's first image. Small images are enlarged for viewing.
pub fn write_prompt_grid(path: &Path, images: &Tensor, prompts: &[String], n: usize) -> Result<()> {
    let rgb = to_rgb8(images)?;
    let size = images.dim(2)?;
    let captions: Vec<String> =
        (0..rgb.len()).map(|i| if i % n == 0 { prompts[i / n].clone() } else { String::new() }).collect();
    let zoom = (96 / size).max(1) as u32;
    plot::captioned_grid_png(path, &rgb, size, &captions, n, zoom, 3)
}

/// Images drawn from prompts by a text-conditioned generator.
pub struct PromptImages {
    /// `(P * n, C, H, W)` in [-1, 1], prompt by prompt.
    pub images: Tensor,
    /// Indices of prompts longer than the text encoder's limit, which were truncated.
    pub truncated: Vec<usize>,
}

/// The text-to-image path shared by `condor sample` and `examples/txt2img.rs`: encodes `prompts`
/// with the text encoder named in the checkpoint's config, then draws `n` images per prompt with
/// latent codes from `seed` (the same codes for every prompt). Same seed, same images.
pub fn text_to_image(
    loaded: &LoadedGenerator,
    prompts: &[String],
    n: usize,
    seed: u64,
    options: &StyleOptions,
    device: &Device,
) -> Result<PromptImages> {
    let encoded = encode_prompts(loaded, prompts, device)?;
    let mut rng = Stream::FixedNoise(Some(2)).rng(seed);
    let images = prompt_samples_styled(loaded.generator.as_ref(), &encoded.0, n, &mut rng, device, options)?;
    Ok(PromptImages { images, truncated: encoded.1 })
}

/// Encodes prompts with the text encoder named in the checkpoint's config, checking that the
/// generator reads such embeddings. Returns the conditioning and the indices of truncated prompts.
pub fn encode_prompts(
    loaded: &LoadedGenerator,
    prompts: &[String],
    device: &Device,
) -> Result<(Conditioning, Vec<usize>)> {
    let g = loaded.generator.as_ref();
    let dim = g.conditioning().dim();
    if dim == 0 {
        return Err(PipelineError::Config(
            "this checkpoint's generator is not text-conditioned; sample it without prompts".into(),
        ));
    }
    let (encoder, _) = crate::text_data::load_encoder(&loaded.config.text, device)?;
    let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let encoded = encoder.encode_batch(&texts)?;
    if encoded.sentences.dim(1)? != dim {
        return Err(PipelineError::Config(format!(
            "the text encoder makes {}-dimensional embeddings but the generator expects {dim}",
            encoded.sentences.dim(1)?
        )));
    }
    Ok((Conditioning::from_embedding(encoded.sentences)?, encoded.truncated))
}

/// Re-estimates the batch-norm statistics of the sampling generator (the EMA copy when there is one)
/// of checkpoint `src` for its own weights ([`crate::recalibrate_batch_norm`], on the run's training
/// data and seed), and writes the checkpoint with them to `dest`; everything else is kept. Training
/// does this itself at every checkpoint; this repairs checkpoints written before it did, whose EMA
/// copy carries the trained generator's statistics. Returns the number of batches used, or `None`
/// (writing nothing) when the generator has no batch norm.
pub fn recalibrate_checkpoint(src: &Path, dest: &Path, registry: &Registry, device: &Device) -> Result<Option<usize>> {
    let ckpt = Checkpoint::load(src, device)?;
    let LoadedGenerator { generator, params, .. } = LoadedGenerator::from_checkpoint(&ckpt, registry, device)?;
    if !params.named().iter().any(|(n, _)| crate::tricks::is_batch_norm_statistic(n)) {
        return Ok(None);
    }
    let data = crate::text_data::build_data(&ckpt.config, device)?;
    let batches = match ckpt.config.training.ema {
        Some(e) if e.batch_norm_batches > 0 => e.batch_norm_batches,
        _ => crate::tricks::DEFAULT_BATCH_NORM_BATCHES,
    };
    let (batch_size, seed) = (ckpt.config.batch_size, ckpt.config.seed);
    crate::recalibrate_batch_norm(generator.as_ref(), &params, data.as_ref(), batches, batch_size, seed, device)?;
    let group = ckpt.sampling_group();
    let mut tensors: HashMap<String, Tensor> = ckpt.tensors.clone();
    for (name, var) in params.named() {
        tensors.insert(format!("{group}.{name}"), var.as_tensor().to_device(&Device::Cpu)?);
    }
    let tensors: Vec<(String, Tensor)> = tensors.into_iter().collect();
    crate::checkpoint::save(dest, &tensors, &ckpt.config, &ckpt.state)?;
    Ok(Some(batches))
}

/// Writes a checkpoint holding only the generator used for sampling (the EMA copy when there is one),
/// with the run's config and state: what `weights/` ships. It samples like the original but cannot
/// resume training.
pub fn export_generator(src: &Path, dest: &Path) -> Result<()> {
    let ckpt = Checkpoint::load(src, &Device::Cpu)?;
    let group = ckpt.sampling_group();
    let tensors: Vec<(String, Tensor)> =
        ckpt.group(group).into_iter().map(|(n, t)| (format!("{group}.{n}"), t)).collect();
    Ok(crate::checkpoint::save(dest, &tensors, &ckpt.config, &ckpt.state)?)
}
