//! Training-step throughput: one iteration of Algorithm 1 (one discriminator and one generator update)
//! for the MLP GAN of `configs/ring8.toml`, at batch 256, on the CPU with one and two threads; and one
//! Adam update of the 64x64 DCGAN generator's variables (3.6 million).

use candle_core::Device;
use condor_core::{ModelSpec, Registry};
use condor_data::DatasetConfig;
use condor_train::{RunConfig, Trainer};
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
        recipe: None,
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
    // Two threads (the global pool) first; then this thread becomes the only worker of a one-thread
    // pool (for good: rayon has no way back), so the kernels see one thread.
    for threads in [2, 1] {
        let _pool = (threads == 1)
            .then(|| rayon::ThreadPoolBuilder::new().num_threads(1).use_current_thread().build().unwrap());
        let mut trainer = ring8_trainer();
        group.bench_function(format!("train_step_{threads}_threads"), |b| b.iter(|| trainer.step().unwrap()));
    }
    group.finish();
}

fn adam(c: &mut Criterion) {
    use candle_core::{Tensor, Var};
    // The 64x64 DCGAN generator's variables: the projection and the four transposed convolutions.
    let shapes: [&[usize]; 5] = [&[8192, 228], &[512, 256, 4, 4], &[256, 128, 4, 4], &[128, 64, 4, 4], &[64, 3, 4, 4]];
    let vars: Vec<(String, Var)> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (format!("v{i}"), Var::from_tensor(&Tensor::randn(0f32, 0.02, *s, &Device::Cpu).unwrap()).unwrap())
        })
        .collect();
    let loss =
        vars.iter().map(|(_, v)| v.as_tensor().sqr().unwrap().sum_all().unwrap()).reduce(|a, b| (a + b).unwrap());
    let grads = loss.unwrap().backward().unwrap();
    let mut opt = condor_train::Adam::new(vars, Default::default()).unwrap();
    let mut group = c.benchmark_group("adam");
    group.sample_size(30);
    group.bench_function("dcgan64_generator_3.6M_variables", |b| b.iter(|| opt.step(&grads).unwrap()));
    group.finish();
}

fn setup(c: &mut Criterion) {
    condor_core::threads::configure_cpu_runtime();
    bench(c);
    adam(c);
}

criterion_group!(benches, setup);
criterion_main!(benches);
