//! `condor eval` end to end on the shipped text-to-bird checkpoint (64 px), with the shipped bird judges:
//! both (32 and 64 px) pass their own check, and the report holds every metric for every seed.
//!
//! The FID part needs the Inception weights of `just fid-weights`; without them the test says so and
//! stops after the judge, unless CONDOR_REQUIRE_FID_WEIGHTS is set (CI sets it).

use std::path::Path;

use candle_core::Device;
use condor::data::birds::BirdWorld;
use condor::eval::bird_judge::{
    load_or_train_judge, shipped_judge_path, BIRD_ATTRIBUTES, JUDGE_MIN_ACCURACY, REQUIRED_ATTRIBUTES,
};
use condor::eval::birds::{evaluate, write_report, EvalOptions, RealImages};
use condor::infer::TextToImage;

#[test]
fn eval_scores_the_shipped_checkpoint_with_the_shipped_judge() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let device = Device::Cpu;
    assert!(
        shipped_judge_path(root, BirdWorld::centred(0), 32).exists(),
        "the 32 px bird judge is shipped in weights/"
    );
    let judge = load_or_train_judge(root, BirdWorld::centred(0), 32, &device, &mut |m| eprintln!("{m}"))
        .expect("the shipped judge passes its check");
    println!("{}", judge.to_markdown());
    for split in &judge.accuracy {
        assert_eq!(split.per_attribute.len(), BIRD_ATTRIBUTES.len());
        for (i, (name, _)) in BIRD_ATTRIBUTES.iter().enumerate() {
            // Every required attribute is judged, and every judged one is read right 98% of the time.
            if judge.judged[i] {
                assert!(split.per_attribute[i] >= JUDGE_MIN_ACCURACY, "{name}: {split:?}");
            }
            if REQUIRED_ATTRIBUTES.contains(name) {
                assert!(judge.judged[i] && split.per_attribute[i] >= JUDGE_MIN_ACCURACY, "{name}: {split:?}");
            }
        }
    }
    // The shipped judge reads the eight visible attributes; beak, eye ring and wing bar are too small at 32 px.
    assert_eq!(judge.judged.iter().filter(|&&j| j).count(), 8);
    // The shipped checkpoint draws 64-px birds, which the shipped 64-px judge reads: the same eight.
    assert!(
        shipped_judge_path(root, BirdWorld::centred(0), 64).exists(),
        "the 64 px bird judge is shipped in weights/"
    );
    let judge = load_or_train_judge(root, BirdWorld::centred(0), 64, &device, &mut |m| eprintln!("{m}"))
        .expect("the 64-px judge passes");
    assert_eq!(judge.judged.iter().filter(|&&j| j).count(), 8);

    if !root.join(condor::metrics::inception::DEFAULT_WEIGHTS).exists()
        && std::env::var_os("CONDOR_REQUIRE_FID_WEIGHTS").is_none()
    {
        eprintln!("skipped the FID part: no Inception weights (just fid-weights)");
        return;
    }
    let path = root.join("weights").join(condor::txt2img::SHIPPED_CHECKPOINT);
    let model = TextToImage::load(&path, &condor::registry(), &device).unwrap();
    let out = tempfile::tempdir().unwrap();
    let stats = tempfile::tempdir().unwrap();
    let options = EvalOptions {
        seeds: vec![0, 1],
        captions_per_split: 100,
        fid_images: 12,
        kid_subsets: 10,
        diversity_images: 4,
        batch: 12,
        root: root.to_path_buf(),
        stats_dir: Some(stats.path().to_path_buf()),
    };
    let report = evaluate(
        &model,
        "shipped",
        &RealImages::Birds { world: BirdWorld::centred(0) },
        Some(&judge),
        &options,
        out.path(),
        &mut |m| eprintln!("{m}"),
    )
    .unwrap();
    write_report(&report, out.path()).unwrap();
    println!("{}", report.to_markdown());
    assert_eq!(report.seeds.len(), 2);
    assert_eq!((report.real_images, report.generated_images), (12, 12));
    for s in &report.seeds {
        assert!(s.fid.is_finite() && s.fid > 0.0, "{s:?}");
        // KID over 10 subsets of half the 12 images: they differ, so its spread is not zero.
        assert!(s.kid.mean.is_finite() && s.kid.subset_size == 6 && s.kid.std > 0.0, "{:?}", s.kid);
        assert_eq!(s.splits.len(), 3);
        for (split, real) in s.splits.iter().zip(&report.real_splits) {
            assert_eq!(split.images, 100);
            // The real birds of the captions score near the top, which checks that images, captions
            // and labels line up; the shipped model scores between chance and that ceiling.
            assert!(real.accuracy > 0.95 && real.retrieval > 0.2, "{real:?}");
            assert!(split.accuracy > 0.2 && split.accuracy < real.accuracy, "{split:?}");
            assert!(split.retrieval < real.retrieval, "{split:?}");
        }
        let ratio = s.diversity_ratio().unwrap();
        assert!(ratio > 0.1 && ratio < 3.0, "diversity ratio {ratio}");
    }
    // Twelve other real birds score better than the generator: the floor FID and KID have at this size.
    let floor = report.real_floor.as_ref().expect("synthetic birds have a real floor");
    assert!(floor.fid.is_finite() && floor.fid > 0.0, "{floor:?}");
    assert!(report.seeds.iter().all(|s| floor.fid < s.fid && floor.kid.mean < s.kid.mean), "{floor:?}");
    // The real side was cached for the next run.
    assert!(stats.path().join("birds-w0-test-64px-12.safetensors").exists());
    assert!(stats.path().join("birds-w0-test-64px-12-from12.safetensors").exists());
    for file in [
        "report.json",
        "report.md",
        "fid-seed0.png",
        "test.png",
        "heldoutphrasings.png",
        "heldoutcombinations.png",
        "diversity.png",
    ] {
        assert!(out.path().join(file).exists(), "{file}");
    }
}
