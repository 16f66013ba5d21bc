//! PNG pictures: 2D sample scatter plots, curves over training steps and image grids.
//!
//! plotters renders text only through system fonts, so text (axis values, legends, captions) is printed
//! in 8x8 bitmap glyphs. Scatter plots draw grey circles at the modes (radius 3 sigma) and samples
//! coloured by requested mode or dark blue; curves take the colours their caller gives.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{InferError, Result};

fn image_err(path: &Path) -> impl Fn(String) -> InferError + '_ {
    move |reason| InferError::Image { path: path.to_path_buf(), reason }
}

/// Text printed over a finished plot in bitmap glyphs (plotters draws text only with system fonts).
struct Label {
    text: String,
    /// Left edge in pixels (clipped to the image).
    x: i32,
    /// Top edge in pixels (clipped to the image).
    y: i32,
    colour: [u8; 3],
}

/// Draws with plotters into an RGB buffer of `size`, prints the labels `draw` returns over it, and saves
/// it as a PNG with the `image` crate.
fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<Vec<Label>>,
) -> Result<()> {
    let mut buffer = vec![0u8; (size.0 * size.1 * 3) as usize];
    let labels = draw(BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area())?;
    let mut img = image::RgbImage::from_raw(size.0, size.1, buffer).expect("buffer has the image's size");
    for label in labels {
        draw_text(&mut img, &label.text, label.x.max(0) as u32, label.y.max(0) as u32, 1, label.colour);
    }
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
        root.present().map_err(|e| err(e.to_string()))?;
        Ok(Vec::new())
    })
}

/// A named line of a [`curves_png`] panel: `(x, y)` points (non-finite values are skipped).
pub struct Series {
    /// The legend's text.
    pub name: String,
    /// Its colour, RGB.
    pub colour: [u8; 3],
    /// The points, in increasing x.
    pub points: Vec<(f32, f32)>,
}

/// Writes panels of curves stacked top to bottom over a shared x axis labelled "step" (loss curves,
/// scores): each series raw in a pale shade with its running mean over about 2% of its points on top,
/// round-valued grid lines with their values, and a legend in each panel. Writes nothing when every
/// series is empty.
pub fn curves_png(path: &Path, panels: &[Vec<Series>]) -> Result<()> {
    let err = image_err(path);
    let all = || panels.iter().flatten().flat_map(|s| s.points.iter()).filter(|p| p.1.is_finite());
    if panels.is_empty() || all().next().is_none() {
        return Ok(());
    }
    let x_max = all().map(|p| p.0).fold(1f32, f32::max);
    let panel_height = 300;
    draw_png(path, (900, panel_height * panels.len() as u32), |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let areas = root.split_evenly((panels.len(), 1));
        let mut labels = Vec::new();
        for (area, series) in areas.iter().zip(panels) {
            let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|v| v.is_finite());
            let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
            let pad = ((hi - lo) * 0.05).max(1e-3);
            let (y_lo, y_hi) = (lo - pad, hi + pad);
            let mut chart = ChartBuilder::on(area)
                .margin_left(72)
                .margin_right(16)
                .margin_top(24)
                .margin_bottom(26)
                .build_cartesian_2d(0f32..x_max, y_lo..y_hi)
                .map_err(|e| err(e.to_string()))?;
            let grid = RGBColor(230, 230, 230);
            let (x_ticks, x_step) = ticks(0.0, x_max, 8);
            let (y_ticks, y_step) = ticks(y_lo, y_hi, 6);
            for &x in &x_ticks {
                chart.draw_series(LineSeries::new([(x, y_lo), (x, y_hi)], grid)).map_err(|e| err(e.to_string()))?;
            }
            for &y in &y_ticks {
                chart.draw_series(LineSeries::new([(0.0, y), (x_max, y)], grid)).map_err(|e| err(e.to_string()))?;
            }
            for s in series {
                let colour = RGBColor(s.colour[0], s.colour[1], s.colour[2]);
                let pts: Vec<(f32, f32)> = s.points.iter().copied().filter(|p| p.1.is_finite()).collect();
                let window = (pts.len() / 50).max(1);
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), colour.mix(0.25)))
                    .map_err(|e| err(e.to_string()))?;
                chart
                    .draw_series(LineSeries::new(running_mean(&pts, window), colour.stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?;
            }
            let (xs, ys) = chart.plotting_area().get_pixel_range();
            let frame = RGBColor(120, 120, 120);
            let corners = [(0.0, y_lo), (x_max, y_lo), (x_max, y_hi), (0.0, y_hi), (0.0, y_lo)];
            chart.draw_series(LineSeries::new(corners, frame)).map_err(|e| err(e.to_string()))?;
            let dark = [60, 60, 60];
            for &y in &y_ticks {
                let text = tick_label(y, y_step);
                let (_, py) = chart.backend_coord(&(0.0, y));
                labels.push(Label { x: xs.start - 6 - 8 * text.len() as i32, y: py - 4, text, colour: dark });
            }
            for &x in &x_ticks {
                let text = tick_label(x, x_step);
                let (px, _) = chart.backend_coord(&(x, y_lo));
                labels.push(Label { x: px - 4 * text.len() as i32, y: ys.end + 6, text, colour: dark });
            }
            labels.push(Label { x: xs.end - 32, y: ys.end + 16, text: "step".into(), colour: dark });
            let mut legend_x = xs.start;
            for s in series {
                labels.push(Label { x: legend_x, y: ys.start - 16, text: s.name.clone(), colour: s.colour });
                legend_x += 8 * (s.name.len() as i32 + 3);
            }
        }
        root.present().map_err(|e| err(e.to_string()))?;
        Ok(labels)
    })
}

