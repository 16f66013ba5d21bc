//! Minibatch standard deviation (Karras et al., 2018): a discriminator layer that lets the
//! discriminator see how much a batch varies, so a generator that draws near-identical samples is
//! told apart from the data. StyleGAN's residual discriminator and the DCGAN discriminator share it.

use candle_core::{Tensor, D};

/// The largest group size up to `wanted` that divides `batch`.
pub fn group_size(batch: usize, wanted: usize) -> usize {
    (1..=wanted.min(batch).max(1)).rev().find(|&g| batch.is_multiple_of(g)).unwrap_or(1)
}

/// Channels that [`minibatch_stddev`] appends: `features`, or none when `group` is 0 (off).
pub fn appended_channels(group: usize, features: usize) -> usize {
    if group > 0 {
        features
    } else {
        0
    }
}

/// Checks a discriminator's settings for [`minibatch_stddev`] before it builds its layers, naming the
/// discriminator (`owner`) in the error: unless `group` is 0 (off), `features` must be non-zero and divide
/// the `channels` the statistic is taken over.
pub fn check_settings(owner: &str, group: usize, features: usize, channels: usize) -> crate::Result<()> {
    if group > 0 && (features == 0 || !channels.is_multiple_of(features)) {
        return Err(crate::Error::InvalidInput(format!(
            "{owner}: mbstd_features ({features}) must be non-zero and divide the {channels} channels it is taken over"
        )));
    }
    Ok(())
}

/// Minibatch standard deviation of `x` `(B, C, H, W)` (`x` unchanged when `group` is 0): samples are split into groups of up to
/// `group` (the largest such size dividing the batch; member `i` of group `j` is sample `i m + j`,
/// StyleGAN's layout, with `m = B / group`); each group's standard deviation over its members,
/// averaged over channels and positions in `features` slices of the channels, is appended as
/// `features` new constant channels: `(B, C + features, H, W)`.
pub fn minibatch_stddev(x: &Tensor, group: usize, features: usize) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if group == 0 {
        return Ok(x.clone());
    }
    if features == 0 || c % features != 0 {
        candle_core::bail!("minibatch stddev: {c} channels do not split into {features} features");
    }
    let g = group_size(b, group);
    let m = b / g;
    let y = x.reshape(vec![g, m, features, c / features, h, w])?;
    let centred = y.broadcast_sub(&y.mean_keepdim(0)?)?;
    let std = (centred.sqr()?.mean(0)? + 1e-8)?.sqrt()?; // (m, F, c/F, h, w)
    let stat = std.flatten_from(2)?.mean(D::Minus1)?; // (m, F)
    let stat =
        stat.reshape((1, m, features, 1, 1))?.broadcast_as((g, m, features, h, w))?.reshape((b, features, h, w))?;
    Tensor::cat(&[x, &stat.to_dtype(x.dtype())?], 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn appends_each_groups_spread() {
        // Batch of 4 in groups of 2: samples (0, 2) and (1, 3) form the groups (the StyleGAN layout).
        let x = Tensor::new(
            &[[[[1f64]], [[2.0]]], [[[5.0]], [[0.0]]], [[[3.0]], [[6.0]]], [[[5.0]], [[2.0]]]],
            &Device::Cpu,
        )
        .unwrap();
        let y = minibatch_stddev(&x, 2, 1).unwrap();
        assert_eq!(y.dims(), &[4, 3, 1, 1]);
        let sd = |a: f64, b: f64| ((a - b).powi(2) / 4.0 + 1e-8).sqrt();
        let g0 = (sd(1.0, 3.0) + sd(2.0, 6.0)) / 2.0;
        let g1 = (sd(5.0, 5.0) + sd(0.0, 2.0)) / 2.0;
        let got = values(&y.narrow(1, 2, 1).unwrap());
        for (a, b) in got.iter().zip([g0, g1, g0, g1]) {
            assert!((a - b).abs() < 1e-9, "{got:?}");
        }
        assert_eq!(values(&y.narrow(1, 0, 2).unwrap()), values(&x));
        // Group 0 turns it off: nothing appended.
        assert_eq!(values(&minibatch_stddev(&x, 0, 1).unwrap()), values(&x));
        assert_eq!((appended_channels(0, 3), appended_channels(2, 3)), (0, 3));
    }

    #[test]
    fn settings_are_checked_only_when_the_statistic_is_on() {
        assert!(check_settings("d", 0, 0, 3).is_ok());
        assert!(check_settings("d", 4, 1, 3).is_ok());
        assert!(check_settings("d", 4, 3, 6).is_ok());
        for features in [0, 2] {
            let err = check_settings("my discriminator", 4, features, 3).unwrap_err().to_string();
            assert!(err.contains("my discriminator") && err.contains("mbstd_features"), "{err}");
        }
    }

    #[test]
    fn group_size_is_the_largest_divisor_up_to_the_wanted_size() {
        assert_eq!(group_size(6, 4), 3);
        assert_eq!(group_size(64, 4), 4);
        assert_eq!(group_size(5, 4), 1);
        assert_eq!(group_size(2, 4), 2);
    }

    #[test]
    fn rejects_features_that_do_not_split_the_channels() {
        let x = Tensor::zeros((2, 3, 1, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(minibatch_stddev(&x, 2, 2).is_err());
        assert!(minibatch_stddev(&x, 2, 0).is_err());
    }
}
