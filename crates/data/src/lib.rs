//! # condor-data: datasets for Condor
//!
//! Datasets draw from seeded generators, so runs are reproducible and resumable. Those the trainer
//! reads implement [`condor_core::DataSource`]; [`DatasetConfig`] is their serde form in run configs.
//!
//! - [`Mixture`]: 2D Gaussian mixtures, the standard measurable test for mode collapse.
//! - [`birds::SyntheticBirds`]: procedurally rendered birds with CUB-style captions and exact attributes.
//! - [`images`]: CUB-200-2011 with Reed et al.'s captions, and folders of captioned images.
//! - [`loader`]: seeded, prefetched batches of captioned images with augmentation.

pub mod birds;
pub mod images;
pub mod loader;
pub mod mixture;

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
        }
        self
    }

    /// The mixture this config describes, if it is one.
    pub fn mixture(&self) -> Result<Mixture, DataError> {
        match *self {
            Self::Ring { modes, radius, std, conditional } => {
                Mixture::new(MixtureLayout::Ring { modes, radius }, std, conditional)
            }
            Self::Grid { side, spacing, std, conditional } => {
                Mixture::new(MixtureLayout::Grid { side, spacing }, std, conditional)
            }
        }
    }

    /// Builds the data source.
    pub fn build(&self) -> Result<Box<dyn condor_core::DataSource>, DataError> {
        Ok(Box::new(self.mixture()?))
    }
}
