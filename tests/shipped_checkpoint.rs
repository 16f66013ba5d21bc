//! The text-to-bird checkpoint shipped in `weights/` draws the colour it is asked for.
//!
//! It scores 91.0 / 93.1 / 95.1% on latent seeds 0 / 1 / 2 (see weights/birds-dcgan-32.md), 402 of 432
//! images. The test holds the 432 together at the goal, 90% (389), which leaves room for a few images
//! that another CPU's rounding may flip.

use candle_core::Device;
use condor::pipeline::colour_eval::colour_accuracy;
use condor::pipeline::LoadedGenerator;

#[test]
fn the_shipped_checkpoint_draws_birds_of_the_asked_colour() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(condor::txt2img::SHIPPED_CHECKPOINT);
    let loaded = LoadedGenerator::load(&path, &condor::registry(), &Device::Cpu).expect("the shipped checkpoint loads");
    assert!(loaded.config.data.is_captioned(), "the shipped checkpoint is text-conditioned");
    let (mut correct, mut total) = (0, 0);
    for seed in 0..3 {
        // 16 images for each of the 9 body colours ("a red bird", "an orange bird", ...).
        let report = colour_accuracy(&loaded, 16, seed, &Default::default(), &Device::Cpu).unwrap();
        println!("seed {seed}:\n{}", report.to_markdown());
        assert_eq!(report.per_colour.len(), 9);
        assert!(report.per_colour.iter().all(|s| s.total == 16));
        // Every colour is drawn as asked at least half the time: the prompt steers every colour.
        for s in &report.per_colour {
            assert!(s.correct * 2 >= s.total, "seed {seed}, {}: {} of {}", s.prompt, s.correct, s.total);
        }
        correct += report.per_colour.iter().map(|s| s.correct).sum::<usize>();
        total += report.per_colour.iter().map(|s| s.total).sum::<usize>();
    }
    assert_eq!(total, 432);
    assert!(correct * 10 >= total * 9, "{correct} of {total} birds in the asked colour, under 90%");
}
