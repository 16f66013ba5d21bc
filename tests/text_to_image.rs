//! Text-to-image training end to end: the matching-aware terms see the right pairs, a tiny
//! text-conditioned DCGAN trains, checkpoints, resumes bit-exactly and draws from prompts.

mod common;

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use condor::core::{Conditioning, ConditioningKind, Discriminator, ModelSpec};
use condor::data::DatasetConfig;
use condor::train::tricks::{
    gan_cls_loss, interpolate_conditioning, mismatched_box_term, next_row_conditioning, next_row_layout,
    MismatchedBoxesConfig,
};
use condor::train::{train, LossKind, RunOptions, Targets, Trainer};
use condor::txt2img::{run as sample, SampleArgs};
use serde_json::json;

type Calls = Arc<Mutex<Vec<(Vec<f32>, Vec<f32>)>>>;

/// A conditional discriminator that records every (input, conditioning) pair it scores.
struct Recorder {
    weight: Tensor,
    calls: Calls,
}

impl Discriminator for Recorder {
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::Vector { dim: 8 }
    }
    fn forward(&self, x: &Tensor, cond: Option<&Conditioning>, _train: bool) -> condor::core::Result<Tensor> {
        let c = cond.expect("conditional").embedding.clone();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        self.calls.lock().unwrap().push((flat(x), flat(&c)));
        Ok(x.broadcast_mul(&self.weight)?.sum(1)?)
    }
}

#[test]
fn gan_cls_scores_real_right_fake_right_and_real_with_the_next_rows_caption() {
    let calls: Calls = Arc::default();
    let mut registry = condor::registry();
    let recorded = calls.clone();
    registry
        .register_discriminator("recorder", move |_: serde_json::Value, vb| {
            Ok(Recorder { weight: vb.get((1, 2), "w")?, calls: recorded.clone() })
        })
        .unwrap();
    let mut config = common::mixture_config(DatasetConfig::ring8().with_conditional(true), 1, 4, 8);
    config.discriminator = ModelSpec::new("recorder", json!({})).unwrap();
    config.training.gan_cls = true;
    let mut trainer = Trainer::new(config.clone(), &registry, &Device::Cpu).unwrap();
    let record = trainer.step().unwrap();
    // This discriminator ignores the caption, so real samples score the same with a wrong one.
    assert_eq!(record.d_wrong, Some(record.d_real));
    config.training.gan_cls = false;
    let without = Trainer::new(config, &registry, &Device::Cpu).unwrap().step().unwrap();
    assert_eq!(without.d_wrong, None, "logged only for GAN-CLS");
    let calls = calls.lock().unwrap();
    // The real batch is scored under both captions first (`Discriminator::forward_each`), then the fakes.
    assert_eq!(calls.len(), 4 + 3, "GAN-CLS D: real, real with wrong captions, fake; G: fake. Without GAN-CLS: 3");
    let (real, right) = &calls[0];
    let (real_again, wrong) = &calls[1];
    let (fake, fake_cond) = &calls[2];
    assert_eq!(real_again, real, "the mismatched term scores the same real samples");
    assert_ne!(fake, real);
    assert_eq!(fake_cond, right, "generated samples are scored with the captions they were made from");
    // Row i's wrong caption is row i+1's (one-hot rows of 8).
    let rows: Vec<&[f32]> = right.chunks(8).collect();
    let wrong_rows: Vec<&[f32]> = wrong.chunks(8).collect();
    for i in 0..4 {
        assert_eq!(wrong_rows[i], rows[(i + 1) % 4]);
    }
}

