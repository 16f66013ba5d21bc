//! `condor eval`: the numbers to compare text-to-image GANs by, for any registered plugin's checkpoint,
//! over several seeds.
//!
//! - **FID and KID** against real images (rendered test birds, or a CUB or folder image set), with the
//!   FID Inception-v3; the real side's features are cached in `data/fid/stats/`.
//! - For the synthetic birds, with the [`BirdJudge`]:
//!   - **conditional accuracy**: one image per caption of the test birds, in three splits (seen
//!     phrasings, held-out phrasings, held-out colour combinations); each attribute a caption states is
//!     right when the judge reads that value in the image;
//!   - **retrieval precision**: does an image's judged attributes fit its own caption better than 99
//!     others of the split, drawn at random (ties share the credit);
//!   - **diversity**: for "a {colour} bird", the mean pairwise distance of the judge's features over
//!     images with different latent codes, divided by the same for real birds of that colour (near 1:
//!     as varied as the data; near 0: mode collapse).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use condor_core::derived_rng;
use condor_core::layout::LayoutKind;
use condor_data::birds::{colour_prompt, BirdSplit, BirdWorld, Colour};
use condor_data::layout::ObjectLayout;
use condor_infer::placement::layout_rows;
use condor_infer::sample::write_prompt_grid;
use condor_infer::TextToImage;
use condor_metrics::digits::mean_pairwise_distance;
use condor_metrics::fid::{frechet_distance, kernel_inception_distance, FeatureStats, Kid};
use condor_metrics::FidInception;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::bird_judge::{
    attribute_labels, body_shown, mentioned_attributes, rendered_birds, BirdJudge, BIRD_ATTRIBUTES,
};
use crate::error::{EvalError, Result};

/// The real images FID/KID compare against.
#[derive(Clone, Debug)]
pub enum RealImages {
    /// Rendered synthetic birds of the test split of a world.
    Birds {
        /// The world (its seed and spread).
        world: BirdWorld,
    },
    /// Images of a folder or of CUB, already model: `(N, 3, S, S)` in [-1, 1], with captions to
    /// generate from and a name for the statistics cache.
    Images {
        /// The images.
        images: Tensor,
        /// One caption per image.
        captions: Vec<String>,
        /// A name for the cache file (dataset and split).
        name: String,
    },
}

/// What `condor eval` measures and how much.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Seeds of the latent codes; every generated number is reported per seed and as mean and spread.
    pub seeds: Vec<u64>,
    /// Captions (and so images) per conditional-accuracy split.
    pub captions_per_split: usize,
    /// Real and generated images for FID/KID.
    pub fid_images: usize,
    /// KID subsets (of [`kid_subset_size`] images each).
    pub kid_subsets: usize,
    /// Images per colour prompt for diversity.
    pub diversity_images: usize,
    /// Images per Inception batch.
    pub batch: usize,
    /// The repository root (for the Inception weights in data/fid).
    pub root: PathBuf,
    /// Where the real side's features are cached (default: data/fid/stats under `root`).
    pub stats_dir: Option<PathBuf>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            seeds: vec![0, 1, 2],
            captions_per_split: 500,
            fid_images: 1000,
            kid_subsets: 100,
            diversity_images: 16,
            batch: 25,
            root: PathBuf::from("."),
            stats_dir: None,
        }
    }
}

/// Images per KID subset: half the FID set, at most 1000 (the usual size). Subsets as large as the
/// set would all be the whole set, and KID's spread over them would be zero, saying nothing.
pub fn kid_subset_size(options: &EvalOptions) -> usize {
    (options.fid_images / 2).clamp(2, 1000)
}

/// Conditional accuracy and retrieval precision on one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitScore {
    /// The split.
    pub split: BirdSplit,
    /// Images scored (one per caption).
    pub images: usize,
    /// For each attribute of [`BIRD_ATTRIBUTES`]: (captions stating it, share drawn right).
    pub per_attribute: Vec<(usize, f64)>,
    /// Share of all stated attributes drawn right.
    pub accuracy: f64,
    /// Retrieval precision against 99 random captions of the split.
    pub retrieval: f64,
}

