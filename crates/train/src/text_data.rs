//! Captioned images as a [`DataSource`]: images from a [`Loader`], captions turned into sentence
//! embeddings once (and cached on disk), so a training step only looks rows up.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use condor_core::layout::Layout;
use condor_core::{Batch, Conditioning, DataSource, Labelled, Preview, Rng};
use condor_data::birds::{colour_prompt, Colour};
use condor_data::layout::ObjectLayout;
use condor_data::loader::{balanced_subset, mentions_direction, CaptionedBatch, CaptionedSource, Loader, LoaderConfig};
use condor_data::{CaptionedData, DatasetConfig};
use condor_infer::encoder::load_encoder;
use condor_infer::placement::layout_rows;
use condor_text::cache::cached_embeddings;
use rand::Rng as _;

use crate::config::RunConfig;
use crate::error::{Result, TrainError};

/// The prompts of progress grids: one per body colour for synthetic birds ("a red bird", ...), one per
/// digit for MNIST ("a handwritten seven"), the first distinct captions otherwise.
pub fn preview_prompts(data: &DatasetConfig, source: &dyn CaptionedSource) -> Vec<String> {
    if matches!(data, DatasetConfig::Birds { .. }) {
        return Colour::ALL.iter().map(|c| colour_prompt(*c)).collect();
    }
    if matches!(data, DatasetConfig::Mnist { .. }) {
        return (0..10).map(condor_data::mnist::digit_prompt).collect();
    }
    let mut out: Vec<String> = Vec::new();
    for i in 0..source.len() {
        if let Some(c) = source.captions(i).into_iter().next().filter(|c| !out.contains(c)) {
            out.push(c);
        }
        if out.len() == 8 {
            break;
        }
    }
    out
}

pub(crate) fn loader_config(config: &RunConfig, data: &CaptionedData) -> LoaderConfig {
    LoaderConfig {
        batch_size: config.batch_size,
        size: data.size,
        seed: condor_core::rng::Stream::Loader.rng(config.seed).random(),
        crop: data.augment.crop,
        flip: data.augment.flip,
        layouts: data.layout,
    }
}

/// Checks a data source's batch size and draws batch `index` from its loader.
pub(crate) fn loader_batch(
    loader: &Loader,
    expected: usize,
    batch_size: usize,
    index: u64,
) -> condor_core::Result<CaptionedBatch> {
    if batch_size != expected {
        return Err(condor_core::Error::InvalidInput(format!(
            "this dataset makes batches of {expected}, not {batch_size}"
        )));
    }
    loader.batch(index).map_err(|e| condor_core::Error::InvalidInput(e.to_string()))
}

/// The images of a batch as a `(B, C, S, S)` tensor, with their labels (a digit, a bird's body colour).
fn image_tensor(b: CaptionedBatch, device: &Device) -> condor_core::Result<(Tensor, Option<Vec<usize>>)> {
    let shape = (b.indices.len(), b.channels, b.size, b.size);
    let labels = b.labels.or_else(|| b.attributes.map(|a| a.iter().map(|a| a.body as usize).collect()));
    Ok((Tensor::from_vec(b.images, shape, device)?, labels))
}

/// The class-balanced labelled subset of `source` ([`DataSource::labelled`]) at side `size`, in
/// [-1, 1] as batches hold images; `None` for a source without classes.
fn labelled_images(
    source: &dyn CaptionedSource,
    size: usize,
    per_class: usize,
    seed: u64,
    device: &Device,
) -> condor_core::Result<Option<Labelled>> {
    if source.is_empty() || source.label(0).is_none() {
        return Ok(None);
    }
    let invalid = |e: condor_data::DataError| condor_core::Error::InvalidInput(e.to_string());
    let (indices, classes) = balanced_subset(source, per_class, seed).map_err(invalid)?;
    let mut pixels = Vec::with_capacity(indices.len() * source.channels() * size * size);
    for &i in &indices {
        pixels.extend(source.image(i, size).map_err(invalid)?.into_iter().map(|v| v * 2.0 - 1.0));
    }
    let samples = Tensor::from_vec(pixels, (indices.len(), source.channels(), size, size), device)?;
    let labels = indices.iter().map(|&i| source.label(i).unwrap_or(0)).collect();
    Ok(Some(Labelled { samples, labels, classes }))
}

