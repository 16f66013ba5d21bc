//! A generator defined outside Condor, registered and trained through the public API alone.

mod common;

use candle_core::{Device, Module, Tensor};
use candle_nn::VarBuilder;
use condor::core::{check_conditioning, Conditioning, ConditioningKind, Generator, ModelSpec};
use condor::data::DatasetConfig;
use condor::infer::LoadedGenerator;
use condor::train::RunOptions;
use serde::{Deserialize, Serialize};

/// Config of the out-of-tree plugin.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PolarConfig {
    latent_dim: usize,
    hidden: usize,
}

impl Default for PolarConfig {
    fn default() -> Self {
        Self { latent_dim: 8, hidden: 32 }
    }
}

/// Draws points in polar coordinates: z -> tanh layer -> (log r, theta / pi) -> (r cos theta, r sin theta).
struct PolarGenerator {
    hidden: candle_nn::Linear,
    out: candle_nn::Linear,
    latent_dim: usize,
}

impl PolarGenerator {
    fn new(c: PolarConfig, vb: VarBuilder) -> condor::core::Result<Self> {
        Ok(Self {
            hidden: candle_nn::linear(c.latent_dim, c.hidden, vb.pp("hidden"))?,
            out: candle_nn::linear(c.hidden, 2, vb.pp("out"))?,
            latent_dim: c.latent_dim,
        })
    }
}

impl Generator for PolarGenerator {
    fn latent_dim(&self) -> usize {
        self.latent_dim
    }
    fn sample_shape(&self) -> Vec<usize> {
        vec![2]
    }
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::None
    }
    fn forward(&self, z: &Tensor, cond: Option<&Conditioning>, _train: bool) -> condor::core::Result<Tensor> {
        check_conditioning(self.conditioning(), cond, z.dims()[0])?;
        let h = self.out.forward(&self.hidden.forward(z)?.tanh()?)?;
        let r = h.narrow(1, 0, 1)?.exp()?;
        let theta = (h.narrow(1, 1, 1)? * std::f64::consts::PI)?;
        Ok(Tensor::cat(&[r.mul(&theta.cos()?)?, r.mul(&theta.sin()?)?], 1)?)
    }
}

fn mean_radius_error(g: &dyn Generator) -> f32 {
    let mut rng = condor::core::derived_rng(9, &[]);
    let points = condor::infer::sample::generate(g, 500, None, &mut rng, &Device::Cpu).unwrap();
    let r = points.sqr().unwrap().sum(1).unwrap().sqrt().unwrap();
    (r - 2.0).unwrap().abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn an_out_of_tree_generator_trains_checkpoints_and_reloads() {
    common::one_thread();
    let mut registry = condor::registry();
    registry.register_generator("polar", PolarGenerator::new).unwrap();

    let mut config = common::mixture_config(DatasetConfig::ring8(), 400, 128, 64);
    config.generator = ModelSpec::new("polar", serde_json::json!({"hidden": 24})).unwrap();
    config.optimizer.generator.lr = 2e-3;
    config.optimizer.discriminator.lr = 2e-3;
    let tmp = tempfile::tempdir().unwrap();
    let options = RunOptions::quiet(tmp.path().join("polar"), false);

    let initial = condor::train::Trainer::new(config.clone(), &registry, &Device::Cpu).unwrap();
    let before = mean_radius_error(initial.sampling_generator().unwrap());
    let summary = condor::train::train(config, &registry, &Device::Cpu, options).unwrap();

    // The checkpoint alone rebuilds the plugin through the registry, with defaults filled in.
    let loaded = LoadedGenerator::load(&summary.checkpoint, &registry, &Device::Cpu).unwrap();
    assert_eq!(loaded.card.generator.plugin, "polar");
    assert_eq!(loaded.card.generator.config["latent_dim"], 8);
    let after = mean_radius_error(loaded.generator.as_ref());
    println!("mean |r - 2|: {before:.3} before, {after:.3} after");
    assert!(after < 0.25 * before, "the plugin did not learn the ring's radius: {before} -> {after}");

    // A program that lacks the plugin says so instead of guessing.
    let e = LoadedGenerator::load(&summary.checkpoint, &condor::registry(), &Device::Cpu).err().unwrap();
    assert!(e.to_string().contains("unknown generator plugin `polar`"), "{e}");
}
