//! # condor-pipeline: training, checkpoints and sampling
//!
//! The [`Trainer`] runs Algorithm 1 of the original GAN paper on any registered generator and
//! discriminator: k discriminator steps per generator step, a choice of [`LossKind`], and the
//! stabilising tricks (label smoothing, noisy labels, decaying instance noise, generator EMA), with
//! Condor's own [`Adam`] whose state is saved. [`run::train`] adds the run directory: a JSON-lines
//! log, atomic [`checkpoint`]s that resume bit-exactly, sample plots, loss curves and a progress bar.
//! Everything takes a candle `Device`.

pub mod adversarial;
pub mod bird_judge;
pub mod checkpoint;
pub mod colour_eval;
pub mod config;
pub mod diff_augment;
pub mod digit_eval;
pub mod error;
pub mod eval;
pub mod losses;
pub mod networks;
pub mod optim;
pub mod parallel;
pub mod plot;
pub mod precision;
pub mod prefetch;
pub mod regularizers;
pub mod run;
pub mod run_dir;
pub mod sample;
mod step_context;
pub mod styles;
pub mod text_data;
pub mod trainer;
pub mod tricks;

pub use checkpoint::{Checkpoint, CheckpointError, TrainState};
pub use config::{LrDecay, OptimizerConfig, OptimizerPair, RunConfig, ScheduleConfig, TrainingConfig};
pub use error::{PipelineError, Result};
pub use losses::{LossKind, Targets};
pub use optim::Adam;
pub use parallel::{Collective, Shard, SingleProcess};
pub use precision::Precision;
pub use run::{train, RunOptions, RunSummary};
pub use run_dir::{RunDir, StepRecord};
pub use sample::LoadedGenerator;
pub use trainer::Trainer;
pub use tricks::{recalibrate_batch_norm, EmaConfig, InstanceNoiseConfig};
