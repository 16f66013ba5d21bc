//! `just mode-collapse`: the mode-collapse benchmark. Every objective trains the same shipped model
//! of each dataset (the same generator, discriminator, batch and learning rates for all; only an
//! objective's own settings change, below) on each seed and scores the last step's sampling generator:
//! - **the 2D mixtures** (`ring8`, `grid25`) as `condor eval` scores them: of 2,000 samples, a mode is
//!   hit with at least 20 within 3 standard deviations of its centre, and the high-quality share is the
//!   fraction within 3 standard deviations of any centre;
//! - **Stacked MNIST** (`stacked-mnist`, `stacked-mnist-small-d`, the configs of that name) as
//!   `condor mnist modes` scores it: 26,000 samples, each channel read by the digit judge, the modes
//!   (of 1,000) reached and the KL divergence of the mode histogram to the uniform one.
//!
//! Prints one Markdown row per dataset and objective: each seed's result, the means and standard
//! deviations, and the wall time of a run; each finished run is also reported on stderr as it ends.
//! Runs that diverge are counted as such (Condor's NaN stop), not dropped silently.
//!
//! ```sh
//! cargo run --release --example mode_collapse -- [--data ring8,grid25,stacked-mnist-small-d] \
//!     [--seeds 0,1,2] [--objectives non_saturating,pack2,...] [--steps 3000] [--lr 1e-3]
//! ```
//!
//! An objective is a loss of the adversarial recipe by its config name (`non_saturating`,
//! `least_squares`, `hinge`, `boundary_seeking`, `pearson_chi_squared`, ...), `wgan-gp` (Wasserstein,
//! 5 critic steps, the gradient penalty at weight 10, the paper's Adam at 1e-4 with betas 0 and 0.9, and
//! layer norm in place of a DCGAN critic's batch norm), `dragan` (non-saturating with DRAGAN's
//! penalty), `packN` (non-saturating with PacGAN's packing of N samples), or a recipe with its defaults:
//! `loss_sensitive` (Qi's Loss-Sensitive GAN), `energy_based` (EBGAN) or `unrolledK` (Unrolled GAN's
//! first-order surrogate with K look-ahead discriminator steps). EBGAN's energy network is sized like
//! the config's discriminator: on images, the convolutional autoencoder whose encoder is the DCGAN
//! discriminator's trunk (`--recipe-config '{"energy": {"plugin": "mlp_autoencoder"}}'` for the MLP).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use condor::candle_core::Device;
use condor::data::DatasetConfig;
use condor::eval::digits::{generator_stacked_modes, Judge};
use condor::eval::mixture::mixture_coverage;
use condor::train::regularizers::{GradientPenaltyConfig, PenaltyPoints};
use condor::train::{LossKind, LrDecay, OptimizerConfig, RunConfig, Trainer};

#[derive(Parser)]
#[command(about = "Mode coverage of GAN objectives on the 2D Gaussian mixtures, over seeds")]
struct Cli {
    /// Datasets, by their shipped config's name (configs/<name>.toml): a 2D mixture or Stacked MNIST.
    #[arg(long, value_delimiter = ',', default_value = "ring8,grid25")]
    data: Vec<String>,
    /// Objectives (see the module docs).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "non_saturating,least_squares,hinge,boundary_seeking,pearson_chi_squared,jensen_shannon,pack2"
    )]
    objectives: Vec<String>,
    /// Training seeds.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Steps a run (the configs' own count when left out).
    #[arg(long)]
    steps: Option<u64>,
    /// Both learning rates, decaying linearly to 0 (the configs' own when left out).
    #[arg(long)]
    lr: Option<f64>,
    /// Settings for the recipe objectives, as a JSON object merged into their `[recipe] config`
    /// (`'{"pt_weight": 1.0}'`).
    #[arg(long)]
    recipe_config: Option<String>,
    /// The digit judge that reads Stacked MNIST samples (from `condor mnist judge`).
    #[arg(long, default_value = "runs/digit-judge.safetensors")]
    judge: PathBuf,
    /// The MNIST folder whose test digits check the judge.
    #[arg(long, default_value = "data/mnist")]
    mnist: PathBuf,
}

/// What one run gives: modes reached and a second figure (the high-quality share in percent on a
/// mixture, the KL divergence to uniform on Stacked MNIST), or the error that stopped it.
type Outcome = Result<(usize, f64), String>;

/// How a dataset's runs are scored.
enum Scoring {
    /// A 2D mixture with this many modes.
    Mixture(usize),
    /// Stacked MNIST, read by the digit judge.
    Stacked(Judge),
}

