//! The building blocks: layers with an equalised learning rate, the modulated convolution with weight
//! demodulation and downsampling (upsampling is `condor_core::resample`, minibatch standard deviation
//! `condor_core::minibatch`).

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};
use condor_core::activation::Activation;
use condor_core::conv::conv2d;
use condor_core::modulate::channel_affine_act;

/// `sqrt(2)`: the gain that keeps a leaky ReLU's output at unit second moment.
pub const ACTIVATION_GAIN: f64 = std::f64::consts::SQRT_2;

/// StyleGAN's leaky ReLU slope.
const SLOPE: f64 = 0.2;

/// StyleGAN's activation of `x + bias`, leaky ReLU (slope 0.2) scaled by [`ACTIVATION_GAIN`], as one op
/// for `x` `(B, C, ...)` and a per-channel `bias`.
fn bias_lrelu(x: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    channel_affine_act(x, None, None, bias, Activation::LeakyRelu(SLOPE), ACTIVATION_GAIN)
}

/// `x / sqrt(mean(x^2) + 1e-8)` over each row of a `(B, N)` batch.
pub fn normalize_2nd_moment(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(&(x.sqr()?.mean_keepdim(1)? + 1e-8)?.sqrt()?)
}

/// A fully connected layer with an equalised learning rate: weights stored as N(0, 1/lr_mul) and
/// scaled at run time by `lr_mul / sqrt(fan_in)`, so Adam's steps are alike for every layer;
/// `lr_mul < 1` slows a layer down (StyleGAN's mapping network uses 0.01).
pub struct EqualLinear {
    weight: Tensor,
    bias: Tensor,
    weight_gain: f64,
    bias_gain: f64,
}

impl EqualLinear {
    /// A `fan_in -> fan_out` layer whose bias starts at `bias_init`.
    pub fn new(
        fan_in: usize,
        fan_out: usize,
        lr_mul: f64,
        bias_init: f64,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let weight = vb.get_with_hints((fan_out, fan_in), "weight", Init::Randn { mean: 0.0, stdev: 1.0 / lr_mul })?;
        let bias = vb.get_with_hints(fan_out, "bias", Init::Const(bias_init / lr_mul))?;
        Ok(Self { weight, bias, weight_gain: lr_mul / (fan_in as f64).sqrt(), bias_gain: lr_mul })
    }

    /// `x W^T * gain + b * lr_mul` for `x: (B, fan_in)`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let w = (&self.weight * self.weight_gain)?;
        condor_core::linear::matmul_t(x, &w)?.broadcast_add(&(&self.bias * self.bias_gain)?)
    }

    /// `forward(x)` through StyleGAN's scaled leaky ReLU, the bias and activation as one op.
    pub fn forward_lrelu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = condor_core::linear::matmul_t(x, &(&self.weight * self.weight_gain)?)?;
        bias_lrelu(&y, Some(&(&self.bias * self.bias_gain)?))
    }
}

/// A square convolution with an equalised learning rate, stride 1 and "same" padding.
pub struct EqualConv {
    weight: Tensor,
    bias: Option<Tensor>,
    gain: f64,
    padding: usize,
}

impl EqualConv {
    /// A `c_in -> c_out` convolution with a `kernel x kernel` window (odd), with or without bias.
    pub fn new(c_in: usize, c_out: usize, kernel: usize, bias: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        let weight =
            vb.get_with_hints((c_out, c_in, kernel, kernel), "weight", Init::Randn { mean: 0.0, stdev: 1.0 })?;
        let bias = if bias { Some(vb.get_with_hints(c_out, "bias", Init::Const(0.0))?) } else { None };
        Ok(Self { weight, bias, gain: 1.0 / ((c_in * kernel * kernel) as f64).sqrt(), padding: kernel / 2 })
    }

    /// Convolves `(B, c_in, H, W)` to `(B, c_out, H, W)`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = conv2d(x, &(&self.weight * self.gain)?, self.padding, 1)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }

    /// `forward(x)` through StyleGAN's scaled leaky ReLU, the bias and activation as one op.
    pub fn forward_lrelu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        bias_lrelu(&conv2d(x, &(&self.weight * self.gain)?, self.padding, 1)?, self.bias.as_ref())
    }
}

/// StyleGAN2's modulated convolution: an affine map of `w` gives a scale per input channel, which
/// modulates the weights; with demodulation each output channel is then divided by the norm of its
/// modulated weights, so unit-variance inputs give unit-variance outputs. Computed as StyleGAN2's
/// non-fused path: scale the input, convolve with the shared weights, scale the output, which equals
/// convolving each sample with its own modulated kernel.
pub struct ModulatedConv {
    weight: Tensor,
    affine: EqualLinear,
    gain: f64,
    padding: usize,
    demodulate: bool,
}

impl ModulatedConv {
    /// A `c_in -> c_out` modulated convolution with a `kernel x kernel` window whose styles come from
    /// `w: (B, w_dim)`. The affine map's bias starts at 1, so styles start near identity.
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        w_dim: usize,
        demodulate: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let weight =
            vb.get_with_hints((c_out, c_in, kernel, kernel), "weight", Init::Randn { mean: 0.0, stdev: 1.0 })?;
        let affine = EqualLinear::new(w_dim, c_in, 1.0, 1.0, vb.pp("affine"))?;
        let gain = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
        Ok(Self { weight, affine, gain, padding: kernel / 2, demodulate })
    }

    /// The per-sample input-channel scales `(B, c_in)` for styles `w`.
    pub fn styles(&self, w: &Tensor) -> candle_core::Result<Tensor> {
        self.affine.forward(w)
    }

    /// Convolves `x: (B, c_in, H, W)` under styles `w: (B, w_dim)`.
    pub fn forward(&self, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_act(x, w, None, None, Activation::Identity, 1.0)
    }

    /// `act(conv(x) + n * strength + bias) * gain` under styles `w`, with the noise map `n` and its
    /// per-channel `strength` (`noise`) and the `bias` optional: the modulation, and the demodulation
    /// with everything after it, are one op each.
    pub fn forward_act(
        &self,
        x: &Tensor,
        w: &Tensor,
        noise: Option<(&Tensor, &Tensor)>,
        bias: Option<&Tensor>,
        act: Activation,
        gain: f64,
    ) -> candle_core::Result<Tensor> {
        let s = self.styles(w)?;
        let weight = (&self.weight * self.gain)?;
        let modulated = channel_affine_act(x, Some(&s), None, None, Activation::Identity, 1.0)?;
        let y = conv2d(&modulated, &weight, self.padding, 1)?;
        // Demodulation: each output channel divided by the norm of its modulated weights, the sum over
        // (c_in, kh, kw) of (weight * s)^2 for each sample and output channel.
        let demodulation = if self.demodulate {
            let squared = weight.sqr()?.sum((2, 3))?; // (c_out, c_in)
            Some((s.sqr()?.matmul(&squared.t()?)? + 1e-8)?.sqrt()?.recip()?) // (B, c_out)
        } else {
            None
        };
        channel_affine_act(&y, demodulation.as_ref(), noise, bias, act, gain)
    }
}

/// 2x2 average pooling (kernel equal to stride, whose gradient candle computes right).
pub fn downsample2x(x: &Tensor) -> candle_core::Result<Tensor> {
    x.avg_pool2d(2)
}
