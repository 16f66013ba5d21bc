//! The measurable first task: MLP GANs on 2D Gaussian mixtures, scored by mode coverage.

mod common;

use candle_core::Device;
use condor::data::DatasetConfig;
use condor::eval::mixture::mixture_coverage;
use condor::train::{RunConfig, Trainer};

/// Trains and returns the coverage of 2,000 samples; a mode counts as hit with at least 20 of them
/// within 3 sigma (the fair share is 250), stricter than a single sample.
fn train_and_score(config: condor::train::RunConfig) -> condor::metrics::ModeCoverage {
    common::one_thread();
    let registry = condor::registry();
    let data = config.data.clone();
    let mut trainer = Trainer::new(config, &registry, &Device::Cpu).unwrap();
    while trainer.step_count() < trainer.config().steps {
        trainer.step().unwrap();
    }
    let coverage = mixture_coverage(trainer.sampling_generator().unwrap(), &data, 2000, 20, 1, &Device::Cpu).unwrap();
    println!("{}", serde_json::to_string(&coverage).unwrap());
    coverage
}

#[test]
fn unconditional_mlp_gan_covers_the_ring() {
    let c = train_and_score(common::fast_mixture_config(DatasetConfig::ring8(), 3000, 256, 256));
    assert!(c.modes_hit >= 7, "only {} of 8 modes: {:?}", c.modes_hit, c.per_mode);
    assert!(c.high_quality > 0.5, "high-quality share {}", c.high_quality);
}

#[test]
fn conditional_mlp_gan_puts_samples_in_the_requested_mode() {
    let config = common::fast_mixture_config(DatasetConfig::ring8().with_conditional(true), 3000, 256, 128);
    let c = train_and_score(config);
    assert_eq!(c.modes_hit, 8, "{:?}", c.per_mode);
    let share = c.in_requested_mode.unwrap();
    assert!(share >= 0.9, "only {share} of samples in the requested mode");
}

/// Mean distance of 1,000 samples from the ring of radius 2 after `steps` steps of the ring-8 run that
/// `setup` adjusts (at learning rate `lr`), and that distance for the untrained generator.
fn distance_from_ring(setup: impl FnOnce(&mut RunConfig), steps: u64, lr: f64) -> (f32, f32) {
    common::one_thread();
    let mut config = common::fast_mixture_config(DatasetConfig::ring8(), steps, 256, 256);
    setup(&mut config);
    for o in [&mut config.optimizer.generator, &mut config.optimizer.discriminator] {
        o.lr = lr;
        o.lr_decay = condor::train::LrDecay::None;
    }
    let mixture = config.data.mixture().unwrap();
    let mut trainer = Trainer::new(config, &condor::registry(), &Device::Cpu).unwrap();
    let distance = |trainer: &Trainer| {
        let g = trainer.sampling_generator().unwrap();
        let mut rng = condor::core::derived_rng(7, &[]);
        let (points, _) = condor::infer::sample::mixture_samples(g, &mixture, 1000, &mut rng, &Device::Cpu).unwrap();
        points.iter().map(|[x, y]| ((x * x + y * y).sqrt() - 2.0).abs()).sum::<f32>() / points.len() as f32
    };
    let before = distance(&trainer);
    while trainer.step_count() < trainer.config().steps {
        trainer.step().unwrap();
    }
    (before, distance(&trainer))
}

#[test]
fn every_objective_and_penalty_draws_the_generator_onto_the_ring() {
    use condor::train::regularizers::{GradientPenaltyConfig, PenaltyPoints};
    use condor::train::{LossKind, TrainingConfig};
    let objective = |loss| TrainingConfig { loss, ..Default::default() };
    let penalised = |loss, points| TrainingConfig {
        loss,
        gradient_penalty: Some(GradientPenaltyConfig { points, ..Default::default() }),
        ..Default::default()
    };
    let runs = [
        ("boundary-seeking", objective(LossKind::BoundarySeeking)),
        ("KL", objective(LossKind::KullbackLeibler)),
        ("reverse KL", objective(LossKind::ReverseKullbackLeibler)),
        ("Pearson chi-squared", objective(LossKind::PearsonChiSquared)),
        ("squared Hellinger", objective(LossKind::SquaredHellinger)),
        ("Jensen-Shannon", objective(LossKind::JensenShannon)),
        ("DRAGAN", penalised(LossKind::NonSaturating, PenaltyPoints::Perturbed)),
    ];
    let mut failed = Vec::new();
    for (name, training) in runs {
        let (before, after) = distance_from_ring(|c| c.training = training, 600, 1e-3);
        println!("{name}: mean distance from the ring {before:.3} -> {after:.3}");
        if after.is_nan() || after >= 0.75 * before {
            failed.push(format!("{name}: {before:.3} -> {after:.3}"));
        }
    }
    assert!(failed.is_empty(), "not a quarter nearer the ring after 600 steps: {failed:?}");
}

