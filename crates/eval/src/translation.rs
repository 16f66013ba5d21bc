//! How well a translation model (CycleGAN, DiscoGAN) translates between two bird domains, read by the
//! [`BirdJudge`] on test birds it never saw, in both directions:
//! - **translated**: the share of translations that show the target domain's look (every plumage
//!   part in the target colour; the target background);
//! - **kept**: the share whose every other attribute the judge reads is still the input bird's, and
//!   that share per attribute;
//! - **cycle error**: the mean absolute pixel difference (pixels in [0, 1]) between an input and its
//!   round trip;
//! - **counterpart error**: the same between a translation and the ideal one, the same bird rendered
//!   with the target look (the synthetic world knows it; a paired ground truth training never sees);
//! - **FID** of the translations against real images of the target domain, beside the floor of two
//!   real sets of that domain.
//!
//! The judge's own error bounds the first two: the same shares on the ideal translations are
//! reported beside them.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use condor_data::birds::{BirdAttributes, BirdSplit, SyntheticBirds};
use condor_data::unpaired::{BirdDomain, Look};
use condor_infer::Translator;
use condor_metrics::fid::{frechet_distance, FeatureStats};
use condor_metrics::FidInception;
use serde::{Deserialize, Serialize};

use crate::bird_judge::{attribute_labels, BirdJudge, BIRD_ATTRIBUTES};
use crate::birds::real_features;
use crate::error::{EvalError, Result};

/// What to measure on.
#[derive(Clone, Debug)]
pub struct TranslationEvalOptions {
    /// Test birds translated in each direction (judge shares, errors).
    pub images: usize,
    /// Images on each side of each FID (0 skips FID).
    pub fid_images: usize,
    /// Images per Inception and translator batch.
    pub batch: usize,
    /// The repository root (for the Inception weights in data/fid, and the cache of real images'
    /// features in data/fid/stats).
    pub root: PathBuf,
}

impl Default for TranslationEvalOptions {
    fn default() -> Self {
        Self { images: 500, fid_images: 500, batch: 50, root: PathBuf::from(".") }
    }
}

/// One direction's scores.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DirectionScores {
    /// The source domain.
    pub from: String,
    /// The target domain.
    pub to: String,
    /// Share of translations that show the target look.
    pub translated: f64,
    /// Share of translations that keep every other attribute the judge reads.
    pub kept: f64,
    /// Share that keep each judged attribute other than the target's, by name.
    pub kept_per_attribute: Vec<(String, f64)>,
    /// [`Self::translated`] on the ideal translations: the judge's ceiling.
    pub ideal_translated: f64,
    /// [`Self::kept`] on the ideal translations.
    pub ideal_kept: f64,
    /// Mean absolute difference between inputs and their round trips (pixels in [0, 1]).
    pub cycle_error: f64,
    /// Mean absolute difference between translations and the ideal ones (pixels in [0, 1]).
    pub counterpart_error: f64,
    /// FID of the translations against real target images (`None` when skipped).
    pub fid: Option<f64>,
    /// FID of a second real target set against the first: the floor.
    pub fid_floor: Option<f64>,
}

/// A translation model's scores in both directions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TranslationReport {
    /// The model file.
    pub checkpoint: String,
    /// Its training step.
    pub step: u64,
    /// Test birds per direction.
    pub images: usize,
    /// A to B, then B to A.
    pub directions: Vec<DirectionScores>,
}

impl TranslationReport {
    /// A Markdown table of both directions.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "{} (step {}), {} test birds per direction\n\n| direction | translated | kept | cycle error | counterpart error | FID (floor) |\n|---|---|---|---|---|---|\n",
            self.checkpoint, self.step, self.images
        );
        for d in &self.directions {
            let fid = match (d.fid, d.fid_floor) {
                (Some(f), Some(floor)) => format!("{f:.1} ({floor:.1})"),
                _ => "-".into(),
            };
            out += &format!(
                "| {} → {} | {:.1}% (ideal {:.1}%) | {:.1}% (ideal {:.1}%) | {:.4} | {:.4} | {fid} |\n",
                d.from,
                d.to,
                100.0 * d.translated,
                100.0 * d.ideal_translated,
                100.0 * d.kept,
                100.0 * d.ideal_kept,
                d.cycle_error,
                d.counterpart_error
            );
        }
        out += "\nkept, per attribute:\n\n";
        for d in &self.directions {
            let parts: Vec<String> =
                d.kept_per_attribute.iter().map(|(n, v)| format!("{n} {:.1}%", 100.0 * v)).collect();
            out += &format!("- {} → {}: {}\n", d.from, d.to, parts.join(", "));
        }
        out
    }
}

