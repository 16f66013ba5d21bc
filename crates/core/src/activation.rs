//! Activations, and a bias followed by an activation as one op ([`bias_act`]).

use candle_core::{Result, Tensor};

use crate::norm::{affine_act, Normalise};

/// An element-wise activation that a fused layer applies after its affine map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// No activation.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x` for positive `x`, `slope * x` otherwise (`slope` in `[0, 1)`).
    LeakyRelu(f64),
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    /// The activation as candle ops (any device and dtype).
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(slope) => candle_nn::ops::leaky_relu(x, slope),
            Activation::Tanh => x.tanh(),
        }
    }
}

/// `act(x + bias)` with a per-channel `bias` `(C,)` for `x` `(B, C, ...)`: one op with a fused
/// backward pass on the CPU (f32, f64), candle's ops elsewhere.
pub fn bias_act(x: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    if bias.is_none() && act == Activation::Identity {
        return Ok(x.clone());
    }
    let c = x.dim(1)?;
    let zeros = || Tensor::zeros(c, x.dtype(), x.device());
    let beta = match bias {
        Some(b) => b.clone(),
        None => zeros()?,
    };
    let ones = Tensor::ones(c, x.dtype(), x.device())?;
    affine_act(x, &ones, &beta, None, Normalise::None, act, 0.0)
}
