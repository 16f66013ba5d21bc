//! Bad checkpoints and bad configs give clear errors, never panics, and nothing is overwritten.

mod common;

use candle_core::Device;
use condor::data::DatasetConfig;
use condor::infer::LoadedGenerator;
use condor::train::{Checkpoint, CheckpointError, RunConfig, RunOptions, TrainError, Trainer};

fn saved_checkpoint(dir: &std::path::Path) -> (std::path::PathBuf, RunConfig) {
    let config = common::mixture_config(DatasetConfig::ring8(), 3, 16, 16);
    let mut t = Trainer::new(config.clone(), &condor::registry(), &Device::Cpu).unwrap();
    t.step().unwrap();
    let path = dir.join("ok.safetensors");
    t.save_checkpoint(&path).unwrap();
    (path, config)
}

fn load_err(path: &std::path::Path) -> CheckpointError {
    match Checkpoint::load(path, &Device::Cpu) {
        Err(e) => e,
        Ok(_) => panic!("{} loaded", path.display()),
    }
}

#[test]
fn truncated_garbled_foreign_and_missing_files_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = saved_checkpoint(tmp.path());
    let bytes = std::fs::read(&path).unwrap();

    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(load_err(&truncated), CheckpointError::Corrupt { .. }));

    // One flipped bit in the last tensor's data: the header still parses, the checksum catches it.
    let garbled = tmp.path().join("garbled.safetensors");
    let mut g = bytes.clone();
    *g.last_mut().unwrap() ^= 0x10;
    std::fs::write(&garbled, &g).unwrap();
    let e = load_err(&garbled);
    assert!(matches!(e, CheckpointError::Corrupt { .. }) && e.to_string().contains("checksum"), "{e}");

    let header = tmp.path().join("header.safetensors");
    let mut h = bytes.clone();
    h[10] = b'#';
    std::fs::write(&header, &h).unwrap();
    assert!(matches!(load_err(&header), CheckpointError::Corrupt { .. }));

    let empty = tmp.path().join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(load_err(&empty), CheckpointError::Corrupt { .. }));

    let foreign = tmp.path().join("foreign.safetensors");
    let t = candle_core::Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("w".to_string(), t)]), &foreign).unwrap();
    let e = load_err(&foreign);
    assert!(matches!(e, CheckpointError::NotCondor { .. }), "{e}");

    let e = load_err(&tmp.path().join("nope.safetensors"));
    assert!(matches!(e, CheckpointError::NotFound(_)));
    assert!(e.to_string().contains("nope.safetensors"));
}

#[test]
fn a_checkpoint_whose_tensors_do_not_fit_its_model_is_a_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, mut config) = saved_checkpoint(tmp.path());
    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
    // Rewrite the checkpoint with a config whose generator is wider than its tensors.
    config.generator.config["hidden"] = serde_json::json!([64, 64]);
    let tensors: Vec<(String, candle_core::Tensor)> = ckpt.tensors.into_iter().collect();
    let wrong = tmp.path().join("wrong.safetensors");
    let card = condor::infer::ModelCard { generator: config.generator.clone(), ..ckpt.card.clone().unwrap() };
    condor::train::checkpoint::save(&wrong, &tensors, &config, &ckpt.state, card.metadata()).unwrap();
    let bad = Checkpoint::load(&wrong, &Device::Cpu).unwrap();
    let e = Trainer::from_checkpoint(&bad, &condor::registry(), &Device::Cpu).err().expect("must not load");
    let msg = e.to_string();
    assert!(msg.contains("does not match") && msg.contains("shape"), "{msg}");
    let e = LoadedGenerator::load(&wrong, &condor::registry(), &Device::Cpu).err().expect("must not load");
    assert!(e.to_string().contains("fc0.bias") && e.to_string().contains("[64]"), "{e}");
}

