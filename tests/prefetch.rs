//! Prefetching the next iteration's data on a thread gives exactly the run without it.

mod common;

use candle_core::Device;
use condor::train::{RunConfig, Trainer};

fn weights_after(
    mut config: RunConfig,
    prefetch: bool,
    steps: u64,
) -> std::collections::HashMap<String, candle_core::Tensor> {
    config.schedule.prefetch = prefetch;
    let mut t = Trainer::new(config, &condor::registry(), &Device::Cpu).unwrap();
    for _ in 0..steps {
        t.step().unwrap();
    }
    t.weights()
}

#[test]
fn prefetched_runs_are_the_runs_without_prefetch() {
    common::one_thread();
    // Two discriminator batches per iteration, GAN-CLS, noise: every draw the trainer makes.
    let ring = common::shardable_config(8);
    assert!(common::bit_identical(&weights_after(ring.clone(), true, 8), &weights_after(ring.clone(), false, 8)));
    // Stepping past the configured steps (no request is made for them) still works.
    assert!(common::bit_identical(&weights_after(ring.clone(), true, 10), &weights_after(ring, false, 10)));
    // Captioned images with embeddings from the text encoder's cache.
    let tmp = tempfile::tempdir().unwrap();
    let birds = common::tiny_birds(3, tmp.path());
    assert!(common::bit_identical(&weights_after(birds.clone(), true, 3), &weights_after(birds, false, 3)));
}
