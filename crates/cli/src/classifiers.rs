//! Digit classifiers that GAN recipes train, scored on the test digits: `condor mnist codes` (an
//! InfoGAN's categorical code, which never saw a label, and the traversal grids of its codes) and
//! `condor mnist classify` (the semi-supervised GAN's discriminator).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use condor::candle_core::{Device, Tensor};
use condor::core::rng::normal;
use condor::core::{derived_rng, Generator, Network, Registry};
use condor::data::mnist::{Digits, MnistSplit};
use condor::eval::digits as digit_eval;
use condor::eval::digits::digits_tensor;
use condor::metrics::clustering::{matched_accuracy, MatchedAccuracy};
use condor::metrics::digits::DigitClassifier;
use condor::metrics::neighbours::nearest_neighbour_accuracy;
use condor::train::infogan::{self, InfoGanConfig};
use condor::train::inversion;
use condor::train::networks::as_network;
use condor::train::semi_supervised::{self, SemiSupervisedConfig};
use condor::train::{Checkpoint, Trainer};

use crate::args::{MnistClassifyArgs, MnistCodesArgs, MnistEncodeArgs};

/// Columns of a traversal grid: code values evenly spaced inside (-1, 1).
const TRAVERSAL_COLUMNS: usize = 10;

/// A checkpoint, its run rebuilt, and the test digits with their labels.
struct Scoring {
    ckpt: Checkpoint,
    trainer: Trainer,
    test: Digits,
    images: Tensor,
    labels: Vec<usize>,
}

impl Scoring {
    fn open(checkpoint: &Path, data: &Path, registry: &Registry, device: &Device) -> Result<Self> {
        let ckpt = Checkpoint::load(checkpoint, device)?;
        let trainer = Trainer::from_checkpoint(&ckpt, registry, device)?;
        let test = Digits::open(data, MnistSplit::Test)?;
        let (images, labels) = digits_tensor(&test, device)?;
        Ok(Self { ckpt, trainer, test, images, labels })
    }

    /// The recipe's classifier, the network `d`.
    fn classifier(&self) -> Result<&dyn Network> {
        let d = self.trainer.network("d").context("the checkpoint has no network `d`")?;
        Ok(as_network("d", &d.model)?)
    }

    /// The recipe config of the checkpoint's run, which must be of recipe `name`.
    fn recipe_config(&self, name: &str, why: &str) -> Result<serde_json::Value> {
        match &self.ckpt.config.recipe {
            Some(spec) if spec.plugin == name => Ok(spec.config.clone()),
            other => bail!(
                "{} was trained with the `{}` recipe, not `{name}`: {why}",
                self.ckpt.path.display(),
                other.as_ref().map_or("adversarial", |s| s.plugin.as_str())
            ),
        }
    }
}

