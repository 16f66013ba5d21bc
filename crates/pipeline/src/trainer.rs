//! The adversarial trainer: Algorithm 1 of Goodfellow et al. (2014) with k discriminator steps per
//! generator step, any [`LossKind`], the stabilising tricks of [`crate::tricks`], and for text
//! conditioning GAN-CLS, GAN-INT and the generator's own regularisation (conditioning augmentation).
//!
//! Every random draw of iteration `s` comes from generators derived from `(seed, s, sub-step)`, so
//! the iteration number is the whole random state: resuming from a checkpoint continues bit-exactly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use condor_core::profile;
use condor_core::rng::normal;
use condor_core::{derived_rng, is_buffer, Conditioning, DataSource, Discriminator, Generator, Params, Registry};

use crate::checkpoint::{Checkpoint, CheckpointError, TrainState};
use crate::config::RunConfig;
use crate::diff_augment;
use crate::error::{PipelineError, Result};
use crate::losses::Targets;
use crate::optim::Adam;
use crate::parallel::{Collective, Shard, SingleProcess};
use crate::precision::{gradients_finite, master_gradients, LossScale, Precision};
use crate::prefetch::{prepare, IterationShape, Prefetcher};
use crate::regularizers::r1_penalty;
use crate::run_dir::StepRecord;
use crate::tricks::{
    add_instance_noise, concat_conditioning, ema_update, gan_cls_loss, interpolate_conditioning, label_targets,
    next_row_conditioning, recalibrate_batch_norm,
};

/// Seeds of the generator's and the discriminator's initial weights, derived from the run seed.
fn init_seed(seed: u64, which: u64) -> u64 {
    use rand::RngCore;
    derived_rng(seed, &[u64::MAX - which]).next_u64()
}

/// A generator, its variables and (when configured) its moving average.
pub struct GeneratorState {
    /// The trained generator.
    pub model: Box<dyn Generator>,
    /// Its variables.
    pub params: Params,
    /// The EMA copy used for sampling, with its variables.
    pub ema: Option<(Box<dyn Generator>, Params)>,
}

impl GeneratorState {
    /// The generator to sample from: the EMA copy when there is one.
    pub fn for_sampling(&self) -> &dyn Generator {
        self.ema.as_ref().map_or(self.model.as_ref(), |(g, _)| g.as_ref())
    }
}

/// Half-precision working copies of the generator and discriminator, which the passes of a
/// mixed-precision run go through (the float32 models hold the master weights).
struct HalfModels {
    g: Box<dyn Generator>,
    g_params: Params,
    d: Box<dyn Discriminator>,
    d_params: Params,
}

/// Copies of the models the passes go through (the half-precision ones in a mixed-precision run) whose
/// parameters are constants ([`Params::frozen_var_builder`]): for the passes whose parameter gradients
/// would be thrown away. The discriminator's step draws its images from the frozen generator, so no
/// graph is built for them; the generator's step scores its images with the frozen discriminator, so
/// the discriminator's weight gradients are not computed. Values, and so training, are unchanged.
struct FrozenModels {
    g: Box<dyn Generator>,
    d: Box<dyn Discriminator>,
}

impl FrozenModels {
    fn new(config: &RunConfig, registry: &Registry, g: &Params, d: &Params, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            g: registry.build_generator(&config.generator, g.frozen_var_builder(dtype, device))?,
            d: registry.build_discriminator(&config.discriminator, d.frozen_var_builder(dtype, device))?,
        })
    }
}

/// Trains one generator against one discriminator on one data source.
pub struct Trainer {
    config: RunConfig,
    device: Device,
    data: Arc<dyn DataSource>,
    generator: GeneratorState,
    discriminator: Box<dyn Discriminator>,
    d_params: Params,
    opt_g: Adam,
    opt_d: Adam,
    step: u64,
    collective: Option<Arc<dyn Collective>>,
    shard: Shard,
    half: Option<HalfModels>,
    frozen: FrozenModels,
    loss_scale: Option<LossScale>,
    prefetch: Option<Prefetcher>,
    /// The step at which the EMA copy's batch-norm statistics were last re-estimated.
    ema_calibrated: Option<u64>,
}

