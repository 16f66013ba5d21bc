//! `just mode-collapse`: the mode-collapse benchmark on the 2D mixtures. Every objective trains the
//! shipped `configs/ring8.toml` and `configs/grid25.toml` models (the same generator, discriminator,
//! batch and learning rates for all) on each seed, and is scored as `condor eval` scores a mixture:
//! of 2,000 samples, a mode is hit with at least 20 within 3 standard deviations of its centre, and the
//! high-quality share is the fraction within 3 standard deviations of any centre. Prints one Markdown
//! row per dataset and objective: each seed's result, the mean and standard deviation, and the wall
//! time of a run. Runs that diverge are counted as such (Condor's NaN stop), not dropped silently.
//!
//! ```sh
//! cargo run --release --example mode_collapse -- [--data ring8,grid25] [--seeds 0,1,2] \
//!     [--objectives non_saturating,pack2,...] [--steps 3000] [--lr 1e-3]
//! ```
//!
//! An objective is a loss of the adversarial recipe by its config name (`non_saturating`,
//! `least_squares`, `hinge`, `boundary_seeking`, `pearson_chi_squared`, ...), `wgan-gp` (Wasserstein,
//! 5 critic steps, the gradient penalty at weight 10), `dragan` (non-saturating with DRAGAN's
//! penalty), `packN` (non-saturating with PacGAN's packing of N samples), or a recipe with its defaults:
//! `loss_sensitive` (Qi's Loss-Sensitive GAN), `energy_based` (EBGAN) or `unrolledK` (Unrolled GAN's
//! first-order surrogate with K look-ahead discriminator steps).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use condor::candle_core::Device;
use condor::eval::mixture::mixture_coverage;
use condor::train::regularizers::{GradientPenaltyConfig, PenaltyPoints};
use condor::train::{LossKind, LrDecay, RunConfig, Trainer};

#[derive(Parser)]
#[command(about = "Mode coverage of GAN objectives on the 2D Gaussian mixtures, over seeds")]
struct Cli {
    /// Datasets, by their shipped config's name (configs/<name>.toml).
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
}

/// What one run gives: modes hit and high-quality share, or the error that stopped it.
type Outcome = Result<(usize, f64), String>;

/// `config` set to train `objective`.
fn apply_objective(config: &mut RunConfig, objective: &str) -> anyhow::Result<()> {
    let penalty = |points| Some(GradientPenaltyConfig { points, ..Default::default() });
    match objective {
        "wgan-gp" => {
            config.training.loss = LossKind::Wasserstein;
            config.training.d_steps = 5;
            config.training.gradient_penalty = penalty(PenaltyPoints::Interpolates);
        }
        "dragan" => {
            config.training.loss = LossKind::NonSaturating;
            config.training.gradient_penalty = penalty(PenaltyPoints::Perturbed);
        }
        "loss_sensitive" | "energy_based" => {
            config.recipe = Some(condor::core::ModelSpec::new(objective, serde_json::json!({}))?);
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
fn run(config: RunConfig) -> anyhow::Result<Outcome> {
    let data = config.data.clone();
    let mut trainer = Trainer::new(config, &condor::registry(), &Device::Cpu)?;
    while trainer.step_count() < trainer.config().steps {
        if let Err(e) = trainer.step() {
            return Ok(Err(format!("stopped at step {}: {e}", trainer.step_count() + 1)));
        }
    }
    let c = mixture_coverage(trainer.sampling_generator()?, &data, 2000, 20, 1, &Device::Cpu)?;
    Ok(Ok((c.modes_hit, c.high_quality)))
}

/// Mean and sample standard deviation.
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// One Markdown row: each seed's outcome, then the means over the runs that finished.
fn row(data: &str, objective: &str, modes: usize, outcomes: &[Outcome], seconds: f64) -> String {
    let cells: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok((hit, hq)) => format!("{hit}/{modes}, {:.1}%", hq * 100.0),
            Err(e) => e.clone(),
        })
        .collect();
    let finished: Vec<&(usize, f64)> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    let (hit, hq) = if finished.is_empty() {
        ("-".to_string(), "-".to_string())
    } else {
        let (h, hs) = mean_sd(&finished.iter().map(|f| f.0 as f64).collect::<Vec<_>>());
        let (q, qs) = mean_sd(&finished.iter().map(|f| f.1 * 100.0).collect::<Vec<_>>());
        (format!("{h:.1} ± {hs:.1} ({} of {})", finished.len(), outcomes.len()), format!("{q:.1} ± {qs:.1}%"))
    };
    format!("| {data} | `{objective}` | {} | {hit} | {hq} | {seconds:.0} |", cells.join(" | "))
}

fn main() -> anyhow::Result<()> {
    condor::core::threads::configure_cpu_runtime();
    let cli = Cli::parse();
    if cli.seeds.is_empty() || cli.objectives.is_empty() || cli.data.is_empty() {
        bail!("give at least one dataset, objective and seed");
    }
    let seeds: Vec<String> = cli.seeds.iter().map(|s| format!("seed {s}")).collect();
    println!("| data | objective | {} | modes hit, mean ± sd | high-quality share | s a run |", seeds.join(" | "));
    println!("|---|---|{}---|---|---|", "---|".repeat(cli.seeds.len()));
    for data in &cli.data {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs").join(format!("{data}.toml"));
        let base = RunConfig::from_file(&path).with_context(|| format!("dataset `{data}`"))?;
        let modes = base.data.mixture().with_context(|| format!("`{data}` is not a 2D mixture"))?.centers().len();
        for objective in &cli.objectives {
            let mut outcomes = Vec::new();
            let start = Instant::now();
            for &seed in &cli.seeds {
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
                outcomes.push(run(config)?);
            }
            let seconds = start.elapsed().as_secs_f64() / cli.seeds.len() as f64;
            println!("{}", row(data, objective, modes, &outcomes, seconds));
        }
    }
    Ok(())
}
