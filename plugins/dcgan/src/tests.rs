use super::*;
use candle_core::{DType, Device};
use condor_core::gradcheck::check_gradients;
use condor_core::{derived_rng, rng::normal, Params};

fn randn(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    normal(&mut derived_rng(seed, &[]), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn tiny_generator(params: &Params, augmentation: Option<Augmentation>, dtype: DType) -> DcganGenerator {
    tiny_generator_with(params, augmentation, Upsampling::Transposed, dtype)
}

fn tiny_generator_with(
    params: &Params,
    augmentation: Option<Augmentation>,
    upsample: Upsampling,
    dtype: DType,
) -> DcganGenerator {
    let config = DcganGeneratorConfig {
        noise_dim: 3,
        cond_dim: 5,
        cond_proj_dim: 4,
        augmentation,
        image_size: 32,
        channels: 3,
        width: 2,
        upsample,
        fusion: false,
        layout: None,
    };
    DcganGenerator::new(config, params.var_builder(dtype, &Device::Cpu)).unwrap()
}

#[test]
fn shapes_at_every_resolution_conditional_and_not() {
    for (size, upsample) in
        [32, 64, 128].into_iter().flat_map(|s| [(s, Upsampling::Transposed), (s, Upsampling::Resize)])
    {
        for cond_dim in [0, 6] {
            let (gp, dp) = (Params::new(0), Params::new(1));
            let vb = |p: &Params| p.var_builder(DType::F32, &Device::Cpu);
            let config = DcganGeneratorConfig {
                cond_dim,
                image_size: size,
                width: 4,
                noise_dim: 8,
                upsample,
                ..Default::default()
            };
            let g = DcganGenerator::new(config, vb(&gp)).unwrap();
            let d = DcganDiscriminator::new(
                DcganDiscriminatorConfig { cond_dim, image_size: size, width: 4, ..Default::default() },
                vb(&dp),
            )
            .unwrap();
            let cond =
                (cond_dim > 0).then(|| Conditioning::from_embedding(randn(2, &[2, cond_dim], DType::F32)).unwrap());
            let img = g.forward(&randn(1, &[2, 8], DType::F32), cond.as_ref(), true).unwrap();
            assert_eq!(img.dims(), &[2, 3, size, size]);
            let max = img.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(max <= 1.0, "tanh output");
            assert_eq!(d.forward(&img, cond.as_ref(), true).unwrap().dims(), &[2]);
        }
    }
}

#[test]
fn generator_gradients_match_finite_differences_with_and_without_augmentation_for_both_upsamplings() {
    let augmented = Some(Augmentation { dim: 2, kl_weight: 0.5 });
    for (augmentation, upsample) in
        [(None, Upsampling::Transposed), (augmented, Upsampling::Transposed), (augmented, Upsampling::Resize)]
    {
        let params = Params::new(3);
        let g = tiny_generator_with(&params, augmentation, upsample, DType::F64);
        let z = randn(4, &[3, g.latent_dim()], DType::F64);
        let cond = Conditioning::from_embedding(randn(5, &[3, 5], DType::F64)).unwrap();
        let target = randn(6, &[3, 3, 32, 32], DType::F64);
        let checked = check_gradients(&params, 4, 1e-4, || {
            let out = g.forward(&z, Some(&cond), true).map_err(candle_core::Error::wrap)?;
            let mse = out.sub(&target)?.sqr()?.mean_all()?;
            match g.regularization(Some(&cond)).map_err(candle_core::Error::wrap)? {
                Some(kl) => mse + kl,
                None => Ok(mse),
            }
        })
        .unwrap();
        assert!(checked >= 30, "{checked}");
    }
}

#[test]
fn discriminator_gradients_match_finite_differences() {
    let batch = DiscriminatorNorm::Batch;
    for (projection, mbstd_group, norm) in [
        (false, 0, batch),
        (true, 0, batch),
        (true, 3, batch),
        (true, 3, DiscriminatorNorm::Layer),
        (true, 0, DiscriminatorNorm::None),
    ] {
        let params = Params::new(7);
        let config = DcganDiscriminatorConfig {
            cond_dim: 5,
            cond_proj_dim: 3,
            image_size: 32,
            width: 2,
            projection,
            mbstd_group,
            norm,
            ..Default::default()
        };
        let d = DcganDiscriminator::new(config, params.var_builder(DType::F64, &Device::Cpu)).unwrap();
        assert_eq!(params.named().iter().any(|(n, _)| n.starts_with("projection")), projection);
        let x = randn(8, &[3, 3, 32, 32], DType::F64);
        let cond = Conditioning::from_embedding(randn(9, &[3, 5], DType::F64)).unwrap();
        let checked = check_gradients(&params, 4, 1e-4, || {
            let logits = d.forward(&x, Some(&cond), true).map_err(candle_core::Error::wrap)?;
            // softplus(-logits): the non-saturating loss on real samples.
            (logits.neg()?.exp()? + 1.0)?.log()?.mean_all()
        })
        .unwrap();
        assert!(checked >= 30, "{checked}");
    }
}

#[test]
fn without_batch_norm_each_training_logit_sees_only_its_own_image() {
    // In training mode batch norm normalises by the batch's statistics, so changing sample 2 moves every
    // logit; layer norm and no norm keep the samples apart.
    let x = randn(30, &[4, 3, 32, 32], DType::F32);
    let changed = x.slice_assign(&[2..3, 0..3, 0..32, 0..32], &randn(31, &[1, 3, 32, 32], DType::F32)).unwrap();
    let cond = Conditioning::from_embedding(randn(32, &[4, 5], DType::F32)).unwrap();
    for norm in [DiscriminatorNorm::Batch, DiscriminatorNorm::Layer, DiscriminatorNorm::None] {
        let params = Params::new(33);
        let config = DcganDiscriminatorConfig {
            cond_dim: 5,
            image_size: 32,
            width: 4,
            projection: true,
            norm,
            ..Default::default()
        };
        let d = DcganDiscriminator::new(config, params.var_builder(DType::F32, &Device::Cpu)).unwrap();
        let logits = |x: &Tensor| -> Vec<f32> { d.forward(x, Some(&cond), true).unwrap().to_vec1().unwrap() };
        let (before, after) = (logits(&x), logits(&changed));
        let others_moved = [0, 1, 3].iter().any(|&i| (before[i] - after[i]).abs() > 1e-6);
        assert_eq!(others_moved, norm == DiscriminatorNorm::Batch, "{norm:?}: {before:?} -> {after:?}");
        assert!((before[2] - after[2]).abs() > 1e-6, "{norm:?}");
        let names: Vec<String> = params.named().into_iter().map(|(n, _)| n).collect();
        let has = |n: &str| names.iter().any(|m| m == n);
        assert_eq!(has("down1_bn.running_mean"), norm == DiscriminatorNorm::Batch, "{names:?}");
        assert_eq!(has("joint_ln.weight"), norm == DiscriminatorNorm::Layer, "{names:?}");
        assert_eq!(has("down2.bias"), norm == DiscriminatorNorm::None, "{names:?}");
    }
}

#[test]
fn layer_norm_gives_each_image_zero_mean_and_unit_variance_then_scales_per_channel() {
    let params = Params::new(40);
    let vb = params.var_builder(DType::F64, &Device::Cpu);
    let norm = Norm::new(DiscriminatorNorm::Layer, 3, "n", &vb).unwrap();
    let Norm::Layer { weight, bias } = &norm else { panic!("layer norm") };
    let (scale, shift) = ([0.5, 2.0, -1.0], [0.1, -0.3, 0.0]);
    for (name, values) in [("n_ln.weight", scale), ("n_ln.bias", shift)] {
        let (_, var) = params.named().into_iter().find(|(n, _)| n == name).unwrap();
        var.set(&Tensor::new(&values, &Device::Cpu).unwrap()).unwrap();
    }
    assert_eq!(weight.dims(), &[3]);
    assert_eq!(bias.dims(), &[3]);
    let x = ((randn(41, &[2, 3, 4, 4], DType::F64) * 3.0).unwrap() + 5.0).unwrap();
    let y = norm.forward_act(&x, true, Activation::Identity).unwrap();
    let (xs, ys): (Vec<f64>, Vec<f64>) =
        (x.flatten_all().unwrap().to_vec1().unwrap(), y.flatten_all().unwrap().to_vec1().unwrap());
    for image in 0..2 {
        let v = &xs[image * 48..(image + 1) * 48];
        let mean = v.iter().sum::<f64>() / 48.0;
        let std = (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 48.0 + LAYER_NORM_EPS).sqrt();
        for (i, (&a, &b)) in v.iter().zip(&ys[image * 48..(image + 1) * 48]).enumerate() {
            let c = i / 16;
            let expected = (a - mean) / std * scale[c] + shift[c];
            assert!((b - expected).abs() < 1e-12, "image {image} entry {i}: {b} vs {expected}");
        }
    }
}

#[test]
fn layer_norm_of_half_precision_features_matches_float64() {
    // Features far from zero: their sums overflow a half-precision accumulator's resolution.
    let x = ((randn(42, &[2, 64, 8, 8], DType::F32) * 2.0).unwrap() + 60.0).unwrap();
    for dtype in [DType::BF16, DType::F16] {
        let params = Params::new(43);
        let norm = Norm::new(DiscriminatorNorm::Layer, 64, "n", &params.var_builder(dtype, &Device::Cpu)).unwrap();
        let reference = Params::new(43);
        let exact =
            Norm::new(DiscriminatorNorm::Layer, 64, "n", &reference.var_builder(DType::F64, &Device::Cpu)).unwrap();
        reference.copy_from(&params).unwrap();
        let input = x.to_dtype(dtype).unwrap();
        let y = norm.forward_act(&input, true, Activation::Identity).unwrap();
        assert_eq!(y.dtype(), dtype);
        let want = exact.forward_act(&input.to_dtype(DType::F64).unwrap(), true, Activation::Identity).unwrap();
        let err = (y.to_dtype(DType::F64).unwrap() - want).unwrap().abs().unwrap().max_all().unwrap();
        let err = err.to_scalar::<f64>().unwrap();
        assert!(err < 0.05, "{dtype:?}: largest error {err}");
    }
}

#[test]
fn minibatch_stddev_lets_each_logit_see_its_group() {
    // In inference mode (batch norm from running statistics) a sample's logit depends on the other
    // samples only through the minibatch standard deviation: with groups of 2 (samples 0 and 2, 1 and
    // 3), changing sample 2 moves logit 0 but not logit 1; without the statistic it moves neither.
    let x = randn(20, &[4, 3, 32, 32], DType::F32);
    let changed = x.slice_assign(&[2..3, 0..3, 0..32, 0..32], &randn(21, &[1, 3, 32, 32], DType::F32)).unwrap();
    for cond_dim in [0, 5] {
        let cond = (cond_dim > 0).then(|| Conditioning::from_embedding(randn(22, &[4, 5], DType::F32)).unwrap());
        for mbstd_group in [0, 2] {
            let params = Params::new(23);
            let config =
                DcganDiscriminatorConfig { cond_dim, image_size: 32, width: 4, mbstd_group, ..Default::default() };
            let d = DcganDiscriminator::new(config, params.var_builder(DType::F32, &Device::Cpu)).unwrap();
            let logits = |x: &Tensor| -> Vec<f32> { d.forward(x, cond.as_ref(), false).unwrap().to_vec1().unwrap() };
            let (before, after) = (logits(&x), logits(&changed));
            assert_eq!(before.len(), 4);
            assert_eq!(before[1], after[1]);
            assert_eq!(before[3], after[3]);
            assert_eq!(before[0] != after[0], mbstd_group > 0, "cond_dim {cond_dim}, group {mbstd_group}");
        }
    }
    let bad =
        DcganDiscriminatorConfig { image_size: 32, width: 4, mbstd_group: 4, mbstd_features: 3, ..Default::default() };
    let err = DcganDiscriminator::new(bad, Params::new(1).var_builder(DType::F32, &Device::Cpu)).err().unwrap();
    assert!(err.to_string().contains("mbstd_features"), "{err}");
}

#[test]
fn the_projection_term_is_the_inner_product_of_the_projected_embedding_and_the_pooled_features() {
    // Two discriminators with the same weights, one with the projection term: their logits differ
    // by <V e, sum_xy h> exactly, with h the 4x4 features before the text is joined.
    let params = Params::new(3);
    let base =
        DcganDiscriminatorConfig { cond_dim: 5, cond_proj_dim: 3, image_size: 32, width: 2, ..Default::default() };
    let with = DcganDiscriminator::new(
        DcganDiscriminatorConfig { projection: true, ..base.clone() },
        params.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    let without = DcganDiscriminator::new(base, params.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let x = randn(4, &[2, 3, 32, 32], DType::F64);
    let e = randn(5, &[2, 5], DType::F64);
    let cond = Conditioning::from_embedding(e.clone()).unwrap();
    let diff = (with.forward(&x, Some(&cond), false).unwrap() - without.forward(&x, Some(&cond), false).unwrap())
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    // The features: the same stages, evaluated by hand (eval mode: running statistics 0 and 1).
    let mut h = candle_nn::ops::leaky_relu(&without.trunk.first.forward(&x).unwrap(), 0.2).unwrap();
    for (conv, norm) in &without.trunk.downs {
        let y = norm.forward_act(&conv.forward(&h).unwrap(), false, Activation::Identity).unwrap();
        h = candle_nn::ops::leaky_relu(&y, 0.2).unwrap();
    }
    let v = params.named().into_iter().find(|(n, _)| n == "projection.weight").unwrap().1;
    let expected = (e.matmul(&v.as_tensor().t().unwrap()).unwrap() * h.sum((2, 3)).unwrap())
        .unwrap()
        .sum(1)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for (a, b) in diff.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{diff:?} vs {expected:?}");
    }
    assert!(expected.iter().all(|v| v.abs() > 1e-6), "the term is not trivially zero: {expected:?}");
}

#[test]
fn augmentation_kl_matches_its_formula_and_samples_mu_plus_sigma_eps() {
    let params = Params::new(11);
    let g = tiny_generator(&params, Some(Augmentation { dim: 2, kl_weight: 2.0 }), DType::F64);
    assert_eq!(g.latent_dim(), 3 + 2);
    let e = randn(12, &[4, 5], DType::F64);
    let (mu, ls) = g.augmentation_stats(&e).unwrap().unwrap();
    let (mu, ls): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (mu.to_vec2().unwrap(), ls.to_vec2().unwrap());
    let mut expected = 0.0;
    for (m, l) in mu.iter().flatten().zip(ls.iter().flatten()) {
        // KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2)/2 - 1/2
        let s = l.exp();
        expected += -s.ln() + (s * s + m * m) / 2.0 - 0.5;
    }
    expected = 2.0 * expected / 8.0;
    let cond = Conditioning::from_embedding(e.clone()).unwrap();
    let kl = g.regularization(Some(&cond)).unwrap().unwrap().to_scalar::<f64>().unwrap();
    assert!((kl - expected).abs() < 1e-12, "{kl} vs {expected}");
    // The code is mu + sigma * eps, with eps the latent's last entries.
    let eps = randn(13, &[4, 2], DType::F64);
    let code: Vec<Vec<f64>> = g.text_code(&cond, &eps).unwrap().to_vec2().unwrap();
    let eps: Vec<Vec<f64>> = eps.to_vec2().unwrap();
    for i in 0..4 {
        for j in 0..2 {
            assert!((code[i][j] - (mu[i][j] + ls[i][j].exp() * eps[i][j])).abs() < 1e-12);
        }
    }
    // Without augmentation there is no extra loss.
    let plain = tiny_generator(&Params::new(11), None, DType::F64);
    assert!(plain.regularization(Some(&cond)).unwrap().is_none());
}

#[test]
fn conditioning_changes_the_image_and_bad_inputs_are_errors() {
    let params = Params::new(2);
    let g = tiny_generator(&params, None, DType::F32);
    let z = randn(1, &[2, 3], DType::F32);
    let a = Conditioning::from_embedding(randn(2, &[2, 5], DType::F32)).unwrap();
    let b = Conditioning::from_embedding(randn(3, &[2, 5], DType::F32)).unwrap();
    let diff = (g.forward(&z, Some(&a), true).unwrap() - g.forward(&z, Some(&b), true).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff > 1e-4, "the caption must matter");
    assert!(g.forward(&z, None, false).unwrap_err().to_string().contains("conditional"));
    assert!(g.forward(&randn(1, &[2, 4], DType::F32), Some(&a), false).is_err());
    let d = DcganDiscriminator::new(
        DcganDiscriminatorConfig { image_size: 32, width: 2, ..Default::default() },
        Params::new(0).var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    let err = d.forward(&randn(1, &[2, 3, 64, 64], DType::F32), None, false).unwrap_err().to_string();
    assert!(err.contains("(batch, 3, 32, 32)"), "{err}");
    let bad = DcganGenerator::new(
        DcganGeneratorConfig { image_size: 48, ..Default::default() },
        Params::new(0).var_builder(DType::F32, &Device::Cpu),
    );
    assert!(bad.err().unwrap().to_string().contains("32, 64 or 128"));
}

#[test]
fn registry_builds_dcgan_from_partial_config() {
    let mut registry = Registry::new();
    register(&mut registry).unwrap();
    let spec: condor_core::ModelSpec = serde_json::from_str(
        r#"{"plugin": "dcgan", "config": {"cond_dim": 384, "image_size": 32, "augmentation": {"kl_weight": 2.0}}}"#,
    )
    .unwrap();
    let resolved = registry.resolve_generator(&spec).unwrap();
    assert_eq!(resolved.config["augmentation"]["dim"], 128);
    assert_eq!(resolved.config["width"], 64);
    let g = registry.build_generator(&resolved, Params::new(0).var_builder(DType::F32, &Device::Cpu)).unwrap();
    assert_eq!(g.latent_dim(), 100 + 128);
    assert_eq!(g.sample_shape(), vec![3, 32, 32]);
}

#[test]
fn generator_gradients_through_the_discriminator_match_finite_differences() {
    let params = Params::new(21);
    let g = tiny_generator(&params, Some(Augmentation { dim: 2, kl_weight: 1.0 }), DType::F64);
    let config =
        DcganDiscriminatorConfig { cond_dim: 5, cond_proj_dim: 3, image_size: 32, width: 2, ..Default::default() };
    let d = DcganDiscriminator::new(config, Params::new(22).var_builder(DType::F64, &Device::Cpu)).unwrap();
    let z = randn(23, &[3, g.latent_dim()], DType::F64);
    let cond = Conditioning::from_embedding(randn(24, &[3, 5], DType::F64)).unwrap();
    let checked = check_gradients(&params, 4, 1e-4, || {
        let fake = g.forward(&z, Some(&cond), true).map_err(candle_core::Error::wrap)?;
        let logits = d.forward(&fake, Some(&cond), true).map_err(candle_core::Error::wrap)?;
        (logits.neg()?.exp()? + 1.0)?.log()?.mean_all()
    })
    .unwrap();
    assert!(checked >= 30, "{checked}");
}

#[test]
fn resize_convolution_is_bilinear_upsampling_then_a_3x3_convolution_inside_the_border() {
    let params = Params::new(21);
    let up = Up::new(Upsampling::Resize, 3, 2, true, params.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let Up::Resize { weight: w, bias: Some(b), .. } = &up else { panic!("a resize layer with a bias") };
    let b = (b + 0.3).unwrap(); // a non-zero bias, so that adding it is checked too
    let up = Up::resize(w.clone(), Some(b.clone())).unwrap();
    let x = randn(22, &[2, 3, 5, 5], DType::F64);
    let fused = up.forward_act(&x, Activation::Identity).unwrap();
    assert_eq!(fused.dims(), &[2, 2, 10, 10]);
    let upsampled = condor_core::resample::upsample2x(&x).unwrap();
    let reference = upsampled.conv2d(w, 1, 1, 1, 1).unwrap().broadcast_add(&b.reshape((1, 2, 1, 1)).unwrap()).unwrap();
    let inside = |t: &Tensor| t.narrow(2, 2, 6).unwrap().narrow(3, 2, 6).unwrap();
    let diff =
        (inside(&fused) - inside(&reference)).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(diff < 1e-12, "{diff}");
    // On the border the fused layer reads zeros beyond the image: a constant input shows it.
    let ones = Tensor::ones((1, 3, 5, 5), DType::F64, &Device::Cpu).unwrap();
    let at = |t: &Tensor, r: usize, c: usize| {
        t.get(0).unwrap().get(0).unwrap().get(r).unwrap().get(c).unwrap().to_scalar::<f64>().unwrap()
    };
    let (flat, centre) = (
        up.forward_act(&ones, Activation::Identity).unwrap(),
        w.get(0).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap(),
    );
    let bias = b.get(0).unwrap().to_scalar::<f64>().unwrap();
    assert!((at(&flat, 5, 5) - (centre + bias)).abs() < 1e-12);
    assert!((at(&flat, 0, 5) - (centre + bias)).abs() > 1e-3, "the top row sees the zero padding");
}

#[test]
fn scoring_under_several_captions_equals_one_pass_per_caption() {
    // The features are shared between captions; logits and every gradient must be those of separate passes.
    for norm in [DiscriminatorNorm::Batch, DiscriminatorNorm::Layer] {
        let params = Params::new(30);
        let config = DcganDiscriminatorConfig {
            cond_dim: 5,
            image_size: 32,
            width: 4,
            projection: true,
            mbstd_group: 2,
            norm,
            ..Default::default()
        };
        let d = DcganDiscriminator::new(config, params.var_builder(DType::F64, &Device::Cpu)).unwrap();
        let x = candle_core::Var::from_tensor(&randn(31, &[4, 3, 32, 32], DType::F64)).unwrap();
        let (a, b) = [32, 33].map(|s| Conditioning::from_embedding(randn(s, &[4, 5], DType::F64)).unwrap()).into();
        let shared = d.forward_each(&x, &[Some(&a), Some(&b)], true).unwrap();
        let separate = [d.forward(&x, Some(&a), true).unwrap(), d.forward(&x, Some(&b), true).unwrap()];
        let loss = |s: &[Tensor]| ((&s[0] * 0.7).unwrap() + (&s[1] * 1.3).unwrap()).unwrap().sum_all().unwrap();
        let (g1, g2) = (loss(&shared).backward().unwrap(), loss(&separate).backward().unwrap());
        let diff = |p: &Tensor, q: &Tensor| {
            (p - q).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
        };
        for (p, q) in shared.iter().zip(&separate) {
            assert!(diff(p, q) < 1e-12, "{norm:?}: logits");
        }
        let vars = std::iter::once(("x".to_string(), x.clone())).chain(params.trainable());
        for (name, var) in vars {
            assert!(diff(g1.get(&var).unwrap(), g2.get(&var).unwrap()) < 1e-10, "{norm:?}: gradient of {name}");
        }
    }
}

#[test]
fn deep_fusion_starts_as_the_plain_generator_and_its_gradients_match_finite_differences() {
    let augmentation = Some(Augmentation { dim: 2, kl_weight: 0.5 });
    let build = |params: &Params, fusion: bool| {
        let config = DcganGeneratorConfig {
            noise_dim: 3,
            cond_dim: 5,
            augmentation,
            image_size: 32,
            width: 2,
            fusion,
            ..Default::default()
        };
        DcganGenerator::new(config, params.var_builder(DType::F64, &Device::Cpu)).unwrap()
    };
    let (plain_params, fused_params) = (Params::new(3), Params::new(3));
    let (plain, fused) = (build(&plain_params, false), build(&fused_params, true));
    let z = randn(4, &[3, plain.latent_dim()], DType::F64);
    let cond = Conditioning::from_embedding(randn(5, &[3, 5], DType::F64)).unwrap();
    let a = plain.forward(&z, Some(&cond), true).unwrap();
    let b = fused.forward(&z, Some(&cond), true).unwrap();
    let gap = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    assert_eq!(gap, 0.0, "zero maps: scale 1, shift 0");
    // Non-zero maps, so that the text's scale and shift act, then every parameter's gradient.
    let mut maps = 0;
    for (name, var) in fused_params.named().into_iter().filter(|(n, _)| n.starts_with("fusion")) {
        var.set(&randn(maps + 10, var.dims(), DType::F64).affine(0.3, 0.0).unwrap()).unwrap();
        maps += 1;
        assert!(name.ends_with("weight") || name.ends_with("bias"), "{name}");
    }
    assert_eq!(maps, 2 * 3, "a weight and a bias per batch norm of a 32 px generator (4, 8 and 16 px)");
    let c = fused.forward(&z, Some(&cond), true).unwrap();
    let moved = (&c
        - fused
            .forward(&z, Some(&Conditioning::from_embedding(randn(7, &[3, 5], DType::F64)).unwrap()), true)
            .unwrap())
    .unwrap()
    .abs()
    .unwrap()
    .max_all()
    .unwrap()
    .to_scalar::<f64>()
    .unwrap();
    assert!(moved > 0.0);
    let target = randn(6, &[3, 3, 32, 32], DType::F64);
    let checked = check_gradients(&fused_params, 4, 1e-4, || {
        let out = fused.forward(&z, Some(&cond), true).map_err(candle_core::Error::wrap)?;
        out.sub(&target)?.sqr()?.mean_all()
    })
    .unwrap();
    assert!(checked >= 40, "{checked}");
    let unconditional = DcganGeneratorConfig { cond_dim: 0, fusion: true, ..Default::default() };
    let err = DcganGenerator::new(unconditional, Params::new(0).var_builder(DType::F32, &Device::Cpu)).err().unwrap();
    assert!(err.to_string().contains("fusion needs a text code"), "{err}");
}

/// Conditioning of `b` rows with the boxes `boxes` and keypoints at their centres.
fn with_boxes(seed: u64, boxes: &[[f32; 4]], cond_dim: usize) -> Conditioning {
    let b = boxes.len();
    let kp: Vec<f32> =
        boxes.iter().flat_map(|bx| (0..5).flat_map(move |_| [bx[0] + bx[2] / 2.0, bx[1] + bx[3] / 2.0, 1.0])).collect();
    let layout = Layout {
        boxes: Tensor::from_vec(boxes.iter().flatten().copied().collect::<Vec<f32>>(), (b, 4), &Device::Cpu).unwrap(),
        keypoints: Some(Tensor::from_vec(kp, (b, 5, 3), &Device::Cpu).unwrap()),
    };
    Conditioning::from_embedding(randn(seed, &[b, cond_dim], DType::F32)).unwrap().with_layout(Some(layout))
}

#[test]
fn the_layout_pathways_read_the_box_at_every_resolution_and_refuse_a_missing_one() {
    for (size, grid) in [(32, 8), (32, 16), (64, 16), (64, 8)] {
        for keypoints in [false, true] {
            let layout = Some(LayoutPathway { grid, channels: 4, keypoints });
            let (gp, dp) = (Params::new(0), Params::new(1));
            let vb = |p: &Params| p.var_builder(DType::F32, &Device::Cpu);
            let gc = DcganGeneratorConfig {
                cond_dim: 6,
                image_size: size,
                width: 4,
                noise_dim: 8,
                layout: layout.clone(),
                ..Default::default()
            };
            let g = DcganGenerator::new(gc, vb(&gp)).unwrap();
            let dc = DcganDiscriminatorConfig { cond_dim: 6, image_size: size, width: 4, layout, ..Default::default() };
            let d = DcganDiscriminator::new(dc, vb(&dp)).unwrap();
            let z = randn(1, &[2, 8], DType::F32);
            let left = with_boxes(2, &[[0.0, 0.2, 0.5, 0.5]; 2], 6);
            let right = with_boxes(2, &[[0.5, 0.2, 0.5, 0.5]; 2], 6);
            let (a, b) = (g.forward(&z, Some(&left), false).unwrap(), g.forward(&z, Some(&right), false).unwrap());
            assert_eq!(a.dims(), &[2, 3, size, size]);
            let moved = (a - &b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(moved > 0.0, "{size} px, grid {grid}: the box changes nothing");
            let scores = d.forward_each(&b, &[Some(&left), Some(&right)], false).unwrap();
            assert_eq!(scores[0].dims(), &[2]);
            let diff = (&scores[0] - &scores[1]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff > 0.0, "{size} px, grid {grid}: the discriminator ignores the box");
            let plain = Conditioning::from_embedding(randn(2, &[2, 6], DType::F32)).unwrap();
            let e = g.forward(&z, Some(&plain), false).unwrap_err().to_string();
            assert!(e.contains("needs a box"), "{e}");
            assert!(d.forward(&b, Some(&plain), false).is_err());
            assert_eq!(g.layout(), if keypoints { LayoutKind::BoxesAndKeypoints } else { LayoutKind::Boxes });
        }
    }
    let bad = DcganGeneratorConfig {
        cond_dim: 6,
        image_size: 32,
        layout: Some(LayoutPathway { grid: 32, ..Default::default() }),
        ..Default::default()
    };
    let e = DcganGenerator::new(bad, Params::new(0).var_builder(DType::F32, &Device::Cpu)).err().unwrap().to_string();
    assert!(e.contains("layout.grid"), "{e}");
}

#[test]
fn layout_pathway_gradients_match_finite_differences() {
    let (gp, dp) = (Params::new(3), Params::new(4));
    let layout = Some(LayoutPathway { grid: 8, channels: 2, keypoints: true });
    let gc = DcganGeneratorConfig {
        cond_dim: 3,
        cond_proj_dim: 2,
        image_size: 32,
        width: 1,
        noise_dim: 2,
        layout: layout.clone(),
        ..Default::default()
    };
    let g = DcganGenerator::new(gc, gp.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let dc = DcganDiscriminatorConfig {
        cond_dim: 3,
        cond_proj_dim: 2,
        image_size: 32,
        width: 1,
        layout,
        norm: DiscriminatorNorm::Layer,
        ..Default::default()
    };
    let d = DcganDiscriminator::new(dc, dp.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let cond = with_boxes(5, &[[0.1, 0.2, 0.6, 0.5], [0.3, 0.1, 0.4, 0.8]], 3).to_dtype(DType::F64).unwrap();
    let z = randn(6, &[2, 2], DType::F64);
    let x = randn(7, &[2, 3, 32, 32], DType::F64);
    let checked = check_gradients(&gp, 3, 1e-4, || {
        g.forward(&z, Some(&cond), true).map_err(candle_core::Error::wrap)?.sqr()?.sum_all()
    });
    assert!(checked.unwrap() > 10);
    let checked = check_gradients(&dp, 3, 1e-4, || {
        d.forward(&x, Some(&cond), true).map_err(candle_core::Error::wrap)?.sqr()?.sum_all()
    });
    assert!(checked.unwrap() > 10);
}

fn tiny_autoencoder(params: &Params, dtype: DType) -> DcganAutoencoder {
    let config = DcganAutoencoderConfig { image_size: 32, channels: 3, width: 2, ..Default::default() };
    DcganAutoencoder::new(config, params.var_builder(dtype, &Device::Cpu)).unwrap()
}

#[test]
fn the_autoencoders_energy_is_its_reconstruction_error_and_its_code_the_encoders_features() {
    use condor_core::Network;
    let params = Params::new(3);
    let ae = tiny_autoencoder(&params, DType::F64);
    let x = randn(4, &[5, 3, 32, 32], DType::F64);
    let out = ae.forward(&x, None, false).unwrap();
    // Width 2 at 32 px: 2-4-8 channels down to 4x4, a code of 8 * 16 numbers after the energy.
    assert_eq!(out.dims(), &[5, 1 + 128]);
    let code = ae.encode(&x, false).unwrap();
    let reconstruction = ae.decode(&code, false).unwrap();
    assert_eq!(reconstruction.dims(), x.dims());
    let energy: Vec<f64> = out.narrow(1, 0, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let error: Vec<f64> = (reconstruction - &x).unwrap().sqr().unwrap().mean((1, 2, 3)).unwrap().to_vec1().unwrap();
    for (e, r) in energy.iter().zip(&error) {
        assert!((e - r).abs() < 1e-12 && *e > 0.0, "energy {e} against the squared error {r}");
    }
    let codes: Vec<f64> = out.narrow(1, 1, 128).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(codes, code.flatten_all().unwrap().to_vec1::<f64>().unwrap());
    let wrong = randn(4, &[5, 1, 32, 32], DType::F64);
    let message = ae.forward(&wrong, None, false).unwrap_err().to_string();
    assert!(message.contains("dcgan autoencoder"), "{message}");
}

#[test]
fn autoencoder_gradients_match_finite_differences() {
    use condor_core::Network;
    let params = Params::new(5);
    let ae = tiny_autoencoder(&params, DType::F64);
    let x = randn(6, &[3, 3, 32, 32], DType::F64);
    let checked = check_gradients(&params, 4, 1e-4, || {
        let out = ae.forward(&x, None, true).map_err(candle_core::Error::wrap)?;
        // EBGAN's two terms: the energy and, through the code, a pulling-away-like quadratic.
        out.narrow(1, 0, 1)?.mean_all()? + (out.narrow(1, 1, 128)?.sqr()?.mean_all()? * 0.1)?
    })
    .unwrap();
    assert!(checked >= 30, "{checked}");
}

#[test]
fn the_registry_fills_the_autoencoders_image_shape_from_the_data() {
    let mut registry = Registry::new();
    register(&mut registry).unwrap();
    let spec: condor_core::ModelSpec =
        serde_json::from_str(r#"{"plugin": "dcgan_autoencoder", "config": {"width": 4}}"#).unwrap();
    let context = condor_core::BuildContext { sample_shape: vec![1, 64, 64], cond_dim: 0 };
    let resolved = registry.resolve_in_context(condor_core::NetworkKind::Network, &spec, &context).unwrap();
    assert_eq!((resolved.config["image_size"].as_u64(), resolved.config["channels"].as_u64()), (Some(64), Some(1)));
    let vb = Params::new(0).var_builder(DType::F32, &Device::Cpu);
    let condor_core::Model::Network(net) = registry.build(condor_core::NetworkKind::Network, &resolved, vb).unwrap()
    else {
        panic!("a network was asked for");
    };
    let out = net.forward(&Tensor::zeros((2, 1, 64, 64), DType::F32, &Device::Cpu).unwrap(), None, false).unwrap();
    assert_eq!(out.dims(), &[2, 1 + 16 * 32]);
}
