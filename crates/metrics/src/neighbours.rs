//! How much of the labels a learned representation holds without being trained on them: the accuracy
//! of a 1-nearest-neighbour classifier on the features (BiGAN's measure of its encoder on MNIST).

use candle_core::{DType, Tensor, D};

/// The share of `queries` whose nearest `reference` row (Euclidean distance between feature rows) has
/// their label. `reference` is `(N, F)` with `reference_labels`; `queries` is `(M, F)` with
/// `query_labels`.
pub fn nearest_neighbour_accuracy(
    reference: &Tensor,
    reference_labels: &[usize],
    queries: &Tensor,
    query_labels: &[usize],
) -> crate::Result<f64> {
    let (n, f) = reference.dims2()?;
    let (m, g) = queries.dims2()?;
    if f != g || n != reference_labels.len() || m != query_labels.len() || n == 0 {
        return Err(crate::Error::Input(format!(
            "reference {:?} with {} labels and queries {:?} with {} labels do not fit",
            reference.dims(),
            reference_labels.len(),
            queries.dims(),
            query_labels.len()
        )));
    }
    let (reference, queries) = (reference.to_dtype(DType::F32)?, queries.to_dtype(DType::F32)?);
    // |q - r|^2 = |q|^2 - 2 q.r + |r|^2; |q|^2 is the same for every r of a query.
    let cross = queries.matmul(&reference.t()?)?;
    let norms = reference.sqr()?.sum(1)?.unsqueeze(0)?;
    let nearest = norms.broadcast_sub(&(cross * 2.0)?)?.argmin(D::Minus1)?.to_vec1::<u32>()?;
    let right = nearest.iter().zip(query_labels).filter(|(&i, &l)| reference_labels[i as usize] == l).count();
    Ok(right as f64 / m.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn each_query_takes_the_label_of_its_nearest_reference() {
        let dev = Device::Cpu;
        let reference = Tensor::new(&[[0.0f32, 0.0], [10.0, 0.0], [0.0, 10.0]], &dev).unwrap();
        let queries = Tensor::new(&[[1.0f32, 1.0], [9.0, 2.0], [2.0, 7.0], [6.0, 0.0]], &dev).unwrap();
        // Nearest: 0, 1, 2, 1 → labels 5, 6, 7, 6.
        let accuracy = nearest_neighbour_accuracy(&reference, &[5, 6, 7], &queries, &[5, 6, 7, 5]).unwrap();
        assert_eq!(accuracy, 0.75);
        assert!(nearest_neighbour_accuracy(&reference, &[5, 6], &queries, &[5, 6, 7, 5]).is_err());
    }
}
