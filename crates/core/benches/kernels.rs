//! Forward and backward of condor-core's fused CPU layers against candle's own formulation, at the
//! 64x64 DCGAN's shapes (configs/birds-gpu.toml, batch 64):
//! - batch norm + activation (`condor_core::norm::BatchNorm::forward_act` against
//!   `candle_nn::BatchNorm` then the activation);
//! - the per-sample norm + activation of the layer-norm discriminator;
//! - bias + activation (`condor_core::activation::bias_act` against a broadcast add and the activation);
//! - a fully connected layer (`condor_core::linear::matmul_t` against candle's matmul);
//! - at the StyleGAN-like generator's 16x16 stage (batch 64, 32 channels): the demodulation epilogue
//!   with noise, bias and scaled leaky ReLU (`condor_core::modulate::channel_affine_act`) and bilinear
//!   2x upsampling (`condor_core::resample::upsample2x`), each against candle's ops.

use candle_core::{Device, Tensor, Var};
use candle_nn::ModuleT;
use condor_core::activation::{bias_act, Activation};
use condor_core::norm::{sample_norm_act, BatchNorm};
use criterion::{criterion_group, criterion_main, Criterion};

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
}

fn var(shape: &[usize]) -> Var {
    Var::from_tensor(&randn(shape)).unwrap()
}

/// Forward, a weighted sum, backward.
fn forward_backward(y: candle_core::Result<Tensor>, g: &Tensor) {
    (y.unwrap() * g).unwrap().sum_all().unwrap().backward().unwrap();
}

fn normalisation(c: &mut Criterion) {
    let mut group = c.benchmark_group("norm_activation_forward_backward");
    group.sample_size(20);
    // (batch, channels, side): the generator's 32x32 stage and the discriminator's 16x16 stage.
    for (b, ch, side) in [(64, 64, 32), (64, 128, 16)] {
        let x = var(&[b, ch, side, side]);
        let g = randn(&[b, ch, side, side]);
        let (w, bias) = (var(&[ch]), var(&[ch]));
        let (mean, v) = (
            Tensor::zeros(ch, candle_core::DType::F32, &Device::Cpu).unwrap(),
            Tensor::ones(ch, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        let ours =
            BatchNorm::new(w.as_tensor().clone(), bias.as_tensor().clone(), mean.clone(), v.clone(), 1e-5).unwrap();
        let theirs = candle_nn::BatchNorm::new(
            ch,
            mean.copy().unwrap(),
            v.copy().unwrap(),
            w.as_tensor().clone(),
            bias.as_tensor().clone(),
            1e-5,
        )
        .unwrap();
        let act = Activation::LeakyRelu(0.2);
        let name = format!("{b}x{ch}x{side}x{side}");
        group.bench_function(format!("batch_norm_{name}/condor"), |r| {
            r.iter(|| forward_backward(ours.forward_act(&x, true, act), &g))
        });
        group.bench_function(format!("batch_norm_{name}/candle"), |r| {
            r.iter(|| forward_backward(theirs.forward_t(&x, true).and_then(|y| act.forward(&y)), &g))
        });
        group.bench_function(format!("sample_norm_{name}/condor"), |r| {
            r.iter(|| forward_backward(sample_norm_act(&x, &w, &bias, 1e-5, act), &g))
        });
        group.bench_function(format!("bias_{name}/condor"), |r| {
            r.iter(|| forward_backward(bias_act(&x, Some(&bias), act), &g))
        });
        group.bench_function(format!("bias_{name}/candle"), |r| {
            r.iter(|| {
                forward_backward(x.broadcast_add(&bias.reshape((ch, 1, 1)).unwrap()).and_then(|y| act.forward(&y)), &g)
            })
        });
    }
    group.finish();
}

fn fully_connected(c: &mut Criterion) {
    let mut group = c.benchmark_group("linear_forward_backward");
    group.sample_size(20);
    // The DCGAN generator's projection (noise and text code to 4x4x512) at the generator step's batch,
    // and an MLP layer of configs/ring8.toml.
    for (rows, inputs, outputs) in [(128, 228, 8192), (256, 256, 256)] {
        let (x, w) = (var(&[rows, inputs]), var(&[outputs, inputs]));
        let g = randn(&[rows, outputs]);
        let name = format!("{rows}x{inputs}_to_{outputs}");
        group.bench_function(format!("{name}/condor"), |r| {
            r.iter(|| forward_backward(condor_core::linear::matmul_t(&x, &w), &g))
        });
        group.bench_function(format!("{name}/candle"), |r| {
            r.iter(|| forward_backward(w.t().and_then(|t| x.matmul(&t)), &g))
        });
    }
    group.finish();
}

fn stylegan(c: &mut Criterion) {
    let mut group = c.benchmark_group("stylegan_layers_forward_backward");
    group.sample_size(20);
    let (b, ch, side) = (64, 32, 16);
    let x = var(&[b, ch, side, side]);
    let g = randn(&[b, ch, side, side]);
    let (scale, noise, strength, bias) = (var(&[b, ch]), randn(&[b, 1, side, side]), var(&[ch]), var(&[ch]));
    let act = Activation::LeakyRelu(0.2);
    let gain = std::f64::consts::SQRT_2;
    let name = format!("{b}x{ch}x{side}x{side}");
    group.bench_function(format!("modulation_epilogue_{name}/condor"), |r| {
        r.iter(|| {
            let y = condor_core::modulate::channel_affine_act(
                &x,
                Some(&scale),
                Some((&noise, &strength)),
                Some(&bias),
                act,
                gain,
            );
            forward_backward(y, &g)
        })
    });
    group.bench_function(format!("modulation_epilogue_{name}/candle"), |r| {
        r.iter(|| {
            let y = x
                .broadcast_mul(&scale.reshape((b, ch, 1, 1)).unwrap())
                .and_then(|y| y.broadcast_add(&noise.broadcast_mul(&strength.reshape((1, ch, 1, 1))?)?))
                .and_then(|y| y.broadcast_add(&bias.reshape((1, ch, 1, 1))?))
                .and_then(|y| act.forward(&y)? * gain);
            forward_backward(y, &g)
        })
    });
    let small = var(&[b, ch, side / 2, side / 2]);
    group.bench_function(format!("upsample2x_{b}x{ch}x{}x{}/condor", side / 2, side / 2), |r| {
        r.iter(|| forward_backward(condor_core::resample::upsample2x(&small), &g))
    });
    group.finish();
}

fn setup(c: &mut Criterion) {
    condor_core::threads::configure_cpu_runtime();
    normalisation(c);
    fully_connected(c);
    stylegan(c);
}

criterion_group!(benches, setup);
criterion_main!(benches);
