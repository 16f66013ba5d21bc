//! Training-step throughput: one iteration of Algorithm 1 (one discriminator and one generator update)
//! for the MLP GAN of `configs/ring8.toml`, at batch 256, on the CPU.

use candle_core::Device;
use condor_core::{ModelSpec, Registry};
use condor_data::DatasetConfig;
use condor_pipeline::{RunConfig, Trainer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

fn ring8_trainer() -> Trainer {
    let mut registry = Registry::new();
    condor_mlp::register(&mut registry).unwrap();
    let config = RunConfig {
        name: "bench".into(),
        seed: 0,
        steps: u64::MAX,
        batch_size: 256,
        data: DatasetConfig::ring8(),
        generator: ModelSpec::new("mlp", json!({"latent_dim": 16, "hidden": [128, 128]})).unwrap(),
        discriminator: ModelSpec::new("mlp", json!({"hidden": [256, 256]})).unwrap(),
        training: Default::default(),
        optimizer: Default::default(),
        schedule: Default::default(),
        text: Default::default(),
    };
    Trainer::new(config, &registry, &Device::Cpu).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("mlp_gan_ring8_batch256");
    group.throughput(Throughput::Elements(256));
    group.sample_size(30);
    for threads in [1, 2] {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        let mut trainer = ring8_trainer();
        group.bench_function(format!("train_step_{threads}_threads"), |b| b.iter(|| trainer.step().unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
