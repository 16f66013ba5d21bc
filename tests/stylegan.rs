//! The StyleGAN-like plugins end to end: a tiny text-conditioned run with style mixing and the lazy R1
//! penalty trains, resumes bit-exactly, rebuilds from its checkpoint through the registry, and samples
//! through txt2img with truncation and style mixing.

mod common;

use common::max_abs_diff;

use candle_core::{DType, Device, Tensor};
use condor::core::{Conditioning, ModelSpec, NoiseInputs};
use condor::infer::styles::{generate_styled, style_mixing_grid, StyleMix, StyleOptions};
use condor::infer::TextToImage;
use condor::train::regularizers::R1Config;
use condor::train::{train, RunConfig, RunOptions, ScheduleConfig};
use condor::txt2img::{run as sample, SampleArgs};
use serde_json::json;

fn tiny_stylegan(steps: u64, cache: &std::path::Path) -> RunConfig {
    RunConfig {
        name: "tiny-stylegan".into(),
        seed: 3,
        steps,
        batch_size: 4,
        data: common::tiny_birds_data(),
        generator: ModelSpec::new(
            "stylegan",
            json!({"z_dim": 8, "cond_dim": 384, "w_dim": 16, "mapping_layers": 2, "image_size": 32,
                   "channel_base": 32, "channel_max": 8, "augmentation": {"dim": 8, "kl_weight": 1.0}}),
        )
        .unwrap(),
        discriminator: ModelSpec::new(
            "stylegan",
            json!({"cond_dim": 384, "image_size": 32, "channel_base": 32, "channel_max": 8}),
        )
        .unwrap(),
        recipe: None,
        training: condor::train::TrainingConfig {
            gan_cls: true,
            gan_int: true,
            r1: Some(R1Config { gamma: 1.0, every: 2, step: 1e-2 }),
            ema: Some(condor::train::EmaConfig { decay: 0.9, start_step: 1, ..Default::default() }),
            ..Default::default()
        },
        optimizer: Default::default(),
        schedule: ScheduleConfig { checkpoint_every: 2, sample_every: 2, preview_columns: 2, ..Default::default() },
        text: condor::train::config::TextConfig { cache_dir: cache.to_path_buf(), ..Default::default() },
    }
}

