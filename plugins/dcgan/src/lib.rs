//! # condor-dcgan: the text-conditional DCGAN of Reed et al. (2016)
//!
//! - [`DcganGenerator`]: the sentence embedding is compressed by a fully connected layer and a leaky
//!   ReLU (or, with [`Augmentation`], replaced by StackGAN's conditioning augmentation), joined to the
//!   noise, projected to a 4x4 map and upsampled with batch norm and ReLU to a `tanh` image, by
//!   stride-2 transposed convolutions (DCGAN's way) or, with [`Upsampling::Resize`], by bilinear 2x
//!   upsampling followed by a 3x3 convolution (Odena et al. 2016, which avoids transposed
//!   convolutions' checkerboard).
//! - [`DcganDiscriminator`]: stride-2 convolutions with batch norm (or layer norm, or none:
//!   [`DiscriminatorNorm`]) and leaky ReLU down to 4x4; there the
//!   compressed embedding is replicated spatially and joined to the features, mixed by a 1x1
//!   convolution, and a 4x4 convolution gives the logit. Optionally (`projection`), the projection
//!   discriminator's term of Miyato & Koyama (2018) is added: the inner product of a linear map of the
//!   embedding with the sum-pooled 4x4 image features. Also optionally (`mbstd_group`), a minibatch
//!   standard deviation is appended to the 4x4 features before the text is joined.
//!
//! Both work at 32, 64 or 128 pixels with configurable widths, and unconditionally with `cond_dim = 0`.
//! - [`DcganAutoencoder`]: the discriminator's trunk as an encoder and the generator's transposed
//!   convolutions as a decoder, an energy network for the energy-based GAN.
//!
//! Registered as `"dcgan"` for both kinds, and the autoencoder as the network `"dcgan_autoencoder"`,
//! by [`register`].

use candle_core::{Device, Module, Tensor, D};
use candle_nn::{BatchNormConfig, Init, VarBuilder};
use condor_core::activation::{bias_act, Activation};
pub use condor_core::augmentation::{kl_to_standard_normal, Augmentation};
use condor_core::conv::{conv_transpose2d, Conv2d, ConvTranspose2d};
use condor_core::linear::Linear;
use condor_core::minibatch::{appended_channels, check_settings, minibatch_stddev};
use condor_core::norm::{sample_norm_act, BatchNorm};
use condor_core::resample::BILINEAR_2X_TAPS;
use condor_core::{
    check_conditioning, check_latent, check_samples, join_tiled, Conditioning, ConditioningKind, Discriminator, Error,
    Generator, Registry,
};
use serde::{Deserialize, Serialize};

mod autoencoder;
mod layout_pathway;
pub use autoencoder::{DcganAutoencoder, DcganAutoencoderConfig};
use condor_core::layout::{Layout, LayoutKind};
pub use layout_pathway::LayoutPathway;
use layout_pathway::{DiscriminatorPathway, GeneratorPathway, BOX_DIM};

/// Configuration of [`DcganGenerator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcganGeneratorConfig {
    /// Size of the noise vector.
    pub noise_dim: usize,
    /// Size of the conditioning embedding; 0 for an unconditional generator.
    pub cond_dim: usize,
    /// Size of the compressed embedding joined to the noise (without augmentation).
    pub cond_proj_dim: usize,
    /// Conditioning augmentation, which replaces the plain compression when set.
    pub augmentation: Option<Augmentation>,
    /// Side of the square output: 32, 64 or 128.
    pub image_size: usize,
    /// Channels of the output image.
    pub channels: usize,
    /// Width of the last hidden layer (DCGAN's `ngf`); each coarser layer doubles it.
    pub width: usize,
    /// How each stage doubles the side.
    pub upsample: Upsampling,
    /// Deep text fusion (DF-GAN, Tao et al. 2022): after every batch norm a per-channel scale and
    /// shift made from the text code, so that the text conditions every stage rather than only the
    /// first. Starts as the plain generator (scale 1, shift 0).
    pub fusion: bool,
    /// What and where (Reed et al. 2016): a local pathway that draws inside each sample's box.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<LayoutPathway>,
}

/// How a [`DcganGenerator`] stage doubles the side of its features.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upsampling {
    /// A 4x4 transposed convolution with stride 2 (Radford et al.).
    #[default]
    Transposed,
    /// Bilinear 2x upsampling, then a 3x3 convolution ("resize-convolution", Odena et al. 2016):
    /// every output pixel sees the same number of weights, so there is no checkerboard. About twice
    /// the multiply-adds of `Transposed`.
    Resize,
}

