//! Forward and backward of the DCGAN's convolutions at the 32x32 birds model's shapes
//! (configs/birds.toml: batch 64, width 32): candle's own CPU convolutions against
//! `condor_core::conv`'s im2col/col2im + matmul ones.

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

criterion_group!(benches, bench);
criterion_main!(benches);
