//! The text-to-bird checkpoint shipped in `weights/` draws the colour it is asked for.
//!
//! It scores 86.8% with these settings (see weights/birds-dcgan-32.md); the test holds it at 84%,
//! leaving room for a few images that another CPU's rounding may flip. The goal for this checkpoint
//! is 90%, which it does not reach.

use candle_core::Device;
use condor::pipeline::colour_eval::colour_accuracy;
use condor::pipeline::LoadedGenerator;

#[test]
fn the_shipped_checkpoint_draws_birds_of_the_asked_colour() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(condor::txt2img::SHIPPED_CHECKPOINT);
    let loaded = LoadedGenerator::load(&path, &condor::registry(), &Device::Cpu).expect("the shipped checkpoint loads");
    assert!(loaded.config.data.is_captioned(), "the shipped checkpoint is text-conditioned");
    // 16 images for each of the 9 body colours ("a red bird", "an orange bird", ...).
    let report = colour_accuracy(&loaded, 16, 0, &Default::default(), &Device::Cpu).unwrap();
    println!("{}", report.to_markdown());
    assert_eq!(report.per_colour.len(), 9);
    assert!(report.per_colour.iter().all(|s| s.total == 16));
    assert!(report.accuracy() >= 0.84, "colour accuracy {:.3} < 0.84:\n{}", report.accuracy(), report.to_markdown());
    // Every colour is drawn as asked at least a third of the time: the prompt steers every colour.
    for s in &report.per_colour {
        assert!(s.correct * 3 >= s.total, "{}: {} of {}", s.prompt, s.correct, s.total);
    }
}