impl Default for DcganGeneratorConfig {
    fn default() -> Self {
        Self {
            noise_dim: 100,
            cond_dim: 0,
            cond_proj_dim: 128,
            augmentation: None,
            image_size: 64,
            channels: 3,
            width: 64,
            upsample: Upsampling::Transposed,
            fusion: false,
            layout: None,
        }
    }
}

/// Configuration of [`DcganDiscriminator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcganDiscriminatorConfig {
    /// Size of the conditioning embedding; 0 for an unconditional discriminator.
    pub cond_dim: usize,
    /// Size of the compressed embedding replicated over the 4x4 features.
    pub cond_proj_dim: usize,
    /// Side of the square input: 32, 64 or 128.
    pub image_size: usize,
    /// Channels of the input image.
    pub channels: usize,
    /// Width of the first layer (DCGAN's `ndf`); each finer-to-coarser step doubles it.
    pub width: usize,
    /// Slope of the leaky ReLUs.
    pub negative_slope: f64,
    /// Add the projection term `<V e, sum_xy features(x)>` (Miyato & Koyama, 2018) to the logit. Reed
    /// et al.'s concatenation alone learns the text-image match slowly; with this term the synthetic
    /// birds' colours follow their captions several times sooner.
    pub projection: bool,
    /// Group size of a minibatch standard deviation appended to the 4x4 features before the text is
    /// joined (0, the default, turns it off), so the discriminator sees how much a batch varies.
    pub mbstd_group: usize,
    /// Channel slices the minibatch standard deviation averages over, one statistic each.
    pub mbstd_features: usize,
    /// How the hidden features are normalised.
    pub norm: DiscriminatorNorm,
    /// What and where (Reed et al. 2016): a local pathway that scores the inside of each sample's box.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<LayoutPathway>,
}

/// How a [`DcganDiscriminator`] normalises its hidden features (all but the first layer's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscriminatorNorm {
    /// Batch norm (Radford et al.). Real and generated images go through the discriminator in separate
    /// batches, so each is normalised by its own statistics: a difference shared by every generated
    /// image (a tint, a speckle) is partly normalised away.
    #[default]
    Batch,
    /// Layer norm: each image's features over channels and positions, with a learned scale and shift
    /// per channel (the batch-norm replacement of Gulrajani et al. 2017). No image depends on the others.
    Layer,
    /// No normalisation; the convolutions get biases instead.
    None,
}

impl Default for DcganDiscriminatorConfig {
    fn default() -> Self {
        Self {
            cond_dim: 0,
            cond_proj_dim: 128,
            image_size: 64,
            channels: 3,
            width: 64,
            negative_slope: 0.2,
            projection: false,
            mbstd_group: 0,
            mbstd_features: 1,
            norm: DiscriminatorNorm::Batch,
            layout: None,
        }
    }
}

/// Number of stride-2 stages between 4x4 and `size`, or an error for unsupported sizes.
fn stages(size: usize, who: &str) -> condor_core::Result<usize> {
    match size {
        32 => Ok(3),
        64 => Ok(4),
        128 => Ok(5),
        _ => Err(Error::InvalidInput(format!("{who}: image_size must be 32, 64 or 128, not {size}"))),
    }
}

/// Kernel 4, stride 2, padding 1: doubles or halves the side.
const HALVE_OR_DOUBLE: Step = Step { padding: 1, stride: 2 };

/// Stride 1, no padding: the 1x1 mixing and the 4x4 logit convolutions.
const VALID: Step = Step { padding: 0, stride: 1 };

/// A convolution's padding and stride.
#[derive(Clone, Copy)]
struct Step {
    padding: usize,
    stride: usize,
}

/// DCGAN's initialisation (Radford et al.): weights from N(0, 0.02), biases zero, batch-norm scales
/// from N(1, 0.02).
const WEIGHT_INIT: Init = Init::Randn { mean: 0.0, stdev: 0.02 };

/// A zero-initialised bias of `o` entries when `bias` is set.
fn optional_bias(o: usize, bias: bool, vb: &VarBuilder) -> candle_core::Result<Option<Tensor>> {
    bias.then(|| vb.get_with_hints(o, "bias", Init::Const(0.0))).transpose()
}

