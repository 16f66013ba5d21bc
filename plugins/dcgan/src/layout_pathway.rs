//! The "where" of Reed et al.'s "Learning What and Where to Draw" (2016): a local pathway in each
//! network that works inside the sample's box, beside the global pathway that sees the whole image.
//!
//! - In the generator, the 4x4 features of the noise and the text (the "what") are carried into the
//!   box by the spatial transform ([`place_in_boxes`]) on a `grid x grid` map, joined to the box's mask,
//!   the text code masked to the box and (optionally) the keypoints' heat maps, mixed by a 3x3
//!   convolution, and joined to the global pathway's features of that side; the remaining stages draw
//!   from both.
//! - In the discriminator, the image features of that side are joined to the same mask, masked text
//!   and heat maps, mixed, and the box is cut out of them ([`crop_boxes`], the inverse transform) and
//!   scored by a 4x4 convolution; that logit is added to the global one.
//! - Both global pathways also read the box's four numbers beside the text code.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use condor_core::activation::Activation;
use condor_core::conv::Conv2d;
use condor_core::layout::{box_masks, crop_boxes, keypoint_maps, place_in_boxes, Layout, LayoutKind, KEYPOINTS};
use condor_core::linear::Linear;
use condor_core::norm::BatchNorm;
use condor_core::Error;
use serde::{Deserialize, Serialize};

use super::{batch_norm, conv, linear, Norm, Step, VALID};

/// The local pathway of a what-and-where DCGAN (`layout = { ... }` in either network's config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayoutPathway {
    /// Side of the local pathway's feature map: a power of two from 8 to half the image.
    pub grid: usize,
    /// Channels of the local pathway.
    pub channels: usize,
    /// Also read the keypoints, as one heat map each on the grid.
    pub keypoints: bool,
}

impl Default for LayoutPathway {
    fn default() -> Self {
        Self { grid: 8, channels: 32, keypoints: false }
    }
}

/// Entries of a box `(x, y, w, h)`, which the global pathways read beside the text code.
pub(crate) const BOX_DIM: usize = 4;

/// Width of the keypoints' heat maps, in grid cells.
const KEYPOINT_SIGMA: f32 = 0.75;

/// 3x3 convolutions keep the side.
const SAME: Step = Step { padding: 1, stride: 1 };

impl LayoutPathway {
    /// Checks the pathway against an image of side `image` in a network with text (`cond_dim`).
    pub(crate) fn check(&self, who: &str, image: usize, cond_dim: usize) -> condor_core::Result<()> {
        if !self.grid.is_power_of_two() || self.grid < 8 || self.grid > image / 2 {
            return Err(Error::InvalidInput(format!(
                "{who}: layout.grid must be a power of two from 8 to half the image ({}), not {}",
                image / 2,
                self.grid
            )));
        }
        if self.channels == 0 {
            return Err(Error::InvalidInput(format!("{who}: layout.channels must be at least 1")));
        }
        if cond_dim == 0 {
            return Err(Error::InvalidInput(format!("{who}: the layout pathway needs text (cond_dim > 0)")));
        }
        Ok(())
    }

    /// What the network reads of a layout.
    pub(crate) fn kind(&self) -> LayoutKind {
        if self.keypoints {
            LayoutKind::BoxesAndKeypoints
        } else {
            LayoutKind::Boxes
        }
    }

    /// Channels of the maps every local pathway reads besides its features: the mask, the masked
    /// text, the heat maps.
    fn guide_channels(&self) -> usize {
        1 + self.channels + if self.keypoints { KEYPOINTS.len() } else { 0 }
    }

    /// The mask, the text code `(B, channels)` masked to the box and the heat maps, on the grid.
    fn guides(&self, layout: &Layout, boxes: &[[f32; 4]], text: &Tensor) -> condor_core::Result<Vec<Tensor>> {
        let (b, g, dtype) = (boxes.len(), self.grid, text.dtype());
        let mask = box_masks(boxes, g, text.device())?.to_dtype(dtype)?;
        let tiled = text.reshape((b, self.channels, 1, 1))?.broadcast_as((b, self.channels, g, g))?;
        let mut out = vec![mask.clone(), tiled.broadcast_mul(&mask)?];
        if self.keypoints {
            let keypoints = layout
                .keypoints
                .as_ref()
                .ok_or_else(|| Error::InvalidInput("this model reads keypoints too, and none were given".into()))?;
            out.push(keypoint_maps(keypoints, g, KEYPOINT_SIGMA)?.to_dtype(dtype)?);
        }
        Ok(out)
    }
}

