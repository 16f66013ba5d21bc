//! What a plugin crate needs, in one import: `use condor_core::prelude::*;`. The crates it re-exports
//! (`candle`, `candle_nn`, `serde`, `serde_json`) let a plugin depend on condor-core alone, at the
//! versions Condor builds with.

pub use candle_core as candle;
pub use candle_core::{DType, Device, Module, Tensor, Var, D};
pub use candle_nn;
pub use candle_nn::VarBuilder;
pub use serde;
pub use serde::{Deserialize, Serialize};
pub use serde_json;

pub use crate::model::{check_conditioning, check_latent, check_samples};
pub use crate::recipe::{Model, Network, NetworkDecl, NetworkKind, Recipe, RecipeSetup, Scalars, TrainContext};
pub use crate::rng::{normal, Stream};
pub use crate::{
    Batch, BuildContext, Conditioning, ConditioningKind, DataSource, Discriminator, Error, Generator, ModelSpec,
    OptimizerConfig, Params, Registry, Result, Rng,
};