/// A normalisation's learned per-channel scale, from N(1, 0.02), and shift, zero (DCGAN's init).
fn scale_and_shift(n: usize, vb: &VarBuilder) -> candle_core::Result<(Tensor, Tensor)> {
    let scale = vb.get_with_hints(n, "weight", Init::Randn { mean: 1.0, stdev: 0.02 })?;
    Ok((scale, vb.get_with_hints(n, "bias", Init::Const(0.0))?))
}

fn linear(i: usize, o: usize, bias: bool, vb: VarBuilder) -> candle_core::Result<Linear> {
    let w = vb.get_with_hints((o, i), "weight", WEIGHT_INIT)?;
    let b = optional_bias(o, bias, &vb)?;
    Ok(Linear::new(w, b))
}

fn conv(i: usize, o: usize, k: usize, step: Step, bias: bool, vb: VarBuilder) -> candle_core::Result<Conv2d> {
    let w = vb.get_with_hints((o, i, k, k), "weight", WEIGHT_INIT)?;
    let b = optional_bias(o, bias, &vb)?;
    Ok(Conv2d::new(w, b, step.padding, step.stride))
}

/// One generator stage's side-doubling layer.
enum Up {
    Transposed(ConvTranspose2d),
    /// A resize-convolution: the 3x3 kernel `(out, in, 3, 3)`, the bias, and the constant
    /// [`bilinear_tap_map`] that [`resize_kernel`] multiplies the kernel with, built once here.
    Resize {
        weight: Tensor,
        bias: Option<Tensor>,
        taps: Tensor,
    },
}

impl Up {
    fn new(kind: Upsampling, i: usize, o: usize, bias: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        let b = optional_bias(o, bias, &vb)?;
        Ok(match kind {
            Upsampling::Transposed => {
                let w = vb.get_with_hints((i, o, 4, 4), "weight", WEIGHT_INIT)?;
                Up::Transposed(ConvTranspose2d::new(w, b, HALVE_OR_DOUBLE.padding, HALVE_OR_DOUBLE.stride))
            }
            Upsampling::Resize => Up::resize(vb.get_with_hints((o, i, 3, 3), "weight", WEIGHT_INIT)?, b)?,
        })
    }

    /// A resize-convolution with the 3x3 kernel `weight` `(out, in, 3, 3)` and `bias`.
    fn resize(weight: Tensor, bias: Option<Tensor>) -> candle_core::Result<Self> {
        let taps = bilinear_tap_map(weight.device())?.to_dtype(weight.dtype())?;
        Ok(Up::Resize { weight, bias, taps })
    }
}

impl Up {
    /// `act(up(x) + bias)`.
    fn forward_act(&self, x: &Tensor, act: Activation) -> candle_core::Result<Tensor> {
        match self {
            Up::Transposed(conv) => conv.forward_act(x, act),
            Up::Resize { weight, bias, taps } => {
                bias_act(&conv_transpose2d(x, &resize_kernel(weight, taps)?, 2, 0, 2)?, bias.as_ref(), act)
            }
        }
    }
}

/// The 6x6 stride-2 transposed-convolution kernel `(in, out, 6, 6)` that does bilinear 2x upsampling
/// and then the 3x3 convolution `w` `(out, in, 3, 3)` in one operation: `w` `(out * in, 9)` times
/// [`bilinear_tap_map`]. Applied with padding 2 it equals
/// `conv2d(condor_core::resample::upsample2x(x), w, padding 1)` except on the two outermost rows and
/// columns, where it reads zeros beyond the image instead of repeating its edge.
///
/// One transposed convolution instead of an upsampling and a convolution: candle's CPU backward of a
/// 3x3 convolution over the upsampled features made a training step of the 32x32 birds model take
/// twice as long (1.4 s against 0.7 s).
fn resize_kernel(w: &Tensor, taps: &Tensor) -> candle_core::Result<Tensor> {
    let (o, i, _, _) = w.dims4()?;
    w.reshape((o * i, 9))?.matmul(taps)?.reshape((o, i, 6, 6))?.transpose(0, 1)?.contiguous()
}

