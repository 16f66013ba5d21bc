//! The built-in adversarial recipe: Algorithm 1 of Goodfellow et al. (2014) with k discriminator steps
//! per generator step, any [`LossKind`], the stabilising tricks of [`crate::tricks`], the R1 penalty,
//! differentiable augmentation, and for text conditioning GAN-CLS, GAN-INT, DF-GAN's matching-aware
//! gradient penalty and the generator's own regularisation (conditioning augmentation). It trains `g` against `d` and reads the run's
//! `[training]` table ([`TrainingConfig`]); a run without a `[recipe]` table uses it.

use candle_core::{DType, Tensor};
use condor_core::rng::normal;
use condor_core::{profile, Batch, Conditioning, NetworkDecl, Recipe, RecipeSetup, Rng, Scalars, TrainContext};

use crate::config::TrainingConfig;
use crate::diff_augment;
use crate::losses::{LossKind, Targets};
use crate::matching::MatchingLoss;
use crate::regularizers::{gradient_penalty, matching_aware_penalty, r1_penalty};
use crate::tricks::{
    add_instance_noise, concat_conditioning, gan_cls_loss, interpolate_conditioning, label_targets,
    mismatched_box_term, next_row_conditioning, next_row_layout,
};

/// The log name of real images' mean score under mismatched captions.
const WRONG_CAPTION: &str = "d_wrong";
/// The log name of real images' mean score in mismatched boxes.
const WRONG_BOX: &str = "d_wrong_box";

/// The conditionings under which the discriminator also scores real images as fake, with the names
/// their mean scores are logged under: GAN-CLS's mismatched captions (`d_wrong`) and the mismatched
/// boxes of what-and-where models (`d_wrong_box`; the trainer has checked that the discriminator reads
/// boxes). `right` is the batch's own conditioning, when the discriminator reads one.
fn mismatched(
    t: &TrainingConfig,
    right: Option<&Conditioning>,
) -> condor_core::Result<Vec<(&'static str, Conditioning)>> {
    let mut out = Vec::new();
    if let (true, Some(right)) = (t.gan_cls, right) {
        out.push((WRONG_CAPTION, next_row_conditioning(right)?));
    }
    if t.mismatched_boxes.is_some() {
        let moved = right.map(next_row_layout).transpose()?.flatten().ok_or_else(|| {
            condor_core::Error::InvalidInput(
                "`training.mismatched_boxes` needs data with layouts (`[data] layout = true`)".into(),
            )
        })?;
        out.push((WRONG_BOX, moved));
    }
    Ok(out)
}

/// The registry name of the built-in recipe.
pub const NAME: &str = "adversarial";

/// The adversarial recipe's config: none of its own; it reads the run's `[training]` table.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdversarialConfig {}

/// Algorithm 1 with the options of [`TrainingConfig`].
pub struct Adversarial {
    training: TrainingConfig,
    networks: Vec<NetworkDecl>,
    text_encoder: String,
    /// The text-image matching loss, loaded onto the training device at the first generator step.
    matching: Option<MatchingLoss>,
}

impl Adversarial {
    /// The recipe for a run's shared settings (its `[training]` table is read from `setup`).
    pub fn new(setup: &RecipeSetup) -> condor_core::Result<Self> {
        let training: TrainingConfig = condor_core::registry::parse_config("recipe", NAME, &setup.training)?;
        let text_encoder = setup.text_encoder.clone();
        Ok(Self { training, networks: setup.generator_and_discriminator(), text_encoder, matching: None })
    }

    /// The matching loss of `(B, C, S, S)` generated images against their `(B, D)` caption embeddings,
    /// when the run has one.
    fn matching_loss(&mut self, images: &Tensor, embeddings: &Tensor) -> condor_core::Result<Option<Tensor>> {
        let Some(config) = self.training.matching else { return Ok(None) };
        if self.matching.is_none() {
            let loaded = MatchingLoss::load(&self.text_encoder, config, images.device())
                .map_err(|e| condor_core::Error::InvalidInput(e.to_string()))?;
            self.matching = Some(loaded);
        }
        let matching = self.matching.as_ref().expect("loaded above");
        Ok(Some(matching.loss(images, embeddings).map_err(|e| condor_core::Error::InvalidInput(e.to_string()))?))
    }

    /// The weight clip in force: the configured one, or 0.01 for the Wasserstein loss.
    fn weight_clip(&self) -> Option<f64> {
        effective_weight_clip(&self.training)
    }

