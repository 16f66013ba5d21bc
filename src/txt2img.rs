//! `condor sample` and `examples/txt2img.rs`: one set of arguments, one code path. Prompts and a
//! text-conditioned checkpoint give a PNG grid (a row per prompt); a checkpoint of a 2D mixture or an
//! unconditional image model gives a scatter plot or an image grid.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use condor_infer::placement::{parse_box, parse_keypoints, Placement};
use condor_infer::sample;
use condor_infer::styles::{self, StyleOptions};
use condor_infer::TextToImage;

/// The default checkpoint shipped in `weights/`: the 64-px synthetic-birds DCGAN that reads its
/// captions through a pretrained text head (weights/birds-text-64.md).
pub const SHIPPED_CHECKPOINT: &str = "birds-text-64.safetensors";

/// Where the shipped checkpoint is: `$CONDOR_CHECKPOINT` if set, else `weights/` under the current
/// directory, else the `weights/` of the source tree Condor was built from.
pub fn shipped_checkpoint() -> PathBuf {
    if let Some(p) = std::env::var_os("CONDOR_CHECKPOINT") {
        return PathBuf::from(p);
    }
    shipped_weights(SHIPPED_CHECKPOINT)
}

/// The shipped weights file `file`: in `weights/` under the current directory, else in the
/// `weights/` of the source tree Condor was built from.
pub fn shipped_weights(file: &str) -> PathBuf {
    let local = Path::new("weights").join(file);
    if local.is_file() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(file)
}

/// Loads `checkpoint` (the shipped one when `None`) as a pipeline on `device`; returns it with the
/// path it was loaded from. A missing shipped checkpoint gets an error that says how to restore it.
pub fn open_checkpoint(
    checkpoint: Option<&Path>,
    registry: &condor_core::Registry,
    device: &candle_core::Device,
) -> anyhow::Result<(TextToImage, PathBuf)> {
    let path = checkpoint.map(Path::to_path_buf).unwrap_or_else(shipped_checkpoint);
    if checkpoint.is_none() && !path.is_file() {
        bail!(
            "the shipped checkpoint {} is missing: restore weights/ from the repository (git checkout weights), \
             or pass --checkpoint with one you trained (just train-birds)",
            path.display()
        );
    }
    let model = condor_train::export::open_model(&path, registry, device)
        .with_context(|| format!("cannot load {}", path.display()))?;
    Ok((model, path))
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
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub style: StyleArgs,
    /// Style mixing (style-based checkpoints, two prompts): a grid whose rows take the coarse styles of
    /// the first prompt's images and whose columns take the fine styles of the second's.
    #[arg(long)]
    pub style_mix: bool,
    /// First layer whose style comes from the second prompt in --style-mix (default: half the layers).
    #[arg(long)]
    pub crossover: Option<usize>,
    /// Where the bird goes, for what-and-where models: x,y,w,h as fractions of the image (the box's
    /// top-left corner, width and height). Without it, each prompt takes a training bird's box. Given
    /// more than once, each prompt's bird (one latent code) is drawn in every box, one column each.
    #[arg(long = "box", value_parser = parse_box)]
    pub boxes: Vec<[f32; 4]>,
    /// Where its parts go, for models that read keypoints: name=x,y;name=x,y with names head, beak,
    /// tail, wing, belly (fractions of the image). Parts left out follow the box.
    #[arg(long, value_parser = parse_keypoints)]
    pub keypoints: Option<[Option<[f32; 2]>; 5]>,
}

impl SampleArgs {
    /// The defaults of the command line for `prompts` (4 images each, seed 0, the shipped checkpoint,
    /// the first GPU this build can open, else the CPU), for calling [`run`] from code.
    pub fn for_prompts(prompts: Vec<String>) -> Self {
        Self {
            prompts,
            checkpoint: None,
            n: None,
            seed: 0,
            out: None,
            device: "auto".into(),
            style: StyleArgs { truncation: None, noise: "latent".into() },
            style_mix: false,
            crossover: None,
            boxes: Vec::new(),
            keypoints: None,
        }
    }

    /// The box (the first) and keypoints asked for.
    pub fn placement(&self) -> Placement {
        Placement { bbox: self.boxes.first().copied(), keypoints: self.keypoints }
    }
}

/// Options of style-based generators (the `stylegan` plugin), shared by `condor sample`, txt2img and
/// `condor colours`.
#[derive(Clone, Debug, clap::Args)]
pub struct StyleArgs {
    /// Truncation psi: 1 changes nothing, smaller trades variety for typical images. Style-based
    /// checkpoints move w toward the prompt's average style (0 draws its average image); checkpoints
    /// with conditioning augmentation scale its draw (c = mu + psi sigma eps; 0 reads the caption's mean).
    #[arg(long)]
    pub truncation: Option<f64>,
    /// Noise inputs of style-based checkpoints: latent (seeded by each latent vector), fixed (the
    /// stored maps) or zero.
    #[arg(long, default_value = "latent")]
    pub noise: String,
}

impl StyleArgs {
    /// The pipeline's options for these arguments.
    pub fn options(&self) -> anyhow::Result<StyleOptions> {
        Ok(StyleOptions { truncation: self.truncation, noise: styles::parse_noise(&self.noise)? })
    }

    /// ", truncation 0.7, fixed noise" for messages; empty for the defaults.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(psi) = self.truncation {
            out += &format!(", truncation {psi}");
        }
        if self.noise != "latent" {
            out += &format!(", {} noise", self.noise);
        }
        out
    }
}

