//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use candle_core::Tensor;
use condor::core::ModelSpec;
use condor::data::DatasetConfig;
use condor::train::config::LrDecay;
use condor::train::{RunConfig, ScheduleConfig, TrainingConfig};
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
        recipe: None,
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
        layout: false,
        spread: Default::default(),
    }
}

/// A tiny text-conditioned DCGAN (width 4, batch 4) on [`tiny_birds_data`] with GAN-CLS, GAN-INT,
/// conditioning augmentation and EMA, caching caption embeddings in `cache`.
pub fn tiny_birds(steps: u64, cache: &std::path::Path) -> RunConfig {
    RunConfig {
        name: "tiny-birds".into(),
        seed: 5,
        steps,
        batch_size: 4,
        data: tiny_birds_data(),
        generator: ModelSpec::new(
            "dcgan",
            json!({"noise_dim": 8, "cond_dim": 384, "image_size": 32, "width": 4,
                   "augmentation": {"dim": 8, "kl_weight": 1.0}}),
        )
        .unwrap(),
        discriminator: ModelSpec::new("dcgan", json!({"cond_dim": 384, "image_size": 32, "width": 4})).unwrap(),
        recipe: None,
        training: condor::train::TrainingConfig {
            gan_cls: true,
            gan_int: true,
            ema: Some(condor::train::EmaConfig { decay: 0.9, start_step: 1, ..Default::default() }),
            ..Default::default()
        },
        optimizer: Default::default(),
        schedule: ScheduleConfig { checkpoint_every: 2, sample_every: 2, preview_columns: 2, ..Default::default() },
        text: condor::train::config::TextConfig { cache_dir: cache.to_path_buf(), ..Default::default() },
    }
}

/// A data-parallel group of `world` ranks inside one process, for tests: each rank is a thread with
/// its own trainer, and [`LocalRank::all_reduce_sum`] waits for every rank's tensor and returns the sum
/// (added in rank order, so every rank gets the same bits). Real runs use NCCL.
pub struct LocalGroup {
    world: usize,
    round: std::sync::Mutex<Round>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct Round {
    parts: Vec<Option<Vec<f32>>>,
    generation: u64,
    result: std::sync::Arc<Vec<f32>>,
}

impl LocalGroup {
    /// A group of `world` ranks.
    pub fn new(world: usize) -> std::sync::Arc<Self> {
        let round = Round { parts: vec![None; world], ..Default::default() };
        std::sync::Arc::new(Self { world, round: std::sync::Mutex::new(round), done: Default::default() })
    }

    /// Rank `rank`'s handle on the group.
    pub fn rank(self: &std::sync::Arc<Self>, rank: usize) -> LocalRank {
        LocalRank { group: self.clone(), rank }
    }
}

/// One rank of a [`LocalGroup`].
pub struct LocalRank {
    group: std::sync::Arc<LocalGroup>,
    rank: usize,
}

impl condor::train::Collective for LocalRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.group.world
    }
    fn all_reduce_sum(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        let mine: Vec<f32> = t.flatten_all()?.to_vec1()?;
        let g = &self.group;
        let mut round = g.round.lock().unwrap();
        round.parts[self.rank] = Some(mine);
        if round.parts.iter().all(Option::is_some) {
            let parts: Vec<Vec<f32>> = round.parts.iter_mut().map(|p| p.take().unwrap()).collect();
            let sum = (0..parts[0].len()).map(|i| parts[1..].iter().fold(parts[0][i], |s, p| s + p[i])).collect();
            round.result = std::sync::Arc::new(sum);
            round.generation += 1;
            g.done.notify_all();
        } else {
            let generation = round.generation;
            round = g.done.wait_while(round, |r| r.generation == generation).unwrap();
        }
        let sum = round.result.clone();
        drop(round);
        Tensor::from_slice(&sum, t.shape(), t.device())
    }
}

