//! The generic trainer: runs a [`Recipe`] (the built-in [`crate::adversarial`] one unless the config
//! names another) and owns what every recipe shares: data and prefetch, initial weights, optimizers
//! and learning-rate schedules, EMA, mixed precision, data parallel, checkpoints and the divergence
//! stop.
//!
//! Every random draw of iteration `s` comes from generators derived from `(seed, s, sub-step)`, so
//! the iteration number is the whole random state: resuming from a checkpoint continues bit-exactly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use condor_core::profile;
use condor_core::{
    is_buffer, BuildContext, DataSource, Generator, Model, NetworkKind, Params, Recipe, RecipeSetup, Registry, Scalars,
    TranslationPair,
};
use condor_infer::ModelCard;

use crate::adversarial::{self, Adversarial};
use crate::checkpoint::{Checkpoint, CheckpointError, TrainState};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::networks::{as_generator, TrainedNetwork};
use crate::parallel::{Collective, Shard};
use crate::precision::{LossScale, Precision};
use crate::prefetch::{prepare, IterationShape, Prefetcher};
use crate::run_dir::StepRecord;
use crate::step_context::StepContext;
use crate::tricks::{ema_update, recalibrate_batch_norm};

/// The shared settings a recipe is built from.
fn recipe_setup(config: &RunConfig) -> Result<RecipeSetup> {
    Ok(RecipeSetup {
        generator: config.generator.clone(),
        discriminator: config.discriminator.clone(),
        generator_optimizer: config.optimizer.generator,
        discriminator_optimizer: config.optimizer.discriminator,
        training: serde_json::to_value(&config.training)
            .map_err(|e| TrainError::Config(format!("`training` does not serialise: {e}")))?,
        text_encoder: config.text.encoder.clone(),
    })
}

/// The recipe a config names: the built-in adversarial one without a `[recipe]` table.
pub fn build_recipe(config: &RunConfig, registry: &Registry) -> Result<Box<dyn Recipe>> {
    let setup = recipe_setup(config)?;
    Ok(match &config.recipe {
        Some(spec) if spec.plugin != adversarial::NAME => registry.build_recipe(spec, &setup)?,
        _ => Box::new(Adversarial::new(&setup)?),
    })
}

/// Checkpoint group of network `name`'s moving average: `ema` for the generator `g` (as checkpoints
/// have always named it), `ema_<name>` for others.
fn ema_group(name: &str) -> String {
    if name == "g" {
        "ema".into()
    } else {
        format!("ema_{name}")
    }
}

/// The roles the run's `[generator]` and `[discriminator]` tables are built in
/// ([`Registry::role_of`]): a translation recipe's are networks.
pub fn run_roles(config: &RunConfig, registry: &Registry) -> (NetworkKind, NetworkKind) {
    (
        registry.role_of(NetworkKind::Generator, &config.generator),
        registry.role_of(NetworkKind::Discriminator, &config.discriminator),
    )
}

/// Trains the networks of a recipe on one data source.
pub struct Trainer {
    config: RunConfig,
    device: Device,
    data: Arc<dyn DataSource>,
    recipe: Box<dyn Recipe>,
    networks: Vec<TrainedNetwork>,
    step: u64,
    collective: Option<Arc<dyn Collective>>,
    shard: Shard,
    loss_scale: Option<LossScale>,
    prefetch: Option<Prefetcher>,
    /// The step at which the EMA copy's batch-norm statistics were last re-estimated.
    ema_calibrated: Option<u64>,
}

