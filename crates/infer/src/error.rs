//! Errors of inference: loading a model, encoding prompts, drawing and writing images.

use std::path::PathBuf;

use crate::file::CheckpointError;

/// Everything that can go wrong while loading a model or drawing from it.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// An error from the plugin contract (unknown plugin, bad plugin config, bad input).
    #[error(transparent)]
    Core(#[from] condor_core::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A request the model cannot serve (prompts for an unconditional model, a bad image count).
    #[error("{0}")]
    Request(String),
    /// The text encoder could not be loaded or could not encode.
    #[error(transparent)]
    Text(#[from] condor_text::TextError),
    /// The model's data description could not be used.
    #[error(transparent)]
    Data(#[from] condor_data::DataError),
    /// A weights file could not be used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Writing an image or plot failed.
    #[error("could not write {path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Result with [`InferError`].
pub type Result<T> = std::result::Result<T, InferError>;