#[test]
fn gan_cls_weights_the_two_fake_terms_by_half_and_gan_int_mixes_neighbours() {
    let t = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap();
    let targets = Targets { real: t(&[1.0, 1.0]), fake: t(&[0.0, 0.0]) };
    let loss = gan_cls_loss(LossKind::NonSaturating, &t(&[2.0, 2.0]), &t(&[-1.0, -1.0]), &t(&[0.5, 0.5]), &targets)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let softplus = |x: f32| (1.0 + x.exp()).ln();
    let expected = softplus(-2.0) + 0.5 * (softplus(-1.0) + softplus(0.5));
    assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    // Real birds in mismatched boxes add their own fake term, weighted.
    let boxes = MismatchedBoxesConfig { weight: 0.25 };
    let term = mismatched_box_term(LossKind::NonSaturating, &t(&[3.0, -2.0]), boxes, &targets).unwrap();
    let expected = 0.25 * (softplus(3.0) + softplus(-2.0)) / 2.0;
    assert!((term.to_scalar::<f32>().unwrap() - expected).abs() < 1e-6, "{term} vs {expected}");

    let e = Tensor::new(&[[1f32, 0.0], [0.0, 2.0], [4.0, 4.0]], &Device::Cpu).unwrap();
    let c = Conditioning::from_embedding(e).unwrap();
    let mixed: Vec<Vec<f32>> = interpolate_conditioning(&c, 0.25).unwrap().embedding.to_vec2().unwrap();
    // 0.25 * row i + 0.75 * row i+1 (the last row pairs with the first).
    assert_eq!(mixed, vec![vec![0.25, 1.5], vec![3.0, 3.5], vec![1.75, 1.0]]);
    let next: Vec<Vec<f32>> = next_row_conditioning(&c).unwrap().embedding.to_vec2().unwrap();
    assert_eq!(next, vec![vec![0.0, 2.0], vec![4.0, 4.0], vec![1.0, 0.0]]);
}

#[test]
fn a_tiny_text_to_image_run_trains_checkpoints_resumes_and_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = condor::registry();
    let options = |dir: &str, resume| RunOptions::quiet(tmp.path().join(dir), resume);
    let whole = train(common::tiny_birds(4, tmp.path()), &registry, &Device::Cpu, options("whole", false)).unwrap();
    assert_eq!(whole.step, 4);
    let last = whole.last.unwrap();
    assert!(last.loss_d.is_finite() && last.loss_g.is_finite() && last.g_regularization > 0.0);
    // The split run leaves the sizes that the data decides (conditioning, image size, channels) out of
    // its networks' configs, as the shipped configs do: resuming must fill them in as training did.
    let leave_sizes_to_the_data = |mut c: condor::train::RunConfig| {
        for spec in [&mut c.generator, &mut c.discriminator] {
            for field in ["cond_dim", "image_size", "channels"] {
                spec.config.as_object_mut().unwrap().remove(field);
            }
        }
        c
    };
    let split = |steps| leave_sizes_to_the_data(common::tiny_birds(steps, tmp.path()));
    train(split(2), &registry, &Device::Cpu, options("split", false)).unwrap();
    let resumed = train(split(4), &registry, &Device::Cpu, options("split", true)).unwrap();
    let load = |p: &std::path::Path| condor::train::Checkpoint::load(p, &Device::Cpu).unwrap().tensors;
    let (a, b) = (load(&whole.checkpoint), load(&resumed.checkpoint));
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let diff = (t - &b[name]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        assert_eq!(diff.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap(), 0.0, "{name} differs after resume");
    }
    // Progress grids with the fixed prompts were written.
    assert!(tmp.path().join("whole/samples/step-000000004.png").is_file());

    // txt2img on the checkpoint: a row per prompt, same seed same bytes, bad prompts are errors.
    let out = tmp.path().join("t.png");
    let args = SampleArgs {
        checkpoint: Some(whole.checkpoint.clone()),
        n: Some(3),
        seed: 1,
        out: Some(out.clone()),
        ..SampleArgs::for_prompts(vec!["a red bird".into(), "a small blue bird with a long beak".into()])
    };
    let mut said = Vec::new();
    sample(&args, &mut |l| said.push(l)).unwrap();
    assert!(said[0].contains("t.png"), "{said:?}");
    let first = std::fs::read(&out).unwrap();
    let img = image::load_from_memory(&first).unwrap();
    assert_eq!(img.width(), 3 * (32 * 3 + 8), "3 images of 32 px zoomed 3x per row");
    sample(&args, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), first, "same seed, same image");
    let mut other = args.clone();
    other.seed = 2;
    sample(&other, &mut |_| {}).unwrap();
    assert_ne!(std::fs::read(&out).unwrap(), first, "another seed, other images");
    let mut empty = args.clone();
    empty.prompts = vec!["   ".into()];
    let err = sample(&empty, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let mut none = args.clone();
    none.prompts.clear();
    assert!(sample(&none, &mut |_| {}).unwrap_err().to_string().contains("prompt"));
    let mut long = args.clone();
    long.prompts = vec!["a red bird ".repeat(200)];
    sample(&long, &mut |_| {}).unwrap();
    // Truncation scales this DCGAN's augmentation draw; noise modes need a style space, a clear error
    // rather than a silent no-op.
    let mut truncated = args.clone();
    truncated.style.truncation = Some(0.5);
    sample(&truncated, &mut |_| {}).unwrap();
    assert_ne!(std::fs::read(&out).unwrap(), first, "truncation changes the images");
    let mut noise = args;
    noise.style.noise = "zero".into();
    let err = sample(&noise, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("style space"), "{err}");
}

