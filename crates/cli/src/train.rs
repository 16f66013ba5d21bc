//! `condor train` and the NCCL group id of multi-node runs.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use condor::core::Registry;
use condor::train::{RunConfig, RunOptions};

use crate::args::TrainArgs;

/// `condor train`: one process, or the launcher of one process per GPU, or one rank of them.
pub(crate) fn train(args: TrainArgs, registry: &Registry) -> Result<()> {
    let TrainArgs { config, device, seed, steps, resume, runs, run_dir, gpus, precision } = args;
    let rank = condor::distributed::rank_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
    let gpus = gpus.map(|g| condor::distributed::parse_gpus(&g)).transpose().map_err(anyhow::Error::msg)?;
    if let (None, Some(gpus)) = (&rank, &gpus) {
        if gpus.len() > 1 {
            // The launcher: the ranks get Ctrl-C themselves and agree on the step to stop after.
            ctrlc::set_handler(|| {}).context("installing the Ctrl-C handler")?;
            let program = std::env::current_exe().context("finding the condor executable")?;
            let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
            return condor::distributed::launch(&program, &args, gpus).map_err(anyhow::Error::msg);
        }
    }
    // A rank's GPU (or the one `--gpus` names) replaces `--device`.
    let gpu = rank.as_ref().and_then(|r| r.gpu).or_else(|| gpus.as_ref().map(|g| g[0]));
    let device = match gpu {
        Some(i) => condor::parse_device(&format!("cuda:{i}")),
        None => condor::parse_device(&device),
    }
    .map_err(anyhow::Error::msg)?;
    let group = match &rank {
        Some(r) => Some(condor::distributed::join_group(r, &device).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let writer = rank.as_ref().is_none_or(|r| r.rank == 0);
    let mut config = RunConfig::from_file(&config)?;
    if let Some(s) = seed {
        config.seed = s;
    }
    if let Some(s) = steps {
        config.steps = s;
    }
    if let Some(p) = precision {
        config.training.precision = p;
    }
    let dir = run_dir.unwrap_or_else(|| condor::train::run::run_dir_for(&runs, &config));
    let stop = stop_flag()?;
    let options = RunOptions { dir: dir.clone(), resume, progress: true, stop: Some(&stop), group };
    let summary = condor::train::train(config, registry, &device, options)?;
    if !writer {
        return Ok(());
    }
    if summary.interrupted {
        say!(
            "interrupted at step {}; resume with --resume. Checkpoint: {}",
            summary.step,
            summary.checkpoint.display()
        );
    } else {
        say!("trained to step {}. Checkpoint: {}", summary.step, summary.checkpoint.display());
    }
    if let Some(last) = summary.last {
        say!("last step: {}", last_step_line(&last));
    }
    say!("run directory: {}", dir.display());
    Ok(())
}

/// `condor nccl-id`.
pub(crate) fn nccl_id() -> Result<()> {
    say!("{}", condor::distributed::new_nccl_id().map_err(anyhow::Error::msg)?);
    Ok(())
}

/// The flag Ctrl-C raises during training: the handler is installed once per process (a second
/// Ctrl-C quits at once), and each run starts with the flag down.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if let Some(flag) = FLAG.get() {
        flag.store(false, Ordering::SeqCst);
        return Ok(flag.clone());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step and writing a checkpoint (Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(FLAG.get_or_init(|| stop).clone())
}

/// The last step's losses: the discriminator's and its scores unless the recipe trains none (all three
/// exactly 0, as a recipe without a discriminator logs them), then the recipe's own scalars.
fn last_step_line(last: &condor::train::StepRecord) -> String {
    let has_discriminator = (last.loss_d, last.d_real, last.d_fake) != (0.0, 0.0, 0.0);
    let mut parts = vec![format!("loss G {:.4}", last.loss_g)];
    if has_discriminator {
        parts.insert(0, format!("loss D {:.4}", last.loss_d));
        parts.push(format!("D(x) {:.3}, D(G(z)) {:.3}", last.d_real, last.d_fake));
    }
    parts.extend(last.extra.iter().map(|(name, value)| format!("{name} {value:.4}")));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use condor::train::StepRecord;

    #[test]
    fn the_last_step_line_leaves_out_a_discriminator_the_recipe_does_not_train() {
        let gan = StepRecord { loss_d: 1.25, loss_g: 0.5, d_real: 0.75, d_fake: 0.25, ..Default::default() };
        assert_eq!(last_step_line(&gan), "loss D 1.2500, loss G 0.5000, D(x) 0.750, D(G(z)) 0.250");
        let mut vae = StepRecord { loss_g: 200.0, ..Default::default() };
        vae.extra.insert("kl".into(), 25.0);
        assert_eq!(last_step_line(&vae), "loss G 200.0000, kl 25.0000");
    }
}
