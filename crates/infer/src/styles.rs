//! Sampling in the style space of style-based generators (those exposing
//! [`condor_core::StyleControl`]): the truncation trick and style-mixing grids.
//!
//! **Truncation without a style space.** A generator with conditioning augmentation
//! ([`condor_core::Generator::augmentation_draw`], the `dcgan` plugin) is truncated in the
//! augmentation: `c = mu + psi sigma eps`, so `psi = 0` draws every image of a prompt from the
//! caption's mean code `mu`, and the image noise z is left alone.
//!
//! **Truncation centre.** For an unconditional generator the centre is the moving average of w
//! tracked during training and stored in the checkpoint. For a conditional one it is the average
//! style *of the condition*, `mean_k map(z_k, c)` over [`CENTRE_SAMPLES`] fixed latents (which also
//! average over conditioning augmentation's draw): the global average mixes every caption, so
//! truncating toward it would pull "a red bird" and "a blue bird" toward the same average bird and
//! lose what the prompt asked for. Per-condition centres keep the condition at every `psi`, which is
//! why StyleGAN2-ADA's conditional models do the same; tracking them in training is impossible for
//! free text, so they are computed at sampling time (a few thousand mapping-network rows).

use candle_core::{DType, Device, Tensor};
use condor_core::rng::{normal, Stream};
use condor_core::{Conditioning, Generator, NoiseInputs, StyleControl};

use crate::error::{InferError, Result};

/// Latents averaged for a condition's centre.
pub const CENTRE_SAMPLES: usize = 512;

/// Sampling-time options of style-based generators. The default (no truncation, noise from the
/// latent) samples exactly as `Generator::forward` does, for every generator.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StyleOptions {
    /// Truncation `psi`: `w = centre + psi (w - centre)`; 1 changes nothing, 0 gives the centre.
    pub truncation: Option<f64>,
    /// Where the noise inputs come from.
    pub noise: NoiseInputs,
}

impl StyleOptions {
    /// Whether these options sample exactly like `Generator::forward` in inference mode.
    pub fn is_plain(&self) -> bool {
        self.truncation.is_none() && self.noise == NoiseInputs::FromLatent
    }
}

/// The style space of `g`, or an error saying that the options need one.
pub fn style_space(g: &dyn Generator) -> Result<&dyn StyleControl> {
    g.styles().ok_or_else(|| {
        InferError::Request(
            "this generator has no style space: noise modes and style mixing need a style-based generator such \
             as `stylegan`, and truncation needs one or conditioning augmentation"
                .into(),
        )
    })
}

/// Parses a noise mode name: `latent`, `fixed` or `zero`.
pub fn parse_noise(name: &str) -> Result<NoiseInputs> {
    match name {
        "latent" => Ok(NoiseInputs::FromLatent),
        "fixed" => Ok(NoiseInputs::Fixed),
        "zero" => Ok(NoiseInputs::Zero),
        other => Err(InferError::Request(format!("unknown noise mode `{other}`; use latent, fixed or zero"))),
    }
}

/// The truncation centre for each row of `cond` (one row, the tracked average, without conditioning).
/// Identical rows share one estimate.
pub fn style_centres(
    sc: &dyn StyleControl,
    latent_dim: usize,
    cond: Option<&Conditioning>,
    device: &Device,
) -> Result<Tensor> {
    let Some(cond) = cond else { return Ok(sc.average_style()?.unsqueeze(0)?) };
    let rows: Vec<Vec<f32>> = cond.embedding.to_dtype(DType::F32)?.to_vec2()?;
    let mut unique: Vec<&Vec<f32>> = Vec::new();
    let index: Vec<u32> = rows
        .iter()
        .map(|r| {
            let i = unique.iter().position(|u| *u == r).unwrap_or_else(|| {
                unique.push(r);
                unique.len() - 1
            });
            i as u32
        })
        .collect();
    let k = CENTRE_SAMPLES;
    let z = normal(&mut Stream::FixedNoise(Some(3)).rng(0), (k, latent_dim), device)?;
    let mut centres = Vec::with_capacity(unique.len());
    for row in unique {
        let e = Tensor::from_slice(row, (1, row.len()), device)?.broadcast_as((k, row.len()))?.contiguous()?;
        centres.push(sc.map(&z, Some(&Conditioning::from_embedding(e)?))?.mean_keepdim(0)?);
    }
    let index = Tensor::from_vec(index, rows.len(), device)?;
    Ok(Tensor::cat(&centres, 0)?.index_select(&index, 0)?)
}

/// Styles `(B, style_dim)` for latents `z` under `cond`, truncated as `options` ask.
fn styles(
    g: &dyn Generator,
    sc: &dyn StyleControl,
    z: &Tensor,
    cond: Option<&Conditioning>,
    options: &StyleOptions,
) -> Result<Tensor> {
    let w = sc.map(z, cond)?;
    Ok(match options.truncation {
        // psi = 1 is exactly no truncation (as in StyleGAN's code), not a round trip through the centre.
        Some(psi) if psi != 1.0 => {
            let centre = style_centres(sc, g.latent_dim(), cond, z.device())?;
            centre.broadcast_add(&(w.broadcast_sub(&centre)? * psi)?)?
        }
        _ => w,
    })
}

/// `L` copies of each row's style: `(B, L, style_dim)`.
fn per_layer(w: &Tensor, layers: usize) -> Result<Tensor> {
    Ok(w.unsqueeze(1)?.repeat((1, layers, 1))?)
}

