//! # condor-translation: networks that map an image to an image
//!
//! - [`ResnetTranslator`] (`"resnet_translator"`): CycleGAN's generator (Zhu et al. 2017, after
//!   Johnson et al. 2016): a 7x7 convolution, stride-2 downsamplings, residual blocks, transposed
//!   convolutions back up and a 7x7 `tanh` convolution, with reflection padding and instance norm.
//! - [`PatchDiscriminator`] (`"patch_discriminator"`): CycleGAN's 70x70 PatchGAN, which scores each
//!   overlapping patch of an image as real or fake, with as many layers as the image size calls for.
//! - [`EncoderDecoder`] (`"encoder_decoder"`): DiscoGAN's generator (Kim et al. 2017): stride-2
//!   convolutions with batch norm and leaky ReLU down to 4x4, transposed convolutions with batch norm
//!   and ReLU back up. DiscoGAN's discriminator is the DCGAN one (`"dcgan"`, unconditional).
//!
//! Each is a [`condor_core::Network`]: `(B, C, S, S)` images in `[-1, 1]` in; images, or for the
//! discriminator a `(B, 1, h, w)` map of patch logits, out. Registered by [`register`].

mod encoder_decoder;
mod layers;
mod patch;
mod resnet;

pub use encoder_decoder::{EncoderDecoder, EncoderDecoderConfig};
pub use patch::{PatchDiscriminator, PatchDiscriminatorConfig};
pub use resnet::{ResnetTranslator, ResnetTranslatorConfig};

use condor_core::Registry;

/// Registers the three networks under their names.
pub fn register(registry: &mut Registry) -> condor_core::Result<()> {
    registry.register_network("resnet_translator", ResnetTranslator::new)?;
    registry.register_network("patch_discriminator", PatchDiscriminator::new)?;
    registry.register_network("encoder_decoder", EncoderDecoder::new)
}

#[cfg(test)]
mod tests;
