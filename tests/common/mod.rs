//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use candle_core::Tensor;
use condor::core::ModelSpec;
use condor::data::DatasetConfig;
use condor::pipeline::config::LrDecay;
use condor::pipeline::{RunConfig, ScheduleConfig, TrainingConfig};
use serde_json::json;

/// Runs candle on one thread: for these small MLPs threading costs more than it gains, and the tests
/// themselves run in parallel.
pub fn one_thread() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
}

/// An MLP GAN on a 2D mixture: G 16 -> 128 -> 128 -> 2, D 2 -> d_width -> d_width -> 1.
pub fn mixture_config(data: DatasetConfig, steps: u64, batch_size: usize, d_width: usize) -> RunConfig {
    let cond_dim = match &data {
        DatasetConfig::Ring { modes, conditional: true, .. } => *modes,
        DatasetConfig::Grid { side, conditional: true, .. } => side * side,
        _ => 0,
    };
    RunConfig {
        name: "test".into(),
        seed: 0,
        steps,
        batch_size,
        data,
        generator: ModelSpec::new("mlp", json!({"latent_dim": 16, "hidden": [128, 128], "cond_dim": cond_dim}))
            .unwrap(),
        discriminator: ModelSpec::new("mlp", json!({"hidden": [d_width, d_width], "cond_dim": cond_dim})).unwrap(),
        training: TrainingConfig::default(),
        optimizer: Default::default(),
        schedule: ScheduleConfig { sample_every: 0, ..Default::default() },
        text: Default::default(),
    }
}

/// [`mixture_config`] with both learning rates at 2e-3, decaying linearly to 0: the setting under which
/// the MLP GANs cover the ring in a few thousand steps.
pub fn fast_mixture_config(data: DatasetConfig, steps: u64, batch_size: usize, d_width: usize) -> RunConfig {
    let mut config = mixture_config(data, steps, batch_size, d_width);
    for o in [&mut config.optimizer.generator, &mut config.optimizer.discriminator] {
        o.lr = 2e-3;
        o.lr_decay = LrDecay::Linear;
    }
    config
}

/// Largest absolute difference between two tensors; `b` may live on another device.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let b = b.to_device(a.device()).unwrap();
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Twelve 32x32 synthetic training birds with flips: the data of the tiny text-to-image runs.
pub fn tiny_birds_data() -> DatasetConfig {
    DatasetConfig::Birds {
        world_seed: 0,
        count: 12,
        split: condor::data::birds::BirdSplit::Train,
        size: 32,
        flip: true,
        crop: 0.0,
    }
}
