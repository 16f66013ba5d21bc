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

use std::collections::HashMap;

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

// ---------------------------------------------------------------------------------------------------
// Image-to-image translation: CycleGAN and DiscoGAN on red and blue birds.

/// A small translation run on red and blue birds at 16 px: `recipe` with its paper's networks, narrow.
fn translation_config(recipe: &str, steps: u64) -> RunConfig {
    // DCGAN's discriminator starts at 32 px.
    let size = if recipe == "cyclegan" { 16 } else { 32 };
    let (generator, discriminator) = match recipe {
        "cyclegan" => (
            r#"plugin = "resnet_translator"
               config = { width = 8, downsamplings = 1, blocks = 2 }"#,
            r#"plugin = "patch_discriminator"
               config = { width = 8 }"#,
        ),
        _ => (
            r#"plugin = "encoder_decoder"
               config = { width = 8 }"#,
            r#"plugin = "dcgan"
               config = { width = 8 }"#,
        ),
    };
    let toml = format!(
        r#"
        steps = {steps}
        batch_size = 4
        [data]
        kind = "unpaired"
        domains = "red_blue"
        count = 64
        size = {size}
        [recipe]
        plugin = "{recipe}"
        config = {{}}
        [generator]
        {generator}
        [discriminator]
        {discriminator}
        [schedule]
        prefetch = false
        sample_every = 0
        "#
    );
    let mut config = RunConfig::from_toml(&toml).unwrap();
    config.optimizer.generator.lr = 1e-3;
    config.optimizer.discriminator.lr = 1e-3;
    config
}

/// Domain A's and B's images of the first batch of `trainer`'s data.
fn first_domains(trainer: &Trainer) -> (Tensor, Tensor) {
    let mut rng = condor::core::derived_rng(0, &[]);
    let batch = trainer.data().batch(0, 4, &mut rng, &Device::Cpu).unwrap();
    assert_eq!(batch.labels.as_deref(), Some(&[0, 0, 0, 0, 1, 1, 1, 1][..]));
    (batch.samples.narrow(0, 0, 4).unwrap(), batch.samples.narrow(0, 4, 4).unwrap())
}

/// Network `name` of `trainer`, as a network.
fn translation_net<'a>(trainer: &'a Trainer, name: &str) -> &'a dyn condor::core::Network {
    match &trainer.network(name).unwrap().model {
        condor::core::Model::Network(n) => n.as_ref(),
        _ => panic!("`{name}` is not a network"),
    }
}

/// Discriminator `name` of `trainer`.
fn translation_disc<'a>(trainer: &'a Trainer, name: &str) -> &'a dyn condor::core::Discriminator {
    match &trainer.network(name).unwrap().model {
        condor::core::Model::Discriminator(d) => d.as_ref(),
        _ => panic!("`{name}` is not a discriminator"),
    }
}

/// The first batch's domains `a`, `b`, their translations `G_AB(a)`, `G_BA(b)` and DiscoGAN's
/// reconstruction loss of them, before any update.
struct FirstTranslations {
    a: Tensor,
    b: Tensor,
    fake_a: Tensor,
    fake_b: Tensor,
    reconstruction: f32,
}

fn first_translations(trainer: &Trainer) -> FirstTranslations {
    use condor::train::translation::mse;
    let (a, b) = first_domains(trainer);
    let [g_ab, g_ba] = ["g_ab", "g_ba"].map(|n| translation_net(trainer, n));
    let (fake_b, fake_a) = (g_ab.forward(&a, None, true).unwrap(), g_ba.forward(&b, None, true).unwrap());
    let reconstruction = scalar(mse(&g_ba.forward(&fake_b, None, true).unwrap(), &a).unwrap())
        + scalar(mse(&g_ab.forward(&fake_a, None, true).unwrap(), &b).unwrap());
    FirstTranslations { a, b, fake_a, fake_b, reconstruction }
}

fn scalar(t: Tensor) -> f32 {
    t.to_scalar::<f32>().unwrap()
}

fn close(logged: f32, manual: f32, what: &str) {
    assert!((logged - manual).abs() <= 1e-5 * manual.abs().max(1.0), "{what}: logged {logged}, computed {manual}");
}