impl Trainer {
    /// A trainer at step 0: the recipe and its networks built through `registry` from the config,
    /// weights initialised from the seed, on `device`. The stored config has every plugin default
    /// filled in, and the fields the data decides (sample shape, conditioning size) filled from it
    /// where the config leaves them out ([`BuildContext`]).
    pub fn new(config: RunConfig, registry: &Registry, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut config = config;
        // Unknown plugins and bad plugin configs are reported before the data is built (which may
        // encode every caption); the data then decides the fields a config leaves out.
        let (g_role, d_role) = run_roles(&config, registry);
        registry.resolve(g_role, &config.generator)?;
        registry.resolve(d_role, &config.discriminator)?;
        let data: Arc<dyn DataSource> = Arc::from(crate::text_data::build_data(&config, device)?);
        let context = BuildContext { sample_shape: data.sample_shape(), cond_dim: data.cond_dim() };
        config.generator = registry.resolve_in_context(g_role, &config.generator, &context)?;
        config.discriminator = registry.resolve_in_context(d_role, &config.discriminator, &context)?;
        if let Some(spec) = config.recipe.as_ref().filter(|s| s.plugin != adversarial::NAME) {
            config.recipe = Some(registry.resolve_recipe(spec)?);
        }
        let recipe = build_recipe(&config, registry)?;
        let precision = config.training.precision;
        let mut networks = Vec::new();
        for mut decl in recipe.networks() {
            decl.optimizer
                .validate(&format!("the optimizer of network `{}`", decl.name))
                .map_err(TrainError::Config)?;
            if networks.iter().any(|n: &TrainedNetwork| n.decl.name == decl.name) {
                return Err(TrainError::Config(format!("the recipe declares network `{}` twice", decl.name)));
            }
            decl.spec = registry.resolve_in_context(decl.kind, &decl.spec, &context)?;
            let ema = config.training.ema.is_some();
            networks.push(TrainedNetwork::build(decl, registry, config.seed, precision, ema, device)?);
        }
        let unpaired = matches!(config.data, condor_data::DatasetConfig::Unpaired { .. });
        match (recipe.translation(), unpaired) {
            (Some(pair), true) => check_translators(&networks, &pair)?,
            (Some(_), false) => {
                return Err(TrainError::Config(
                    "translation recipes need unpaired data: `[data] kind = \"unpaired\"` with its two domains".into(),
                ))
            }
            (None, true) => {
                return Err(TrainError::Config(
                    "unpaired data (two domains) trains the translation recipes: set `[recipe] plugin = \"cyclegan\"` \
                     or \"discogan\""
                        .into(),
                ))
            }
            (None, false) => check_fit(&config, data.as_ref(), &networks, recipe.sampling_network())?,
        }
        let loss_scale = (precision == Precision::F16).then(LossScale::default);
        Ok(Self {
            shard: Shard::whole(config.batch_size),
            config,
            device: device.clone(),
            data,
            recipe,
            networks,
            step: 0,
            collective: None,
            loss_scale,
            prefetch: None,
            ema_calibrated: None,
        })
    }

    /// A trainer restored from a checkpoint: same recipe, networks, weights, optimizer moments and step.
    pub fn from_checkpoint(ckpt: &Checkpoint, registry: &Registry, device: &Device) -> Result<Self> {
        let mut t = Self::new(ckpt.config.clone(), registry, device)?;
        let mismatch = |reason: String| CheckpointError::Mismatch { path: ckpt.path.clone(), reason };
        for net in &mut t.networks {
            let name = net.decl.name.clone();
            let role = net.decl.kind.name();
            net.params.load(&ckpt.group(&name)).map_err(|r| mismatch(format!("{role} `{name}`: {r}")))?;
            if let Some((_, p)) = &net.ema {
                let group = ema_group(&name);
                if !ckpt.has_group(&group) {
                    return Err(mismatch(format!(
                        "the config has an EMA copy of `{name}` but the checkpoint has none"
                    ))
                    .into());
                }
                p.load(&ckpt.group(&group)).map_err(|r| mismatch(format!("EMA copy of `{name}`: {r}")))?;
            }
            let steps = ckpt.state.optimizer_steps(&name);
            net.opt
                .load_state(&ckpt.group(&format!("opt_{name}")), steps)
                .map_err(|r| mismatch(format!("optimizer of `{name}`: {r}")))?;
            if let Some(h) = net.half_params() {
                h.copy_from(&net.params)?;
            }
        }
        t.recipe.load_state(&ckpt.group("recipe")).map_err(|e| mismatch(format!("recipe state: {e}")))?;
        t.step = ckpt.state.step;
        if t.loss_scale.is_some() {
            t.loss_scale = Some(ckpt.state.loss_scale.unwrap_or_default());
        }
        Ok(t)
    }

    /// Makes this trainer one rank of a data-parallel group: from now on it computes its [`Shard`] of
    /// each global batch and averages gradients, logged scalars and batch-norm statistics over the
    /// group. Every rank must start from the same state (the same config, or the same checkpoint).
    pub fn join(&mut self, collective: Arc<dyn Collective>) -> Result<()> {
        self.shard = Shard::new(collective.rank(), collective.world_size(), self.config.batch_size)?;
        self.collective = Some(collective);
        Ok(())
    }

    /// Whether any rank of the group wants to stop (`local` is this rank's wish): every rank gets the
    /// same answer, so all of them stop after the same step.
    pub fn agree_to_stop(&self, local: bool) -> Result<bool> {
        match &self.collective {
            Some(c) => {
                let flag = Tensor::new(if local { 1f32 } else { 0.0 }, &self.device)?;
                Ok(crate::parallel::mean_scalars(c.as_ref(), &[&flag])?[0] > 0.0)
            }
            None => Ok(local),
        }
    }

