//! Pretraining an attention-pooling head for a sentence encoder against a dataset's images, as AttnGAN
//! pretrains its text encoder (DAMSM) before the GAN: the head ([`condor_text::AttentionPooling`])
//! and a small image encoder are trained together so that each image's embedding is nearest its own
//! caption's among the batch (a symmetric contrastive loss, as in CLIP), and nearer its own caption
//! than that caption with two colour words swapped ("a red bird with blue wings" against "a blue bird
//! with red wings"), the swapped-word hard negatives of NegCLIP (Yuksekgonul et al. 2023): without
//! them in-batch negatives hardly ever differ only in which colour goes with which part, and the head
//! learns a bag of words no better than the mean. The base encoder stays
//! frozen: its token embeddings are computed once per distinct caption. The head, not the image
//! encoder, is what is kept: its sentence embeddings then condition the GAN.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Linear, Optimizer, VarBuilder};
use condor_core::activation::Activation;
use condor_core::conv::Conv2d;
use condor_core::Params;
use condor_data::loader::{CaptionedSource, Loader, LoaderConfig};
use condor_infer::encoder::load_encoder;
use condor_text::{AttentionPooling, PoolingShape, SentenceEncoder};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};

/// How the head is pretrained.
#[derive(Clone, Debug, PartialEq)]
pub struct TextPretraining {
    /// Optimizer steps.
    pub steps: usize,
    /// Image-caption pairs per step (each one's negatives are the batch's others).
    pub batch_size: usize,
    /// Learned queries of the head.
    pub queries: usize,
    /// AdamW's learning rate.
    pub lr: f64,
    /// Seed of the initial weights and of the batches.
    pub seed: u64,
    /// The sentence encoder under the head when the run config's `[text] encoder` is itself a head
    /// (the one being made, typically); otherwise the config's encoder is the base.
    pub base: String,
}

impl Default for TextPretraining {
    fn default() -> Self {
        Self { steps: 1500, batch_size: 128, queries: 4, lr: 1e-3, seed: 0, base: "shipped".into() }
    }
}

impl TextPretraining {
    /// The encoder the head pools over for a run config naming `encoder`: that encoder, unless it is a
    /// pooling head itself, then [`Self::base`].
    pub fn base_for<'a>(&'a self, encoder: &'a str) -> &'a str {
        if condor_text::pooling::is_pooling_file(encoder) {
            &self.base
        } else {
            encoder
        }
    }
}

/// What one step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PretrainingStep {
    /// The step, from 0.
    pub step: usize,
    /// The contrastive loss.
    pub loss: f32,
    /// Share of the batch's images whose nearest caption in the batch is their own.
    pub image_to_text: f32,
    /// Share of the batch's images nearer their own caption than its hard negative.
    pub beats_negative: f32,
}

/// The prefix of the image encoder's tensors in a pooling file.
pub const IMAGE_PREFIX: &str = "image.";
/// The name of the learned contrastive scale (the inverse temperature) in a pooling file.
pub const SCALE_NAME: &str = "image.logit_scale";

/// The trained head's tensors and shape, ready for [`condor_text::pooling::save_pooling`].
pub struct PretrainedPooling {
    /// `queries`, `out.weight`, `out.bias`, and the image encoder it was trained with under
    /// [`IMAGE_PREFIX`] (with the contrastive scale, [`SCALE_NAME`]), which the text-image matching
    /// loss of a GAN run reads ([`crate::matching`]).
    pub tensors: HashMap<String, Tensor>,
    /// Its shape.
    pub shape: PoolingShape,
    /// The sentence encoder it pools over ([`TextPretraining::base_for`] the run's encoder).
    pub base: String,
}

/// Colour words swapped to make hard negatives: CUB's attribute colours, with the American spelling of
/// grey.
pub const COLOUR_WORDS: [&str; 16] = [
    "red",
    "blue",
    "yellow",
    "black",
    "white",
    "brown",
    "grey",
    "gray",
    "green",
    "orange",
    "purple",
    "pink",
    "buff",
    "olive",
    "rufous",
    "iridescent",
];

