//! The training-recipe contract: what a GAN variant computes in a step, apart from what every run
//! shares.
//!
//! A [`Recipe`] declares its networks ([`NetworkDecl`]: a role, a plugin spec, an optimizer) and, each
//! iteration, computes losses from the iteration's batches and asks the trainer to apply them
//! ([`TrainContext::update`]). The trainer owns everything else: data and prefetch, the seeded random
//! streams, optimizers and schedules, EMA, mixed precision, data parallel, checkpoints, resume, logs,
//! samples, Ctrl-C and the divergence stop. Recipes are registered by name
//! ([`crate::Registry::register_recipe`]) and chosen by a run config's `[recipe]` table.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::optimizer::OptimizerConfig;
use crate::{Batch, Conditioning, ConditioningKind, DataSource, Discriminator, Generator, ModelSpec, Result, Rng};

/// A network of any other role (an encoder, an auxiliary head, an autoencoder): a tensor in, a
/// tensor out, with optional conditioning. Registered with [`crate::Registry::register_network`].
pub trait Network: Send + Sync {
    /// What conditioning the network reads; none by default.
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::None
    }
    /// Computes the output. `train` selects training behaviour (batch statistics, dropout).
    fn forward(&self, x: &Tensor, cond: Option<&Conditioning>, train: bool) -> Result<Tensor>;
}

/// The role of a network, which decides the registry table its plugin is looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    /// A [`Generator`].
    Generator,
    /// A [`Discriminator`].
    Discriminator,
    /// Any other [`Network`].
    Network,
}

impl NetworkKind {
    /// The role's name in messages: "generator", "discriminator" or "network".
    pub fn name(self) -> &'static str {
        match self {
            Self::Generator => "generator",
            Self::Discriminator => "discriminator",
            Self::Network => "network",
        }
    }
}

/// A built network of any role.
pub enum Model {
    /// A generator.
    Generator(Box<dyn Generator>),
    /// A discriminator.
    Discriminator(Box<dyn Discriminator>),
    /// Any other network.
    Network(Box<dyn Network>),
}

impl Model {
    /// The role it was built for.
    pub fn kind(&self) -> NetworkKind {
        match self {
            Self::Generator(_) => NetworkKind::Generator,
            Self::Discriminator(_) => NetworkKind::Discriminator,
            Self::Network(_) => NetworkKind::Network,
        }
    }

    /// What conditioning it reads.
    pub fn conditioning(&self) -> ConditioningKind {
        match self {
            Self::Generator(g) => g.conditioning(),
            Self::Discriminator(d) => d.conditioning(),
            Self::Network(n) => n.conditioning(),
        }
    }
}

/// One network a recipe trains: its checkpoint name, role, plugin and optimizer.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkDecl {
    /// Name in checkpoints (`<name>.*`, `opt_<name>.*`) and in [`TrainContext`] calls. The built-in
    /// adversarial recipe's are `g` and `d`; a recipe's sampling network is named `g`.
    pub name: String,
    /// Role.
    pub kind: NetworkKind,
    /// Plugin and config, built through the registry.
    pub spec: ModelSpec,
    /// Its optimizer.
    pub optimizer: OptimizerConfig,
    /// Whether the trainer keeps an exponential moving average of it (with the run's `training.ema`
    /// settings; only when those are set).
    pub ema: bool,
    /// Seed stream of its initial weights: different networks need different streams, and one
    /// recipe's `g` takes 0 and `d` 1 so that recipes with the usual pair start alike.
    pub init_stream: u64,
}

/// What a recipe's constructor receives besides its own config: the run's shared settings.
#[derive(Clone, Debug)]
pub struct RecipeSetup {
    /// The run's `[generator]` table (resolved).
    pub generator: ModelSpec,
    /// The run's `[discriminator]` table (resolved).
    pub discriminator: ModelSpec,
    /// The run's `[optimizer.generator]` table.
    pub generator_optimizer: OptimizerConfig,
    /// The run's `[optimizer.discriminator]` table.
    pub discriminator_optimizer: OptimizerConfig,
    /// The run's `[training]` table as JSON (the adversarial recipe's options and the shared ones).
    pub training: serde_json::Value,
    /// The run's `[text] encoder` (`shipped`, a model folder, a hub id or a pretrained text head), for
    /// recipes that read the text model's own files.
    pub text_encoder: String,
}