#[test]
fn cyclegan_logs_the_paper_s_losses_of_its_first_batch() {
    use condor::train::translation::{l1, mse_to};
    common::one_thread();
    let mut trainer = Trainer::new(translation_config("cyclegan", 1), &condor::registry(), &Device::Cpu).unwrap();
    let (a, b) = first_domains(&trainer);
    let [g, f, d_a, d_b] = ["g_ab", "g_ba", "d_a", "d_b"].map(|n| translation_net(&trainer, n));
    let run = |n: &dyn condor::core::Network, x: &Tensor| n.forward(x, None, true).unwrap();
    let (fake_b, fake_a) = (run(g, &a), run(f, &b));
    let gan = scalar(mse_to(&run(d_b, &fake_b), 1.0).unwrap()) + scalar(mse_to(&run(d_a, &fake_a), 1.0).unwrap());
    let cycle = scalar(l1(&run(f, &fake_b), &a).unwrap()) + scalar(l1(&run(g, &fake_a), &b).unwrap());
    let identity = scalar(l1(&run(g, &b), &b).unwrap()) + scalar(l1(&run(f, &a), &a).unwrap());
    let half_lsgan = |d, real: &Tensor, fake: &Tensor| {
        0.5 * (scalar(mse_to(&run(d, real), 1.0).unwrap()) + scalar(mse_to(&run(d, fake), 0.0).unwrap()))
    };
    // The discriminators see this step's translations (the history is still filling).
    let (loss_d_a, loss_d_b) = (half_lsgan(d_a, &a, &fake_a), half_lsgan(d_b, &b, &fake_b));
    let log = trainer.step().unwrap();
    close(log.extra["loss_gan"], gan, "GAN loss");
    close(log.extra["cycle"], cycle, "cycle loss");
    close(log.extra["identity"], identity, "identity loss");
    close(log.loss_g, gan + 10.0 * cycle + 5.0 * identity, "translator loss: lambda 10, identity 0.5 lambda");
    close(log.extra["loss_d_a"], loss_d_a, "D_A loss");
    close(log.extra["loss_d_b"], loss_d_b, "D_B loss");
    close(log.loss_d, loss_d_a + loss_d_b, "discriminator loss");
}

#[test]
fn discogan_logs_the_paper_s_losses_of_its_first_batch() {
    common::one_thread();
    let mut trainer = Trainer::new(translation_config("discogan", 1), &condor::registry(), &Device::Cpu).unwrap();
    let FirstTranslations { a, b, fake_a, fake_b, reconstruction } = first_translations(&trainer);
    let bce = |logits: Tensor, target: f32| -> f32 {
        let p = logits.to_vec1::<f32>().unwrap();
        p.iter().map(|&x| -(target * sigmoid(x).ln() + (1.0 - target) * (1.0 - sigmoid(x)).ln())).sum::<f32>()
            / p.len() as f32
    };
    let d_loss = |d: &dyn condor::core::Discriminator, real: &Tensor, fake: &Tensor| {
        bce(d.forward(real, None, true).unwrap(), 1.0) + bce(d.forward(fake, None, true).unwrap(), 0.0)
    };
    let loss_d =
        d_loss(translation_disc(&trainer, "d_a"), &a, &fake_a) + d_loss(translation_disc(&trainer, "d_b"), &b, &fake_b);
    let log = trainer.step().unwrap();
    close(log.loss_d, loss_d, "discriminator loss");
    close(log.extra["reconstruction"], reconstruction, "reconstruction loss");
    close(log.loss_g, log.extra["loss_gan"] + reconstruction, "translator loss: GAN + reconstruction");
}

