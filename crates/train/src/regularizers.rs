//! Gradient penalties without second-order gradients, which candle does not have: R1 (Mescheder et
//! al., 2018; StyleGAN's default) on real samples, and the one-centred penalty of WGAN-GP (Gulrajani et
//! al., 2017) and DRAGAN (Kodali et al., 2017) on interpolated or perturbed samples.
//!
//! `R1 = gamma / (2B) * ||grad_X F(X)||^2`, with `F` the sum of the discriminator's logits on the real
//! batch `X`. Its gradient in the discriminator's parameters is `gamma / B * d/dtheta <grad_X F, V>`
//! with `V = grad_X F` held fixed, and `<grad_X F, V>` is the derivative of `F` along `V`. We take that
//! derivative by a central difference, `||V|| (F(X + hU) - F(X - hU)) / (2h)` with `U = V / ||V||`,
//! whose parameter gradient candle computes with first-order backward passes only. The estimate's
//! error is O(h^2) (zero for a network that is linear in X between the two points).
//!
//! The one-centred penalty `lambda / B * sum_i (||g_i|| - 1)^2` (`g_i` the gradient at sample `i`) takes
//! the same route: its parameter gradient is `d/dtheta <grad_X F, W>` with `W` held fixed at
//! `W_i = 2 lambda / B * (||g_i|| - 1) / ||g_i|| * g_i`, a directional derivative along `W`.
//!
//! DF-GAN's matching-aware penalty (Tao et al. 2022) `k / B * sum_i ||(g_i, c_i)||^p` on real images
//! with their own captions, `c_i` the gradient in sample `i`'s sentence embedding, takes it too, with
//! the image and the embedding moved together: `W_i = k p / B * ||(g_i, c_i)||^(p - 2) * (g_i, c_i)`.

use candle_core::{DType, Tensor, Var};
use condor_core::rng::uniform;
use condor_core::{Conditioning, Discriminator, Rng};
use serde::{Deserialize, Serialize};

/// Settings of the lazy R1 penalty on real images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct R1Config {
    /// Weight `gamma` of the penalty.
    pub gamma: f64,
    /// Apply it every this many iterations, scaled by the interval (StyleGAN2's lazy regularisation).
    pub every: u64,
    /// Average distance per sample of the central difference's two points from the real batch.
    pub step: f64,
}

impl Default for R1Config {
    fn default() -> Self {
        Self { gamma: 10.0, every: 16, step: 1e-2 }
    }
}

/// A penalty's value and a surrogate whose parameter gradient approximates the penalty's.
pub struct Penalty {
    /// The penalty (R1: `gamma / (2B) * ||grad_X F||^2`; one-centred: `lambda / B * sum_i (||g_i|| - 1)^2`).
    pub value: f64,
    /// A scalar whose gradient in the discriminator's parameters approximates that of `value` (its own
    /// value is not the penalty).
    pub surrogate: Tensor,
}

/// The R1 penalty of `d` on the real batch `real` under `cond`, with the central difference's points
/// `step` away from each sample on average.
pub fn r1_penalty(
    d: &dyn Discriminator,
    real: &Tensor,
    cond: Option<&Conditioning>,
    gamma: f64,
    step: f64,
) -> condor_core::Result<Penalty> {
    let b = real.dim(0)? as f64;
    let v = input_gradient(d, real, cond, "R1")?;
    let norm = v.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
    let value = gamma / (2.0 * b) * norm * norm;
    if norm == 0.0 {
        return Ok(Penalty { value, surrogate: real.zeros_like()?.sum_all()? });
    }
    let h = step * b.sqrt();
    let shift = (v * (h / norm))?;
    let surrogate = (difference_along(d, real, &shift, cond)? * (gamma * norm / (2.0 * h * b)))?;
    Ok(Penalty { value, surrogate })
}

/// `grad_X sum(D(X))` at `x`, detached: each sample's input gradient when samples do not interact.
fn input_gradient(
    d: &dyn Discriminator,
    x: &Tensor,
    cond: Option<&Conditioning>,
    what: &str,
) -> condor_core::Result<Tensor> {
    let x = Var::from_tensor(&x.detach().copy()?)?;
    let grads = d.forward(x.as_tensor(), cond, true)?.sum_all()?.backward()?;
    let v = grads.get(x.as_tensor()).ok_or_else(|| {
        condor_core::Error::InvalidInput(format!("{what}: the discriminator's output does not depend on its input"))
    })?;
    Ok(v.detach())
}

