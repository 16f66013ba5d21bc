//! # condor-train: training GANs
//!
//! The [`Trainer`] runs any recipe (`condor_core::Recipe`; the built-in [`adversarial`] one is
//! Algorithm 1 of the original GAN paper with every classic loss and stabilising trick) on networks
//! built through the registry: data and prefetch, seeded random streams, Condor's own [`Adam`] whose
//! state is saved, EMA, mixed [`Precision`], data parallel. [`run::train`] adds the run directory: a
//! JSON-lines log, atomic [`checkpoint`]s that resume bit-exactly, sample grids, loss curves, a
//! progress bar and Ctrl-C. [`export`] turns checkpoints into models for `condor-infer`. Everything
//! takes a candle `Device`.

pub mod adversarial;
pub mod bigan;
pub mod checkpoint;
pub mod config;
pub mod cyclegan;
pub mod diff_augment;
pub mod discogan;
pub mod energy_based;
pub mod error;
pub mod export;
pub mod image_history;
pub mod infogan;
pub mod inversion;
pub mod loss_sensitive;
pub mod losses;
pub mod matching;
pub mod networks;
pub mod optim;
pub mod parallel;
pub mod precision;
pub mod prefetch;
pub mod recipe_inputs;
pub mod recipe_updates;
pub mod regularizers;
pub mod run;
pub mod run_dir;
pub mod semi_supervised;
mod step_context;
pub mod tensorboard;
pub mod text_data;
pub mod text_pretraining;
pub mod trainer;
pub mod translation;
pub mod tricks;
pub mod unpaired_data;
pub mod unrolled;
pub mod vae;
pub mod vae_gan;

pub use checkpoint::{Checkpoint, CheckpointError, TrainState};
pub use config::{LrDecay, OptimizerConfig, OptimizerPair, RunConfig, ScheduleConfig, TrainingConfig};
pub use error::{Result, TrainError};
pub use losses::{LossKind, Targets};
pub use optim::Adam;
pub use parallel::{Collective, Shard, SingleProcess};
pub use precision::Precision;
pub use run::{train, RunOptions, RunSummary};
pub use run_dir::{RunDir, StepRecord};
pub use trainer::Trainer;
pub use tricks::{recalibrate_batch_norm, EmaConfig, InstanceNoiseConfig};

/// Registers the recipes built into condor-train besides the adversarial one (which a run without a
/// `[recipe]` table uses): `loss_sensitive`, `energy_based`, `unrolled`, `infogan`, `semi_supervised`, `bigan`,
/// `vae`, `vae_gan`, and the translation recipes `cyclegan` and `discogan`.
pub fn register_recipes(registry: &mut condor_core::Registry) -> condor_core::Result<()> {
    registry.register_recipe(loss_sensitive::NAME, loss_sensitive::LossSensitive::new)?;
    registry.register_recipe(energy_based::NAME, energy_based::EnergyBased::new)?;
    registry.register_recipe(unrolled::NAME, unrolled::Unrolled::new)?;
    registry.register_recipe(infogan::NAME, infogan::InfoGan::new)?;
    registry.register_recipe(semi_supervised::NAME, semi_supervised::SemiSupervised::new)?;
    registry.register_recipe(bigan::NAME, bigan::BiGan::new)?;
    registry.register_recipe(vae::NAME, vae::Vae::new)?;
    registry.register_recipe(vae_gan::NAME, vae_gan::VaeGan::new)?;
    registry.register_recipe(cyclegan::NAME, cyclegan::CycleGan::new)?;
    registry.register_recipe(discogan::NAME, discogan::DiscoGan::new)
}
