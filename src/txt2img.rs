//! `condor sample` and `examples/txt2img.rs`: one set of arguments, one code path. Prompts and a
//! text-conditioned checkpoint give a PNG grid (a row per prompt); a checkpoint of a 2D mixture or an
//! unconditional image model gives a scatter plot or an image grid.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use condor_core::derived_rng;
use condor_pipeline::sample::{self, LoadedGenerator};

/// The checkpoint shipped in `weights/`: the synthetic-birds DCGAN.
pub const SHIPPED_CHECKPOINT: &str = "birds-dcgan-32.safetensors";

/// Where the shipped checkpoint is: `$CONDOR_CHECKPOINT` if set, else `weights/` under the current
/// directory, else the `weights/` of the source tree Condor was built from.
pub fn shipped_checkpoint() -> PathBuf {
    if let Some(p) = std::env::var_os("CONDOR_CHECKPOINT") {
        return PathBuf::from(p);
    }
    let local = Path::new("weights").join(SHIPPED_CHECKPOINT);
    if local.is_file() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(SHIPPED_CHECKPOINT)
}

/// Arguments of `condor sample` and of the txt2img example.
#[derive(Clone, Debug, clap::Args)]
pub struct SampleArgs {
    /// Prompts, for text-conditioned checkpoints: one row of images each (e.g. "a red bird").
    pub prompts: Vec<String>,
    /// The checkpoint (.safetensors); by default the one shipped in weights/.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Images per prompt (default 4), or samples of a prompt-less model (default 1000).
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed of the latent codes: the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG (default txt2img.png with prompts, samples.png without).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `condor sample` / txt2img and says on stdout (through `say`) what it wrote. Returns the PNG path.
pub fn run(args: &SampleArgs, say: &mut dyn FnMut(String)) -> anyhow::Result<PathBuf> {
    let device = crate::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let checkpoint = args.checkpoint.clone().unwrap_or_else(shipped_checkpoint);
    if args.checkpoint.is_none() && !checkpoint.is_file() {
        bail!(
            "the shipped checkpoint {} is missing: restore weights/ from the repository (git checkout weights), \
             or pass --checkpoint with one you trained (just train-birds)",
            checkpoint.display()
        );
    }
    let registry = crate::registry();
    let loaded = LoadedGenerator::load(&checkpoint, &registry, &device)
        .with_context(|| format!("cannot sample from {}", checkpoint.display()))?;
    let text_conditioned = loaded.config.data.is_captioned();
    let weights = if loaded.is_ema { "EMA" } else { "generator" };
    if text_conditioned || !args.prompts.is_empty() {
        if !text_conditioned {
            bail!("{} is not a text-to-image checkpoint; sample it without prompts", checkpoint.display());
        }
        if args.prompts.is_empty() {
            bail!("give one or more prompts, e.g. \"a red bird\"");
        }
        let n = args.n.unwrap_or(4);
        let out = args.out.clone().unwrap_or_else(|| PathBuf::from("txt2img.png"));
        let drawn = sample::text_to_image(&loaded, &args.prompts, n, args.seed, &device)?;
        for &i in &drawn.truncated {
            eprintln!("warning: prompt {} is longer than the text encoder reads; it was truncated", i + 1);
        }
        sample::write_prompt_grid(&out, &drawn.images, &args.prompts, n)?;
        say(format!(
            "wrote {} ({} prompt(s) x {n} images, seed {}, {} weights of step {})",
            out.display(),
            args.prompts.len(),
            args.seed,
            weights,
            loaded.step
        ));
        return Ok(out);
    }
    let n = args.n.unwrap_or(1000);
    if n == 0 {
        bail!("--n must be at least 1");
    }
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("samples.png"));
    let mut rng = derived_rng(args.seed, &[sample::FIXED_NOISE_STREAM]);
    sample::write_samples(&out, loaded.generator.as_ref(), &loaded.config.data, n, &mut rng, &device)?;
    if loaded.generator.sample_shape() == [2] {
        let cov = sample::mixture_coverage(loaded.generator.as_ref(), &loaded.config.data, n, 1, args.seed, &device)?;
        say(serde_json::to_string(&cov)?);
    }
    say(format!("wrote {} ({n} samples, step {}, {weights} weights)", out.display(), loaded.step));
    Ok(out)
}
