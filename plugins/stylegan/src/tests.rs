use super::*;
use crate::layers::ModulatedConv;
use candle_core::{DType, Device, Tensor};
use condor_core::gradcheck::check_gradients;
use condor_core::{
    derived_rng, rng::normal, Conditioning, Discriminator, Generator, NoiseInputs, Params, StyleControl,
};

fn randn(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    normal(&mut derived_rng(seed, &[]), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn tiny_config(augmentation: Option<Augmentation>) -> StyleGanGeneratorConfig {
    StyleGanGeneratorConfig {
        z_dim: 4,
        cond_dim: 5,
        cond_code_dim: 3,
        augmentation,
        w_dim: 6,
        mapping_layers: 2,
        image_size: 8,
        channel_base: 16,
        channel_max: 3,
        ..Default::default()
    }
}

fn tiny_generator(params: &Params, config: StyleGanGeneratorConfig, dtype: DType) -> StyleGanGenerator {
    StyleGanGenerator::new(config, params.var_builder(dtype, &Device::Cpu)).unwrap()
}

fn modulated(params: &Params, demodulate: bool, kernel: usize) -> ModulatedConv {
    ModulatedConv::new(3, 4, kernel, 5, demodulate, params.var_builder(DType::F64, &Device::Cpu)).unwrap()
}

#[test]
fn modulated_convolution_gradients_match_finite_differences() {
    for (demodulate, kernel) in [(true, 3), (false, 1)] {
        let params = Params::new(3);
        let conv = modulated(&params, demodulate, kernel);
        let x = randn(4, &[2, 3, 5, 5], DType::F64);
        let w = randn(5, &[2, 5], DType::F64);
        let target = randn(6, &[2, 4, 5, 5], DType::F64);
        let checked =
            check_gradients(&params, 12, 1e-5, || conv.forward(&x, &w)?.sub(&target)?.sqr()?.mean_all()).unwrap();
        assert!(checked >= 24, "{checked}");
    }
}

#[test]
fn modulated_convolution_equals_convolving_each_sample_with_its_own_kernel() {
    let params = Params::new(7);
    let conv = modulated(&params, true, 3);
    let x = randn(8, &[2, 3, 6, 6], DType::F64);
    let w = randn(9, &[2, 5], DType::F64);
    let out = conv.forward(&x, &w).unwrap();
    let weight =
        (params.named().into_iter().find(|(n, _)| n == "weight").unwrap().1.as_tensor() / 27f64.sqrt()).unwrap();
    let s = conv.styles(&w).unwrap();
    for b in 0..2 {
        // StyleGAN2's fused form: w' = w * s, w'' = w' / sqrt(sum w'^2 + 1e-8).
        let sb = s.get(b).unwrap().reshape((1, 3, 1, 1)).unwrap();
        let modded = weight.broadcast_mul(&sb).unwrap();
        let norm = (modded.sqr().unwrap().sum_keepdim((1, 2, 3)).unwrap() + 1e-8).unwrap().sqrt().unwrap();
        let kernel = modded.broadcast_div(&norm).unwrap();
        let direct = x.get(b).unwrap().unsqueeze(0).unwrap().conv2d(&kernel, 1, 1, 1, 1).unwrap();
        let diff = max_abs_diff(&direct, &out.get(b).unwrap().unsqueeze(0).unwrap());
        assert!(diff < 1e-12, "sample {b}: {diff}");
    }
}

#[test]
fn demodulation_keeps_unit_variance_for_unit_variance_inputs() {
    let params = Params::new(10);
    let vb = params.var_builder(DType::F32, &Device::Cpu);
    let conv = ModulatedConv::new(64, 32, 3, 16, true, vb).unwrap();
    let x = randn(11, &[4, 64, 24, 24], DType::F32);
    // Large styles: without demodulation the output scale would follow them.
    let w = (randn(12, &[4, 16], DType::F32) * 3.0).unwrap();
    let out = conv.forward(&x, &w).unwrap();
    let interior = out.narrow(2, 1, 22).unwrap().narrow(3, 1, 22).unwrap();
    for b in 0..4 {
        let v = values(&interior.get(b).unwrap());
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((std - 1.0).abs() < 0.03 && mean.abs() < 0.03, "sample {b}: mean {mean}, std {std}");
    }
    let plain =
        ModulatedConv::new(64, 32, 3, 16, false, Params::new(10).var_builder(DType::F32, &Device::Cpu)).unwrap();
    let v = values(&plain.forward(&x, &w).unwrap());
    let std = (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
    assert!((std - 1.0).abs() > 0.5, "without demodulation the styles set the scale: {std}");
}

#[test]
fn generator_gradients_match_finite_differences_with_mixing_and_augmentation() {
    for augmentation in [None, Some(Augmentation { dim: 2, kl_weight: 0.5 })] {
        let params = Params::new(13);
        let g = tiny_generator(&params, tiny_config(augmentation), DType::F64);
        g.set_noise_strength(0.3).unwrap();
        let z = randn(14, &[3, g.latent_dim()], DType::F64);
        let cond = Conditioning::from_embedding(randn(15, &[3, 5], DType::F64)).unwrap();
        let target = randn(16, &[3, 3, 8, 8], DType::F64);
        let checked = check_gradients(&params, 3, 1e-4, || {
            let out = g.forward(&z, Some(&cond), true).map_err(candle_core::Error::wrap)?;
            let mse = out.sub(&target)?.sqr()?.mean_all()?;
            match g.regularization(Some(&cond)).map_err(candle_core::Error::wrap)? {
                Some(kl) => mse + kl,
                None => Ok(mse),
            }
        })
        .unwrap();
        assert!(checked >= 60, "{checked}");
    }
}

#[test]
fn discriminator_gradients_match_finite_differences_with_and_without_the_text_concatenation() {
    for text_concat in [0, 2] {
        let params = Params::new(17);
        let config = ResidualDiscriminatorConfig {
            cond_dim: 5,
            image_size: 8,
            channel_base: 16,
            channel_max: 3,
            mbstd_group: 2,
            text_concat,
            ..Default::default()
        };
        let d = ResidualDiscriminator::new(config, params.var_builder(DType::F64, &Device::Cpu)).unwrap();
        assert_eq!(params.named().iter().any(|(n, _)| n.starts_with("text_code")), text_concat > 0);
        let x = randn(18, &[4, 3, 8, 8], DType::F64);
        let cond = Conditioning::from_embedding(randn(19, &[4, 5], DType::F64)).unwrap();
        let checked = check_gradients(&params, 4, 1e-5, || {
            let logits = d.forward(&x, Some(&cond), true).map_err(candle_core::Error::wrap)?;
            (logits.neg()?.exp()? + 1.0)?.log()?.mean_all()
        })
        .unwrap();
        assert!(checked >= 40, "{checked}");
    }
}

#[test]
fn minibatch_features_that_do_not_divide_the_channels_are_refused_at_build_time() {
    // channel_max 3 gives 3 channels at 4x4: 3 features split them, 2 do not.
    let build = |mbstd_features| {
        let config = ResidualDiscriminatorConfig {
            image_size: 8,
            channel_base: 16,
            channel_max: 3,
            mbstd_features,
            ..Default::default()
        };
        ResidualDiscriminator::new(config, Params::new(1).var_builder(DType::F32, &Device::Cpu))
    };
    assert!(build(3).is_ok());
    let err = build(2).err().unwrap().to_string();
    assert!(err.contains("mbstd_features") && err.contains("stylegan discriminator"), "{err}");
}

#[test]
fn the_text_concatenation_lets_the_last_convolution_read_the_caption() {
    // With the projection's weights at zero, only the concatenated code can carry the caption.
    let config = ResidualDiscriminatorConfig {
        cond_dim: 5,
        image_size: 8,
        channel_base: 16,
        channel_max: 3,
        text_concat: 4,
        ..Default::default()
    };
    let x = randn(21, &[4, 3, 8, 8], DType::F32);
    let captions = [randn(22, &[4, 5], DType::F32), randn(23, &[4, 5], DType::F32)];
    let spread = |text_concat: usize| {
        let params = Params::new(24);
        let config = ResidualDiscriminatorConfig { text_concat, ..config.clone() };
        let d = ResidualDiscriminator::new(config, params.var_builder(DType::F32, &Device::Cpu)).unwrap();
        for (name, var) in params.named() {
            if name.starts_with("projection") {
                var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
            }
        }
        let [a, b] =
            captions.clone().map(|e| d.forward(&x, Some(&Conditioning::from_embedding(e).unwrap()), false).unwrap());
        max_abs_diff(&a, &b)
    };
    assert_eq!(spread(0), 0.0);
    assert!(spread(4) > 1e-3, "{}", spread(4));
    let unconditional = ResidualDiscriminator::new(
        ResidualDiscriminatorConfig { cond_dim: 0, ..config },
        Params::new(0).var_builder(DType::F32, &Device::Cpu),
    );
    assert!(unconditional.err().unwrap().to_string().contains("text_concat needs a conditioning"));
}

#[test]
fn noise_strength_zero_makes_the_output_independent_of_the_noise() {
    let params = Params::new(20);
    let g = tiny_generator(&params, tiny_config(None), DType::F64);
    let z = randn(21, &[3, g.latent_dim()], DType::F64);
    let cond = Conditioning::from_embedding(randn(22, &[3, 5], DType::F64)).unwrap();
    let ws = g.map(&z, Some(&cond)).unwrap().unsqueeze(1).unwrap().repeat((1, g.style_count(), 1)).unwrap();
    let draw = |mode| g.synthesize(&ws, &z, mode).unwrap();
    // Noise strengths start at zero.
    assert_eq!(max_abs_diff(&draw(NoiseInputs::FromLatent), &draw(NoiseInputs::Zero)), 0.0);
    assert_eq!(max_abs_diff(&draw(NoiseInputs::Fixed), &draw(NoiseInputs::Zero)), 0.0);
    g.set_noise_strength(0.5).unwrap();
    assert!(max_abs_diff(&draw(NoiseInputs::FromLatent), &draw(NoiseInputs::Zero)) > 1e-3);
    assert!(max_abs_diff(&draw(NoiseInputs::FromLatent), &draw(NoiseInputs::Fixed)) > 1e-3);
    g.set_noise_strength(0.0).unwrap();
    assert_eq!(max_abs_diff(&draw(NoiseInputs::FromLatent), &draw(NoiseInputs::Fixed)), 0.0);
}

#[test]
fn inference_forward_is_the_synthesis_of_the_mapped_style_and_training_mixes_styles() {
    let params = Params::new(23);
    let g = tiny_generator(&params, StyleGanGeneratorConfig { style_mixing: 1.0, ..tiny_config(None) }, DType::F64);
    g.set_noise_strength(0.2).unwrap();
    let z = randn(24, &[4, g.latent_dim()], DType::F64);
    let cond = Conditioning::from_embedding(randn(25, &[4, 5], DType::F64)).unwrap();
    let plain = g.forward(&z, Some(&cond), false).unwrap();
    let ws = g.map(&z, Some(&cond)).unwrap().unsqueeze(1).unwrap().repeat((1, g.style_count(), 1)).unwrap();
    assert_eq!(max_abs_diff(&plain, &g.synthesize(&ws, &z, NoiseInputs::FromLatent).unwrap()), 0.0);
    // The same latent gives the same image; with mixing always on, training differs from inference.
    assert_eq!(max_abs_diff(&plain, &g.forward(&z, Some(&cond), false).unwrap()), 0.0);
    for b in 0..4 {
        let row = |t: &Tensor| t.get(b).unwrap();
        assert!(max_abs_diff(&row(&plain), &row(&g.forward(&z, Some(&cond), true).unwrap())) > 1e-6, "sample {b}");
    }
    let unmixed = tiny_generator(
        &Params::new(23),
        StyleGanGeneratorConfig { style_mixing: 0.0, ..tiny_config(None) },
        DType::F64,
    );
    unmixed.set_noise_strength(0.2).unwrap();
    let a = unmixed.forward(&z, Some(&cond), true).unwrap();
    assert_eq!(max_abs_diff(&a, &unmixed.forward(&z, Some(&cond), false).unwrap()), 0.0);
}

#[test]
fn training_tracks_the_average_style() {
    let params = Params::new(26);
    let config = StyleGanGeneratorConfig { w_avg_decay: 0.9, ..tiny_config(None) };
    let g = tiny_generator(&params, config, DType::F64);
    assert_eq!(values(&g.average_style().unwrap()), vec![0.0; 6]);
    let z = randn(27, &[5, g.latent_dim()], DType::F64);
    let cond = Conditioning::from_embedding(randn(28, &[5, 5], DType::F64)).unwrap();
    g.forward(&z, Some(&cond), false).unwrap();
    assert_eq!(values(&g.average_style().unwrap()), vec![0.0; 6], "inference leaves it alone");
    g.forward(&z, Some(&cond), true).unwrap();
    let mean = values(&g.map(&z, Some(&cond)).unwrap().mean(0).unwrap());
    for (a, m) in values(&g.average_style().unwrap()).iter().zip(mean) {
        assert!((a - 0.1 * m).abs() < 1e-12);
    }
    // It is a buffer: saved with the weights, never trained.
    let names: Vec<String> = params.named().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"mapping.w_avg_buffer".to_string()));
    assert!(params.trainable().iter().all(|(n, _)| !n.ends_with("_buffer")));
}

#[test]
fn shapes_sizes_and_registry_defaults() {
    let mut registry = condor_core::Registry::new();
    register(&mut registry).unwrap();
    let spec: condor_core::ModelSpec = serde_json::from_str(
        r#"{"plugin": "stylegan", "config": {"cond_dim": 7, "image_size": 16, "augmentation": {"dim": 4}}}"#,
    )
    .unwrap();
    let resolved = registry.resolve_generator(&spec).unwrap();
    assert_eq!(resolved.config["mapping_layers"], 8);
    assert_eq!(resolved.config["w_dim"], 256);
    for size in [8, 16, 64] {
        let g = StyleGanGenerator::new(
            StyleGanGeneratorConfig {
                image_size: size,
                w_dim: 8,
                z_dim: 4,
                mapping_layers: 2,
                channel_base: 64,
                channel_max: 4,
                ..Default::default()
            },
            Params::new(0).var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        let blocks = (size as f64).log2() as usize - 1;
        assert_eq!(g.style_count(), 2 * blocks);
        let img = g.forward(&randn(1, &[2, 4], DType::F32), None, true).unwrap();
        assert_eq!(img.dims(), &[2, 3, size, size]);
        let d = ResidualDiscriminator::new(
            ResidualDiscriminatorConfig { image_size: size, channel_base: 64, channel_max: 4, ..Default::default() },
            Params::new(1).var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        assert_eq!(d.forward(&img, None, true).unwrap().dims(), &[2]);
    }
    let g = registry.build_generator(&resolved, Params::new(0).var_builder(DType::F32, &Device::Cpu)).unwrap();
    assert_eq!(g.latent_dim(), 128 + 4);
    assert!(g.styles().is_some());
    let bad = StyleGanGenerator::new(
        StyleGanGeneratorConfig { image_size: 48, ..Default::default() },
        Params::new(0).var_builder(DType::F32, &Device::Cpu),
    );
    assert!(bad.err().unwrap().to_string().contains("power of two"));
    let err = g.forward(&randn(1, &[2, 5], DType::F32), None, false).unwrap_err().to_string();
    assert!(err.contains("(batch, 132)"), "{err}");
}
