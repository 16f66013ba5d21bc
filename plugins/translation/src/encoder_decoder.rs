//! DiscoGAN's generator (Kim et al. 2017, section 4): an encoder of 4x4 stride-2 convolutions with
//! leaky ReLU 0.2 (batch norm on all but the first) down to 4x4, and a decoder of 4x4 stride-2
//! transposed convolutions with batch norm and ReLU back to the image, which a `tanh` ends.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use condor_core::activation::Activation;
use condor_core::conv::Conv2d;
use condor_core::norm::{batch_norm, BatchNorm};
use condor_core::{Conditioning, Error, Network};
use serde::{Deserialize, Serialize};

use crate::layers::{check_images, check_size, conv, Up};

/// Configuration of [`EncoderDecoder`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderDecoderConfig {
    /// Side of the square images (filled from the data).
    pub image_size: usize,
    /// Channels of the images, in and out (filled from the data).
    pub channels: usize,
    /// Channels of the first layer (the paper's 64); each stride-2 layer doubles them.
    pub width: usize,
}

impl Default for EncoderDecoderConfig {
    fn default() -> Self {
        Self { image_size: 64, channels: 3, width: 64 }
    }
}

/// The generator.
pub struct EncoderDecoder {
    config: EncoderDecoderConfig,
    first: Conv2d,
    downs: Vec<(Conv2d, BatchNorm)>,
    ups: Vec<(Up, BatchNorm)>,
    last: Up,
}

impl EncoderDecoder {
    /// Builds the layers through `vb`: `log2(image_size) - 2` layers each way.
    pub fn new(config: EncoderDecoderConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        const WHO: &str = "encoder-decoder";
        check_size(WHO, config.image_size, 8)?;
        if config.width == 0 || config.channels == 0 {
            return Err(Error::InvalidInput(format!("{WHO}: width and channels must be non-zero")));
        }
        let n = config.image_size.ilog2() as usize - 2;
        let w = config.width;
        let first = conv(config.channels, w, 4, 1, 2, true, vb.pp("down0"))?;
        let mut downs = Vec::new();
        for i in 1..n {
            let vb = vb.pp(format!("down{i}"));
            downs.push((
                conv(w << (i - 1), w << i, 4, 1, 2, false, vb.clone())?,
                batch_norm(w << i, 1e-5, vb.pp("bn"))?,
            ));
        }
        let mut ups = Vec::new();
        for i in (1..n).rev() {
            let vb = vb.pp(format!("up{i}"));
            ups.push((Up::new(w << i, w << (i - 1), 4, vb.clone())?, batch_norm(w << (i - 1), 1e-5, vb.pp("bn"))?));
        }
        let last = Up::new(w, config.channels, 4, vb.pp("last"))?;
        Ok(Self { config, first, downs, ups, last })
    }
}

impl Network for EncoderDecoder {
    fn forward(&self, x: &Tensor, _cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        check_images("encoder-decoder", x, self.config.channels, self.config.image_size)?;
        let mut h = self.first.forward_act(x, Activation::LeakyRelu(0.2))?;
        for (conv, bn) in &self.downs {
            h = bn.forward_act(&conv.forward(&h)?, train, Activation::LeakyRelu(0.2))?;
        }
        for (up, bn) in &self.ups {
            h = bn.forward_act(&up.forward(&h)?, train, Activation::Relu)?;
        }
        Ok(self.last.forward(&h)?.tanh()?)
    }
}