impl Trainer {
    /// A trainer at step 0: plugins built through `registry` from the config, weights initialised from
    /// the seed, on `device`. The stored config has every plugin default filled in.
    pub fn new(config: RunConfig, registry: &Registry, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut config = config;
        config.generator = registry.resolve_generator(&config.generator)?;
        config.discriminator = registry.resolve_discriminator(&config.discriminator)?;
        let data: Arc<dyn DataSource> = Arc::from(crate::text_data::build_data(&config, device)?);

        let g_params = Params::new(init_seed(config.seed, 0));
        let model = registry.build_generator(&config.generator, g_params.var_builder(DType::F32, device))?;
        let d_params = Params::new(init_seed(config.seed, 1));
        let discriminator =
            registry.build_discriminator(&config.discriminator, d_params.var_builder(DType::F32, device))?;
        check_fit(&config, data.as_ref(), model.as_ref(), discriminator.as_ref())?;
        let ema = match config.training.ema {
            Some(_) => {
                let p = Params::new(init_seed(config.seed, 0));
                let g = registry.build_generator(&config.generator, p.var_builder(DType::F32, device))?;
                p.copy_from(&g_params)?;
                Some((g, p))
            }
            None => None,
        };
        let opt_g = Adam::new(g_params.trainable(), config.optimizer.generator)?;
        let opt_d = Adam::new(d_params.trainable(), config.optimizer.discriminator)?;
        let shard = Shard::whole(config.batch_size);
        let precision = config.training.precision;
        let half = if precision.is_mixed() {
            let g_half = Params::new(init_seed(config.seed, 0));
            let g = registry.build_generator(&config.generator, g_half.var_builder(precision.dtype(), device))?;
            let d_half = Params::new(init_seed(config.seed, 1));
            let d =
                registry.build_discriminator(&config.discriminator, d_half.var_builder(precision.dtype(), device))?;
            g_half.copy_from(&g_params)?;
            d_half.copy_from(&d_params)?;
            Some(HalfModels { g, g_params: g_half, d, d_params: d_half })
        } else {
            None
        };
        let frozen = match &half {
            Some(h) => FrozenModels::new(&config, registry, &h.g_params, &h.d_params, precision.dtype(), device)?,
            None => FrozenModels::new(&config, registry, &g_params, &d_params, DType::F32, device)?,
        };
        let loss_scale = (precision == Precision::F16).then(LossScale::default);
        Ok(Self {
            config,
            device: device.clone(),
            data,
            generator: GeneratorState { model, params: g_params, ema },
            discriminator,
            d_params,
            opt_g,
            opt_d,
            step: 0,
            collective: None,
            shard,
            half,
            frozen,
            loss_scale,
            prefetch: None,
            ema_calibrated: None,
        })
    }

