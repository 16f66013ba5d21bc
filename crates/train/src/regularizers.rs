//! The R1 gradient penalty (Mescheder et al., 2018; StyleGAN's default) without second-order
//! gradients, which candle does not have.
//!
//! `R1 = gamma / (2B) * ||grad_X F(X)||^2`, with `F` the sum of the discriminator's logits on the real
//! batch `X`. Its gradient in the discriminator's parameters is `gamma / B * d/dtheta <grad_X F, V>`
//! with `V = grad_X F` held fixed, and `<grad_X F, V>` is the derivative of `F` along `V`. We take that
//! derivative by a central difference, `||V|| (F(X + hU) - F(X - hU)) / (2h)` with `U = V / ||V||`,
//! whose parameter gradient candle computes with first-order backward passes only. The estimate's
//! error is O(h^2) (zero for a network that is linear in X between the two points).

use candle_core::{DType, Tensor, Var};
use condor_core::{Conditioning, Discriminator};
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

/// The penalty's value and a surrogate whose parameter gradient approximates the penalty's.
pub struct R1Penalty {
    /// `gamma / (2B) * ||grad_X F||^2`.
    pub value: f64,
    /// A scalar whose gradient in the discriminator's parameters approximates that of `value` (its own
    /// value is not the penalty: about twice it).
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
) -> condor_core::Result<R1Penalty> {
    let b = real.dim(0)? as f64;
    let x = Var::from_tensor(&real.detach().copy()?)?;
    let grads = d.forward(x.as_tensor(), cond, true)?.sum_all()?.backward()?;
    let v = grads
        .get(x.as_tensor())
        .ok_or_else(|| {
            condor_core::Error::InvalidInput("R1: the discriminator's output does not depend on its input".into())
        })?
        .detach();
    let norm = v.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
    let value = gamma / (2.0 * b) * norm * norm;
    if norm == 0.0 {
        return Ok(R1Penalty { value, surrogate: real.zeros_like()?.sum_all()? });
    }
    let h = step * b.sqrt();
    let shift = (v * (h / norm))?;
    let plus = d.forward(&(real + &shift)?, cond, true)?.sum_all()?;
    let minus = d.forward(&(real - &shift)?, cond, true)?.sum_all()?;
    let surrogate = ((plus - minus)? * (gamma * norm / (2.0 * h * b)))?;
    Ok(R1Penalty { value, surrogate })
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

    #[test]
    fn r1_surrogate_gradient_matches_the_exact_penalty_gradient() {
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
        let gamma = 4.0;
        let penalty = |x: &Tensor| r1_penalty(&d, x, Some(&cond), gamma, 1e-4).unwrap();
        let p = penalty(&real);
        let grads = p.surrogate.backward().unwrap();
        let mut checked = 0;
        for (name, var) in params.trainable() {
            let approx: Vec<f64> = grads.get(&var).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f64> = var.flatten_all().unwrap().to_vec1().unwrap();
            for i in (0..base.len()).step_by((base.len() / 6).max(1)) {
                let at = |delta: f64| {
                    let mut v = base.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_slice(&v, var.shape(), &dev).unwrap()).unwrap();
                    penalty(&real).value
                };
                let exact = (at(1e-6) - at(-1e-6)) / 2e-6;
                var.set(&Tensor::from_slice(&base, var.shape(), &dev).unwrap()).unwrap();
                let err = (approx[i] - exact).abs();
                assert!(err < 1e-6 + 1e-4 * exact.abs(), "{name}[{i}]: surrogate {} vs exact {exact}", approx[i]);
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked}");
        // The value itself: gamma / (2B) * sum of squared input gradients.
        let x = Var::from_tensor(&real.copy().unwrap()).unwrap();
        let g = d.forward(x.as_tensor(), Some(&cond), true).unwrap().sum_all().unwrap().backward().unwrap();
        let sq = g.get(x.as_tensor()).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        assert!((p.value - gamma / 10.0 * sq).abs() < 1e-12 * sq.max(1.0), "{} vs {}", p.value, gamma / 10.0 * sq);
        assert!(p.value > 1e-3);
    }
}
