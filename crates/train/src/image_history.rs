//! The history of generated images that CycleGAN's discriminators also see (Shrivastava et al. 2017;
//! Zhu et al. 2017 section 4): up to `capacity` earlier images, so that a discriminator does not
//! forget what the generator drew a few steps ago.

use candle_core::Tensor;
use condor_core::Rng;
use rand::Rng as _;

/// A buffer of up to `capacity` images, as CycleGAN's `ImagePool`.
pub struct ImageHistory {
    capacity: usize,
    images: Vec<Tensor>,
}

impl ImageHistory {
    /// An empty buffer; `capacity` 0 turns it off (every query returns the images given).
    pub fn new(capacity: usize) -> Self {
        Self { capacity, images: Vec::new() }
    }

    /// The images stored.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether it holds no image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The images the discriminator sees for a batch `fresh` `(B, ...)` of new images: while the buffer
    /// fills, each new image is stored and returned; once it is full, each is returned with
    /// probability 1/2, and otherwise a stored image drawn at random is returned and the new image
    /// takes its place. Detached from the graph.
    pub fn query(&mut self, fresh: &Tensor, rng: &mut Rng) -> candle_core::Result<Tensor> {
        if self.capacity == 0 {
            return Ok(fresh.detach());
        }
        let mut out = Vec::with_capacity(fresh.dim(0)?);
        for i in 0..fresh.dim(0)? {
            let image = fresh.get(i)?.detach();
            if self.images.len() < self.capacity {
                self.images.push(image.clone());
                out.push(image);
            } else if rng.random_bool(0.5) {
                let k = rng.random_range(0..self.images.len());
                out.push(std::mem::replace(&mut self.images[k], image));
            } else {
                out.push(image);
            }
        }
        Tensor::stack(&out, 0)
    }

    /// The stored images as one `(N, ...)` tensor, for checkpoints; `None` when empty.
    pub fn to_tensor(&self) -> candle_core::Result<Option<Tensor>> {
        if self.images.is_empty() {
            return Ok(None);
        }
        Tensor::stack(&self.images, 0).map(Some)
    }

    /// Replaces the stored images with the rows of `t` (what [`Self::to_tensor`] wrote).
    pub fn load(&mut self, t: &Tensor) -> Result<(), String> {
        let n = t.dim(0).map_err(|e| e.to_string())?;
        if n > self.capacity {
            return Err(format!("{n} stored images for a history of {}", self.capacity));
        }
        self.images = (0..n).map(|i| t.get(i)).collect::<candle_core::Result<_>>().map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn batch(start: f32, n: usize) -> Tensor {
        Tensor::arange(start, start + n as f32, &Device::Cpu).unwrap().reshape((n, 1)).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn it_fills_then_swaps_about_half_of_the_images_for_stored_ones() {
        let mut rng = condor_core::derived_rng(1, &[]);
        let mut h = ImageHistory::new(50);
        // Filling: every image comes back as it is.
        for b in 0..5 {
            assert_eq!(
                values(&h.query(&batch(10.0 * b as f32, 10), &mut rng).unwrap()),
                values(&batch(10.0 * b as f32, 10))
            );
        }
        assert_eq!(h.len(), 50);
        // Full: about half of 2,000 new images are swapped for stored ones (all of which are older).
        let (mut swapped, mut total) = (0, 0);
        for b in 0..200 {
            let start = 1000.0 + 10.0 * b as f32;
            let out = values(&h.query(&batch(start, 10), &mut rng).unwrap());
            swapped += out.iter().enumerate().filter(|(i, v)| **v != start + *i as f32).count();
            assert!(out.iter().all(|v| *v < start + 10.0));
            total += 10;
        }
        let share = swapped as f64 / total as f64;
        assert!((0.45..0.55).contains(&share), "{share}");
        assert_eq!(h.len(), 50);
    }

    #[test]
    fn a_saved_history_answers_as_the_original_would() {
        let mut rng = condor_core::derived_rng(2, &[]);
        let mut h = ImageHistory::new(4);
        h.query(&batch(0.0, 6), &mut rng).unwrap();
        let mut copy = ImageHistory::new(4);
        copy.load(&h.to_tensor().unwrap().unwrap()).unwrap();
        let (mut r1, mut r2) = (condor_core::derived_rng(3, &[]), condor_core::derived_rng(3, &[]));
        assert_eq!(
            values(&h.query(&batch(100.0, 8), &mut r1).unwrap()),
            values(&copy.query(&batch(100.0, 8), &mut r2).unwrap())
        );
        assert!(ImageHistory::new(2).load(&batch(0.0, 3)).is_err());
        assert!(ImageHistory::new(0).to_tensor().unwrap().is_none());
        assert_eq!(values(&ImageHistory::new(0).query(&batch(7.0, 2), &mut r1).unwrap()), vec![7.0, 8.0]);
    }
}