/// The `(9, 36)` float32 map from a 3x3 kernel to the 6x6 kernel of [`resize_kernel`]: row
/// `(q_y, q_x)`, column `(t_y, t_x)` holds `b[t_y + q_y - 2] b[t_x + q_x - 2]`, `b` the bilinear taps
/// [`BILINEAR_2X_TAPS`] (zero outside 0..4).
fn bilinear_tap_map(device: &Device) -> candle_core::Result<Tensor> {
    let tap =
        |t: usize, q: usize| (t + q).checked_sub(2).and_then(|j| BILINEAR_2X_TAPS.get(j)).map_or(0.0, |&b| b as f32);
    let mut map = Vec::with_capacity(9 * 36);
    for (qy, qx) in (0..3).flat_map(|y| (0..3).map(move |x| (y, x))) {
        map.extend((0..6).flat_map(|ty| (0..6).map(move |tx| tap(ty, qy) * tap(tx, qx))));
    }
    Tensor::from_vec(map, (9, 36), device)
}

fn batch_norm(n: usize, vb: VarBuilder) -> candle_core::Result<BatchNorm> {
    let (weight, bias) = scale_and_shift(n, &vb)?;
    let mean = vb.get_with_hints(n, "running_mean", Init::Const(0.0))?;
    let var = vb.get_with_hints(n, "running_var", Init::Const(1.0))?;
    BatchNorm::new(weight, bias, mean, var, BatchNormConfig::default().eps)
}

/// Variance floor of [`Norm::Layer`], as batch norm's.
const LAYER_NORM_EPS: f64 = 1e-5;

/// A discriminator layer's normalisation, as [`DiscriminatorNorm`] chooses.
enum Norm {
    Batch(BatchNorm),
    /// Per-channel scale and shift `(C,)` after normalising each image over `(C, H, W)`.
    Layer {
        weight: Tensor,
        bias: Tensor,
    },
    None,
}

impl Norm {
    /// The normalisation of `n` channels named `name` (only batch and layer norm have parameters).
    fn new(kind: DiscriminatorNorm, n: usize, name: &str, vb: &VarBuilder) -> candle_core::Result<Self> {
        Ok(match kind {
            DiscriminatorNorm::Batch => Norm::Batch(batch_norm(n, vb.pp(format!("{name}_bn")))?),
            DiscriminatorNorm::Layer => {
                let (weight, bias) = scale_and_shift(n, &vb.pp(format!("{name}_ln")))?;
                Norm::Layer { weight, bias }
            }
            DiscriminatorNorm::None => Norm::None,
        })
    }

    /// Whether the convolution before it needs a bias of its own.
    fn needs_conv_bias(kind: DiscriminatorNorm) -> bool {
        kind == DiscriminatorNorm::None
    }

    /// `act(norm(x))`.
    fn forward_act(&self, x: &Tensor, train: bool, act: Activation) -> candle_core::Result<Tensor> {
        match self {
            Norm::Batch(bn) => bn.forward_act(x, train, act),
            Norm::Layer { weight, bias } => sample_norm_act(x, weight, bias, LAYER_NORM_EPS, act),
            Norm::None => act.forward(x),
        }
    }

    /// `act(norm(conv(x)))`; without a normalisation the convolution's bias and the activation are one op.
    fn conv_act(&self, conv: &Conv2d, x: &Tensor, train: bool, act: Activation) -> candle_core::Result<Tensor> {
        match self {
            Norm::None => conv.forward_act(x, act),
            _ => self.forward_act(&conv.forward(x)?, train, act),
        }
    }
}

/// The discriminator's trunk: the first stride-2 convolution `down0` (with a bias, no normalisation),
/// then `down1..down{n-1}` from `width << (i - 1)` to `width << i` channels, each with its
/// normalisation, down to 4x4.
struct Trunk {
    first: Conv2d,
    downs: Vec<(Conv2d, Norm)>,
}

