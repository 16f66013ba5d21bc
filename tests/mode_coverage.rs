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