/// Trailing means of `points`' values over `window` points (fewer at the start).
fn running_mean(points: &[(f32, f32)], window: usize) -> Vec<(f32, f32)> {
    let mut sum = 0f64;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y as f64;
            if i >= window {
                sum -= points[i - window].1 as f64;
            }
            (x, (sum / (i + 1).min(window) as f64) as f32)
        })
        .collect()
}

/// About `count` round values (1, 2 or 5 times a power of ten apart) inside `[lo, hi]`, and their spacing.
fn ticks(lo: f32, hi: f32, count: usize) -> (Vec<f32>, f32) {
    let raw = ((hi - lo) / count.max(1) as f32).max(f32::MIN_POSITIVE);
    let power = 10f32.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|&s| s >= raw).unwrap_or(10.0 * power);
    let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    ((first..=last).map(|i| i as f32 * step).collect(), step)
}

/// `value` with as many decimals as the tick spacing `step` needs.
fn tick_label(value: f32, step: f32) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let value = if value.abs() < step * 1e-3 { 0.0 } else { value };
    format!("{value:.decimals$}")
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
        let curve = |name: &str, colour, f: fn(f32) -> f32| Series {
            name: name.into(),
            colour,
            points: (1..=10).map(|s| (s as f32, f(s as f32))).collect(),
        };
        let panels = vec![
            vec![
                curve("discriminator loss", [200, 40, 40], |s| 1.0 / s),
                curve("generator loss", [40, 80, 200], |s| s),
            ],
            vec![curve("D(x) on real", [30, 150, 60], |_| f32::NAN)],
        ];
        let l = tmp.path().join("l.png");
        curves_png(&l, &panels).unwrap();
        let plot = image::open(&l).unwrap().to_rgb8();
        assert_eq!(plot.dimensions(), (900, 600));
        // The top panel's legend is printed in the discriminator's colour above the plot.
        let legend = (0..900).flat_map(|x| (0..20).map(move |y| (x, y)));
        let red = legend.filter(|&(x, y)| plot.get_pixel(x, y).0 == [200, 40, 40]).count();
        assert!(red > 30, "{red} legend pixels");
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
    fn loss_plot_axes_have_round_ticks_and_smoothed_curves() {
        let (t, s) = ticks(0.0, 3000.0, 8);
        assert_eq!(s, 500.0);
        assert_eq!(t, vec![0.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0]);
        let (t, s) = ticks(-0.12, 0.93, 6);
        assert!((s - 0.2).abs() < 1e-6, "{s}");
        let labels: Vec<String> = t.iter().map(|&v| tick_label(v, s)).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8"]);
        assert_eq!(tick_label(-1e-9, 0.2), "0.0");
        assert_eq!(tick_label(1500.0, 500.0), "1500");
        assert_eq!(tick_label(0.025, 0.005), "0.025");
        let smooth = running_mean(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 7.0)], 2);
        assert_eq!(smooth, vec![(0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (3.0, 6.0)]);
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
