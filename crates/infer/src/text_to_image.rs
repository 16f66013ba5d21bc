//! The inference pipeline object: a generator and its text encoder, loaded once, serving any number of
//! prompt grids, style-mixing grids, prompt-less samples and exports.

use std::path::Path;

use candle_core::{Device, Tensor};
use condor_core::layout::Layout;
use condor_core::rng::Stream;
use condor_core::{Conditioning, Generator, Registry, TextEncoder};
use condor_text::SentenceEncoder;

use crate::card::ModelCard;
use crate::encoder::load_encoder;
use crate::error::{InferError, Result};
use crate::generator::LoadedGenerator;
use crate::interpolate::{frame_positions, slerp_rows};
use crate::placement::{layout_rows, layouts_for, Placement};
use crate::sample::{prompt_samples_styled, write_samples};
use crate::styles::{generate_styled, style_mixing_grid, style_space, StyleMix, StyleOptions};
use condor_data::layout::ObjectLayout;

/// Images drawn from prompts.
pub struct PromptImages {
    /// `(P * n, C, H, W)` in [-1, 1], prompt by prompt.
    pub images: Tensor,
    /// Indices of prompts longer than the text encoder's limit, which were truncated.
    pub truncated: Vec<usize>,
}

/// A style-mixing grid of two prompts.
pub struct StyleMixImages {
    /// `((n + 1)^2, C, H, W)`: see [`style_mixing_grid`].
    pub images: Tensor,
    /// The first layer whose style comes from the second prompt.
    pub crossover: usize,
    /// The generator's number of style inputs.
    pub layers: usize,
    /// Indices of prompts longer than the text encoder's limit, which were truncated.
    pub truncated: Vec<usize>,
}

/// A trained generator and the sentence encoder its card names, on one device.
pub struct TextToImage {
    model: LoadedGenerator,
    encoder: Option<SentenceEncoder>,
    device: Device,
}

impl TextToImage {
    /// Loads the model in `path` (see [`LoadedGenerator::load`]) and its text encoder.
    pub fn load(path: &Path, registry: &Registry, device: &Device) -> Result<Self> {
        Self::new(LoadedGenerator::load(path, registry, device)?, device)
    }

    /// Wraps a loaded generator, loading the text encoder its card names and checking that the
    /// encoder's embeddings have the size the generator reads.
    pub fn new(model: LoadedGenerator, device: &Device) -> Result<Self> {
        let dim = model.generator.conditioning().dim();
        let encoder = match &model.card.text_encoder {
            Some(source) if dim > 0 => {
                let (encoder, _) = load_encoder(source, device)?;
                if encoder.embedding_dim() != dim {
                    return Err(InferError::Request(format!(
                        "the text encoder `{source}` makes {}-dimensional embeddings but the generator expects {dim}",
                        encoder.embedding_dim()
                    )));
                }
                Some(encoder)
            }
            _ => None,
        };
        Ok(Self { model, encoder, device: device.clone() })
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.model.card
    }

    /// The generator.
    pub fn generator(&self) -> &dyn Generator {
        self.model.generator.as_ref()
    }

