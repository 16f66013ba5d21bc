//! # Condor
//!
//! Text-to-image conditional GANs on candle. This crate gathers the workspace:
//!
//! - [`core`] (condor-core): the plugin contract: `Generator`, `Discriminator`, `TextEncoder`,
//!   conditioning, the registry. Plugin authors depend on it alone.
//! - [`data`] (condor-data): datasets.
//! - [`train`] (condor-train): the generic trainer, recipes, losses and tricks, optimizer,
//!   checkpoints, run directories.
//! - [`infer`] (condor-infer): model cards and the text-to-image pipeline object that loads a
//!   generator and its text encoder once and serves prompt grids, style mixing and exports.
//! - [`eval`] (condor-eval): `condor eval`'s scores (FID/KID, attribute accuracy, retrieval, diversity),
//!   colour and digit accuracy, mode coverage.
//! - [`metrics`] (condor-metrics): the measuring instruments (Inception features, FID/KID, classifiers).
//! - [`text`] (condor-text): sentence encoders (MiniLM through candle-transformers).
//! - [`mlp`], [`dcgan`], [`stylegan`]: the built-in plugins (MLP; text-conditional DCGAN with conditioning
//!   augmentation; StyleGAN-like generator and residual discriminator).
//! - [`translation`]: image-to-image networks (CycleGAN's ResNet generator and PatchGAN, DiscoGAN's
//!   encoder-decoder) for the `cyclegan` and `discogan` recipes.
//!
//! [`registry()`] returns a registry with every built-in plugin; add your own to it before training:
//!
//! ```
//! let registry = condor::registry();
//! assert!(registry.generator_names().contains(&"mlp"));
//! assert!(registry.discriminator_names().contains(&"dcgan"));
//! ```

pub mod distributed;
pub mod img2img;
pub mod interpolation;
pub mod txt2img;

pub use candle_core;
pub use candle_nn;
pub use condor_core as core;
pub use condor_data as data;
pub use condor_dcgan as dcgan;
pub use condor_eval as eval;
pub use condor_infer as infer;
pub use condor_metrics as metrics;
pub use condor_mlp as mlp;
pub use condor_stylegan as stylegan;
pub use condor_text as text;
pub use condor_train as train;
pub use condor_translation as translation;

/// A registry holding Condor's built-in plugins.
pub fn registry() -> condor_core::Registry {
    let mut registry = condor_core::Registry::new();
    condor_mlp::register(&mut registry).expect("built-in plugin names are unique");
    condor_dcgan::register(&mut registry).expect("built-in plugin names are unique");
    condor_stylegan::register(&mut registry).expect("built-in plugin names are unique");
    condor_translation::register(&mut registry).expect("built-in plugin names are unique");
    condor_train::register_recipes(&mut registry).expect("built-in recipe names are unique");
    registry
}

/// Parses a device name: `auto`, `cpu`, `cuda`, `cuda:N` or `metal`. `auto` is the first GPU this
/// build can open (CUDA device 0, then Metal) and the CPU when there is none. A GPU device named
/// explicitly needs Condor built with the matching cargo feature; without it the error says so.
pub fn parse_device(name: &str) -> Result<candle_core::Device, String> {
    let name = name.trim().to_ascii_lowercase();
    let unavailable = |what: &str, feature: &str, e: candle_core::Error| {
        format!("cannot open {what}: {e}. Build Condor with `--features {feature}` on a machine that has one")
    };
    match name.as_str() {
        "auto" => Ok(first_gpu().unwrap_or(candle_core::Device::Cpu)),
        "cpu" => Ok(candle_core::Device::Cpu),
        "metal" => candle_core::Device::new_metal(0).map_err(|e| unavailable("a Metal device", "metal", e)),
        "cuda" => candle_core::Device::new_cuda(0).map_err(|e| unavailable("CUDA device 0", "cuda", e)),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => {
                candle_core::Device::new_cuda(i).map_err(|e| unavailable(&format!("CUDA device {i}"), "cuda", e))
            }
            _ => Err(format!("unknown device `{other}`; use auto, cpu, cuda, cuda:N or metal")),
        },
    }
}

/// The first GPU this build can open: CUDA device 0 when built with `cuda`, else Metal device 0 when
/// built with `metal`; `None` in a CPU-only build or on a machine without one.
fn first_gpu() -> Option<candle_core::Device> {
    if candle_core::utils::cuda_is_available() {
        if let Ok(device) = candle_core::Device::new_cuda(0) {
            return Some(device);
        }
    }
    if candle_core::utils::metal_is_available() {
        if let Ok(device) = candle_core::Device::new_metal(0) {
            return Some(device);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_device;

    #[test]
    fn device_names_parse_and_gpus_missing_from_the_build_are_named() {
        assert!(parse_device(" CPU ").unwrap().is_cpu());
        let err = parse_device("tpu").unwrap_err();
        assert!(err.contains("unknown device `tpu`") && err.contains("auto"), "{err}");
        assert!(parse_device("cuda:x").is_err());
        if !candle_core::utils::cuda_is_available() {
            let err = parse_device("cuda:1").unwrap_err();
            assert!(err.contains("CUDA device 1") && err.contains("--features cuda"), "{err}");
        }
        if !candle_core::utils::cuda_is_available() && !candle_core::utils::metal_is_available() {
            assert!(parse_device("auto").unwrap().is_cpu(), "a CPU-only build falls back to the CPU");
        }
    }
}
