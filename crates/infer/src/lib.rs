//! # condor-infer: drawing from trained generators
//!
//! [`TextToImage`] loads a generator and its text encoder once and serves prompt grids, style mixing,
//! prompt-less samples and exports. A weights file describes its generator with a small
//! [`ModelCard`] (plugin, config, text encoder, training data, provenance), so inference needs
//! nothing of the training configuration; [`file`] reads and writes such files, checksummed and
//! atomically. [`sample`], [`styles`], [`interpolate`], [`animation`] and [`plot`] are the pieces, also used by training for its
//! progress pictures.

pub mod animation;
pub mod card;
pub mod encoder;
pub mod error;
pub mod file;
pub mod generator;
pub mod interpolate;
pub mod placement;
pub mod plot;
pub mod sample;
pub mod styles;
pub mod text_to_image;
pub mod translator;

pub use card::ModelCard;
pub use error::{InferError, Result};
pub use file::{CheckpointError, WeightsFile};
pub use generator::LoadedGenerator;
pub use styles::StyleOptions;
pub use text_to_image::{PromptImages, StyleMixImages, TextToImage};
pub use translator::{TranslationCard, Translator};