/// The judge's heads (indices into [`BIRD_ATTRIBUTES`]) a look sets.
fn look_heads(look: Look) -> Vec<usize> {
    match look {
        Look::Plumage(_) => vec![0, 1, 2, 3],
        Look::Background(_) => vec![8],
    }
}

/// Judge shares of a set of translations of birds `sources` into `target`: translated, kept, and kept
/// per attribute (over `kept_heads`).
fn judge_shares(
    judge: &BirdJudge,
    images: &Tensor,
    sources: &[BirdAttributes],
    target: Look,
    kept_heads: &[usize],
) -> Result<(f64, f64, Vec<f64>)> {
    let predicted = judge.classifier.predict(images)?;
    let n = sources.len().max(1) as f64;
    let (mut translated, mut kept, mut per) = (0usize, 0usize, vec![0usize; kept_heads.len()]);
    let target_heads = look_heads(target);
    for (p, a) in predicted.iter().zip(sources) {
        // The ideal translation's classes: the source's, with the target look's.
        let truth = attribute_labels(&target.apply(*a));
        translated += usize::from(target_heads.iter().all(|&h| p[h] == truth[h]));
        let mut all = true;
        for (k, &h) in kept_heads.iter().enumerate() {
            let same = p[h] == truth[h];
            per[k] += usize::from(same);
            all &= same;
        }
        kept += usize::from(all);
    }
    Ok((translated as f64 / n, kept as f64 / n, per.into_iter().map(|c| c as f64 / n).collect()))
}

/// Renders birds `0..n` of `domain`, each with `look` (its own look for real images), as one
/// `(n, 3, side, side)` batch in [-1, 1].
pub fn domain_images(domain: &BirdDomain, n: usize, look: Look, side: usize, device: &Device) -> Result<Tensor> {
    let mut pixels = Vec::with_capacity(n * 3 * side * side);
    for i in 0..n {
        pixels.extend(domain.render_as(i, look, side).pixels.iter().map(|v| v * 2.0 - 1.0));
    }
    Ok(Tensor::from_vec(pixels, (n, 3, side, side), device)?)
}

