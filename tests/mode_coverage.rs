//! The measurable first task: MLP GANs on 2D Gaussian mixtures, scored by mode coverage.

mod common;

use candle_core::Device;
use condor::data::DatasetConfig;
use condor::eval::mixture::mixture_coverage;
use condor::train::Trainer;

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
