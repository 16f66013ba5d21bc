//! `condor interpolate`: an animated GIF of a text-to-image model gliding from one prompt to another
//! (one latent code), or between two latent codes of one prompt.

use std::path::PathBuf;

use anyhow::bail;
use condor_infer::animation::{check_gif_path, write_gif, AnimationOptions};

use crate::txt2img::{open_checkpoint, warn_truncated, StyleArgs};

/// Arguments of `condor interpolate`.
#[derive(Clone, Debug, clap::Args)]
pub struct InterpolateArgs {
    /// Two prompts: the animation goes from the first to the second with the latent code fixed. One
    /// prompt: it goes between two latent codes of that prompt.
    #[arg(required = true, num_args = 1..=2)]
    pub prompts: Vec<String>,
    /// Number of frames (2 to 512), the first and last included.
    #[arg(long, default_value_t = 32)]
    pub frames: usize,
    /// Output animation (.gif).
    #[arg(long, default_value = "interpolation.gif")]
    pub out: PathBuf,
    /// The checkpoint (.safetensors); by default the one shipped in weights/.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Seed of the latent code(s): frame 0 is `condor sample`'s first image with the same seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Frames per second.
    #[arg(long, default_value_t = 12)]
    pub fps: u32,
    /// Each pixel becomes a zoom x zoom block.
    #[arg(long, default_value_t = 4)]
    pub zoom: u32,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub style: StyleArgs,
}

/// Runs `condor interpolate` with `registry`'s plugins; says what it wrote. Returns the GIF's path.
pub fn run(
    args: &InterpolateArgs,
    registry: &condor_core::Registry,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<PathBuf> {
    check_gif_path(&args.out)?;
    let device = crate::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let (model, checkpoint) = open_checkpoint(args.checkpoint.as_deref(), registry, &device)?;
    if !model.is_text_conditioned() {
        bail!("{} is not a text-to-image checkpoint; interpolate needs one", checkpoint.display());
    }
    let options = args.style.options()?;
    let (drawn, what) = match args.prompts.as_slice() {
        [from, to] => {
            (model.interpolate_prompts(from, to, args.frames, args.seed, &options)?, format!("\"{from}\" to \"{to}\""))
        }
        [prompt] => (
            model.interpolate_latents(prompt, args.frames, args.seed, &options)?,
            format!("two latent codes of \"{prompt}\""),
        ),
        _ => bail!("give one prompt (to move between latent codes) or two (to move between prompts)"),
    };
    warn_truncated(&drawn.truncated);
    write_gif(&args.out, &drawn.images, AnimationOptions { fps: args.fps, zoom: args.zoom })?;
    say(format!(
        "wrote {} ({} frames from {what}, seed {}{}, {} fps)",
        args.out.display(),
        args.frames,
        args.seed,
        args.style.describe(),
        args.fps
    ));
    Ok(args.out.clone())
}