#[test]
fn a_tiny_stylegan_run_resumes_bit_exactly_and_samples_with_truncation_and_mixing() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = condor::registry();
    let options = |dir: &str, resume| RunOptions::quiet(tmp.path().join(dir), resume);
    let whole = train(tiny_stylegan(4, tmp.path()), &registry, &Device::Cpu, options("whole", false)).unwrap();
    let last = whole.last.unwrap();
    assert!(last.loss_d.is_finite() && last.loss_g.is_finite());
    train(tiny_stylegan(2, tmp.path()), &registry, &Device::Cpu, options("split", false)).unwrap();
    let resumed = train(tiny_stylegan(4, tmp.path()), &registry, &Device::Cpu, options("split", true)).unwrap();
    let load = |p: &std::path::Path| condor::train::Checkpoint::load(p, &Device::Cpu).unwrap().tensors;
    let (a, b) = (load(&whole.checkpoint), load(&resumed.checkpoint));
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        assert_eq!(
            max_abs_diff(&t.to_dtype(DType::F32).unwrap(), &b[name].to_dtype(DType::F32).unwrap()),
            0.0,
            "{name} differs after resume"
        );
    }
    // The tracked w average is in the checkpoint and has moved; R1 was applied on steps 1 and 3.
    let w_avg = &a["ema.mapping.w_avg_buffer"];
    assert!(w_avg.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    let log = std::fs::read_to_string(tmp.path().join("whole/log.jsonl")).unwrap();
    let r1: Vec<f64> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["r1_penalty"].as_f64().unwrap())
        .collect();
    assert!(r1[0] > 0.0 && r1[1] == 0.0 && r1[2] > 0.0 && r1[3] == 0.0, "{r1:?}");

    // The checkpoint rebuilds through the registry; truncation at psi = 1 changes nothing, at psi = 0
    // (fixed noise) every latent under one prompt gives the same image, and prompts still differ.
    let model = TextToImage::load(&whole.checkpoint, &registry, &Device::Cpu).unwrap();
    let g = model.generator();
    let prompts = vec!["a red bird".to_string(), "a blue bird".to_string()];
    let (cond, _) = model.encode(&prompts).unwrap();
    let n = 3;
    let rows = |i: usize| {
        Conditioning::from_embedding(cond.embedding.narrow(0, i, 1).unwrap().repeat((n, 1)).unwrap()).unwrap()
    };
    let z =
        condor::core::rng::normal(&mut condor::core::derived_rng(9, &[]), (n, g.latent_dim()), &Device::Cpu).unwrap();
    let plain = g.forward(&z, Some(&rows(0)), false).unwrap();
    let one =
        generate_styled(g, &z, Some(&rows(0)), &StyleOptions { truncation: Some(1.0), noise: NoiseInputs::FromLatent })
            .unwrap();
    assert_eq!(max_abs_diff(&plain, &one), 0.0, "psi = 1 leaves samples unchanged");
    let zero = StyleOptions { truncation: Some(0.0), noise: NoiseInputs::Fixed };
    let red = generate_styled(g, &z, Some(&rows(0)), &zero).unwrap();
    let blue = generate_styled(g, &z, Some(&rows(1)), &zero).unwrap();
    for i in 1..n {
        assert!(max_abs_diff(&red.get(0).unwrap(), &red.get(i).unwrap()) < 1e-6, "psi = 0: one image per prompt");
    }
    assert!(max_abs_diff(&red, &blue) > 1e-4, "psi = 0 keeps the prompt (per-condition centres)");
    let half =
        generate_styled(g, &z, Some(&rows(0)), &StyleOptions { truncation: Some(0.5), noise: NoiseInputs::Fixed })
            .unwrap();
    let spread = |t: &Tensor| max_abs_diff(&t.get(0).unwrap(), &t.get(1).unwrap());
    let full =
        generate_styled(g, &z, Some(&rows(0)), &StyleOptions { truncation: None, noise: NoiseInputs::Fixed }).unwrap();
    assert!(spread(&half) < spread(&full), "psi = 0.5 brings images closer together");

    // The mixing grid: the top row is the fine prompt's images, the left column the coarse prompt's.
    let (r0, r1) = (rows(0), rows(1));
    let mix = StyleMix { coarse: Some(&r0), fine: Some(&r1), n, crossover: 3, seed: 0 };
    let err = style_mixing_grid(g, &mix, &StyleOptions::default(), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("one conditioning row"), "{err}");
    let one_row = |i: usize| Conditioning::from_embedding(cond.embedding.narrow(0, i, 1).unwrap()).unwrap();
    let (o0, o1) = (one_row(0), one_row(1));
    let mix = StyleMix { coarse: Some(&o0), fine: Some(&o1), n, crossover: 3, seed: 0 };
    let grid = style_mixing_grid(g, &mix, &StyleOptions::default(), &Device::Cpu).unwrap();
    assert_eq!(grid.dims(), &[(n + 1) * (n + 1), 3, 32, 32]);
    assert_eq!(grid.get(0).unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), -1.0, "blank corner");

    // txt2img with --checkpoint: plain, truncated and mixed grids; bad requests are clear errors.
    let out = tmp.path().join("s.png");
    let args = SampleArgs {
        checkpoint: Some(whole.checkpoint.clone()),
        n: Some(n),
        out: Some(out.clone()),
        ..SampleArgs::for_prompts(prompts.clone())
    };
    sample(&args, &mut |_| {}).unwrap();
    let plain_png = std::fs::read(&out).unwrap();
    let mut psi1 = args.clone();
    psi1.style.truncation = Some(1.0);
    sample(&psi1, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), plain_png, "--truncation 1 draws the same PNG");
    let mut mixed = args.clone();
    mixed.style_mix = true;
    let mut said = Vec::new();
    sample(&mixed, &mut |l| said.push(l)).unwrap();
    assert!(said[0].contains("style mixing"), "{said:?}");
    let img = image::open(&out).unwrap();
    assert_eq!(img.width(), (n as u32 + 1) * (32 * 3 + 8), "(n + 1) columns of 32 px zoomed 3x");
    mixed.prompts.pop();
    assert!(sample(&mixed, &mut |_| {}).unwrap_err().to_string().contains("exactly two prompts"));
    let mut bad = args;
    bad.style.noise = "loud".into();
    assert!(sample(&bad, &mut |_| {}).unwrap_err().to_string().contains("latent, fixed or zero"));
}

#[test]
fn unconditional_truncation_pulls_toward_the_tracked_average_style() {
    let registry = condor::registry();
    let spec = ModelSpec::new(
        "stylegan",
        json!({"z_dim": 8, "w_dim": 16, "mapping_layers": 2, "image_size": 8, "channel_base": 32, "channel_max": 4}),
    )
    .unwrap();
    let params = condor::core::Params::new(1);
    let g = registry.build_generator(&spec, params.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let z = condor::core::rng::normal(&mut condor::core::derived_rng(2, &[]), (6, 8), &Device::Cpu).unwrap();
    g.forward(&z, None, true).unwrap(); // a training pass moves the tracked average off zero
    let sc = g.styles().unwrap();
    let w_avg = sc.average_style().unwrap();
    assert!(w_avg.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    let at_centre =
        generate_styled(g.as_ref(), &z, None, &StyleOptions { truncation: Some(0.0), noise: NoiseInputs::Zero })
            .unwrap();
    let ws = w_avg.reshape((1, 1, 16)).unwrap().repeat((6, sc.style_count(), 1)).unwrap();
    let expected = sc.synthesize(&ws, &z, NoiseInputs::Zero).unwrap();
    assert!(max_abs_diff(&at_centre, &expected) < 1e-6);
}