/// Runs `condor sample` / txt2img and says on stdout (through `say`) what it wrote. Returns the PNG path.
pub fn run(args: &SampleArgs, say: &mut dyn FnMut(String)) -> anyhow::Result<PathBuf> {
    run_with(args, &crate::registry(), say)
}

/// [`run`] with the plugins of `registry` (for programs with plugins of their own).
pub fn run_with(
    args: &SampleArgs,
    registry: &condor_core::Registry,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<PathBuf> {
    let device = crate::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let (model, checkpoint) = open_checkpoint(args.checkpoint.as_deref(), registry, &device)?;
    let card = model.card();
    let weights = if card.ema { "EMA" } else { "generator" };
    if model.is_text_conditioned() || !args.prompts.is_empty() {
        if !model.is_text_conditioned() {
            bail!("{} is not a text-to-image checkpoint; sample it without prompts", checkpoint.display());
        }
        if args.prompts.is_empty() {
            bail!("give one or more prompts, e.g. \"a red bird\"");
        }
        let n = args.n.unwrap_or(4);
        let out = args.out.clone().unwrap_or_else(|| PathBuf::from("txt2img.png"));
        let options = args.style.options()?;
        if args.style_mix {
            return style_mix(args, &model, n, &options, &out, say);
        }
        if args.boxes.len() > 1 {
            return box_sweep(args, &model, &options, &out, say);
        }
        let drawn = model.generate_placed(&args.prompts, n, args.seed, &options, &args.placement())?;
        warn_truncated(&drawn.truncated);
        sample::write_prompt_grid(&out, &drawn.images, &args.prompts, n)?;
        say(format!(
            "wrote {} ({} prompt(s) x {n} images, seed {}{}, {} weights of step {})",
            out.display(),
            args.prompts.len(),
            args.seed,
            args.style.describe(),
            weights,
            card.step
        ));
        return Ok(out);
    }
    if args.style_mix || !args.style.options()?.is_plain() {
        bail!("--style-mix, --truncation and --noise are for text-to-image checkpoints of style-based generators");
    }
    let n = args.n.unwrap_or(1000);
    if n == 0 {
        bail!("--n must be at least 1");
    }
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("samples.png"));
    model.write_samples(&out, n, args.seed)?;
    if model.generator().sample_shape() == [2] {
        let cov = condor_eval::mixture::mixture_coverage(model.generator(), &card.data, n, 1, args.seed, &device)?;
        say(serde_json::to_string(&cov)?);
    }
    say(format!("wrote {} ({n} samples, step {}, {weights} weights)", out.display(), card.step));
    Ok(out)
}

/// Warns on stderr of prompts longer than the text encoder reads.
/// Each prompt's bird drawn in every box of `args` (one latent code per prompt, from the seed; the
/// keypoints of a training bird moved into each box): a grid of one row per prompt.
fn box_sweep(
    args: &SampleArgs,
    model: &TextToImage,
    options: &StyleOptions,
    out: &Path,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<PathBuf> {
    args.placement().check_for(model.generator().layout())?;
    let drawn = condor_infer::placement::training_layout(&model.card().data, args.seed);
    let layouts: Vec<_> =
        args.boxes.iter().map(|b| Placement { bbox: Some(*b), keypoints: args.keypoints }.complete(drawn)).collect();
    let mut rows = Vec::new();
    for prompt in &args.prompts {
        let prompts = vec![prompt.clone(); layouts.len()];
        let images = model.generate_laid_out(&prompts, &layouts, args.seed, true, options)?;
        warn_truncated(&images.truncated);
        rows.push(images.images);
    }
    let images = candle_core::Tensor::cat(&rows, 0)?;
    sample::write_prompt_grid(out, &images, &args.prompts, args.boxes.len())?;
    say(format!(
        "wrote {} ({} prompts, each in {} boxes, seed {})",
        out.display(),
        args.prompts.len(),
        args.boxes.len(),
        args.seed
    ));
    Ok(out.to_path_buf())
}

pub(crate) fn warn_truncated(truncated: &[usize]) {
    for &i in truncated {
        eprintln!("warning: prompt {} is longer than the text encoder reads; it was truncated", i + 1);
    }
}

/// `--style-mix`: the style-mixing grid of two prompts, `n` latents each.
fn style_mix(
    args: &SampleArgs,
    model: &TextToImage,
    n: usize,
    options: &StyleOptions,
    out: &Path,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<PathBuf> {
    let [coarse, fine] = args.prompts.as_slice() else {
        bail!("--style-mix takes exactly two prompts: the first gives the coarse styles, the second the fine ones");
    };
    if !(1..=16).contains(&n) {
        bail!("--style-mix draws an (n + 1) x (n + 1) grid; --n must be 1 to 16, not {n}");
    }
    let mix = model.style_mixing(coarse, fine, n, args.crossover, args.seed, options)?;
    warn_truncated(&mix.truncated);
    let (crossover, layers) = (mix.crossover, mix.layers);
    let mut captions = vec![String::new(); (n + 1) * (n + 1)];
    captions[0] = format!("layers < {crossover}: rows");
    captions[1] = format!("columns: {fine}");
    captions[n + 1] = format!("rows: {coarse}");
    let rgb = sample::to_rgb8(&mix.images)?;
    let size = mix.images.dim(2)?;
    condor_infer::plot::captioned_grid_png(out, &rgb, size, &captions, n + 1, (96 / size).max(1) as u32, 3)?;
    say(format!(
        "wrote {} (style mixing: layers 0..{crossover} of {layers} from \"{coarse}\" (rows), the rest from \"{fine}\" (columns), seed {}{})",
        out.display(),
        args.seed,
        args.style.describe()
    ));
    Ok(out.to_path_buf())
}