impl RecipeSetup {
    /// The usual pair: `g` from the run's generator table and `d` from its discriminator table, each
    /// with its optimizer; `g` keeps an EMA when the run asks for one.
    pub fn generator_and_discriminator(&self) -> Vec<NetworkDecl> {
        vec![
            NetworkDecl {
                name: "g".into(),
                kind: NetworkKind::Generator,
                spec: self.generator.clone(),
                optimizer: self.generator_optimizer,
                ema: true,
                init_stream: 0,
            },
            NetworkDecl {
                name: "d".into(),
                kind: NetworkKind::Discriminator,
                spec: self.discriminator.clone(),
                optimizer: self.discriminator_optimizer,
                ema: false,
                init_stream: 1,
            },
        ]
    }
}

/// Scalars a recipe reports for one iteration, by name. The trainer's log and plots know
/// `loss_d`, `loss_g`, `d_real`, `d_fake`, `d_wrong`, `g_regularization`, `r1_penalty` and
/// `noise_sigma`; other names are logged as they are.
pub type Scalars = BTreeMap<String, f32>;

/// What the trainer offers a recipe during one iteration. Model accessors return the copies the
/// passes go through: half precision in a mixed-precision run; `frozen_*` ones have constant
/// parameters (no parameter gradients: for passes whose gradients in that network would be thrown
/// away, which saves their backward pass). In a data-parallel group the recipe computes its rank's
/// rows of each global batch ([`TrainContext::rows`]); [`TrainContext::update`] averages gradients.
pub trait TrainContext {
    /// Completed iterations before this one.
    fn step(&self) -> u64;
    /// The run's total number of iterations.
    fn total_steps(&self) -> u64;
    /// The device of every tensor.
    fn device(&self) -> &Device;
    /// The dtype of the passes (float32, or the half type of a mixed-precision run).
    fn dtype(&self) -> DType;
    /// The global batch size.
    fn batch_size(&self) -> usize;
    /// Rows of a global batch this rank computes.
    fn local_rows(&self) -> usize;
    /// This rank's rows of `t`, a stack of `blocks` global batches along dimension 0.
    fn rows(&self, t: &Tensor, blocks: usize) -> Result<Tensor>;
    /// This rank's rows of conditioning `c` (a stack of `blocks` global batches).
    fn conditioning_rows(&self, c: &Conditioning, blocks: usize) -> Result<Conditioning>;
    /// The run's data.
    fn data(&self) -> &dyn DataSource;
    /// The iteration's next real batch (global, on the device) and the generator that continues after
    /// its draw; `None` after [`Recipe::batches_per_step`] of them.
    fn next_batch(&mut self) -> Option<(Batch, Rng)>;
    /// The iteration's conditioning for generated samples (a global batch) and the generator that
    /// continues after its draw. Each call returns the same draw.
    fn generator_draw(&self) -> (Option<Conditioning>, Rng);
    /// The generator named `name`.
    fn generator(&self, name: &str) -> Result<&dyn Generator>;
    /// The discriminator named `name`.
    fn discriminator(&self, name: &str) -> Result<&dyn Discriminator>;
    /// The network named `name`.
    fn network(&self, name: &str) -> Result<&dyn Network>;
    /// The generator named `name` with constant parameters.
    fn frozen_generator(&self, name: &str) -> Result<&dyn Generator>;
    /// The discriminator named `name` with constant parameters.
    fn frozen_discriminator(&self, name: &str) -> Result<&dyn Discriminator>;
    /// The network named `name` with constant parameters.
    fn frozen_network(&self, name: &str) -> Result<&dyn Network>;
    /// One optimizer step of network `name` on the gradient of `loss` (a float32 scalar), at the
    /// scheduled learning rate. `false` when float16 gradients overflowed and the step was skipped.
    fn update(&mut self, name: &str, loss: &Tensor) -> Result<bool>;
    /// One optimizer step of each network of `names` on the gradient of `loss`, from one backward pass:
    /// for a loss that several networks minimise together (CycleGAN's two generators), whose separate
    /// updates would let the first one's new weights into the second one's gradient.
    fn update_jointly(&mut self, names: &[&str], loss: &Tensor) -> Result<bool> {
        let _ = loss;
        Err(crate::Error::InvalidInput(format!("this trainer cannot update networks {names:?} jointly")))
    }
    /// Clamps network `name`'s trainable weights to `[-c, c]` (WGAN's weight clipping).
    fn clip_weights(&mut self, name: &str, c: f64) -> Result<()>;
    /// The values of scalar tensors, in one read, averaged over the ranks of a data-parallel group.
    fn scalars(&self, values: &[&Tensor]) -> Result<Vec<f32>>;
    /// Saves network `name`'s weights, buffers and optimizer state, so that [`TrainContext::restore`]
    /// undoes the updates made after it: for look-ahead steps such as Unrolled GAN's. A second
    /// snapshot of the same network replaces the first.
    fn snapshot(&mut self, name: &str) -> Result<()> {
        Err(crate::Error::InvalidInput(format!("this trainer cannot snapshot network `{name}`")))
    }
    /// Puts network `name` back as its last [`TrainContext::snapshot`] saved it, and forgets that
    /// snapshot. An error when there is none.
    fn restore(&mut self, name: &str) -> Result<()> {
        Err(crate::Error::InvalidInput(format!("this trainer cannot restore network `{name}`")))
    }
    /// `value`, or [`crate::Error::Diverged`] naming `what` when it is not finite: call it on each loss
    /// before the update that uses it, so that a diverged run stops before its weights go bad.
    fn finite(&self, what: &str, value: f32) -> Result<f32> {
        if value.is_finite() {
            Ok(value)
        } else {
            Err(crate::Error::Diverged { what: what.to_string(), value })
        }
    }
}

