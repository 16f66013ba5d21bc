//! The networks a trainer holds for a recipe: each declared network's float32 master weights, its
//! optimizer, and the copies the passes use (half precision, frozen parameters, a moving average).

use candle_core::{DType, Device};
use condor_core::recipe::{Model, NetworkDecl};
use condor_core::rng::Stream;
use condor_core::{Discriminator, Generator, Network, Params, Registry};

use crate::error::Result;
use crate::optim::Adam;
use crate::precision::Precision;

/// One declared network and everything the trainer keeps for it.
pub struct TrainedNetwork {
    /// The recipe's declaration (with the resolved spec).
    pub decl: NetworkDecl,
    /// The float32 model holding the master weights.
    pub model: Model,
    /// Its variables.
    pub params: Params,
    /// Its optimizer.
    pub opt: Adam,
    /// The half-precision working copy of a mixed-precision run, with its variables.
    pub half: Option<(Model, Params)>,
    /// A copy of the pass model whose parameters are constants ([`Params::frozen_var_builder`]).
    pub frozen: Model,
    /// The exponential moving average, with its variables.
    pub ema: Option<(Model, Params)>,
}

/// The seed of a network's initial weights, from the run seed and the declaration's stream.
fn init_seed(seed: u64, stream: u64) -> u64 {
    use rand::RngCore;
    Stream::Init(stream).rng(seed).next_u64()
}

impl TrainedNetwork {
    /// Builds `decl`'s network through `registry` with weights drawn from `seed`, its optimizer, and
    /// the copies a run with `precision` needs; an EMA copy when `ema` (and the declaration asks).
    pub fn build(
        decl: NetworkDecl,
        registry: &Registry,
        seed: u64,
        precision: Precision,
        ema: bool,
        device: &Device,
    ) -> Result<Self> {
        let init = init_seed(seed, decl.init_stream);
        let copy = |dtype: DType| -> Result<(Model, Params)> {
            let p = Params::new(init);
            Ok((registry.build(decl.kind, &decl.spec, p.var_builder(dtype, device))?, p))
        };
        let (model, params) = copy(DType::F32)?;
        let ema = (ema && decl.ema).then(|| copy(DType::F32)).transpose()?;
        let half = precision.is_mixed().then(|| copy(precision.dtype())).transpose()?;
        for (_, p) in ema.iter().chain(&half) {
            p.copy_from(&params)?;
        }
        let pass_params = half.as_ref().map_or(&params, |(_, p)| p);
        let frozen =
            registry.build(decl.kind, &decl.spec, pass_params.frozen_var_builder(precision.dtype(), device))?;
        let opt = Adam::new(params.trainable(), decl.optimizer)?;
        Ok(Self { decl, model, params, opt, half, frozen, ema })
    }

    /// The model the passes go through: the half-precision copy in a mixed-precision run.
    pub fn pass(&self) -> &Model {
        self.half.as_ref().map_or(&self.model, |(m, _)| m)
    }

    /// The variables of the half-precision copy, if any.
    pub fn half_params(&self) -> Option<&Params> {
        self.half.as_ref().map(|(_, p)| p)
    }

    /// The model to sample from: the EMA copy when there is one.
    pub fn for_sampling(&self) -> &Model {
        self.ema.as_ref().map_or(&self.model, |(m, _)| m)
    }
}

/// The error for a network asked for in a role it does not have.
fn wrong_role(name: &str, model: &Model, wanted: &str) -> condor_core::Error {
    condor_core::Error::InvalidInput(format!("network `{name}` is a {}, not a {wanted}", model.kind().name()))
}

/// `model` as a generator; the error names the network `name`.
pub fn as_generator<'a>(name: &str, model: &'a Model) -> condor_core::Result<&'a dyn Generator> {
    match model {
        Model::Generator(g) => Ok(g.as_ref()),
        other => Err(wrong_role(name, other, "generator")),
    }
}

/// `model` as a discriminator; the error names the network `name`.
pub fn as_discriminator<'a>(name: &str, model: &'a Model) -> condor_core::Result<&'a dyn Discriminator> {
    match model {
        Model::Discriminator(d) => Ok(d.as_ref()),
        other => Err(wrong_role(name, other, "discriminator")),
    }
}

/// `model` as a network of another role; the error names the network `name`.
pub fn as_network<'a>(name: &str, model: &'a Model) -> condor_core::Result<&'a dyn Network> {
    match model {
        Model::Network(n) => Ok(n.as_ref()),
        other => Err(wrong_role(name, other, "network")),
    }
}

/// `network`'s outputs for the rows of `x`, `batch` rows at a time, in evaluation mode and without
/// conditioning: for scoring a trained encoder or classifier on many samples.
pub fn forward_in_batches(
    network: &dyn Network,
    x: &candle_core::Tensor,
    batch: usize,
) -> condor_core::Result<candle_core::Tensor> {
    let n = x.dim(0)?;
    let batch = batch.max(1);
    let parts = (0..n)
        .step_by(batch)
        .map(|start| network.forward(&x.narrow(0, start, batch.min(n - start))?, None, false))
        .collect::<condor_core::Result<Vec<_>>>()?;
    Ok(candle_core::Tensor::cat(&parts, 0)?)
}

/// The index of the network named `name`, or an error listing the declared ones.
pub fn index_of(networks: &[TrainedNetwork], name: &str) -> condor_core::Result<usize> {
    networks.iter().position(|n| n.decl.name == name).ok_or_else(|| {
        let known: Vec<&str> = networks.iter().map(|n| n.decl.name.as_str()).collect();
        condor_core::Error::InvalidInput(format!("no network named `{name}`; the recipe declares {}", known.join(", ")))
    })
}
