//! The contract between datasets and the trainer.

use candle_core::{Device, Tensor};

use crate::{Conditioning, Result, Rng};

/// One batch of training data.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `(B, ..sample_shape)` real samples (images in `[-1, 1]`).
    pub samples: Tensor,
    /// The conditioning of each sample, for conditional datasets.
    pub conditioning: Option<Conditioning>,
    /// Ground-truth class or mode of each sample, where the dataset knows it (for metrics).
    pub labels: Option<Vec<usize>>,
}

/// Fixed prompts and their conditioning, for progress grids: one row of samples per prompt.
#[derive(Clone, Debug)]
pub struct Preview {
    /// The prompts, in row order.
    pub prompts: Vec<String>,
    /// Their conditioning, one row per prompt.
    pub conditioning: Conditioning,
}

/// A source of training batches. Draws must depend only on `index` and `rng`, so that a run is
/// reproducible from its seed and resumable from its step.
pub trait DataSource: Send + Sync {
    /// Shape of one sample, without the batch dimension.
    fn sample_shape(&self) -> Vec<usize>;
    /// Size of the conditioning vector, 0 for unconditional data.
    fn cond_dim(&self) -> usize;
    /// Draws batch number `index` of `batch_size` samples.
    fn batch(&self, index: u64, batch_size: usize, rng: &mut Rng, device: &Device) -> Result<Batch>;
    /// Draws conditioning alone (for generator steps). By default it is taken from a data batch.
    fn conditioning(
        &self,
        index: u64,
        batch_size: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Option<Conditioning>> {
        Ok(self.batch(index, batch_size, rng, device)?.conditioning)
    }
    /// Fixed prompts to draw progress grids with, for text-conditioned data. `None` by default.
    fn preview(&self) -> Option<&Preview> {
        None
    }
    /// A fixed labelled subset for semi-supervised training: `per_class` samples of each class, chosen
    /// by `seed`, as they appear in batches, with their classes. `None` (the default) for data
    /// without classes.
    fn labelled(&self, _per_class: usize, _seed: u64, _device: &Device) -> Result<Option<Labelled>> {
        Ok(None)
    }
}

/// Samples with known classes (see [`DataSource::labelled`]).
#[derive(Clone, Debug)]
pub struct Labelled {
    /// `(N, ...)` samples, as in a [`Batch`].
    pub samples: Tensor,
    /// Their classes.
    pub labels: Vec<usize>,
    /// How many classes the data has.
    pub classes: usize,
}