impl Trunk {
    /// The trunk of `n` stages from `channels` input channels, its layers named under `vb`.
    fn new(
        channels: usize,
        width: usize,
        n: usize,
        norm: DiscriminatorNorm,
        vb: &VarBuilder,
    ) -> candle_core::Result<Self> {
        let first = conv(channels, width, 4, HALVE_OR_DOUBLE, true, vb.pp("down0"))?;
        let conv_bias = Norm::needs_conv_bias(norm);
        let downs = (1..n)
            .map(|i| {
                let (cin, cout) = (width << (i - 1), width << i);
                let conv = conv(cin, cout, 4, HALVE_OR_DOUBLE, conv_bias, vb.pp(format!("down{i}")))?;
                Ok((conv, Norm::new(norm, cout, &format!("down{i}"), vb)?))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { first, downs })
    }

    /// The feature maps of `x` after each stage's `act`, from the first convolution's to the 4x4 ones.
    fn forward(&self, x: &Tensor, train: bool, act: Activation) -> candle_core::Result<Vec<Tensor>> {
        let mut stages = vec![self.first.forward_act(x, act)?];
        for (conv, norm) in &self.downs {
            let h = norm.conv_act(conv, &stages[stages.len() - 1], train, act)?;
            stages.push(h);
        }
        Ok(stages)
    }
}

/// A deep-fusion map `code -> (scale, shift)` for `channels` channels, all zero at first (DF-GAN's
/// initialisation: the fused generator starts as the plain one).
fn fusion_map(code: usize, channels: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let zero = candle_nn::Init::Const(0.0);
    let weight = vb.get_with_hints((2 * channels, code), "weight", zero)?;
    let bias = vb.get_with_hints(2 * channels, "bias", zero)?;
    Ok(Linear::new(weight, Some(bias)))
}

/// How the generator reads the embedding.
enum TextCode {
    /// `leaky_relu(W e + b)`.
    Compressed(Linear),
    /// `(mu, log sigma) = W e + b`, then `mu + sigma * eps` with `eps` from the latent vector.
    Augmented(Linear, Augmentation),
}

/// The text-conditional DCGAN generator. Its latent vector is the noise followed, with conditioning
/// augmentation, by the augmentation's standard normal draw (`noise_dim + augmentation.dim` in all),
/// so one latent vector fixes one image.
pub struct DcganGenerator {
    config: DcganGeneratorConfig,
    text: Option<TextCode>,
    project: Linear,
    project_bn: BatchNorm,
    ups: Vec<(Up, BatchNorm)>,
    /// With deep fusion, one `code -> (scale, shift)` map per batch norm (the projection's first).
    fusion: Vec<Linear>,
    to_rgb: Up,
    /// The local pathway, and the stage after which its features join the global ones.
    local: Option<(GeneratorPathway, usize)>,
}

impl DcganGenerator {
    /// Builds the generator's layers through `vb`.
    pub fn new(config: DcganGeneratorConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let n = stages(config.image_size, "dcgan generator")?;
        if config.noise_dim == 0 || config.width == 0 || config.channels == 0 {
            return Err(Error::InvalidInput("dcgan generator: noise_dim, width and channels must be non-zero".into()));
        }
        let (text, code_dim) = match (config.cond_dim, config.augmentation) {
            (0, _) => (None, 0),
            (e, Some(a)) => (Some(TextCode::Augmented(linear(e, 2 * a.dim, true, vb.pp("ca"))?, a)), a.dim),
            (e, None) => (
                Some(TextCode::Compressed(linear(e, config.cond_proj_dim, true, vb.pp("text"))?)),
                config.cond_proj_dim,
            ),
        };
        let top = config.width << (n - 1);
        if let Some(l) = &config.layout {
            l.check("dcgan generator", config.image_size, config.cond_dim)?;
        }
        // The local features join after the stage whose side is the pathway's grid (4 << (j + 1)).
        let join = config.layout.as_ref().map(|l| (l.grid / 4).trailing_zeros() as usize - 1);
        let extra = |stage: usize| match (&config.layout, join) {
            (Some(l), Some(j)) if j + 1 == stage => l.channels,
            _ => 0,
        };
        let box_dim = if config.layout.is_some() { BOX_DIM } else { 0 };
        let project = linear(config.noise_dim + code_dim + box_dim, top * 16, false, vb.pp("project"))?;
        let project_bn = batch_norm(top, vb.pp("project_bn"))?;
        let mut ups = Vec::new();
        for i in 0..n - 1 {
            let (cin, cout) = ((top >> i) + extra(i), top >> (i + 1));
            let conv = Up::new(config.upsample, cin, cout, false, vb.pp(format!("up{i}")))?;
            ups.push((conv, batch_norm(cout, vb.pp(format!("up{i}_bn")))?));
        }
        let to_rgb = Up::new(config.upsample, config.width + extra(n - 1), config.channels, true, vb.pp("to_rgb"))?;
        let local = match (&config.layout, join) {
            (Some(l), Some(j)) => Some((GeneratorPathway::new(l.clone(), top, code_dim, vb.pp("local"))?, j)),
            _ => None,
        };
        let fusion = match (config.fusion, code_dim) {
            (false, _) => Vec::new(),
            (true, 0) => {
                return Err(Error::InvalidInput("dcgan generator: fusion needs a text code (cond_dim > 0)".into()))
            }
            (true, code) => (0..n)
                .map(|i| fusion_map(code, top >> i, vb.pp(format!("fusion{i}"))))
                .collect::<candle_core::Result<_>>()?,
        };
        Ok(Self { config, text, project, project_bn, ups, fusion, to_rgb, local })
    }