    /// Mean discriminator score: a probability for BCE losses, the raw score otherwise.
    fn mean_score(&self, logits: &Tensor) -> candle_core::Result<Tensor> {
        let s = if self.training.loss.is_probabilistic() { candle_nn::ops::sigmoid(logits)? } else { logits.clone() };
        s.mean_all()
    }

    /// `x` (this rank's rows of `blocks` stacked global batches) through the differentiable
    /// augmentation drawn for the whole global batch, so that every world size draws the same transform
    /// for the same row; `x` itself when the run has none.
    fn augmented_rows(
        &self,
        cx: &dyn TrainContext,
        x: &Tensor,
        blocks: usize,
        rng: &mut Rng,
    ) -> condor_core::Result<Tensor> {
        let Some(a) = &self.training.diff_augment else {
            return Ok(x.clone());
        };
        let (_, _, h, w) = x.dims4()?;
        let plan = a.draw(blocks * cx.batch_size(), h, w, rng, x.device())?;
        Ok(plan.select_rows(|t| cx.rows(t, blocks).map_err(core_to_candle))?.apply(x)?)
    }

    /// `x` (this rank's rows of `blocks` stacked global batches) plus instance noise drawn for the
    /// whole global batch, so that every world size draws the same noise for the same row.
    fn noisy_rows(
        &self,
        cx: &dyn TrainContext,
        x: &Tensor,
        sigma: f64,
        blocks: usize,
        rng: &mut Rng,
    ) -> condor_core::Result<Tensor> {
        if sigma <= 0.0 {
            return Ok(x.clone());
        }
        let mut shape = x.dims().to_vec();
        shape[0] = blocks * cx.batch_size();
        let noise = normal(rng, shape, x.device())?.to_dtype(x.dtype())?;
        Ok((x + (cx.rows(&noise, blocks)? * sigma)?)?)
    }