/// The recipes of other objectives, with their defaults: Qi's Loss-Sensitive GAN (the discriminator
/// as a learned loss with a distance margin) and EBGAN (an autoencoder's energy, a margin and the
/// pulling-away term).
#[test]
fn the_loss_sensitive_and_energy_based_recipes_draw_the_generator_onto_the_ring() {
    let mut failed = Vec::new();
    for recipe in ["loss_sensitive", "energy_based"] {
        let set =
            |c: &mut RunConfig| c.recipe = Some(condor::core::ModelSpec::new(recipe, serde_json::json!({})).unwrap());
        let (before, after) = distance_from_ring(set, 600, 1e-3);
        println!("{recipe}: mean distance from the ring {before:.3} -> {after:.3}");
        if after.is_nan() || after >= 0.75 * before {
            failed.push(format!("{recipe}: {before:.3} -> {after:.3}"));
        }
    }
    assert!(failed.is_empty(), "not a quarter nearer the ring after 600 steps: {failed:?}");
}

/// Unrolled GAN's first-order surrogate (two look-ahead steps here, to keep the test short) still
/// draws the generator onto the ring.
#[test]
fn the_unrolled_recipe_draws_the_generator_onto_the_ring() {
    let spec = condor::core::ModelSpec::new("unrolled", serde_json::json!({"unrolling_steps": 2})).unwrap();
    let (before, after) = distance_from_ring(|c| c.recipe = Some(spec), 600, 1e-3);
    println!("unrolled (k = 2): mean distance from the ring {before:.3} -> {after:.3}");
    assert!(after < 0.75 * before, "not a quarter nearer the ring after 600 steps: {before:.3} -> {after:.3}");
}

/// PacGAN: the discriminator scores pairs of samples; the generator still learns the ring.
#[test]
fn a_packed_discriminator_draws_the_generator_onto_the_ring() {
    let pack = |c: &mut RunConfig| c.discriminator = c.discriminator.clone().packed(2);
    let (before, after) = distance_from_ring(pack, 600, 1e-3);
    println!("pack 2: mean distance from the ring {before:.3} -> {after:.3}");
    assert!(after < 0.75 * before, "not a quarter nearer the ring after 600 steps: {before:.3} -> {after:.3}");
}

/// WGAN-GP moves slowly on the ring (the critic's gradients are held near norm 1); what its penalty
/// must do within a short run is hold them there.
#[test]
fn wgan_gp_holds_the_critics_gradient_norm_near_one() {
    use condor::train::regularizers::GradientPenaltyConfig;
    common::one_thread();
    let mut config = common::fast_mixture_config(DatasetConfig::ring8(), 200, 256, 256);
    config.training.loss = condor::train::LossKind::Wasserstein;
    config.training.d_steps = 5;
    config.training.gradient_penalty = Some(GradientPenaltyConfig::default());
    for o in [&mut config.optimizer.generator, &mut config.optimizer.discriminator] {
        (o.lr, o.beta1, o.beta2) = (1e-3, 0.0, 0.9);
    }
    let mut trainer = Trainer::new(config, &condor::registry(), &Device::Cpu).unwrap();
    let mut penalties = Vec::new();
    while trainer.step_count() < trainer.config().steps {
        penalties.push(trainer.step().unwrap().extra["gradient_penalty"]);
    }
    let late = penalties[150..].iter().sum::<f32>() / 50.0;
    println!("WGAN-GP penalty: step 1 {:.4}, steps 151-200 {late:.4}", penalties[0]);
    // lambda E (||g|| - 1)^2 = 10 * 0.05: gradient norms about 0.2 from 1 (root mean square).
    assert!(late < 0.5 && late < penalties[0] / 4.0, "{} -> {late}", penalties[0]);
}

/// The nearest mode of each 2D point.
fn nearest_modes(points: &[f32], centres: &[[f32; 2]]) -> Vec<usize> {
    let distance = |p: &[f32], c: &[f32; 2]| (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2);
    let nearest =
        |p: &[f32]| (0..centres.len()).min_by(|&a, &b| distance(p, &centres[a]).total_cmp(&distance(p, &centres[b])));
    points.chunks(2).map(|p| nearest(p).unwrap()).collect()
}

