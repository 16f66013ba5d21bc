//! Errors of the metrics.

use std::path::PathBuf;

/// What can go wrong while computing a metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The Inception weights are not where they were looked for.
    #[error("no FID Inception weights at {0}: run `just fid-weights` (scripts/fetch_fid_weights.py) to fetch and convert them")]
    MissingWeights(PathBuf),
    /// A weights or statistics file is not what it should be.
    #[error("{path}: {why}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Inputs of the wrong shape or size.
    #[error("{0}")]
    Input(String),
    /// A linear-algebra step failed (a matrix with NaN, a decomposition that did not converge).
    #[error("linear algebra: {0}")]
    LinearAlgebra(String),
}

/// Result of the metrics.
pub type Result<T> = std::result::Result<T, Error>;