    fn code_dim(&self) -> usize {
        match &self.text {
            Some(TextCode::Augmented(_, a)) => a.dim,
            _ => 0,
        }
    }

    /// `relu(bn(x))`, with deep fusion `relu(bn(x) (1 + scale) + shift)` where `(scale, shift)` is
    /// batch norm `i`'s map of the text code.
    fn norm_relu(
        &self,
        i: usize,
        bn: &BatchNorm,
        x: &Tensor,
        code: Option<&Tensor>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let (Some(map), Some(code)) = (self.fusion.get(i), code) else {
            return bn.forward_act(x, train, Activation::Relu);
        };
        let c = x.dims()[1];
        let affine = map.forward(code)?.reshape((x.dims()[0], 2 * c, 1, 1))?;
        let scale = (affine.narrow(1, 0, c)? + 1.0)?;
        let shift = affine.narrow(1, c, c)?;
        bn.forward_act(x, train, Activation::Identity)?.broadcast_mul(&scale)?.broadcast_add(&shift)?.relu()
    }

    /// `(mu, log sigma)` of the conditioning augmentation for `embedding`, when it is on.
    pub fn augmentation_stats(&self, embedding: &Tensor) -> condor_core::Result<Option<(Tensor, Tensor)>> {
        match &self.text {
            Some(TextCode::Augmented(linear, a)) => Ok(Some(a.split(&linear.forward(embedding)?)?)),
            _ => Ok(None),
        }
    }

    /// The text code joined to the noise: the compressed embedding or the augmented sample.
    fn text_code(&self, cond: &Conditioning, eps: &Tensor) -> condor_core::Result<Tensor> {
        let e = cond.embedding.to_dtype(eps.dtype())?;
        Ok(match &self.text {
            Some(TextCode::Compressed(linear)) => linear.forward_act(&e, Activation::LeakyRelu(0.2))?,
            Some(TextCode::Augmented(..)) => {
                let (mu, log_sigma) = self.augmentation_stats(&e)?.expect("augmented");
                condor_core::augmentation::reparameterise(&mu, &log_sigma, eps)?
            }
            None => unreachable!("text_code is only called for conditional generators"),
        })
    }
}

impl Generator for DcganGenerator {
    fn latent_dim(&self) -> usize {
        self.config.noise_dim + self.code_dim()
    }
    fn sample_shape(&self) -> Vec<usize> {
        vec![self.config.channels, self.config.image_size, self.config.image_size]
    }
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::vector_or_none(self.config.cond_dim)
    }
    fn forward(&self, z: &Tensor, cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        check_latent("dcgan generator", z, self.latent_dim())?;
        let b = z.dims()[0];
        check_conditioning(self.conditioning(), cond, b)?;
        self.layout().check("this dcgan generator", cond, b)?;
        let layout = cond.and_then(|c| c.layout.as_ref()).filter(|_| self.local.is_some());
        let noise = z.narrow(1, 0, self.config.noise_dim)?;
        let code = match cond.filter(|_| self.text.is_some()) {
            Some(c) => Some(self.text_code(c, &z.narrow(1, self.config.noise_dim, self.code_dim())?)?),
            None => None,
        };
        let mut inputs = vec![noise];
        inputs.extend(code.clone());
        if let Some(layout) = layout {
            inputs.push(layout.boxes.to_dtype(z.dtype())?);
        }
        let top = self.config.width << self.ups.len();
        let mut x = self.project.forward(&Tensor::cat(&inputs, D::Minus1)?)?.reshape((b, top, 4, 4))?;
        x = self.norm_relu(0, &self.project_bn, &x, code.as_ref(), train)?;
        let local = match (&self.local, layout, &code) {
            (Some((pathway, join)), Some(layout), Some(code)) => {
                Some((pathway.forward(&x, code, layout, train)?, *join))
            }
            _ => None,
        };
        for (i, (conv, bn)) in self.ups.iter().enumerate() {
            x = self.norm_relu(i + 1, bn, &conv.forward_act(&x, Activation::Identity)?, code.as_ref(), train)?;
            if let Some((features, _)) = local.as_ref().filter(|(_, join)| *join == i) {
                x = Tensor::cat(&[&x, features], 1)?;
            }
        }
        Ok(self.to_rgb.forward_act(&x, Activation::Tanh)?)
    }
    fn layout(&self) -> LayoutKind {
        self.config.layout.as_ref().map_or(LayoutKind::None, LayoutPathway::kind)
    }
    fn augmentation_draw(&self) -> Option<std::ops::Range<usize>> {
        let start = self.config.noise_dim;
        matches!(self.text, Some(TextCode::Augmented(..))).then(|| start..start + self.code_dim())
    }
    fn regularization(&self, cond: Option<&Conditioning>) -> condor_core::Result<Option<Tensor>> {
        let (Some(TextCode::Augmented(_, a)), Some(c)) = (&self.text, cond) else { return Ok(None) };
        let (mu, log_sigma) = self.augmentation_stats(&c.embedding)?.expect("augmented");
        Ok(Some(a.weighted_kl(&mu, &log_sigma)?))
    }
}