/// `F(x + shift) - F(x - shift)`, `F` the sum of `d`'s logits: the central difference of the penalties'
/// surrogates, whose parameter gradient candle takes with first-order backward passes.
fn difference_along(
    d: &dyn Discriminator,
    x: &Tensor,
    shift: &Tensor,
    cond: Option<&Conditioning>,
) -> condor_core::Result<Tensor> {
    let plus = d.forward(&(x + shift)?, cond, true)?.sum_all()?;
    let minus = d.forward(&(x - shift)?, cond, true)?.sum_all()?;
    Ok((plus - minus)?)
}

/// Settings of DF-GAN's matching-aware gradient penalty (MA-GP) on real images and their own
/// captions, applied at every discriminator step of a text-conditioned run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchingAwarePenaltyConfig {
    /// Its weight `k` (DF-GAN: 2).
    pub weight: f64,
    /// The power `p` of the joint gradient norm (DF-GAN: 6).
    pub power: f64,
    /// Average distance per sample of the central difference's two points.
    pub step: f64,
}

impl Default for MatchingAwarePenaltyConfig {
    fn default() -> Self {
        Self { weight: 2.0, power: 6.0, step: 1e-2 }
    }
}

/// DF-GAN's matching-aware gradient penalty of `d` on real images `real` with their own captions
/// `cond` (see the module docs), with the central difference's points `step` away from each sample on
/// average.
pub fn matching_aware_penalty(
    d: &dyn Discriminator,
    real: &Tensor,
    cond: &Conditioning,
    config: MatchingAwarePenaltyConfig,
) -> condor_core::Result<Penalty> {
    let MatchingAwarePenaltyConfig { weight, power, step } = config;
    let b = real.dim(0)?;
    let x = Var::from_tensor(&real.detach().copy()?)?;
    let e = Var::from_tensor(&cond.embedding.detach().copy()?)?;
    let grads = d.forward(x.as_tensor(), Some(&Conditioning::from_embedding(e.as_tensor().clone())?), true)?;
    let grads = grads.sum_all()?.backward()?;
    let missing = |what: &str| {
        condor_core::Error::InvalidInput(format!(
            "matching-aware penalty: the discriminator's output does not depend on its {what}"
        ))
    };
    let gx = grads.get(x.as_tensor()).ok_or_else(|| missing("image"))?.detach();
    let ge = grads.get(e.as_tensor()).ok_or_else(|| missing("sentence embedding"))?.detach();
    let squares = |g: &Tensor| -> candle_core::Result<Vec<f64>> {
        g.to_dtype(DType::F64)?.flatten_from(1)?.sqr()?.sum(1)?.to_vec1()
    };
    let norms: Vec<f64> = squares(&gx)?.iter().zip(squares(&ge)?).map(|(a, c)| (a + c).sqrt()).collect();
    let value = weight / b as f64 * norms.iter().map(|n| n.powf(power)).sum::<f64>();
    let coef: Vec<f64> =
        norms.iter().map(|&n| if n > 0.0 { weight * power / b as f64 * n.powf(power - 2.0) } else { 0.0 }).collect();
    let Some(along) = Along::new(&coef, &norms, step) else {
        return Ok(Penalty { value, surrogate: real.zeros_like()?.sum_all()? });
    };
    let (sx, se) = (along.shift(&gx)?, along.shift(&ge)?);
    let at = |sign: f64| -> condor_core::Result<Tensor> {
        let c = Conditioning::from_embedding((&cond.embedding + (&se * sign)?)?)?;
        Ok(d.forward(&(real + (&sx * sign)?)?, Some(&c), true)?.sum_all()?)
    };
    let surrogate = ((at(1.0)? - at(-1.0)?)? * along.factor)?;
    Ok(Penalty { value, surrogate })
}

/// Where the one-centred gradient penalty is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyPoints {
    /// WGAN-GP: on lines between real and generated samples, `eps x + (1 - eps) G(z)` with
    /// `eps ~ U[0, 1]` per sample.
    #[default]
    Interpolates,
    /// DRAGAN: around real samples, `x + alpha * 0.5 std(x) u` with `u ~ U[0, 1]` per value and
    /// `alpha ~ U[0, 1]` per sample (the authors' code; `std` over the whole batch).
    Perturbed,
}

/// Settings of the one-centred gradient penalty, applied at every discriminator step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradientPenaltyConfig {
    /// Where it is taken: `interpolates` (WGAN-GP) or `perturbed` (DRAGAN).
    pub points: PenaltyPoints,
    /// Its weight `lambda` (10 in both papers).
    pub weight: f64,
    /// Average distance per sample of the central difference's two points.
    pub step: f64,
}