    /// A trainer restored from a checkpoint: same models, weights, optimizer moments and step.
    pub fn from_checkpoint(ckpt: &Checkpoint, registry: &Registry, device: &Device) -> Result<Self> {
        let mut t = Self::new(ckpt.config.clone(), registry, device)?;
        let mismatch = |reason: String| CheckpointError::Mismatch { path: ckpt.path.clone(), reason };
        t.generator.params.load(&ckpt.group("g")).map_err(|r| mismatch(format!("generator: {r}")))?;
        t.d_params.load(&ckpt.group("d")).map_err(|r| mismatch(format!("discriminator: {r}")))?;
        if let Some((_, p)) = &t.generator.ema {
            if !ckpt.has_group("ema") {
                return Err(mismatch("the config has an EMA generator but the checkpoint has none".into()).into());
            }
            p.load(&ckpt.group("ema")).map_err(|r| mismatch(format!("EMA generator: {r}")))?;
        }
        t.opt_g
            .load_state(&ckpt.group("opt_g"), ckpt.state.opt_g_steps)
            .map_err(|r| mismatch(format!("generator optimizer: {r}")))?;
        t.opt_d
            .load_state(&ckpt.group("opt_d"), ckpt.state.opt_d_steps)
            .map_err(|r| mismatch(format!("discriminator optimizer: {r}")))?;
        t.step = ckpt.state.step;
        if let Some(h) = &t.half {
            h.g_params.copy_from(&t.generator.params)?;
            h.d_params.copy_from(&t.d_params)?;
        }
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
    pub fn apply_resume_changes(&mut self, given: &RunConfig) {
        self.config.steps = given.steps;
        self.config.schedule = given.schedule.clone();
        self.config.optimizer = given.optimizer;
        self.opt_g.set_config(given.optimizer.generator);
        self.opt_d.set_config(given.optimizer.discriminator);
    }

    /// Completed iterations.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The device everything lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The generator, its variables and its EMA.
    pub fn generator(&self) -> &GeneratorState {
        &self.generator
    }

    /// The discriminator.
    pub fn discriminator(&self) -> &dyn Discriminator {
        self.discriminator.as_ref()
    }

    /// The discriminator's variables.
    pub fn discriminator_params(&self) -> &Params {
        &self.d_params
    }

    /// The data source.
    pub fn data(&self) -> &dyn DataSource {
        self.data.as_ref()
    }

    /// Mean discriminator score over this rank's rows: a probability for BCE losses, the raw score
    /// otherwise.
    fn mean_score(&self, logits: &Tensor) -> Result<Tensor> {
        let s = if self.config.training.loss.is_probabilistic() {
            candle_nn::ops::sigmoid(logits)?
        } else {
            logits.clone()
        };
        Ok(s.mean_all()?)
    }

    /// The values of scalar tensors (one device-to-host read), averaged over the ranks of a
    /// data-parallel group.
    fn scalars(&self, values: &[&Tensor]) -> Result<Vec<f32>> {
        Ok(crate::parallel::mean_scalars(self.collective.as_deref().unwrap_or(&SingleProcess), values)?)
    }

    /// This rank's rows of conditioning `c` (a stack of `blocks` global batches), in `dtype`.
    fn local_conditioning(&self, c: &Conditioning, blocks: usize, dtype: DType) -> Result<Conditioning> {
        Ok(self.shard.conditioning(c, blocks)?.to_dtype(dtype)?)
    }

    /// Gradients of `loss` for the optimizer's variables `vars`: with mixed precision, those of the
    /// working copy `half` moved onto the float32 master weights (and unscaled for float16); averaged
    /// over the ranks of a data-parallel group. `None` when float16 gradients overflowed: the update is
    /// skipped and the loss scale shrinks.
    fn gradients(
        &self,
        loss: &Tensor,
        vars: &[(String, candle_core::Var)],
        half: Option<&Params>,
    ) -> Result<Option<GradStore>> {
        let scale = self.loss_scale.map_or(1.0, |s| s.scale);
        let mut grads = if scale == 1.0 { loss.backward()? } else { (loss * scale)?.backward()? };
        if let Some(h) = half {
            grads = master_gradients(&grads, h, vars, 1.0 / scale)?;
        }
        if let Some(c) = &self.collective {
            crate::parallel::average_gradients(c.as_ref(), &mut grads, vars)?;
        }
        if self.loss_scale.is_some() && !gradients_finite(&grads, vars)? {
            return Ok(None);
        }
        Ok(Some(grads))
    }

    /// `x` (this rank's rows of `blocks` stacked global batches) through the differentiable
    /// augmentation drawn for the whole global batch, so that every world size draws the same transform
    /// for the same row; `x` itself when the run has none.
    fn augmented_rows(&self, x: &Tensor, blocks: usize, rng: &mut condor_core::Rng) -> Result<Tensor> {
        let Some(a) = &self.config.training.diff_augment else {
            return Ok(x.clone());
        };
        let (_, _, h, w) = x.dims4()?;
        let plan = a.draw(blocks * self.shard.global, h, w, rng, x.device())?;
        Ok(plan.select_rows(|t| self.shard.rows(t, blocks))?.apply(x)?)
    }

    /// `x` (this rank's rows of `blocks` stacked global batches) plus instance noise drawn for the
    /// whole global batch, so that every world size draws the same noise for the same row.
    fn noisy_rows(&self, x: &Tensor, sigma: f64, blocks: usize, rng: &mut condor_core::Rng) -> Result<Tensor> {
        if sigma <= 0.0 {
            return Ok(x.clone());
        }
        let mut shape = x.dims().to_vec();
        shape[0] = blocks * self.shard.global;
        let noise = normal(rng, shape, x.device())?.to_dtype(x.dtype())?;
        Ok((x + (self.shard.rows(&noise, blocks)? * sigma)?)?)
    }

    fn finite(&self, what: &'static str, value: f32) -> Result<f32> {
        if value.is_finite() {
            Ok(value)
        } else {
            Err(PipelineError::Diverged { step: self.step + 1, what, value, last_checkpoint: None })
        }
    }

    /// One iteration of Algorithm 1: `d_steps` discriminator updates on fresh real and generated
    /// batches, then one generator update, then the EMA update. A non-finite loss stops before the
    /// update that would have used it.
    ///
    /// In a data-parallel group every rank draws the same global batch and noise and computes its
    /// [`Shard`] of it; gradients, logged scalars and batch-norm statistics are averaged over ranks.
    pub fn step(&mut self) -> Result<StepRecord> {
        let started = Instant::now();
        let (s, bs, seed) = (self.step, self.config.batch_size, self.config.seed);
        let shard = self.shard;
        let t = self.config.training.clone();
        let k = t.d_steps as u64;
        let sigma = t.instance_noise.map_or(0.0, |n| n.sigma_at(s));
        let clip = self.config.effective_weight_clip();
        let latent = self.generator.model.latent_dim();
        let (g_kind, d_kind) = (self.generator.model.conditioning(), self.discriminator.conditioning());
        let mut record = StepRecord { step: s + 1, noise_sigma: sigma as f32, ..Default::default() };
        // The passes go through the half-precision copies in a mixed-precision run.
        let dtype = t.precision.dtype();
        let (g_pass, d_pass): (&dyn Generator, &dyn Discriminator) = match &self.half {
            Some(h) => (h.g.as_ref(), h.d.as_ref()),
            None => (self.generator.model.as_ref(), self.discriminator.as_ref()),
        };
        let (g_half, d_half) = (self.half.as_ref().map(|h| &h.g_params), self.half.as_ref().map(|h| &h.d_params));
        let mut overflow = false;
        let shape = IterationShape { seed, d_steps: k, batch_size: bs };
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

        for (j, (batch, mut rng)) in (0..k).zip(prepared.d_batches) {
            let span = profile::span(|| "step: D forward and loss".into());
            let cond = batch.conditioning.as_ref().map(|c| self.local_conditioning(c, 1, dtype)).transpose()?;
            let cond = cond.as_ref();
            let z = shard.rows(&normal(&mut rng, (bs, latent), &self.device)?, 1)?.to_dtype(dtype)?;
            let fake = self.frozen.g.forward(&z, g_kind.select(cond), true)?;
            let real = diff_augment::augment(t.diff_augment.as_ref(), &batch.samples, &mut rng)?;
            let real_in = shard.rows(&add_instance_noise(&real, sigma, &mut rng)?, 1)?.to_dtype(dtype)?;
            let fake_in = self.noisy_rows(&self.augmented_rows(&fake, 1, &mut rng)?, sigma, 1, &mut rng)?;
            // GAN-CLS also scores the real images with mismatched captions: one pass for both captions.
            let wrong = match batch.conditioning.as_ref().filter(|_| t.gan_cls && d_kind.select(cond).is_some()) {
                Some(right) => Some(self.local_conditioning(&next_row_conditioning(right)?, 1, dtype)?),
                None => None,
            };
            let real_conds: Vec<_> = std::iter::once(d_kind.select(cond)).chain(wrong.as_ref().map(Some)).collect();
            let scores = d_pass.forward_each(&real_in, &real_conds, true)?;
            let scores = scores.iter().map(|s| s.to_dtype(DType::F32)).collect::<candle_core::Result<Vec<_>>>()?;
            let (d_real, d_wrong) = (scores[0].clone(), scores.get(1));
            let d_fake = d_pass.forward(&fake_in, d_kind.select(cond), true)?.to_dtype(DType::F32)?;
            let targets = label_targets(bs, t.label_smoothing, t.label_flip, &mut rng, &self.device)?;
            let targets = Targets { real: shard.rows(&targets.real, 1)?, fake: shard.rows(&targets.fake, 1)? };
            let (loss, wrong_score) = match d_wrong {
                Some(d_wrong) => {
                    (gan_cls_loss(t.loss, &d_real, d_wrong, &d_fake, &targets)?, Some(self.mean_score(d_wrong)?))
                }
                None => (t.loss.discriminator(&d_real, &d_fake, &targets)?, None),
            };
            let scores = [self.mean_score(&d_real)?, self.mean_score(&d_fake)?];
            let r1 = match t.r1.filter(|r| j == 0 && s % r.every == 0) {
                Some(r) => Some((r, r1_penalty(d_pass, &real_in, d_kind.select(cond), r.gamma, r.step)?)),
                None => None,
            };
            let r1_value = r1.as_ref().map(|(_, p)| Tensor::new(p.value as f32, &self.device)).transpose()?;
            let mut logged = vec![&loss, &scores[0], &scores[1]];
            logged.extend(r1_value.as_ref());
            logged.extend(wrong_score.as_ref());
            let values = self.scalars(&logged)?;
            record.loss_d = self.finite("discriminator loss", values[0])?;
            let loss = match r1 {
                Some((r, p)) => {
                    record.r1_penalty = self.finite("R1 penalty", values[3])?;
                    (loss + (p.surrogate.to_dtype(DType::F32)? * r.every as f64)?)?
                }
                None => loss,
            };
            let lr = self.config.optimizer.discriminator.lr_at(s, self.config.steps);
            drop(span);
            let grads = profile::timed(|| "step: D backward".into(), || self.gradients(&loss, self.opt_d.vars(), d_half))?;
            let _span = profile::span(|| "step: D update".into());
            match grads {
                Some(grads) => {
                    self.opt_d.step_with_lr(&grads, lr)?;
                    if let Some(c) = clip {
                        for (_, v) in self.opt_d.vars() {
                            v.set(&v.as_tensor().clamp(-c, c)?)?;
                        }
                    }
                    if let Some(h) = d_half {
                        h.copy_from_where(&self.d_params, |n| !is_buffer(n))?;
                    }
                }
                None => overflow = true,
            }
            if j + 1 == k {
                (record.d_real, record.d_fake) = (values[1], values[2]);
                record.d_wrong = wrong_score.map(|_| values[values.len() - 1]);
            }
        }

        let span = profile::span(|| "step: G forward and loss".into());
        let (mut cond, mut rng) = prepared.g_conditioning;
        let mut z = normal(&mut rng, (bs, latent), &self.device)?;
        // GAN-INT: a second half of the batch on interpolated captions, with its own noise.
        let interpolating = t.gan_int && g_kind.select(cond.as_ref()).is_some();
        if let (true, Some(c)) = (interpolating, &cond) {
            let z_int = normal(&mut rng, (bs, latent), &self.device)?;
            z = Tensor::cat(&[&z, &z_int], 0)?;
            cond = Some(concat_conditioning(c, &interpolate_conditioning(c, t.interpolation)?)?);
        }
        let blocks = if interpolating { 2 } else { 1 };
        let z = shard.rows(&z, blocks)?.to_dtype(dtype)?;
        let cond = cond.as_ref().map(|c| self.local_conditioning(c, blocks, dtype)).transpose()?;
        let fake = g_pass.forward(&z, g_kind.select(cond.as_ref()), true)?;
        let fake_in = self.noisy_rows(&self.augmented_rows(&fake, blocks, &mut rng)?, sigma, blocks, &mut rng)?;
        let d_fake = self.frozen.d.forward(&fake_in, d_kind.select(cond.as_ref()), true)?.to_dtype(DType::F32)?;
        let rows = shard.len();
        let mut loss = if interpolating {
            (t.loss.generator(&d_fake.narrow(0, 0, rows)?)? + t.loss.generator(&d_fake.narrow(0, rows, rows)?)?)?
        } else {
            t.loss.generator(&d_fake)?
        };
        let reg = g_pass.regularization(g_kind.select(cond.as_ref()))?.map(|r| r.to_dtype(DType::F32)).transpose()?;
        if let Some(reg) = &reg {
            loss = (loss + reg)?;
        }
        let mut logged = vec![&loss];
        logged.extend(reg.as_ref());
        let values = self.scalars(&logged)?;
        record.loss_g = self.finite("generator loss", values[0])?;
        if reg.is_some() {
            record.g_regularization = values[1];
        }
        let lr = self.config.optimizer.generator.lr_at(s, self.config.steps);
        drop(span);
        let grads = profile::timed(|| "step: G backward".into(), || self.gradients(&loss, self.opt_g.vars(), g_half))?;
        let span = profile::span(|| "step: G update, EMA".into());
        match grads {
            Some(grads) => {
                self.opt_g.step_with_lr(&grads, lr)?;
                if let Some(h) = g_half {
                    h.copy_from_where(&self.generator.params, |n| !is_buffer(n))?;
                }
            }
            None => overflow = true,
        }
        // Batch-norm statistics: from the working copies to the master models, averaged over ranks.
        if let (Some(gh), Some(dh)) = (g_half, d_half) {
            self.generator.params.copy_from_where(gh, is_buffer)?;
            self.d_params.copy_from_where(dh, is_buffer)?;
        }
        if let Some(c) = &self.collective {
            let mut buffers: Vec<_> = self.generator.params.named().into_iter().filter(|(n, _)| is_buffer(n)).collect();
            buffers.extend(self.d_params.named().into_iter().filter(|(n, _)| is_buffer(n)));
            crate::parallel::average_values(c.as_ref(), &buffers)?;
            if let (Some(gh), Some(dh)) = (g_half, d_half) {
                gh.copy_from_where(&self.generator.params, is_buffer)?;
                dh.copy_from_where(&self.d_params, is_buffer)?;
            }
        }
        if let Some(scale) = &mut self.loss_scale {
            scale.update(overflow);
        }
        if let (Some(cfg), Some((_, ema))) = (&t.ema, &self.generator.ema) {
            ema_update(ema, &self.generator.params, cfg, s)?;
        }
        drop(span);
        self.step += 1;
        record.step_time_s = started.elapsed().as_secs_f32();
        Ok(record)
    }

    /// Re-estimates the EMA copy's batch-norm statistics for its averaged weights
    /// ([`recalibrate_batch_norm`], `training.ema.batch_norm_batches` batches), at most once per
    /// step. Call it before sampling or saving the EMA copy; training never reads these statistics
    /// (each update copies the trained generator's), so calling it or not leaves training unchanged.
    pub fn calibrate_ema(&mut self) -> Result<()> {
        let (Some(cfg), Some((g, p))) = (&self.config.training.ema, &self.generator.ema) else { return Ok(()) };
        if self.ema_calibrated == Some(self.step) {
            return Ok(());
        }
        let batches = cfg.batch_norm_batches;
        recalibrate_batch_norm(
            g.as_ref(),
            p,
            self.data.as_ref(),
            batches,
            self.config.batch_size,
            self.config.seed,
            &self.device,
        )?;
        self.ema_calibrated = Some(self.step);
        Ok(())
    }

    /// Every tensor a checkpoint holds, with its prefixed name.
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let vars = |prefix: &str, p: &Params, out: &mut Vec<(String, Tensor)>| {
            out.extend(p.named().into_iter().map(|(n, v)| (format!("{prefix}.{n}"), v.as_tensor().clone())));
        };
        vars("g", &self.generator.params, &mut out);
        vars("d", &self.d_params, &mut out);
        if let Some((_, p)) = &self.generator.ema {
            vars("ema", p, &mut out);
        }
        out.extend(self.opt_g.state().into_iter().map(|(n, t)| (format!("opt_g.{n}"), t)));
        out.extend(self.opt_d.state().into_iter().map(|(n, t)| (format!("opt_d.{n}"), t)));
        out
    }