/// `caption` with its colour words ([`COLOUR_WORDS`]) bound differently: the first two distinct
/// ones swapped everywhere, or with one colour named, that colour replaced by the next one in the
/// list. `None` for a caption that names no colour.
pub fn swapped_colours(caption: &str) -> Option<String> {
    let words: Vec<&str> = caption.split(' ').collect();
    let colour = |w: &str| COLOUR_WORDS.iter().position(|c| w.trim_matches(|ch: char| !ch.is_alphanumeric()) == *c);
    let mut distinct: Vec<usize> = Vec::new();
    for w in &words {
        if let Some(c) = colour(w).filter(|c| !distinct.contains(c)) {
            distinct.push(c);
        }
    }
    let (a, b) = match distinct.as_slice() {
        [] => return None,
        [a] => (*a, (*a + 1) % COLOUR_WORDS.len()),
        [a, b, ..] => (*a, *b),
    };
    let swap = |w: &str| -> String {
        match colour(w) {
            Some(c) if c == a => w.replacen(COLOUR_WORDS[a], COLOUR_WORDS[b], 1),
            Some(c) if c == b => w.replacen(COLOUR_WORDS[b], COLOUR_WORDS[a], 1),
            _ => w.to_string(),
        }
    };
    Some(words.iter().map(|w| swap(w)).collect::<Vec<_>>().join(" "))
}

/// The frozen base encoder's outputs for every distinct caption of a dataset, padded to one length.
struct TokenTable {
    rows: HashMap<String, u32>,
    /// `(N, T, E)`.
    tokens: Tensor,
    /// `(N, T)`.
    mask: Tensor,
    /// `(N, E)` normalised mean pooling.
    mean: Tensor,
}

impl TokenTable {
    fn encode(encoder: &SentenceEncoder, captions: Vec<String>) -> Result<Self> {
        let mut parts = Vec::new();
        for chunk in captions.chunks(64) {
            let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let e = encoder.encode_batch(&texts)?;
            parts.push((e.tokens, e.mask, e.sentences));
        }
        let longest = parts.iter().map(|p| p.1.dims()[1]).max().unwrap_or(1);
        let pad = |t: &Tensor| t.pad_with_zeros(1, 0, longest - t.dims()[1]);
        let tokens = Tensor::cat(&parts.iter().map(|p| pad(&p.0)).collect::<candle_core::Result<Vec<_>>>()?, 0)?;
        let mask = Tensor::cat(&parts.iter().map(|p| pad(&p.1)).collect::<candle_core::Result<Vec<_>>>()?, 0)?;
        let mean = Tensor::cat(&parts.iter().map(|p| &p.2).collect::<Vec<_>>(), 0)?;
        let rows = captions.into_iter().enumerate().map(|(i, c)| (c, i as u32)).collect();
        Ok(Self { rows, tokens, mask, mean })
    }

    /// `(tokens, mask, mean)` of `captions`.
    fn lookup(&self, captions: &[String]) -> Result<(Tensor, Tensor, Tensor)> {
        let ids = captions
            .iter()
            .map(|c| self.rows.get(c).copied().ok_or_else(|| TrainError::Config(format!("caption not encoded: {c:?}"))))
            .collect::<Result<Vec<u32>>>()?;
        let ids = Tensor::from_vec(ids, captions.len(), self.tokens.device())?;
        Ok((self.tokens.index_select(&ids, 0)?, self.mask.index_select(&ids, 0)?, self.mean.index_select(&ids, 0)?))
    }
}

/// The image side of the contrastive pair: three stages of 3x3 convolution, leaky ReLU and 2x2
/// average pooling (32, 64, 128 channels), then a linear map to the text embedding's size.
pub struct ImageEncoder {
    conv: [Conv2d; 3],
    out: Linear,
    side: usize,
}

impl ImageEncoder {
    /// The encoder stored in a pooling file's tensors (under [`IMAGE_PREFIX`]), as constants.
    pub fn from_tensors(tensors: &HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let get = |name: &str| {
            tensors.get(&format!("{IMAGE_PREFIX}{name}")).ok_or_else(|| {
                TrainError::Config(format!("the text encoder file has no image encoder (`{IMAGE_PREFIX}{name}`): it was not made by `condor text-encoder pretrain`"))
            })
        };
        let (channels, out) = (get("conv0.weight")?.dims()[1], get("out.weight")?.dims2()?);
        let side = 8 * ((out.1 / 128) as f64).sqrt().round() as usize;
        let own: HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(IMAGE_PREFIX).map(|k| (k.to_string(), v.clone())))
            .collect();
        let vb = VarBuilder::from_tensors(own, DType::F32, device);
        Ok(Self::new(channels, side, out.0, vb)?)
    }

    fn new(channels: usize, side: usize, dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let layer = |c_in: usize, c_out: usize, name: &str| -> candle_core::Result<Conv2d> {
            let vb = vb.pp(name);
            let init = candle_nn::Init::Randn { mean: 0.0, stdev: (2.0 / (9 * c_in) as f64).sqrt() };
            let weight = vb.get_with_hints((c_out, c_in, 3, 3), "weight", init)?;
            Ok(Conv2d::new(weight, Some(vb.get_with_hints(c_out, "bias", candle_nn::Init::Const(0.0))?), 1, 1))
        };
        let conv = [layer(channels, 32, "conv0")?, layer(32, 64, "conv1")?, layer(64, 128, "conv2")?];
        let out = candle_nn::linear(128 * (side / 8) * (side / 8), dim, vb.pp("out"))?;
        Ok(Self { conv, out, side })
    }

    /// The side of the images it was trained on.
    pub fn side(&self) -> usize {
        self.side
    }

    /// `(B, D)` unit embeddings of `(B, C, S, S)` images in [-1, 1]. Images `k` times the encoder's
    /// side are first averaged down over `k x k` blocks, so a head pretrained at 32 px serves a
    /// 64-px generator.
    pub fn embed(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let input = images.dim(D::Minus1)?;
        let mut x = match input / self.side {
            1 if input == self.side => images.clone(),
            k if k > 1 && input == k * self.side => images.avg_pool2d(k)?,
            _ => candle_core::bail!(
                "the text head's image encoder reads {} px images (or a multiple), not {input} px",
                self.side
            ),
        };
        for conv in &self.conv {
            x = conv.forward_act(&x, Activation::LeakyRelu(0.2))?.avg_pool2d(2)?;
        }
        let v = self.out.forward(&x.flatten_from(1)?)?;
        v.broadcast_div(&(v.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?)
    }
}

