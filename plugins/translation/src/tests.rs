use candle_core::{DType, Device, Tensor};
use condor_core::{Network, Params};

use super::*;

fn images(b: usize, size: usize) -> Tensor {
    let mut rng = condor_core::derived_rng(5, &[]);
    condor_core::rng::normal(&mut rng, &[b, 3, size, size], &Device::Cpu).unwrap().tanh().unwrap()
}

fn build<C, N>(config: C, new: impl Fn(C, candle_nn::VarBuilder) -> condor_core::Result<N>) -> (N, Params) {
    let params = Params::new(1);
    let net = new(config, params.var_builder(DType::F32, &Device::Cpu)).unwrap();
    (net, params)
}

#[test]
fn the_translators_map_images_to_images_of_the_same_shape_in_range() {
    let x = images(2, 32);
    let (resnet, _) = build(
        ResnetTranslatorConfig { image_size: 32, width: 8, blocks: 2, ..Default::default() },
        ResnetTranslator::new,
    );
    let (disco, _) =
        build(EncoderDecoderConfig { image_size: 32, width: 8, ..Default::default() }, EncoderDecoder::new);
    for y in [resnet.forward(&x, None, true).unwrap(), disco.forward(&x, None, true).unwrap()] {
        assert_eq!(y.dims(), [2, 3, 32, 32]);
        let (lo, hi) =
            (y.min_all().unwrap().to_scalar::<f32>().unwrap(), y.max_all().unwrap().to_scalar::<f32>().unwrap());
        assert!(-1.0 <= lo && hi <= 1.0 && lo < hi, "{lo}..{hi}");
    }
    assert!(resnet.forward(&images(2, 16), None, true).is_err(), "a 16 px image for a 32 px network");
}

#[test]
fn the_patch_map_has_the_paper_s_size() {
    // pix2pix/CycleGAN's 70x70 PatchGAN maps a 256 px image to 30x30 logits.
    for (size, layers, side) in [(256, None, 30), (32, None, 14), (64, Some(2), 14)] {
        let config = PatchDiscriminatorConfig { image_size: size, width: 2, layers, ..Default::default() };
        let (d, _) = build(config, PatchDiscriminator::new);
        assert_eq!(d.forward(&images(1, size), None, false).unwrap().dims(), [1, 1, side, side], "{size} px");
    }
}

#[test]
fn the_patch_scales_with_the_image_as_the_paper_s_does_at_256_px() {
    let field = |size| PatchDiscriminatorConfig { image_size: size, ..Default::default() }.receptive_field();
    assert_eq!((field(256), field(128), field(64), field(32)), (70, 34, 16, 16));
    let bad = PatchDiscriminatorConfig { image_size: 16, layers: Some(3), ..Default::default() };
    assert!(PatchDiscriminator::new(bad, Params::new(0).var_builder(DType::F32, &Device::Cpu)).is_err());
}

#[test]
fn bad_sizes_get_clear_errors() {
    let vb = || Params::new(0).var_builder(DType::F32, &Device::Cpu);
    let e = ResnetTranslator::new(ResnetTranslatorConfig { image_size: 24, ..Default::default() }, vb()).err().unwrap();
    assert!(e.to_string().contains("power of two"), "{e}");
    assert!(EncoderDecoder::new(EncoderDecoderConfig { image_size: 4, ..Default::default() }, vb()).is_err());
}