/// Diversity for one colour prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiversityScore {
    /// The prompt.
    pub prompt: String,
    /// Mean pairwise feature distance of generated images.
    pub generated: f64,
    /// The same for real birds of that colour.
    pub real: f64,
}

/// Everything measured with one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedReport {
    /// The seed of the latent codes.
    pub seed: u64,
    /// FID against the real images.
    pub fid: f64,
    /// KID against the real images.
    pub kid: Kid,
    /// Conditional accuracy per split (synthetic birds only).
    pub splits: Vec<SplitScore>,
    /// Diversity per colour prompt (synthetic birds only).
    pub diversity: Vec<DiversityScore>,
}

impl SeedReport {
    /// Mean over colour prompts of generated / real diversity.
    pub fn diversity_ratio(&self) -> Option<f64> {
        let ratios: Vec<f64> = self.diversity.iter().filter(|d| d.real > 0.0).map(|d| d.generated / d.real).collect();
        (!ratios.is_empty()).then(|| ratios.iter().sum::<f64>() / ratios.len() as f64)
    }
}

/// The report `condor eval` writes (as JSON and Markdown).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The checkpoint scored.
    pub checkpoint: String,
    /// Generator plugin, training step, EMA weights or not.
    pub generator: String,
    /// Training step of the checkpoint.
    pub step: u64,
    /// What the real side is.
    pub real: String,
    /// Real images in the FID/KID statistics.
    pub real_images: usize,
    /// Generated images per seed for FID/KID.
    pub generated_images: usize,
    /// The judge's accuracy on rendered birds per split and attribute (synthetic birds only).
    pub judge: Option<String>,
    /// The same splits scored on the real rendered birds of the captions: the ceiling a perfect
    /// generator would reach under this judge (synthetic birds only).
    pub real_splits: Vec<SplitScore>,
    /// FID and KID of as many other real birds against the real set: the floor a perfect generator
    /// would reach with this many images (synthetic birds only).
    #[serde(default)]
    pub real_floor: Option<RealFloor>,
    /// One entry per seed.
    pub seeds: Vec<SeedReport>,
    /// Seconds spent, in total.
    pub seconds: f64,
}

/// FID and KID between two disjoint sets of real images of the same size: what a generator that
/// draws the data distribution exactly would score, since both metrics are biased at finite size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealFloor {
    /// Fréchet distance between the two real sets.
    pub fid: f64,
    /// KID between them.
    pub kid: Kid,
}

/// Mean and (sample) standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n.max(1.0);
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

impl EvalReport {
    /// One table row: mean ± std over seeds, each seed, and the real images' own score when there is one.
    fn row(&self, name: &str, values: Vec<f64>, real: Option<f64>, scale: f64, digits: usize) -> String {
        let (m, s) = mean_std(&values);
        let each: Vec<String> = values.iter().map(|v| format!("{:.digits$}", v * scale)).collect();
        let real = real.map_or("-".to_string(), |r| format!("{:.digits$}", r * scale));
        format!("| {name} | {:.digits$} ± {:.digits$} | {} | {real} |\n", m * scale, s * scale, each.join(" / "))
    }

