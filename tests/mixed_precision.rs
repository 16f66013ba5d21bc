//! Mixed precision: bfloat16 and float16 passes on float32 master weights follow the float32 run,
//! keep float32 checkpoints, and resume exactly.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use condor::train::{Checkpoint, Precision, RunConfig, StepRecord, Trainer};

/// The conditional ring with batch norm in the generator, GAN-CLS and instance noise.
fn config(precision: Precision, steps: u64) -> RunConfig {
    let mut c = common::shardable_config(steps);
    c.generator.config["batch_norm"] = true.into();
    c.training.precision = precision;
    c
}

fn train(precision: Precision, steps: u64) -> (Vec<StepRecord>, HashMap<String, Tensor>) {
    let mut t = Trainer::new(config(precision, steps), &condor::registry(), &Device::Cpu).unwrap();
    let records = (0..steps).map(|_| t.step().unwrap()).collect();
    (records, t.weights())
}

/// Mean of `f` over `records[range]`.
fn mean(records: &[StepRecord], range: std::ops::Range<usize>, f: impl Fn(&StepRecord) -> f32) -> f32 {
    let n = range.len() as f32;
    records[range].iter().map(f).sum::<f32>() / n
}

#[test]
fn half_precision_losses_and_weights_track_float32() {
    common::one_thread();
    let steps = 300;
    let (reference, w32) = train(Precision::F32, steps);
    let w0 = Trainer::new(config(Precision::F32, steps), &condor::registry(), &Device::Cpu).unwrap().weights();
    let moved = common::max_difference(&w32, &w0);
    for precision in [Precision::Bf16, Precision::F16] {
        let (records, w) = train(precision, steps);
        // The first steps agree to rounding.
        for (a, b) in records.iter().zip(&reference).take(5) {
            assert!((a.loss_d - b.loss_d).abs() < 0.01 && (a.loss_g - b.loss_g).abs() < 0.01, "{a:?} vs {b:?}");
        }
        // Over the run the losses stay within 2% of float32's, 50 steps at a time.
        for window in (0..steps as usize).step_by(50).map(|s| s..s + 50) {
            for (name, f) in [("D", (|r: &StepRecord| r.loss_d) as fn(&StepRecord) -> f32), ("G", |r| r.loss_g)] {
                let (half, full) = (mean(&records, window.clone(), f), mean(&reference, window.clone(), f));
                eprintln!("{precision:?} steps {window:?}: loss {name} {half:.4} (float32 {full:.4})");
                assert!((half - full).abs() < 0.02 * full.abs(), "{precision:?} loss {name} {half} vs {full}");
            }
        }
        // The master weights end near float32's, relative to how far training moved them.
        let gap = common::max_difference(&w, &w32);
        eprintln!(
            "{precision:?}: weights {gap:.4} from float32's after {steps} steps (training moved them {moved:.4})"
        );
        assert!(gap < 0.2 * moved, "{precision:?} weights are {gap} from float32's; training moved them {moved}");
        assert!(w.values().all(|t| t.dtype() == DType::F32), "master weights, moments and EMA stay float32");
    }
}

#[test]
fn float16_runs_resume_exactly_with_their_loss_scale() {
    common::one_thread();
    let registry = condor::registry();
    let n = 6;
    let (_, straight) = train(Precision::F16, 2 * n);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("half.safetensors");
    let mut first = Trainer::new(config(Precision::F16, 2 * n), &registry, &Device::Cpu).unwrap();
    for _ in 0..n {
        first.step().unwrap();
    }
    first.save_checkpoint(&path).unwrap();
    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
    assert!(ckpt.tensors.values().all(|t| t.dtype() == DType::F32), "checkpoints hold float32 tensors");
    assert_eq!(ckpt.state.loss_scale, first.state().loss_scale);
    assert!(ckpt.state.loss_scale.is_some_and(|s| s.scale >= 1.0));
    let mut resumed = Trainer::from_checkpoint(&ckpt, &registry, &Device::Cpu).unwrap();
    for _ in 0..n {
        resumed.step().unwrap();
    }
    assert!(common::bit_identical(&straight, &resumed.weights()));
}

#[test]
fn the_text_to_image_recipe_trains_in_float16() {
    common::one_thread();
    // Convolutions, conditioning augmentation, GAN-CLS and GAN-INT with half-precision passes. (float16:
    // candle 0.11's CPU backend has no bfloat16 convolution; tests/gpu.rs runs bfloat16 on a GPU.)
    let tmp = tempfile::tempdir().unwrap();
    let mut config = common::tiny_birds(3, tmp.path());
    config.training.precision = Precision::F16;
    let mut t = Trainer::new(config.clone(), &condor::registry(), &Device::Cpu).unwrap();
    let records: Vec<StepRecord> = (0..3).map(|_| t.step().unwrap()).collect();
    config.training.precision = Precision::F32;
    let mut full = Trainer::new(config, &condor::registry(), &Device::Cpu).unwrap();
    for (half, r) in records.iter().zip((0..3).map(|_| full.step().unwrap())) {
        assert!((half.loss_d - r.loss_d).abs() < 0.05 * r.loss_d.abs(), "D {} vs {}", half.loss_d, r.loss_d);
        assert!((half.loss_g - r.loss_g).abs() < 0.05 * r.loss_g.abs(), "G {} vs {}", half.loss_g, r.loss_g);
        assert!((half.g_regularization - r.g_regularization).abs() < 0.05 * r.g_regularization.abs() + 1e-3);
    }
}

#[test]
fn precision_is_a_training_setting_in_run_configs() {
    let toml = "name = \"x\"\nsteps = 1\n[data]\nkind = \"ring\"\n[generator]\nplugin = \"mlp\"\n[discriminator]\nplugin = \"mlp\"\n[training]\nprecision = \"bf16\"\n";
    let c = RunConfig::from_toml(toml).unwrap();
    assert_eq!(c.training.precision, Precision::Bf16);
    let bad = toml.replace("bf16", "fp8");
    assert!(RunConfig::from_toml(&bad).unwrap_err().to_string().contains("fp8"));
}
