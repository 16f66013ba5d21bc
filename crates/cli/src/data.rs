//! Commands on data and text: encode prompts, preview a dataset, import a text encoder.

use std::io::Write;

use anyhow::{bail, Result};

use crate::args::{DataPreviewArgs, EncodeArgs, TextEncoderImportArgs, TextEncoderPretrainArgs};

/// `condor encode`.
pub(crate) fn encode(args: EncodeArgs) -> Result<()> {
    let EncodeArgs { prompts, model, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let encoder = load_encoder(model.as_deref(), &device)?;
    let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let e = encoder.encode_batch(&texts)?;
    let v: Vec<Vec<f32>> = e.sentences.to_device(&condor::candle_core::Device::Cpu)?.to_vec2()?;
    say!("{} prompts, {} dimensions", v.len(), v.first().map_or(0, Vec::len));
    for (i, a) in v.iter().enumerate() {
        for (j, b) in v.iter().enumerate().skip(i + 1) {
            let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            say!("cos({:?}, {:?}) = {cos:.4}", short(&prompts[i]), short(&prompts[j]));
        }
    }
    Ok(())
}

/// A prompt shortened for display.
fn short(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

fn load_encoder(model: Option<&str>, device: &condor::candle_core::Device) -> Result<condor::text::SentenceEncoder> {
    Ok(condor::infer::encoder::load_encoder(model.unwrap_or("shipped"), device)?.0)
}

/// `condor data preview`.
pub(crate) fn preview(args: DataPreviewArgs) -> Result<()> {
    let DataPreviewArgs { dataset, split, root, strict, n, size, seed, spread, out } = args;
    use condor::data::birds::{BirdSplit, BirdWorld};
    use condor::data::images::{self, CubSplit};
    if ![32, 64, 128, 256].contains(&size) {
        bail!("--size must be 32, 64, 128 or 256");
    }
    if n == 0 || n > 1024 {
        bail!("--n must be between 1 and 1024");
    }
    let (pictures, captions): (Vec<Vec<u8>>, Vec<Vec<String>>) = match dataset.as_str() {
        "birds" => {
            let split: BirdSplit = serde_json::from_value(serde_json::Value::String(split.clone())).map_err(|_| {
                anyhow::anyhow!("unknown split `{split}`; use train, test, held_out_phrasings or held_out_combinations")
            })?;
            let world = BirdWorld { seed, spread }.split(split);
            (0..n as u64)
                .map(|i| world.bird(i, size))
                .map(|b| (b.image.to_rgb8(), b.captions.into_iter().map(|c| c.text).collect()))
                .unzip()
        }
        "cub" | "folder" => {
            let mut set = if dataset == "cub" {
                let split = match split.as_str() {
                    "train" => CubSplit::TextToImageTrain,
                    "test" => CubSplit::TextToImageTest,
                    "official_train" => CubSplit::OfficialTrain,
                    "official_test" => CubSplit::OfficialTest,
                    other => {
                        bail!("unknown CUB split `{other}`; use train, test, official_train or official_test")
                    }
                };
                images::cub(&root, None, split)?
            } else {
                images::image_folder(&root)?
            };
            set.images.truncate(n);
            let pixels = images::load_all(&mut set, size, strict)?;
            if !set.skipped.is_empty() {
                eprintln!("skipped {} files:", set.skipped.len());
                for (path, why) in set.skipped.iter().take(10) {
                    eprintln!("  {}: {why}", path.display());
                }
                if set.skipped.len() > 10 {
                    eprintln!("  ... and {} more", set.skipped.len() - 10);
                }
            }
            if pixels.is_empty() {
                bail!("no readable images in {}", root.display());
            }
            let rgb = pixels.iter().map(|p| images::planes_to_rgb8(p, size)).collect();
            (rgb, set.images.into_iter().map(|i| i.captions).collect())
        }
        other => bail!("unknown dataset `{other}`; use birds, cub or folder"),
    };
    let first: Vec<String> = captions.iter().map(|c| c.first().cloned().unwrap_or_default()).collect();
    let zoom = (128 / size).max(1) as u32;
    condor::infer::plot::captioned_grid_png(&out, &pictures, size, &first, 6, zoom, 4)?;
    say!("wrote {} ({} images of {dataset} at {size} px)", out.display(), pictures.len());
    for (i, c) in captions.iter().enumerate() {
        say!("{i:>3}: {}", c.join(" | "));
    }
    Ok(())
}

/// `condor text-encoder import`.
pub(crate) fn import_text_encoder(args: TextEncoderImportArgs) -> Result<()> {
    let TextEncoderImportArgs { source, dest, dtype } = args;
    let dtype = match dtype.as_str() {
        "f16" => condor::candle_core::DType::F16,
        "bf16" => condor::candle_core::DType::BF16,
        "f32" => condor::candle_core::DType::F32,
        other => bail!("unknown dtype `{other}`; use f16, bf16 or f32"),
    };
    let folder = condor::text::ModelSource::parse(&source).resolve()?;
    condor::text::export_model(&folder, &dest, dtype)?;
    say!("wrote {} ({dtype:?} weights) from {}", dest.display(), folder.display());
    Ok(())
}

pub(crate) fn pretrain_text_encoder(args: TextEncoderPretrainArgs) -> Result<()> {
    use condor::train::text_pretraining::{pretrain_pooling, TextPretraining};
    let TextEncoderPretrainArgs { config, out, steps, batch_size, queries, lr, seed, base, device } = args;
    if out.extension().is_none_or(|e| e != "safetensors") {
        bail!("--out must end in .safetensors (a config names the head by that path), got {}", out.display());
    }
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let config = condor::train::RunConfig::from_file(&config)?;
    let options = TextPretraining { steps, batch_size, queries, lr, seed, base };
    let mut window = Vec::new();
    let head = pretrain_pooling(&config, &options, &device, &mut |s| {
        window.push((s.loss, s.image_to_text, s.beats_negative));
        if (s.step + 1) % 100 == 0 || s.step + 1 == steps {
            let n = window.len() as f32;
            let loss = window.iter().map(|w| w.0).sum::<f32>() / n;
            let hits = window.iter().map(|w| w.1).sum::<f32>() / n;
            let beats = window.iter().map(|w| w.2).sum::<f32>() / n;
            println!(
                "step {:>5}  loss {loss:.4}  image->caption top-1 in batch {:.1}%  own caption over its swap {:.1}%",
                s.step + 1,
                100.0 * hits,
                100.0 * beats
            );
            window.clear();
        }
    })?;
    condor::text::pooling::save_pooling(&head.tensors, head.shape, &head.base, &out)?;
    say!("wrote {} ({} queries over `{}`)", out.display(), head.shape.queries, head.base);
    Ok(())
}