/// The layouts of progress grids' rows: those of the source's first images, one per prompt (none when
/// the source has none).
fn preview_layouts(source: &dyn CaptionedSource, n: usize, device: &Device) -> condor_core::Result<Option<Layout>> {
    let layouts: Option<Vec<ObjectLayout>> = (0..n).map(|i| source.layout(i % source.len())).collect();
    Ok(layouts.map(|l| layout_rows(&l, device)).transpose()?)
}

/// Images without captions: the unconditional GAN's data (MNIST with `text = false`).
pub struct UncaptionedImages {
    source: Arc<dyn CaptionedSource>,
    loader: Loader,
    shape: Vec<usize>,
    batch_size: usize,
}

impl UncaptionedImages {
    /// Opens the image dataset of `config`.
    pub fn open(config: &RunConfig) -> Result<Self> {
        let data = config.data.captioned()?.ok_or_else(|| TrainError::Config("not an image dataset".into()))?;
        let shape = vec![data.source.channels(), data.size, data.size];
        let loader = Loader::new(data.source.clone(), loader_config(config, &data))?;
        Ok(Self { source: data.source, loader, shape, batch_size: config.batch_size })
    }
}

impl DataSource for UncaptionedImages {
    fn sample_shape(&self) -> Vec<usize> {
        self.shape.clone()
    }
    fn cond_dim(&self) -> usize {
        0
    }
    fn batch(&self, index: u64, batch_size: usize, _rng: &mut Rng, device: &Device) -> condor_core::Result<Batch> {
        let (samples, labels) = image_tensor(loader_batch(&self.loader, self.batch_size, batch_size, index)?, device)?;
        Ok(Batch { samples, conditioning: None, labels })
    }
    fn conditioning(&self, _: u64, _: usize, _: &mut Rng, _: &Device) -> condor_core::Result<Option<Conditioning>> {
        Ok(None)
    }
    fn labelled(&self, per_class: usize, seed: u64, device: &Device) -> condor_core::Result<Option<Labelled>> {
        labelled_images(self.source.as_ref(), self.shape[1], per_class, seed, device)
    }
}

/// Captioned images with their caption embeddings.
pub struct CaptionedImages {
    source: Arc<dyn CaptionedSource>,
    loader: Loader,
    size: usize,
    batch_size: usize,
    /// `(captions, E)` embeddings on the training device.
    table: Tensor,
    rows: HashMap<String, u32>,
    preview: Preview,
    /// Whether images are mirrored at random (the generator's layouts are then mirrored too).
    flip: bool,
    /// Whether batches carry layouts.
    layout: bool,
}

impl CaptionedImages {
    /// Opens the dataset of `config` (which must be a captioned one), embeds every caption with the
    /// configured text encoder (through the on-disk cache) and embeds the preview prompts.
    pub fn open(config: &RunConfig, device: &Device) -> Result<Self> {
        let data = config.data.captioned()?.ok_or_else(|| TrainError::Config("not a captioned dataset".into()))?;
        let (encoder, fingerprint) = load_encoder(&config.text.encoder, device)?;
        let mut captions: Vec<String> = (0..data.source.len()).flat_map(|i| data.source.captions(i)).collect();
        captions.sort();
        captions.dedup();
        if captions.is_empty() {
            return Err(TrainError::Config("the dataset has no captions".into()));
        }
        let table =
            cached_embeddings(&encoder, &fingerprint, &captions, &config.text.cache_dir, 64)?.to_device(device)?;
        let rows = captions.into_iter().enumerate().map(|(i, c)| (c, i as u32)).collect();
        let prompts = preview_prompts(&config.data, data.source.as_ref());
        let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let layouts = match data.layout {
            true => preview_layouts(data.source.as_ref(), prompts.len(), device)?,
            false => None,
        };
        let conditioning = Conditioning::from_embedding(encoder.encode_batch(&texts)?.sentences)?.with_layout(layouts);
        let preview = Preview { conditioning, prompts };
        let loader = Loader::new(data.source.clone(), loader_config(config, &data))?;
        let (size, batch_size, flip, layout) = (data.size, config.batch_size, data.augment.flip, data.layout);
        Ok(Self { source: data.source, loader, size, batch_size, table, rows, preview, flip, layout })
    }