    /// The resolved run config.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Adopts what a resumed run may change: the number of steps, the schedule and the optimizer
    /// settings (the optimizers keep their moments).
    pub fn apply_resume_changes(&mut self, given: &RunConfig, registry: &Registry) -> Result<()> {
        self.config.steps = given.steps;
        self.config.schedule = given.schedule.clone();
        self.config.optimizer = given.optimizer;
        // The recipe maps the run's optimizer tables to its networks.
        for decl in build_recipe(&self.config, registry)?.networks() {
            if let Some(net) = self.networks.iter_mut().find(|n| n.decl.name == decl.name) {
                net.decl.optimizer = decl.optimizer;
                net.opt.set_config(decl.optimizer);
            }
        }
        Ok(())
    }

    /// Completed iterations.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The device everything lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The recipe's networks, in declaration order.
    pub fn networks(&self) -> &[TrainedNetwork] {
        &self.networks
    }

    /// The network named `name`.
    pub fn network(&self, name: &str) -> Option<&TrainedNetwork> {
        self.networks.iter().find(|n| n.decl.name == name)
    }

    /// The network sampling means for the recipe ([`Recipe::sampling_network`]).
    fn sampling_network(&self) -> &TrainedNetwork {
        self.network(self.recipe.sampling_network()).expect("checked when the trainer was built")
    }

    /// The generator to sample from: the recipe's sampling network's EMA copy when there is one, else
    /// the network itself.
    pub fn sampling_generator(&self) -> Result<&dyn Generator> {
        let net = self.sampling_network();
        Ok(as_generator(&net.decl.name, net.for_sampling())?)
    }

    /// The translators of a translation recipe ([`condor_core::Recipe::translation`]).
    pub fn translation(&self) -> Option<TranslationPair> {
        self.recipe.translation()
    }

    /// The metadata entry of the card checkpoints carry at training state `state`: the translation
    /// card of a translation recipe, the model card of the generator to sample from otherwise.
    fn card_metadata(&self, state: &TrainState) -> (String, String) {
        match self.translation() {
            Some(pair) => crate::translation::translation_card(self, &pair, state).metadata(),
            None => self.model_card(state).metadata(),
        }
    }

    /// The model card of the generator to sample from at training state `state`.
    fn model_card(&self, state: &TrainState) -> ModelCard {
        let net = self.sampling_network();
        let ema = net.ema.is_some();
        let weights = if ema { ema_group(&net.decl.name) } else { net.decl.name.clone() };
        crate::checkpoint::run_card(&self.config, net.decl.spec.clone(), &weights, ema, state)
    }

    /// The data source.
    pub fn data(&self) -> &dyn DataSource {
        self.data.as_ref()
    }

    /// One iteration of the recipe, then what every recipe shares: batch-norm statistics moved to the
    /// master weights and averaged over ranks, the loss scale, the EMA update. A non-finite loss stops
    /// before the update that would have used it.
    ///
    /// In a data-parallel group every rank draws the same global batch and noise and computes its
    /// [`Shard`] of it; gradients, logged scalars and batch-norm statistics are averaged over ranks.
    pub fn step(&mut self) -> Result<StepRecord> {
        let started = Instant::now();
        let s = self.step;
        let shape = IterationShape {
            seed: self.config.seed,
            d_steps: self.recipe.batches_per_step() as u64,
            batch_size: self.config.batch_size,
        };
        if self.config.schedule.prefetch && self.prefetch.is_none() {
            self.prefetch = Some(Prefetcher::new(self.data.clone(), shape, self.device.clone())?);
        }
        let span = profile::span(|| "step: data".into());
        let prepared = match self.prefetch.as_mut().and_then(|p| p.take(s)) {
            Some(prepared) => prepared?,
            None => prepare(self.data.as_ref(), shape, s, &self.device)?,
        };
        if let Some(p) = self.prefetch.as_mut().filter(|_| s + 1 < self.config.steps) {
            p.request(s + 1);
        }
        drop(span);
        let mut cx = StepContext {
            step: s,
            total: self.config.steps,
            device: &self.device,
            dtype: self.config.training.precision.dtype(),
            shard: self.shard,
            data: self.data.as_ref(),
            networks: &mut self.networks,
            batches: prepared.d_batches.into_iter(),
            generator_draw: prepared.g_conditioning,
            collective: self.collective.as_deref(),
            loss_scale: self.loss_scale.map(|l| l.scale),
            overflow: false,
            snapshots: Default::default(),
        };
        let scalars = match self.recipe.step(&mut cx) {
            Err(condor_core::Error::Diverged { what, value }) => {
                return Err(TrainError::Diverged { step: s + 1, what, value, last_checkpoint: None })
            }
            other => other?,
        };
        let overflow = cx.overflow;
        let _span = profile::span(|| "step: buffers, EMA".into());
        self.sync_buffers()?;
        if let Some(scale) = &mut self.loss_scale {
            scale.update(overflow);
        }
        if let Some(cfg) = &self.config.training.ema {
            for net in &self.networks {
                if let Some((_, ema)) = &net.ema {
                    ema_update(ema, &net.params, cfg, s)?;
                }
            }
        }
        self.step += 1;
        Ok(step_record(self.step, scalars, started.elapsed().as_secs_f32()))
    }

