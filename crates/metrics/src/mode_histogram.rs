//! How a set of samples spreads over a dataset's discrete modes (Stacked MNIST's 1,000 digit triples):
//! the modes reached and the KL divergence of the samples' mode histogram to the uniform one, the two
//! figures of the VEEGAN and PacGAN tables.

use serde::{Deserialize, Serialize};

/// The samples' histogram over `modes` modes and its two summary figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModeHistogram {
    /// Number of modes the data has.
    pub modes: usize,
    /// Samples in each mode.
    pub counts: Vec<usize>,
    /// Modes with at least one sample.
    pub covered: usize,
    /// `KL(q || uniform) = sum_m q_m ln(q_m * modes)` for the samples' mode frequencies `q` (natural
    /// log): 0 when the samples spread evenly, `ln(modes)` when they all fall in one mode.
    pub kl_to_uniform: f64,
}

/// The histogram of samples whose modes are `assigned` (each below `modes`; others are ignored).
pub fn mode_histogram(assigned: &[usize], modes: usize) -> ModeHistogram {
    let mut counts = vec![0usize; modes];
    for &m in assigned.iter().filter(|&&m| m < modes) {
        counts[m] += 1;
    }
    let total = counts.iter().sum::<usize>().max(1) as f64;
    let kl_to_uniform = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let q = c as f64 / total;
            q * (q * modes as f64).ln()
        })
        .sum();
    ModeHistogram { modes, covered: counts.iter().filter(|&&c| c > 0).count(), counts, kl_to_uniform }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_counts_modes_and_its_kl_is_zero_when_even_and_ln_modes_when_collapsed() {
        let even: Vec<usize> = (0..4000).map(|i| i % 1000).collect();
        let h = mode_histogram(&even, 1000);
        assert_eq!((h.covered, h.counts[7]), (1000, 4));
        assert!(h.kl_to_uniform.abs() < 1e-12);
        let collapsed = mode_histogram(&[3; 50], 1000);
        assert_eq!(collapsed.covered, 1);
        assert!((collapsed.kl_to_uniform - 1000f64.ln()).abs() < 1e-12);
        // Half the samples in mode 0, half in mode 1, of 4 modes: ln 2.
        let two = mode_histogram(&[0, 1, 0, 1, 9], 4);
        assert_eq!((two.covered, two.counts.clone()), (2, vec![2, 2, 0, 0]));
        assert!((two.kl_to_uniform - 2f64.ln()).abs() < 1e-12);
    }
}