/// The symmetric contrastive loss of `(B, D)` unit text and image embeddings at `scale` (a `(1,)`
/// tensor): each image's own caption against the batch's others and each caption's image likewise.
pub fn in_batch_contrastive_loss(text: &Tensor, image: &Tensor, scale: &Tensor) -> candle_core::Result<Tensor> {
    let b = text.dims()[0];
    let logits = image.matmul(&text.t()?)?.broadcast_mul(scale)?;
    let targets = Tensor::arange(0u32, b as u32, text.device())?;
    (candle_nn::loss::cross_entropy(&logits, &targets)? + candle_nn::loss::cross_entropy(&logits.t()?, &targets)?)?
        / 2.0
}

/// The symmetric contrastive loss of `(B, D)` unit text and image embeddings at `scale`, each image
/// also scored against the `(B, D)` hard-negative captions, and the share of images whose own
/// caption scores highest among the batch's.
fn contrastive_loss(
    text: &Tensor,
    negatives: &Tensor,
    image: &Tensor,
    scale: &Tensor,
) -> candle_core::Result<(Tensor, f32, f32)> {
    let b = text.dims()[0];
    let logits = image.matmul(&text.t()?)?.broadcast_mul(scale)?;
    let hard = image.matmul(&negatives.t()?)?.broadcast_mul(scale)?;
    let targets = Tensor::arange(0u32, b as u32, text.device())?;
    let image_to_text = candle_nn::loss::cross_entropy(&Tensor::cat(&[&logits, &hard], 1)?, &targets)?;
    let loss = ((image_to_text + candle_nn::loss::cross_entropy(&logits.t()?, &targets)?)? / 2.0)?;
    let hits: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
    let right = hits.iter().enumerate().filter(|(i, &h)| *i as u32 == h).count();
    let own: Vec<f32> = (image * text)?.sum(1)?.to_vec1()?;
    let swapped: Vec<f32> = (image * negatives)?.sum(1)?.to_vec1()?;
    let beats = own.iter().zip(&swapped).filter(|(o, s)| o > s).count();
    Ok((loss, right as f32 / b as f32, beats as f32 / b as f32))
}

/// The hard negative of each caption: its colours swapped, or for a caption without colours a
/// caption of the next image (an ordinary negative).
fn negative_captions(captions: &[String], images: &[usize], source: &dyn CaptionedSource) -> Vec<String> {
    captions
        .iter()
        .zip(images)
        .map(|(c, &i)| {
            swapped_colours(c).unwrap_or_else(|| {
                let other = source.captions((i + 1) % source.len());
                other.into_iter().next().unwrap_or_else(|| c.clone())
            })
        })
        .collect()
}