/// InfoGAN on the ring with an 8-way categorical code and no labels: after training, the code alone
/// picks the mode a sample lands in, and Q's head sorts real points into the modes (each scored under
/// the best matching of code values to modes).
#[test]
fn infogans_categorical_code_finds_the_ring_modes_without_labels() {
    use condor::core::{derived_rng, rng::normal, LatentCodes};
    use condor::metrics::clustering::matched_accuracy;
    use condor::train::infogan::{predict_categories, InfoGanConfig};
    common::one_thread();
    let info = InfoGanConfig { categorical: 8, continuous: 1, ..Default::default() };
    let mut config = common::fast_mixture_config(DatasetConfig::ring8(), 1500, 256, 256);
    let network = serde_json::json!({"plugin": "mlp", "config": {"hidden": [256, 256]}});
    let recipe = serde_json::json!({"categorical": 8, "continuous": 1, "network": network});
    config.recipe = Some(condor::core::ModelSpec::new("infogan", recipe).unwrap());
    let mixture = config.data.mixture().unwrap();
    let mut trainer = Trainer::new(config, &condor::registry(), &Device::Cpu).unwrap();
    let codes = LatentCodes { categorical: 8, continuous: 1 };
    // 100 latents of each category, over noise and a continuous code drawn from seed 3.
    let mut rng = derived_rng(3, &[]);
    let noise = normal(&mut rng, (800, 16 - codes.width()), &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
    let mut categories = Vec::new();
    let mut rows = Vec::new();
    for (i, n) in noise.iter().enumerate() {
        let c = i / 100;
        rows.push(codes.latent(c, &[(i % 100) as f64 / 50.0 - 0.99], n).unwrap());
        categories.push(c);
    }
    let z = candle_core::Tensor::new(rows, &Device::Cpu).unwrap();
    let (real, modes) = mixture.sample(2000, &mut derived_rng(4, &[]));
    let real = candle_core::Tensor::from_vec(real, (2000, 2), &Device::Cpu).unwrap();
    let scores = |trainer: &Trainer| {
        let points = trainer.sampling_generator().unwrap().forward(&z, None, false).unwrap();
        let landed = nearest_modes(&points.flatten_all().unwrap().to_vec1::<f32>().unwrap(), mixture.centers());
        let by_code = matched_accuracy(&categories, &landed, 8, 8).unwrap().accuracy();
        let d = condor::train::networks::as_network("d", &trainer.network("d").unwrap().model).unwrap();
        let found = predict_categories(&info, d, &real, 500).unwrap();
        (by_code, matched_accuracy(&found, &modes, 8, 8).unwrap().accuracy())
    };
    let before = scores(&trainer);
    while trainer.step_count() < trainer.config().steps {
        trainer.step().unwrap();
    }
    let after = scores(&trainer);
    println!(
        "InfoGAN on ring8: samples in their code's mode {:.3} -> {:.3}; real points Q sorts right {:.3} -> {:.3}",
        before.0, after.0, before.1, after.1
    );
    // Untrained, the code picks the mode for about 1 sample in 5; an untrained Q already splits the
    // ring into arcs of neighbouring modes, about half right.
    assert!(after.0 >= 0.75, "the code picks the mode for only {:.3} of samples", after.0);
    assert!(after.1 >= 0.75 && after.1 > before.1 + 0.2, "Q sorts {:.3} -> {:.3} of real points", before.1, after.1);
}

/// BiGAN on the ring: the encoder learns to invert the generator, so that a real point's
/// reconstruction `G(E(x))` lands in the point's own mode far more often than the untrained pair's.
#[test]
fn bigans_encoder_inverts_the_generator_on_the_ring() {
    use condor::core::derived_rng;
    common::one_thread();
    let mut config = common::fast_mixture_config(DatasetConfig::ring8(), 1500, 256, 256);
    let mlp = serde_json::json!({"plugin": "mlp", "config": {"hidden": [256, 256]}});
    let recipe = serde_json::json!({"encoder": mlp, "network": mlp});
    config.recipe = Some(condor::core::ModelSpec::new("bigan", recipe).unwrap());
    // A latent as wide as the data: an encoder of 2D points cannot fill a wider Gaussian.
    config.generator =
        condor::core::ModelSpec::new("mlp", serde_json::json!({"latent_dim": 2, "hidden": [128, 128]})).unwrap();
    let mixture = config.data.mixture().unwrap();
    let mut trainer = Trainer::new(config, &condor::registry(), &Device::Cpu).unwrap();
    let (real, modes) = mixture.sample(1000, &mut derived_rng(4, &[]));
    let real = candle_core::Tensor::from_vec(real, (1000, 2), &Device::Cpu).unwrap();
    let same_mode = |trainer: &Trainer| {
        let e = condor::train::networks::as_network("e", &trainer.network("e").unwrap().model).unwrap();
        let z = e.forward(&real, None, false).unwrap();
        let back = trainer.sampling_generator().unwrap().forward(&z, None, false).unwrap();
        let landed = nearest_modes(&back.flatten_all().unwrap().to_vec1::<f32>().unwrap(), mixture.centers());
        landed.iter().zip(&modes).filter(|(a, b)| a == b).count() as f64 / modes.len() as f64
    };
    let before = same_mode(&trainer);
    while trainer.step_count() < trainer.config().steps {
        trainer.step().unwrap();
    }
    let after = same_mode(&trainer);
    println!("BiGAN on ring8: reconstructions in the input's mode {before:.3} -> {after:.3}");
    assert!(after >= 0.6, "reconstructions in the input's mode {before:.3} -> {after:.3}");
}
