//! Training recipes: the built-in adversarial recipe reproduces the trainer it replaced, bit for bit.
//!
//! The checksums below are FNV-1a hashes of the weights and optimizer moments after the first steps of
//! shipped configs, with the weights' L1 norms. They were first recorded with the trainer before
//! recipes existed (commit ff0d411) on an Intel Sapphire Rapids CPU, and the refactor held them bit for
//! bit there. The bits depend on the CPU, though: faer sizes its matrix-product blocks to the caches,
//! which changes the order of the sums. The ones below were recorded again on an AMD EPYC (Zen 4):
//! ring-8's are the same bits as on the Intel CPU, the birds configs' differ from the Intel ones at the
//! same commit (the products' blocking alone), and birds-stylegan's also changed its arithmetic when its modulation gradients and 3x3
//! convolutions took another summation order (lane-wise sums, direct convolutions). So every CPU holds
//! the L1 norms to a relative 1e-4, and `CONDOR_EXACT_CHECKSUMS=1` asserts the hashes on a CPU of the
//! recording kind. A change meant to alter training records new ones:
//! `CONDOR_RECORD_CHECKSUMS=1 cargo test --release --test recipes -- --nocapture`.

mod common;

use candle_core::{Device, Tensor};
use condor::core::recipe::{NetworkDecl, Recipe, RecipeSetup, Scalars, TrainContext};
use condor::core::rng::normal;
use condor::data::DatasetConfig;
use condor::train::{InstanceNoiseConfig, LossKind, RunConfig, RunOptions, Trainer};

/// FNV-1a over every tensor's name and f32 bits, in name order, and the L1 norm of all of them.
fn checksum(trainer: &Trainer) -> (u64, f64) {
    let weights = trainer.weights();
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    let (mut hash, mut l1) = (0xcbf2_9ce4_8422_2325u64, 0f64);
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for name in names {
        eat(name.as_bytes());
        let values: Vec<f32> =
            weights[name].flatten_all().unwrap().to_dtype(candle_core::DType::F32).unwrap().to_vec1().unwrap();
        for v in values {
            eat(&v.to_bits().to_le_bytes());
            l1 += f64::from(v.abs());
        }
    }
    (hash, l1)
}

/// Trains `config` for `steps` steps on the CPU and checks the checksum against the recorded one.
fn holds_checksum(what: &str, mut config: RunConfig, steps: u64, recorded: (u64, f64)) {
    config.steps = steps;
    config.schedule.prefetch = false;
    let mut trainer = Trainer::new(config, &condor::registry(), &candle_core::Device::Cpu).unwrap();
    for _ in 0..steps {
        trainer.step().unwrap();
    }
    let (hash, l1) = checksum(&trainer);
    println!("{what}: ({hash:#018x}, {l1:?})");
    if std::env::var_os("CONDOR_RECORD_CHECKSUMS").is_some() {
        return;
    }
    if std::env::var_os("CONDOR_EXACT_CHECKSUMS").is_some() {
        assert_eq!(hash, recorded.0, "{what}: the weights after {steps} steps differ from the recorded ones");
    }
    let relative = (l1 - recorded.1).abs() / recorded.1;
    assert!(relative < 1e-4, "{what}: L1 norm {l1} against the recorded {} (relative {relative:e})", recorded.1);
}

fn shipped(name: &str) -> RunConfig {
    RunConfig::from_file(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(name)).unwrap()
}

/// A shipped birds config on its first 128 birds, caching caption embeddings in `cache`.
fn shipped_birds(name: &str, cache: &std::path::Path) -> RunConfig {
    let mut config = shipped(name);
    if let DatasetConfig::Birds { count, .. } = &mut config.data {
        *count = 128;
    }
    config.text.cache_dir = cache.to_path_buf();
    config
}

/// The conditional ring with every option of the adversarial recipe that points can take: k = 2,
/// GAN-CLS, label smoothing and flips, instance noise, EMA and R1.
fn every_option_ring() -> RunConfig {
    let mut c = shipped("ring8-conditional.toml");
    c.training.d_steps = 2;
    c.training.gan_cls = true;
    c.training.label_smoothing = 0.1;
    c.training.label_flip = 0.05;
    c.training.instance_noise = Some(InstanceNoiseConfig { sigma: 0.2, decay_steps: 30, decay: Default::default() });
    c.training.ema = Some(condor::train::EmaConfig { decay: 0.9, start_step: 1, ..Default::default() });
    c.training.r1 = Some(condor::train::regularizers::R1Config { gamma: 1.0, every: 2, ..Default::default() });
    c
}

