//! Every config the repository ships parses, validates, and builds its generator and discriminator
//! through the registry, with images of the size its data has; fields a config leaves to the data
//! (sample shape, conditioning size) are filled from it.

use candle_core::Tensor;
use candle_core::{DType, Device};
use condor::core::{BuildContext, Conditioning, ModelSpec, NetworkKind, Params, Registry};
use condor::data::DatasetConfig;
use condor::train::RunConfig;

/// What the data of `config` decides, from the data itself (synthetic birds: its first 8, captions
/// embedded into `cache`); `None` for data read from files the repository does not ship (MNIST, Stacked
/// MNIST, CUB),
/// whose configs state every field.
fn data_context(config: &RunConfig, cache: &std::path::Path) -> Option<BuildContext> {
    let mut config = config.clone();
    match &mut config.data {
        DatasetConfig::Mnist { .. }
        | DatasetConfig::StackedMnist { .. }
        | DatasetConfig::Cub { .. }
        | DatasetConfig::Folder { .. } => return None,
        DatasetConfig::Birds { count, .. } => *count = 8,
        _ => {}
    }
    config.text.cache_dir = cache.to_path_buf();
    // A text head is made by `condor text-encoder pretrain` from the config, which the tests do not
    // run; it makes embeddings of its base encoder's size, so the base stands in for it.
    if condor::text::pooling::is_pooling_file(&config.text.encoder) {
        config.text.encoder = "shipped".into();
    }
    let data = condor::train::text_data::build_data(&config, &Device::Cpu).unwrap();
    Some(BuildContext { sample_shape: data.sample_shape(), cond_dim: data.cond_dim() })
}

fn resolve(registry: &Registry, kind: NetworkKind, spec: &ModelSpec, context: Option<&BuildContext>) -> ModelSpec {
    match context {
        Some(c) => registry.resolve_in_context(kind, spec, c).unwrap(),
        None => registry.resolve(kind, spec).unwrap(),
    }
}

