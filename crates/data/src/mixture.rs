//! 2D Gaussian mixtures: modes on a ring or a grid, optionally conditioned on the mode.

use candle_core::{Device, Tensor};
use condor_core::{Batch, Conditioning, DataSource, Rng};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

use crate::DataError;

/// Where the modes sit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MixtureLayout {
    /// `modes` points evenly spaced on a circle of `radius`, the first at angle 0.
    Ring {
        /// Number of modes.
        modes: usize,
        /// Radius of the circle.
        radius: f32,
    },
    /// A `side` x `side` grid with `spacing` between modes, centred on the origin.
    Grid {
        /// Modes per side.
        side: usize,
        /// Distance between neighbours.
        spacing: f32,
    },
}

/// An equal-weight mixture of isotropic Gaussians in the plane.
#[derive(Clone, Debug)]
pub struct Mixture {
    centers: Vec<[f32; 2]>,
    std: f32,
    conditional: bool,
}

impl Mixture {
    /// A mixture with the given layout and per-mode standard deviation.
    #[allow(clippy::neg_cmp_op_on_partial_ord, reason = "`!(std > 0.0)` also rejects NaN")]
    pub fn new(layout: MixtureLayout, std: f32, conditional: bool) -> Result<Self, DataError> {
        let centers: Vec<[f32; 2]> = match layout {
            MixtureLayout::Ring { modes, radius } => (0..modes)
                .map(|i| {
                    let a = 2.0 * std::f32::consts::PI * i as f32 / modes as f32;
                    [radius * a.cos(), radius * a.sin()]
                })
                .collect(),
            MixtureLayout::Grid { side, spacing } => {
                let offset = (side as f32 - 1.0) / 2.0;
                (0..side * side)
                    .map(|i| [((i / side) as f32 - offset) * spacing, ((i % side) as f32 - offset) * spacing])
                    .collect()
            }
        };
        if centers.is_empty() || !(std > 0.0) {
            return Err(DataError::InvalidConfig("a mixture needs at least one mode and a positive std".into()));
        }
        Ok(Self { centers, std, conditional })
    }

    /// The mode centres.
    pub fn centers(&self) -> &[[f32; 2]] {
        &self.centers
    }

    /// The per-mode standard deviation.
    pub fn std(&self) -> f32 {
        self.std
    }

    /// Whether batches carry the mode as one-hot conditioning.
    pub fn is_conditional(&self) -> bool {
        self.conditional
    }

    /// Draws one point from each mode of `modes`.
    pub fn sample_from_modes(&self, modes: &[usize], rng: &mut Rng) -> Vec<f32> {
        let mut points = Vec::with_capacity(2 * modes.len());
        for &m in modes {
            let (dx, dy): (f32, f32) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
            points.push(self.centers[m][0] + self.std * dx);
            points.push(self.centers[m][1] + self.std * dy);
        }
        points
    }

    /// Draws `n` points and the mode each came from.
    pub fn sample(&self, n: usize, rng: &mut Rng) -> (Vec<f32>, Vec<usize>) {
        let mut points = Vec::with_capacity(2 * n);
        let mut modes = Vec::with_capacity(n);
        for _ in 0..n {
            let m = rng.random_range(0..self.centers.len());
            points.extend(self.sample_from_modes(&[m], rng));
            modes.push(m);
        }
        (points, modes)
    }

    fn one_hot(&self, modes: &[usize], device: &Device) -> condor_core::Result<Option<Conditioning>> {
        if !self.conditional {
            return Ok(None);
        }
        Conditioning::one_hot(modes, self.centers.len(), device).map(Some)
    }
}

impl DataSource for Mixture {
    fn sample_shape(&self) -> Vec<usize> {
        vec![2]
    }

    fn cond_dim(&self) -> usize {
        if self.conditional {
            self.centers.len()
        } else {
            0
        }
    }

    fn batch(&self, _index: u64, batch_size: usize, rng: &mut Rng, device: &Device) -> condor_core::Result<Batch> {
        let (points, modes) = self.sample(batch_size, rng);
        Ok(Batch {
            samples: Tensor::from_vec(points, (batch_size, 2), device)?,
            conditioning: self.one_hot(&modes, device)?,
            labels: Some(modes),
        })
    }