/// For data-parallel tests: a conditional ring config with every per-row random draw the trainer makes: GAN-CLS, label
/// smoothing and flips, instance noise, two discriminator steps, and a learning-rate schedule. No
/// batch norm, so W ranks must match one process up to floating point.
pub fn shardable_config(steps: u64) -> RunConfig {
    let mut c = fast_mixture_config(DatasetConfig::ring8().with_conditional(true), steps, 64, 64);
    c.training.gan_cls = true;
    c.training.d_steps = 2;
    c.training.label_smoothing = 0.1;
    c.training.label_flip = 0.05;
    c.training.instance_noise =
        Some(condor::train::InstanceNoiseConfig { sigma: 0.1, decay_steps: 30, decay: Default::default() });
    c.training.ema = Some(condor::train::EmaConfig { decay: 0.9, start_step: 2, ..Default::default() });
    c.schedule.checkpoint_every = 10;
    c
}

pub fn max_difference(
    a: &std::collections::HashMap<String, Tensor>,
    b: &std::collections::HashMap<String, Tensor>,
) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().map(|(name, t)| max_abs_diff(t, &b[name])).fold(0.0, f32::max)
}

pub fn bit_identical(
    a: &std::collections::HashMap<String, Tensor>,
    b: &std::collections::HashMap<String, Tensor>,
) -> bool {
    a.len() == b.len()
        && a.iter().all(|(name, t)| {
            let x: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let y: Vec<f32> = b[name].flatten_all().unwrap().to_vec1().unwrap();
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

/// Weights as plain host vectors with their shapes, to send from a rank's thread to the test's.
pub type HostWeights = Vec<(String, Vec<f32>, Vec<usize>)>;

/// [`HostWeights`] of `weights` (on any device).
pub fn to_host(weights: std::collections::HashMap<String, Tensor>) -> HostWeights {
    weights
        .into_iter()
        .map(|(n, w)| (n, w.flatten_all().unwrap().to_vec1::<f32>().unwrap(), w.dims().to_vec()))
        .collect()
}

/// CPU tensors of [`HostWeights`].
pub fn from_host(weights: HostWeights) -> std::collections::HashMap<String, Tensor> {
    weights.into_iter().map(|(n, v, dims)| (n, Tensor::from_vec(v, dims, &candle_core::Device::Cpu).unwrap())).collect()
}

/// Asserts that two sets of named tensors hold the same names and the same bits.
pub fn assert_identical(a: &std::collections::HashMap<String, Tensor>, b: &std::collections::HashMap<String, Tensor>) {
    assert_eq!(a.len(), b.len());
    for (name, ta) in a {
        let x: Vec<f32> = ta.flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = b[name].flatten_all().unwrap().to_vec1().unwrap();
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "tensor {name} differs");
    }
}

/// Trains `config(2 n)` for 2 `n` steps straight through, and again for `n` steps, a checkpoint
/// (which `inspect` sees), and `n` more from it; returns both trainers, the straight one first.
pub fn straight_and_resumed(
    config: impl Fn(u64) -> RunConfig,
    n: u64,
    inspect: impl FnOnce(&condor::train::Checkpoint),
) -> (condor::train::Trainer, condor::train::Trainer) {
    use candle_core::Device;
    use condor::train::{Checkpoint, Trainer};
    let registry = condor::registry();
    let mut straight = Trainer::new(config(2 * n), &registry, &Device::Cpu).unwrap();
    for _ in 0..2 * n {
        straight.step().unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("half.safetensors");
    let mut first = Trainer::new(config(2 * n), &registry, &Device::Cpu).unwrap();
    for _ in 0..n {
        first.step().unwrap();
    }
    first.save_checkpoint(&path).unwrap();
    drop(first);
    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
    inspect(&ckpt);
    let mut resumed = Trainer::from_checkpoint(&ckpt, &registry, &Device::Cpu).unwrap();
    for _ in 0..n {
        resumed.step().unwrap();
    }
    (straight, resumed)
}