/// `condor mnist classify`.
pub(crate) fn mnist_classify(args: MnistClassifyArgs, registry: &Registry) -> Result<()> {
    let MnistClassifyArgs { checkpoint, data, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let s = Scoring::open(&checkpoint, &data, registry, &device)?;
    let config: SemiSupervisedConfig =
        serde_json::from_value(s.recipe_config(semi_supervised::NAME, "it trains no classifier")?)?;
    let predicted = semi_supervised::predict_classes(s.classifier()?, 10, &s.images, 500)?;
    let wrong = predicted.iter().zip(&s.labels).filter(|(p, l)| p != l).count();
    let labels = if config.unsupervised_weight > 0.0 { "and unlabelled digits" } else { "alone" };
    say!(
        "{} (step {}, {} labels a class {labels}): test error {:.2}% ({wrong} of {} digits)",
        checkpoint.display(),
        s.ckpt.state.step,
        config.labelled_per_class,
        100.0 * wrong as f64 / s.labels.len().max(1) as f64,
        s.labels.len()
    );
    Ok(())
}

/// `condor mnist encode`.
pub(crate) fn mnist_encode(args: MnistEncodeArgs, registry: &Registry) -> Result<()> {
    let MnistEncodeArgs { checkpoint, data, judge, out, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let s = Scoring::open(&checkpoint, &data, registry, &device)?;
    let (train, train_labels) = digits_tensor(&Digits::open(&data, MnistSplit::Train)?, &device)?;
    let reference = inversion::encode(&s.trainer, &train)?;
    let (latents, reconstructions) = inversion::reconstruct(&s.trainer, &s.images)?;
    let knn = nearest_neighbour_accuracy(&reference, &train_labels, &latents, &s.labels)?;
    let same_digit = if judge.exists() {
        let classifier = DigitClassifier::load(&judge, &device)?;
        let judge = digit_eval::Judge::check(classifier, &s.test, &device)?;
        Some(judge.agreement(&reconstructions, &s.labels)?)
    } else {
        say!("no digit judge at {}: train it with `just mnist-judge` to score reconstructions", judge.display());
        None
    };
    let out = out.unwrap_or_else(|| run_folder(&checkpoint).join("encoder"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let report = serde_json::json!({
        "checkpoint": checkpoint, "step": s.ckpt.state.step,
        "nearest_neighbour_accuracy": knn, "reconstructions_same_digit": same_digit,
    });
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&report)?)?;
    let grid = out.join("reconstructions.png");
    condor::infer::plot::image_grid_png(&grid, &pairs_by_row(&s.images, &reconstructions, 10, 3)?, 10)?;
    let judged =
        same_digit.map_or(String::new(), |v| format!("; reconstructions read as the same digit {:.2}%", 100.0 * v));
    say!(
        "{} (step {}): 1-nearest-neighbour test accuracy on the latents {:.2}%{judged}\nreconstructions: {}",
        checkpoint.display(),
        s.ckpt.state.step,
        100.0 * knn,
        grid.display()
    );
    Ok(())
}

/// `rows` pairs of rows of `cols` images spread evenly over the set (the test digits come class by
/// class): originals, then their reconstructions below them.
fn pairs_by_row(originals: &Tensor, reconstructions: &Tensor, cols: usize, rows: usize) -> Result<Tensor> {
    let n = originals.dim(0)?;
    let shown = (rows * cols).min(n);
    let picks: Vec<u32> = (0..shown).map(|i| (i * n / shown.max(1)) as u32).collect();
    let mut parts = Vec::with_capacity(2 * rows);
    for row in picks.chunks(cols) {
        let index = Tensor::new(row, originals.device())?;
        parts.push(originals.index_select(&index, 0)?);
        parts.push(reconstructions.index_select(&index, 0)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// `condor mnist codes`.
pub(crate) fn mnist_codes(args: MnistCodesArgs, registry: &Registry) -> Result<()> {
    let MnistCodesArgs { checkpoint, data, out, seed, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let s = Scoring::open(&checkpoint, &data, registry, &device)?;
    let config: InfoGanConfig = serde_json::from_value(s.recipe_config(infogan::NAME, "it has no codes to score")?)?;
    let (ckpt, trainer, labels) = (&s.ckpt, &s.trainer, &s.labels);
    let categories = infogan::predict_categories(&config, s.classifier()?, &s.images, 500)?;
    let score = matched_accuracy(&categories, labels, config.categorical, 10)?;
    let out = out.unwrap_or_else(|| run_folder(&checkpoint).join("codes"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let report = serde_json::json!({ "checkpoint": checkpoint, "step": ckpt.state.step, "test": score });
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&report)?)?;
    let grids = write_traversals(trainer.sampling_generator()?, &config, seed, &out, &device)?;
    say!("{} (step {}): {}", checkpoint.display(), ckpt.state.step, markdown(&score));
    for grid in grids {
        say!("traversal grid: {}", grid.display());
    }
    Ok(())
}

/// The run folder of a checkpoint in `<run>/checkpoints/`, else the checkpoint's own folder.
fn run_folder(checkpoint: &Path) -> PathBuf {
    let folder = checkpoint.parent().unwrap_or(Path::new("."));
    match folder.file_name() {
        Some(name) if name == "checkpoints" => folder.parent().unwrap_or(folder).to_path_buf(),
        _ => folder.to_path_buf(),
    }
}

/// One grid per continuous code (rows: categories; columns: the code from -0.9 to 0.9), all over the
/// same noise drawn from `seed`; the files written.
fn write_traversals(
    g: &dyn Generator,
    config: &InfoGanConfig,
    seed: u64,
    out: &Path,
    device: &Device,
) -> Result<Vec<PathBuf>> {
    let codes = config.codes();
    let noise_width = g.latent_dim() - codes.width();
    let noise = normal(&mut derived_rng(seed, &[]), (1, noise_width), device)?.flatten_all()?.to_vec1::<f32>()?;
    let values: Vec<f64> =
        (0..TRAVERSAL_COLUMNS).map(|i| -0.9 + 1.8 * i as f64 / (TRAVERSAL_COLUMNS - 1) as f64).collect();
    let mut written = Vec::new();
    for code in 0..codes.continuous {
        let z = Tensor::new(codes.traversal(code, &values, &noise)?, device)?;
        let images = g.forward(&z, None, false)?;
        let path = out.join(format!("traversal-c{}.png", code + 1));
        condor::infer::plot::image_grid_png(&path, &images, TRAVERSAL_COLUMNS)?;
        written.push(path);
    }
    Ok(written)
}

/// The score as a line, and the digit each code value was matched to.
fn markdown(score: &MatchedAccuracy) -> String {
    let pairs: Vec<String> = score.assignment.iter().enumerate().map(|(c, d)| format!("{c}->{d}")).collect();
    format!(
        "test error {:.2}% ({} of {} digits) under the best matching of code values to digits [{}]",
        100.0 * score.error(),
        score.total - score.matched,
        score.total,
        pairs.join(" ")
    )
}
