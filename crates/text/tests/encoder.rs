//! The sentence encoder against reference numbers, and its handling of batches and bad input.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config, HiddenAct};
use condor_core::TextEncoder;
use condor_text::{ModelSource, SentenceEncoder, TextError};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::Tokenizer;

fn shipped() -> SentenceEncoder {
    let folder = ModelSource::shipped().resolve().expect("the shipped text encoder in weights/ (run `just weights`)");
    SentenceEncoder::load(&folder, &Device::Cpu).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Reference sentences, token ids and embeddings computed by `scripts/minilm_reference.py`: a float64
/// NumPy BERT on the float32 weights (see the fixture's `method`).
fn reference() -> Vec<(String, Vec<u32>, Vec<f32>)> {
    let v: serde_json::Value = serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ids = s["token_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
            let e = s["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            (s["text"].as_str().unwrap().to_string(), ids, e)
        })
        .collect()
}

#[test]
fn shipped_float16_weights_match_the_float32_reference() {
    let enc = shipped();
    let refs = reference();
    let texts: Vec<&str> = refs.iter().map(|r| r.0.as_str()).collect();
    let got = enc.encode_batch(&texts).unwrap();
    assert_eq!(got.sentences.dims(), &[texts.len(), 384]);
    let mask: Vec<Vec<f32>> = rows(&got.mask);
    for (i, (text, ids, expected)) in refs.iter().enumerate() {
        let c = cosine(&rows(&got.sentences)[i], expected);
        println!("{text:?}: cosine {c:.6}");
        assert!(c >= 0.9999, "{text:?}: cosine {c}");
        assert_eq!(mask[i].iter().sum::<f32>() as usize, ids.len(), "{text:?} token count");
    }
}

#[test]
fn similar_sentences_are_closer_and_batches_equal_single_texts() {
    let enc = shipped();
    let texts = ["a red bird", "a small red bird", "a blue truck", "this bird is yellow with black wings"];
    let batch = rows(&enc.encode_batch(&texts).unwrap().sentences);
    for (i, t) in texts.iter().enumerate() {
        let single = rows(&enc.encode_batch(&[t]).unwrap().sentences);
        let diff = batch[i].iter().zip(&single[0]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "{t:?}: batch and single differ by {diff}");
        let norm: f32 = single[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    let (near, far) = (cosine(&batch[0], &batch[1]), cosine(&batch[0], &batch[2]));
    assert!(near > 0.9 && far < 0.3 && near > far, "near {near} far {far}");
}

#[test]
fn long_prompts_are_truncated_and_bad_prompts_are_errors() {
    let enc = shipped();
    assert_eq!(enc.max_tokens(), 256);
    let long = "a small red bird with blue wings ".repeat(100);
    let e = enc.encode_batch(&["a bird", &long]).unwrap();
    assert_eq!(e.truncated, vec![1]);
    assert_eq!(e.mask.dims(), &[2, 256]);
    // Ten megabytes of text: cut before tokenising, still truncated, no panic.
    let huge = "bird ".repeat(2_000_000);
    assert_eq!(enc.encode_batch(&[&huge]).unwrap().truncated, vec![0]);

    for bad in ["", "   ", "\n\t "] {
        let err = enc.encode_batch(&["a bird", bad]).unwrap_err();
        assert!(matches!(err, TextError::EmptyPrompt { index: 1, .. }), "{bad:?}: {err}");
        assert!(err.to_string().contains("empty"));
    }
    let err = enc.encode_batch(&["\u{7}\u{1b}"]).unwrap_err();
    assert!(err.to_string().contains("no words"), "{err}");
    assert!(matches!(enc.encode_batch(&[]), Err(TextError::NoPrompts)));
    for odd in ["鸟", "🐦🐦🐦", "a bird\u{0}\u{7f} with\u{200b}control chars", "ÀÉÎÕÜ ß ﬁ", "\u{202e}reversed"]
    {
        let e = enc.encode_batch(&[odd]).unwrap();
        let v = rows(&e.sentences);
        assert!(v[0].iter().all(|x| x.is_finite()), "{odd:?}");
    }
    // Through the contract trait, errors are condor_core errors with the same message.
    let err = TextEncoder::encode(&enc, &[" "]).unwrap_err();
    assert!(err.to_string().contains("empty"));
    let c = TextEncoder::encode(&enc, &["a red bird", "a bird"]).unwrap();
    let tokens = c.tokens.unwrap();
    assert_eq!(c.embedding.dims(), &[2, 384]);
    assert_eq!(tokens.embeddings.dims()[..2], tokens.mask.dims()[..]);
}

/// A randomly initialised two-layer BERT with a word-level tokenizer, built in the test: exercises the
/// whole code path without any weights.
fn tiny_encoder(max_tokens: usize) -> SentenceEncoder {
    let words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "blue", "bird", "small", "truck", "with", "wings"];
    let vocab: HashMap<String, u32> = words.iter().enumerate().map(|(i, w)| (w.to_string(), i as u32)).collect();
    let model = WordLevel::builder().vocab(vocab.into_iter().collect()).unk_token("[UNK]".into()).build().unwrap();
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace {}));
    let post = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .unwrap()
        .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
        .build()
        .unwrap();
    tok.with_post_processor(Some(post));
    let config = Config {
        vocab_size: words.len(),
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 32,
        hidden_act: HiddenAct::Gelu,
        max_position_embeddings: 32,
        type_vocab_size: 2,
        ..Default::default()
    };
    let params = condor_core::Params::new(5);
    let bert = BertModel::load(params.var_builder(DType::F32, &Device::Cpu), &config).unwrap();
    SentenceEncoder::from_parts(bert, tok, max_tokens, 16, &Device::Cpu).unwrap()
}