#[test]
fn runs_refuse_to_overwrite_and_to_resume_with_another_model() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = condor::registry();
    let config = common::mixture_config(DatasetConfig::ring8(), 2, 16, 16);
    let opts = |resume| RunOptions::quiet(tmp.path().join("run"), resume);
    condor::train::train(config.clone(), &registry, &Device::Cpu, opts(false)).unwrap();
    let before = std::fs::read(tmp.path().join("run/checkpoints/step-000000002.safetensors")).unwrap();
    let e = condor::train::train(config.clone(), &registry, &Device::Cpu, opts(false)).unwrap_err();
    assert!(e.to_string().contains("--resume"), "{e}");
    let mut other = config.clone();
    other.discriminator.config["hidden"] = serde_json::json!([8]);
    let e = condor::train::train(other, &registry, &Device::Cpu, opts(true)).unwrap_err();
    assert!(e.to_string().contains("`discriminator` differs"), "{e}");
    let after = std::fs::read(tmp.path().join("run/checkpoints/step-000000002.safetensors")).unwrap();
    assert_eq!(before, after, "the checkpoint is untouched");

    // What a resume may change (steps, optimizer) is taken from the given config.
    let mut longer = config.clone();
    longer.steps = 4;
    longer.optimizer.generator.lr = 1e-3;
    condor::train::train(longer, &registry, &Device::Cpu, opts(true)).unwrap();
    let ckpt = Checkpoint::load(&tmp.path().join("run/checkpoints/step-000000004.safetensors"), &Device::Cpu).unwrap();
    assert_eq!((ckpt.state.step, ckpt.config.steps), (4, 4));
    assert_eq!(ckpt.config.optimizer.generator.lr, 1e-3);
}

#[test]
fn config_errors_name_the_field() {
    let base = r#"
        steps = 10
        [data]
        kind = "ring"
        [generator]
        plugin = "mlp"
        [discriminator]
        plugin = "mlp"
    "#;
    assert!(RunConfig::from_toml(base).is_ok());
    let e = RunConfig::from_toml(&base.replace("steps = 10", "")).unwrap_err().to_string();
    assert!(e.contains("steps"), "{e}");
    let e = RunConfig::from_toml(&format!("{base}\n[training]\nd_stepz = 2")).unwrap_err().to_string();
    assert!(e.contains("d_stepz"), "{e}");
    let e = RunConfig::from_toml(&base.replace("\"ring\"", "\"moon\"")).unwrap_err().to_string();
    assert!(e.contains("moon"), "{e}");
    let config = RunConfig::from_toml(&format!("{base}\n[training]\nloss = \"hinge\"\nlabel_smoothing = 0.1")).unwrap();
    let e = Trainer::new(config, &condor::registry(), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("label_smoothing"), "{e}");
    let config =
        RunConfig::from_toml(&base.replace("plugin = \"mlp\"\n        [disc", "plugin = \"mpl\"\n        [disc"))
            .unwrap();
    let e = Trainer::new(config, &condor::registry(), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("unknown generator plugin `mpl`") && e.contains("mlp"), "{e}");
    let conditional = base.replace("kind = \"ring\"", "kind = \"ring\"\nconditional = true");
    let config = RunConfig::from_toml(&conditional).unwrap();
    assert!(Trainer::new(config, &condor::registry(), &Device::Cpu).is_ok(), "a model may ignore the conditioning");
    let wrong_dim = conditional.replacen("plugin = \"mlp\"", "plugin = \"mlp\"\nconfig = { cond_dim = 3 }", 1);
    let config = RunConfig::from_toml(&wrong_dim).unwrap();
    let e = Trainer::new(config, &condor::registry(), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("size 3") && e.contains("provides 8"), "{e}");
    let e = RunConfig::from_file(std::path::Path::new("no/such/config.toml")).unwrap_err().to_string();
    assert!(e.contains("no/such/config.toml"), "{e}");
    assert!(matches!(RunConfig::from_json("{\"steps\": 1"), Err(TrainError::Config(_))));
}

#[test]
fn a_diverging_run_stops_with_the_step_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = common::mixture_config(DatasetConfig::ring8(), 50, 16, 16);
    // An absurd generator learning rate: after one step its weights are ~1e30, so at the next step
    // its samples overflow and the discriminator's loss is not finite.
    config.optimizer.generator.lr = 1e30;
    config.schedule.checkpoint_every = 1;
    let options = RunOptions::quiet(tmp.path().join("run"), false);
    let e = condor::train::train(config, &condor::registry(), &Device::Cpu, options).unwrap_err();
    let TrainError::Diverged { step, last_checkpoint, .. } = &e else { panic!("expected divergence, got {e}") };
    assert!(*step >= 2, "step {step}");
    let last = last_checkpoint.as_ref().expect("a checkpoint before the divergence");
    let ckpt = Checkpoint::load(last, &Device::Cpu).unwrap();
    assert_eq!(ckpt.state.step, step - 1, "the checkpoint is the step before");
    for (name, t) in &ckpt.tensors {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name} holds a non-finite value");
    }
    assert!(e.to_string().contains(&format!("step {step}")), "{e}");
}