    fn labelled(
        &self,
        per_class: usize,
        seed: u64,
        device: &Device,
    ) -> condor_core::Result<Option<condor_core::Labelled>> {
        let classes = self.centers.len();
        let labels: Vec<usize> = (0..classes).flat_map(|m| std::iter::repeat_n(m, per_class)).collect();
        let points = self.sample_from_modes(&labels, &mut condor_core::derived_rng(seed, &[]));
        let samples = Tensor::from_vec(points, (labels.len(), 2), device)?;
        Ok(Some(condor_core::Labelled { samples, labels, classes }))
    }

    fn conditioning(
        &self,
        _index: u64,
        batch_size: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> condor_core::Result<Option<Conditioning>> {
        let modes: Vec<usize> = (0..batch_size).map(|_| rng.random_range(0..self.centers.len())).collect();
        self.one_hot(&modes, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use condor_core::derived_rng;

    #[test]
    fn layouts_put_modes_where_expected() {
        let ring = Mixture::new(MixtureLayout::Ring { modes: 8, radius: 2.0 }, 0.02, false).unwrap();
        assert_eq!(ring.centers().len(), 8);
        assert!((ring.centers()[2][0]).abs() < 1e-6 && (ring.centers()[2][1] - 2.0).abs() < 1e-6);
        let grid = Mixture::new(MixtureLayout::Grid { side: 5, spacing: 2.0 }, 0.05, false).unwrap();
        assert_eq!(grid.centers().len(), 25);
        assert_eq!(grid.centers()[0], [-4.0, -4.0]);
        assert_eq!(grid.centers()[24], [4.0, 4.0]);
        assert!(Mixture::new(MixtureLayout::Ring { modes: 0, radius: 1.0 }, 0.1, false).is_err());
    }

    #[test]
    fn samples_stay_near_their_mode_and_are_seeded() {
        let m = Mixture::new(MixtureLayout::Ring { modes: 8, radius: 2.0 }, 0.02, true).unwrap();
        let (p, modes) = m.sample(4000, &mut derived_rng(1, &[]));
        let (p2, _) = m.sample(4000, &mut derived_rng(1, &[]));
        assert_eq!(p, p2);
        let mut within = 0;
        for (i, &k) in modes.iter().enumerate() {
            let d = ((p[2 * i] - m.centers()[k][0]).powi(2) + (p[2 * i + 1] - m.centers()[k][1]).powi(2)).sqrt();
            within += (d < 3.0 * 0.02) as usize;
        }
        // For a 2D Gaussian, P(r < 3 sigma) = 1 - exp(-4.5) = 0.989.
        let share = within as f64 / 4000.0;
        assert!((share - 0.989).abs() < 0.01, "share {share}");
        let b = m.batch(0, 5, &mut derived_rng(2, &[]), &Device::Cpu).unwrap();
        let c = b.conditioning.unwrap();
        assert_eq!(c.embedding.dims(), &[5, 8]);
        let rows: Vec<Vec<f32>> = c.embedding.to_vec2().unwrap();
        for (row, &k) in rows.iter().zip(b.labels.unwrap().iter()) {
            assert_eq!(row[k], 1.0);
            assert_eq!(row.iter().sum::<f32>(), 1.0);
        }
    }

    #[test]
    fn the_labelled_subset_holds_points_of_each_mode() {
        let ring = Mixture::new(MixtureLayout::Ring { modes: 4, radius: 2.0 }, 0.02, false).unwrap();
        let set = ring.labelled(3, 1, &Device::Cpu).unwrap().unwrap();
        assert_eq!((set.classes, set.labels.clone()), (4, vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]));
        for (p, &m) in set.samples.to_vec2::<f32>().unwrap().iter().zip(&set.labels) {
            let c = ring.centers()[m];
            assert!((p[0] - c[0]).hypot(p[1] - c[1]) < 0.1, "{p:?} is not near mode {m}");
        }
    }
}
