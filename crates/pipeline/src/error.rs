//! Errors of the training pipeline.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, training, checkpointing or sampling.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
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
    /// A metric failed (missing Inception weights, a bad statistics file, ...).
    #[error(transparent)]
    Metrics(#[from] condor_metrics::Error),
    /// A checkpoint could not be used.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
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
    /// Writing an image or plot failed.
    #[error("could not write {path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Result with [`PipelineError`].
pub type Result<T> = std::result::Result<T, PipelineError>;

/// Attaches a path to an I/O error.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PipelineError {
    let path = path.into();
    move |source| PipelineError::Io { path, source }
}