    /// The generator with its weights and card.
    pub fn model(&self) -> &LoadedGenerator {
        &self.model
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether it draws from prompts.
    pub fn is_text_conditioned(&self) -> bool {
        self.encoder.is_some()
    }

    /// Encodes `prompts` into the conditioning the generator reads; returns it with the indices of
    /// prompts the encoder truncated.
    pub fn encode(&self, prompts: &[String]) -> Result<(Conditioning, Vec<usize>)> {
        let encoder = self.encoder.as_ref().ok_or_else(|| {
            InferError::Request("this model's generator is not text-conditioned; sample it without prompts".into())
        })?;
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let encoded = encoder.encode_batch(&texts)?;
        Ok((Conditioning::from_embedding(encoded.sentences)?, encoded.truncated))
    }

    /// `n` images for each prompt, with the same latent codes (drawn from `seed`) for every prompt, so
    /// the rows differ only by their prompt. Same seed, same images. A what-and-where model draws each
    /// prompt in a box of a training bird chosen by `seed`.
    pub fn generate(&self, prompts: &[String], n: usize, seed: u64, options: &StyleOptions) -> Result<PromptImages> {
        self.generate_placed(prompts, n, seed, options, &Placement::default())
    }

    /// [`Self::generate`] with every prompt drawn where `placement` says (what it leaves out is drawn
    /// from the training layouts); an error for a model that reads no layout.
    pub fn generate_placed(
        &self,
        prompts: &[String],
        n: usize,
        seed: u64,
        options: &StyleOptions,
        placement: &Placement,
    ) -> Result<PromptImages> {
        let (cond, truncated) = self.encode(prompts)?;
        let kind = self.generator().layout();
        let layout = layouts_for(kind, placement, &self.model.card.data, prompts.len(), seed, &self.device)?;
        let mut rng = latent_rng(seed);
        let images =
            prompt_samples_styled(self.generator(), &cond.with_layout(layout), n, &mut rng, &self.device, options)?;
        Ok(PromptImages { images, truncated })
    }

    /// One image for each prompt, drawn in its own layout (`layouts[i]` for `prompts[i]`), with the
    /// latent codes [`Self::generate`] draws from `seed`: one per row, or with `shared_latent` the first
    /// for every row (one bird moved across boxes).
    pub fn generate_laid_out(
        &self,
        prompts: &[String],
        layouts: &[ObjectLayout],
        seed: u64,
        shared_latent: bool,
        options: &StyleOptions,
    ) -> Result<PromptImages> {
        if layouts.len() != prompts.len() {
            return Err(InferError::Request(format!("{} layouts for {} prompts", layouts.len(), prompts.len())));
        }
        if self.generator().layout() == condor_core::layout::LayoutKind::None {
            return Err(InferError::Request("this model draws wherever it likes; it reads no layout".into()));
        }
        let (cond, truncated) = self.encode(prompts)?;
        let cond = cond.with_layout(Some(layout_rows(layouts, &self.device)?));
        let z = match shared_latent {
            true => self.latents(seed, 1)?.repeat((prompts.len(), 1))?,
            false => self.latents(seed, prompts.len())?,
        };
        let images = generate_styled(self.generator(), &z, Some(&cond), options)?;
        Ok(PromptImages { images, truncated })
    }

    /// `frames` images gliding from prompt `from` to prompt `to`: one latent code (the first that
    /// [`Self::generate`] draws from `seed`), sentence embeddings interpolated spherically. The first
    /// and last frames are `generate`'s first image for each prompt.
    pub fn interpolate_prompts(
        &self,
        from: &str,
        to: &str,
        frames: usize,
        seed: u64,
        options: &StyleOptions,
    ) -> Result<PromptImages> {
        let positions = frame_positions(frames)?;
        let (cond, truncated) = self.encode(&[from.to_string(), to.to_string()])?;
        let e = &cond.embedding;
        let path = slerp_rows(&e.narrow(0, 0, 1)?, &e.narrow(0, 1, 1)?, &positions, &self.device)?;
        let z = self.latents(seed, 1)?.repeat((frames, 1))?;
        let cond = Conditioning::from_embedding(path)?.with_layout(self.one_layout(frames, seed)?);
        let images = generate_styled(self.generator(), &z, Some(&cond), options)?;
        Ok(PromptImages { images, truncated })
    }

    /// `frames` images of one prompt gliding between two latent codes (the first two that
    /// [`Self::generate`] draws from `seed`), interpolated spherically. The first and last frames are
    /// `generate`'s first two images.
    pub fn interpolate_latents(
        &self,
        prompt: &str,
        frames: usize,
        seed: u64,
        options: &StyleOptions,
    ) -> Result<PromptImages> {
        let positions = frame_positions(frames)?;
        let (cond, truncated) = self.encode(&[prompt.to_string()])?;
        let z = self.latents(seed, 2)?;
        let path = slerp_rows(&z.narrow(0, 0, 1)?, &z.narrow(0, 1, 1)?, &positions, &self.device)?;
        let e = cond.embedding.to_device(&self.device)?.repeat((frames, 1))?;
        let cond = Conditioning::from_embedding(e)?.with_layout(self.one_layout(frames, seed)?);
        let images = generate_styled(self.generator(), &path, Some(&cond), options)?;
        Ok(PromptImages { images, truncated })
    }

    /// For a what-and-where model, the layouts of `rows` training birds chosen by `seed`, one per row
    /// ([`layouts_for`]); `None` for other models.
    pub fn drawn_layouts(&self, rows: usize, seed: u64) -> Result<Option<Layout>> {
        let data = &self.model.card.data;
        layouts_for(self.generator().layout(), &Placement::default(), data, rows, seed, &self.device)
    }

    /// One training bird's layout (chosen by `seed`) for each of `rows` rows, so that an interpolation
    /// keeps the bird in one place; `None` for a model that reads no layout.
    fn one_layout(&self, rows: usize, seed: u64) -> Result<Option<Layout>> {
        Ok(self.drawn_layouts(1, seed)?.map(|one| one.repeat_each(rows)).transpose()?)
    }

    /// The first `n` latent codes [`Self::generate`] draws from `seed`.
    fn latents(&self, seed: u64, n: usize) -> Result<Tensor> {
        let mut rng = latent_rng(seed);
        Ok(condor_core::rng::normal(&mut rng, (n, self.generator().latent_dim()), &self.device)?)
    }

    /// Style mixing of a style-based generator: `n + 1` by `n + 1` images whose rows take the styles of
    /// layers below `crossover` (default: half the layers) from `coarse`'s images and whose columns
    /// take the rest from `fine`'s.
    pub fn style_mixing(
        &self,
        coarse: &str,
        fine: &str,
        n: usize,
        crossover: Option<usize>,
        seed: u64,
        options: &StyleOptions,
    ) -> Result<StyleMixImages> {
        let layers = style_space(self.generator())?.style_count();
        let crossover = crossover.unwrap_or(layers / 2);
        let (cond, truncated) = self.encode(&[coarse.to_string(), fine.to_string()])?;
        let row =
            |i: usize| -> Result<Conditioning> { Ok(Conditioning::from_embedding(cond.embedding.narrow(0, i, 1)?)?) };
        let (a, b) = (row(0)?, row(1)?);
        let mix = StyleMix { coarse: Some(&a), fine: Some(&b), n, crossover, seed };
        let images = style_mixing_grid(self.generator(), &mix, options, &self.device)?;
        Ok(StyleMixImages { images, crossover, layers, truncated })
    }

    /// Writes a picture of `n` prompt-less samples with latent codes from `seed`: a scatter plot for a
    /// 2D model, an image grid for an image model.
    pub fn write_samples(&self, path: &Path, n: usize, seed: u64) -> Result<()> {
        let mut rng = Stream::FixedNoise(None).rng(seed);
        write_samples(path, self.generator(), &self.model.card.data, n, &mut rng, &self.device)
    }

    /// Writes the generator as an exported model (weights and card).
    pub fn export(&self, path: &Path) -> Result<()> {
        self.model.export(path)
    }
}

/// The random stream of the latent codes that prompt grids and interpolations draw from `seed`: one
/// stream, so that an interpolation's end frames are the grid's images.
fn latent_rng(seed: u64) -> condor_core::Rng {
    Stream::FixedNoise(Some(2)).rng(seed)
}
