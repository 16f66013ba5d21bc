//! Adam / AdamW with named state that checkpoints save and restore exactly.
//!
//! On the CPU (f32, f64) each variable is updated in place in three passes (first moment, second
//! moment, weight) with the same element arithmetic as the tensor formulation used elsewhere, so both
//! give the same bits; the tensor formulation allocated a dozen temporaries per variable and step.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Tensor, Var};
use rayon::prelude::*;

use crate::config::OptimizerConfig;

/// Elements from which an in-place update is split over the threads.
const PARALLEL_MIN: usize = 1 << 18;

/// Runs `f` over matching chunks of `dst` and the `srcs`, on several threads for large tensors.
fn zip_chunks<T: Copy + Send + Sync, const N: usize>(
    dst: &mut [T],
    srcs: [&[T]; N],
    f: impl Fn(&mut [T], [&[T]; N]) + Sync,
) {
    const CHUNK: usize = 1 << 14;
    let part = |(i, d): (usize, &mut [T])| f(d, srcs.map(|s| &s[i * CHUNK..][..d.len()]));
    if dst.len() >= PARALLEL_MIN {
        dst.par_chunks_mut(CHUNK).enumerate().for_each(part);
    } else {
        dst.chunks_mut(CHUNK).enumerate().for_each(part);
    }
}

/// The contiguous slice a layout covers, checked to hold `n` elements.
fn slice<'a, T>(data: &'a [T], layout: &Layout, n: usize) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) if b - a == n => Ok(&data[a..b]),
        _ => candle_core::bail!("adam: expects contiguous tensors of one size"),
    }
}

/// `m = decay m + (1 - decay) g` (or `g^2` for the second moment) in place, each product and sum in
/// the element type as candle's `affine` and `add` round them.
struct MomentUpdate {
    decay: f64,
    squared: bool,
}

macro_rules! moment {
    ($self:ident, $m:expr, $g:expr, $t:ty) => {{
        let (a, b) = ($self.decay as $t, (1.0 - $self.decay) as $t);
        let squared = $self.squared;
        zip_chunks($m, [$g], |m, [g]| {
            for (m, &g) in m.iter_mut().zip(g) {
                let g = if squared { g * g } else { g };
                *m = (*m * a + 0.0) + (g * b + 0.0);
            }
        });
    }};
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, g: &CpuStorage, g_l: &Layout) -> candle_core::Result<()> {
        let n = dst_l.shape().elem_count();
        let start = dst_l.start_offset();
        match (dst, g) {
            (CpuStorage::F32(m), CpuStorage::F32(g)) => moment!(self, &mut m[start..start + n], slice(g, g_l, n)?, f32),
            (CpuStorage::F64(m), CpuStorage::F64(g)) => moment!(self, &mut m[start..start + n], slice(g, g_l, n)?, f64),
            _ => candle_core::bail!("adam: f32 or f64 tensors of one dtype"),
        }
        Ok(())
    }
}

/// `w = w (1 - lr decay) - lr (m / bias1) / (sqrt(v / bias2) + eps)` in place, rounded as the tensor
/// formulation rounds it.
struct WeightUpdate {
    lr: f64,
    bias1: f64,
    bias2: f64,
    eps: f64,
    weight_decay: f64,
}

macro_rules! weight {
    ($self:ident, $w:expr, $m:expr, $v:expr, $t:ty) => {{
        let (inv1, inv2, eps, lr) =
            ((1.0 / $self.bias1) as $t, (1.0 / $self.bias2) as $t, $self.eps as $t, $self.lr as $t);
        let decay = ($self.weight_decay > 0.0).then(|| (1.0 - $self.lr * $self.weight_decay) as $t);
        zip_chunks($w, [$m, $v], |w, [m, v]| {
            for ((w, &m), &v) in w.iter_mut().zip(m).zip(v) {
                let update = (m * inv1 + 0.0) / ((v * inv2 + 0.0).sqrt() * 1.0 + eps);
                let kept = match decay {
                    Some(d) => *w * d + 0.0,
                    None => *w,
                };
                *w = kept - (update * lr + 0.0);
            }
        });
    }};
}

impl InplaceOp3 for WeightUpdate {
    fn name(&self) -> &'static str {
        "adam-weight"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        m: &CpuStorage,
        m_l: &Layout,
        v: &CpuStorage,
        v_l: &Layout,
    ) -> candle_core::Result<()> {
        let n = dst_l.shape().elem_count();
        let start = dst_l.start_offset();
        match (dst, m, v) {
            (CpuStorage::F32(w), CpuStorage::F32(m), CpuStorage::F32(v)) => {
                weight!(self, &mut w[start..start + n], slice(m, m_l, n)?, slice(v, v_l, n)?, f32)
            }
            (CpuStorage::F64(w), CpuStorage::F64(m), CpuStorage::F64(v)) => {
                weight!(self, &mut w[start..start + n], slice(m, m_l, n)?, slice(v, v_l, n)?, f64)
            }
            _ => candle_core::bail!("adam: f32 or f64 tensors of one dtype"),
        }
        Ok(())
    }
}