#[test]
fn a_tiny_random_bert_pads_pools_and_normalises() {
    let enc = tiny_encoder(8);
    let texts = ["a red bird", "a small blue bird with wings", "truck"];
    let e = enc.encode_batch(&texts).unwrap();
    // Padded to the longest text: 6 words + [CLS] + [SEP].
    assert_eq!(e.tokens.dims(), &[3, 8, 16]);
    assert_eq!(rows(&e.mask).iter().map(|r| r.iter().sum::<f32>() as usize).collect::<Vec<_>>(), vec![5, 8, 3]);
    let batch = rows(&e.sentences);
    for (i, t) in texts.iter().enumerate() {
        let single = enc.encode_batch(&[t]).unwrap();
        assert_eq!(single.tokens.dims(), &[1, batch_len(t), 16], "no padding beyond the longest");
        let s = rows(&single.sentences);
        let diff = batch[i].iter().zip(&s[0]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "{t:?}: {diff}");
        assert!((s[0].iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // The sentence embedding is the normalised masked mean of the token embeddings.
    let tok: Vec<Vec<Vec<f32>>> = e.tokens.to_vec3().unwrap();
    let mean: Vec<f32> = (0..16).map(|d| (0..5).map(|t| tok[0][t][d]).sum::<f32>() / 5.0).collect();
    assert!(cosine(&mean, &batch[0]) > 0.99999);
    assert_eq!(enc.encode_batch(&["a red bird with blue wings a red bird"]).unwrap().truncated, vec![0]);
}

fn batch_len(text: &str) -> usize {
    text.split_whitespace().count() + 2
}

#[test]
fn missing_models_give_errors_that_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), "{}").unwrap();
    let err = ModelSource::Folder(tmp.path().into()).resolve().unwrap_err();
    assert!(err.to_string().contains("tokenizer.json") && err.to_string().contains("just weights"), "{err}");
    std::fs::write(tmp.path().join("tokenizer.json"), "{}").unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), "").unwrap();
    let err = SentenceEncoder::load(tmp.path(), &Device::Cpu).err().unwrap();
    assert!(matches!(err, TextError::BadFile { .. }), "{err}");

    // A hub id with an empty cache while offline: an immediate, explanatory error.
    std::env::set_var("HF_HOME", tmp.path().join("hf"));
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let started = std::time::Instant::now();
    let err = ModelSource::Hub("sentence-transformers/all-MiniLM-L6-v2".into()).resolve().unwrap_err();
    assert!(started.elapsed().as_secs() < 5);
    assert!(matches!(err, TextError::Unavailable { .. }) && err.to_string().contains("pass its folder"), "{err}");
}

#[test]
fn caption_embeddings_are_cached_by_model_and_captions() {
    let enc = tiny_encoder(8);
    let tmp = tempfile::tempdir().unwrap();
    let captions: Vec<String> = ["a red bird", "a blue truck", "small wings"].iter().map(|s| s.to_string()).collect();
    let first = condor_text::cache::cached_embeddings(&enc, "model-a", &captions, tmp.path(), 2).unwrap();
    let path = condor_text::cache::cache_path(tmp.path(), "model-a", &captions);
    assert!(path.exists());
    assert_eq!(first.dims(), &[3, 16]);
    let direct = enc.encode_batch(&["a blue truck"]).unwrap().sentences;
    let diff = (first.get(1).unwrap() - direct.get(0).unwrap()).unwrap().abs().unwrap().max(0).unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    // A second call reads the file: proven by replacing its contents.
    let marker = Tensor::ones((3, 16), DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&HashMap::from([("embeddings".to_string(), marker)]), &path).unwrap();
    let second = condor_text::cache::cached_embeddings(&enc, "model-a", &captions, tmp.path(), 2).unwrap();
    assert_eq!(second.sum_all().unwrap().to_scalar::<f32>().unwrap(), 48.0);
    // Other captions or another model: another file.
    assert_ne!(path, condor_text::cache::cache_path(tmp.path(), "model-b", &captions));
    assert_ne!(path, condor_text::cache::cache_path(tmp.path(), "model-a", &captions[..2]));
}