/// The authors' code's DiscoGAN: feature matching, a reconstruction curriculum and alternating
/// updates, each checked on a 3-step run.
#[test]
fn discogan_code_options_alternate_updates_and_weigh_feature_matching() {
    use condor::train::losses::feature_matching;
    common::one_thread();
    let mut config = translation_config("discogan", 3);
    config.recipe.as_mut().unwrap().config = serde_json::json!({
        "feature_matching_weight": 9.0,
        "reconstruction_weight": 10.0,
        "curriculum": { "steps": 2, "reconstruction_weight": 0.5 },
        "discriminator_every": 3,
    });
    let mut trainer = Trainer::new(config, &condor::registry(), &Device::Cpu).unwrap();
    let FirstTranslations { a, b, fake_a, fake_b, reconstruction } = first_translations(&trainer);
    let matching = |d: &dyn condor::core::Discriminator, real: &Tensor, fake: &Tensor| -> f32 {
        let (logits, f_real) = d.forward_with_features(real, None, true).unwrap();
        assert_eq!(logits.to_vec1::<f32>().unwrap(), d.forward(real, None, true).unwrap().to_vec1::<f32>().unwrap());
        let (_, f_fake) = d.forward_with_features(fake, None, true).unwrap();
        let (f_real, f_fake) = (f_real.unwrap(), f_fake.unwrap());
        // The dcgan discriminator at 32 px: two normalised stages, at 8x8 and 4x4.
        assert_eq!(f_real.iter().map(|f| f.dims()[2]).collect::<Vec<_>>(), [8, 4]);
        f_real.iter().zip(&f_fake).map(|(r, f)| scalar(feature_matching(r, f).unwrap())).sum()
    };
    let fm = matching(translation_disc(&trainer, "d_a"), &a, &fake_a)
        + matching(translation_disc(&trainer, "d_b"), &b, &fake_b);
    // Values, not tensors: the optimizer updates the variables in place.
    let values = |trainer: &Trainer| -> HashMap<String, Vec<f32>> {
        trainer.weights().into_iter().map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect()
    };
    let changed = |before: &HashMap<String, Vec<f32>>, after: &HashMap<String, Vec<f32>>, prefix: &str| -> bool {
        // Batch norm's running statistics move with every training-mode pass: compare trained weights.
        let names: Vec<_> = before.keys().filter(|n| n.starts_with(prefix) && !n.contains("running")).collect();
        assert!(!names.is_empty(), "no weights under `{prefix}`");
        names.iter().any(|n| before[*n] != after[*n])
    };
    let moved = |trainer: &mut Trainer| {
        let before = values(trainer);
        let log = trainer.step().unwrap();
        let after = values(trainer);
        let nets = ["g_ab.", "g_ba.", "d_a.", "d_b."].map(|p| changed(&before, &after, p));
        (log, nets)
    };
    // Iteration 0 updates the discriminators alone; its log holds both losses of one forward pass.
    let (log, nets) = moved(&mut trainer);
    assert_eq!(nets, [false, false, true, true], "iteration 0: translators frozen, discriminators updated");
    close(log.extra["feature_matching"], fm, "feature matching, summed over the hidden layers");
    close(log.extra["reconstruction"], reconstruction, "reconstruction loss");
    close(log.loss_g, log.extra["loss_gan"] + 9.0 * fm + 0.5 * reconstruction, "translator loss in the curriculum");
    // Iterations 1 and 2 update the translators alone; iteration 2 is past the curriculum.
    let (_, nets) = moved(&mut trainer);
    assert_eq!(nets, [true, true, false, false], "iteration 1: translators updated, discriminators frozen");
    let (log, _) = moved(&mut trainer);
    let (gan, fm, rec) = (log.extra["loss_gan"], log.extra["feature_matching"], log.extra["reconstruction"]);
    close(log.loss_g, gan + 9.0 * fm + 10.0 * rec, "translator loss after the curriculum");
}