/// The text-conditional DCGAN discriminator.
pub struct DcganDiscriminator {
    config: DcganDiscriminatorConfig,
    trunk: Trunk,
    text: Option<(Linear, Conv2d, Norm)>,
    projection: Option<Linear>,
    logit: Conv2d,
    /// The local pathway, and the index of the feature map it reads (0: after the first convolution).
    local: Option<(DiscriminatorPathway, usize)>,
}

impl DcganDiscriminator {
    /// Builds the discriminator's layers through `vb`.
    pub fn new(config: DcganDiscriminatorConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let n = stages(config.image_size, "dcgan discriminator")?;
        if config.width == 0 || config.channels == 0 {
            return Err(Error::InvalidInput("dcgan discriminator: width and channels must be non-zero".into()));
        }
        let top = config.width << (n - 1);
        check_settings("dcgan discriminator", config.mbstd_group, config.mbstd_features, top)?;
        if let Some(l) = &config.layout {
            l.check("dcgan discriminator", config.image_size, config.cond_dim)?;
        }
        let box_dim = if config.layout.is_some() { BOX_DIM } else { 0 };
        let trunk = Trunk::new(config.channels, config.width, n, config.norm, &vb)?;
        let conv_bias = Norm::needs_conv_bias(config.norm);
        let stats = appended_channels(config.mbstd_group, config.mbstd_features);
        let text = match config.cond_dim {
            0 => None,
            e => {
                let p = config.cond_proj_dim;
                let proj = linear(e, p, true, vb.pp("text"))?;
                let mix = conv(top + stats + p + box_dim, top, 1, VALID, conv_bias, vb.pp("joint"))?;
                Some((proj, mix, Norm::new(config.norm, top, "joint", &vb)?))
            }
        };
        let projection = match (config.cond_dim, config.projection) {
            (e, true) if e > 0 => Some(linear(e, top, false, vb.pp("projection"))?),
            _ => None,
        };
        let logit_in = if text.is_some() { top } else { top + stats };
        let logit = conv(logit_in, 1, 4, VALID, true, vb.pp("logit"))?;
        let local = match &config.layout {
            Some(l) => {
                // Feature map k has side image / 2^(k + 1) and width << k channels.
                let k = (config.image_size / l.grid).trailing_zeros() as usize - 1;
                let pathway = DiscriminatorPathway::new(
                    l.clone(),
                    config.width << k,
                    config.cond_dim,
                    config.norm,
                    vb.pp("local"),
                )?;
                Some((pathway, k))
            }
            None => None,
        };
        Ok(Self { config, trunk, text, projection, logit, local })
    }
}