/// What `weights/` ships: `condor export` keeps a checkpoint's sampling generator (the EMA copy) and a
/// model card, and the exported file draws the same pixels through the one `TextToImage` object; a
/// checkpoint written before model cards still samples and exports.
#[test]
fn exported_models_carry_a_card_and_draw_what_their_checkpoint_draws() {
    use condor::infer::{file, CheckpointError, TextToImage, WeightsFile};
    use condor::train::export::{export_generator, open_model};
    let tmp = tempfile::tempdir().unwrap();
    let registry = condor::registry();
    let options = RunOptions::quiet(tmp.path().join("run"), false);
    let run = train(common::tiny_birds(2, tmp.path()), &registry, &Device::Cpu, options).unwrap();
    let prompts = vec!["a red bird".to_string(), "a small blue bird with a long beak".to_string()];
    let draw = |model: &TextToImage| model.generate(&prompts, 3, 7, &Default::default()).unwrap().images;

    // The checkpoint's own card names its EMA weights, the data and the text encoder.
    let from_checkpoint = TextToImage::load(&run.checkpoint, &registry, &Device::Cpu).unwrap();
    let card = from_checkpoint.card().clone();
    assert_eq!((card.weights.as_str(), card.ema, card.step), ("ema", true, 2));
    assert_eq!(card.text_encoder.as_deref(), Some("shipped"));
    assert_eq!(card.data, common::tiny_birds_data());
    let reference = draw(&from_checkpoint);
    assert_eq!(common::max_abs_diff(&reference, &draw(&from_checkpoint)), 0.0, "one object serves many calls");

    // Exported: the generator's tensors and the card only, the same pixels.
    let exported = tmp.path().join("exported.safetensors");
    export_generator(&run.checkpoint, &exported, None).unwrap();
    let file = WeightsFile::read(&exported, &Device::Cpu).unwrap();
    assert!(file.tensors.keys().all(|k| k.starts_with("generator.")), "{:?}", file.tensors.keys());
    assert!(!file.metadata.contains_key("condor.config") && !file.metadata.contains_key("condor.state"));
    let model = TextToImage::load(&exported, &registry, &Device::Cpu).unwrap();
    assert_eq!(model.card().weights, "generator");
    assert_eq!(model.card().generator, card.generator);
    assert_eq!(common::max_abs_diff(&reference, &draw(&model)), 0.0, "the exported model draws the same birds");
    let err = condor::train::Checkpoint::load(&exported, &Device::Cpu).err().expect("an exported model cannot resume");
    assert!(matches!(err, CheckpointError::NotCondor { .. }) && err.to_string().contains("exported model"), "{err}");

    // A checkpoint written before cards (config and state only) opens through the trainer's crate
    // and exports; inference alone says what to do with it.
    let ckpt = condor::train::Checkpoint::load(&run.checkpoint, &Device::Cpu).unwrap();
    let legacy = tmp.path().join("legacy.safetensors");
    let tensors: Vec<(String, Tensor)> = ckpt.tensors.clone().into_iter().collect();
    let metadata = std::collections::HashMap::from([
        ("condor.config".to_string(), serde_json::to_string(&ckpt.config).unwrap()),
        ("condor.state".to_string(), serde_json::to_string(&ckpt.state).unwrap()),
    ]);
    file::write(&legacy, &tensors, metadata).unwrap();
    let err = TextToImage::load(&legacy, &registry, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("model card") && err.contains("condor export"), "{err}");
    let opened = open_model(&legacy, &registry, &Device::Cpu).unwrap();
    assert_eq!(opened.card(), &card);
    assert_eq!(common::max_abs_diff(&reference, &draw(&opened)), 0.0);
    let re_exported = tmp.path().join("re-exported.safetensors");
    export_generator(&legacy, &re_exported, None).unwrap();
    let model = TextToImage::load(&re_exported, &registry, &Device::Cpu).unwrap();
    assert_eq!(common::max_abs_diff(&reference, &draw(&model)), 0.0);
}