    /// The summary table (mean ± standard deviation over seeds, then each seed) and the details.
    pub fn to_markdown(&self) -> String {
        let seeds: Vec<String> = self.seeds.iter().map(|s| s.seed.to_string()).collect();
        let mut out = format!(
            "# condor eval: {}\n\n{} (step {}); real: {} ({} images); {} generated images per seed; {:.0} s.\n\n",
            self.checkpoint,
            self.generator,
            self.step,
            self.real,
            self.real_images,
            self.generated_images,
            self.seconds
        );
        out += &format!(
            "| metric | mean ± std over seeds | seeds {} | real birds (the best reachable) |\n|---|---|---|---|\n",
            seeds.join(" / ")
        );
        let floor = self.real_floor.as_ref();
        out += &self.row("FID", self.seeds.iter().map(|s| s.fid).collect(), floor.map(|f| f.fid), 1.0, 2);
        let kid_means = self.seeds.iter().map(|s| s.kid.mean).collect();
        out += &self.row("KID x 1000", kid_means, floor.map(|f| f.kid.mean), 1000.0, 2);
        let kid_spreads = self.seeds.iter().map(|s| s.kid.std).collect();
        out += &self.row("KID x 1000, spread over subsets", kid_spreads, floor.map(|f| f.kid.std), 1000.0, 2);
        let n_splits = self.seeds.first().map_or(0, |s| s.splits.len());
        for i in 0..n_splits {
            let split = self.seeds[0].splits[i].split;
            let real = self.real_splits.get(i).filter(|r| r.split == split);
            out += &self.row(
                &format!("attribute accuracy, {split:?} (%)"),
                self.seeds.iter().map(|s| s.splits[i].accuracy).collect(),
                real.map(|r| r.accuracy),
                100.0,
                1,
            );
            out += &self.row(
                &format!("retrieval precision, {split:?} (%)"),
                self.seeds.iter().map(|s| s.splits[i].retrieval).collect(),
                real.map(|r| r.retrieval),
                100.0,
                1,
            );
        }
        if self.seeds.iter().all(|s| s.diversity_ratio().is_some()) && !self.seeds.is_empty() {
            out += &self.row(
                "diversity, generated / real",
                self.seeds.iter().filter_map(SeedReport::diversity_ratio).collect(),
                Some(1.0),
                1.0,
                3,
            );
        }
        if let Some(first) = self.seeds.first().filter(|s| !s.splits.is_empty()) {
            out += &format!(
                "\n## Attribute accuracy per attribute (seed {}, %; captions stating it in brackets)\n\n| attribute |",
                first.seed
            );
            for s in &first.splits {
                out += &format!(" {:?} |", s.split);
            }
            out += &format!("\n|---|{}\n", "---|".repeat(first.splits.len()));
            for (a, (name, _)) in BIRD_ATTRIBUTES.iter().enumerate() {
                out += &format!("| {name} |");
                for s in &first.splits {
                    let (n, acc) = s.per_attribute[a];
                    out += &if n == 0 { " - |".to_string() } else { format!(" {:.1} ({n}) |", 100.0 * acc) };
                }
                out += "\n";
            }
        }
        if let Some(judge) = &self.judge {
            out += &format!("\n## The judge on rendered birds\n\n{judge}");
        }
        out
    }
}

/// Draws one image per row of `prompts` with its own latent code (drawn from `seed` and `stream`),
/// `batch` at a time: `(P, C, H, W)` in [-1, 1]. A what-and-where model draws row `i` in `own[i]`, the
/// layout of the bird whose caption it is, so that the box and keypoints agree with the size and
/// facing the caption states; without `own`, in the layout of a training bird.
fn generate_for_captions(
    model: &TextToImage,
    prompts: &[String],
    own: Option<&[ObjectLayout]>,
    seed: u64,
    stream: u64,
    device: &Device,
) -> Result<Tensor> {
    let g = model.generator();
    let (cond, _) = model.encode(prompts)?;
    let z =
        condor_core::rng::normal(&mut derived_rng(seed, &[0xe7a1, stream]), (prompts.len(), g.latent_dim()), device)?;
    let layout = match own {
        Some(own) if g.layout() != LayoutKind::None => Some(layout_rows(own, device)?),
        _ => model.drawn_layouts(prompts.len(), seed ^ stream)?,
    };
    let mut parts = Vec::new();
    for start in (0..prompts.len()).step_by(100) {
        let len = 100.min(prompts.len() - start);
        let rows = layout.as_ref().map(|l| l.map(|t| t.narrow(0, start, len))).transpose()?;
        let c = condor_core::Conditioning::from_embedding(cond.embedding.narrow(0, start, len)?)?.with_layout(rows);
        parts.push(g.forward(&z.narrow(0, start, len)?, g.conditioning().select(Some(&c)), false)?);
    }
    let images = Tensor::cat(&parts, 0)?;
    let values: Vec<f32> = images.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::Invalid("the generator drew NaN or infinite pixels".into()));
    }
    Ok(images)
}

