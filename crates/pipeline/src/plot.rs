//! PNG plots of training: 2D sample scatter plots, loss curves and image grids.
//!
//! Plots carry no text (plotters renders text only through system fonts); colours are fixed:
//! losses: discriminator red, generator blue; scores: D(x) green, D(G(z)) orange; scatter plots: grey
//! circles at the modes (radius 3 sigma), samples coloured by requested mode or dark blue.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{PipelineError, Result};
use crate::run_dir::StepRecord;

fn image_err(path: &Path) -> impl Fn(String) -> PipelineError + '_ {
    move |reason| PipelineError::Image { path: path.to_path_buf(), reason }
}

/// Draws with plotters into an RGB buffer of `size` and saves it as a PNG with the `image` crate.
fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    let mut buffer = vec![0u8; (size.0 * size.1 * 3) as usize];
    draw(BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area())?;
    let img = image::RgbImage::from_raw(size.0, size.1, buffer).expect("buffer has the image's size");
    img.save(path).map_err(|e| image_err(path)(e.to_string()))
}

/// Writes a scatter plot of `points` with the mixture `centers` (circles of `radius`). With `modes`,
/// each point is coloured by the mode it was asked to hit.
pub fn scatter_png(
    path: &Path,
    points: &[[f32; 2]],
    centers: &[[f32; 2]],
    radius: f32,
    modes: Option<&[usize]>,
) -> Result<()> {
    let err = image_err(path);
    let extent = centers.iter().flat_map(|c| [c[0].abs(), c[1].abs()]).fold(1.0f32, f32::max) * 1.35;
    draw_png(path, (640, 640), |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .build_cartesian_2d(-extent..extent, -extent..extent)
            .map_err(|e| err(e.to_string()))?;
        let axis = RGBColor(220, 220, 220);
        for line in [[(-extent, 0.0), (extent, 0.0)], [(0.0, -extent), (0.0, extent)]] {
            chart.draw_series(LineSeries::new(line, axis)).map_err(|e| err(e.to_string()))?;
        }
        let px_per_unit = 616.0 / (2.0 * extent);
        let ring = ((radius * px_per_unit).round() as i32).max(3);
        chart
            .draw_series(
                centers.iter().map(|c| Circle::new((c[0], c[1]), ring, RGBColor(150, 150, 150).stroke_width(2))),
            )
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(points.iter().enumerate().filter(|(_, p)| p[0].is_finite() && p[1].is_finite()).map(
                |(i, p)| {
                    let colour = match modes {
                        Some(m) => Palette99::pick(m[i]).to_rgba(),
                        None => RGBColor(30, 60, 160).to_rgba(),
                    };
                    Circle::new((p[0], p[1]), 2, colour.mix(0.6).filled())
                },
            ))
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// Writes loss curves (top) and mean discriminator scores (bottom) over the logged steps.
pub fn loss_png(path: &Path, records: &[StepRecord]) -> Result<()> {
    let err = image_err(path);
    if records.is_empty() {
        return Ok(());
    }
    draw_png(path, (900, 600), |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (top, bottom) = root.split_vertically(360);
        let x_max = records.last().map_or(1, |r| r.step).max(1) as f32;
        let panels: [(&DrawingArea<_, _>, [(fn(&StepRecord) -> f32, RGBColor); 2]); 2] = [
            (&top, [(|r| r.loss_d, RGBColor(200, 40, 40)), (|r| r.loss_g, RGBColor(40, 80, 200))]),
            (&bottom, [(|r| r.d_real, RGBColor(30, 150, 60)), (|r| r.d_fake, RGBColor(230, 140, 20))]),
        ];
        for (area, series) in panels {
            let values = records.iter().flat_map(|r| series.iter().map(move |(f, _)| f(r))).filter(|v| v.is_finite());
            let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let pad = ((hi - lo) * 0.05).max(1e-3);
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .build_cartesian_2d(0f32..x_max, (lo - pad)..(hi + pad))
                .map_err(|e| err(e.to_string()))?;
            if lo < 0.0 && hi > 0.0 {
                chart
                    .draw_series(LineSeries::new([(0.0, 0.0), (x_max, 0.0)], RGBColor(220, 220, 220)))
                    .map_err(|e| err(e.to_string()))?;
            }
            for (f, colour) in series {
                let pts = records.iter().filter(|r| f(r).is_finite()).map(|r| (r.step as f32, f(r)));
                chart.draw_series(LineSeries::new(pts, colour)).map_err(|e| err(e.to_string()))?;
            }
        }
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// Writes `(N, C, H, W)` images in [-1, 1] (C = 1 or 3) as a grid with `cols` columns.
pub fn image_grid_png(path: &Path, images: &candle_core::Tensor, cols: usize) -> Result<()> {
    let err = image_err(path);
    let (n, c, h, w) = images.dims4()?;
    if c != 1 && c != 3 {
        return Err(err(format!("cannot draw images with {c} channels")));
    }
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let pixels: Vec<f32> = images.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
    let (gw, gh) = ((cols * (w + 2)) as u32, (rows * (h + 2)) as u32);
    let mut grid = image::RgbImage::from_pixel(gw, gh, image::Rgb([255, 255, 255]));
    for i in 0..n {
        let (ox, oy) = ((i % cols) * (w + 2) + 1, (i / cols) * (h + 2) + 1);
        for y in 0..h {
            for x in 0..w {
                let v = |ch: usize| {
                    let p = pixels[((i * c + ch.min(c - 1)) * h + y) * w + x];
                    ((p.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
                };
                grid.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb([v(0), v(1), v(2)]));
            }
        }
    }
    grid.save(path).map_err(|e| err(e.to_string()))
}

/// Stacks picture files top to bottom, each enlarged by `zoom` and labelled on its left ("step 100"):
/// the evolution of a run's samples, one row per stage.
pub fn labelled_rows_png(path: &Path, rows: &[(String, std::path::PathBuf)], zoom: u32) -> Result<()> {
    let err = image_err(path);
    let zoom = zoom.max(1);
    let mut pictures = Vec::with_capacity(rows.len());
    for (label, file) in rows {
        let img = image::open(file).map_err(|e| image_err(file)(e.to_string()))?.to_rgb8();
        let (w, h) = (img.width() * zoom, img.height() * zoom);
        pictures.push((label, image::imageops::resize(&img, w, h, image::imageops::FilterType::Nearest)));
    }
    if pictures.is_empty() {
        return Err(err("no rows to draw".into()));
    }
    let label_w = rows.iter().map(|(l, _)| l.chars().count() as u32 * 8 + 12).max().unwrap_or(0);
    let width = label_w + pictures.iter().map(|(_, p)| p.width()).max().unwrap_or(0);
    let height = pictures.iter().map(|(_, p)| p.height()).sum();
    let mut out = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let mut y = 0;
    for (label, picture) in &pictures {
        image::imageops::replace(&mut out, picture, label_w as i64, y as i64);
        draw_text(&mut out, label, 4, y + picture.height().saturating_sub(8) / 2, 1, [20, 20, 20]);
        y += picture.height();
    }
    out.save(path).map_err(|e| err(e.to_string()))
}

/// Draws `text` in 8x8 bitmap glyphs (scaled by `scale`) into an RGB image at (x, y), clipped.
fn draw_text(img: &mut image::RgbImage, text: &str, x: u32, y: u32, scale: u32, colour: [u8; 3]) {
    use font8x8::legacy::BASIC_LEGACY;
    for (i, ch) in text.chars().enumerate() {
        let glyph = BASIC_LEGACY.get(ch as usize).copied().unwrap_or(BASIC_LEGACY[b'?' as usize]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits >> col & 1 == 1 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (px, py) = (x + (i as u32 * 8 + col) * scale + dx, y + row as u32 * scale + dy);
                            if px < img.width() && py < img.height() {
                                img.put_pixel(px, py, image::Rgb(colour));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Writes square RGB images (8-bit rows, `size` x `size`) as a grid with each image's caption
/// printed under it (ASCII, wrapped to the cell, at most `caption_lines` lines). `zoom` enlarges images.
pub fn captioned_grid_png(
    path: &Path,
    images: &[Vec<u8>],
    size: usize,
    captions: &[String],
    cols: usize,
    zoom: u32,
    caption_lines: usize,
) -> Result<()> {
    let err = image_err(path);
    if images.is_empty() || images.len() != captions.len() {
        return Err(err(format!("{} images for {} captions", images.len(), captions.len())));
    }
    let cols = cols.clamp(1, images.len()) as u32;
    let rows = (images.len() as u32).div_ceil(cols);
    let cell_w = size as u32 * zoom + 8;
    let text_h = caption_lines as u32 * 10 + 4;
    let cell_h = size as u32 * zoom + text_h + 8;
    let mut img = image::RgbImage::from_pixel(cols * cell_w, rows * cell_h, image::Rgb([255, 255, 255]));
    for (i, (pixels, caption)) in images.iter().zip(captions).enumerate() {
        if pixels.len() != 3 * size * size {
            return Err(err(format!("image {i} has {} bytes, expected {}", pixels.len(), 3 * size * size)));
        }
        let (ox, oy) = ((i as u32 % cols) * cell_w + 4, (i as u32 / cols) * cell_h + 4);
        for y in 0..size as u32 * zoom {
            for x in 0..size as u32 * zoom {
                let j = 3 * ((y / zoom) as usize * size + (x / zoom) as usize);
                img.put_pixel(ox + x, oy + y, image::Rgb([pixels[j], pixels[j + 1], pixels[j + 2]]));
            }
        }
        let width = (size as u32 * zoom / 8) as usize;
        for (l, line) in wrap(caption, width).iter().take(caption_lines).enumerate() {
            draw_text(&mut img, line, ox, oy + size as u32 * zoom + 3 + l as u32 * 10, 1, [20, 20, 20]);
        }
    }
    img.save(path).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_written_as_pngs() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("s.png");
        scatter_png(&p, &[[0.0, 0.1], [1.0, f32::NAN]], &[[0.0, 0.0], [2.0, 0.0]], 0.06, Some(&[0, 1])).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!((img.width(), img.height()), (640, 640));
        let records: Vec<StepRecord> = (1..=10)
            .map(|s| StepRecord { step: s, loss_d: 1.0 / s as f32, loss_g: s as f32, ..Default::default() })
            .collect();
        let l = tmp.path().join("l.png");
        loss_png(&l, &records).unwrap();
        assert_eq!(image::open(&l).unwrap().width(), 900);
        let imgs = candle_core::Tensor::new(&[[[[-1f32, 1.0], [0.0, 0.5]]]], &candle_core::Device::Cpu).unwrap();
        let g = tmp.path().join("g.png");
        image_grid_png(&g, &imgs, 4).unwrap();
        let grid = image::open(&g).unwrap().to_rgb8();
        assert_eq!(grid.dimensions(), (4, 4));
        assert_eq!(grid.get_pixel(1, 1).0, [0, 0, 0]);
        assert_eq!(grid.get_pixel(2, 1).0, [255, 255, 255]);
        assert_eq!(grid.get_pixel(1, 2).0, [128, 128, 128]);
    }

    #[test]
    fn captioned_grids_wrap_and_print_their_captions() {
        assert_eq!(wrap("a small red bird with blue wings", 12), vec!["a small red", "bird with", "blue wings"]);
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c.png");
        let red = [255u8, 0, 0].repeat(16 * 16);
        captioned_grid_png(&p, &[red.clone(), red], 16, &["a red bird".into(), "I".into()], 2, 4, 2).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (2 * (64 + 8), 64 + 24 + 8));
        assert_eq!(img.get_pixel(10, 10).0, [255, 0, 0]);
        // Text pixels are dark, below the image.
        let dark = (0..img.width())
            .flat_map(|x| (68..img.height()).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
            .count();
        assert!(dark > 20, "{dark} text pixels");
        assert!(captioned_grid_png(&p, &[vec![0; 3]], 16, &["x".into()], 1, 1, 1).is_err());
    }
}