impl Scoring {
    /// The scoring of `config`'s data; the judge is loaded from `cli`'s paths for Stacked MNIST.
    fn of(config: &RunConfig, cli: &Cli) -> anyhow::Result<Self> {
        if let Ok(mixture) = config.data.mixture() {
            return Ok(Self::Mixture(mixture.centers().len()));
        }
        if !matches!(config.data, DatasetConfig::StackedMnist { .. }) {
            bail!("the benchmark scores 2D mixtures and Stacked MNIST data only");
        }
        Ok(Self::Stacked(Judge::load(&cli.judge, &cli.mnist, &Device::Cpu)?))
    }

    /// One run's cell: modes reached and the second figure.
    fn cell(&self, (hit, figure): (usize, f64)) -> String {
        match self {
            Self::Mixture(modes) => format!("{hit}/{modes}, {figure:.1}%"),
            Self::Stacked(_) => format!("{hit}/{MODES}, KL {figure:.3}"),
        }
    }

    /// The mean and standard deviation of the second figure over the finished runs.
    fn figure_summary(&self, (mean, sd): (f64, f64)) -> String {
        match self {
            Self::Mixture(_) => format!("{mean:.1} ± {sd:.1}%"),
            Self::Stacked(_) => format!("{mean:.2} ± {sd:.2}"),
        }
    }

    /// The trainer's sampling generator, scored.
    fn score(&self, trainer: &Trainer) -> anyhow::Result<(usize, f64)> {
        let g = trainer.sampling_generator()?;
        Ok(match self {
            Self::Mixture(_) => {
                let c = mixture_coverage(g, &trainer.config().data, 2000, 20, 1, &Device::Cpu)?;
                (c.modes_hit, c.high_quality * 100.0)
            }
            Self::Stacked(judge) => {
                let h = generator_stacked_modes(g, &Device::Cpu, judge, STACKED_SAMPLES, 0)?;
                (h.covered, h.kl_to_uniform)
            }
        })
    }

    /// The header of the table's figure column.
    fn figure_name(&self) -> &'static str {
        match self {
            Self::Mixture(_) => "high-quality share",
            Self::Stacked(_) => "KL to uniform",
        }
    }
}

/// Stacked MNIST's modes (three digits) and the samples the literature counts them on.
const MODES: usize = 1000;
const STACKED_SAMPLES: usize = 26_000;

/// `config` set to train `objective`.
fn apply_objective(config: &mut RunConfig, objective: &str) -> anyhow::Result<()> {
    let penalty = |points| Some(GradientPenaltyConfig { points, ..Default::default() });
    match objective {
        "wgan-gp" => {
            config.training.loss = LossKind::Wasserstein;
            config.training.d_steps = 5;
            config.training.gradient_penalty = penalty(PenaltyPoints::Interpolates);
            let adam = OptimizerConfig { lr: 1e-4, beta1: 0.0, beta2: 0.9, ..config.optimizer.generator };
            (config.optimizer.generator, config.optimizer.discriminator) = (adam, adam);
            if config.discriminator.plugin == "dcgan" {
                config.discriminator.config["norm"] = serde_json::json!("layer");
            }
        }
        "dragan" => {
            config.training.loss = LossKind::NonSaturating;
            config.training.gradient_penalty = penalty(PenaltyPoints::Perturbed);
        }
        "loss_sensitive" => {
            config.recipe = Some(condor::core::ModelSpec::new(objective, serde_json::json!({}))?);
        }
        "energy_based" => {
            config.recipe = Some(condor::core::ModelSpec::new(objective, energy_network_like(&config.discriminator))?);
        }
        _ if objective.starts_with("unrolled") => {
            let k: usize = objective["unrolled".len()..].parse().with_context(|| format!("objective `{objective}`"))?;
            let config_k = serde_json::json!({ "unrolling_steps": k });
            config.recipe = Some(condor::core::ModelSpec::new("unrolled", config_k)?);
        }
        _ if objective.starts_with("pack") => {
            let m: usize = objective["pack".len()..].parse().with_context(|| format!("objective `{objective}`"))?;
            config.training.loss = LossKind::NonSaturating;
            config.discriminator = config.discriminator.clone().packed(m);
        }
        loss => {
            config.training.loss = serde_json::from_value(serde_json::json!(loss))
                .with_context(|| format!("`{loss}` is neither a loss nor wgan-gp, dragan or packN"))?;
        }
    }
    Ok(())
}

/// The `energy_based` recipe's config whose energy network matches `discriminator` in size: for a DCGAN
/// discriminator, the convolutional autoencoder of its width and normalisation (its encoder is the
/// discriminator's trunk); otherwise the recipe's default MLP autoencoder.
fn energy_network_like(discriminator: &condor::core::ModelSpec) -> serde_json::Value {
    if discriminator.plugin != "dcgan" {
        return serde_json::json!({});
    }
    let mut energy = serde_json::json!({});
    for key in ["width", "norm", "negative_slope"] {
        if let Some(value) = discriminator.config.get(key) {
            energy[key] = value.clone();
        }
    }
    serde_json::json!({ "energy": { "plugin": "dcgan_autoencoder", "config": energy } })
}