/// The two translators of an image-to-image recipe, by network name: each a [`Network`] from images
/// of one domain to images of the other. Their data holds both domains ([`Batch::labels`] 0 for A,
/// 1 for B).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslationPair {
    /// The network from domain A to domain B.
    pub a_to_b: String,
    /// The network from domain B to domain A.
    pub b_to_a: String,
}

/// A training recipe: a GAN variant's networks and what one iteration computes.
pub trait Recipe: Send {
    /// The networks it trains; the trainer builds them in this order.
    fn networks(&self) -> Vec<NetworkDecl>;
    /// Real batches drawn per iteration (`k` for `k` discriminator steps).
    fn batches_per_step(&self) -> usize {
        1
    }
    /// The generator network that sampling means for this recipe: the trainer draws progress grids
    /// from it (its EMA copy when it has one), re-estimates that copy's batch-norm statistics, and
    /// writes it into checkpoints' model cards, which `condor sample`, `condor export` and
    /// `condor eval` read. `g` by default.
    fn sampling_network(&self) -> &str {
        "g"
    }
    /// The translators of an image-to-image recipe; `None`, the default, for a recipe that samples
    /// from a generator. The trainer then draws translation grids instead of samples and writes a
    /// translation card into checkpoints; [`Recipe::sampling_network`] is not read.
    fn translation(&self) -> Option<TranslationPair> {
        None
    }
    /// One iteration: compute losses, [`TrainContext::update`] the networks, report scalars.
    fn step(&mut self, cx: &mut dyn TrainContext) -> Result<Scalars>;
    /// State the recipe keeps between iterations (an image history buffer, say), by name, for
    /// checkpoints; a recipe whose every draw derives from the step number keeps none (the default).
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    /// Restores what [`Recipe::state`] saved, on resume.
    fn load_state(&mut self, _tensors: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }
}