/// Adam (Kingma & Ba) with optional decoupled weight decay (AdamW). Its moments are keyed by variable
/// name, so a resumed run continues bit for bit.
pub struct Adam {
    config: OptimizerConfig,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: u64,
}

impl Adam {
    /// An optimizer for `vars` (sorted by name by the caller) with zero moments.
    pub fn new(vars: Vec<(String, Var)>, config: OptimizerConfig) -> candle_core::Result<Self> {
        // Separate tensors: the moments are updated in place.
        let zeros = || vars.iter().map(|(_, v)| v.zeros_like()).collect::<candle_core::Result<Vec<_>>>();
        let (m, v) = (zeros()?, zeros()?);
        Ok(Self { config, vars, m, v, t: 0 })
    }

    /// Replaces the settings (learning rate, betas, decay), keeping the moments and step count.
    pub fn set_config(&mut self, config: OptimizerConfig) {
        self.config = config;
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The variables it updates.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// One update from the gradients in `grads` at the configured learning rate.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step_with_lr(grads, self.config.lr)
    }

    /// One update at learning rate `lr` (for schedules). Variables without a gradient are left alone.
    pub fn step_with_lr(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        self.update(grads, lr, true)
    }

    /// One update; `in_place` allows the in-place CPU kernels (the tensor formulation otherwise).
    fn update(&mut self, grads: &GradStore, lr: f64, in_place: bool) -> candle_core::Result<()> {
        self.t += 1;
        let c = OptimizerConfig { lr, ..self.config };
        let bias1 = 1.0 - c.beta1.powi(self.t as i32);
        let bias2 = 1.0 - c.beta2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let w = var.as_tensor();
            if in_place && w.device().is_cpu() && matches!(w.dtype(), DType::F32 | DType::F64) && w.is_contiguous() {
                let g = g.contiguous()?;
                self.m[i].inplace_op2(&g, &MomentUpdate { decay: c.beta1, squared: false })?;
                self.v[i].inplace_op2(&g, &MomentUpdate { decay: c.beta2, squared: true })?;
                let update = WeightUpdate { lr: c.lr, bias1, bias2, eps: c.eps, weight_decay: c.weight_decay };
                w.inplace_op3(&self.m[i], &self.v[i], &update)?;
                continue;
            }
            let g = g.detach();
            let m = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bias1)? / ((&v / bias2)?.sqrt()? + c.eps)?)?;
            let mut w = w.detach();
            if c.weight_decay > 0.0 {
                w = (w * (1.0 - c.lr * c.weight_decay))?;
            }
            var.set(&(w - (update * c.lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moment tensors, named `m.<var>` and `v.<var>`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (name, _)) in self.vars.iter().enumerate() {
            // Copies: the optimizer goes on updating its own in place.
            out.push((format!("m.{name}"), self.m[i].copy().expect("copying a moment tensor")));
            out.push((format!("v.{name}"), self.v[i].copy().expect("copying a moment tensor")));
        }
        out
    }

    /// Restores moments saved by [`Adam::state`] and the step count. Every moment must be present with
    /// its variable's shape.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<(), String> {
        let mut m = Vec::with_capacity(self.vars.len());
        let mut v = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            for (key, out) in [(format!("m.{name}"), &mut m), (format!("v.{name}"), &mut v)] {
                let t = tensors.get(&key).ok_or_else(|| format!("optimizer state `{key}` is missing"))?;
                if t.dims() != var.dims() {
                    return Err(format!("optimizer state `{key}` has shape {:?}, expected {:?}", t.dims(), var.dims()));
                }
                // A copy of its own: the moments are updated in place.
                let t = t.to_device(var.device()).and_then(|t| t.to_dtype(var.dtype())).and_then(|t| t.copy());
                out.push(t.map_err(|e| e.to_string())?);
            }
        }
        if tensors.len() != 2 * self.vars.len() {
            return Err(format!("optimizer state has {} tensors, expected {}", tensors.len(), 2 * self.vars.len()));
        }
        (self.m, self.v, self.t) = (m, v, steps);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn first_steps_match_the_adam_formula() {
        let dev = Device::Cpu;
        let w = Var::new(&[1f32, -1.0][..], &dev).unwrap();
        let config = OptimizerConfig { lr: 0.1, beta1: 0.5, beta2: 0.999, eps: 1e-8, ..Default::default() };
        let mut adam = Adam::new(vec![("w".into(), w.clone())], config).unwrap();
        // loss = sum(w^2 * c): gradient 2 c w.
        let c = Tensor::new(&[3f32, 0.5], &dev).unwrap();
        let mut expected = [1f64, -1.0];
        let (mut m, mut v) = ([0f64; 2], [0f64; 2]);
        for t in 1..=3 {
            let grads = w.as_tensor().sqr().unwrap().mul(&c).unwrap().sum_all().unwrap().backward().unwrap();
            adam.step(&grads).unwrap();
            for i in 0..2 {
                let g = 2.0 * [3.0, 0.5][i] * expected[i];
                m[i] = 0.5 * m[i] + 0.5 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let (mh, vh) = (m[i] / (1.0 - 0.5f64.powi(t)), v[i] / (1.0 - 0.999f64.powi(t)));
                expected[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got: Vec<f32> = w.to_vec1().unwrap();
        for i in 0..2 {
            assert!((got[i] as f64 - expected[i]).abs() < 1e-5, "{got:?} vs {expected:?}");
        }
        assert_eq!(adam.steps(), 3);
    }

    #[test]
    fn in_place_updates_give_the_bits_of_the_tensor_formulation() {
        let dev = Device::Cpu;
        for dtype in [candle_core::DType::F32, candle_core::DType::F64] {
            for weight_decay in [0.0, 0.01] {
                // Large enough to be split over threads.
                let init = Tensor::randn(0f32, 1.0, 300_000, &dev).unwrap().to_dtype(dtype).unwrap();
                let c = Tensor::randn(0f32, 1.0, 300_000, &dev).unwrap().to_dtype(dtype).unwrap();
                let config = OptimizerConfig { lr: 0.01, beta1: 0.5, weight_decay, ..Default::default() };
                let run = |in_place: bool| {
                    let w = Var::from_tensor(&init.copy().unwrap()).unwrap();
                    let mut adam = Adam::new(vec![("w".into(), w.clone())], config).unwrap();
                    for _ in 0..4 {
                        let grads = (w.as_tensor() * &c).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
                        adam.update(&grads, 0.01, in_place).unwrap();
                    }
                    let bits = |t: &Tensor| t.to_dtype(candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap();
                    [bits(w.as_tensor()), bits(&adam.m[0]), bits(&adam.v[0])]
                };
                let (fused, tensors) = (run(true), run(false));
                for (a, b) in fused.iter().zip(&tensors) {
                    assert!(
                        a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{dtype:?}, decay {weight_decay}"
                    );
                }
            }
        }
    }

    #[test]
    fn learning_rate_schedules_fall_to_zero() {
        use crate::config::LrDecay;
        let c = OptimizerConfig { lr: 0.2, ..Default::default() };
        assert_eq!(c.lr_at(50, 100), 0.2);
        let lin = OptimizerConfig { lr_decay: LrDecay::Linear, ..c };
        assert!((lin.lr_at(0, 100) - 0.2).abs() < 1e-12);
        assert!((lin.lr_at(75, 100) - 0.05).abs() < 1e-12);
        assert_eq!(lin.lr_at(100, 100), 0.0);
        let cos = OptimizerConfig { lr_decay: LrDecay::Cosine, ..c };
        assert!((cos.lr_at(50, 100) - 0.1).abs() < 1e-12);
        assert!((cos.lr_at(25, 100) - 0.1 * (1.0 + std::f64::consts::FRAC_1_SQRT_2)).abs() < 1e-12);
        let hold = OptimizerConfig { lr_decay: LrDecay::HoldThenLinear, ..c };
        assert_eq!((hold.lr_at(0, 100), hold.lr_at(50, 100)), (0.2, 0.2));
        assert!((hold.lr_at(75, 100) - 0.1).abs() < 1e-12);
        assert_eq!(hold.lr_at(100, 100), 0.0);
    }

    #[test]
    fn weight_decay_is_decoupled() {
        let dev = Device::Cpu;
        let w = Var::new(&[2f32][..], &dev).unwrap();
        let config = OptimizerConfig { lr: 0.1, weight_decay: 0.5, ..Default::default() };
        let mut adam = Adam::new(vec![("w".into(), w.clone())], config).unwrap();
        // loss = sum(w): gradient 1, so Adam's first normalised step is 1. Decoupled decay shrinks w
        // on its own: 2 * (1 - 0.1 * 0.5) - 0.1 = 1.8. (L2 folded into the gradient would give 1.9.)
        let grads = w.as_tensor().sum_all().unwrap().backward().unwrap();
        adam.step(&grads).unwrap();
        let got = w.to_vec1::<f32>().unwrap()[0];
        assert!((got - 1.8).abs() < 1e-6, "{got}");
    }

    #[test]
    fn state_round_trips_and_mismatches_are_named() {
        let dev = Device::Cpu;
        let w = Var::new(&[1f32, 2.0][..], &dev).unwrap();
        let mut a = Adam::new(vec![("w".into(), w.clone())], OptimizerConfig::default()).unwrap();
        a.step(&w.as_tensor().sum_all().unwrap().backward().unwrap()).unwrap();
        let saved: HashMap<String, Tensor> = a.state().into_iter().collect();
        let mut b = Adam::new(vec![("w".into(), w.clone())], OptimizerConfig::default()).unwrap();
        b.load_state(&saved, a.steps()).unwrap();
        assert_eq!(b.steps(), 1);
        assert_eq!(b.state()[0].1.to_vec1::<f32>().unwrap(), a.state()[0].1.to_vec1::<f32>().unwrap());
        let mut missing = saved.clone();
        missing.remove("v.w");
        assert!(b.load_state(&missing, 1).unwrap_err().contains("v.w"));
    }
}