    /// One discriminator step (`j` of the iteration's k) on a real batch and a generated one.
    fn discriminator_step(
        &self,
        cx: &mut dyn TrainContext,
        j: usize,
        batch: Batch,
        mut rng: Rng,
        sigma: f64,
        log: &mut Scalars,
    ) -> condor_core::Result<()> {
        let (t, s, bs, dtype) = (&self.training, cx.step(), cx.batch_size(), cx.dtype());
        let span = profile::span(|| "step: D forward and loss".into());
        let (g_frozen, d_pass) = (cx.frozen_generator("g")?, cx.discriminator("d")?);
        let (g_kind, d_kind) = (g_frozen.conditioning(), d_pass.conditioning());
        let local = |c: &Conditioning| local_conditioning(cx, c, 1);
        let cond = batch.conditioning.as_ref().map(local).transpose()?;
        let cond = cond.as_ref();
        let z = cx.rows(&normal(&mut rng, (bs, g_frozen.latent_dim()), cx.device())?, 1)?.to_dtype(dtype)?;
        let fake = g_frozen.forward(&z, g_kind.select(cond), true)?;
        let real = diff_augment::augment(t.diff_augment.as_ref(), &batch.samples, &mut rng)?;
        let real_in = cx.rows(&add_instance_noise(&real, sigma, &mut rng)?, 1)?.to_dtype(dtype)?;
        let fake_in = self.noisy_rows(cx, &self.augmented_rows(cx, &fake, 1, &mut rng)?, sigma, 1, &mut rng)?;
        // The real images are also scored under mismatched captions and boxes: one pass for all.
        let right = batch.conditioning.as_ref().filter(|_| d_kind.select(cond).is_some());
        let (wrong_names, wrong): (Vec<_>, Vec<_>) = mismatched(t, right)?.into_iter().unzip();
        let wrong = wrong.iter().map(local).collect::<condor_core::Result<Vec<_>>>()?;
        let real_conds: Vec<_> = std::iter::once(d_kind.select(cond)).chain(wrong.iter().map(Some)).collect();
        let scores = d_pass.forward_each(&real_in, &real_conds, true)?;
        let scores = scores.iter().map(|s| s.to_dtype(DType::F32)).collect::<candle_core::Result<Vec<_>>>()?;
        let (d_real, d_wrong) = (&scores[0], &scores[1..]);
        let d_fake = d_pass.forward(&fake_in, d_kind.select(cond), true)?.to_dtype(DType::F32)?;
        let targets = label_targets(bs, t.label_smoothing, t.label_flip, &mut rng, cx.device())?;
        let targets = Targets { real: cx.rows(&targets.real, 1)?, fake: cx.rows(&targets.fake, 1)? };
        let score_of = |name: &str| wrong_names.iter().position(|n| *n == name).map(|i| &d_wrong[i]);
        let mut loss = match score_of(WRONG_CAPTION) {
            Some(wrong) => gan_cls_loss(t.loss, d_real, wrong, &d_fake, &targets)?,
            None => t.loss.discriminator(d_real, &d_fake, &targets)?,
        };
        if let (Some(c), Some(wrong)) = (t.mismatched_boxes, score_of(WRONG_BOX)) {
            loss = (loss + mismatched_box_term(t.loss, wrong, c, &targets)?)?;
        }
        let wrong_scores = d_wrong.iter().map(|s| self.mean_score(s)).collect::<candle_core::Result<Vec<_>>>()?;
        let scores = [self.mean_score(d_real)?, self.mean_score(&d_fake)?];
        let r1 = match t.r1.filter(|r| j == 0 && s % r.every == 0) {
            Some(r) => Some((r, r1_penalty(d_pass, &real_in, d_kind.select(cond), r.gamma, r.step)?)),
            None => None,
        };
        let gp = match t.gradient_penalty {
            Some(c) => {
                let rows = |x: &Tensor| cx.rows(x, 1);
                let points = c.points.draw(&real_in, &fake_in, bs, &mut rng, &rows)?;
                Some(gradient_penalty(d_pass, &points, d_kind.select(cond), c.weight, c.step)?)
            }
            None => None,
        };
        let ma_gp = match (t.matching_aware_penalty, d_kind.select(cond)) {
            (Some(c), Some(own)) => Some(matching_aware_penalty(d_pass, &real_in, own, c)?),
            (Some(_), None) => {
                return Err(condor_core::Error::InvalidInput(
                    "`training.matching_aware_penalty` needs text-conditioned data and discriminator".into(),
                ))
            }
            (None, _) => None,
        };
        let r1_value = r1.as_ref().map(|(_, p)| Tensor::new(p.value as f32, cx.device())).transpose()?;
        let gp_value = gp.as_ref().map(|p| Tensor::new(p.value as f32, cx.device())).transpose()?;
        let ma_value = ma_gp.as_ref().map(|p| Tensor::new(p.value as f32, cx.device())).transpose()?;
        let mut logged = vec![&loss, &scores[0], &scores[1]];
        logged.extend(r1_value.as_ref());
        logged.extend(gp_value.as_ref());
        logged.extend(ma_value.as_ref());
        logged.extend(wrong_scores.iter());
        let values = cx.scalars(&logged)?;
        log.insert("loss_d".into(), cx.finite("discriminator loss", values[0])?);
        let mut next = 3;
        let loss = match r1 {
            Some((r, p)) => {
                log.insert("r1_penalty".into(), cx.finite("R1 penalty", values[next])?);
                next += 1;
                (loss + (p.surrogate.to_dtype(DType::F32)? * r.every as f64)?)?
            }
            None => loss,
        };
        let loss = match gp {
            Some(p) => {
                log.insert("gradient_penalty".into(), cx.finite("gradient penalty", values[next])?);
                next += 1;
                (loss + p.surrogate.to_dtype(DType::F32)?)?
            }
            None => loss,
        };
        let loss = match ma_gp {
            Some(p) => {
                log.insert("matching_aware_penalty".into(), cx.finite("matching-aware penalty", values[next])?);
                (loss + p.surrogate.to_dtype(DType::F32)?)?
            }
            None => loss,
        };
        drop(span);
        if cx.update("d", &loss)? {
            if let Some(c) = self.weight_clip() {
                cx.clip_weights("d", c)?;
            }
        }
        log.insert("d_real".into(), values[1]);
        log.insert("d_fake".into(), values[2]);
        let first_wrong = values.len() - wrong_names.len();
        for (name, value) in wrong_names.into_iter().zip(&values[first_wrong..]) {
            log.insert(name.into(), *value);
        }
        Ok(())
    }

