//! The updates the built-in recipes share: a loss checked finite and logged with the step's other
//! scalars (read in one go), then applied; for a discriminator, with its mean scores on real and
//! generated samples.

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
    let mut scalars = vec![("d_real", step.real), ("d_fake", step.fake)];
    scalars.extend_from_slice(step.extra);
    log_and_update(cx, log, name, ("loss_d", step.what, step.loss), &scalars)
}

/// Logs the generator `g`'s `loss` as `loss_g` (a non-finite one stops the run before the update) with
/// the `extra` scalars, and updates `g` on it.
pub fn update_generator(
    cx: &mut dyn TrainContext,
    log: &mut Scalars,
    loss: &Tensor,
    extra: &[(&str, &Tensor)],
) -> condor_core::Result<()> {
    log_and_update(cx, log, "g", ("loss_g", "generator loss", loss), extra)
}

/// Reads `loss` (logged under `key`, named `what` if it is not finite) and `scalars` in one go, logs
/// them and updates network `name` on the loss.
pub fn log_and_update(
    cx: &mut dyn TrainContext,
    log: &mut Scalars,
    name: &str,
    (key, what, loss): (&str, &str, &Tensor),
    scalars: &[(&str, &Tensor)],
) -> condor_core::Result<()> {
    let mut tensors = vec![loss];
    tensors.extend(scalars.iter().map(|(_, t)| *t));
    let values = cx.scalars(&tensors)?;
    log.insert(key.into(), cx.finite(what, values[0])?);
    for ((k, _), value) in scalars.iter().zip(&values[1..]) {
        log.insert((*k).into(), *value);
    }
    cx.update(name, loss)?;
    Ok(())
}