/// The generator's local pathway.
pub(crate) struct GeneratorPathway {
    config: LayoutPathway,
    /// 1x1: the 4x4 global features to the pathway's channels, before they are carried into the box.
    what: Conv2d,
    /// The text code to the pathway's channels.
    text: Linear,
    mix: Conv2d,
    bn: BatchNorm,
}

impl GeneratorPathway {
    /// The pathway for 4x4 features of `top` channels and a text code of `code` entries.
    pub(crate) fn new(config: LayoutPathway, top: usize, code: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let c = config.channels;
        let what = conv(top, c, 1, VALID, true, vb.pp("what"))?;
        let text = linear(code, c, true, vb.pp("text"))?;
        let mix = conv(c + config.guide_channels(), c, 3, SAME, false, vb.pp("mix"))?;
        let bn = batch_norm(c, vb.pp("mix_bn"))?;
        Ok(Self { config, what, text, mix, bn })
    }

    /// `(B, channels, grid, grid)`: the 4x4 features `x4` drawn in the box, with the guides.
    pub(crate) fn forward(
        &self,
        x4: &Tensor,
        code: &Tensor,
        layout: &Layout,
        train: bool,
    ) -> condor_core::Result<Tensor> {
        let boxes = layout.box_rows()?;
        let what = place_in_boxes(&self.what.forward(x4)?, &boxes, self.config.grid)?;
        let text = self.text.forward_act(code, Activation::Relu)?;
        let mut parts = vec![what];
        parts.extend(self.config.guides(layout, &boxes, &text)?);
        Ok(self.bn.forward_act(&self.mix.forward(&Tensor::cat(&parts, 1)?)?, train, Activation::Relu)?)
    }
}

/// The discriminator's local pathway.
pub(crate) struct DiscriminatorPathway {
    config: LayoutPathway,
    text: Linear,
    mix: Conv2d,
    norm: Norm,
    logit: Conv2d,
}

/// Side of the box's features that the local logit reads.
const CROP: usize = 4;

impl DiscriminatorPathway {
    /// The pathway over image features of `features` channels, with embeddings of `cond_dim` entries.
    pub(crate) fn new(
        config: LayoutPathway,
        features: usize,
        cond_dim: usize,
        norm: super::DiscriminatorNorm,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let c = config.channels;
        let text = linear(cond_dim, c, true, vb.pp("text"))?;
        let mix = conv(features + config.guide_channels(), c, 3, SAME, Norm::needs_conv_bias(norm), vb.pp("mix"))?;
        let norm = Norm::new(norm, c, "local_mix", &vb)?;
        let logit = conv(c, 1, CROP, VALID, true, vb.pp("logit"))?;
        Ok(Self { config, text, mix, norm, logit })
    }

    /// `(B,)` local logits of the `(B, C, grid, grid)` image features `h` under the embedding `e`.
    pub(crate) fn forward(
        &self,
        h: &Tensor,
        e: &Tensor,
        layout: &Layout,
        slope: f64,
        train: bool,
    ) -> condor_core::Result<Tensor> {
        let boxes = layout.box_rows()?;
        let act = Activation::LeakyRelu(slope);
        let text = self.text.forward_act(e, act)?;
        let mut parts = vec![h.clone()];
        parts.extend(self.config.guides(layout, &boxes, &text)?);
        let mixed = self.norm.conv_act(&self.mix, &Tensor::cat(&parts, 1)?, train, act)?;
        let inside = crop_boxes(&mixed, &boxes, CROP)?;
        Ok(self.logit.forward(&inside)?.reshape(h.dims()[0])?)
    }
}
