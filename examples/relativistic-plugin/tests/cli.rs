//! The out-of-tree plugin through the `condor` command line: train, resume bit-exactly, sample, and
//! the relativistic GAN measurably learns the ring.

use std::path::Path;

use condor_cli::condor::candle_core::Device;
use condor_cli::condor::core::rng::Stream;
use condor_cli::condor::infer::sample::generate;
use condor_cli::condor::infer::LoadedGenerator;
use condor_cli::condor::train::Checkpoint;
use condor_core::Registry;

/// Eight Gaussians on a circle of radius 2, our generator against the built-in MLP discriminator,
/// trained by our recipe.
const CONFIG: &str = r#"
name = "relativistic-ring"
seed = 3
steps = 400
batch_size = 128

[data]
kind = "ring"
modes = 8
radius = 2.0
std = 0.02

[generator]
plugin = "tanh-mlp"

[discriminator]
plugin = "mlp"
config = { hidden = [128, 128] }

[recipe]
plugin = "relativistic"

[optimizer.generator]
lr = 2e-3

[optimizer.discriminator]
lr = 2e-3

[schedule]
checkpoint_every = 200
keep_checkpoints = 5
sample_count = 500
"#;

fn registry() -> Registry {
    let mut registry = condor_cli::builtin_registry();
    condor_example_relativistic::register(&mut registry).unwrap();
    registry
}

fn condor(args: &[&str]) {
    let mut all = vec!["condor"];
    all.extend(args);
    condor_cli::run_args(all, &registry()).unwrap_or_else(|e| panic!("condor {}: {e:#}", args.join(" ")));
}

/// Share of 1,000 samples within 0.25 of the ring's radius.
fn on_the_ring(checkpoint: &Path) -> f32 {
    let loaded = LoadedGenerator::load(checkpoint, &registry(), &Device::Cpu).unwrap();
    let mut rng = Stream::FixedNoise(Some(9)).rng(0);
    let points = generate(loaded.generator.as_ref(), 1000, None, &mut rng, &Device::Cpu).unwrap();
    let radius = points.sqr().unwrap().sum(1).unwrap().sqrt().unwrap().to_vec1::<f32>().unwrap();
    radius.iter().filter(|r| (**r - 2.0).abs() < 0.25).count() as f32 / 1000.0
}

fn weights(path: &Path) -> Vec<(String, Vec<u32>)> {
    let ckpt = Checkpoint::load(path, &Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<u32>)> = ckpt
        .tensors
        .iter()
        .map(|(n, t)| {
            (n.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn an_out_of_tree_recipe_trains_resumes_and_samples_through_the_cli() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("relativistic.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let config = config.to_str().unwrap();
    let (straight, split) = (tmp.path().join("straight"), tmp.path().join("split"));
    let (straight, split) = (straight.to_str().unwrap(), split.to_str().unwrap());

    condor(&["train", "--config", config, "--device", "cpu", "--run-dir", straight]);
    // The same run in two parts: 200 steps, then resumed to 400.
    condor(&["train", "--config", config, "--device", "cpu", "--run-dir", split, "--steps", "200"]);
    condor(&["train", "--config", config, "--device", "cpu", "--run-dir", split, "--resume"]);
    let last = |dir: &str| Path::new(dir).join("checkpoints/step-000000400.safetensors");
    assert!(weights(&last(straight)) == weights(&last(split)), "the resumed run differs from the straight one");

    // The recipe's scalars reach the log, and the generator learnt the ring.
    let log = std::fs::read_to_string(Path::new(straight).join("log.jsonl")).unwrap();
    assert!(log.lines().count() >= 40 && log.contains("\"loss_d\""), "{log}");
    let (before, after) = (
        on_the_ring(&Path::new(straight).join("checkpoints/step-000000200.safetensors")),
        on_the_ring(&last(straight)),
    );
    println!("samples within 0.25 of the ring: {before} at step 200, {after} at step 400");
    assert!(after > 0.6, "only {after} of the samples lie on the ring after 400 steps");

    // Sampling through the command line, and inspecting.
    let png = tmp.path().join("points.png");
    condor(&[
        "sample",
        "--checkpoint",
        last(straight).to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    condor(&["inspect", last(straight).to_str().unwrap()]);
}

/// The lines of the fenced code block of `language` that starts with `first`, in `markdown`.
fn code_block<'a>(markdown: &'a str, language: &str, first: &str) -> Vec<&'a str> {
    let (fence, mut block): (String, Option<Vec<&str>>) = (format!("```{language}"), None);
    for line in markdown.lines() {
        match &mut block {
            None if line == fence => block = Some(Vec::new()),
            Some(lines) if line == "```" => {
                if lines.first().is_some_and(|l| l.starts_with(first)) {
                    return std::mem::take(lines);
                }
                block = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    panic!("docs/plugins.md has no {language} block starting with {first:?}");
}

/// The lines of `source` between `// ANCHOR: name` and `// ANCHOR_END: name`.
fn anchored<'a>(source: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!("// ANCHOR: {name}");
    let end = format!("// ANCHOR_END: {name}");
    source.lines().skip_while(|l| *l != start).skip(1).take_while(|l| *l != end).collect()
}

#[test]
fn the_plugin_guide_shows_this_crate_s_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("../../docs/plugins.md")).unwrap();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let main = std::fs::read_to_string(root.join("src/main.rs")).unwrap();
    assert_eq!(code_block(&guide, "rust", "/// Config of [`TanhMlp`]"), anchored(&lib, "generator"));
    assert_eq!(code_block(&guide, "rust", "/// Config of [`Relativistic`]"), anchored(&lib, "recipe"));
    assert_eq!(code_block(&guide, "rust", "//! `condor-relativistic`"), main.lines().collect::<Vec<_>>());
    assert_eq!(code_block(&guide, "toml", "name = \"relativistic-ring\""), CONFIG.trim().lines().collect::<Vec<_>>());
}