/// The captions scored for a split: caption `i % 10` of bird `i`, for the first `n` birds, with the
/// attributes it states and the bird's labels. A body colour is counted as stated only where the real
/// bird, rendered at `side`, shows it ([`body_shown`]).
fn split_captions(world: BirdWorld, split: BirdSplit, n: usize, side: usize) -> Vec<(String, Vec<usize>, Vec<usize>)> {
    let world = world.split(split);
    (0..n as u64)
        .map(|i| {
            let captions = world.captions(i);
            let c = &captions[i as usize % captions.len()];
            let a = world.attributes(i);
            let shown = body_shown(&a, &world.render(i, side));
            let mentioned = mentioned_attributes(c).into_iter().filter(|&m| m != 0 || shown).collect();
            (c.text.clone(), mentioned, attribute_labels(&a))
        })
        .collect()
}

/// How well the judged log-probabilities fit a caption: the evidence for what it states over chance,
/// the sum over its stated values of log p(value) + log(classes). A true claim the judge is sure of adds
/// log(classes) > 0, a false one a large negative number; so the caption that states the most true
/// things fits best, and one that states little cannot win by saying less.
fn caption_fit(log_probs: &[Vec<f32>], mentioned: &[usize], labels: &[usize]) -> f64 {
    mentioned.iter().map(|&a| log_probs[a][labels[a]] as f64 + (BIRD_ATTRIBUTES[a].1 as f64).ln()).sum()
}

/// Conditional accuracy and retrieval precision of `images` drawn for `captions` (from
/// [`split_captions`]), over the attributes the judge judges.
fn score_split(
    judge: &BirdJudge,
    split: BirdSplit,
    images: &Tensor,
    captions: &[(String, Vec<usize>, Vec<usize>)],
    seed: u64,
) -> Result<SplitScore> {
    let log_probs = judge.classifier.predict_log_probs(images)?;
    // Only what the judge can read counts.
    let captions: Vec<(String, Vec<usize>, Vec<usize>)> = captions
        .iter()
        .map(|(t, m, l)| (t.clone(), m.iter().copied().filter(|&a| judge.judged[a]).collect(), l.clone()))
        .collect();
    let mut stated = vec![0usize; BIRD_ATTRIBUTES.len()];
    let mut right = vec![0usize; BIRD_ATTRIBUTES.len()];
    for (lp, (_, mentioned, labels)) in log_probs.iter().zip(&captions) {
        for &a in mentioned {
            stated[a] += 1;
            right[a] += usize::from(condor_metrics::attributes::argmax(&lp[a]) == labels[a]);
        }
    }
    let per_attribute = stated.iter().zip(&right).map(|(&s, &r)| (s, r as f64 / s.max(1) as f64)).collect();
    let accuracy = right.iter().sum::<usize>() as f64 / stated.iter().sum::<usize>().max(1) as f64;
    let n = captions.len();
    // Retrieval among the captions that state something the judge reads.
    let usable: Vec<usize> = (0..n).filter(|&i| !captions[i].1.is_empty()).collect();
    let mut rng = derived_rng(seed, &[0x4e7, split as u64]);
    let mut credit = 0.0;
    for (k, &i) in usable.iter().enumerate() {
        let lp = &log_probs[i];
        let own = caption_fit(lp, &captions[i].1, &captions[i].2);
        let pool = usable.len() - 1;
        let others = sample(&mut rng, pool, 99.min(pool)).into_iter().map(|j| usable[if j >= k { j + 1 } else { j }]);
        let (mut better, mut ties) = (0, 0);
        for j in others {
            let other = caption_fit(lp, &captions[j].1, &captions[j].2);
            better += usize::from(other > own);
            ties += usize::from(other == own);
        }
        if better == 0 {
            credit += 1.0 / (1 + ties) as f64;
        }
    }
    let retrieval = credit / usable.len().max(1) as f64;
    Ok(SplitScore { split, images: n, per_attribute, accuracy, retrieval })
}