/// Merges the JSON object `json` into the config of `config`'s recipe.
fn override_recipe_config(config: &mut RunConfig, json: &str) -> anyhow::Result<()> {
    let Some(recipe) = config.recipe.as_mut() else {
        bail!("--recipe-config is for the recipe objectives (loss_sensitive, energy_based, unrolledK)");
    };
    let serde_json::Value::Object(given) = serde_json::from_str(json).context("--recipe-config")? else {
        bail!("--recipe-config must be a JSON object");
    };
    let table = recipe.config.as_object_mut().context("the recipe's config is not a table")?;
    table.extend(given);
    Ok(())
}

/// Trains one run in this process and scores its sampling generator.
fn run(config: RunConfig, scoring: &Scoring) -> anyhow::Result<Outcome> {
    let mut trainer = Trainer::new(config, &condor::registry(), &Device::Cpu)?;
    while trainer.step_count() < trainer.config().steps {
        if let Err(e) = trainer.step() {
            return Ok(Err(format!("stopped at step {}: {e}", trainer.step_count() + 1)));
        }
    }
    Ok(Ok(scoring.score(&trainer)?))
}

/// Mean and sample standard deviation.
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// One Markdown row: each seed's outcome, then the means over the runs that finished.
fn row(data: &str, objective: &str, scoring: &Scoring, outcomes: &[Outcome], seconds: f64) -> String {
    let cells: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok(score) => scoring.cell(*score),
            Err(e) => e.clone(),
        })
        .collect();
    let finished: Vec<&(usize, f64)> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    let (hit, figure) = if finished.is_empty() {
        ("-".to_string(), "-".to_string())
    } else {
        let (h, hs) = mean_sd(&finished.iter().map(|f| f.0 as f64).collect::<Vec<_>>());
        let figures = mean_sd(&finished.iter().map(|f| f.1).collect::<Vec<_>>());
        (format!("{h:.1} ± {hs:.1} ({} of {})", finished.len(), outcomes.len()), scoring.figure_summary(figures))
    };
    format!("| {data} | `{objective}` | {} | {hit} | {figure} | {seconds:.0} |", cells.join(" | "))
}

/// The run config of `objective` on `seed` from the dataset's `base`, with `cli`'s overrides.
fn run_config(base: &RunConfig, objective: &str, seed: u64, cli: &Cli) -> anyhow::Result<RunConfig> {
    let mut config = base.clone();
    apply_objective(&mut config, objective)?;
    if let Some(json) = &cli.recipe_config {
        override_recipe_config(&mut config, json)?;
    }
    config.seed = seed;
    config.steps = cli.steps.unwrap_or(config.steps);
    if let Some(lr) = cli.lr {
        for o in [&mut config.optimizer.generator, &mut config.optimizer.discriminator] {
            (o.lr, o.lr_decay) = (lr, LrDecay::Linear);
        }
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    condor::core::threads::configure_cpu_runtime();
    let cli = Cli::parse();
    if cli.seeds.is_empty() || cli.objectives.is_empty() || cli.data.is_empty() {
        bail!("give at least one dataset, objective and seed");
    }
    let seeds: Vec<String> = cli.seeds.iter().map(|s| format!("seed {s}")).collect();
    let mut header_printed = None;
    for data in &cli.data {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs").join(format!("{data}.toml"));
        let base = RunConfig::from_file(&path).with_context(|| format!("dataset `{data}`"))?;
        let scoring = Scoring::of(&base, &cli).with_context(|| format!("dataset `{data}`"))?;
        if header_printed != Some(scoring.figure_name()) {
            println!(
                "| data | objective | {} | modes hit, mean ± sd | {} | s a run |",
                seeds.join(" | "),
                scoring.figure_name()
            );
            println!("|---|---|{}---|---|---|", "---|".repeat(cli.seeds.len()));
            header_printed = Some(scoring.figure_name());
        }
        for objective in &cli.objectives {
            let mut outcomes = Vec::new();
            let start = Instant::now();
            for &seed in &cli.seeds {
                let run_start = Instant::now();
                let outcome = run(run_config(&base, objective, seed, &cli)?, &scoring)?;
                let shown = outcome.as_ref().map_or_else(|e| e.clone(), |s| scoring.cell(*s));
                eprintln!("{data} {objective} seed {seed}: {shown} ({:.0} s)", run_start.elapsed().as_secs_f64());
                outcomes.push(outcome);
            }
            let seconds = start.elapsed().as_secs_f64() / cli.seeds.len() as f64;
            println!("{}", row(data, objective, &scoring, &outcomes, seconds));
        }
    }
    Ok(())
}