/// Trains a pooling head for the text encoder of `config` on its dataset's images and captions,
/// calling `on_step` after every step.
pub fn pretrain_pooling(
    config: &RunConfig,
    options: &TextPretraining,
    device: &Device,
    on_step: &mut dyn FnMut(PretrainingStep),
) -> Result<PretrainedPooling> {
    let data = config.data.captioned()?.ok_or_else(|| TrainError::Config("not a captioned dataset".into()))?;
    if options.batch_size < 2 || options.queries == 0 || !data.size.is_multiple_of(8) {
        return Err(TrainError::Config(format!(
            "text pretraining needs a batch of 2+, 1+ queries and images whose side divides by 8 (got {}, {}, {})",
            options.batch_size, options.queries, data.size
        )));
    }
    let base = options.base_for(&config.text.encoder).to_string();
    let (encoder, _) = load_encoder(&base, device)?;
    let mut captions: Vec<String> = (0..data.source.len()).flat_map(|i| data.source.captions(i)).collect();
    let swapped: Vec<String> = captions.iter().filter_map(|c| swapped_colours(c)).collect();
    captions.extend(swapped);
    captions.sort();
    captions.dedup();
    let table = TokenTable::encode(&encoder, captions)?;
    let dim = table.mean.dims()[1];
    let shape = PoolingShape { input: dim, queries: options.queries, output: dim };

    let text_params = Params::new(options.seed);
    let image_params = Params::new(options.seed.wrapping_add(1));
    let pooling = AttentionPooling::new(shape, text_params.var_builder(DType::F32, device))?;
    let images =
        ImageEncoder::new(data.source.channels(), data.size, dim, image_params.var_builder(DType::F32, device))?;
    // CLIP's temperature, learned on a log scale from 1/0.07.
    let log_scale = candle_core::Var::new(&[(1.0f32 / 0.07).ln()], device)?;
    let mut vars: Vec<_> =
        text_params.trainable().into_iter().chain(image_params.trainable()).map(|(_, v)| v).collect();
    vars.push(log_scale.clone());
    let params = candle_nn::ParamsAdamW { lr: options.lr, weight_decay: 1e-4, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(vars, params)?;

    let loader_config = LoaderConfig {
        batch_size: options.batch_size,
        size: data.size,
        seed: options.seed,
        crop: data.augment.crop,
        flip: data.augment.flip,
        layouts: false,
    };
    let loader = Loader::new(data.source.clone(), loader_config)?;
    for step in 0..options.steps {
        let batch = loader.batch(step as u64)?;
        let shape = (batch.indices.len(), batch.channels, batch.size, batch.size);
        let pixels = Tensor::from_vec(batch.images, shape, device)?;
        let (tokens, mask, mean) = table.lookup(&batch.captions)?;
        let text = pooling.forward(&tokens, &mask, &mean)?;
        let (tokens, mask, mean) =
            table.lookup(&negative_captions(&batch.captions, &batch.indices, data.source.as_ref()))?;
        let negatives = pooling.forward(&tokens, &mask, &mean)?;
        let scale = log_scale.as_tensor().clamp(0.0, 100f32.ln())?.exp()?;
        let (loss, image_to_text, beats_negative) =
            contrastive_loss(&text, &negatives, &images.embed(&pixels)?, &scale)?;
        opt.backward_step(&loss)?;
        on_step(PretrainingStep { step, loss: loss.to_scalar()?, image_to_text, beats_negative });
    }
    let mut tensors: HashMap<String, Tensor> =
        text_params.named().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
    for (k, v) in image_params.named() {
        tensors.insert(format!("{IMAGE_PREFIX}{k}"), v.as_tensor().clone());
    }
    tensors.insert(SCALE_NAME.into(), log_scale.as_tensor().clamp(0.0, 100f32.ln())?.exp()?);
    Ok(PretrainedPooling { tensors, shape, base })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-px image is embedded as its 2x2 block average at 32 px; a side that is no multiple of the
    /// encoder's is refused by name.
    #[test]
    fn the_image_encoder_averages_larger_images_down_to_its_side() {
        let dev = Device::Cpu;
        let encoder = ImageEncoder::new(3, 32, 8, Params::new(1).var_builder(DType::F32, &dev)).unwrap();
        assert_eq!(encoder.side(), 32);
        let big = condor_core::rng::normal(&mut condor_core::rng::derived_rng(2, &[0]), (2, 3, 64, 64), &dev).unwrap();
        let direct = encoder.embed(&big).unwrap();
        let averaged = encoder.embed(&big.avg_pool2d(2).unwrap()).unwrap();
        let gap: f32 = (direct - averaged).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(gap < 1e-6, "{gap}");
        let err = encoder.embed(&big.narrow(3, 0, 48).unwrap().narrow(2, 0, 48).unwrap()).unwrap_err();
        assert!(err.to_string().contains("reads 32 px images"), "{err}");
    }

    #[test]
    fn colour_words_are_swapped_between_parts() {
        assert_eq!(swapped_colours("a red bird with blue wings").unwrap(), "a blue bird with red wings");
        assert_eq!(swapped_colours("blue body, red wings, blue crown").unwrap(), "red body, blue wings, red crown");
        assert_eq!(swapped_colours("a red bird").unwrap(), "a blue bird");
        assert_eq!(swapped_colours("a small bird facing left"), None);
    }
}