/// Real birds of `colour` (mostly that colour) among the test birds: the first `n` found.
fn real_birds_of_colour(world: BirdWorld, colour: Colour, n: usize, side: usize, device: &Device) -> Result<Tensor> {
    let world = world.split(BirdSplit::Test);
    let mut picked = Vec::new();
    let mut i = 0u64;
    while picked.len() < n && i < 100_000 {
        let a = world.attributes(i);
        if a.body == colour && a.mostly_body_colour() {
            picked.push(rendered_birds(world, i..i + 1, side, device)?.images);
        }
        i += 1;
    }
    Ok(Tensor::cat(&picked, 0)?)
}

fn diversity(
    model: &TextToImage,
    judge: &BirdJudge,
    world: BirdWorld,
    n: usize,
    seed: u64,
    device: &Device,
    grid: Option<&Path>,
) -> Result<Vec<DiversityScore>> {
    let side = judge.classifier.side();
    let prompts: Vec<String> = Colour::ALL.iter().map(|&c| colour_prompt(c)).collect();
    let repeated: Vec<String> = prompts.iter().flat_map(|p| std::iter::repeat_n(p.clone(), n)).collect();
    let images = generate_for_captions(model, &repeated, None, seed, 7, device)?;
    if let Some(path) = grid {
        write_prompt_grid(path, &images, &prompts, n)?;
    }
    let mut out = Vec::new();
    for (k, &colour) in Colour::ALL.iter().enumerate() {
        let generated = judge.classifier.features(&images.narrow(0, k * n, n)?)?;
        let real = judge.classifier.features(&real_birds_of_colour(world, colour, n, side, device)?)?;
        out.push(DiversityScore {
            prompt: prompts[k].clone(),
            generated: mean_pairwise_distance(&generated)?,
            real: mean_pairwise_distance(&real)?,
        });
    }
    Ok(out)
}

/// Inception features of real images, cached at `<dir>/<name>.safetensors`.
pub(crate) fn real_features(
    net: &FidInception,
    dir: &Path,
    name: &str,
    images: impl FnOnce() -> Result<Tensor>,
    batch: usize,
    log: &mut dyn FnMut(&str),
) -> Result<FeatureStats> {
    let path = dir.join(format!("{name}.safetensors"));
    if path.exists() {
        log(&format!("real features: {}", path.display()));
        return Ok(FeatureStats::load(&path)?);
    }
    let start = Instant::now();
    let images = images()?;
    let stats = FeatureStats::from_rows(&net.features_batched(&images, batch)?, true)?;
    stats.save(&path)?;
    log(&format!(
        "real features: {} images in {:.0} s, cached at {}",
        stats.count,
        start.elapsed().as_secs_f64(),
        path.display()
    ));
    Ok(stats)
}