#[test]
fn the_adversarial_recipe_reproduces_ring8() {
    common::one_thread();
    holds_checksum("ring8", shipped("ring8.toml"), 5, (0x69958a7dbd3b1e60, 8236.87303770249));
    holds_checksum("ring8, every option", every_option_ring(), 5, (0xf70dc2260dfdebe1, 7042.6586308155365));
    let mut wgan = every_option_ring();
    wgan.training.loss = LossKind::Wasserstein;
    (wgan.training.label_smoothing, wgan.training.label_flip) = (0.0, 0.0);
    holds_checksum("ring8, every option, WGAN", wgan, 5, (0x0118f0298d3267b6, 4986.829080114629));
    let mut mixed = every_option_ring();
    mixed.training.precision = condor::train::precision::Precision::Bf16;
    holds_checksum("ring8, every option, bfloat16", mixed, 5, (0xe63d0f53aa0f8003, 7041.793100088182));
}

#[test]
fn the_adversarial_recipe_reproduces_the_birds_configs() {
    let cache = tempfile::tempdir().unwrap();
    holds_checksum("birds", shipped_birds("birds.toml", cache.path()), 3, (0x266c16842710f137, 42367.882216434264));
    let mut augmented = shipped_birds("birds.toml", cache.path());
    augmented.training.diff_augment =
        Some(condor::train::diff_augment::DiffAugmentConfig { translation: 0.125, cutout: 0.5 });
    holds_checksum("birds, DiffAugment", augmented, 3, (0x492007015a1cbaab, 37102.5716046575));
    holds_checksum(
        "birds-stylegan",
        shipped_birds("birds-stylegan.toml", cache.path()),
        3,
        (0x62c30d502e3ecc34, 21525576.50441446),
    );
}

#[test]
fn mismatched_networks_and_unknown_recipes_are_clear_errors_at_build_time() {
    let registry = condor::registry();
    let build = |c: RunConfig| Trainer::new(c, &registry, &candle_core::Device::Cpu).err().map(|e| e.to_string());
    let mut wrong_shape = shipped("ring8.toml");
    wrong_shape.discriminator.config["input_shape"] = serde_json::json!([3]);
    let message = build(wrong_shape).expect("a discriminator of points in 3D cannot score the ring");
    assert!(message.contains("scores samples of shape [3]") && message.contains("[2]"), "{message}");
    // Packed, the discriminator reads two points side by side: an input of 2 is one point's width.
    let mut packed = shipped("ring8.toml");
    packed.discriminator = packed.discriminator.clone().packed(2);
    packed.discriminator.config["input_shape"] = serde_json::json!([2]);
    let message = build(packed).expect("a packed discriminator built for one point's width");
    assert!(message.contains("with `pack = 2`") && message.contains("2 times the data's, 4"), "{message}");

    let mut unknown = shipped("ring8.toml");
    unknown.recipe = Some(condor::core::ModelSpec::new("no-such-recipe", serde_json::json!({})).unwrap());
    let message = build(unknown).expect("an unregistered recipe");
    assert!(message.contains("unknown recipe plugin `no-such-recipe`"), "{message}");

    // The built-in recipe by name is the default one.
    let mut named = shipped("ring8.toml");
    named.recipe = Some(condor::core::ModelSpec::new("adversarial", serde_json::json!({})).unwrap());
    assert!(build(named).is_none());
}

/// A recipe whose networks are not `g` and `d`: a `student` generator against a `critic`, with
/// Wasserstein losses, sampling from the network its config names.
struct Student {
    networks: Vec<NetworkDecl>,
    sampled: String,
}

/// [`Student`]'s config.
#[derive(serde::Serialize, serde::Deserialize)]
struct StudentConfig {
    sampled: String,
}

impl Student {
    fn new(config: StudentConfig, setup: &RecipeSetup) -> condor::core::Result<Self> {
        let mut networks = setup.generator_and_discriminator();
        networks[0].name = "student".into();
        networks[1].name = "critic".into();
        Ok(Self { networks, sampled: config.sampled })
    }
}

impl Recipe for Student {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }
    fn sampling_network(&self) -> &str {
        &self.sampled
    }
    fn step(&mut self, cx: &mut dyn TrainContext) -> condor::core::Result<Scalars> {
        let (batch, mut rng) = cx.next_batch().expect("one batch an iteration");
        let (g, d) = (cx.frozen_generator("student")?, cx.discriminator("critic")?);
        let z = normal(&mut rng, (cx.batch_size(), g.latent_dim()), cx.device())?;
        let fake = d.forward(&g.forward(&z, None, true)?, None, true)?.mean_all()?;
        let loss = (fake - d.forward(&batch.samples, None, true)?.mean_all()?)?;
        cx.update("critic", &loss)?;
        let (g, d) = (cx.generator("student")?, cx.frozen_discriminator("critic")?);
        let (_, mut rng) = cx.generator_draw();
        let z = normal(&mut rng, (cx.batch_size(), g.latent_dim()), cx.device())?;
        let loss = d.forward(&g.forward(&z, None, true)?, None, true)?.mean_all()?.neg()?;
        cx.update("student", &loss)?;
        Ok(Scalars::new())
    }
}

