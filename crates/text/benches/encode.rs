//! Text-encoder speed on the CPU: model load time, and sentences/s at batch 1 and batch 64.

use candle_core::Device;
use condor_text::{ModelSource, SentenceEncoder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let folder = ModelSource::shipped().resolve().expect("weights/all-MiniLM-L6-v2 (run `just weights`)");
    c.bench_function("minilm_load", |b| b.iter(|| SentenceEncoder::load(&folder, &Device::Cpu).unwrap()));
    let enc = SentenceEncoder::load(&folder, &Device::Cpu).unwrap();
    let caption = "this bird has a red crown, blue wings and a short pointed beak";
    let mut group = c.benchmark_group("minilm_encode");
    for batch in [1usize, 64] {
        let texts = vec![caption; batch];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}"), |b| b.iter(|| enc.encode_batch(&texts).unwrap()));
    }
    group.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20); targets = bench }
criterion_main!(benches);
