//! Layers the translation networks share: initialisation, convolutions, instance norm without a
//! learned affine map (CycleGAN's `InstanceNorm2d(affine=False)`).

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};
use condor_core::activation::Activation;
use condor_core::conv::{conv_transpose2d, Conv2d};
use condor_core::norm::instance_norm_act;
use condor_core::Error;

/// The initialisation of both papers' code: weights from N(0, 0.02), biases zero.
pub const WEIGHT_INIT: Init = Init::Randn { mean: 0.0, stdev: 0.02 };

/// A `k` x `k` convolution from `i` to `o` channels, with a zero-initialised bias when `bias` is set.
pub fn conv(
    i: usize,
    o: usize,
    k: usize,
    padding: usize,
    stride: usize,
    bias: bool,
    vb: VarBuilder,
) -> candle_core::Result<Conv2d> {
    let w = vb.get_with_hints((o, i, k, k), "weight", WEIGHT_INIT)?;
    let b = bias.then(|| vb.get_with_hints(o, "bias", Init::Const(0.0))).transpose()?;
    Ok(Conv2d::new(w, b, padding, stride))
}

/// A transposed convolution that doubles the side: kernel `k`, stride 2, padding `k / 2 - 1 + k % 2`
/// and output padding `k % 2` (3x3 as CycleGAN's, 4x4 as DiscoGAN's).
pub struct Up {
    weight: Tensor,
    k: usize,
}

impl Up {
    /// The layer from `i` to `o` channels.
    pub fn new(i: usize, o: usize, k: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self { weight: vb.get_with_hints((i, o, k, k), "weight", WEIGHT_INIT)?, k })
    }

    /// The side-doubled map.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (padding, output_padding) = if self.k % 2 == 1 { (self.k / 2, 1) } else { (self.k / 2 - 1, 0) };
        conv_transpose2d(x, &self.weight, padding, output_padding, 2)
    }
}

/// `act(instance_norm(x))` with unit scale and no shift.
pub fn instance_norm(x: &Tensor, act: Activation) -> candle_core::Result<Tensor> {
    let c = x.dim(1)?;
    let one = Tensor::ones(c, x.dtype(), x.device())?;
    let zero = Tensor::zeros(c, x.dtype(), x.device())?;
    instance_norm_act(x, &one, &zero, 1e-5, act)
}

/// Checks that `x` is a batch of `channels` x `size` x `size` images; the error names `who`.
pub fn check_images(who: &str, x: &Tensor, channels: usize, size: usize) -> condor_core::Result<()> {
    condor_core::check_samples(who, x, &[channels, size, size])
}

/// An error unless `size` is a power of two of at least `min`.
pub fn check_size(who: &str, size: usize, min: usize) -> condor_core::Result<()> {
    if size < min || !size.is_power_of_two() {
        return Err(Error::InvalidInput(format!(
            "{who}: image_size must be a power of two of at least {min}, not {size}"
        )));
    }
    Ok(())
}
