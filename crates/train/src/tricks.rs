//! Stabilising tricks: label smoothing, noisy labels, decaying instance noise, generator EMA; and the
//! matching-aware text-conditional objectives GAN-CLS and GAN-INT (Reed et al. 2016).

use candle_core::{Device, Tensor};
use condor_core::{Conditioning, Params, Rng, TokenEmbeddings};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::losses::{LossKind, Targets};

/// Discriminator targets for a batch: real samples aim at `1 - smoothing` (one-sided label smoothing),
/// generated ones at 0; each label is swapped with probability `flip` (noisy labels), a real sample
/// then aiming at 0 and a generated one at `1 - smoothing`.
pub fn label_targets(
    batch: usize,
    smoothing: f64,
    flip: f64,
    rng: &mut Rng,
    device: &Device,
) -> candle_core::Result<Targets> {
    let high = (1.0 - smoothing) as f32;
    let mut real = vec![high; batch];
    let mut fake = vec![0f32; batch];
    if flip > 0.0 {
        for r in real.iter_mut() {
            if rng.random_bool(flip) {
                *r = 0.0;
            }
        }
        for f in fake.iter_mut() {
            if rng.random_bool(flip) {
                *f = high;
            }
        }
    }
    Ok(Targets { real: Tensor::from_vec(real, batch, device)?, fake: Tensor::from_vec(fake, batch, device)? })
}

/// How instance noise decays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Straight down to zero at `decay_steps`.
    #[default]
    Linear,
    /// Half a cosine period down to zero at `decay_steps`.
    Cosine,
}

/// Gaussian noise of standard deviation `sigma(step)` added to real and generated samples before the
/// discriminator sees them (Sønderby et al., Arjovsky & Bottou), annealed to zero.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceNoiseConfig {
    /// Standard deviation at step 0.
    pub sigma: f64,
    /// Step at which the noise reaches zero.
    pub decay_steps: u64,
    /// Shape of the decay.
    #[serde(default)]
    pub decay: Decay,
}