impl Default for GradientPenaltyConfig {
    fn default() -> Self {
        Self { points: PenaltyPoints::Interpolates, weight: 10.0, step: 1e-2 }
    }
}

impl PenaltyPoints {
    /// The points for `real` and `fake` (same shape) with this kind's draws from `rng`; `rows` takes a
    /// rank's rows of a tensor drawn for the global batch of `global` samples (identity in one process).
    pub fn draw(
        self,
        real: &Tensor,
        fake: &Tensor,
        global: usize,
        rng: &mut Rng,
        rows: &dyn Fn(&Tensor) -> condor_core::Result<Tensor>,
    ) -> condor_core::Result<Tensor> {
        let dims = real.dims();
        let per_sample = per_sample_shape(real);
        let row_draw = |rng: &mut Rng, shape: Vec<usize>| -> condor_core::Result<Tensor> {
            rows(&uniform(rng, 0.0, 1.0, shape, real.device())?)?.to_dtype(real.dtype()).map_err(Into::into)
        };
        let global_shape = |mut shape: Vec<usize>| {
            shape[0] = global;
            shape
        };
        match self {
            Self::Interpolates => {
                let eps = row_draw(rng, global_shape(per_sample.clone()))?.reshape(per_sample)?;
                Ok((real.broadcast_mul(&eps)? + fake.broadcast_mul(&(1.0 - eps)?)?)?.detach())
            }
            Self::Perturbed => {
                let u = row_draw(rng, global_shape(dims.to_vec()))?;
                let alpha = row_draw(rng, global_shape(per_sample.clone()))?.reshape(per_sample)?;
                let std = real.to_dtype(DType::F64)?.flatten_all()?.var(0)?.sqrt()?.to_scalar::<f64>()?;
                Ok((real + (u * (0.5 * std))?.broadcast_mul(&alpha)?)?.detach())
            }
        }
    }
}

/// The shape of one value per sample of `x`, broadcastable over it: `(B, 1, 1, ...)`.
fn per_sample_shape(x: &Tensor) -> Vec<usize> {
    let dims = x.dims();
    std::iter::once(dims[0]).chain(dims[1..].iter().map(|_| 1)).collect()
}

/// The one-centred gradient penalty of `d` at `points` under `cond` (see the module docs), with the
/// central difference's points `step` away from each sample on average.
pub fn gradient_penalty(
    d: &dyn Discriminator,
    points: &Tensor,
    cond: Option<&Conditioning>,
    weight: f64,
    step: f64,
) -> condor_core::Result<Penalty> {
    let b = points.dim(0)?;
    let v = input_gradient(d, points, cond, "gradient penalty")?;
    let norms: Vec<f64> = v.to_dtype(DType::F64)?.flatten_from(1)?.sqr()?.sum(1)?.sqrt()?.to_vec1()?;
    let value = weight / b as f64 * norms.iter().map(|n| (n - 1.0).powi(2)).sum::<f64>();
    let coef: Vec<f64> =
        norms.iter().map(|&n| if n > 0.0 { 2.0 * weight / b as f64 * (n - 1.0) / n } else { 0.0 }).collect();
    let Some(along) = Along::new(&coef, &norms, step) else {
        return Ok(Penalty { value, surrogate: points.zeros_like()?.sum_all()? });
    };
    let surrogate = (difference_along(d, points, &along.shift(&v)?, cond)? * along.factor)?;
    Ok(Penalty { value, surrogate })
}

/// The central difference along `W_i = coef_i * g_i` (`norms` holds the `||g_i||`): each sample's
/// shift of the two points is `scale_i * g_i`, and `factor` turns `F(+) - F(-)` into `<grad F, W>`.
struct Along {
    scale: Vec<f64>,
    factor: f64,
}

impl Along {
    /// The difference for points `step` away from each sample on average; `None` when `W` is zero.
    fn new(coef: &[f64], norms: &[f64], step: f64) -> Option<Self> {
        let w_norm = coef.iter().zip(norms).map(|(c, n)| (c * n).powi(2)).sum::<f64>().sqrt();
        if w_norm == 0.0 {
            return None;
        }
        let h = step * (coef.len() as f64).sqrt();
        Some(Self { scale: coef.iter().map(|c| c * h / w_norm).collect(), factor: w_norm / (2.0 * h) })
    }

