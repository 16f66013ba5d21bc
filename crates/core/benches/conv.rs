//! Forward and backward of the convolutions of the 32x32 birds models, candle's own CPU convolutions
//! against `condor_core::conv`'s: the DCGAN's 4x4 stride-2 layers (configs/birds.toml: batch 64,
//! width 32; im2col/col2im and matrix products), and the StyleGAN-like model's 3x3 "same" layers
//! (configs/birds-stylegan.toml: batch 64; the direct kernels up to 64 input taps per output
//! channel times 9, matrix products above; the weight gradient of the 32-wide layer direct too).

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};

/// One layer: batch, input channels, input side, output channels, and whether it is transposed
/// (the generator's upsampling) or not (the discriminator's stride-2 downsampling, which sees real,
/// fake and wrong-caption batches: 3 x 64).
struct Layer(usize, usize, usize, usize, bool);

const LAYERS: [Layer; 6] = [
    Layer(64, 128, 4, 64, true),
    Layer(64, 64, 8, 32, true),
    Layer(64, 32, 16, 3, true),
    Layer(192, 3, 32, 32, false),
    Layer(192, 32, 16, 64, false),
    Layer(192, 64, 8, 128, false),
];

fn bench(c: &mut Criterion) {
    condor_core::threads::configure_cpu_runtime();
    let device = Device::Cpu;
    let mut group = c.benchmark_group("conv_4x4_stride2_forward_backward");
    group.sample_size(20);
    for Layer(b, c_in, side, c_out, transposed) in LAYERS {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, c_in, side, side), &device).unwrap()).unwrap();
        let shape = if transposed { (c_in, c_out, 4, 4) } else { (c_out, c_in, 4, 4) };
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.02, shape, &device).unwrap()).unwrap();
        let kind = if transposed { "transposed" } else { "conv" };
        for ours in [false, true] {
            let name = format!("{kind}_{b}x{c_in}x{side}_to_{c_out}/{}", if ours { "condor" } else { "candle" });
            group.bench_function(name, |bencher| {
                bencher.iter(|| {
                    let y = match (transposed, ours) {
                        (true, false) => x.conv_transpose2d(&w, 1, 0, 2, 1),
                        (true, true) => condor_core::conv::conv_transpose2d(&x, &w, 1, 0, 2),
                        (false, false) => x.conv2d(&w, 1, 2, 1, 1),
                        (false, true) => condor_core::conv::conv2d(&x, &w, 1, 2),
                    };
                    y.and_then(|y| y.sqr()?.sum_all()?.backward()).unwrap()
                })
            });
        }
    }
    group.finish();
}

/// The StyleGAN-like model's 3x3 convolutions: (batch, channels in, side, channels out).
const SAME_3X3: [(usize, usize, usize, usize); 4] =
    [(64, 8, 32, 8), (64, 16, 16, 16), (64, 32, 8, 32), (64, 64, 4, 64)];

fn bench_3x3(c: &mut Criterion) {
    condor_core::threads::configure_cpu_runtime();
    let device = Device::Cpu;
    let mut group = c.benchmark_group("conv_3x3_same_forward_backward");
    group.sample_size(20);
    for (b, c_in, side, c_out) in SAME_3X3 {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, c_in, side, side), &device).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (c_out, c_in, 3, 3), &device).unwrap()).unwrap();
        for ours in [false, true] {
            let name = format!("conv_{b}x{c_in}x{side}_to_{c_out}/{}", if ours { "condor" } else { "candle" });
            group.bench_function(name, |bencher| {
                bencher.iter(|| {
                    let y = if ours { condor_core::conv::conv2d(&x, &w, 1, 1) } else { x.conv2d(&w, 1, 1, 1, 1) };
                    y.and_then(|y| y.sqr()?.sum_all()?.backward()).unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, bench_3x3);
criterion_main!(benches);