    /// The generator step on the iteration's conditioning (and, with GAN-INT, interpolated captions).
    fn generator_step(&mut self, cx: &mut dyn TrainContext, sigma: f64, log: &mut Scalars) -> condor_core::Result<()> {
        let (t, bs, dtype) = (self.training.clone(), cx.batch_size(), cx.dtype());
        let span = profile::span(|| "step: G forward and loss".into());
        let (g_pass, d_frozen) = (cx.generator("g")?, cx.frozen_discriminator("d")?);
        let (g_kind, d_kind) = (g_pass.conditioning(), d_frozen.conditioning());
        let latent = g_pass.latent_dim();
        let (mut cond, mut rng) = cx.generator_draw();
        let mut z = normal(&mut rng, (bs, latent), cx.device())?;
        // GAN-INT: a second half of the batch on interpolated captions, with its own noise.
        let interpolating = t.gan_int && g_kind.select(cond.as_ref()).is_some();
        if let (true, Some(c)) = (interpolating, &cond) {
            let z_int = normal(&mut rng, (bs, latent), cx.device())?;
            z = Tensor::cat(&[&z, &z_int], 0)?;
            cond = Some(concat_conditioning(c, &interpolate_conditioning(c, t.interpolation)?)?);
        }
        let blocks = if interpolating { 2 } else { 1 };
        let z = cx.rows(&z, blocks)?.to_dtype(dtype)?;
        let cond = cond.as_ref().map(|c| local_conditioning(cx, c, blocks)).transpose()?;
        let fake = g_pass.forward(&z, g_kind.select(cond.as_ref()), true)?;
        let fake_in =
            self.noisy_rows(cx, &self.augmented_rows(cx, &fake, blocks, &mut rng)?, sigma, blocks, &mut rng)?;
        let d_fake = d_frozen.forward(&fake_in, d_kind.select(cond.as_ref()), true)?.to_dtype(DType::F32)?;
        let rows = cx.local_rows();
        let mut loss = if interpolating {
            (t.loss.generator(&d_fake.narrow(0, 0, rows)?)? + t.loss.generator(&d_fake.narrow(0, rows, rows)?)?)?
        } else {
            t.loss.generator(&d_fake)?
        };
        let reg = g_pass.regularization(g_kind.select(cond.as_ref()))?.map(|r| r.to_dtype(DType::F32)).transpose()?;
        if let Some(reg) = &reg {
            loss = (loss + reg)?;
        }
        // The matching loss on the batch's own captions (not GAN-INT's interpolated half).
        let matching = match g_kind.select(cond.as_ref()) {
            Some(c) => self.matching_loss(&fake.narrow(0, 0, rows)?, &c.embedding.narrow(0, 0, rows)?)?,
            None => None,
        };
        if let Some(m) = &matching {
            loss = (loss + m)?;
        }
        let mut logged = vec![&loss];
        logged.extend(reg.as_ref());
        logged.extend(matching.as_ref());
        let values = cx.scalars(&logged)?;
        log.insert("loss_g".into(), cx.finite("generator loss", values[0])?);
        if reg.is_some() {
            log.insert("g_regularization".into(), values[1]);
        }
        if matching.is_some() {
            log.insert("g_matching".into(), values[values.len() - 1]);
        }
        drop(span);
        cx.update("g", &loss)?;
        Ok(())
    }
}

/// The weight clip in force for `training`: the configured one, or 0.01 for the Wasserstein loss
/// without a gradient penalty.
pub fn effective_weight_clip(training: &TrainingConfig) -> Option<f64> {
    match (training.weight_clip, training.loss, training.gradient_penalty) {
        (Some(c), _, _) => Some(c),
        (None, LossKind::Wasserstein, None) => Some(0.01),
        (None, _, _) => None,
    }
}

/// This rank's rows of conditioning `c` (a stack of `blocks` global batches), in the passes' dtype.
fn local_conditioning(cx: &dyn TrainContext, c: &Conditioning, blocks: usize) -> condor_core::Result<Conditioning> {
    cx.conditioning_rows(c, blocks)?.to_dtype(cx.dtype())
}

/// A contract error as a candle error, for closures that candle's helpers call.
fn core_to_candle(e: condor_core::Error) -> candle_core::Error {
    match e {
        condor_core::Error::Candle(e) => e,
        other => candle_core::Error::Msg(other.to_string()),
    }
}

impl Recipe for Adversarial {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn batches_per_step(&self) -> usize {
        self.training.d_steps
    }

    /// One iteration of Algorithm 1: `d_steps` discriminator updates on fresh real and generated
    /// batches, then one generator update. A non-finite loss stops before the update that would
    /// have used it.
    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let sigma = self.training.instance_noise.map_or(0.0, |n| n.sigma_at(cx.step()));
        let mut log = Scalars::new();
        log.insert("noise_sigma".into(), sigma as f32);
        let mut j = 0;
        while let Some((batch, rng)) = cx.next_batch() {
            // The scores logged are those of the iteration's last discriminator step.
            self.discriminator_step(cx, j, batch, rng, sigma, &mut log)?;
            j += 1;
        }
        self.generator_step(cx, sigma, &mut log)?;
        Ok(log)
    }
}
