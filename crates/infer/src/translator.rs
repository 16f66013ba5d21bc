//! Image-to-image translation models: the translation card a checkpoint of a translation recipe
//! carries (metadata entry `condor.translation`), and [`Translator`], the pipeline object that
//! loads both translators once and translates any number of images either way.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use condor_core::{Network, NetworkKind, Params, Registry};
use condor_data::DatasetConfig;
use serde::{Deserialize, Serialize};

use crate::card::{ModelCard, CARD_KEY};
use crate::error::{InferError, Result};
use crate::file::{self, CheckpointError, WeightsFile};

/// The metadata key of the translation card.
pub const TRANSLATION_CARD_KEY: &str = "condor.translation";

/// What a weights file's two translators are and how to run them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslationCard {
    /// The run that trained them.
    pub name: String,
    /// The names of domains A and B.
    pub domains: [String; 2],
    /// The A-to-B translator's network plugin and resolved config.
    pub a_to_b: condor_core::ModelSpec,
    /// The B-to-A translator's.
    pub b_to_a: condor_core::ModelSpec,
    /// The tensor groups of their weights, A to B first.
    pub weights: [String; 2],
    /// The data they were trained on.
    pub data: DatasetConfig,
    /// The training step of the weights.
    pub step: u64,
    /// The Condor version that wrote them.
    pub written_by: String,
}

impl TranslationCard {
    /// The card of `file`; `None` when it has none.
    pub fn of(file: &WeightsFile) -> std::result::Result<Option<Self>, CheckpointError> {
        file.entry(TRANSLATION_CARD_KEY)
    }

    /// The metadata entry holding this card.
    pub fn metadata(&self) -> (String, String) {
        (TRANSLATION_CARD_KEY.to_string(), serde_json::to_string(self).expect("a translation card serialises"))
    }
}

/// The error for a translation model at `path` where a generator was expected.
pub fn not_a_generator(path: &Path) -> CheckpointError {
    CheckpointError::NotCondor {
        path: path.to_path_buf(),
        reason: "it is an image-to-image translation model, which has no generator to sample: use `condor translate` \
                 or the img2img example"
            .into(),
    }
}

/// Writes the translators of the translation model in `file` as an exported model at `dest`: their
/// weights (groups `translator.a_to_b`, `translator.b_to_a`) and card, nothing of training. An error
/// when `file` holds no translation model.
pub fn export_translation(file: &WeightsFile, dest: &Path) -> Result<()> {
    let card = TranslationCard::of(file)?.ok_or_else(|| CheckpointError::NotCondor {
        path: file.path.clone(),
        reason: "it has no translation card (`condor.translation`)".into(),
    })?;
    let groups = ["translator.a_to_b", "translator.b_to_a"];
    let mut tensors = Vec::new();
    for (from, to) in card.weights.iter().zip(groups) {
        tensors.extend(file::group(&file.tensors, from).into_iter().map(|(n, t)| (format!("{to}.{n}"), t)));
    }
    let card = TranslationCard { weights: groups.map(String::from), ..card };
    Ok(file::write(dest, &tensors, HashMap::from([card.metadata()]))?)
}

/// Both translators of a translation model, on one device.
pub struct Translator {
    card: TranslationCard,
    networks: [Box<dyn Network>; 2],
    /// The variables the networks' weights live in.
    _params: [Params; 2],
    shape: [usize; 3],
}

/// The input shape a translator config states (`channels`, `image_size`), 3 x 32 x 32 where it is silent.
fn image_shape(spec: &condor_core::ModelSpec) -> [usize; 3] {
    let field =
        |name: &str, default: usize| spec.config.get(name).and_then(|v| v.as_u64()).map_or(default, |v| v as usize);
    let size = field("image_size", 32);
    [field("channels", 3), size, size]
}

impl Translator {
    /// Reads a weights file with a translation card (a checkpoint of `cyclegan` or `discogan`) and
    /// rebuilds both translators through `registry` on `device`. A text-to-image model is refused
    /// with a message that says so.
    pub fn load(path: &Path, registry: &Registry, device: &Device) -> Result<Self> {
        Self::from_file(&WeightsFile::read(path, device)?, registry, device)
    }

    /// [`Self::load`] of a weights file already read.
    pub fn from_file(file: &WeightsFile, registry: &Registry, device: &Device) -> Result<Self> {
        let path = &file.path;
        let Some(card) = TranslationCard::of(file)? else {
            let reason = match file.entry::<ModelCard>(CARD_KEY)? {
                Some(c) => format!(
                    "it is a text-to-image model (run `{}`, generator `{}`), not an image-to-image translation model: \
                     draw from it with txt2img or `condor sample`",
                    c.name, c.generator.plugin
                ),
                None => "it has no translation card (`condor.translation`): only checkpoints of the cyclegan and \
                         discogan recipes translate images"
                    .into(),
            };
            return Err(CheckpointError::NotCondor { path: path.to_path_buf(), reason }.into());
        };
        let build = |k: usize| -> Result<(Box<dyn Network>, Params)> {
            let spec = if k == 0 { &card.a_to_b } else { &card.b_to_a };
            let params = Params::new(0);
            let model = registry.build(NetworkKind::Network, spec, params.var_builder(DType::F32, device))?;
            let condor_core::Model::Network(net) = model else { unreachable!("built as a network") };
            params.load(&file::group(&file.tensors, &card.weights[k])).map_err(|reason| CheckpointError::Mismatch {
                path: path.to_path_buf(),
                reason: format!("translator {}: {reason}", card.weights[k]),
            })?;
            Ok((net, params))
        };
        let ((ab, pab), (ba, pba)) = (build(0)?, build(1)?);
        let shape = image_shape(&card.a_to_b);
        Ok(Self { card, networks: [ab, ba], _params: [pab, pba], shape })
    }

    /// The card.
    pub fn card(&self) -> &TranslationCard {
        &self.card
    }

    /// The shape of the images it reads and writes: channels, height, width.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The image files at `paths` as one `(N, C, H, W)` batch in [-1, 1] of the model's shape: each
    /// file's centred square resized. An unreadable file is an error that names it.
    pub fn read_images(&self, paths: &[std::path::PathBuf], device: &Device) -> Result<Tensor> {
        let [c, size, _] = self.shape;
        let mut pixels = Vec::with_capacity(paths.len() * c * size * size);
        for path in paths {
            let image = condor_data::images::load_centre_square(path, c, size)?;
            pixels.extend(image.into_iter().map(|v| v * 2.0 - 1.0));
        }
        Ok(Tensor::from_vec(pixels, (paths.len(), c, size, size), device)?)
    }

    /// Translates `(B, C, H, W)` images in [-1, 1] from domain A to B (or B to A when `reverse`).
    /// Images of another shape than [`Self::image_shape`] are an error that says which it takes.
    pub fn translate(&self, images: &Tensor, reverse: bool) -> Result<Tensor> {
        let [c, h, w] = self.shape;
        if images.rank() != 4 || images.dims()[1..] != [c, h, w] {
            return Err(InferError::Request(format!(
                "this model translates {c} x {h} x {w} images, got a batch of shape {:?}",
                images.dims()
            )));
        }
        Ok(self.networks[usize::from(reverse)].forward(images, None, false)?)
    }

    /// Each image translated and translated back: `(translations, reconstructions)`.
    pub fn round_trip(&self, images: &Tensor, reverse: bool) -> Result<(Tensor, Tensor)> {
        let there = self.translate(images, reverse)?;
        let back = self.translate(&there, !reverse)?;
        Ok((there, back))
    }
}