#[test]
fn truncation_scales_the_conditioning_augmentation_draw() {
    use condor::core::{rng::normal, Generator, Params};
    use condor::dcgan::{DcganGenerator, DcganGeneratorConfig};
    use condor::infer::styles::{generate_styled, StyleOptions};
    let dev = Device::Cpu;
    let params = Params::new(5);
    let config = DcganGeneratorConfig {
        noise_dim: 6,
        cond_dim: 8,
        image_size: 32,
        width: 2,
        augmentation: Some(condor::core::augmentation::Augmentation { dim: 4, kl_weight: 1.0 }),
        ..Default::default()
    };
    let g = DcganGenerator::new(config, params.var_builder(DType::F32, &dev)).unwrap();
    assert_eq!(g.augmentation_draw(), Some(6..10));
    let mut rng = condor::core::derived_rng(1, &[2]);
    let z = normal(&mut rng, (3, 10), &dev).unwrap();
    let c = Conditioning::from_embedding(normal(&mut rng, (3, 8), &dev).unwrap()).unwrap();
    let draw = |psi: Option<f64>| {
        generate_styled(&g, &z, Some(&c), &StyleOptions { truncation: psi, ..Default::default() }).unwrap()
    };
    let with_draw_times = |k: f64| {
        let scaled = Tensor::cat(&[z.narrow(1, 0, 6).unwrap(), (z.narrow(1, 6, 4).unwrap() * k).unwrap()], 1).unwrap();
        g.forward(&scaled, Some(&c), false).unwrap()
    };
    assert_eq!(common::max_abs_diff(&draw(Some(1.0)), &draw(None)), 0.0, "psi = 1 changes nothing");
    assert_eq!(common::max_abs_diff(&draw(Some(0.0)), &with_draw_times(0.0)), 0.0, "psi = 0 reads mu");
    assert_eq!(common::max_abs_diff(&draw(Some(0.5)), &with_draw_times(0.5)), 0.0);
    let d = common::max_abs_diff(&draw(Some(0.0)), &draw(None));
    assert!(d > 1e-6, "the draw matters ({d})");
}

#[test]
fn differentiable_augmentation_is_drawn_from_the_run_seed_resumes_bit_exactly_and_needs_images() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = condor::registry();
    let config = |steps| {
        let mut c = common::tiny_birds(steps, tmp.path());
        c.training.diff_augment = Some(Default::default());
        c
    };
    let weights_after = |mut t: Trainer, steps| {
        for _ in 0..steps {
            t.step().unwrap();
        }
        t.weights()
    };
    let straight = weights_after(Trainer::new(config(4), &registry, &Device::Cpu).unwrap(), 4);
    let path = tmp.path().join("half.safetensors");
    let mut first = Trainer::new(config(4), &registry, &Device::Cpu).unwrap();
    for _ in 0..2 {
        first.step().unwrap();
    }
    first.save_checkpoint(&path).unwrap();
    let ckpt = condor::train::Checkpoint::load(&path, &Device::Cpu).unwrap();
    assert!(ckpt.config.training.diff_augment.is_some(), "the checkpoint keeps the augmentation settings");
    let resumed = weights_after(Trainer::from_checkpoint(&ckpt, &registry, &Device::Cpu).unwrap(), 2);
    let plain = weights_after(Trainer::new(common::tiny_birds(4, tmp.path()), &registry, &Device::Cpu).unwrap(), 4);
    let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    };
    for (name, t) in &straight {
        assert_eq!(max_diff(t, &resumed[name]), 0.0, "{name} differs after resume");
    }
    // The discriminator saw other images than without augmentation, so it trained differently.
    let moved =
        straight.iter().filter(|(n, _)| n.starts_with("d.")).map(|(n, t)| max_diff(t, &plain[n])).fold(0.0, f32::max);
    assert!(moved > 1e-4, "the augmentation changed the discriminator by only {moved}");

    // Samples that are not images cannot be translated: a clear error when the trainer is built.
    let mut points = common::mixture_config(DatasetConfig::ring8(), 1, 8, 8);
    points.training.diff_augment = Some(Default::default());
    let err = Trainer::new(points, &registry, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("diff_augment"), "{err}");
}

