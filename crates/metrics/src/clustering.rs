//! Scoring an unsupervised clustering against labels: the confusion counts, and the accuracy under the
//! best one-to-one matching of clusters to labels (as InfoGAN's categorical code is scored against the
//! digits it was never shown).

use serde::{Deserialize, Serialize};

/// A clustering's agreement with the labels under the best one-to-one matching.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchedAccuracy {
    /// The label each cluster is matched to.
    pub assignment: Vec<usize>,
    /// Items whose cluster is matched to their label.
    pub matched: usize,
    /// All items.
    pub total: usize,
    /// `confusion[cluster][label]`: items of each label in each cluster.
    pub confusion: Vec<Vec<usize>>,
}

impl MatchedAccuracy {
    /// The share of matched items.
    pub fn accuracy(&self) -> f64 {
        self.matched as f64 / self.total.max(1) as f64
    }

    /// The share of the others, the error the InfoGAN paper reports.
    pub fn error(&self) -> f64 {
        1.0 - self.accuracy()
    }
}

/// The most labels [`matched_accuracy`] matches over (its search is exponential in them).
pub const MAX_LABELS: usize = 20;

/// Scores cluster indices (below `clusters`) against labels (below `labels`), matching each cluster to a
/// distinct label so that the most items agree. `clusters` must not exceed `labels`, nor `labels`
/// [`MAX_LABELS`].
pub fn matched_accuracy(
    cluster_of: &[usize],
    label_of: &[usize],
    clusters: usize,
    labels: usize,
) -> crate::Result<MatchedAccuracy> {
    let bad = |m: String| crate::Error::Input(m);
    if cluster_of.len() != label_of.len() {
        return Err(bad(format!("{} clusters for {} labels", cluster_of.len(), label_of.len())));
    }
    if clusters > labels || labels > MAX_LABELS {
        return Err(bad(format!("cannot match {clusters} clusters to {labels} labels (at most {MAX_LABELS})")));
    }
    let mut confusion = vec![vec![0usize; labels]; clusters];
    for (&c, &l) in cluster_of.iter().zip(label_of) {
        if c >= clusters || l >= labels {
            return Err(bad(format!("cluster {c} or label {l} out of range ({clusters}, {labels})")));
        }
        confusion[c][l] += 1;
    }
    let (matched, assignment) = best_assignment(&confusion, labels);
    Ok(MatchedAccuracy { assignment, matched, total: cluster_of.len(), confusion })
}

/// The assignment of rows to distinct columns that maximises the sum of `weights[row][column]`: a
/// dynamic programme over the sets of columns taken by the first rows.
fn best_assignment(weights: &[Vec<usize>], columns: usize) -> (usize, Vec<usize>) {
    let rows = weights.len();
    let states = 1usize << columns;
    // best[mask]: the best sum for the first popcount(mask) rows taking the columns in mask.
    let mut best = vec![None::<usize>; states];
    let mut choice = vec![0usize; states];
    best[0] = Some(0);
    for mask in 0..states {
        let Some(value) = best[mask] else { continue };
        let row = mask.count_ones() as usize;
        if row == rows {
            continue;
        }
        for column in (0..columns).filter(|c| mask & (1 << c) == 0) {
            let next = mask | (1 << column);
            let candidate = value + weights[row][column];
            if best[next].is_none_or(|b| candidate > b) {
                best[next] = Some(candidate);
                choice[next] = column;
            }
        }
    }
    let end = (0..states)
        .filter(|m| m.count_ones() as usize == rows)
        .max_by_key(|&m| (best[m].unwrap_or(0), std::cmp::Reverse(m)))
        .unwrap_or(0);
    let mut assignment = vec![0; rows];
    let mut mask = end;
    for row in (0..rows).rev() {
        assignment[row] = choice[mask];
        mask &= !(1 << choice[mask]);
    }
    (best[end].unwrap_or(0), assignment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relabelled_clustering_scores_perfectly_and_mistakes_count() {
        let labels = [0, 0, 1, 1, 2, 2];
        // Clusters are the labels renamed 0 -> 2, 1 -> 0, 2 -> 1.
        let clusters = [2, 2, 0, 0, 1, 1];
        let m = matched_accuracy(&clusters, &labels, 3, 3).unwrap();
        assert_eq!(m.assignment, vec![1, 2, 0]);
        assert_eq!(m.accuracy(), 1.0);
        // One item moved into another cluster.
        let m = matched_accuracy(&[2, 0, 0, 0, 1, 1], &labels, 3, 3).unwrap();
        assert_eq!(m.matched, 5);
        assert!((m.error() - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn the_matching_is_one_to_one_not_greedy() {
        // Greedy would give cluster 0 label 0 (5 items) and leave cluster 1 with label 1 (0 items):
        // 5 in all; the best one-to-one matching takes 4 + 4.
        let weights = vec![vec![5, 4], vec![4, 0]];
        assert_eq!(best_assignment(&weights, 2), (8, vec![1, 0]));
        // Two clusters that both hold mostly one digit cannot both be matched to it.
        let m = matched_accuracy(&[0, 0, 1, 1, 1], &[0, 0, 0, 0, 1], 2, 2).unwrap();
        assert_eq!(m.matched, 3);
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(matched_accuracy(&[0], &[0, 1], 2, 2).is_err());
        assert!(matched_accuracy(&[3], &[0], 2, 2).is_err());
        assert!(matched_accuracy(&[0], &[0], 3, 2).is_err());
        assert!(matched_accuracy(&[0], &[0], 2, 21).is_err());
    }
}