    /// The training state written into checkpoints.
    pub fn state(&self) -> TrainState {
        TrainState {
            step: self.step,
            opt_g_steps: self.opt_g.steps(),
            opt_d_steps: self.opt_d.steps(),
            written_by: format!("condor {}", env!("CARGO_PKG_VERSION")),
            loss_scale: self.loss_scale,
        }
    }

    /// Writes a checkpoint of the current state to `path` (atomically).
    pub fn save_checkpoint(&self, path: &std::path::Path) -> Result<()> {
        Ok(crate::checkpoint::save(path, &self.checkpoint_tensors(), &self.config, &self.state())?)
    }

    /// All variables by prefixed name, for exact comparisons between runs.
    pub fn weights(&self) -> HashMap<String, Tensor> {
        self.checkpoint_tensors().into_iter().collect()
    }
}

/// Checks that the data, generator and discriminator agree on sample shape and conditioning.
fn check_fit(config: &RunConfig, data: &dyn DataSource, g: &dyn Generator, d: &dyn Discriminator) -> Result<()> {
    let bad = |m: String| Err(PipelineError::Config(m));
    if g.sample_shape() != data.sample_shape() {
        return bad(format!(
            "the generator (`{}`) makes samples of shape {:?} but the data has shape {:?}",
            config.generator.plugin,
            g.sample_shape(),
            data.sample_shape()
        ));
    }
    if config.training.diff_augment.is_some() && data.sample_shape().len() != 3 {
        return bad(format!(
            "`training.diff_augment` translates and cuts images (channels, height, width), but the data's samples have shape {:?}",
            data.sample_shape()
        ));
    }
    for (what, dim) in [("generator", g.conditioning().dim()), ("discriminator", d.conditioning().dim())] {
        if dim != 0 && dim != data.cond_dim() {
            return bad(format!(
                "the {what} is conditioned on vectors of size {dim} but the data provides {} (set `cond_dim` in its config)",
                data.cond_dim()
            ));
        }
    }
    Ok(())
}