/// `f` over `x` in batches of `batch` rows, the outputs joined.
fn batched(x: &Tensor, batch: usize, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let n = x.dim(0)?;
    let parts = (0..n)
        .step_by(batch.max(1))
        .map(|s| f(&x.narrow(0, s, batch.max(1).min(n - s))?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

/// Mean absolute difference of two image batches in [-1, 1], in units of [0, 1] pixels.
fn pixel_error(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok((a - b)?.abs()?.mean_all()?.to_scalar::<f32>()? as f64 / 2.0)
}

/// Scores `translator` in both directions on test birds, writing a grid per direction to `out`
/// (inputs, translations, ideal translations, round trips). `log` hears progress.
pub fn evaluate_translation(
    translator: &Translator,
    checkpoint: &str,
    judge: &BirdJudge,
    options: &TranslationEvalOptions,
    out: &Path,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<TranslationReport> {
    let card = translator.card();
    let (world_seed, looks) = card.data.bird_looks().ok_or_else(|| {
        EvalError::Invalid(
            "this model translates between two folders: the bird judge measures only the bird domains (sky_water, red_blue)"
                .into(),
        )
    })?;
    let [_, side, _] = translator.image_shape();
    if judge.classifier.side() != side {
        return Err(EvalError::Invalid(format!(
            "the judge reads {} px birds, the model makes {side} px",
            judge.classifier.side()
        )));
    }
    let (n, n_fid) = (options.images.max(1), options.fid_images);
    // Test birds: each domain's first n are translated; the next 2 n_fid of each are FID's real sets.
    let per_domain = n + 2 * n_fid;
    let world = SyntheticBirds::new(world_seed, BirdSplit::Test);
    let domain = |k: usize| BirdDomain { world, first: (k * per_domain) as u64, len: per_domain, look: looks[k] };
    let inception = if n_fid > 0 { Some(FidInception::load_default(&options.root, device)?) } else { None };
    std::fs::create_dir_all(out).map_err(|e| EvalError::Io { path: out.into(), source: e })?;
    let mut directions = Vec::new();
    for (from, to) in [(0usize, 1usize), (1, 0)] {
        let (source, target) = (domain(from), domain(to));
        log(&format!("{} → {}: translating {n} test birds", looks[from].name(), looks[to].name()));
        let inputs = domain_images(&source, n, looks[from], side, device)?;
        let reverse = from == 1;
        let translations = batched(&inputs, options.batch, |x| Ok(translator.translate(x, reverse)?))?;
        let round_trips = batched(&translations, options.batch, |x| Ok(translator.translate(x, !reverse)?))?;
        let ideal = domain_images(&source, n, looks[to], side, device)?;
        let attributes: Vec<BirdAttributes> = (0..n).map(|i| source.bird(i)).collect();
        let target_heads = look_heads(looks[to]);
        let kept_heads: Vec<usize> =
            (0..BIRD_ATTRIBUTES.len()).filter(|h| judge.judged[*h] && !target_heads.contains(h)).collect();
        let (translated, kept, per) = judge_shares(judge, &translations, &attributes, looks[to], &kept_heads)?;
        let (ideal_translated, ideal_kept, _) = judge_shares(judge, &ideal, &attributes, looks[to], &kept_heads)?;
        let (fid, fid_floor) = match &inception {
            Some(net) => {
                let stats_dir = options.root.join("data/fid/stats");
                let mut real = |start: usize| -> Result<FeatureStats> {
                    let set = BirdDomain { first: target.first + start as u64, ..target };
                    let name =
                        format!("unpaired-w{world_seed}-{}-test-{side}px-{}-{n_fid}", looks[to].name(), set.first);
                    let images = || domain_images(&set, n_fid, looks[to], side, device);
                    real_features(net, &stats_dir, &name, images, options.batch, log)
                };
                let (first, second) = (real(n)?, real(n + n_fid)?);
                log(&format!("FID: Inception features of {} translations", n.min(n_fid)));
                let fake = FeatureStats::from_rows(
                    &net.features_batched(&translations.narrow(0, 0, n.min(n_fid))?, options.batch)?,
                    true,
                )?;
                (Some(frechet_distance(&first, &fake)?), Some(frechet_distance(&first, &second)?))
            }
            None => (None, None),
        };
        let grid = out.join(format!("{}-to-{}.png", looks[from].name(), looks[to].name()));
        let k = n.min(8);
        let rows = [&inputs, &translations, &ideal, &round_trips].map(|t| t.narrow(0, 0, k));
        let rows = rows.into_iter().collect::<candle_core::Result<Vec<_>>>()?;
        condor_infer::plot::image_grid_png(&grid, &Tensor::cat(&rows, 0)?, k)?;
        directions.push(DirectionScores {
            from: looks[from].name().into(),
            to: looks[to].name().into(),
            translated,
            kept,
            kept_per_attribute: kept_heads
                .iter()
                .zip(per)
                .map(|(&h, v)| (BIRD_ATTRIBUTES[h].0.to_string(), v))
                .collect(),
            ideal_translated,
            ideal_kept,
            cycle_error: pixel_error(&inputs, &round_trips)?,
            counterpart_error: pixel_error(&translations, &ideal)?,
            fid,
            fid_floor,
        });
    }
    Ok(TranslationReport { checkpoint: checkpoint.into(), step: card.step, images: n, directions })
}
