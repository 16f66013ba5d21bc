//! # condor-core: the plugin contract
//!
//! Condor trains text-conditioned GANs. This crate is everything a model plugin needs and nothing
//! more: the [`Generator`] and [`Discriminator`] traits, the [`Conditioning`] they read, the
//! [`TextEncoder`] trait that produces it, the [`Registry`] that builds plugins by name from serde
//! configs, seeded [`Params`], the [`DataSource`] contract and the [`Error`] type.
//! It depends on candle only; a plugin crate depends on this crate alone.
//!
//! ## The data flow
//! caption → [`TextEncoder`] → [`Conditioning`] → `Generator::forward(z, cond)` → samples →
//! `Discriminator::forward(samples, cond)` → logits `(B,)` → loss → optimizer.
//! Nothing here knows about a concrete model; nothing in a plugin knows about training.
//!
//! ## Writing a plugin
//! 1. Give the model a config type deriving `Serialize` and `Deserialize`, with `#[serde(default)]` for
//!    fields that have one (the registry fills defaults and stores the resolved config in checkpoints).
//! 2. Build every variable through the `VarBuilder` your constructor receives (`candle_nn::linear`,
//!    `vb.get(...)`, ...). The pipeline owns those variables: it initialises them from the run's seed,
//!    trains them, saves them and restores them. Variables whose names end in `running_mean`,
//!    `running_var` or `_buffer` are treated as buffers (saved, not trained); see [`BUFFER_SUFFIXES`].
//!    For layers, [`conv::Conv2d`], [`conv::ConvTranspose2d`], [`linear::Linear`] and [`norm::BatchNorm`]
//!    take the same weights as candle-nn's and train several times faster on the CPU; their
//!    `forward_act` fuses the activation after them ([`activation::Activation`]), and
//!    [`norm::sample_norm_act`], [`activation::bias_act`] and [`modulate::channel_affine_act`] do the same
//!    for per-sample norms, biases and StyleGAN-style modulation. Each is one op in candle's graph with
//!    a fused backward pass on the CPU (f32, f64) and candle's own ops on other devices and dtypes.
//! 3. Implement [`Generator`] (or [`Discriminator`]): latent size, sample shape, the
//!    [`ConditioningKind`] it reads, and `forward` with a `train` flag.
//! 4. Register it under a name. Any program that has your crate can then train it from a config file
//!    that names the plugin, and every checkpoint rebuilds it.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use condor_core::{check_conditioning, Conditioning, ConditioningKind, Generator, ModelSpec, Params, Registry};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! #[serde(default)]
//! struct LineConfig { latent_dim: usize }
//! impl Default for LineConfig { fn default() -> Self { Self { latent_dim: 4 } } }
//!
//! /// Maps z linearly to a point in the plane.
//! struct Line { map: candle_nn::Linear, latent_dim: usize }
//!
//! impl Generator for Line {
//!     fn latent_dim(&self) -> usize { self.latent_dim }
//!     fn sample_shape(&self) -> Vec<usize> { vec![2] }
//!     fn conditioning(&self) -> ConditioningKind { ConditioningKind::None }
//!     fn forward(&self, z: &Tensor, cond: Option<&Conditioning>, _train: bool) -> condor_core::Result<Tensor> {
//!         check_conditioning(self.conditioning(), cond, z.dims()[0])?;
//!         Ok(self.map.forward(z)?)
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register_generator("line", |c: LineConfig, vb| {
//!     Ok(Line { map: candle_nn::linear(c.latent_dim, 2, vb.pp("map"))?, latent_dim: c.latent_dim })
//! })?;
//!
//! // Anything that names the plugin can now build it: a config file, a checkpoint's metadata.
//! let spec: ModelSpec = serde_json::from_str(r#"{"plugin": "line", "config": {"latent_dim": 3}}"#).unwrap();
//! let params = Params::new(42);
//! let g = registry.build_generator(&spec, params.var_builder(DType::F32, &Device::Cpu))?;
//! let points = g.forward(&Tensor::zeros((5, 3), DType::F32, &Device::Cpu)?, None, false)?;
//! assert_eq!(points.dims(), &[5, 2]);
//! assert_eq!(params.parameter_count(), 3 * 2 + 2);
//! # Ok::<(), condor_core::Error>(())
//! ```
//!
//! The root crate `condor` offers `condor::registry()`, a registry with the built-in plugins, to which
//! an out-of-tree crate adds its own before handing it to the trainer.

pub mod activation;
pub mod augmentation;
pub mod codes;
pub mod conditioning;
pub mod conv;
pub mod data;
pub mod error;
pub mod gradcheck;
mod kernels;
pub mod layout;
pub mod linear;
pub mod minibatch;
pub mod model;
pub mod modulate;
pub mod norm;
pub mod optimizer;
pub mod pack;
pub mod pad;
pub mod params;
pub mod prelude;
pub mod profile;
pub mod recipe;
pub mod registry;
pub mod resample;
pub mod rng;
pub mod style;
pub mod threads;

pub use codes::LatentCodes;
pub use conditioning::{join_tiled, Conditioning, TokenEmbeddings};
pub use data::{Batch, DataSource, Labelled, Preview};
pub use error::{Error, Result};
pub use model::{
    check_conditioning, check_latent, check_samples, ConditioningKind, Discriminator, Generator, TextEncoder,
};
pub use optimizer::{LrDecay, OptimizerConfig};
pub use params::{is_buffer, Params, BUFFER_SUFFIXES};
pub use recipe::{
    Model, Network, NetworkDecl, NetworkKind, Recipe, RecipeSetup, Scalars, TrainContext, TranslationPair,
};
pub use registry::{BuildContext, ModelSpec, Registry};
pub use rng::{derived_rng, Rng};
pub use style::{NoiseInputs, StyleControl};
