//! CycleGAN's PatchGAN discriminator (Isola et al. 2017; Zhu et al. 2017 appendix 7.2):
//! `C64-C128-C256-C512` 4x4 convolutions with leaky ReLU 0.2 and instance norm (none on the first),
//! the first `layers` of them with stride 2, then a stride-1 4x4 convolution to one logit per patch.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use condor_core::activation::Activation;
use condor_core::conv::Conv2d;
use condor_core::{Conditioning, Error, Network};
use serde::{Deserialize, Serialize};

use crate::layers::{check_images, conv, instance_norm};

/// Configuration of [`PatchDiscriminator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatchDiscriminatorConfig {
    /// Side of the square images (filled from the data).
    pub image_size: usize,
    /// Channels of the images (filled from the data).
    pub channels: usize,
    /// Channels of the first layer (the paper's 64); each stride-2 layer doubles them, up to 8x.
    pub width: usize,
    /// Stride-2 layers. `None` scales the patch with the image as the paper's 3 layers (a 70x70 patch)
    /// do at 256 px: `log2(image_size) - 5`, at least 1 (a 16x16 patch at 32 and 64 px).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<usize>,
}

impl Default for PatchDiscriminatorConfig {
    fn default() -> Self {
        Self { image_size: 256, channels: 3, width: 64, layers: None }
    }
}

impl PatchDiscriminatorConfig {
    /// The number of stride-2 layers this config means.
    pub fn stride_two_layers(&self) -> usize {
        self.layers.unwrap_or_else(|| (self.image_size.max(1).ilog2() as usize).saturating_sub(5).max(1))
    }

    /// The side of one patch a logit reads, in pixels.
    pub fn receptive_field(&self) -> usize {
        // Two stride-1 4x4 layers end the network; each layer before them doubles the field and adds 2.
        (0..self.stride_two_layers()).fold(7, |r, _| 2 * r + 2)
    }
}

/// The discriminator; its output is `(B, 1, h, w)` patch logits.
pub struct PatchDiscriminator {
    config: PatchDiscriminatorConfig,
    /// Each convolution and whether instance norm follows it.
    convs: Vec<(Conv2d, bool)>,
    logit: Conv2d,
}

impl PatchDiscriminator {
    /// Builds the layers through `vb`.
    pub fn new(config: PatchDiscriminatorConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let n = config.stride_two_layers();
        let width = |i: usize| config.width << i.min(3);
        if config.width == 0 || config.channels == 0 {
            return Err(Error::InvalidInput("patch discriminator: width and channels must be non-zero".into()));
        }
        // Each stride-2 layer halves the side, and the two stride-1 4x4 layers take 2 more pixels.
        if config.image_size >> n < 3 {
            return Err(Error::InvalidInput(format!(
                "patch discriminator: {n} stride-2 layers leave no patch of a {} px image",
                config.image_size
            )));
        }
        let mut convs = Vec::new();
        let mut cin = config.channels;
        for i in 0..=n {
            let stride = if i < n { 2 } else { 1 };
            // Instance norm follows every layer but the first; it removes a bias, so those have none.
            let normed = i > 0;
            convs.push((conv(cin, width(i), 4, 1, stride, !normed, vb.pp(format!("conv{i}")))?, normed));
            cin = width(i);
        }
        let logit = conv(cin, 1, 4, 1, 1, true, vb.pp("logit"))?;
        Ok(Self { config, convs, logit })
    }
}

impl Network for PatchDiscriminator {
    fn forward(&self, x: &Tensor, _cond: Option<&Conditioning>, _train: bool) -> condor_core::Result<Tensor> {
        check_images("patch discriminator", x, self.config.channels, self.config.image_size)?;
        let act = Activation::LeakyRelu(0.2);
        let mut h = x.clone();
        for (conv, normed) in &self.convs {
            h = if *normed { instance_norm(&conv.forward(&h)?, act)? } else { conv.forward_act(&h, act)? };
        }
        Ok(self.logit.forward(&h)?)
    }
}
