use super::*;
use candle_core::{DType, Device};
use condor_core::{derived_rng, rng::normal, Params};

fn f64_tensor(seed: u64, shape: &[usize]) -> Tensor {
    normal(&mut derived_rng(seed, &[]), shape, &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap()
}

fn check_gradients(params: &Params, loss: impl Fn() -> Tensor) {
    let checked = condor_core::gradcheck::check_gradients(params, 6, 1e-5, || Ok(loss())).unwrap();
    assert!(checked > 20, "checked only {checked} entries");
}

#[test]
fn discriminator_gradients_match_finite_differences() {
    let params = Params::new(1);
    let config = MlpDiscriminatorConfig { cond_dim: 3, hidden: vec![8, 6], ..Default::default() };
    let d = MlpDiscriminator::new(config, params.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let x = f64_tensor(2, &[5, 2]);
    let cond = Conditioning::from_embedding(f64_tensor(3, &[5, 3])).unwrap();
    check_gradients(&params, || {
        let logits = d.forward(&x, Some(&cond), true).unwrap();
        // softplus(-logits): the non-saturating loss on real samples.
        (logits.neg().unwrap().exp().unwrap() + 1.0).unwrap().log().unwrap().mean_all().unwrap()
    });
}

#[test]
fn generator_gradients_match_finite_differences_through_batch_norm() {
    for activation in [Activation::LeakyRelu, Activation::Tanh] {
        let params = Params::new(4);
        let config = MlpGeneratorConfig {
            latent_dim: 4,
            cond_dim: 2,
            hidden: vec![7, 5],
            output_shape: vec![1, 2, 2],
            activation,
            batch_norm: true,
            output_activation: OutputActivation::Tanh,
            ..Default::default()
        };
        let g = MlpGenerator::new(config, params.var_builder(DType::F64, &Device::Cpu)).unwrap();
        let z = f64_tensor(5, &[6, 4]);
        let cond = Conditioning::from_embedding(f64_tensor(6, &[6, 2])).unwrap();
        let target = f64_tensor(7, &[6, 1, 2, 2]);
        check_gradients(&params, || {
            let out = g.forward(&z, Some(&cond), true).unwrap();
            out.sub(&target).unwrap().sqr().unwrap().mean_all().unwrap()
        });
    }
}

#[test]
fn shapes_and_parameter_counts() {
    let params = Params::new(0);
    let vb = params.var_builder(DType::F32, &Device::Cpu);
    let config =
        MlpGeneratorConfig { latent_dim: 10, hidden: vec![32], output_shape: vec![1, 4, 4], ..Default::default() };
    let g = MlpGenerator::new(config, vb).unwrap();
    let z = Tensor::zeros((3, 10), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(g.forward(&z, None, false).unwrap().dims(), &[3, 1, 4, 4]);
    assert_eq!(params.parameter_count(), 10 * 32 + 32 + 32 * 16 + 16);

    let dp = Params::new(0);
    let d = MlpDiscriminator::new(
        MlpDiscriminatorConfig { input_shape: vec![1, 4, 4], ..Default::default() },
        dp.var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    let x = Tensor::zeros((3, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(d.forward(&x, None, false).unwrap().dims(), &[3]);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let params = Params::new(0);
    let vb = params.var_builder(DType::F32, &Device::Cpu);
    let g = MlpGenerator::new(MlpGeneratorConfig { cond_dim: 3, ..Default::default() }, vb).unwrap();
    let z = Tensor::zeros((2, 16), DType::F32, &Device::Cpu).unwrap();
    let err = g.forward(&z, None, false).unwrap_err().to_string();
    assert!(err.contains("conditional"), "{err}");
    let wrong = Conditioning::one_hot(&[0, 1], 4, &Device::Cpu).unwrap();
    let err = g.forward(&z, Some(&wrong), false).unwrap_err().to_string();
    assert!(err.contains("dimension 4"), "{err}");
    let short_z = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
    assert!(g.forward(&short_z, Some(&Conditioning::one_hot(&[0, 1], 3, &Device::Cpu).unwrap()), false).is_err());
}

#[test]
fn registry_builds_from_partial_config_and_names_bad_fields() {
    let mut registry = Registry::new();
    register(&mut registry).unwrap();
    let spec: condor_core::ModelSpec = serde_json::from_str(r#"{"plugin": "mlp", "config": {"hidden": [4]}}"#).unwrap();
    let resolved = registry.resolve_generator(&spec).unwrap();
    assert_eq!(resolved.config["latent_dim"], 16);
    let bad: condor_core::ModelSpec = serde_json::from_str(r#"{"plugin": "mlp", "config": {"hiden": [4]}}"#).unwrap();
    let err = registry.resolve_discriminator(&bad).unwrap_err().to_string();
    assert!(err.contains("hiden"), "{err}");
    assert!(register(&mut registry).is_err(), "registering twice must fail");
}

#[test]
fn the_network_returns_its_outputs_then_its_features_with_right_gradients() {
    use condor_core::Network;
    let params = Params::new(6);
    let config = MlpNetworkConfig {
        input_shape: vec![1, 2, 2],
        cond_dim: 2,
        hidden: vec![6, 5],
        outputs: 3,
        batch_norm: true,
        features: true,
        ..Default::default()
    };
    let net = MlpNetwork::new(config, params.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let x = f64_tensor(7, &[4, 1, 2, 2]);
    let cond = Conditioning::from_embedding(f64_tensor(8, &[4, 2])).unwrap();
    assert_eq!(net.forward(&x, Some(&cond), true).unwrap().dims(), &[4, 3 + 5]);
    assert!(net.forward(&x, None, true).is_err(), "it reads its conditioning");
    check_gradients(&params, || net.forward(&x, Some(&cond), true).unwrap().sqr().unwrap().mean_all().unwrap());
}

#[test]
fn a_generator_with_codes_sees_them_one_hot_whatever_the_categorical_columns_hold() {
    let params = Params::new(9);
    let codes = LatentCodes { categorical: 3, continuous: 1 };
    let config = MlpGeneratorConfig { latent_dim: 6, codes, hidden: vec![8], ..Default::default() };
    let g = MlpGenerator::new(config.clone(), params.var_builder(DType::F32, &Device::Cpu)).unwrap();
    // Rows with the same arg-max and continuous value draw the same point.
    let z = Tensor::new(&[[0.1f32, 2.0, 0.0, 0.5, 1.0, -1.0], [-3.0, 0.7, 0.2, 0.5, 1.0, -1.0]], &Device::Cpu).unwrap();
    let out = g.forward(&z, None, false).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(out[0], out[1]);
    let too_many = MlpGeneratorConfig { latent_dim: 3, ..config };
    assert!(MlpGenerator::new(too_many, Params::new(0).var_builder(DType::F32, &Device::Cpu)).is_err());
}