#[test]
fn every_shipped_config_builds_its_models() {
    let registry = condor::registry();
    let cache = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let config = RunConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        config.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if matches!(config.data, DatasetConfig::Unpaired { .. }) {
            // A translation recipe's networks are its own: the trainer builds them, and they translate.
            let trainer = condor::train::Trainer::new(config, &registry, &Device::Cpu)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let pair = trainer.translation().expect("unpaired data trains a translation recipe");
            let written = trainer.config().to_toml();
            assert!(!written.starts_with("# config does not serialise"), "{}: {written}", path.display());
            let net = match &trainer.network(&pair.a_to_b).unwrap().model {
                condor::core::Model::Network(n) => n,
                _ => panic!("{}: the translator is not a network", path.display()),
            };
            let x = Tensor::zeros([2usize, 3, 32, 32].as_slice(), DType::F32, &Device::Cpu).unwrap();
            assert_eq!(net.forward(&x, None, false).unwrap().dims(), x.dims(), "{}", path.display());
            checked += 1;
            continue;
        }
        let context = data_context(&config, cache.path());
        let g_spec = resolve(&registry, NetworkKind::Generator, &config.generator, context.as_ref());
        let d_spec = resolve(&registry, NetworkKind::Discriminator, &config.discriminator, context.as_ref());
        let g = registry.build_generator(&g_spec, Params::new(0).var_builder(DType::F32, &Device::Cpu)).unwrap();
        let d = registry.build_discriminator(&d_spec, Params::new(1).var_builder(DType::F32, &Device::Cpu)).unwrap();
        if let Some(c) = &context {
            assert_eq!(g.sample_shape(), c.sample_shape, "{}", path.display());
            assert_eq!(g.conditioning().dim(), c.cond_dim, "{}", path.display());
            assert_eq!(d.conditioning().dim(), c.cond_dim, "{}", path.display());
        }
        // The discriminator scores what the generator makes.
        let z = Tensor::zeros((2, g.latent_dim()), DType::F32, &Device::Cpu).unwrap();
        let dim = g.conditioning().dim().max(d.conditioning().dim());
        let cond = (dim > 0)
            .then(|| Conditioning::from_embedding(Tensor::ones((2, dim), DType::F32, &Device::Cpu).unwrap()).unwrap());
        // A what-and-where generator reads a box per sample, which its data must hand it.
        let cond = match g.layout() {
            condor::core::layout::LayoutKind::None => cond,
            _ => {
                let data = config.data.captioned().unwrap().unwrap();
                assert!(data.layout, "{}: a layout model needs `[data] layout = true`", path.display());
                let boxes = Tensor::new(&[[0.2f32, 0.3, 0.5, 0.4], [0.3, 0.2, 0.4, 0.5]], &Device::Cpu).unwrap();
                let keypoints = Some(Tensor::full(0.5f32, (2, 5, 3), &Device::Cpu).unwrap());
                cond.map(|c| c.with_layout(Some(condor::core::layout::Layout { boxes, keypoints })))
            }
        };
        let x = g.forward(&z, g.conditioning().select(cond.as_ref()), false).unwrap();
        let logits = d.forward(&x, d.conditioning().select(cond.as_ref()), false).unwrap();
        assert_eq!(logits.dims(), &[2], "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "{checked} configs");
}

#[test]
fn the_data_fills_only_the_fields_a_config_leaves_out() {
    let registry = condor::registry();
    let images = BuildContext { sample_shape: vec![1, 16, 16], cond_dim: 10 };
    let spec = |plugin: &str, config: serde_json::Value| ModelSpec::new(plugin, config).unwrap();
    let g =
        registry.resolve_in_context(NetworkKind::Generator, &spec("dcgan", serde_json::json!({})), &images).unwrap();
    assert_eq!((g.config["image_size"].as_u64(), g.config["channels"].as_u64()), (Some(16), Some(1)));
    assert_eq!(g.config["cond_dim"].as_u64(), Some(10));
    // A field the config states is kept: an unconditional discriminator on conditional data.
    let d_config = serde_json::json!({"cond_dim": 0, "image_size": 16});
    let d = registry.resolve_in_context(NetworkKind::Discriminator, &spec("dcgan", d_config), &images).unwrap();
    assert_eq!((d.config["cond_dim"].as_u64(), d.config["channels"].as_u64()), (Some(0), Some(1)));
    // Shapes go to the MLP's `output_shape` (generator) and `input_shape` (discriminator); fields a
    // plugin does not have are not added.
    let g = registry.resolve_in_context(NetworkKind::Generator, &spec("mlp", serde_json::json!({})), &images).unwrap();
    assert_eq!(g.config["output_shape"], serde_json::json!([1, 16, 16]));
    assert!(g.config.get("image_size").is_none() && g.config.get("input_shape").is_none());
    let d =
        registry.resolve_in_context(NetworkKind::Discriminator, &spec("mlp", serde_json::json!({})), &images).unwrap();
    assert_eq!(d.config["input_shape"], serde_json::json!([1, 16, 16]));
    // Non-square images give no image size.
    let wide = BuildContext { sample_shape: vec![3, 16, 32], cond_dim: 0 };
    let g = registry.resolve_in_context(NetworkKind::Generator, &spec("dcgan", serde_json::json!({})), &wide).unwrap();
    assert_eq!(
        g.config,
        registry.resolve(NetworkKind::Generator, &spec("dcgan", serde_json::json!({}))).unwrap().config
    );
}

#[test]
fn a_packing_discriminator_is_built_for_packed_samples_and_scores_each_sample() {
    let registry = condor::registry();
    let images = BuildContext { sample_shape: vec![3, 32, 32], cond_dim: 0 };
    // `pack` is a field of the `[discriminator]` table.
    let ring8 = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/ring8.toml")).unwrap();
    let run = RunConfig::from_toml(&ring8.replace("[discriminator]", "[discriminator]\npack = 2")).unwrap();
    assert_eq!(run.discriminator.pack, Some(2));
    let spec = ModelSpec::new("dcgan", serde_json::json!({"width": 4})).unwrap().packed(2);
    let d = registry.resolve_in_context(NetworkKind::Discriminator, &spec, &images).unwrap();
    // The plugin sees two images' channels side by side; the spec keeps its pack.
    assert_eq!((d.config["channels"].as_u64(), d.pack), (Some(6), Some(2)));
    let params = Params::new(0);
    let built = registry.build_discriminator(&d, params.var_builder(DType::F32, &Device::Cpu)).unwrap();
    assert_eq!(built.sample_shape(), Some(vec![3, 32, 32]));
    let x = Tensor::zeros((8, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(built.forward(&x, None, true).unwrap().dims(), &[8]);
    // Packing is for discriminators; a conditional one is refused at build time.
    let g_spec = ModelSpec::new("dcgan", serde_json::json!({})).unwrap().packed(2);
    let message = registry.resolve(NetworkKind::Generator, &g_spec).unwrap_err().to_string();
    assert!(message.contains("discriminators only"), "{message}");
    // Every resolver refuses it, not only the one taking a role (the trainer's config check calls
    // `resolve_generator` itself).
    assert!(registry.resolve_generator(&g_spec).unwrap_err().to_string().contains("discriminators only"));
    let conditional = BuildContext { sample_shape: vec![3, 32, 32], cond_dim: 8 };
    let d = registry.resolve_in_context(NetworkKind::Discriminator, &spec, &conditional).unwrap();
    let params = Params::new(0);
    let message =
        registry.build_discriminator(&d, params.var_builder(DType::F32, &Device::Cpu)).err().unwrap().to_string();
    assert!(message.contains("unconditional"), "{message}");
}