/// The attention-pooling text head (`condor text-encoder pretrain`): pretrained against the images of a
/// few birds its contrastive loss falls and it learns to tell a caption from the caption with its
/// colours swapped; saved, it becomes the encoder a run names, the run's generator can be trained with
/// the matching loss of its image encoder, and the run's checkpoint draws through it.
#[test]
fn a_pretrained_pooling_head_learns_and_then_conditions_a_run() {
    use condor::text::pooling::save_pooling;
    use condor::train::text_pretraining::{pretrain_pooling, TextPretraining};
    let tmp = tempfile::tempdir().unwrap();
    let mut config = common::tiny_birds(2, tmp.path());
    let options = TextPretraining { steps: 200, batch_size: 12, queries: 2, lr: 5e-3, seed: 0, ..Default::default() };
    let mut steps = Vec::new();
    let head = pretrain_pooling(&config, &options, &Device::Cpu, &mut |s| steps.push(s)).unwrap();
    assert_eq!(steps.len(), 200);
    let mean = |s: &[condor::train::text_pretraining::PretrainingStep], f: fn(&_) -> f32| {
        s.iter().map(f).sum::<f32>() / s.len() as f32
    };
    let (early, late) = (&steps[..20], &steps[180..]);
    let (loss0, loss1) = (mean(early, |s| s.loss), mean(late, |s| s.loss));
    assert!(loss1 < 0.7 * loss0, "the contrastive loss should fall: {loss0} -> {loss1}");
    let beats = mean(late, |s| s.beats_negative);
    assert!(beats > 0.75, "own caption over its colour swap for {beats} of the images");

    assert_eq!(head.base, "shipped", "the run's own encoder is the base");
    let path = tmp.path().join("head.safetensors");
    save_pooling(&head.tensors, head.shape, &head.base, &path).unwrap();
    let source = path.to_str().unwrap().to_string();
    let (pooled, fingerprint) = condor::infer::encoder::load_encoder(&source, &Device::Cpu).unwrap();
    let (base, base_fingerprint) = condor::infer::encoder::load_encoder("shipped", &Device::Cpu).unwrap();
    assert!(fingerprint.starts_with(&base_fingerprint) && fingerprint != base_fingerprint, "caches keep apart");
    let a = pooled.encode_batch(&["a red bird with blue wings"]).unwrap().sentences;
    let b = base.encode_batch(&["a red bird with blue wings"]).unwrap().sentences;
    assert_eq!(a.dims(), b.dims());
    let gap: f32 = (a - b).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
    assert!(gap > 0.1, "the head makes its own embeddings");

    let matching = condor::train::matching::MatchingConfig { weight: 1.0 };
    config.training.matching = Some(matching);
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("pretrained text head"), "the shipped encoder has no image side: {err}");
    config.text.encoder = source.clone();
    config.validate().unwrap();
    // Two identical images can't tell their two captions apart: the loss is at least chance's, ln 2.
    let loss = condor::train::matching::MatchingLoss::load(&source, matching, &Device::Cpu).unwrap();
    let emb = pooled.encode_batch(&["a red bird", "a blue bird"]).unwrap().sentences;
    let blobs = Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
    let value: f32 = loss.loss(&blobs, &emb).unwrap().to_scalar().unwrap();
    assert!(
        value >= 2f32.ln() - 1e-5,
        "identical images can't beat chance (ln 2) at telling two captions apart: {value}"
    );
    let options = RunOptions::quiet(tmp.path().join("pooled"), false);
    let run = train(config, &condor::registry(), &Device::Cpu, options).unwrap();
    let g_matching = run.last.as_ref().unwrap().extra.get("g_matching").copied().unwrap();
    assert!(g_matching.is_finite() && g_matching > 0.0, "{g_matching}");
    let out = tmp.path().join("pooled.png");
    let args = SampleArgs {
        checkpoint: Some(run.checkpoint),
        n: Some(2),
        out: Some(out.clone()),
        ..SampleArgs::for_prompts(vec!["a red bird".into()])
    };
    sample(&args, &mut |_| {}).unwrap();
    assert!(out.is_file());
    let registry = condor::registry();
    let checkpoint = args.checkpoint.unwrap();
    let card = condor::infer::LoadedGenerator::load(&checkpoint, &registry, &Device::Cpu).unwrap().card;
    assert_eq!(card.text_encoder.as_deref(), Some(source.as_str()));

    // Exported with its head: the copy is byte for byte the head, and the exported card names it.
    use condor::train::export::export_generator;
    let shipped_head = tmp.path().join("shipped-head.safetensors");
    let exported = tmp.path().join("exported.safetensors");
    export_generator(&checkpoint, &exported, Some(&shipped_head)).unwrap();
    assert_eq!(std::fs::read(&shipped_head).unwrap(), std::fs::read(&path).unwrap());
    let card = condor::infer::LoadedGenerator::load(&exported, &registry, &Device::Cpu).unwrap().card;
    assert_eq!(card.text_encoder.as_deref(), shipped_head.to_str());
    let err = export_generator(&checkpoint, &exported, Some(&tmp.path().join("head.bin"))).unwrap_err();
    assert!(err.to_string().contains(".safetensors"), "{err}");

    // A config naming the head it is making pretrains over the base encoder instead.
    let pretraining = TextPretraining::default();
    assert_eq!(pretraining.base_for(&source), "shipped");
    assert_eq!(pretraining.base_for("a/model/folder"), "a/model/folder");
}