    /// Batch-norm statistics (and other buffers): from the working copies to the master weights, then
    /// averaged over the ranks of a data-parallel group and copied back.
    fn sync_buffers(&self) -> Result<()> {
        for net in &self.networks {
            if let Some(h) = net.half_params() {
                net.params.copy_from_where(h, is_buffer)?;
            }
        }
        if let Some(c) = &self.collective {
            let buffers: Vec<_> = self
                .networks
                .iter()
                .flat_map(|n| n.params.named().into_iter().filter(|(name, _)| is_buffer(name)))
                .collect();
            crate::parallel::average_values(c.as_ref(), &buffers)?;
            for net in &self.networks {
                if let Some(h) = net.half_params() {
                    h.copy_from_where(&net.params, is_buffer)?;
                }
            }
        }
        Ok(())
    }

    /// Re-estimates the EMA generator's batch-norm statistics for its averaged weights
    /// ([`recalibrate_batch_norm`], `training.ema.batch_norm_batches` batches), at most once per
    /// step. Call it before sampling or saving the EMA copy; training never reads these statistics
    /// (each update copies the trained generator's), so calling it or not leaves training unchanged.
    pub fn calibrate_ema(&mut self) -> Result<()> {
        let Some(cfg) = &self.config.training.ema else { return Ok(()) };
        let Some((Model::Generator(g), p)) = self.sampling_network().ema.as_ref() else { return Ok(()) };
        if self.ema_calibrated == Some(self.step) {
            return Ok(());
        }
        let (batches, bs, seed) = (cfg.batch_norm_batches, self.config.batch_size, self.config.seed);
        recalibrate_batch_norm(g.as_ref(), p, self.data.as_ref(), batches, bs, seed, &self.device)?;
        self.ema_calibrated = Some(self.step);
        Ok(())
    }

    /// Every tensor a checkpoint holds, with its prefixed name: each network's weights (`<name>.`),
    /// moving average and optimizer moments (`opt_<name>.`), and the recipe's own state (`recipe.`).
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let vars = |prefix: &str, p: &Params, out: &mut Vec<(String, Tensor)>| {
            out.extend(p.named().into_iter().map(|(n, v)| (format!("{prefix}.{n}"), v.as_tensor().clone())));
        };
        for net in &self.networks {
            vars(&net.decl.name, &net.params, &mut out);
            if let Some((_, p)) = &net.ema {
                vars(&ema_group(&net.decl.name), p, &mut out);
            }
            let opt = format!("opt_{}", net.decl.name);
            out.extend(net.opt.state().into_iter().map(|(n, t)| (format!("{opt}.{n}"), t)));
        }
        out.extend(self.recipe.state().into_iter().map(|(n, t)| (format!("recipe.{n}"), t)));
        out
    }

    /// The training state written into checkpoints.
    pub fn state(&self) -> TrainState {
        let steps = |name: &str| self.network(name).map_or(0, |n| n.opt.steps());
        TrainState {
            step: self.step,
            opt_g_steps: steps("g"),
            opt_d_steps: steps("d"),
            opt_steps: self
                .networks
                .iter()
                .filter(|n| n.decl.name != "g" && n.decl.name != "d")
                .map(|n| (n.decl.name.clone(), n.opt.steps()))
                .collect(),
            written_by: format!("condor {}", env!("CARGO_PKG_VERSION")),
            loss_scale: self.loss_scale,
        }
    }

    /// Writes a checkpoint of the current state to `path` (atomically).
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        let (tensors, state) = (self.checkpoint_tensors(), self.state());
        let card = self.card_metadata(&state);
        Ok(crate::checkpoint::save(path, &tensors, &self.config, &state, card)?)
    }

    /// All variables by prefixed name, for exact comparisons between runs.
    pub fn weights(&self) -> HashMap<String, Tensor> {
        self.checkpoint_tensors().into_iter().collect()
    }
}

