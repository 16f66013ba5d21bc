//! Resuming continues bit-exactly: 2N steps equal N steps, a checkpoint, and N more.

mod common;

use candle_core::Device;
use condor::data::DatasetConfig;
use condor::train::{Checkpoint, EmaConfig, InstanceNoiseConfig, LossKind, RunConfig, RunOptions, Trainer};

/// A config that uses every source of randomness and state: conditioning, k = 2, label smoothing and
/// flipping, instance noise, EMA, batch norm (running statistics) and a learning-rate schedule.
fn busy_config(steps: u64) -> RunConfig {
    let mut c = common::mixture_config(DatasetConfig::ring8().with_conditional(true), steps, 32, 32);
    c.generator.config["batch_norm"] = true.into();
    c.generator.config["hidden"] = serde_json::json!([32, 32]);
    c.training.loss = LossKind::NonSaturating;
    c.training.d_steps = 2;
    c.training.label_smoothing = 0.1;
    c.training.label_flip = 0.05;
    c.training.instance_noise = Some(InstanceNoiseConfig { sigma: 0.2, decay_steps: 30, decay: Default::default() });
    c.training.ema = Some(EmaConfig { decay: 0.9, start_step: 3, ..Default::default() });
    c.optimizer.generator.lr_decay = condor::train::LrDecay::Cosine;
    c.schedule.checkpoint_every = 7;
    c.schedule.keep_checkpoints = 2;
    c
}

#[test]
fn trainer_resumes_bit_exactly_from_a_checkpoint() {
    common::one_thread();
    let registry = condor::registry();
    let n = 12;
    let (straight, resumed) = common::straight_and_resumed(busy_config, n, |ckpt| {
        assert_eq!(ckpt.state.step, n);
        assert_eq!(ckpt.state.opt_d_steps, 2 * n, "k = 2 discriminator steps per iteration");
    });
    assert_eq!(resumed.step_count(), 2 * n);
    common::assert_identical(&straight.weights(), &resumed.weights());
    // The comparison is not vacuous: training moved the weights away from their initial values.
    let fresh = Trainer::new(busy_config(2 * n), &registry, &Device::Cpu).unwrap().weights();
    let g0: Vec<f32> = fresh["g.fc0.weight"].flatten_all().unwrap().to_vec1().unwrap();
    let g1: Vec<f32> = straight.weights()["g.fc0.weight"].flatten_all().unwrap().to_vec1().unwrap();
    assert_ne!(g0, g1);
}

#[test]
fn interrupted_run_directory_resumes_to_the_same_weights() {
    common::one_thread();
    let registry = condor::registry();
    let tmp = tempfile::tempdir().unwrap();
    let opts = |dir: &str, resume| RunOptions::quiet(tmp.path().join(dir), resume);

    condor::train::train(busy_config(20), &registry, &Device::Cpu, opts("straight", false)).unwrap();
    // The same run, crashed after step 20 was logged but before its checkpoint was kept: the newest
    // checkpoint left is step 14, and the log runs ahead of it.
    condor::train::train(busy_config(20), &registry, &Device::Cpu, opts("resumed", false)).unwrap();
    std::fs::remove_file(tmp.path().join("resumed/checkpoints/step-000000020.safetensors")).unwrap();
    let summary = condor::train::train(busy_config(20), &registry, &Device::Cpu, opts("resumed", true)).unwrap();
    assert_eq!(summary.step, 20);

    let a =
        Checkpoint::load(&tmp.path().join("straight/checkpoints/step-000000020.safetensors"), &Device::Cpu).unwrap();
    let b = Checkpoint::load(&summary.checkpoint, &Device::Cpu).unwrap();
    common::assert_identical(&a.tensors, &b.tensors);
    let dir = condor::train::RunDir::create(&tmp.path().join("resumed")).unwrap();
    let steps: Vec<u64> = dir.read_log().unwrap().iter().map(|r| r.step).collect();
    assert_eq!(steps, (1..=20).collect::<Vec<_>>(), "each step logged once");
    // TensorBoard: a second event file whose session start drops what the first logged past step 14.
    let board = dir.tensorboard_dir();
    assert_eq!(std::fs::read_dir(&board).unwrap().count(), 2, "one event file per process");
    let shown = condor::train::tensorboard::steps_shown(&board, "loss/generator").unwrap();
    assert_eq!(shown, (1..=20).collect::<Vec<_>>(), "TensorBoard shows each step once");
    let grids = condor::train::tensorboard::steps_shown(&board, "samples").unwrap();
    assert_eq!(grids.last(), Some(&20), "the last sample grid is an image event: {grids:?}");
    assert_eq!(dir.checkpoints().len(), 2, "keep_checkpoints = 2");
    assert!(tmp.path().join("resumed/losses.png").exists());
    assert!(tmp.path().join("resumed/samples/step-000000020.png").exists());
    assert!(tmp.path().join("resumed/config.toml").exists());
}

#[test]
fn a_stop_request_writes_a_checkpoint_and_resumes() {
    common::one_thread();
    let registry = condor::registry();
    let tmp = tempfile::tempdir().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(true);
    let options =
        RunOptions { dir: tmp.path().join("r"), resume: false, progress: false, stop: Some(&stop), group: None };
    let s = condor::train::train(busy_config(5), &registry, &Device::Cpu, options).unwrap();
    assert!(s.interrupted);
    assert_eq!(s.step, 0);
    assert!(s.checkpoint.exists());
}