/// Mismatched boxes move each row's box and keypoints to the next row and keep its caption; a
/// what-and-where run logs the discriminator's score of real birds in them, and a discriminator that
/// reads no box is refused when the run is built.
#[test]
fn mismatched_boxes_take_the_next_rows_layout_and_need_a_discriminator_that_reads_it() {
    let e = Tensor::new(&[[1f32, 0.0], [0.0, 2.0], [4.0, 4.0]], &Device::Cpu).unwrap();
    let boxes =
        Tensor::new(&[[0.1f32, 0.1, 0.5, 0.5], [0.2, 0.3, 0.4, 0.4], [0.0, 0.0, 1.0, 1.0]], &Device::Cpu).unwrap();
    let mut c = Conditioning::from_embedding(e.clone()).unwrap();
    assert!(next_row_layout(&c).unwrap().is_none(), "nothing to move without a layout");
    c.layout = Some(condor::core::layout::Layout::from_boxes(boxes).unwrap());
    let moved = next_row_layout(&c).unwrap().unwrap();
    assert_eq!(moved.embedding.to_vec2::<f32>().unwrap(), e.to_vec2::<f32>().unwrap(), "captions stay");
    let moved_boxes: Vec<Vec<f32>> = moved.layout.unwrap().boxes.to_vec2().unwrap();
    assert_eq!(moved_boxes, vec![vec![0.2, 0.3, 0.4, 0.4], vec![0.0, 0.0, 1.0, 1.0], vec![0.1, 0.1, 0.5, 0.5]]);

    let tmp = tempfile::tempdir().unwrap();
    let registry = condor::registry();
    let mut config = where_run(2, tmp.path());
    config.training.mismatched_boxes = Some(Default::default());
    let mut trainer = Trainer::new(config.clone(), &registry, &Device::Cpu).unwrap();
    let record = trainer.step().unwrap();
    let score = record.extra["d_wrong_box"];
    assert!(score > 0.0 && score < 1.0 && record.loss_d.is_finite(), "D(x, wrong box) {score}");
    config.discriminator.config.as_object_mut().unwrap().remove("layout");
    let err = Trainer::new(config, &registry, &Device::Cpu).err().expect("refused at build time").to_string();
    assert!(err.contains("`training.mismatched_boxes` needs a discriminator that reads the box"), "{err}");
}

