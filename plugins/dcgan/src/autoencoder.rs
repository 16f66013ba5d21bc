//! A convolutional autoencoder as an energy network, the discriminator of the energy-based GAN (Zhao,
//! Mathieu and LeCun 2016, whose image discriminators are convolutional encoder-decoders). The encoder
//! is [`DcganDiscriminator`](crate::DcganDiscriminator)'s trunk of stride-2 convolutions down to 4x4;
//! the decoder mirrors it with [`DcganGenerator`](crate::DcganGenerator)'s transposed convolutions. At
//! the same `width` it is the discriminator's size twice over, so an EBGAN can be compared with a
//! plain GAN at a like discriminator size.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use condor_core::activation::Activation;
use condor_core::norm::BatchNorm;
use condor_core::{check_samples, Conditioning, Error};
use serde::{Deserialize, Serialize};

use crate::{batch_norm, stages, DiscriminatorNorm, Trunk, Up, Upsampling};

/// Configuration of [`DcganAutoencoder`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcganAutoencoderConfig {
    /// Side of the square input: 32, 64 or 128.
    pub image_size: usize,
    /// Channels of the input image.
    pub channels: usize,
    /// Width of the encoder's first layer; each finer-to-coarser step doubles it.
    pub width: usize,
    /// Slope of the encoder's leaky ReLUs.
    pub negative_slope: f64,
    /// How the encoder's hidden features are normalised (the decoder uses batch norm, as DCGAN's
    /// generator does).
    pub norm: DiscriminatorNorm,
}

impl Default for DcganAutoencoderConfig {
    fn default() -> Self {
        Self { image_size: 64, channels: 3, width: 64, negative_slope: 0.2, norm: DiscriminatorNorm::Batch }
    }
}

/// The convolutional autoencoder. Its output `(B, 1 + K)` holds each sample's energy, the mean squared
/// error of its reconstruction, then its code: the encoder's 4x4 features, `K = 16 * (width << stages)`.
pub struct DcganAutoencoder {
    config: DcganAutoencoderConfig,
    encoder: Trunk,
    ups: Vec<(Up, BatchNorm)>,
    to_image: Up,
}

impl DcganAutoencoder {
    /// Builds the encoder (`enc.*`) and decoder (`dec.*`) through `vb`.
    pub fn new(config: DcganAutoencoderConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let n = stages(config.image_size, "dcgan autoencoder")?;
        if config.width == 0 || config.channels == 0 {
            return Err(Error::InvalidInput("dcgan autoencoder: width and channels must be non-zero".into()));
        }
        let (enc, dec) = (vb.pp("enc"), vb.pp("dec"));
        let encoder = Trunk::new(config.channels, config.width, n, config.norm, &enc)?;
        let top = config.width << (n - 1);
        let mut ups = Vec::new();
        for i in 0..n - 1 {
            let (cin, cout) = (top >> i, top >> (i + 1));
            let up = Up::new(Upsampling::Transposed, cin, cout, false, dec.pp(format!("up{i}")))?;
            ups.push((up, batch_norm(cout, dec.pp(format!("up{i}_bn")))?));
        }
        let to_image = Up::new(Upsampling::Transposed, config.width, config.channels, true, dec.pp("to_image"))?;
        Ok(Self { config, encoder, ups, to_image })
    }

    /// The encoder's 4x4 features `(B, top, 4, 4)`.
    pub(crate) fn encode(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let act = Activation::LeakyRelu(self.config.negative_slope);
        Ok(self.encoder.forward(x, train, act)?.pop().expect("a trunk has a first stage"))
    }

    /// The reconstruction of the 4x4 features `code`, unbounded (the energy is a squared error).
    pub(crate) fn decode(&self, code: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut h = code.clone();
        for (up, bn) in &self.ups {
            h = bn.forward_act(&up.forward_act(&h, Activation::Identity)?, train, Activation::Relu)?;
        }
        self.to_image.forward_act(&h, Activation::Identity)
    }
}

impl condor_core::Network for DcganAutoencoder {
    fn forward(&self, x: &Tensor, _cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        let (c, s) = (self.config.channels, self.config.image_size);
        check_samples("dcgan autoencoder", x, &[c, s, s])?;
        let code = self.encode(x, train)?;
        let reconstruction = self.decode(&code, train)?;
        let energy = (reconstruction - x)?.sqr()?.flatten_from(1)?.mean_keepdim(1)?;
        Ok(Tensor::cat(&[&energy, &code.flatten_from(1)?], 1)?)
    }
}