/// Runs the evaluation of `model` against `real`; images go to `out` as grids. `judge` is needed for
/// the synthetic birds. `log` hears progress.
pub fn evaluate(
    model: &TextToImage,
    checkpoint: &str,
    real: &RealImages,
    judge: Option<&BirdJudge>,
    options: &EvalOptions,
    out: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<EvalReport> {
    let start = Instant::now();
    let device = model.device();
    if options.seeds.is_empty() || options.fid_images < 2 || options.captions_per_split < 100 {
        return Err(EvalError::Invalid("eval needs a seed, 2+ FID images and 100+ captions per split".into()));
    }
    std::fs::create_dir_all(out).map_err(|source| EvalError::Io { path: out.to_path_buf(), source })?;
    let side = match model.generator().sample_shape()[..] {
        [3, h, w] if h == w => h,
        ref shape => {
            return Err(EvalError::Invalid(format!(
                "condor eval scores square RGB image generators, not samples of shape {shape:?}"
            )))
        }
    };
    let net = FidInception::load_default(&options.root, device)?;
    let n_fid = options.fid_images;
    let stats_dir = options.stats_dir.clone().unwrap_or_else(|| options.root.join("data/fid/stats"));
    let (real_stats, fid_captions, real_name, real_floor) = match real {
        RealImages::Birds { world } => {
            let test = world.split(BirdSplit::Test);
            let tag = world.tag();
            let mut features_of = |name: String, birds: std::ops::Range<u64>| {
                let images = || Ok(rendered_birds(test, birds, side, device)?.images);
                real_features(&net, &stats_dir, &name, images, options.batch, &mut *log)
            };
            let stats = features_of(format!("birds-{tag}-test-{side}px-{n_fid}"), 0..n_fid as u64)?;
            // The next n_fid test birds, scored like a generator: the floor of FID and KID at this size.
            let others =
                features_of(format!("birds-{tag}-test-{side}px-{n_fid}-from{n_fid}"), n_fid as u64..2 * n_fid as u64)?;
            let kid = kernel_inception_distance(&stats, &others, options.kid_subsets, kid_subset_size(options), 0)?;
            let floor = RealFloor { fid: frechet_distance(&stats, &others)?, kid };
            log(&format!("real floor: FID {:.2}, KID {:.4} ± {:.4}", floor.fid, floor.kid.mean, floor.kid.std));
            let captions = split_captions(*world, BirdSplit::Test, n_fid, side).into_iter().map(|c| c.0).collect();
            (stats, captions, format!("rendered test birds of {world} at {side} px"), Some(floor))
        }
        RealImages::Images { images, captions, name } => {
            let n = images.dim(0)?.min(n_fid);
            let cache = format!("{name}-{side}px-{n}");
            let stats = real_features(&net, &stats_dir, &cache, || Ok(images.narrow(0, 0, n)?), options.batch, log)?;
            (stats, captions[..n].to_vec(), name.clone(), None)
        }
    };
    let world = match real {
        RealImages::Birds { world } => Some(*world),
        RealImages::Images { .. } => None,
    };
    let mut real_splits = Vec::new();
    if let (Some(judge), Some(world)) = (judge, world) {
        for split in [BirdSplit::Test, BirdSplit::HeldOutPhrasings, BirdSplit::HeldOutCombinations] {
            let captions = split_captions(world, split, options.captions_per_split, side);
            let real = rendered_birds(world.split(split), 0..captions.len() as u64, side, device)?;
            real_splits.push(score_split(judge, split, &real.images, &captions, options.seeds[0])?);
        }
    }
    let mut seeds = Vec::new();
    for &seed in &options.seeds {
        let t = Instant::now();
        let images = generate_for_captions(model, &fid_captions, None, seed, 0, device)?;
        let n_grid = 16.min(fid_captions.len());
        write_prompt_grid(
            &out.join(format!("fid-seed{seed}.png")),
            &images.narrow(0, 0, n_grid)?,
            &fid_captions[..n_grid],
            1,
        )?;
        let fake = FeatureStats::from_rows(&net.features_batched(&images, options.batch)?, true)?;
        let fid = frechet_distance(&real_stats, &fake)?;
        let kid = kernel_inception_distance(&real_stats, &fake, options.kid_subsets, kid_subset_size(options), seed)?;
        log(&format!(
            "seed {seed}: FID {fid:.2}, KID {:.4} ± {:.4} ({:.0} s)",
            kid.mean,
            kid.std,
            t.elapsed().as_secs_f64()
        ));
        let (mut splits, mut div) = (Vec::new(), Vec::new());
        if let (Some(judge), Some(world)) = (judge, world) {
            for (k, split) in
                [BirdSplit::Test, BirdSplit::HeldOutPhrasings, BirdSplit::HeldOutCombinations].into_iter().enumerate()
            {
                let captions = split_captions(world, split, options.captions_per_split, side);
                let texts: Vec<String> = captions.iter().map(|c| c.0.clone()).collect();
                let birds = world.split(split);
                let own: Vec<ObjectLayout> = (0..texts.len() as u64).map(|i| birds.layout(i)).collect();
                let images = generate_for_captions(model, &texts, Some(&own), seed, 1 + k as u64, device)?;
                if seed == options.seeds[0] {
                    write_prompt_grid(
                        &out.join(format!("{split:?}.png").to_lowercase()),
                        &images.narrow(0, 0, 12)?,
                        &texts[..12],
                        1,
                    )?;
                }
                let score = score_split(judge, split, &images, &captions, seed)?;
                log(&format!(
                    "seed {seed}: {split:?}: attributes {:.1}%, retrieval {:.1}%",
                    100.0 * score.accuracy,
                    100.0 * score.retrieval
                ));
                splits.push(score);
            }
            let grid = (seed == options.seeds[0]).then(|| out.join("diversity.png"));
            div = diversity(model, judge, world, options.diversity_images, seed, device, grid.as_deref())?;
        }
        seeds.push(SeedReport { seed, fid, kid, splits, diversity: div });
    }
    let generator =
        format!("{} generator{}", model.card().generator.plugin, if model.card().ema { " (EMA weights)" } else { "" });
    Ok(EvalReport {
        checkpoint: checkpoint.to_string(),
        generator,
        step: model.card().step,
        real: real_name,
        real_images: real_stats.count,
        generated_images: fid_captions.len(),
        judge: judge.map(BirdJudge::to_markdown),
        real_splits,
        real_floor,
        seeds,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The world of a checkpoint's synthetic-bird data, if it was trained on them.
pub fn birds_world(model: &TextToImage) -> Option<BirdWorld> {
    model.card().data.bird_world()
}

/// Writes `report.json` and `report.md` into `out`.
pub fn write_report(report: &EvalReport, out: &Path) -> Result<()> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|source| EvalError::Io { path, source })
    };
    write("report.json", serde_json::to_string_pretty(report).map_err(|e| EvalError::Invalid(e.to_string()))?)?;
    write("report.md", report.to_markdown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_standard_deviation() {
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
        assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
    }

    #[test]
    fn a_caption_fits_the_values_it_states() {
        // Heads 4 and 5 (size, beak) have two classes; the image is judged large, short-beaked.
        let mut lp = vec![vec![0f32; 9]; 4];
        lp.push(vec![(0.1f32).ln(), (0.9f32).ln()]);
        lp.push(vec![(0.8f32).ln(), (0.2f32).ln()]);
        let fit = caption_fit(&lp, &[4, 5], &[0, 0, 0, 0, 1, 0]);
        let want = (0.9f64).ln() + (0.8f64).ln() + 2.0 * 2f64.ln();
        assert!((fit - want).abs() < 1e-6, "{fit} vs {want}");
        // Stating one true thing fits less than stating two; a false claim fits worse still.
        assert!(caption_fit(&lp, &[4], &[0, 0, 0, 0, 1, 0]) < fit);
        assert!(caption_fit(&lp, &[4, 5], &[0, 0, 0, 0, 0, 0]) < caption_fit(&lp, &[4], &[0, 0, 0, 0, 1, 0]));
    }
}