/// Generates in inference mode under `options`: exactly `g.forward(z, cond, false)` when they are
/// plain; otherwise through the style space (an error for generators without one).
pub fn generate_styled(
    g: &dyn Generator,
    z: &Tensor,
    cond: Option<&Conditioning>,
    options: &StyleOptions,
) -> Result<Tensor> {
    let cond = g.conditioning().select(cond);
    if options.is_plain() {
        return Ok(g.forward(z, cond, false)?);
    }
    if let Some(psi) = options.truncation {
        if !psi.is_finite() {
            return Err(InferError::Request(format!("truncation psi must be a finite number, not {psi}")));
        }
    }
    if let (None, Some(psi), NoiseInputs::FromLatent, Some(draw)) =
        (g.styles(), options.truncation, options.noise, g.augmentation_draw())
    {
        return Ok(g.forward(&scale_columns(z, draw, psi)?, cond, false)?);
    }
    let sc = style_space(g)?;
    let w = styles(g, sc, z, cond, options)?;
    Ok(sc.synthesize(&per_layer(&w, sc.style_count())?, z, options.noise)?)
}

/// `z` with its columns `range` multiplied by `factor`.
fn scale_columns(z: &Tensor, range: std::ops::Range<usize>, factor: f64) -> Result<Tensor> {
    let width = z.dim(1)?;
    let head = z.narrow(1, 0, range.start)?;
    let scaled = (z.narrow(1, range.start, range.len())? * factor)?;
    let tail = z.narrow(1, range.end, width - range.end)?;
    Ok(Tensor::cat(&[&head, &scaled, &tail], 1)?)
}

/// What a style-mixing grid mixes: `n` latents for each of two conditions (one row each, or none for
/// an unconditional generator), crossing over at style layer `crossover`, latents drawn from `seed`.
#[derive(Clone, Copy, Debug)]
pub struct StyleMix<'a> {
    /// The condition whose images give the coarse styles (layers below `crossover`: pose, shape).
    pub coarse: Option<&'a Conditioning>,
    /// The condition whose images give the fine styles (the rest: colour, texture).
    pub fine: Option<&'a Conditioning>,
    /// Latents per condition.
    pub n: usize,
    /// First style layer taken from the fine source.
    pub crossover: usize,
    /// Seed of the latents.
    pub seed: u64,
}

/// A style-mixing grid as in StyleGAN's figure. The top row holds the fine condition's images, the
/// left column the coarse condition's; the cell at row i, column j takes the coarse styles from coarse
/// latent i and the fine styles from fine latent j, with the fine latent's noise. Returns
/// `((n + 1)^2, C, H, W)` images row by row, the top-left one blank (-1).
pub fn style_mixing_grid(g: &dyn Generator, mix: &StyleMix, options: &StyleOptions, device: &Device) -> Result<Tensor> {
    let StyleMix { coarse, fine, n, crossover, seed } = *mix;
    let sc = style_space(g)?;
    let layers = sc.style_count();
    if !(1..layers).contains(&crossover) {
        return Err(InferError::Request(format!(
            "the crossover must be a layer from 1 to {}, not {crossover}",
            layers - 1
        )));
    }
    if [coarse, fine].iter().flatten().any(|c| c.batch_size() != 1) {
        return Err(InferError::Request("style mixing takes one conditioning row (one prompt) per source".into()));
    }
    let mut rng = Stream::FixedNoise(Some(4)).rng(seed);
    let za = normal(&mut rng, (n, g.latent_dim()), device)?;
    let zb = normal(&mut rng, (n, g.latent_dim()), device)?;
    let repeat = |c: Option<&Conditioning>| -> Result<Option<Conditioning>> {
        c.map(|c| {
            Ok(Conditioning::from_embedding(c.embedding.to_device(device)?.broadcast_as((n, c.dim()))?.contiguous()?)?)
        })
        .transpose()
    };
    let (ca, cb) = (repeat(g.conditioning().select(coarse))?, repeat(g.conditioning().select(fine))?);
    let wa = styles(g, sc, &za, ca.as_ref(), options)?;
    let wb = styles(g, sc, &zb, cb.as_ref(), options)?;
    let dim = sc.style_dim();
    // Every (i, j) pair: coarse layers from wa[i], fine layers from wb[j].
    let a = wa.unsqueeze(1)?.broadcast_as((n, n, dim))?.reshape((n * n, 1, dim))?.repeat((1, crossover, 1))?;
    let b = wb.unsqueeze(0)?.broadcast_as((n, n, dim))?.reshape((n * n, 1, dim))?.repeat((1, layers - crossover, 1))?;
    let z_noise = zb.unsqueeze(0)?.broadcast_as((n, n, g.latent_dim()))?.reshape((n * n, g.latent_dim()))?;
    let mixed = sc.synthesize(&Tensor::cat(&[&a, &b], 1)?, &z_noise, options.noise)?;
    let sources_a = sc.synthesize(&per_layer(&wa, layers)?, &za, options.noise)?;
    let sources_b = sc.synthesize(&per_layer(&wb, layers)?, &zb, options.noise)?;
    let blank = (sources_a.get(0)?.ones_like()? * -1.0)?.unsqueeze(0)?;
    let mut rows = vec![blank, sources_b];
    for i in 0..n {
        rows.push(sources_a.narrow(0, i, 1)?);
        rows.push(mixed.narrow(0, i * n, n)?);
    }
    Ok(Tensor::cat(&rows, 0)?)
}