    /// The shift of per-sample gradients `g`: `scale_i * g_i`.
    fn shift(&self, g: &Tensor) -> candle_core::Result<Tensor> {
        let scale = Tensor::from_vec(self.scale.clone(), per_sample_shape(g), g.device())?.to_dtype(g.dtype())?;
        g.broadcast_mul(&scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module};
    use condor_core::{derived_rng, rng::normal, ConditioningKind, Params};

    /// A small conditional network, smooth (softplus, tanh) so that finite differences are accurate.
    struct Tiny {
        conv: candle_nn::Conv2d,
        fc: candle_nn::Linear,
        embed: candle_nn::Linear,
    }

    impl Discriminator for Tiny {
        fn conditioning(&self) -> ConditioningKind {
            ConditioningKind::Vector { dim: 3 }
        }
        fn forward(&self, x: &Tensor, cond: Option<&Conditioning>, _train: bool) -> condor_core::Result<Tensor> {
            let h = crate::losses::softplus(&self.conv.forward(x)?)?.flatten_from(1)?;
            let h = self.fc.forward(&h)?.tanh()?;
            let e = self.embed.forward(&cond.expect("conditional").embedding)?;
            Ok((h.sum(1)? + (h * e)?.sum(1)?)?)
        }
    }

    /// A [`Tiny`] discriminator in float64 with its parameters, a batch of five 2x6x6 samples and
    /// their conditioning.
    fn tiny_setup() -> (Params, Tiny, Tensor, Conditioning) {
        let dev = Device::Cpu;
        let params = Params::new(3);
        let vb = params.var_builder(DType::F64, &dev);
        let d = Tiny {
            conv: candle_nn::conv2d(2, 3, 3, Default::default(), vb.pp("conv")).unwrap(),
            fc: candle_nn::linear(3 * 4 * 4, 4, vb.pp("fc")).unwrap(),
            embed: candle_nn::linear(3, 4, vb.pp("embed")).unwrap(),
        };
        let real = normal(&mut derived_rng(4, &[]), (5, 2, 6, 6), &dev).unwrap().to_dtype(DType::F64).unwrap();
        let cond = Conditioning::from_embedding(
            normal(&mut derived_rng(5, &[]), (5, 3), &dev).unwrap().to_dtype(DType::F64).unwrap(),
        )
        .unwrap();
        (params, d, real, cond)
    }

    /// Checks the parameter gradient of `surrogate` against central differences of `value` in every
    /// sixth value of each parameter.
    fn assert_surrogate_gradient(params: &Params, surrogate: &Tensor, value: &dyn Fn() -> f64) {
        let dev = Device::Cpu;
        let grads = surrogate.backward().unwrap();
        let mut checked = 0;
        for (name, var) in params.trainable() {
            let approx: Vec<f64> = grads.get(&var).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f64> = var.flatten_all().unwrap().to_vec1().unwrap();
            for i in (0..base.len()).step_by((base.len() / 6).max(1)) {
                let at = |delta: f64| {
                    let mut v = base.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_slice(&v, var.shape(), &dev).unwrap()).unwrap();
                    value()
                };
                let exact = (at(1e-6) - at(-1e-6)) / 2e-6;
                var.set(&Tensor::from_slice(&base, var.shape(), &dev).unwrap()).unwrap();
                let err = (approx[i] - exact).abs();
                assert!(err < 1e-6 + 1e-4 * exact.abs(), "{name}[{i}]: surrogate {} vs exact {exact}", approx[i]);
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked}");
    }

    /// Each sample's input gradient, from a pass over that sample alone.
    fn sample_gradients(d: &Tiny, x: &Tensor, cond: &Conditioning) -> Vec<Vec<f64>> {
        (0..x.dim(0).unwrap())
            .map(|i| {
                let xi = Var::from_tensor(&x.narrow(0, i, 1).unwrap().copy().unwrap()).unwrap();
                let ci = Conditioning::from_embedding(cond.embedding.narrow(0, i, 1).unwrap()).unwrap();
                let g = d.forward(xi.as_tensor(), Some(&ci), true).unwrap().sum_all().unwrap().backward().unwrap();
                g.get(xi.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap()
            })
            .collect()
    }

    #[test]
    fn r1_surrogate_gradient_matches_the_exact_penalty_gradient() {
        let (params, d, real, cond) = tiny_setup();
        let gamma = 4.0;
        let penalty = |x: &Tensor| r1_penalty(&d, x, Some(&cond), gamma, 1e-4).unwrap();
        let p = penalty(&real);
        assert_surrogate_gradient(&params, &p.surrogate, &|| penalty(&real).value);
        // The value itself: gamma / (2B) * sum of squared input gradients.
        let sq: f64 = sample_gradients(&d, &real, &cond).iter().flatten().map(|g| g * g).sum();
        assert!((p.value - gamma / 10.0 * sq).abs() < 1e-12 * sq.max(1.0), "{} vs {}", p.value, gamma / 10.0 * sq);
        assert!(p.value > 1e-3);
    }

    #[test]
    fn one_centred_penalty_surrogate_gradient_matches_the_exact_penalty_gradient() {
        let (params, d, real, cond) = tiny_setup();
        // Points scaled so that some gradient norms are above 1 and some below.
        let points = (&real * 10.0).unwrap();
        let penalty = |x: &Tensor| gradient_penalty(&d, x, Some(&cond), 10.0, 1e-4).unwrap();
        let p = penalty(&points);
        assert_surrogate_gradient(&params, &p.surrogate, &|| penalty(&points).value);
        // The value: lambda / B * sum_i (||g_i|| - 1)^2.
        let norms: Vec<f64> =
            sample_gradients(&d, &points, &cond).iter().map(|g| g.iter().map(|x| x * x).sum::<f64>().sqrt()).collect();
        assert!(norms.iter().any(|&n| n > 1.0) && norms.iter().any(|&n| n < 1.0), "{norms:?}");
        let want = 10.0 / 5.0 * norms.iter().map(|n| (n - 1.0).powi(2)).sum::<f64>();
        assert!((p.value - want).abs() < 1e-12 * want.max(1.0), "{} vs {want}", p.value);
    }

    #[test]
    fn matching_aware_penalty_surrogate_gradient_matches_the_exact_penalty_gradient() {
        let (params, d, real, cond) = tiny_setup();
        let config = MatchingAwarePenaltyConfig { weight: 2.0, power: 6.0, step: 1e-4 };
        let penalty = || matching_aware_penalty(&d, &real, &cond, config).unwrap();
        let p = penalty();
        assert_surrogate_gradient(&params, &p.surrogate, &|| penalty().value);
        // The value: k / B * sum_i ||(g_i, c_i)||^6, each sample's gradients from a pass of its own.
        let want: f64 = (0..5)
            .map(|i| {
                let xi = Var::from_tensor(&real.narrow(0, i, 1).unwrap().copy().unwrap()).unwrap();
                let ei = Var::from_tensor(&cond.embedding.narrow(0, i, 1).unwrap().copy().unwrap()).unwrap();
                let ci = Conditioning::from_embedding(ei.as_tensor().clone()).unwrap();
                let g = d.forward(xi.as_tensor(), Some(&ci), true).unwrap().sum_all().unwrap().backward().unwrap();
                let sq =
                    |t: &Tensor| -> f64 { g.get(t).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar().unwrap() };
                (sq(xi.as_tensor()) + sq(ei.as_tensor())).powf(3.0)
            })
            .sum::<f64>()
            * 2.0
            / 5.0;
        assert!((p.value - want).abs() < 1e-10 * want.max(1.0), "{} vs {want}", p.value);
        assert!(p.value > 1e-6, "{}", p.value);
    }

    #[test]
    fn penalty_points_lie_between_real_and_generated_or_near_real_samples() {
        let dev = Device::Cpu;
        let real = normal(&mut derived_rng(1, &[]), (6, 2, 3, 3), &dev).unwrap();
        let fake = normal(&mut derived_rng(2, &[]), (6, 2, 3, 3), &dev).unwrap();
        let whole = |x: &Tensor| Ok(x.clone());
        let flat = |x: &Tensor| -> Vec<Vec<f32>> { x.flatten_from(1).unwrap().to_vec2().unwrap() };
        let p = PenaltyPoints::Interpolates.draw(&real, &fake, 6, &mut derived_rng(3, &[]), &whole).unwrap();
        for ((p, x), f) in flat(&p).iter().zip(flat(&real)).zip(flat(&fake)) {
            // One eps per sample: p - f = eps (x - f) at every value, eps in [0, 1].
            let eps = (p[0] - f[0]) / (x[0] - f[0]);
            assert!((0.0..=1.0).contains(&eps), "{eps}");
            for k in 0..p.len() {
                assert!((p[k] - f[k] - eps * (x[k] - f[k])).abs() < 1e-5, "sample value {k}");
            }
        }
        let p = PenaltyPoints::Perturbed.draw(&real, &fake, 6, &mut derived_rng(3, &[]), &whole).unwrap();
        let std = real.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mean = std.iter().sum::<f32>() / std.len() as f32;
        let std = (std.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / (std.len() - 1) as f32).sqrt();
        let moved: Vec<f32> = flat(&(p - &real).unwrap()).into_iter().flatten().collect();
        assert!(moved.iter().all(|&m| (0.0..=0.5 * std + 1e-6).contains(&m)), "moved {moved:?}");
        assert!(moved.iter().any(|&m| m > 0.05 * std), "the points move");
    }
}
