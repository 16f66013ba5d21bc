//! The residual discriminator of StyleGAN2 with minibatch standard deviation, conditioned on the text by
//! a projection term and, optionally, Reed et al.'s spatial concatenation at 4x4.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use condor_core::{
    check_conditioning, check_samples, join_tiled, Conditioning, ConditioningKind, Discriminator, Error,
};
use serde::{Deserialize, Serialize};

use crate::layers::{downsample2x, normalize_2nd_moment, EqualConv, EqualLinear};
use crate::{channels_at, resolutions};
use condor_core::minibatch::{appended_channels, check_settings, minibatch_stddev};

/// Configuration of [`ResidualDiscriminator`]. The defaults: 32 pixels, 32 to 128 feature maps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResidualDiscriminatorConfig {
    /// Size of the conditioning embedding; 0 for an unconditional discriminator.
    pub cond_dim: usize,
    /// Side of the square input: a power of two from 8 to 1024.
    pub image_size: usize,
    /// Channels of the input image.
    pub channels: usize,
    /// Feature maps at resolution r are `min(channel_base / r, channel_max)`.
    pub channel_base: usize,
    /// Upper bound on feature maps per layer.
    pub channel_max: usize,
    /// Group size of the minibatch standard deviation (0 turns it off).
    pub mbstd_group: usize,
    /// Number of standard-deviation channels it appends.
    pub mbstd_features: usize,
    /// Width of a text code (an equalised linear map of the embedding and a leaky ReLU) tiled over the
    /// 4x4 features and joined to them before the last convolution, as in Reed et al. (2016); 0 leaves
    /// the projection term as the only text input. Needs `cond_dim > 0`.
    pub text_concat: usize,
}

impl Default for ResidualDiscriminatorConfig {
    fn default() -> Self {
        Self {
            cond_dim: 0,
            image_size: 32,
            channels: 3,
            channel_base: 1024,
            channel_max: 128,
            mbstd_group: 4,
            mbstd_features: 1,
            text_concat: 0,
        }
    }
}

/// A residual block: two 3x3 convolutions with 2x average pooling between them, beside a pooled 1x1
/// skip; the sum is scaled by `1/sqrt(2)` to keep its variance.
struct ResBlock {
    conv0: EqualConv,
    conv1: EqualConv,
    skip: EqualConv,
}

impl ResBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let skip = self.skip.forward(&downsample2x(x)?)?;
        let h = self.conv0.forward_lrelu(x)?;
        let h = self.conv1.forward_lrelu(&downsample2x(&h)?)?;
        (skip + h)? * std::f64::consts::FRAC_1_SQRT_2
    }
}

/// StyleGAN2's residual discriminator: fromRGB, residual blocks down to 4x4, then minibatch standard
/// deviation, a 3x3 convolution, a fully connected layer and the logit. With conditioning, the
/// projection term of Miyato & Koyama (2018), `<V e, h> / sqrt(dim h)` on the last hidden features
/// `h` (with `e` scaled to unit second moment), joins the logit; with `text_concat > 0` a text code is
/// also tiled over the 4x4 features before the last convolution (Reed et al.), so the convolution sees
/// image and text together. Pairs with any generator.
pub struct ResidualDiscriminator {
    config: ResidualDiscriminatorConfig,
    from_rgb: EqualConv,
    blocks: Vec<ResBlock>,
    conv: EqualConv,
    fc: EqualLinear,
    out: EqualLinear,
    projection: Option<EqualLinear>,
    text_code: Option<EqualLinear>,
}

impl ResidualDiscriminator {
    /// Builds the discriminator's layers through `vb`.
    pub fn new(config: ResidualDiscriminatorConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let res = resolutions(config.image_size, "stylegan discriminator")?;
        if config.channels == 0 {
            return Err(Error::InvalidInput("stylegan discriminator: channels must be non-zero".into()));
        }
        let ch = |r| channels_at(r, config.channel_base, config.channel_max);
        check_settings("stylegan discriminator", config.mbstd_group, config.mbstd_features, ch(4))?;
        let s = config.image_size;
        let from_rgb = EqualConv::new(config.channels, ch(s), 1, true, vb.pp("from_rgb"))?;
        let mut blocks = Vec::new();
        for &r in res.iter().rev().filter(|&&r| r > 4) {
            let bvb = vb.pp(format!("b{r}"));
            blocks.push(ResBlock {
                conv0: EqualConv::new(ch(r), ch(r), 3, true, bvb.pp("conv0"))?,
                conv1: EqualConv::new(ch(r), ch(r / 2), 3, true, bvb.pp("conv1"))?,
                skip: EqualConv::new(ch(r), ch(r / 2), 1, false, bvb.pp("skip"))?,
            });
        }
        if config.text_concat > 0 && config.cond_dim == 0 {
            return Err(Error::InvalidInput(
                "stylegan discriminator: text_concat needs a conditioning (cond_dim > 0)".into(),
            ));
        }
        let c4 = ch(4);
        let extra = appended_channels(config.mbstd_group, config.mbstd_features);
        let conv = EqualConv::new(c4 + extra + config.text_concat, c4, 3, true, vb.pp("b4.conv"))?;
        let fc = EqualLinear::new(c4 * 16, c4, 1.0, 0.0, vb.pp("b4.fc"))?;
        let out = EqualLinear::new(c4, 1, 1.0, 0.0, vb.pp("b4.out"))?;
        let projection = match config.cond_dim {
            0 => None,
            e => Some(EqualLinear::new(e, c4, 1.0, 0.0, vb.pp("projection"))?),
        };
        let text_code = match config.text_concat {
            0 => None,
            p => Some(EqualLinear::new(config.cond_dim, p, 1.0, 0.0, vb.pp("text_code"))?),
        };
        Ok(Self { config, from_rgb, blocks, conv, fc, out, projection, text_code })
    }
}

impl Discriminator for ResidualDiscriminator {
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::vector_or_none(self.config.cond_dim)
    }
    fn sample_shape(&self) -> Option<Vec<usize>> {
        let (c, s) = (self.config.channels, self.config.image_size);
        Some(vec![c, s, s])
    }
    fn forward(&self, x: &Tensor, cond: Option<&Conditioning>, _train: bool) -> condor_core::Result<Tensor> {
        let (c, s) = (self.config.channels, self.config.image_size);
        check_samples("stylegan discriminator", x, &[c, s, s])?;
        let b = x.dims()[0];
        check_conditioning(self.conditioning(), cond, b)?;
        let mut h = self.from_rgb.forward_lrelu(x)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        h = minibatch_stddev(&h, self.config.mbstd_group, self.config.mbstd_features)?;
        let embedding = match cond {
            Some(cond) => Some(normalize_2nd_moment(&cond.embedding.to_dtype(h.dtype())?)?),
            None => None,
        };
        if let (Some(code), Some(e)) = (&self.text_code, &embedding) {
            h = join_tiled(&h, &code.forward_lrelu(e)?)?;
        }
        let h = self.conv.forward_lrelu(&h)?;
        let h = self.fc.forward_lrelu(&h.flatten_from(1)?)?;
        let logit = self.out.forward(&h)?.reshape(b)?;
        Ok(match (&self.projection, embedding) {
            (Some(v), Some(e)) => {
                let e = v.forward(&e)?;
                let scale = 1.0 / (h.dim(1)? as f64).sqrt();
                (logit + ((e * h)?.sum(1)? * scale)?)?
            }
            _ => logit,
        })
    }
}
