//! Running training in a run directory: start or resume, log, checkpoint, plot, stop cleanly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::Device;
use condor_core::rng::Stream;
use condor_core::{BuildContext, Registry};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::Checkpoint;
use crate::config::RunConfig;
use crate::error::{io_err, Result, TrainError};
use crate::parallel::Collective;
use crate::run_dir::{RunDir, StepRecord};
use crate::trainer::Trainer;
use condor_infer::plot;
use condor_infer::sample::{generate, prompt_samples, write_prompt_grid, write_samples};

/// How to run.
pub struct RunOptions<'a> {
    /// The run directory (`runs/<name>` by convention).
    pub dir: PathBuf,
    /// Continue from the newest checkpoint in `dir` instead of starting fresh.
    pub resume: bool,
    /// Show a progress bar on the terminal.
    pub progress: bool,
    /// When set (by Ctrl-C, say), training stops after the current step and writes a checkpoint.
    pub stop: Option<&'a AtomicBool>,
    /// The data-parallel group this process trains in, if any. Only rank 0 writes to the run
    /// directory (log, checkpoints, samples); every rank reads the checkpoint it resumes from.
    pub group: Option<Arc<dyn Collective>>,
}

impl RunOptions<'_> {
    /// A run in `dir` without progress bar, stop flag or data-parallel group, started fresh or
    /// resumed: what tests and programs that embed training usually want.
    pub fn quiet(dir: PathBuf, resume: bool) -> Self {
        Self { dir, resume, progress: false, stop: None, group: None }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct RunSummary {
    /// The step training reached.
    pub step: u64,
    /// Whether it stopped early because `stop` was set.
    pub interrupted: bool,
    /// The newest checkpoint.
    pub checkpoint: PathBuf,
    /// The last logged record.
    pub last: Option<StepRecord>,
}

/// Trains `config` in `options.dir`, starting fresh or resuming from the newest checkpoint there.
///
/// A fresh start refuses a directory that already holds checkpoints (nothing is overwritten). On
/// resume the checkpoint's config is authoritative; the given config may change only `steps`,
/// `schedule` and `optimizer` (any other difference is an error naming the section).
pub fn train(config: RunConfig, registry: &Registry, device: &Device, options: RunOptions) -> Result<RunSummary> {
    let mut dir = RunDir::create(&options.dir)?;
    // Rank 0 of a data-parallel group (or a lone process) writes the run directory.
    let writer = options.group.as_ref().is_none_or(|g| g.rank() == 0);
    let mut trainer = match (options.resume, dir.latest_checkpoint()) {
        (true, Some(path)) => {
            let ckpt = Checkpoint::load(&path, device)?;
            let mut t = Trainer::from_checkpoint(&ckpt, registry, device)?;
            let context = BuildContext { sample_shape: t.data().sample_shape(), cond_dim: t.data().cond_dim() };
            check_resumable(&ckpt.config, &config, registry, &context)?;
            t.apply_resume_changes(&config, registry)?;
            if writer {
                dir.truncate_log_after(t.step_count())?;
                eprintln!("resuming {} at step {}", path.display(), t.step_count());
            }
            t
        }
        (true, None) => {
            eprintln!("no checkpoint in {}: starting fresh", options.dir.display());
            Trainer::new(config, registry, device)?
        }
        (false, Some(path)) => {
            return Err(TrainError::Config(format!(
                "{} already holds checkpoints (newest: {}); pass --resume to continue it, or choose another run name",
                options.dir.display(),
                path.display()
            )))
        }
        (false, None) => Trainer::new(config, registry, device)?,
    };
    if let Some(group) = &options.group {
        trainer.join(group.clone())?;
    }
    if writer {
        let config_path = dir.config_path();
        std::fs::write(&config_path, trainer.config().to_toml()).map_err(io_err(&config_path))?;
    }
    run_loop(&mut trainer, &mut dir, &options, writer)
}

fn run_loop(trainer: &mut Trainer, dir: &mut RunDir, options: &RunOptions, writer: bool) -> Result<RunSummary> {
    let schedule = trainer.config().schedule.clone();
    let total = trainer.config().steps;
    let bar = if options.progress && writer { ProgressBar::new(total) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_position(trainer.step_count());
    let mut last = None;
    let mut saved_at = None;
    let mut sampled_at = None;
    let mut interrupted = false;
    while trainer.step_count() < total {
        if trainer.agree_to_stop(options.stop.is_some_and(|s| s.load(Ordering::SeqCst)))? {
            interrupted = true;
            break;
        }
        let record = match trainer.step() {
            Ok(r) => r,
            Err(TrainError::Diverged { step, what, value, .. }) => {
                if writer {
                    dir.flush_log()?;
                }
                bar.abandon();
                return Err(TrainError::Diverged { step, what, value, last_checkpoint: dir.latest_checkpoint() });
            }
            Err(e) => return Err(e),
        };
        let step = record.step;
        if writer && step % schedule.log_every == 0 {
            dir.append_log(&record)?;
        }
        if step % schedule.checkpoint_every == 0 {
            if writer {
                checkpoint(trainer, dir, schedule.keep_checkpoints)?;
            }
            saved_at = Some(step);
        }
        if writer && schedule.sample_every > 0 && step % schedule.sample_every == 0 {
            samples(trainer, dir, step)?;
            sampled_at = Some(step);
        }
        if writer && schedule.evolution_steps.contains(&step) {
            evolution(trainer, dir, step)?;
        }
        bar.set_message(format!("D {:.3} G {:.3}", record.loss_d, record.loss_g));
        bar.set_position(step);
        last = Some(record);
    }
    let step = trainer.step_count();
    if writer {
        if saved_at != Some(step) {
            checkpoint(trainer, dir, schedule.keep_checkpoints)?;
        }
        if !interrupted && sampled_at != Some(step) {
            samples(trainer, dir, step)?;
        }
        crate::run_dir::write_loss_plot(&dir.loss_plot_path(), &dir.read_log()?)?;
    }
    bar.finish();
    Ok(RunSummary { step, interrupted, checkpoint: dir.checkpoint_path(step), last })
}

fn checkpoint(trainer: &mut Trainer, dir: &mut RunDir, keep: usize) -> Result<()> {
    dir.flush_log()?;
    trainer.calibrate_ema()?;
    trainer.save_checkpoint(&dir.checkpoint_path(trainer.step_count()))?;
    dir.prune_checkpoints(keep)
}

/// Writes the sample picture of `step` and adds it to the TensorBoard events.
fn samples(trainer: &mut Trainer, dir: &mut RunDir, step: u64) -> Result<()> {
    if let Some(pair) = trainer.translation() {
        let path = dir.sample_path(step);
        crate::translation::write_translation_grid(trainer, &pair, &path)?;
        return dir.log_image(step, "translations", &path);
    }
    trainer.calibrate_ema()?;
    let config = trainer.config();
    let mut rng = Stream::FixedNoise(None).rng(config.seed);
    let g = trainer.sampling_generator()?;
    let path = dir.sample_path(step);
    match trainer.data().preview() {
        Some(p) => {
            let n = config.schedule.preview_columns;
            let images = prompt_samples(g, &p.conditioning, n, &mut rng, trainer.device())?;
            write_prompt_grid(&path, &images, &p.prompts, n)?;
        }
        None => write_samples(&path, g, &config.data, config.schedule.sample_count, &mut rng, trainer.device())?,
    }
    dir.log_image(step, "samples", &path)
}

/// Adds the row of `step` to the evolution picture: fixed-noise samples (one per preview prompt for
/// text-conditioned runs), saved on their own and then stacked with the earlier rows into
/// `evolution.png`. Runs of 2D points and translation runs have no such picture.
fn evolution(trainer: &mut Trainer, dir: &RunDir, step: u64) -> Result<()> {
    if trainer.translation().is_some() {
        return Ok(());
    }
    trainer.calibrate_ema()?;
    let g = trainer.sampling_generator()?;
    let [_, size, _] = g.sample_shape()[..] else {
        return Ok(());
    };
    let config = trainer.config();
    let mut rng = Stream::FixedNoise(Some(1)).rng(config.seed);
    let images = match trainer.data().preview() {
        Some(p) => prompt_samples(g, &p.conditioning, 1, &mut rng, trainer.device())?,
        None => generate(g, config.schedule.preview_columns.max(1), None, &mut rng, trainer.device())?,
    };
    let row = dir.evolution_row_path(step);
    plot::image_grid_png(&row, &images, images.dim(0)?)?;
    let rows: Vec<(String, PathBuf)> =
        dir.evolution_rows().into_iter().map(|(s, p)| (format!("step {s}"), p)).collect();
    Ok(plot::labelled_rows_png(&dir.evolution_path(), &rows, (64 / size).max(1) as u32)?)
}

/// Errors unless `given` differs from the checkpoint's `stored` config only in what a resume may
/// change. Both are compared after plugin defaults are filled in, the fields a config may leave to
/// the data (sample shape, conditioning size) from the run's data `context`, as training filled them.
fn check_resumable(stored: &RunConfig, given: &RunConfig, registry: &Registry, context: &BuildContext) -> Result<()> {
    let mut given = given.clone();
    let (g_role, d_role) = crate::trainer::run_roles(&given, registry);
    given.generator = registry.resolve_in_context(g_role, &given.generator, context)?;
    given.discriminator = registry.resolve_in_context(d_role, &given.discriminator, context)?;
    if let Some(spec) = given.recipe.as_ref().filter(|s| s.plugin != crate::adversarial::NAME) {
        given.recipe = Some(registry.resolve_recipe(spec)?);
    }
    let differs = [
        ("seed", stored.seed != given.seed),
        ("batch_size", stored.batch_size != given.batch_size),
        ("data", stored.data != given.data),
        ("generator", stored.generator != given.generator),
        ("discriminator", stored.discriminator != given.discriminator),
        ("training", stored.training != given.training),
        ("recipe", stored.recipe != given.recipe),
        ("text.encoder", stored.text.encoder != given.text.encoder),
    ];
    if let Some((field, _)) = differs.iter().find(|(_, d)| *d) {
        return Err(TrainError::Config(format!(
            "`{field}` differs from the config stored in the checkpoint; a resumed run must keep it \
             (only steps, schedule and optimizer may change)"
        )));
    }
    if stored.optimizer != given.optimizer {
        eprintln!("warning: the optimizer settings differ from the checkpoint's; the resumed run uses the new ones");
    }
    Ok(())
}

/// The conventional run directory: `<root>/<config.name>`.
pub fn run_dir_for(root: &Path, config: &RunConfig) -> PathBuf {
    root.join(&config.name)
}
