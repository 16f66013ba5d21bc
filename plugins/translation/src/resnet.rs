//! CycleGAN's ResNet generator (Zhu et al. 2017, appendix 7.2; Johnson et al. 2016):
//! `c7s1-w, d2w, d4w, R4w x blocks, u2w, uw, c7s1-3`, with reflection padding before every
//! unstrided convolution and instance norm after every convolution but the last.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use condor_core::activation::Activation;
use condor_core::conv::Conv2d;
use condor_core::pad::reflect_pad2d;
use condor_core::{Conditioning, Error, Network};
use serde::{Deserialize, Serialize};

use crate::layers::{check_images, check_size, conv, instance_norm, Up};

/// Configuration of [`ResnetTranslator`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResnetTranslatorConfig {
    /// Side of the square images (filled from the data).
    pub image_size: usize,
    /// Channels of the images, in and out (filled from the data).
    pub channels: usize,
    /// Channels of the first layer (the paper's 64); each downsampling doubles them.
    pub width: usize,
    /// Stride-2 downsamplings before the residual blocks (and upsamplings after them).
    pub downsamplings: usize,
    /// Residual blocks: the paper's 6 for 128 px images, 9 for 256 px.
    pub blocks: usize,
}

impl Default for ResnetTranslatorConfig {
    fn default() -> Self {
        Self { image_size: 128, channels: 3, width: 64, downsamplings: 2, blocks: 6 }
    }
}

/// A residual block: `x + IN(conv(pad(ReLU(IN(conv(pad(x)))))))`.
struct Block {
    first: Conv2d,
    second: Conv2d,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = instance_norm(&self.first.forward(&reflect_pad2d(x, 1)?)?, Activation::Relu)?;
        let h = instance_norm(&self.second.forward(&reflect_pad2d(&h, 1)?)?, Activation::Identity)?;
        x + h
    }
}

/// The generator. Convolutions followed by instance norm have no bias (the norm removes it).
pub struct ResnetTranslator {
    config: ResnetTranslatorConfig,
    first: Conv2d,
    downs: Vec<Conv2d>,
    blocks: Vec<Block>,
    ups: Vec<Up>,
    last: Conv2d,
}

impl ResnetTranslator {
    /// Builds the layers through `vb`.
    pub fn new(config: ResnetTranslatorConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        const WHO: &str = "resnet translator";
        let (w, d) = (config.width, config.downsamplings);
        if w == 0 || config.channels == 0 {
            return Err(Error::InvalidInput(format!("{WHO}: width and channels must be non-zero")));
        }
        // The 7x7 convolutions' reflection padding of 3 needs a side of at least 4 at the bottom.
        check_size(WHO, config.image_size, 8usize << d)?;
        let first = conv(config.channels, w, 7, 0, 1, false, vb.pp("first"))?;
        let downs = (0..d)
            .map(|i| conv(w << i, w << (i + 1), 3, 1, 2, false, vb.pp(format!("down{i}"))))
            .collect::<candle_core::Result<_>>()?;
        let top = w << d;
        let blocks = (0..config.blocks)
            .map(|i| {
                let vb = vb.pp(format!("block{i}"));
                Ok(Block {
                    first: conv(top, top, 3, 0, 1, false, vb.pp("first"))?,
                    second: conv(top, top, 3, 0, 1, false, vb.pp("second"))?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        let ups = (0..d)
            .map(|i| Up::new(top >> i, top >> (i + 1), 3, vb.pp(format!("up{i}"))))
            .collect::<candle_core::Result<_>>()?;
        let last = conv(w, config.channels, 7, 0, 1, true, vb.pp("last"))?;
        Ok(Self { config, first, downs, blocks, ups, last })
    }
}

impl Network for ResnetTranslator {
    fn forward(&self, x: &Tensor, _cond: Option<&Conditioning>, _train: bool) -> condor_core::Result<Tensor> {
        check_images("resnet translator", x, self.config.channels, self.config.image_size)?;
        let mut h = instance_norm(&self.first.forward(&reflect_pad2d(x, 3)?)?, Activation::Relu)?;
        for down in &self.downs {
            h = instance_norm(&down.forward(&h)?, Activation::Relu)?;
        }
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        for up in &self.ups {
            h = instance_norm(&up.forward(&h)?, Activation::Relu)?;
        }
        Ok(self.last.forward_act(&reflect_pad2d(&h, 3)?, Activation::Tanh)?)
    }
}
