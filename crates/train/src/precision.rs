//! Mixed precision (Micikevicius et al. 2018): the forward and backward passes run in bfloat16 or
//! float16 on half-precision working copies of the models, while the float32 master weights, the
//! optimizer moments, the EMA generator and the checkpoints stay in float32. Each update turns the
//! half gradients into float32 gradients of the master weights, steps the optimizer there, and casts
//! the new weights back into the working copies. float16 adds dynamic loss scaling (its range is too
//! small for small gradients); bfloat16 has float32's range and needs none.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use condor_core::Params;
use serde::{Deserialize, Serialize};

/// The arithmetic of the training passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in float32.
    #[default]
    F32,
    /// Passes in bfloat16, master weights in float32.
    Bf16,
    /// Passes in float16 with dynamic loss scaling, master weights in float32.
    F16,
}

impl Precision {
    /// The dtype of the passes.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    /// Whether the passes run on half-precision copies.
    pub fn is_mixed(self) -> bool {
        self != Self::F32
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    /// `f32`, `bf16` or `f16`, the names run configs use.
    fn from_str(name: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(name.to_string()))
            .map_err(|_| format!("precision must be f32, bf16 or f16, not {name:?}"))
    }
}

/// Dynamic loss scaling: losses are multiplied by `scale` before the backward pass and gradients
/// divided by it after. An update whose gradients overflow is skipped and halves the scale; after
/// `GROWTH_INTERVAL` iterations without overflow the scale doubles (PyTorch's GradScaler defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    /// The current factor.
    pub scale: f64,
    /// Iterations since the last overflow or growth.
    pub good_steps: u64,
}

impl Default for LossScale {
    fn default() -> Self {
        Self { scale: 65536.0, good_steps: 0 }
    }
}

impl LossScale {
    /// Iterations without overflow before the scale doubles.
    pub const GROWTH_INTERVAL: u64 = 2000;

    /// Updates the scale after an iteration that did (`overflow`) or did not overflow.
    pub fn update(&mut self, overflow: bool) {
        if overflow {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
        } else {
            self.good_steps += 1;
            if self.good_steps == Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        }
    }
}

/// The gradients of the working copy's variables `half` re-keyed to the master variables of the same
/// names (`master`, the optimizer's), in float32 and multiplied by `unscale`.
pub fn master_gradients(
    grads: &GradStore,
    half: &Params,
    master: &[(String, Var)],
    unscale: f64,
) -> candle_core::Result<GradStore> {
    let theirs: std::collections::HashMap<String, Var> = half.named().into_iter().collect();
    let mut out = GradStore::default();
    for (name, var) in master {
        let Some(h) = theirs.get(name) else { continue };
        if let Some(g) = grads.get(h) {
            let g = g.to_dtype(DType::F32)?;
            out.insert(var.as_tensor(), if unscale == 1.0 { g } else { (g * unscale)? });
        }
    }
    Ok(out)
}

/// Whether every gradient of `vars` in `grads` is finite (one reduction and one host read).
pub fn gradients_finite(grads: &GradStore, vars: &[(String, Var)]) -> candle_core::Result<bool> {
    let mut total: Option<Tensor> = None;
    for (_, v) in vars {
        if let Some(g) = grads.get(v) {
            let s = g.to_dtype(DType::F32)?.abs()?.sum_all()?;
            total = Some(match total {
                Some(t) => (t + s)?,
                None => s,
            });
        }
    }
    total.map_or(Ok(true), |t| t.to_scalar::<f32>().map(f32::is_finite))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn precisions_parse_by_their_config_names() {
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("f32".parse::<Precision>(), Ok(Precision::F32));
        assert!("fp8".parse::<Precision>().unwrap_err().contains("\"fp8\""));
    }

    #[test]
    fn the_loss_scale_halves_on_overflow_and_doubles_after_a_quiet_stretch() {
        let mut s = LossScale::default();
        s.update(true);
        assert_eq!(s, LossScale { scale: 32768.0, good_steps: 0 });
        for _ in 0..LossScale::GROWTH_INTERVAL - 1 {
            s.update(false);
        }
        assert_eq!(s.scale, 32768.0);
        s.update(false);
        assert_eq!(s, LossScale { scale: 65536.0, good_steps: 0 });
        let mut tiny = LossScale { scale: 1.0, good_steps: 5 };
        tiny.update(true);
        assert_eq!(tiny.scale, 1.0, "never below 1");
    }

    #[test]
    fn half_gradients_land_on_the_master_weights_unscaled() {
        let dev = Device::Cpu;
        let master = Params::new(1);
        let half = Params::new(1);
        let init = candle_nn::Init::Const(0.5);
        master.var_builder(DType::F32, &dev).get_with_hints(3, "w", init).unwrap();
        half.var_builder(DType::F16, &dev).get_with_hints(3, "w", init).unwrap();
        half.copy_from_where(&master, |n| !condor_core::is_buffer(n)).unwrap();
        let (hw, mw) = (half.named()[0].1.clone(), master.named()[0].1.clone());
        assert_eq!(hw.dtype(), DType::F16);
        // loss = 1024 * sum(w * x): half gradient 1024 x, master gradient x after unscaling.
        let x = Tensor::new(&[1f32, -2.0, 0.25], &dev).unwrap();
        let loss = (hw.as_tensor().to_dtype(DType::F32).unwrap().mul(&x).unwrap().sum_all().unwrap() * 1024.0).unwrap();
        let grads = loss.backward().unwrap();
        let m = master_gradients(&grads, &half, &master.trainable(), 1.0 / 1024.0).unwrap();
        let g = m.get(mw.as_tensor()).unwrap();
        assert_eq!(g.dtype(), DType::F32);
        assert_eq!(g.to_vec1::<f32>().unwrap(), vec![1.0, -2.0, 0.25]);
        assert!(gradients_finite(&m, &master.trainable()).unwrap());
        let mut bad = GradStore::default();
        bad.insert(mw.as_tensor(), Tensor::new(&[f32::INFINITY, 0.0, 0.0], &dev).unwrap());
        assert!(!gradients_finite(&bad, &master.trainable()).unwrap());
    }
}
