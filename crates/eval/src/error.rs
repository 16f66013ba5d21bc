//! Errors of evaluation.

use std::path::PathBuf;

/// Everything that can go wrong while evaluating a model.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Loading or drawing from the model failed.
    #[error(transparent)]
    Infer(#[from] condor_infer::InferError),
    /// An error from the plugin contract.
    #[error(transparent)]
    Core(#[from] condor_core::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The real data could not be opened or read.
    #[error(transparent)]
    Data(#[from] condor_data::DataError),
    /// A metric or judge failed (missing Inception weights, a bad statistics file, ...).
    #[error(transparent)]
    Metrics(#[from] condor_metrics::Error),
    /// The evaluation cannot be run as asked (bad options, a model it does not score, a generator
    /// that drew NaN).
    #[error("{0}")]
    Invalid(String),
    /// The bird judge reads some attribute it must judge below its threshold on rendered birds: the
    /// reason, with its accuracy table.
    #[error("{0}")]
    WeakJudge(String),
    /// A report file could not be written.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Result with [`EvalError`].
pub type Result<T> = std::result::Result<T, EvalError>;
