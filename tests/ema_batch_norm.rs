//! The EMA generator's batch-norm statistics are re-estimated for its own weights, and doing so
//! leaves training unchanged.

mod common;

use candle_core::{DType, Device, Tensor};
use condor::core::{rng::normal, Batch, DataSource, Generator, Params, Result as CoreResult, Rng};
use condor::data::DatasetConfig;
use condor::dcgan::{DcganGenerator, DcganGeneratorConfig};
use condor::train::{recalibrate_batch_norm, EmaConfig, Trainer};

/// Unconditional data whose batches are never looked at: the recalibration draws only latents.
struct NoConditioning;

impl DataSource for NoConditioning {
    fn sample_shape(&self) -> Vec<usize> {
        vec![3, 32, 32]
    }
    fn cond_dim(&self) -> usize {
        0
    }
    fn batch(&self, _: u64, n: usize, _: &mut Rng, device: &Device) -> CoreResult<Batch> {
        Ok(Batch { samples: Tensor::zeros((n, 3, 32, 32), DType::F32, device)?, conditioning: None, labels: None })
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn recalibrated_statistics_are_the_mean_batch_statistics() {
    let dev = Device::Cpu;
    let params = Params::new(3);
    let config = DcganGeneratorConfig { noise_dim: 8, image_size: 32, width: 2, ..Default::default() };
    let g = DcganGenerator::new(config.clone(), params.var_builder(DType::F32, &dev)).unwrap();
    // Deep copies: a variable's tensor shares its storage, which recalibration overwrites.
    let named: std::collections::HashMap<String, Tensor> =
        params.named().into_iter().map(|(n, v)| (n, v.as_tensor().copy().unwrap())).collect();
    let stat = |name: &str| values(&named[name]);
    assert!(stat("project_bn.running_mean").iter().all(|&m| m == 0.0), "fresh statistics");

    let (batches, size, seed) = (3usize, 16usize, 11u64);
    recalibrate_batch_norm(&g, &params, &NoConditioning, batches, size, seed, &dev).unwrap();

    // The first batch-norm layer normalises project(z), (B, top, 4, 4): its statistics per channel
    // over batch and space, averaged over the batches, from the same draws.
    let w = named["project.weight"].clone();
    let top = w.dim(0).unwrap() / 16;
    let (mut mean, mut var) = (vec![0f64; top], vec![0f64; top]);
    for i in 0..batches as u64 {
        let mut rng = condor::core::rng::Stream::BatchNorm(i).rng(seed);
        let z = normal(&mut rng, (size, g.latent_dim()), &dev).unwrap();
        let x = values(
            &z.matmul(&w.t().unwrap())
                .unwrap()
                .reshape((size, top, 16))
                .unwrap()
                .transpose(0, 1)
                .unwrap()
                .contiguous()
                .unwrap(),
        );
        let per = size * 16;
        for c in 0..top {
            let xs = &x[c * per..(c + 1) * per];
            let m = xs.iter().map(|&v| v as f64).sum::<f64>() / per as f64;
            let v = xs.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / (per - 1) as f64;
            mean[c] += m / batches as f64;
            var[c] += v / batches as f64;
        }
    }
    let got_mean = values(&params.named().into_iter().find(|(n, _)| n == "project_bn.running_mean").unwrap().1);
    let got_var = values(&params.named().into_iter().find(|(n, _)| n == "project_bn.running_var").unwrap().1);
    for c in 0..top {
        assert!(
            (got_mean[c] as f64 - mean[c]).abs() < 1e-4 * (1.0 + mean[c].abs()),
            "mean {c}: {} vs {}",
            got_mean[c],
            mean[c]
        );
        assert!((got_var[c] as f64 - var[c]).abs() < 1e-4 * var[c], "var {c}: {} vs {}", got_var[c], var[c]);
    }
    // Every layer's statistics moved off their initial values, and the weights did not move.
    for (name, v) in params.named() {
        let after = values(v.as_tensor());
        if name.ends_with("running_var") {
            assert!(after.iter().all(|&x| x > 0.0 && x != 1.0), "{name} was re-estimated");
        } else if !name.ends_with("running_mean") {
            assert_eq!(after, values(&named[&name]), "{name} is a weight and must not change");
        }
    }
    // The same draws give the same statistics.
    let again = Params::new(3);
    let g2 = DcganGenerator::new(config, again.var_builder(DType::F32, &dev)).unwrap();
    recalibrate_batch_norm(&g2, &again, &NoConditioning, batches, size, seed, &dev).unwrap();
    for ((n, a), (_, b)) in params.named().into_iter().zip(again.named()) {
        assert_eq!(values(a.as_tensor()), values(b.as_tensor()), "{n}");
    }
}

#[test]
fn calibrating_the_ema_leaves_training_unchanged() {
    common::one_thread();
    let mut config = common::mixture_config(DatasetConfig::ring8().with_conditional(true), 8, 32, 32);
    config.generator.config["batch_norm"] = true.into();
    config.training.ema = Some(EmaConfig { decay: 0.9, start_step: 2, batch_norm_batches: 4 });
    let registry = condor::registry();
    let mut plain = Trainer::new(config.clone(), &registry, &Device::Cpu).unwrap();
    let mut calibrated = Trainer::new(config, &registry, &Device::Cpu).unwrap();
    let ema_stats = |t: &Trainer| -> Vec<f32> {
        let (_, p) = t.network("g").unwrap().ema.as_ref().unwrap();
        p.named()
            .into_iter()
            .filter(|(n, _)| n.ends_with("running_mean"))
            .flat_map(|(_, v)| values(v.as_tensor()))
            .collect()
    };
    for step in 1..=8 {
        plain.step().unwrap();
        calibrated.step().unwrap();
        if step % 3 == 0 {
            let before = ema_stats(&calibrated);
            calibrated.calibrate_ema().unwrap();
            assert_ne!(before, ema_stats(&calibrated), "step {step}: the statistics were re-estimated");
        }
    }
    assert!(common::bit_identical(&plain.weights(), &calibrated.weights()), "training must not change");
}

#[test]
fn training_checkpoints_hold_what_recalibrate_writes() {
    use condor::train::export::recalibrate_checkpoint;
    use condor::train::{train, Checkpoint, RunOptions};
    let tmp = tempfile::tempdir().unwrap();
    let registry = condor::registry();
    let options = RunOptions::quiet(tmp.path().join("run"), false);
    let run = train(common::tiny_birds(3, tmp.path()), &registry, &Device::Cpu, options).unwrap();
    let out = tmp.path().join("recalibrated.safetensors");
    assert_eq!(recalibrate_checkpoint(&run.checkpoint, &out, &registry, &Device::Cpu).unwrap(), Some(16));
    let (written, again) =
        (Checkpoint::load(&run.checkpoint, &Device::Cpu).unwrap(), Checkpoint::load(&out, &Device::Cpu).unwrap());
    assert!(
        common::bit_identical(&written.tensors, &again.tensors),
        "the trainer calibrated its EMA copy the same way"
    );
    // The EMA copy's statistics are its own, not the trained generator's.
    let key = "project_bn.running_mean";
    assert_ne!(values(&written.group("ema")[key]), values(&written.group("g")[key]));
}