/// DF-GAN's matching-aware gradient penalty trains with a text run and logs its value; a run without
/// text gets a clear error when it is built.
#[test]
fn the_matching_aware_penalty_trains_with_text_and_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = condor::registry();
    let mut config = common::tiny_birds(2, tmp.path());
    config.training.matching_aware_penalty = Some(Default::default());
    let mut trainer = Trainer::new(config, &registry, &Device::Cpu).unwrap();
    for _ in 0..2 {
        let record = trainer.step().unwrap();
        let value = record.extra["matching_aware_penalty"];
        assert!(value.is_finite() && value > 0.0, "MA-GP {value}");
        assert!(record.loss_d.is_finite());
    }
    let mut ring = common::mixture_config(DatasetConfig::ring8(), 1, 8, 8);
    ring.training.matching_aware_penalty = Some(Default::default());
    let err = Trainer::new(ring, &registry, &Device::Cpu).err().expect("refused at build time").to_string();
    assert!(err.contains("needs text-conditioned data and discriminator"), "{err}");
}

/// A short what-and-where run on widely spread birds: the bird's colour lands in the asked box.
/// Each bird of a set of red and yellow training birds is asked for in its own box and in that box
/// mirrored; where the caption's colour is in the image (its centroid, weighted by nearness to the
/// colour) moves with the box. The same measure on the model before training moves much less.
#[test]
fn a_short_what_and_where_run_moves_the_bird_into_the_box() {
    common::one_thread();
    let tmp = tempfile::tempdir().unwrap();
    let registry = condor::registry();
    let run = |steps| {
        let config = where_run(steps, tmp.path());
        let dir = tmp.path().join(format!("where-{steps}"));
        train(config, &registry, &Device::Cpu, RunOptions::quiet(dir, false)).unwrap().checkpoint
    };
    let (untrained, trained) = (run(1), run(WHERE_STEPS));
    let world = condor::data::birds::BirdWorld { seed: 0, spread: condor::data::birds::Spread::Wide }
        .split(condor::data::birds::BirdSplit::Train);
    let asked = moved_birds(&world);
    let slope = |checkpoint: &std::path::Path| {
        let model = condor::infer::TextToImage::load(checkpoint, &registry, &Device::Cpu).unwrap();
        colour_follows_box(&model, &world, &asked)
    };
    let real = {
        let mut pairs = Vec::new();
        for &i in &asked {
            let (bird, layout) = (world.render(i, 32), world.layout(i));
            let colour = world.attributes(i).body.rgb();
            let c = colour_centroid_x(&bird.pixels, 32, colour);
            let mirrored_c = colour_centroid_x(&mirror(&bird.pixels, 32), 32, colour);
            let x = layout.bbox[0] + layout.bbox[2] / 2.0;
            pairs.push((x, c));
            pairs.push((1.0 - x, mirrored_c));
        }
        least_squares_slope(&pairs)
    };
    let (before, after) = (slope(&untrained), slope(&trained));
    eprintln!("colour centroid against box centre: real {real:.3}, untrained {before:.3}, trained {after:.3}");
    assert!(real > 0.6, "the measure reads real birds: {real}");
    assert!(after > 0.4 * real, "trained: {after} (real {real})");
    assert!(after > before + 0.3, "training moved it: {before} -> {after}");
}

/// Long enough for the averaged generator to have learnt colours and places, which a few hundred
/// steps more or less do not undo.
const WHERE_STEPS: u64 = 600;