impl InstanceNoiseConfig {
    /// The noise level at `step`.
    pub fn sigma_at(&self, step: u64) -> f64 {
        let progress = (step as f64 / self.decay_steps as f64).min(1.0);
        match self.decay {
            Decay::Linear => self.sigma * (1.0 - progress),
            Decay::Cosine => self.sigma * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}

/// Adds `sigma * N(0, 1)` noise to `x` (nothing when sigma is 0).
pub fn add_instance_noise(x: &Tensor, sigma: f64, rng: &mut Rng) -> candle_core::Result<Tensor> {
    if sigma <= 0.0 {
        return Ok(x.clone());
    }
    let noise = condor_core::rng::normal(rng, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x + (noise * sigma)?
}

/// Settings of the generator's exponential moving average.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmaConfig {
    /// Weight of the old average at each update.
    pub decay: f64,
    /// Before this step the average simply copies the weights.
    pub start_step: u64,
    /// Batches of training conditioning and fresh latents on which the average's batch-norm
    /// statistics are re-estimated before it is sampled or saved (see [`recalibrate_batch_norm`]);
    /// 0 keeps the trained generator's statistics, which do not fit the averaged weights.
    pub batch_norm_batches: usize,
}

impl Default for EmaConfig {
    fn default() -> Self {
        Self { decay: 0.999, start_step: 0, batch_norm_batches: DEFAULT_BATCH_NORM_BATCHES }
    }
}

/// Default of [`EmaConfig::batch_norm_batches`].
pub const DEFAULT_BATCH_NORM_BATCHES: usize = 16;

/// True for the running statistics of a batch-norm layer (`running_mean`, `running_var`).
pub fn is_batch_norm_statistic(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Re-estimates the batch-norm statistics of generator `g` (variables `params`) for its own
/// weights: the mean, over `batches` batches of `batch_size` latents and training conditioning
/// drawn from `seed`, of each layer's batch mean and (unbiased) variance, like PyTorch's
/// `update_bn`. An EMA generator needs this: copying the trained generator's statistics pairs the
/// averaged weights with another network's activations, which shifts and dulls the colours
/// (measured on the shipped birds: 80.6% right colours with copied statistics, see
/// weights/birds-dcgan-32.md). The draws are fixed by `seed`, so the result depends only on the
/// weights. Other buffers are left as they were; a generator without batch norm is unchanged.
///
/// Batch-norm layers update `r <- (1 - m) r + m s` in training mode with a momentum `m` that the
/// layer keeps to itself, so each batch's statistic `s` is read back from two passes: one from
/// `r = 0` (giving `m s`) and, on the first batch, one from `r = 1` (giving `1 - m + m s`).
pub fn recalibrate_batch_norm(
    g: &dyn condor_core::Generator,
    params: &Params,
    data: &dyn condor_core::DataSource,
    batches: usize,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> condor_core::Result<()> {
    let named = params.named();
    let stats: Vec<&candle_core::Var> =
        named.iter().filter(|(n, _)| is_batch_norm_statistic(n)).map(|(_, v)| v).collect();
    if stats.is_empty() || batches == 0 {
        return Ok(());
    }
    let others: Vec<(&candle_core::Var, Tensor)> = named
        .iter()
        .filter(|(n, _)| condor_core::is_buffer(n) && !is_batch_norm_statistic(n))
        .map(|(_, v)| Ok((v, v.as_tensor().copy()?)))
        .collect::<candle_core::Result<_>>()?;
    let original: Vec<Tensor> = stats.iter().map(|v| v.as_tensor().copy()).collect::<candle_core::Result<_>>()?;
    // One training-mode pass from running statistics all equal to `start`; returns what they became.
    let pass = |z: &Tensor, cond: Option<&Conditioning>, start: f64| -> condor_core::Result<Vec<Tensor>> {
        for v in &stats {
            v.set(&(v.as_tensor().zeros_like()? + start)?)?;
        }
        g.forward(z, g.conditioning().select(cond), true)?;
        Ok(stats.iter().map(|v| v.as_tensor().copy()).collect::<candle_core::Result<_>>()?)
    };
    let mut momentum: Vec<Tensor> = Vec::new();
    let mut sums: Vec<Tensor> = Vec::new();
    for i in 0..batches as u64 {
        let mut rng = condor_core::rng::Stream::BatchNorm(i).rng(seed);
        let cond = data.conditioning(i, batch_size, &mut rng, device)?;
        let z = condor_core::rng::normal(&mut rng, (batch_size, g.latent_dim()), device)?;
        let scaled = pass(&z, cond.as_ref(), 0.0)?;
        if i == 0 {
            let from_one = pass(&z, cond.as_ref(), 1.0)?;
            momentum = from_one
                .iter()
                .zip(&scaled)
                .map(|(b, a)| (b - a)?.affine(-1.0, 1.0))
                .collect::<candle_core::Result<_>>()?;
            sums = scaled;
        } else {
            sums = sums.iter().zip(&scaled).map(|(s, a)| s + a).collect::<candle_core::Result<_>>()?;
        }
    }
    for ((v, (sum, m)), old) in stats.iter().zip(sums.iter().zip(&momentum)).zip(&original) {
        // A layer with momentum 0 never updates its statistics: keep them.
        let moving = m.ge(1e-6)?;
        let estimate = (sum / (m.clamp(1e-6, f64::INFINITY)? * batches as f64)?)?;
        v.set(&moving.where_cond(&estimate, old)?)?;
    }
    for (v, t) in others {
        v.set(&t)?;
    }
    Ok(())
}

/// Updates `ema` toward `model` after generator step `step`: `ema = decay * ema + (1 - decay) * w`
/// for parameters; buffers (batch-norm statistics) are copied.
pub fn ema_update(ema: &Params, model: &Params, config: &EmaConfig, step: u64) -> candle_core::Result<()> {
    if step < config.start_step {
        return ema.copy_from(model);
    }
    for ((name, e), (_, w)) in ema.named().into_iter().zip(model.named()) {
        if condor_core::is_buffer(&name) {
            e.set(w.as_tensor())?;
        } else {
            e.set(&((e.as_tensor() * config.decay)? + (w.as_tensor() * (1.0 - config.decay))?)?)?;
        }
    }
    Ok(())
}

/// The "where" counterpart of GAN-CLS's mismatched captions, for what-and-where models (a
/// discriminator that reads boxes): the discriminator also sees each real image with its own caption
/// in the next row's box and keypoints as fake, so it must check that the object is where the layout
/// says. Its term is added to the discriminator's loss, which is otherwise unchanged:
/// `... + weight * fake(x, c, l_next)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MismatchedBoxesConfig {
    /// Weight of the term; 0.5 matches the weight of GAN-CLS's mismatched captions.
    pub weight: f64,
}

impl Default for MismatchedBoxesConfig {
    fn default() -> Self {
        Self { weight: 0.5 }
    }
}

/// The discriminator's term for real images in mismatched boxes: `weight * fake(s_b)`.
pub fn mismatched_box_term(
    loss: LossKind,
    real_wrong_box: &Tensor,
    config: MismatchedBoxesConfig,
    targets: &Targets,
) -> candle_core::Result<Tensor> {
    loss.fake_term(real_wrong_box, targets)? * config.weight
}

/// Each row's layout replaced by the next row's (the last takes the first), its caption kept: the
/// mismatched boxes of [`MismatchedBoxesConfig`]. `None` without a layout.
pub fn next_row_layout(cond: &Conditioning) -> candle_core::Result<Option<Conditioning>> {
    let Some(layout) = &cond.layout else { return Ok(None) };
    Ok(Some(Conditioning { layout: Some(layout.map(|x| x.roll(-1, 0))?), ..cond.clone() }))
}

/// Each row's conditioning replaced by the next row's (the last takes the first): the mismatched
/// captions of GAN-CLS. Token embeddings are moved with their rows; the layout stays, since it
/// describes the image, which keeps its place.
pub fn next_row_conditioning(cond: &Conditioning) -> candle_core::Result<Conditioning> {
    // Row i takes row i + 1: a roll by -1 along the batch.
    let roll = |t: &Tensor| t.roll(-1, 0);
    let tokens = match &cond.tokens {
        Some(t) => Some(TokenEmbeddings { embeddings: roll(&t.embeddings)?, mask: roll(&t.mask)? }),
        None => None,
    };
    Ok(Conditioning { embedding: roll(&cond.embedding)?, tokens, layout: cond.layout.clone() })
}

/// GAN-INT's interpolated conditioning: `beta * c_i + (1 - beta) * c_{i+1}` for each row `i` (the last
/// row pairs with the first). Token embeddings cannot be interpolated and are dropped; a layout is
/// interpolated with the same weights (the box between the two boxes).
pub fn interpolate_conditioning(cond: &Conditioning, beta: f64) -> candle_core::Result<Conditioning> {
    let next = next_row_conditioning(cond)?;
    let embedding = ((&cond.embedding * beta)? + (&next.embedding * (1.0 - beta))?)?;
    let layout = match &cond.layout {
        Some(l) => Some(l.lerp(&l.map(|x| x.roll(-1, 0))?, 1.0 - beta)?),
        None => None,
    };
    Ok(Conditioning { embedding, tokens: None, layout })
}

/// Two conditioning batches one after the other (token embeddings kept only if both have them with
/// the same length, a layout only if both have one).
pub fn concat_conditioning(a: &Conditioning, b: &Conditioning) -> candle_core::Result<Conditioning> {
    let tokens = match (&a.tokens, &b.tokens) {
        (Some(x), Some(y)) if x.embeddings.dims()[1..] == y.embeddings.dims()[1..] => Some(TokenEmbeddings {
            embeddings: Tensor::cat(&[&x.embeddings, &y.embeddings], 0)?,
            mask: Tensor::cat(&[&x.mask, &y.mask], 0)?,
        }),
        _ => None,
    };
    let layout = match (&a.layout, &b.layout) {
        (Some(x), Some(y)) => Some(x.cat(y)?),
        _ => None,
    };
    Ok(Conditioning { embedding: Tensor::cat(&[&a.embedding, &b.embedding], 0)?, tokens, layout })
}

/// The matching-aware discriminator loss of GAN-CLS: `real(s_r) + (fake(s_w) + fake(s_f)) / 2`, where
/// `s_r` scores real images with their captions, `s_w` real images with mismatched captions and `s_f`
/// generated images with the captions they were made from.
pub fn gan_cls_loss(
    loss: LossKind,
    real_right: &Tensor,
    real_wrong: &Tensor,
    fake_right: &Tensor,
    targets: &Targets,
) -> candle_core::Result<Tensor> {
    let fakes = (loss.fake_term(real_wrong, targets)? + loss.fake_term(fake_right, targets)?)?;
    loss.real_term(real_right, targets)? + (fakes * 0.5)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use condor_core::derived_rng;

    #[test]
    fn smoothing_and_flipping_give_the_configured_targets() {
        let dev = Device::Cpu;
        let plain = label_targets(4, 0.0, 0.0, &mut derived_rng(0, &[]), &dev).unwrap();
        assert_eq!(plain.real.to_vec1::<f32>().unwrap(), vec![1.0; 4]);
        assert_eq!(plain.fake.to_vec1::<f32>().unwrap(), vec![0.0; 4]);
        let smooth = label_targets(3, 0.1, 0.0, &mut derived_rng(0, &[]), &dev).unwrap();
        assert_eq!(smooth.real.to_vec1::<f32>().unwrap(), vec![0.9; 3]);
        assert_eq!(smooth.fake.to_vec1::<f32>().unwrap(), vec![0.0; 3], "smoothing is one-sided");
        let n = 20_000;
        let noisy = label_targets(n, 0.1, 0.2, &mut derived_rng(5, &[]), &dev).unwrap();
        let real: Vec<f32> = noisy.real.to_vec1().unwrap();
        let fake: Vec<f32> = noisy.fake.to_vec1().unwrap();
        assert!(real.iter().all(|&v| v == 0.9 || v == 0.0));
        assert!(fake.iter().all(|&v| v == 0.9 || v == 0.0));
        let flipped_real = real.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        let flipped_fake = fake.iter().filter(|&&v| v == 0.9).count() as f64 / n as f64;
        // Binomial(20000, 0.2): std of the share 0.0028, so 0.015 is over 5 sigma.
        assert!((flipped_real - 0.2).abs() < 0.015, "{flipped_real}");
        assert!((flipped_fake - 0.2).abs() < 0.015, "{flipped_fake}");
    }

    #[test]
    fn instance_noise_decays_to_zero_on_schedule() {
        let lin = InstanceNoiseConfig { sigma: 0.4, decay_steps: 100, decay: Decay::Linear };
        assert_eq!(lin.sigma_at(0), 0.4);
        assert!((lin.sigma_at(25) - 0.3).abs() < 1e-12);
        assert!((lin.sigma_at(50) - 0.2).abs() < 1e-12);
        assert_eq!(lin.sigma_at(100), 0.0);
        assert_eq!(lin.sigma_at(1000), 0.0);
        let cos = InstanceNoiseConfig { decay: Decay::Cosine, ..lin };
        assert!((cos.sigma_at(50) - 0.2).abs() < 1e-12);
        assert!((cos.sigma_at(25) - 0.2 * (1.0 + std::f64::consts::FRAC_1_SQRT_2)).abs() < 1e-12);
        assert!(cos.sigma_at(100).abs() < 1e-12);

        let x = Tensor::zeros((4000,), DType::F32, &Device::Cpu).unwrap();
        let noisy: Vec<f32> = add_instance_noise(&x, 0.3, &mut derived_rng(1, &[])).unwrap().to_vec1().unwrap();
        let std = (noisy.iter().map(|v| v * v).sum::<f32>() / 4000.0).sqrt();
        assert!((std - 0.3).abs() < 0.015, "{std}");
        let none: Vec<f32> = add_instance_noise(&x, 0.0, &mut derived_rng(1, &[])).unwrap().to_vec1().unwrap();
        assert!(none.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn ema_follows_its_formula() {
        let dev = Device::Cpu;
        let (model, ema) = (Params::new(0), Params::new(1));
        for p in [&model, &ema] {
            let vb = p.var_builder(DType::F32, &dev);
            vb.get_with_hints(2, "w", candle_nn::Init::Const(0.0)).unwrap();
            candle_nn::batch_norm(2, 1e-5, vb.pp("bn")).unwrap();
        }
        let w = &model.named().into_iter().find(|(n, _)| n == "w").unwrap().1;
        let rv = &model.named().into_iter().find(|(n, _)| n == "bn.running_var").unwrap().1;
        w.set(&Tensor::new(&[1f32, -2.0], &dev).unwrap()).unwrap();
        rv.set(&Tensor::new(&[5f32, 6.0], &dev).unwrap()).unwrap();
        let config = EmaConfig { decay: 0.9, start_step: 0, ..Default::default() };
        ema_update(&ema, &model, &config, 0).unwrap();
        ema_update(&ema, &model, &config, 1).unwrap();
        let get =
            |name: &str| -> Vec<f32> { ema.named().into_iter().find(|(n, _)| n == name).unwrap().1.to_vec1().unwrap() };
        // Two updates from 0 toward w: (1 - 0.9^2) * w = 0.19 * w.
        let e = get("w");
        assert!((e[0] - 0.19).abs() < 1e-6 && (e[1] + 0.38).abs() < 1e-6, "{e:?}");
        assert_eq!(get("bn.running_var"), vec![5.0, 6.0], "buffers are copied");
        let warm = EmaConfig { decay: 0.9, start_step: 10, ..Default::default() };
        ema_update(&ema, &model, &warm, 3).unwrap();
        assert_eq!(get("w"), vec![1.0, -2.0], "before start_step the EMA copies");
    }
}
