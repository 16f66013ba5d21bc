//! GPU checks: every plugin, the text encoder and the trainer give on a GPU what they give on the CPU,
//! a short GPU run learns, and a checkpoint written on the GPU samples on the CPU.
//!
//! They need Condor built with `--features cuda` (or `metal`) on a machine with such a device; anywhere
//! else each test says it skipped and passes, so the CPU suite is unchanged.

mod common;

use common::max_abs_diff;

use candle_core::{DType, Device, Tensor};
use condor::core::{Conditioning, Generator, ModelSpec, Params};
use condor::data::DatasetConfig;
use condor::eval::mixture::mixture_coverage;
use condor::infer::{LoadedGenerator, TextToImage};
use condor::train::{train, RunOptions};
use serde_json::json;

/// The first GPU this build can open, or `None` (and a note on stderr) when there is none.
fn gpu(test: &str) -> Option<Device> {
    match condor::parse_device("auto") {
        Ok(device) if !device.is_cpu() => Some(device),
        _ => {
            eprintln!("{test}: skipped, no GPU (build with --features cuda or metal on a machine with one)");
            None
        }
    }
}

/// Fixed, irregular inputs with unit-order spread, made on the host (device RNGs differ).
fn host_input(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| 1.5 * ((i as f32) * 0.754_877 + seed as f32).sin()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// The generator and discriminator of each built-in plugin, each at a small text-conditioned size.
fn plugin_specs() -> Vec<(ModelSpec, ModelSpec)> {
    let spec = |plugin: &str, config: serde_json::Value| ModelSpec::new(plugin, config).unwrap();
    vec![
        (
            spec("mlp", json!({"latent_dim": 16, "hidden": [64, 64], "cond_dim": 384})),
            spec("mlp", json!({"hidden": [64, 64], "cond_dim": 384})),
        ),
        (
            spec(
                "dcgan",
                json!({"noise_dim": 16, "cond_dim": 384, "image_size": 32, "width": 8,
                                 "augmentation": {"dim": 16, "kl_weight": 1.0}}),
            ),
            spec("dcgan", json!({"cond_dim": 384, "image_size": 32, "width": 8})),
        ),
        (
            spec(
                "stylegan",
                json!({"z_dim": 16, "cond_dim": 384, "w_dim": 32, "mapping_layers": 2,
                                    "image_size": 32, "channel_base": 64, "channel_max": 16}),
            ),
            spec("stylegan", json!({"cond_dim": 384, "image_size": 32, "channel_base": 64, "channel_max": 16})),
        ),
    ]
}

/// Builds a generator with seeded weights (the same on every device: they are drawn on the host).
fn build_generator(spec: &ModelSpec, device: &Device) -> Box<dyn Generator> {
    let params = Params::new(11);
    condor::registry().build_generator(spec, params.var_builder(DType::F32, device)).unwrap()
}

#[test]
fn every_plugin_computes_the_same_on_gpu_as_on_cpu() {
    let Some(gpu) = gpu("every_plugin_computes_the_same_on_gpu_as_on_cpu") else { return };
    let registry = condor::registry();
    let batch = 6;
    let cond_cpu = Conditioning::from_embedding(host_input(&[batch, 384], 1)).unwrap();
    let cond_gpu = cond_cpu.to_device(&gpu).unwrap();
    for (g_spec, d_spec) in plugin_specs() {
        let (g_cpu, g_gpu) = (build_generator(&g_spec, &Device::Cpu), build_generator(&g_spec, &gpu));
        let z = host_input(&[batch, g_cpu.latent_dim()], 2);
        let x_cpu = g_cpu.forward(&z, Some(&cond_cpu), false).unwrap();
        let x_gpu = g_gpu.forward(&z.to_device(&gpu).unwrap(), Some(&cond_gpu), false).unwrap();
        assert_eq!(x_cpu.dims(), x_gpu.dims());
        let diff = max_abs_diff(&x_cpu, &x_gpu);
        println!("{} generator: max |cpu - gpu| = {diff:.2e}", g_spec.plugin);
        assert!(diff < 1e-3, "{} generator differs by {diff}", g_spec.plugin);

        let d_params = [Params::new(12), Params::new(12)];
        let d_cpu = registry.build_discriminator(&d_spec, d_params[0].var_builder(DType::F32, &Device::Cpu)).unwrap();
        let d_gpu = registry.build_discriminator(&d_spec, d_params[1].var_builder(DType::F32, &gpu)).unwrap();
        let l_cpu = d_cpu.forward(&x_cpu, Some(&cond_cpu), false).unwrap();
        let l_gpu = d_gpu.forward(&x_cpu.to_device(&gpu).unwrap(), Some(&cond_gpu), false).unwrap();
        let scale = 1.0 + l_cpu.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        let diff = max_abs_diff(&l_cpu, &l_gpu);
        println!("{} discriminator: max |cpu - gpu| = {diff:.2e} (logits up to {scale:.1})", d_spec.plugin);
        assert!(diff < 1e-3 * scale, "{} discriminator differs by {diff}", d_spec.plugin);
    }
}

#[test]
fn the_shipped_checkpoint_draws_the_same_birds_on_gpu() {
    let Some(gpu) = gpu("the_shipped_checkpoint_draws_the_same_birds_on_gpu") else { return };
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(condor::txt2img::SHIPPED_CHECKPOINT);
    let prompts: Vec<String> = ["a red bird", "a small blue bird with a white belly"].map(String::from).to_vec();
    let draw = |device: &Device| {
        let model = TextToImage::load(&path, &condor::registry(), device).unwrap();
        model.generate(&prompts, 4, 5, &Default::default()).unwrap().images
    };
    let (cpu, on_gpu) = (draw(&Device::Cpu), draw(&gpu));
    let diff = max_abs_diff(&cpu, &on_gpu);
    println!("shipped DCGAN: max |cpu - gpu| pixel = {diff:.2e} (pixels in [-1, 1])");
    // Both run in float32; only the order of summation differs (cuBLAS and cuDNN against gemm).
    assert!(diff < 0.02, "GPU birds differ from CPU birds by {diff}");
}

#[test]
fn a_short_gpu_run_learns_and_its_checkpoint_samples_on_cpu() {
    let Some(gpu) = gpu("a_short_gpu_run_learns_and_its_checkpoint_samples_on_cpu") else { return };
    let mut config = common::fast_mixture_config(DatasetConfig::ring8().with_conditional(true), 3000, 256, 128);
    config.schedule.checkpoint_every = 3000;
    let data = config.data.clone();
    let tmp = tempfile::tempdir().unwrap();
    let options = RunOptions::quiet(tmp.path().join("gpu"), false);
    let summary = train(config, &condor::registry(), &gpu, options).unwrap();
    let checkpoint = summary.checkpoint;
    let on_cpu = LoadedGenerator::load(&checkpoint, &condor::registry(), &Device::Cpu).unwrap();
    let c = mixture_coverage(on_cpu.generator.as_ref(), &data, 2000, 20, 1, &Device::Cpu).unwrap();
    println!("GPU-trained, CPU-sampled: {}", serde_json::to_string(&c).unwrap());
    assert_eq!(c.modes_hit, 8, "{:?}", c.per_mode);
    assert!(c.in_requested_mode.unwrap() >= 0.9);
    let on_gpu = LoadedGenerator::load(&checkpoint, &condor::registry(), &gpu).unwrap();
    let c_gpu = mixture_coverage(on_gpu.generator.as_ref(), &data, 2000, 20, 1, &gpu).unwrap();
    assert_eq!(c.modes_hit, c_gpu.modes_hit);
    assert!((c.in_requested_mode.unwrap() - c_gpu.in_requested_mode.unwrap()).abs() < 0.01);
}

/// `steps` steps of `config` on `device`, alone or as one rank of `group`; the weights on the host.
#[cfg(feature = "nccl")]
fn train_weights(
    config: &condor::train::RunConfig,
    steps: u64,
    device: &Device,
    group: Option<std::sync::Arc<dyn condor::train::Collective>>,
) -> std::collections::HashMap<String, Tensor> {
    let mut t = condor::train::Trainer::new(config.clone(), &condor::registry(), device).unwrap();
    if let Some(g) = group {
        t.join(g).unwrap();
    }
    for _ in 0..steps {
        t.step().unwrap();
    }
    t.weights().into_iter().map(|(n, w)| (n, w.to_device(&Device::Cpu).unwrap())).collect()
}

#[test]
#[cfg(feature = "nccl")]
fn nccl_ranks_follow_the_single_gpu_run() {
    use condor::train::parallel::nccl::{NcclCollective, NcclId};
    let Some(gpu) = gpu("nccl_ranks_follow_the_single_gpu_run") else { return };
    let steps = 30;
    let config = common::shardable_config(steps);
    let alone = train_weights(&config, steps, &gpu, None);
    // A world of one goes through NCCL's all-reduce and must not change a bit.
    let one = NcclCollective::new(&gpu, 0, 1, NcclId::new().unwrap()).unwrap();
    let grouped = train_weights(&config, steps, &gpu, Some(std::sync::Arc::new(one)));
    assert!(common::bit_identical(&alone, &grouped), "NCCL world of one differs from one GPU alone");
    println!("NCCL world size 1: bit-identical to the single-GPU run after {steps} steps");
    // Every GPU of the machine as one rank each (threads of this process), when there are two or more.
    let count = (0..16).take_while(|&i| Device::new_cuda(i).is_ok()).count();
    if count < 2 {
        println!("nccl_ranks_follow_the_single_gpu_run: one GPU, so the multi-rank part is skipped");
        return;
    }
    let hex = NcclId::new().unwrap().to_hex();
    // Spawn every rank before joining any: each blocks in NCCL's init until all have joined.
    let handles: Vec<_> = (0..count)
        .map(|rank| {
            let (config, hex) = (config.clone(), hex.clone());
            std::thread::spawn(move || {
                let device = Device::new_cuda(rank).unwrap();
                let group = NcclCollective::new(&device, rank, count, NcclId::from_hex(&hex).unwrap()).unwrap();
                common::to_host(train_weights(&config, steps, &device, Some(std::sync::Arc::new(group))))
            })
        })
        .collect();
    let ranks: Vec<_> = handles.into_iter().map(|h| common::from_host(h.join().unwrap())).collect();
    for (rank, w) in ranks.iter().enumerate() {
        assert!(common::bit_identical(w, &ranks[0]), "rank {rank} differs from rank 0");
    }
    let gap = common::max_difference(&ranks[0], &alone);
    println!("NCCL world size {count}: largest weight difference from one GPU {gap:.2e}");
    assert!(gap < 1e-4, "{count} GPUs are {gap} away from one GPU");
}

#[test]
fn bfloat16_training_on_gpu_tracks_float32() {
    let Some(gpu) = gpu("bfloat16_training_on_gpu_tracks_float32") else { return };
    use condor::train::{Precision, StepRecord, Trainer};
    let tmp = tempfile::tempdir().unwrap();
    let run = |precision: Precision, steps: u64| -> Vec<StepRecord> {
        let mut config = common::tiny_birds(steps, tmp.path());
        config.batch_size = 12;
        config.training.precision = precision;
        let mut t = Trainer::new(config, &condor::registry(), &gpu).unwrap();
        (0..steps).map(|_| t.step().unwrap()).collect()
    };
    let steps = 40;
    let (full, half) = (run(Precision::F32, steps), run(Precision::Bf16, steps));
    let mean = |r: &[StepRecord], f: fn(&StepRecord) -> f32| r.iter().map(f).sum::<f32>() / r.len() as f32;
    for (name, f) in [("D", (|r: &StepRecord| r.loss_d) as fn(&StepRecord) -> f32), ("G", |r| r.loss_g)] {
        let (a, b) = (mean(&half, f), mean(&full, f));
        println!("text-to-image DCGAN on GPU, {steps} steps: mean loss {name} bf16 {a:.4}, f32 {b:.4}");
        assert!((a - b).abs() < 0.05 * b.abs(), "bf16 loss {name} {a} vs f32 {b}");
    }
}