    /// Number of distinct captions embedded.
    pub fn caption_count(&self) -> usize {
        self.rows.len()
    }

    fn embed(&self, captions: &[String]) -> Result<Conditioning> {
        let ids = captions
            .iter()
            .map(|c| {
                self.rows.get(c).copied().ok_or_else(|| TrainError::Config(format!("caption not embedded: {c:?}")))
            })
            .collect::<Result<Vec<u32>>>()?;
        let ids = Tensor::from_vec(ids, captions.len(), self.table.device())?;
        Ok(Conditioning::from_embedding(self.table.index_select(&ids, 0)?)?)
    }
}

fn core_err(e: TrainError) -> condor_core::Error {
    condor_core::Error::InvalidInput(e.to_string())
}

impl DataSource for CaptionedImages {
    fn sample_shape(&self) -> Vec<usize> {
        vec![self.source.channels(), self.size, self.size]
    }
    fn cond_dim(&self) -> usize {
        self.table.dims()[1]
    }
    fn batch(&self, index: u64, batch_size: usize, _rng: &mut Rng, device: &Device) -> condor_core::Result<Batch> {
        let b = loader_batch(&self.loader, self.batch_size, batch_size, index)?;
        let layout = b.layouts.as_deref().map(|l| layout_rows(l, device)).transpose()?;
        let conditioning = Some(self.embed(&b.captions).map_err(core_err)?.with_layout(layout));
        let (samples, labels) = image_tensor(b, device)?;
        Ok(Batch { samples, conditioning, labels })
    }
    /// Captions for a generator step: `batch_size` images drawn at random, one caption of each, with
    /// the image's layout where the data has one (mirrored at random, as images are, unless the caption
    /// says which way the bird faces).
    fn conditioning(
        &self,
        _index: u64,
        batch_size: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> condor_core::Result<Option<Conditioning>> {
        let mut captions = Vec::with_capacity(batch_size);
        let mut layouts = Vec::with_capacity(batch_size);
        for _ in 0..batch_size {
            let image = rng.random_range(0..self.source.len());
            let all = self.source.captions(image);
            let pick = rng.random_range(0..all.len().max(1));
            let caption = all.get(pick).cloned().unwrap_or_default();
            if let Some(layout) = self.layout.then(|| self.source.layout(image)).flatten() {
                let mirror = self.flip && !mentions_direction(&caption) && rng.random_bool(0.5);
                layouts.push(if mirror { layout.flipped() } else { layout });
            }
            captions.push(caption);
        }
        let layout = (layouts.len() == batch_size).then(|| layout_rows(&layouts, device)).transpose()?;
        Ok(Some(self.embed(&captions).map_err(core_err)?.with_layout(layout)))
    }
    fn preview(&self) -> Option<&Preview> {
        Some(&self.preview)
    }
}

/// The data source a run config describes: a mixture, captioned images joined to the text encoder,
/// images alone, or two unpaired domains.
pub fn build_data(config: &RunConfig, device: &Device) -> Result<Box<dyn DataSource>> {
    if matches!(config.data, DatasetConfig::Unpaired { .. }) {
        Ok(Box::new(crate::unpaired_data::UnpairedImages::open(config)?))
    } else if config.data.is_captioned() {
        Ok(Box::new(CaptionedImages::open(config, device)?))
    } else if config.data.is_images() {
        Ok(Box::new(UncaptionedImages::open(config)?))
    } else {
        Ok(config.data.build()?)
    }
}
