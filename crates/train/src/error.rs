//! Errors of training.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, training or checkpointing.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// An error from the plugin contract (unknown plugin, bad plugin config, bad input).
    #[error(transparent)]
    Core(#[from] condor_core::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The run configuration is invalid.
    #[error("invalid config: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The text encoder could not be loaded or could not encode.
    #[error(transparent)]
    Text(#[from] condor_text::TextError),
    /// A dataset could not be opened or read.
    #[error(transparent)]
    Data(#[from] condor_data::DataError),
    /// A checkpoint could not be used.
    #[error(transparent)]
    Checkpoint(#[from] condor_infer::CheckpointError),
    /// Drawing the progress pictures or loading the text encoder failed.
    #[error(transparent)]
    Infer(#[from] condor_infer::InferError),
    /// A loss became NaN or infinite; the weights were not updated with it.
    #[error(
        "training diverged at step {step}: the {what} is {value}. The weights were not updated with it; {}",
        last_checkpoint.as_ref().map_or_else(
            || "no checkpoint was written before it".to_string(),
            |p| format!("the last good checkpoint is {}", p.display()))
    )]
    Diverged {
        /// The step whose loss was not finite.
        step: u64,
        /// Which loss.
        what: String,
        /// The value (NaN or inf).
        value: f32,
        /// The newest checkpoint on disk, all of whose values are finite.
        last_checkpoint: Option<PathBuf>,
    },
}

/// Result with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;

/// Attaches a path to an I/O error.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
