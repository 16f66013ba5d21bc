//! Finite-difference gradient checks, for plugin authors: build the model in float64 and compare
//! candle's gradients with central differences before trusting a new layer.

use candle_core::{Tensor, Var};

use crate::Params;

/// Compares the autograd gradient of `loss` with central finite differences (step 1e-6) on up to
/// `per_var` evenly spaced entries of every trainable variable in `params`. The model must be built in
/// float64 and `loss` must return a scalar. Tolerance: `1e-8 + rel * |numeric|`.
///
/// Returns the number of entries checked, or a message naming the first entry that disagrees.
pub fn check_gradients(
    params: &Params,
    per_var: usize,
    rel: f64,
    loss: impl Fn() -> candle_core::Result<Tensor>,
) -> Result<usize, String> {
    let fail = |e: candle_core::Error| e.to_string();
    let grads = loss().map_err(fail)?.backward().map_err(fail)?;
    let eps = 1e-6;
    let mut checked = 0;
    for (name, var) in params.trainable() {
        let Some(grad) = grads.get(&var) else {
            return Err(format!("{name} has no gradient: the loss does not reach it"));
        };
        let analytic: Vec<f64> = grad.flatten_all().and_then(|g| g.to_vec1()).map_err(fail)?;
        let base: Vec<f64> = var.flatten_all().and_then(|v| v.to_vec1()).map_err(fail)?;
        let n = base.len();
        for i in (0..n).step_by((n / per_var.max(1)).max(1)) {
            let eval = |delta: f64| -> Result<f64, String> {
                let mut v = base.clone();
                v[i] += delta;
                set(&var, &v).map_err(fail)?;
                loss().and_then(|l| l.to_scalar::<f64>()).map_err(fail)
            };
            let numeric = (eval(eps)? - eval(-eps)?) / (2.0 * eps);
            set(&var, &base).map_err(fail)?;
            if (numeric - analytic[i]).abs() > 1e-8 + rel * numeric.abs() {
                return Err(format!("{name}[{i}]: autograd {} but finite differences {numeric}", analytic[i]));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

fn set(var: &Var, values: &[f64]) -> candle_core::Result<()> {
    var.set(&Tensor::from_slice(values, var.shape(), var.device())?)
}
