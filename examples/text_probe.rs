//! How much of each caption's part colours a text encoder's sentence embeddings hold: a linear probe
//! (softmax regression, Adam, 400 full-batch steps) per part (body, wing, head, belly) trained on the
//! embeddings of the captions of 1,000 training birds that name that part's colour, and scored on the
//! captions of 300 birds of the Test, held-out-phrasing and held-out-combination splits. A generator
//! conditioned on the embeddings can hardly draw a part colour the probe cannot read.
//!
//! `cargo run --release --example text_probe -- [ENCODER]` where ENCODER is `shipped` (the default,
//! MiniLM's mean pooling), a model folder, or a pooling head from `condor text-encoder pretrain`.
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use condor_data::birds::{BirdSplit, Colour, Part, SyntheticBirds};
use condor_text::SentenceEncoder;

const PARTS: [Part; 4] = [Part::Body, Part::Wing, Part::Head, Part::Belly];

/// Sentence embeddings `(N, E)` and, for each caption, the colour it names for each part (-1: none).
type Split = (Tensor, Vec<[i64; 4]>);

/// The sentence embeddings of the captions of the first `n` birds of `split`, and for each caption
/// the colour it names for each part (-1 where it names none).
fn data(enc: &SentenceEncoder, split: BirdSplit, n: u64) -> anyhow::Result<Split> {
    let world = SyntheticBirds::new(0, split);
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        for c in world.captions(i) {
            let mut l = [-1i64; 4];
            for (p, col) in &c.mentions {
                let k = PARTS.iter().position(|q| q == p).unwrap();
                l[k] = Colour::ALL.iter().position(|x| x == col).unwrap() as i64;
            }
            texts.push(c.text);
            labels.push(l);
        }
    }
    let mut embs = Vec::new();
    for chunk in texts.chunks(256) {
        let refs: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
        embs.push(enc.encode_batch(&refs)?.sentences);
    }
    Ok((Tensor::cat(&embs, 0)?, labels))
}

/// Trains the probe of part `k` and formats its accuracy on each test split.
fn probe(k: usize, train: &Split, tests: &[(&str, Split)]) -> anyhow::Result<String> {
    let dev = Device::Cpu;
    let (xtr, ytr) = train;
    let rows = |y: &[[i64; 4]]| -> Vec<u32> { (0..y.len()).filter(|&i| y[i][k] >= 0).map(|i| i as u32).collect() };
    let idx = rows(ytr);
    let x = xtr.index_select(&Tensor::new(idx.as_slice(), &dev)?, 0)?;
    let y = Tensor::new(idx.iter().map(|&i| ytr[i as usize][k] as u32).collect::<Vec<_>>(), &dev)?;
    let vm = VarMap::new();
    let lin = candle_nn::linear(x.dims()[1], 9, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let params = candle_nn::ParamsAdamW { lr: 1e-2, weight_decay: 0.0, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(vm.all_vars(), params)?;
    for _ in 0..400 {
        opt.backward_step(&candle_nn::loss::cross_entropy(&candle_nn::Module::forward(&lin, &x)?, &y)?)?;
    }
    let mut line = String::new();
    for (name, (xt, yt)) in tests {
        let idx = rows(yt);
        let x = xt.index_select(&Tensor::new(idx.as_slice(), &dev)?, 0)?;
        let pred: Vec<u32> = candle_nn::Module::forward(&lin, &x)?.argmax(D::Minus1)?.to_vec1()?;
        let ok = idx.iter().zip(&pred).filter(|(&i, &p)| yt[i as usize][k] == p as i64).count();
        line += &format!("{name} {:.1}% (n={}) ", 100.0 * ok as f64 / idx.len() as f64, idx.len());
    }
    Ok(line)
}

fn main() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let source = std::env::args().nth(1).unwrap_or("shipped".into());
    let (enc, _) = condor_infer::encoder::load_encoder(&source, &dev)?;
    let tests = [
        ("test", data(&enc, BirdSplit::Test, 300)?),
        ("phrasings", data(&enc, BirdSplit::HeldOutPhrasings, 300)?),
        ("combos", data(&enc, BirdSplit::HeldOutCombinations, 300)?),
    ];
    let train = data(&enc, BirdSplit::Train, 1000)?;
    for (k, part) in PARTS.iter().enumerate() {
        println!("{part:?}: {}", probe(k, &train, &tests)?);
    }
    Ok(())
}