#[test]
fn discogan_options_are_checked() {
    common::one_thread();
    let with = |recipe: serde_json::Value, mlp: bool| {
        let mut config = translation_config("discogan", 1);
        config.recipe.as_mut().unwrap().config = recipe;
        if mlp {
            config.discriminator = serde_json::from_value(serde_json::json!({ "plugin": "mlp" })).unwrap();
        }
        Trainer::new(config, &condor::registry(), &Device::Cpu).and_then(|mut t| t.step().map(|_| ()))
    };
    let err = with(serde_json::json!({ "discriminator_every": 0 }), false).unwrap_err().to_string();
    assert!(err.contains("discriminator_every must be at least 1"), "{err}");
    let err = with(serde_json::json!({ "feature_matching_weight": -1.0 }), false).unwrap_err().to_string();
    assert!(err.contains("feature_matching_weight"), "{err}");
    let err = with(serde_json::json!({ "feature_matching_weight": 1.0 }), true).unwrap_err().to_string();
    assert!(err.contains("exposes its hidden features"), "{err}");
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn a_cyclegan_run_resumes_bit_exactly_with_its_image_histories() {
    common::one_thread();
    let config = |steps| {
        let mut c = translation_config("cyclegan", steps);
        // A history of 6 fills in two steps of 4 and then swaps.
        c.recipe.as_mut().unwrap().config = serde_json::json!({ "history": 6 });
        c.optimizer.generator.lr_decay = condor::train::LrDecay::HoldThenLinear;
        c
    };
    let (straight, resumed) = common::straight_and_resumed(config, 3, |ckpt| {
        assert_eq!(ckpt.group("recipe")["history_a"].dims(), [6, 3, 16, 16]);
        assert!(ckpt.card.is_none(), "a translation checkpoint has no generator card");
    });
    common::assert_identical(&straight.weights(), &resumed.weights());
}

/// Share of `images` (red birds of the test split translated to blue, rows in [-1, 1]) whose plumage
/// pixels average nearest to blue among the renderer's colours, of the birds that show plumage (at
/// 16 px some show only outline).
fn share_drawn_blue(images: &Tensor, birds: &[condor::data::birds::RenderedBird]) -> f64 {
    use condor::data::birds::{Colour, Part};
    let rows = images.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
    let blue = rows.iter().zip(birds).filter(|(px, bird)| {
        let n = bird.size * bird.size;
        let mask: Vec<usize> =
            (0..n).filter(|&i| matches!(bird.parts[i], Part::Body | Part::Wing | Part::Head | Part::Belly)).collect();
        !mask.is_empty() && {
            let mean =
                |c: usize| mask.iter().map(|&i| (px[c * n + i] + 1.0) / 2.0).sum::<f32>() / mask.len().max(1) as f32;
            Colour::nearest([mean(0), mean(1), mean(2)]) == Colour::Blue
        }
    });
    let visible = birds
        .iter()
        .filter(|b| b.parts.iter().any(|p| matches!(p, Part::Body | Part::Wing | Part::Head | Part::Belly)));
    blue.count() as f64 / visible.count() as f64
}

#[test]
fn a_short_cyclegan_run_turns_red_birds_blue_and_its_checkpoint_translates_the_same() {
    use condor::data::unpaired::{BirdDomain, Look};
    common::one_thread();
    let registry = condor::registry();
    let tmp = tempfile::tempdir().unwrap();
    let steps = 1000;
    let mut config = translation_config("cyclegan", steps);
    config.schedule.checkpoint_every = steps;
    config.schedule.sample_every = steps;
    let summary =
        condor::train::train(config, &registry, &Device::Cpu, RunOptions::quiet(tmp.path().join("cg"), false)).unwrap();
    let translator = condor::infer::Translator::load(&summary.checkpoint, &registry, &Device::Cpu).unwrap();
    assert_eq!(translator.card().domains, ["red".to_string(), "blue".to_string()]);

    // Red test birds, never seen in training.
    let world = condor::data::birds::SyntheticBirds::new(0, condor::data::birds::BirdSplit::Test);
    let red = BirdDomain { world, first: 0, len: 40, look: Look::Plumage(condor::data::birds::Colour::Red) };
    let birds: Vec<_> = (0..40).map(|i| red.render_as(i, red.look, 16)).collect();
    let pixels: Vec<f32> = birds.iter().flat_map(|b| b.pixels.iter().map(|v| v * 2.0 - 1.0)).collect();
    let inputs = Tensor::from_vec(pixels, (40, 3, 16, 16), &Device::Cpu).unwrap();
    let fresh = Trainer::new(translation_config("cyclegan", 1), &registry, &Device::Cpu).unwrap();
    let before = share_drawn_blue(&translation_net(&fresh, "g_ab").forward(&inputs, None, false).unwrap(), &birds);
    let after = share_drawn_blue(&translator.translate(&inputs, false).unwrap(), &birds);
    assert!(before < 0.2 && after > 0.8, "red birds drawn blue: {before} before training, {after} after");

    // The checkpoint's translators are the trainer's.
    let ckpt = condor::train::Checkpoint::load(&summary.checkpoint, &Device::Cpu).unwrap();
    let trainer = Trainer::from_checkpoint(&ckpt, &registry, &Device::Cpu).unwrap();
    let theirs = translation_net(&trainer, "g_ba").forward(&inputs, None, false).unwrap();
    assert_eq!(common::max_abs_diff(&translator.translate(&inputs, true).unwrap(), &theirs), 0.0);
    assert!(tmp.path().join(format!("cg/samples/step-{steps:09}.png")).is_file(), "the translation grid");

    // Bad inputs: images of another size, a text-to-image model, a translation model as a generator.
    let wrong = Tensor::zeros((1, 3, 32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = translator.translate(&wrong, false).err().unwrap().to_string();
    assert!(e.contains("translates 3 x 16 x 16 images"), "{e}");
    let text_model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/birds-dcgan-32.safetensors");
    let e = condor::infer::Translator::load(&text_model, &registry, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("text-to-image model"), "{e}");
    let e =
        condor::infer::LoadedGenerator::load(&summary.checkpoint, &registry, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("translation model"), "{e}");
    let not_an_image = tmp.path().join("notes.png");
    std::fs::write(&not_an_image, b"not a picture").unwrap();
    let e = translator.read_images(&[not_an_image], &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("notes.png"), "{e}");
}

#[test]
fn translation_recipes_and_unpaired_data_refuse_each_other_s_partners() {
    let registry = condor::registry();
    let mut birds = translation_config("cyclegan", 1);
    birds.data = common::tiny_birds_data();
    let e = Trainer::new(birds, &registry, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("need unpaired data") || e.contains("unpaired"), "{e}");
    let mut adversarial = translation_config("cyclegan", 1);
    adversarial.recipe = None;
    adversarial.generator = condor::core::ModelSpec::new("mlp", serde_json::json!({})).unwrap();
    adversarial.discriminator = condor::core::ModelSpec::new("mlp", serde_json::json!({})).unwrap();
    let e = Trainer::new(adversarial, &registry, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("trains the translation recipes"), "{e}");
}
