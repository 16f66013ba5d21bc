//! Synthetic-bird rendering speed on one core: images/s at each resolution.

use condor_data::birds::{BirdSplit, SyntheticBirds};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let world = SyntheticBirds::new(0, BirdSplit::Train);
    let mut group = c.benchmark_group("render_bird");
    group.throughput(Throughput::Elements(1));
    for size in [32usize, 64, 128] {
        let mut i = 0u64;
        group.bench_function(format!("{size}px"), |b| {
            b.iter(|| {
                i += 1;
                world.render(i, size)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