#[test]
fn a_recipe_says_which_generator_sampling_means_and_checkpoints_carry_its_card() {
    let mut registry = condor::registry();
    registry.register_recipe("student", Student::new).unwrap();
    let config = |sampled: &str| {
        let mut c = shipped("ring8.toml");
        c.steps = 3;
        c.schedule.checkpoint_every = 3;
        c.training.ema = Some(condor::train::EmaConfig { decay: 0.5, start_step: 1, ..Default::default() });
        c.recipe = Some(condor::core::ModelSpec::new("student", serde_json::json!({ "sampled": sampled })).unwrap());
        c
    };
    let tmp = tempfile::tempdir().unwrap();
    let options = RunOptions::quiet(tmp.path().join("student"), false);
    let summary = condor::train::train(config("student"), &registry, &Device::Cpu, options).unwrap();
    assert!(tmp.path().join("student/samples/step-000000003.png").is_file(), "grids drawn from `student`");

    // The checkpoint's card names the student's EMA copy, and inference draws what the trainer does.
    let loaded = condor::infer::LoadedGenerator::load(&summary.checkpoint, &registry, &Device::Cpu).unwrap();
    assert_eq!((loaded.card.weights.as_str(), loaded.card.ema, loaded.card.step), ("ema_student", true, 3));
    assert_eq!(loaded.card.generator.plugin, "mlp");
    let ckpt = condor::train::Checkpoint::load(&summary.checkpoint, &Device::Cpu).unwrap();
    let trainer = Trainer::from_checkpoint(&ckpt, &registry, &Device::Cpu).unwrap();
    let z = normal(&mut condor::core::derived_rng(3, &[]), (16, loaded.generator.latent_dim()), &Device::Cpu).unwrap();
    let draw = |g: &dyn condor::core::Generator, z: &Tensor| g.forward(z, None, false).unwrap();
    let from_trainer = draw(trainer.sampling_generator().unwrap(), &z);
    assert_eq!(common::max_abs_diff(&from_trainer, &draw(loaded.generator.as_ref(), &z)), 0.0);
    let student = trainer.network("student").unwrap().params.named();
    let ema = loaded.params.named();
    assert!(student.iter().zip(&ema).any(|((_, a), (_, b))| common::max_abs_diff(a.as_tensor(), b.as_tensor()) > 0.0));

    // Sampling from a discriminator or an undeclared network is refused when the trainer is built.
    for sampled in ["critic", "nobody"] {
        let message = Trainer::new(config(sampled), &registry, &Device::Cpu).err().unwrap().to_string();
        assert!(message.contains(&format!("samples from `{sampled}`, which it does not declare as a generator")));
    }
}

/// Unrolled GAN's look-ahead steps are undone: after an iteration the discriminator (weights and
/// optimizer state) is exactly what the kept step made it, as without unrolling, while the generator,
/// updated against the look-ahead discriminator, differs.
#[test]
fn unrolling_leaves_the_discriminator_as_its_kept_step_made_it() {
    common::one_thread();
    let registry = condor::registry();
    let after_one_step = |k: usize| {
        let mut config = shipped("ring8.toml");
        config.recipe =
            Some(condor::core::ModelSpec::new("unrolled", serde_json::json!({"unrolling_steps": k})).unwrap());
        let mut trainer = Trainer::new(config, &registry, &Device::Cpu).unwrap();
        let log = trainer.step().unwrap();
        assert_eq!(log.extra.contains_key("d_fake_unrolled"), k > 0);
        (trainer.weights(), trainer.checkpoint_tensors())
    };
    let (plain, plain_state) = after_one_step(0);
    let (unrolled, unrolled_state) = after_one_step(5);
    let bits = |t: &Tensor| -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    };
    let mut compared = 0;
    for (name, t) in &plain {
        if name.starts_with("d.") {
            assert_eq!(bits(t), bits(&unrolled[name]), "{name} differs: the look-ahead was not undone");
            compared += 1;
        }
    }
    assert!(compared >= 2);
    let optimizer = |state: &Vec<(String, Tensor)>| -> Vec<(String, Vec<u32>)> {
        state.iter().filter(|(n, _)| n.starts_with("opt_d.")).map(|(n, t)| (n.clone(), bits(t))).collect()
    };
    let saved = optimizer(&plain_state);
    assert!(!saved.is_empty(), "the discriminator's optimizer state is in the checkpoint");
    assert_eq!(saved, optimizer(&unrolled_state), "the discriminator's optimizer state was restored");
    assert!(plain.keys().filter(|n| n.starts_with("g.")).any(|n| bits(&plain[n]) != bits(&unrolled[n])));
}
