//! The text-to-bird checkpoints shipped in `weights/` draw the colour they are asked for.
//!
//! The 64-px DCGAN with the text head (txt2img's default) scores 95.8 / 95.1 / 93.1% on latent seeds
//! 0 / 1 / 2, 409 of 432 images (weights/birds-text-64.md); the 32-px DCGAN 91.0 / 93.1 / 95.1%, 402
//! of 432 (weights/birds-dcgan-32.md); the StyleGAN-like generator 93.8 / 99.3 / 95.1%, 415 of 432
//! (weights/birds-stylegan-32.md). Each test holds the 432 together at the goal, 90% (389), which leaves
//! room for a few images that another CPU's rounding may flip.

use candle_core::Device;
use condor::eval::colours::colour_accuracy;
use condor::infer::TextToImage;

/// Loads `weights/{file}` through the registry and checks its colour accuracy over latent seeds 0-2:
/// 90% of the 432 images together, and every colour of every seed at half or more.
fn draws_birds_of_the_asked_colour(file: &str, plugin: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(file);
    let model = TextToImage::load(&path, &condor::registry(), &Device::Cpu).expect("the shipped checkpoint loads");
    assert!(model.is_text_conditioned(), "{file} is text-conditioned");
    assert_eq!(model.card().generator.plugin, plugin);
    let (mut correct, mut total) = (0, 0);
    for seed in 0..3 {
        // 16 images for each of the 9 body colours ("a red bird", "an orange bird", ...).
        let report = colour_accuracy(&model, 16, seed, &Default::default()).unwrap();
        println!("{file}, seed {seed}:\n{}", report.to_markdown());
        assert_eq!(report.per_colour.len(), 9);
        assert!(report.per_colour.iter().all(|s| s.total == 16));
        // Every colour is drawn as asked at least half the time: the prompt steers every colour.
        for s in &report.per_colour {
            assert!(s.correct * 2 >= s.total, "{file}, seed {seed}, {}: {} of {}", s.prompt, s.correct, s.total);
        }
        correct += report.per_colour.iter().map(|s| s.correct).sum::<usize>();
        total += report.per_colour.iter().map(|s| s.total).sum::<usize>();
    }
    assert_eq!(total, 432);
    assert!(correct * 10 >= total * 9, "{file}: {correct} of {total} birds in the asked colour, under 90%");
}

/// The held-out synonym split is scored one row per synonym, each over its three sentence shapes.
#[test]
fn the_synonym_split_scores_every_unseen_colour_word_in_every_shape() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(condor::txt2img::SHIPPED_CHECKPOINT);
    let model = TextToImage::load(&path, &condor::registry(), &Device::Cpu).unwrap();
    let report = condor::eval::colours::synonym_accuracy(&model, 2, 0, &Default::default()).unwrap();
    assert_eq!(report.per_colour.len(), 27);
    assert!(report.per_colour.iter().all(|s| s.total == 6 && s.prompt.ends_with("(3 shapes)")));
    assert_eq!(report.per_colour[0].prompt, "crimson (3 shapes)");
    assert_eq!(report.per_colour[0].colour, condor::data::birds::Colour::Red);
    let found: usize = report.per_colour.iter().map(|s| s.found).sum();
    assert!(found * 10 >= 162 * 9, "a bird is found in {found} of 162 images");
}

#[test]
fn the_shipped_checkpoint_draws_birds_of_the_asked_colour() {
    draws_birds_of_the_asked_colour(condor::txt2img::SHIPPED_CHECKPOINT, "dcgan");
}

#[test]
fn the_shipped_32px_dcgan_checkpoint_draws_birds_of_the_asked_colour() {
    draws_birds_of_the_asked_colour("birds-dcgan-32.safetensors", "dcgan");
}

#[test]
fn the_shipped_stylegan_checkpoint_draws_birds_of_the_asked_colour() {
    draws_birds_of_the_asked_colour("birds-stylegan-32.safetensors", "stylegan");
}

