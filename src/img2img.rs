//! `condor translate` and `examples/img2img.rs`: one set of arguments, one code path. A translation
//! checkpoint (`cyclegan`, `discogan`; the shipped red-to-blue CycleGAN by default) turns each input
//! image into the other domain; each is written alone and beside its input and round trip.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::{Device, Tensor};
use condor_data::unpaired::BirdDomain;
use condor_infer::Translator;

/// The translation model shipped in `weights/`: CycleGAN between red and blue synthetic birds at
/// 32 px (weights/cyclegan-red-blue.md).
pub const SHIPPED_TRANSLATOR: &str = "cyclegan-red-blue.safetensors";

/// Birds drawn when no input is given.
const DEMO_BIRDS: usize = 8;

/// Arguments of `condor translate` and of the img2img example.
#[derive(Clone, Debug, clap::Args)]
pub struct TranslateArgs {
    /// The images (PNG, JPEG, ...): each one's centred square, resized to the model's size. None:
    /// eight test birds of the model's source domain (bird domains only), written beside their
    /// translations.
    pub images: Vec<PathBuf>,
    /// The translation checkpoint or exported model; by default the one shipped in weights/.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Translate from domain B to A (blue to red for the shipped model).
    #[arg(long)]
    pub reverse: bool,
    /// Folder of the written images: `<name>-translated.png` and `<name>-triplet.png` (input,
    /// translation, round trip).
    #[arg(long, default_value = "translations")]
    pub out: PathBuf,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// Where the shipped translation model is: `weights/` under the current directory, else the
/// `weights/` of the source tree Condor was built from.
pub fn shipped_translator() -> PathBuf {
    crate::txt2img::shipped_weights(SHIPPED_TRANSLATOR)
}

/// Test birds `0..DEMO_BIRDS` of the model's source domain (`from`: 0 for A) as a batch, with their
/// names; an error for folder domains.
fn demo_birds(translator: &Translator, from: usize, device: &Device) -> anyhow::Result<(Tensor, Vec<String>)> {
    let Some((world_seed, looks)) = translator.card().data.bird_looks() else {
        bail!(
            "give images to translate: this model's domains are not bird domains (it translates between two folders)"
        );
    };
    let world = condor_data::birds::SyntheticBirds::new(world_seed, condor_data::birds::BirdSplit::Test);
    let domain = BirdDomain { world, first: 0, len: DEMO_BIRDS, look: looks[from] };
    let side = translator.image_shape()[1];
    let images = condor_eval::translation::domain_images(&domain, DEMO_BIRDS, looks[from], side, device)?;
    let names = (0..DEMO_BIRDS).map(|i| format!("{}-bird-{i}", looks[from].name())).collect();
    Ok((images, names))
}

/// Runs `args` with the plugins of `registry`: loads the model, translates, writes the images and
/// reports each through `say`.
pub fn run(args: &TranslateArgs, registry: &condor_core::Registry, say: &mut dyn FnMut(String)) -> anyhow::Result<()> {
    let device = crate::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let path = args.checkpoint.clone().unwrap_or_else(shipped_translator);
    if args.checkpoint.is_none() && !path.is_file() {
        bail!("the shipped translation model {} is missing: restore weights/ from the repository", path.display());
    }
    let translator =
        Translator::load(&path, registry, &device).with_context(|| format!("cannot load {}", path.display()))?;
    let (from, to) = if args.reverse { (1, 0) } else { (0, 1) };
    let (batch, names) = if args.images.is_empty() {
        demo_birds(&translator, from, &device)?
    } else {
        let names = args.images.iter().map(|p| stem(p)).collect();
        (translator.read_images(&args.images, &device)?, names)
    };
    let (translations, round_trips) = translator.round_trip(&batch, args.reverse)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let domains = &translator.card().domains;
    for (i, name) in names.iter().enumerate() {
        let single = args.out.join(format!("{name}-translated.png"));
        condor_infer::plot::image_grid_png(&single, &translations.narrow(0, i, 1)?, 1)?;
        let triplet = args.out.join(format!("{name}-triplet.png"));
        let rows = [&batch, &translations, &round_trips].map(|t| t.narrow(0, i, 1));
        condor_infer::plot::image_grid_png(
            &triplet,
            &Tensor::cat(&rows.into_iter().collect::<Result<Vec<_>, _>>()?, 0)?,
            3,
        )?;
        say(format!(
            "{name} ({}) -> {} ({}); input, translation, round trip: {}",
            domains[from],
            single.display(),
            domains[to],
            triplet.display()
        ));
    }
    Ok(())
}

/// A file's name without its extension.
fn stem(path: &Path) -> String {
    path.file_stem().map_or("image".into(), |s| s.to_string_lossy().to_string())
}