/// A small what-and-where DCGAN on 200 widely spread training birds, sampled from its average (EMA).
fn where_run(steps: u64, cache: &std::path::Path) -> condor::train::RunConfig {
    let mut config = common::tiny_birds(steps, cache);
    config.name = "where".into();
    config.batch_size = 32;
    config.data = DatasetConfig::Birds {
        world_seed: 0,
        count: 200,
        split: condor::data::birds::BirdSplit::Train,
        size: 32,
        flip: true,
        crop: 0.0,
        layout: true,
        spread: condor::data::birds::Spread::Wide,
    };
    let layout = json!({"grid": 8, "channels": 8});
    config.generator = ModelSpec::new(
        "dcgan",
        json!({"noise_dim": 16, "cond_dim": 384, "image_size": 32, "width": 8,
               "augmentation": {"dim": 16, "kl_weight": 1.0}, "layout": layout}),
    )
    .unwrap();
    config.discriminator =
        ModelSpec::new("dcgan", json!({"cond_dim": 384, "image_size": 32, "width": 8, "layout": layout})).unwrap();
    config.training = condor::train::TrainingConfig {
        gan_cls: true,
        ema: Some(condor::train::EmaConfig { decay: 0.99, start_step: 200, ..Default::default() }),
        ..Default::default()
    };
    config.optimizer.generator = condor::core::OptimizerConfig { lr: 1e-3, beta1: 0.5, ..Default::default() };
    config.optimizer.discriminator = condor::core::OptimizerConfig { lr: 4e-4, beta1: 0.5, ..Default::default() };
    config.schedule.checkpoint_every = steps;
    config.schedule.sample_every = steps;
    config
}

/// Red and yellow training birds (colours no background has) whose boxes sit well off the middle, so
/// their box and its mirror image are far apart.
fn moved_birds(world: &condor::data::birds::SyntheticBirds) -> Vec<u64> {
    use condor::data::birds::Colour;
    (0..200)
        .filter(|&i| matches!(world.attributes(i).body, Colour::Red | Colour::Yellow))
        .filter(|&i| {
            let b = world.layout(i).bbox;
            (b[0] + b[2] / 2.0 - 0.5).abs() > 0.12
        })
        .collect()
}

/// The slope of the caption colour's centroid against the asked box's centre, over each bird of
/// `asked` drawn (one latent code) in its own box and in the mirrored box.
fn colour_follows_box(
    model: &condor::infer::TextToImage,
    world: &condor::data::birds::SyntheticBirds,
    asked: &[u64],
) -> f32 {
    let mut pairs = Vec::new();
    for (k, &i) in asked.iter().enumerate() {
        let layout = world.layout(i);
        let prompt = world.captions(i)[0].text.clone();
        let layouts = [layout, layout.flipped()];
        let images = model
            .generate_laid_out(&[prompt.clone(), prompt], &layouts, k as u64, true, &Default::default())
            .unwrap()
            .images;
        let colour = world.attributes(i).body.rgb();
        for (row, l) in layouts.iter().enumerate() {
            let pixels: Vec<f32> = images.get(row).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let pixels: Vec<f32> = pixels.iter().map(|v| (v + 1.0) / 2.0).collect();
            pairs.push((l.bbox[0] + l.bbox[2] / 2.0, colour_centroid_x(&pixels, 32, colour)));
        }
    }
    least_squares_slope(&pairs)
}

/// The x centroid (fraction of the side) of a `(3, side, side)` image in [0, 1], each pixel weighted
/// by its nearness to `colour`.
fn colour_centroid_x(pixels: &[f32], side: usize, colour: [f32; 3]) -> f32 {
    let n = side * side;
    let (mut mass, mut moment) = (0.0f32, 0.0f32);
    for p in 0..n {
        let d2: f32 = (0..3).map(|c| (pixels[c * n + p] - colour[c]).powi(2)).sum();
        let w = (-d2 / (2.0 * 0.15f32.powi(2))).exp();
        mass += w;
        moment += w * ((p % side) as f32 + 0.5) / side as f32;
    }
    if mass > 0.0 {
        moment / mass
    } else {
        0.5
    }
}

/// A `(3, side, side)` image mirrored left to right.
fn mirror(pixels: &[f32], side: usize) -> Vec<f32> {
    let mut out = pixels.to_vec();
    for (k, v) in out.iter_mut().enumerate() {
        let (plane, x) = (k - k % side, k % side);
        *v = pixels[plane + side - 1 - x];
    }
    out
}

/// The least-squares slope of y on x.
fn least_squares_slope(pairs: &[(f32, f32)]) -> f32 {
    let n = pairs.len() as f32;
    let (mx, my) = (pairs.iter().map(|p| p.0).sum::<f32>() / n, pairs.iter().map(|p| p.1).sum::<f32>() / n);
    let sxy: f32 = pairs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f32 = pairs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}