/// The largest absolute difference between two tensors of one shape.
fn max_difference(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Both shipped plugins interpolate: between prompts the first and last frames are txt2img's first
/// image of each prompt, between latent codes they are its first two images of the prompt, the
/// frames in between differ from both ends, and the GIF holds every frame.
#[test]
fn interpolations_start_and_end_on_the_sampled_images_and_animate_every_frame() {
    let options = condor::infer::StyleOptions::default();
    for file in ["birds-dcgan-32.safetensors", "birds-stylegan-32.safetensors"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(file);
        let model = TextToImage::load(&path, &condor::registry(), &Device::Cpu).unwrap();
        let (red, blue) = ("a red bird".to_string(), "a blue bird".to_string());
        let ends = model.generate(&[red.clone(), blue.clone()], 2, 7, &options).unwrap().images;
        let glide = model.interpolate_prompts(&red, &blue, 5, 7, &options).unwrap().images;
        assert_eq!(glide.dims(), &[5, 3, 32, 32]);
        let frame = |t: &candle_core::Tensor, i: usize| t.narrow(0, i, 1).unwrap();
        assert!(max_difference(&frame(&glide, 0), &frame(&ends, 0)) < 1e-5, "{file}: first frame");
        assert!(max_difference(&frame(&glide, 4), &frame(&ends, 2)) < 1e-5, "{file}: last frame");
        assert!(max_difference(&frame(&glide, 2), &frame(&ends, 0)) > 0.05, "{file}: the middle moves");
        assert!(max_difference(&frame(&glide, 2), &frame(&ends, 2)) > 0.05, "{file}: the middle moves");

        let walk = model.interpolate_latents(&red, 4, 7, &options).unwrap().images;
        assert!(max_difference(&frame(&walk, 0), &frame(&ends, 0)) < 1e-5, "{file}: first latent");
        assert!(max_difference(&frame(&walk, 3), &frame(&ends, 1)) < 1e-5, "{file}: second latent");

        let dir = tempfile::tempdir().unwrap();
        let gif = dir.path().join("red-to-blue.gif");
        let animation = condor::infer::animation::AnimationOptions { fps: 10, zoom: 2 };
        condor::infer::animation::write_gif(&gif, &glide, animation).unwrap();
        let decoder =
            image::codecs::gif::GifDecoder::new(std::io::BufReader::new(std::fs::File::open(&gif).unwrap())).unwrap();
        let frames = image::AnimationDecoder::into_frames(decoder).collect_frames().unwrap();
        assert_eq!(frames.len(), 5, "{file}: one GIF frame per interpolation frame");
        assert_eq!(frames[0].buffer().dimensions(), (64, 64));
        assert_eq!(frames[0].delay().numer_denom_ms(), (100, 1));
        let png = dir.path().join("red-to-blue.png");
        let err = condor::infer::animation::write_gif(&png, &glide, animation).unwrap_err().to_string();
        assert!(err.contains("must end in .gif"), "{err}");
    }
}

/// The shipped translation model (weights/cyclegan-red-blue) turns red test birds blue and blue ones
/// red, keeping the rest of the bird and its background, as the bird judge reads them. On 500 test
/// birds each way it scored 99.0% / 99.4% translated and 96.6% / 90.6% kept every other attribute
/// (weights/cyclegan-red-blue.md); the test holds 150 each way at 90% translated, 80% kept and 95% of
/// backgrounds, room for another CPU's rounding.
#[test]
fn the_shipped_translator_changes_the_colour_and_keeps_the_background() {
    use condor::eval::translation::{evaluate_translation, TranslationEvalOptions};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let translator =
        condor::infer::Translator::load(&condor::img2img::shipped_translator(), &condor::registry(), &Device::Cpu)
            .expect("the shipped translation model loads");
    assert_eq!(translator.card().domains, ["red".to_string(), "blue".to_string()]);
    let judge = condor::eval::bird_judge::load_or_train_judge(
        root,
        condor::data::birds::BirdWorld::centred(0),
        32,
        &Device::Cpu,
        &mut |m| println!("{m}"),
    )
    .unwrap();
    let options = TranslationEvalOptions { images: 150, fid_images: 0, root: root.into(), ..Default::default() };
    let out = tempfile::tempdir().unwrap();
    let report = evaluate_translation(&translator, "shipped", &judge, &options, out.path(), &Device::Cpu, &mut |m| {
        println!("{m}")
    })
    .unwrap();
    println!("{}", report.to_markdown());
    for d in &report.directions {
        assert!(d.translated >= 0.9, "{} -> {}: {:.1}% translated", d.from, d.to, 100.0 * d.translated);
        assert!(d.kept >= 0.8, "{} -> {}: {:.1}% kept every other attribute", d.from, d.to, 100.0 * d.kept);
        let background = d.kept_per_attribute.iter().find(|(n, _)| n == "background").map(|(_, v)| *v).unwrap();
        assert!(background >= 0.95, "{} -> {}: {:.1}% of backgrounds kept", d.from, d.to, 100.0 * background);
        assert!(d.cycle_error < 0.05, "{} -> {}: cycle error {}", d.from, d.to, d.cycle_error);
    }
    assert!(out.path().join("red-to-blue.png").is_file() && out.path().join("blue-to-red.png").is_file());
}