impl Discriminator for DcganDiscriminator {
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::vector_or_none(self.config.cond_dim)
    }
    fn sample_shape(&self) -> Option<Vec<usize>> {
        let (c, s) = (self.config.channels, self.config.image_size);
        Some(vec![c, s, s])
    }
    fn layout(&self) -> LayoutKind {
        self.config.layout.as_ref().map_or(LayoutKind::None, LayoutPathway::kind)
    }
    fn forward(&self, x: &Tensor, cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        Ok(self.forward_each(x, &[cond], train)?.remove(0))
    }

    fn forward_each(
        &self,
        x: &Tensor,
        conds: &[Option<&Conditioning>],
        train: bool,
    ) -> condor_core::Result<Vec<Tensor>> {
        self.check_inputs(x, conds)?;
        let features = self.features(x, train)?;
        conds.iter().map(|cond| self.head(&features, *cond, train)).collect()
    }

    /// The hidden features are the outputs of the normalised stages (all but the first convolution's),
    /// the layers whose means DiscoGAN's feature matching compares.
    fn forward_with_features(
        &self,
        x: &Tensor,
        cond: Option<&Conditioning>,
        train: bool,
    ) -> condor_core::Result<(Tensor, Option<Vec<Tensor>>)> {
        self.check_inputs(x, &[cond])?;
        let features = self.features(x, train)?;
        let logits = self.head(&features, cond, train)?;
        Ok((logits, Some(features.stages[1..].to_vec())))
    }
}

impl DcganDiscriminator {
    /// Checks the images' shape and each conditioning against what the discriminator reads.
    fn check_inputs(&self, x: &Tensor, conds: &[Option<&Conditioning>]) -> condor_core::Result<()> {
        let (c, s) = (self.config.channels, self.config.image_size);
        check_samples("dcgan discriminator", x, &[c, s, s])?;
        let kind = self.layout();
        for cond in conds {
            check_conditioning(self.conditioning(), *cond, x.dims()[0])?;
            kind.check("this dcgan discriminator", *cond, x.dims()[0])?;
        }
        Ok(())
    }

    /// The image features: at 4x4, before and after the minibatch standard deviation is appended, and
    /// at the local pathway's side.
    fn features(&self, x: &Tensor, train: bool) -> condor_core::Result<Features> {
        let act = Activation::LeakyRelu(self.config.negative_slope);
        let stages = self.trunk.forward(x, train, act)?;
        let local = self.local.as_ref().map(|(_, k)| stages[*k].clone());
        let top = stages[stages.len() - 1].clone();
        let with_stats = minibatch_stddev(&top, self.config.mbstd_group, self.config.mbstd_features)?;
        Ok(Features { top, with_stats, local, stages })
    }

    /// The logits for the image features under `cond`.
    fn head(&self, features: &Features, cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        let b = features.top.dims()[0];
        let slope = self.config.negative_slope;
        let mut h = features.with_stats.clone();
        let mut extra = Vec::new();
        let layout: Option<&Layout> = cond.and_then(|c| c.layout.as_ref()).filter(|_| self.local.is_some());
        if let (Some((proj, mix, norm)), Some(cond)) = (&self.text, cond) {
            let e = cond.embedding.to_dtype(h.dtype())?;
            if let Some(v) = &self.projection {
                extra.push((v.forward(&e)? * features.top.sum((2, 3))?)?.sum(1)?);
            }
            let mut code = proj.forward_act(&e, Activation::LeakyRelu(slope))?;
            if let Some(layout) = layout {
                code = Tensor::cat(&[&code, &layout.boxes.to_dtype(code.dtype())?], 1)?;
            }
            h = norm.conv_act(mix, &join_tiled(&h, &code)?, train, Activation::LeakyRelu(slope))?;
            if let (Some((pathway, _)), Some(layout), Some(local)) = (&self.local, layout, &features.local) {
                extra.push(pathway.forward(local, &e, layout, slope, train)?);
            }
        }
        let mut logit = self.logit.forward(&h)?.reshape(b)?;
        for term in extra {
            logit = (logit + term)?;
        }
        Ok(logit)
    }
}

/// The discriminator's image features (see [`DcganDiscriminator::features`]).
struct Features {
    /// At 4x4.
    top: Tensor,
    /// At 4x4 with the minibatch standard deviation appended.
    with_stats: Tensor,
    /// At the local pathway's side, when there is one.
    local: Option<Tensor>,
    /// After each stage of the trunk, the first convolution's first.
    stages: Vec<Tensor>,
}

/// Registers `"dcgan"` as a generator and as a discriminator, and the convolutional autoencoder (an
/// energy network for the `energy_based` recipe) as the network `"dcgan_autoencoder"`.
pub fn register(registry: &mut Registry) -> condor_core::Result<()> {
    registry.register_generator("dcgan", DcganGenerator::new)?;
    registry.register_discriminator("dcgan", DcganDiscriminator::new)?;
    registry.register_network("dcgan_autoencoder", DcganAutoencoder::new)
}

#[cfg(test)]
mod tests;
