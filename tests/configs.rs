//! Every config the repository ships parses, validates, and builds its generator and discriminator
//! through the registry, with images of the size its data has.

use candle_core::Tensor;
use candle_core::{DType, Device};
use condor::core::{Conditioning, Params};
use condor::pipeline::RunConfig;

#[test]
fn every_shipped_config_builds_its_models() {
    let registry = condor::registry();
    let mut checked = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let config = RunConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        config.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let g_spec = registry.resolve_generator(&config.generator).unwrap();
        let d_spec = registry.resolve_discriminator(&config.discriminator).unwrap();
        let g = registry.build_generator(&g_spec, Params::new(0).var_builder(DType::F32, &Device::Cpu)).unwrap();
        let d = registry.build_discriminator(&d_spec, Params::new(1).var_builder(DType::F32, &Device::Cpu)).unwrap();
        // The discriminator scores what the generator makes.
        let z = Tensor::zeros((2, g.latent_dim()), DType::F32, &Device::Cpu).unwrap();
        let dim = g.conditioning().dim().max(d.conditioning().dim());
        let cond = (dim > 0)
            .then(|| Conditioning::from_embedding(Tensor::ones((2, dim), DType::F32, &Device::Cpu).unwrap()).unwrap());
        let x = g.forward(&z, g.conditioning().select(cond.as_ref()), false).unwrap();
        let logits = d.forward(&x, d.conditioning().select(cond.as_ref()), false).unwrap();
        assert_eq!(logits.dims(), &[2], "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "{checked} configs");
}