/// The log record of a step from the recipe's scalars: the names the log and plots know fill their
/// fields, the rest are kept by name.
fn step_record(step: u64, mut scalars: Scalars, step_time_s: f32) -> StepRecord {
    let mut take = |name: &str| scalars.remove(name);
    StepRecord {
        step,
        loss_d: take("loss_d").unwrap_or_default(),
        loss_g: take("loss_g").unwrap_or_default(),
        g_regularization: take("g_regularization").unwrap_or_default(),
        r1_penalty: take("r1_penalty").unwrap_or_default(),
        d_real: take("d_real").unwrap_or_default(),
        d_fake: take("d_fake").unwrap_or_default(),
        d_wrong: take("d_wrong"),
        noise_sigma: take("noise_sigma").unwrap_or_default(),
        step_time_s,
        extra: scalars,
    }
}

/// Checks that a translation recipe declares both its translators as networks.
fn check_translators(networks: &[TrainedNetwork], pair: &TranslationPair) -> Result<()> {
    for name in [&pair.a_to_b, &pair.b_to_a] {
        if !networks.iter().any(|n| &n.decl.name == name && n.decl.kind == NetworkKind::Network) {
            return Err(TrainError::Config(format!(
                "the recipe translates with `{name}`, which it does not declare as a network"
            )));
        }
    }
    Ok(())
}

/// Checks that the recipe samples from one of its generators, and that the data and the networks
/// agree on sample shape and conditioning.
fn check_fit(config: &RunConfig, data: &dyn DataSource, networks: &[TrainedNetwork], sampled: &str) -> Result<()> {
    let bad = |m: String| Err(TrainError::Config(m));
    if !networks.iter().any(|n| n.decl.name == sampled && n.decl.kind == NetworkKind::Generator) {
        return bad(format!("the recipe samples from `{sampled}`, which it does not declare as a generator"));
    }
    for net in networks {
        if let Model::Generator(g) = &net.model {
            if net.decl.name == sampled && g.sample_shape() != data.sample_shape() {
                return bad(format!(
                    "the generator (`{}`) makes samples of shape {:?} but the data has shape {:?}",
                    net.decl.spec.plugin,
                    g.sample_shape(),
                    data.sample_shape()
                ));
            }
        }
        if let Model::Discriminator(d) = &net.model {
            if let Some(shape) = d.sample_shape().filter(|s| s[..] != data.sample_shape()[..]) {
                let packing = match net.decl.spec.pack.filter(|&m| m > 1) {
                    Some(m) => format!(
                        "; with `pack = {m}` it is built for {m} samples side by side, so its config's first input dimension (`channels`, `input_shape`) is {m} times the data's, {}: leave it out and the data fills it",
                        m * data.sample_shape().first().copied().unwrap_or(1)
                    ),
                    None => String::new(),
                };
                return bad(format!(
                    "the discriminator `{}` (`{}`) scores samples of shape {shape:?} but the data (and so the generator) has shape {:?}{packing}",
                    net.decl.name,
                    net.decl.spec.plugin,
                    data.sample_shape()
                ));
            }
        }
        // A network of another role reads what its recipe gives it (BiGAN's discriminator, a latent).
        let dim = net.model.conditioning().dim();
        if dim != 0 && dim != data.cond_dim() && net.decl.kind != NetworkKind::Network {
            return bad(format!(
                "the {} is conditioned on vectors of size {dim} but the data provides {} (set `cond_dim` in its config)",
                net.decl.kind.name(),
                data.cond_dim()
            ));
        }
    }
    if config.training.diff_augment.is_some() && data.sample_shape().len() != 3 {
        return bad(format!(
            "`training.diff_augment` translates and cuts images (channels, height, width), but the data's samples have shape {:?}",
            data.sample_shape()
        ));
    }
    let conditional_d = networks.iter().any(|n| n.decl.name == "d" && n.model.conditioning().dim() > 0);
    if config.training.matching_aware_penalty.is_some() && !(data.cond_dim() > 0 && conditional_d) {
        return bad("`training.matching_aware_penalty` needs text-conditioned data and discriminator".into());
    }
    let reads_boxes = networks.iter().any(|n| match &n.model {
        Model::Discriminator(d) => n.decl.name == "d" && d.layout() != condor_core::layout::LayoutKind::None,
        _ => false,
    });
    if config.training.mismatched_boxes.is_some() && !reads_boxes {
        return bad("`training.mismatched_boxes` needs a discriminator that reads the box (a what-and-where model: \
             `layout = { ... }` in its config, and `[data] layout = true`)"
            .into());
    }
    Ok(())
}
