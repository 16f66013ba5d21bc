//! Sampling from generators, live in training or loaded for inference: latent draws, 2D mixture
//! points, prompt rows, and the pictures of each.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use condor_core::rng::normal;
use condor_core::{Conditioning, ConditioningKind, Generator, Rng};
use condor_data::{DatasetConfig, Mixture};

use crate::error::{InferError, Result};
use crate::plot;
use crate::styles::{generate_styled, StyleOptions};

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
        return Err(InferError::Request(format!("expected 2D points, the generator made {:?}", out.dims())));
    }
    let flat: Vec<f32> = out.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    Ok((flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect(), requested))
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
            let mixture = data.mixture().map_err(InferError::Data)?;
            let (points, requested) = mixture_samples(g, &mixture, n, rng, device)?;
            plot::scatter_png(path, &points, mixture.centers(), 3.0 * mixture.std(), requested.as_deref())
        }
        [_, _, _] => {
            let images = generate(g, n, None, rng, device)?;
            plot::image_grid_png(path, &images, (n as f64).sqrt().ceil() as usize)
        }
        other => Err(InferError::Request(format!("no picture for samples of shape {other:?}"))),
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
        return Err(InferError::Request(format!("the number of images per prompt must be 1 to 1024, not {n}")));
    }
    let p = cond.batch_size();
    let z = normal(rng, (n, g.latent_dim()), device)?;
    let z = z.unsqueeze(0)?.broadcast_as((p, n, g.latent_dim()))?.reshape((p * n, g.latent_dim()))?;
    let rows = Conditioning { tokens: None, ..cond.to_device(device)? }.repeat_each(n)?;
    generate_styled(g, &z, Some(&rows), options)
}

/// `(N, C, S, S)` images in [-1, 1] (C = 3, or 1 for grey) as 8-bit RGB rows, one `Vec` per image.
pub fn to_rgb8(images: &Tensor) -> Result<Vec<Vec<u8>>> {
    let (_, c, h, w) = images.dims4()?;
    if (c != 3 && c != 1) || h != w {
        return Err(InferError::Request(format!("expected square RGB or grey images, got {:?}", images.dims())));
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
