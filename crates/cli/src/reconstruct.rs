//! `condor reconstruct`: real images turned back into latents by a recipe's encoder, each written
//! beside the generator's image of its latent.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use condor::candle_core::{Device, Tensor};
use condor::core::Registry;
use condor::data::images::load_image;
use condor::train::inversion;
use condor::train::{Checkpoint, Trainer};

use crate::args::ReconstructArgs;

/// `condor reconstruct`.
pub(crate) fn reconstruct(args: ReconstructArgs, registry: &Registry) -> Result<()> {
    let ReconstructArgs { checkpoint, images, out, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    let trainer = Trainer::from_checkpoint(&Checkpoint::load(&checkpoint, &device)?, registry, &device)?;
    let shape = trainer.data().sample_shape();
    let batch = read_images(&images, &shape, &device)?;
    let (latents, reconstructions) = inversion::reconstruct(&trainer, &batch)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for (i, path) in images.iter().enumerate() {
        let stem = path.file_stem().map_or("image".into(), |s| s.to_string_lossy().to_string());
        let target = out.join(format!("{stem}-reconstruction.png"));
        let pair = Tensor::cat(&[batch.narrow(0, i, 1)?, reconstructions.narrow(0, i, 1)?], 0)?;
        condor::infer::plot::image_grid_png(&target, &pair, 2)?;
        let norm = latents.get(i)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        say!("{} -> {} (latent norm {norm:.2})", path.display(), target.display());
    }
    Ok(())
}

/// The images at `paths` as one `(N, C, H, W)` batch in [-1, 1] of the data's sample shape.
fn read_images(paths: &[std::path::PathBuf], shape: &[usize], device: &Device) -> Result<Tensor> {
    let [channels, height, width] = shape[..] else {
        anyhow::bail!("this model's samples are not images (shape {shape:?})");
    };
    anyhow::ensure!(height == width, "this model's images are not square ({height} x {width})");
    let mut pixels = Vec::with_capacity(paths.len() * channels * height * width);
    for path in paths {
        pixels.extend(load_pixels(path, channels, height)?);
    }
    Ok(Tensor::from_vec(pixels, (paths.len(), channels, height, width), device)?)
}

/// One image's pixels in [-1, 1].
fn load_pixels(path: &Path, channels: usize, size: usize) -> Result<Vec<f32>> {
    let pixels = load_image(path, channels, size).with_context(|| format!("reading {}", path.display()))?;
    Ok(pixels.into_iter().map(|v| v * 2.0 - 1.0).collect())
}
