//! Animated GIFs of image sequences (interpolations), enlarged for viewing.

use std::path::Path;

use candle_core::Tensor;
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbaImage};

use crate::error::{InferError, Result};
use crate::file::write_atomically;
use crate::sample::to_rgb8;

/// How an animation is played.
#[derive(Clone, Copy, Debug)]
pub struct AnimationOptions {
    /// Frames per second.
    pub fps: u32,
    /// Each image pixel becomes a `zoom` x `zoom` block.
    pub zoom: u32,
}

impl Default for AnimationOptions {
    fn default() -> Self {
        Self { fps: 12, zoom: 4 }
    }
}

/// Writes `(N, C, S, S)` images in [-1, 1] as an endlessly looping GIF of `N` frames. The path must
/// end in `.gif`; the file is written atomically.
pub fn write_gif(path: &Path, images: &Tensor, options: AnimationOptions) -> Result<()> {
    check_gif_path(path)?;
    if !(1..=100).contains(&options.fps) || !(1..=32).contains(&options.zoom) {
        return Err(InferError::Request(format!(
            "the frame rate must be 1 to 100 per second and the zoom 1 to 32, not {} and {}",
            options.fps, options.zoom
        )));
    }
    let size = images.dim(2)?;
    let frames = to_rgb8(images)?;
    let fail = |reason: String| InferError::Image { path: path.to_path_buf(), reason };
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite).map_err(|e| fail(e.to_string()))?;
        let delay = Delay::from_numer_denom_ms(1000, options.fps);
        for rgb in &frames {
            let frame = Frame::from_parts(enlarge(rgb, size, options.zoom), 0, 0, delay);
            encoder.encode_frame(frame).map_err(|e| fail(e.to_string()))?;
        }
    }
    write_atomically(path, &bytes).map_err(|e| fail(e.to_string()))
}

/// Errors unless `path` ends in `.gif`, the one format animations are written in: callers check it
/// before the work that makes the frames.
pub fn check_gif_path(path: &Path) -> Result<()> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif")) {
        return Ok(());
    }
    Err(InferError::Request(format!("{} must end in .gif: animations are written as GIFs", path.display())))
}

/// An `S x S` RGB image as an opaque RGBA image `zoom` times as large (nearest neighbour).
fn enlarge(rgb: &[u8], size: usize, zoom: u32) -> RgbaImage {
    let side = size as u32 * zoom;
    RgbaImage::from_fn(side, side, |x, y| {
        let i = 3 * ((y / zoom) as usize * size + (x / zoom) as usize);
        image::Rgba([rgb[i], rgb[i + 1], rgb[i + 2], 255])
    })
}
