//! FID costs: Inception-v3 features per image (32 px inputs resized to 299, the network) and the
//! Fréchet distance of two 2048-d statistics (two symmetric eigendecompositions). The Inception part
//! needs `just fid-weights` and is left out without it.

use std::path::Path;

use candle_core::{Device, Tensor};
use condor_metrics::fid::{frechet_distance, FeatureStats};
use condor_metrics::FidInception;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match FidInception::load_default(&root, &Device::Cpu) {
        Ok(net) => {
            let batch = 16;
            let images = Tensor::rand(-1f32, 1f32, (batch, 3, 32, 32), &Device::Cpu).unwrap();
            let mut group = c.benchmark_group("inception_features");
            group.sample_size(10).throughput(Throughput::Elements(batch as u64));
            group.bench_function("batch16_32px", |b| b.iter(|| net.features_of_samples(&images).unwrap()));
            group.finish();
        }
        Err(e) => eprintln!("inception_features left out: {e}"),
    }
    let rows = |shift: f32| -> Vec<Vec<f32>> {
        (0..2100)
            .map(|i| (0..2048).map(|j| (((i * 31 + j * 17) % 101) as f32 / 101.0) + shift * (j % 3) as f32).collect())
            .collect()
    };
    let (a, b) =
        (FeatureStats::from_rows(&rows(0.0), false).unwrap(), FeatureStats::from_rows(&rows(0.1), false).unwrap());
    let mut group = c.benchmark_group("frechet_distance");
    group.sample_size(10);
    group.bench_function("2048d", |bch| bch.iter(|| frechet_distance(&a, &b).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
