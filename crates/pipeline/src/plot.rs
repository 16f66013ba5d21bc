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
}
