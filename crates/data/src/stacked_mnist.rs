//! Stacked MNIST (Metz et al. 2016, "Unrolled Generative Adversarial Networks"; Srivastava et al. 2017,
//! "VEEGAN"): three MNIST digits as the red, green and blue channels of one image, so that the data has
//! 1,000 modes (one per ordered triple of digit values). A generator that collapses onto some of them
//! shows it in the modes its samples reach, read channel by channel by a digit classifier.
//!
//! As in the VEEGAN experiment (and PacGAN's, which reuses it), the training set is a fixed number of
//! triples drawn with replacement from the digits; triple `i`'s three digits derive from `(seed, i)`, so
//! every run sees the same set and no list is stored.

use rand::Rng as _;

use crate::loader::CaptionedSource;
use crate::mnist::DigitSet;
use crate::DataError;

/// Modes of Stacked MNIST: ordered triples of digit values.
pub const MODES: usize = 1000;

/// The mode of a triple of digit values `(red, green, blue)`: `100 red + 10 green + blue`.
pub fn mode_of(digits: [usize; 3]) -> usize {
    100 * digits[0] + 10 * digits[1] + digits[2]
}

/// A fixed set of `count` stacked triples of `digits`.
pub struct StackedDigits {
    digits: DigitSet,
    count: usize,
    seed: u64,
}

impl StackedDigits {
    /// `count` triples of the digits of `digits`, chosen by `seed`.
    pub fn new(digits: DigitSet, count: usize, seed: u64) -> Result<Self, DataError> {
        if count == 0 || digits.len() == 0 {
            return Err(DataError::InvalidConfig("stacked MNIST needs at least one triple and one digit".into()));
        }
        Ok(Self { digits, count, seed })
    }

    /// The indices of the digits in triple `index` (red, green, blue).
    pub fn triple(&self, index: usize) -> [usize; 3] {
        let mut rng = condor_core::derived_rng(self.seed, &[index as u64]);
        let n = self.digits.len();
        [rng.random_range(0..n), rng.random_range(0..n), rng.random_range(0..n)]
    }
}

impl CaptionedSource for StackedDigits {
    fn len(&self) -> usize {
        self.count
    }
    fn image(&self, index: usize, size: usize) -> Result<Vec<f32>, DataError> {
        Ok(self.triple(index).iter().flat_map(|&i| self.digits.pixels(i, size)).collect())
    }
    fn captions(&self, _index: usize) -> Vec<String> {
        Vec::new()
    }
    fn label(&self, index: usize) -> Option<usize> {
        Some(mode_of(self.triple(index).map(|i| self.digits.digits.labels[i] as usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mnist::{Digits, Phrasings, SIDE};

    #[test]
    fn triples_stack_three_digits_as_channels_and_their_mode_reads_them_in_order() {
        // Ten "digits": digit d has all pixels d * 20.
        let digit_set = || {
            let pixels = (0..10u8).flat_map(|d| vec![d * 20; SIDE * SIDE]).collect();
            let digits = Digits { pixels, labels: (0..10).collect(), rows: SIDE, cols: SIDE };
            DigitSet { digits, phrasings: Phrasings::Seen, limit: None }
        };
        let set = StackedDigits::new(digit_set(), 500, 7).unwrap();
        assert_eq!((set.len(), set.channels()), (500, 3));
        let mut modes = std::collections::HashSet::new();
        for i in 0..500 {
            let t = set.triple(i);
            assert_eq!(set.triple(i), t, "triples are fixed");
            let image = set.image(i, SIDE).unwrap();
            assert_eq!(image.len(), 3 * SIDE * SIDE);
            for (c, &d) in t.iter().enumerate() {
                assert!((image[c * SIDE * SIDE + 5] - d as f32 * 20.0 / 255.0).abs() < 1e-6);
            }
            modes.insert(set.label(i).unwrap());
            assert_eq!(set.label(i), Some(100 * t[0] + 10 * t[1] + t[2]));
        }
        // 500 draws of 1,000 equally likely modes reach about 1000 (1 - e^-0.5) = 393 of them.
        assert!((350..=440).contains(&modes.len()), "{}", modes.len());
        let other = StackedDigits::new(digit_set(), 500, 8).unwrap();
        assert!((0..500).any(|i| other.triple(i) != set.triple(i)), "the seed chooses the triples");
    }
}
