//! The discriminator update the built-in recipes share: its loss checked finite and logged with the
//! mean scores on real and generated samples, then applied.

use candle_core::Tensor;
use condor_core::{Scalars, TrainContext};

/// What one discriminator update reports: the loss (named `what` in a divergence error), the mean
/// scores the trainer logs as `d_real` and `d_fake`, and other scalars by name.
pub struct DiscriminatorStep<'a> {
    /// The loss to minimise.
    pub loss: &'a Tensor,
    /// The loss's name in the error of a diverged run.
    pub what: &'a str,
    /// Mean score on real samples.
    pub real: &'a Tensor,
    /// Mean score on generated samples.
    pub fake: &'a Tensor,
    /// Other scalars to log.
    pub extra: &'a [(&'a str, &'a Tensor)],
}

/// Logs `step` into `log` (`loss_d`, `d_real`, `d_fake` and its extra scalars, read in one go) and
/// updates network `name` on its loss; a non-finite loss stops the run before the update.
pub fn update_discriminator(
    cx: &mut dyn TrainContext,
    log: &mut Scalars,
    name: &str,
    step: DiscriminatorStep,
) -> condor_core::Result<()> {
    let mut tensors = vec![step.loss, step.real, step.fake];
    tensors.extend(step.extra.iter().map(|(_, t)| *t));
    let values = cx.scalars(&tensors)?;
    log.insert("loss_d".into(), cx.finite(step.what, values[0])?);
    log.insert("d_real".into(), values[1]);
    log.insert("d_fake".into(), values[2]);
    for ((key, _), value) in step.extra.iter().zip(&values[3..]) {
        log.insert((*key).into(), *value);
    }
    cx.update(name, step.loss)?;
    Ok(())
}
