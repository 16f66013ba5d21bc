//! Data-parallel training: ranks that split the global batch and average gradients follow the
//! single-process run. The ranks here are threads joined by the in-process `common::LocalGroup`
//! (multi-GPU runs use NCCL through the same `Collective` trait; tests/gpu.rs runs that path).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use condor::train::{Checkpoint, Collective, RunConfig, RunOptions, SingleProcess, Trainer};

/// `steps` steps of `config` on one process.
fn single(config: &RunConfig, steps: u64) -> HashMap<String, Tensor> {
    let mut t = Trainer::new(config.clone(), &condor::registry(), &Device::Cpu).unwrap();
    for _ in 0..steps {
        t.step().unwrap();
    }
    t.weights()
}

/// `steps` steps of `config` on `world` ranks (threads); every rank's weights, by rank.
fn parallel(config: &RunConfig, world: usize, steps: u64) -> Vec<HashMap<String, Tensor>> {
    let group = common::LocalGroup::new(world);
    let handles: Vec<_> = (0..world)
        .map(|rank| {
            let (config, member) = (config.clone(), group.rank(rank));
            std::thread::spawn(move || {
                let mut t = Trainer::new(config, &condor::registry(), &Device::Cpu).unwrap();
                t.join(Arc::new(member)).unwrap();
                for _ in 0..steps {
                    t.step().unwrap();
                }
                common::to_host(t.weights())
            })
        })
        .collect();
    handles.into_iter().map(|h| common::from_host(h.join().unwrap())).collect()
}

#[test]
fn a_group_of_one_is_the_single_process_run_bit_for_bit() {
    common::one_thread();
    // The text-to-image recipe (batch norm, GAN-CLS, GAN-INT, conditioning augmentation, EMA) through the
    // all-reduce path with a world of one.
    let tmp = tempfile::tempdir().unwrap();
    let config = common::tiny_birds(3, tmp.path());
    let alone = single(&config, 3);
    let mut grouped = Trainer::new(config, &condor::registry(), &Device::Cpu).unwrap();
    grouped.join(Arc::new(SingleProcess)).unwrap();
    for _ in 0..3 {
        grouped.step().unwrap();
    }
    assert!(common::bit_identical(&alone, &grouped.weights()));
    // And the ring recipe through the threaded group of one.
    assert!(common::bit_identical(
        &parallel(&common::shardable_config(4), 1, 4)[0],
        &single(&common::shardable_config(4), 4)
    ));
}

#[test]
fn two_and_four_ranks_follow_the_single_process_run() {
    common::one_thread();
    let steps = 30;
    let config = common::shardable_config(steps);
    let reference = single(&config, steps);
    let start = single(&config, 0);
    let moved = common::max_difference(&reference, &start);
    assert!(moved > 0.05, "training moved the weights by {moved}");
    for world in [2, 4] {
        let ranks = parallel(&config, world, steps);
        for (rank, weights) in ranks.iter().enumerate() {
            assert!(common::bit_identical(weights, &ranks[0]), "rank {rank} of {world} differs from rank 0");
        }
        let gap = common::max_difference(&ranks[0], &reference);
        eprintln!("{world} ranks: largest weight difference from one process {gap:e} (training moved weights by up to {moved})");
        assert!(gap < 1e-5, "{world} ranks are {gap} away from one process (training moved weights by {moved})");
    }
}

#[test]
fn ranks_with_batch_norm_keep_identical_state() {
    common::one_thread();
    let mut config = common::shardable_config(10);
    config.generator.config["batch_norm"] = true.into();
    let ranks = parallel(&config, 2, 10);
    assert!(ranks[0].keys().any(|n| n.ends_with("running_mean")));
    assert!(common::bit_identical(&ranks[0], &ranks[1]), "running statistics are averaged over ranks");
}

/// [`shardable_config`] with a constant learning rate, so that a run may be extended on resume.
fn extendable_config(steps: u64) -> RunConfig {
    let mut c = common::shardable_config(steps);
    c.optimizer.generator.lr_decay = condor::train::LrDecay::None;
    c.optimizer.discriminator.lr_decay = condor::train::LrDecay::None;
    c
}

#[test]
fn rank_zero_writes_the_run_and_any_world_size_resumes_it() {
    common::one_thread();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let group = common::LocalGroup::new(2);
    let handles: Vec<_> = (0..2)
        .map(|rank| {
            let (dir, member) = (dir.clone(), group.rank(rank));
            std::thread::spawn(move || {
                let member: Arc<dyn Collective> = Arc::new(member);
                let options = RunOptions { dir, resume: false, progress: false, stop: None, group: Some(member) };
                condor::train::train(extendable_config(20), &condor::registry(), &Device::Cpu, options).unwrap().step
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 20);
    }
    let run = condor::train::RunDir::create(&dir).unwrap();
    let logged: Vec<u64> = run.read_log().unwrap().iter().map(|r| r.step).collect();
    assert_eq!(logged, (1..=20).collect::<Vec<_>>(), "one log line per step: only rank 0 writes");
    assert_eq!(run.checkpoints().iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![10, 20]);

    // One process continues the two-rank run to step 30 and lands where one process alone does.
    let options = RunOptions::quiet(dir.clone(), true);
    let summary = condor::train::train(extendable_config(30), &condor::registry(), &Device::Cpu, options).unwrap();
    assert_eq!(summary.step, 30);
    let resumed = Checkpoint::load(&summary.checkpoint, &Device::Cpu).unwrap().tensors;
    let reference = single(&extendable_config(30), 30);
    let gap = common::max_difference(&resumed, &reference);
    assert!(gap < 1e-5, "resumed run is {gap} away from the single-process run");
}
