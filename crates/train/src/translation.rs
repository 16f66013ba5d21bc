//! What the image-to-image translation recipes ([`crate::cyclegan`], [`crate::discogan`]) share: the
//! two domains of a batch, their four networks, the distances their losses use, and what the trainer
//! writes for them (a grid of translations and round trips, and the translation card of checkpoints).

use std::path::Path;

use candle_core::Tensor;
use condor_core::{NetworkDecl, NetworkKind, RecipeSetup, Rng, TrainContext, TranslationPair};
use condor_infer::TranslationCard;

use crate::checkpoint::TrainState;
use crate::networks::as_network;
use crate::trainer::Trainer;

/// The translators' names: `g_ab` maps domain A to B, `g_ba` B to A.
pub const TRANSLATORS: [&str; 2] = ["g_ab", "g_ba"];
/// The discriminators' names: `d_a` scores images of domain A, `d_b` of domain B.
pub const DISCRIMINATORS: [&str; 2] = ["d_a", "d_b"];

/// The pair [`condor_core::Recipe::translation`] returns for these names.
pub fn translator_pair() -> TranslationPair {
    TranslationPair { a_to_b: TRANSLATORS[0].into(), b_to_a: TRANSLATORS[1].into() }
}

/// The four networks: both translators from the run's `[generator]` table with its optimizer, both
/// discriminators (of role `discriminator_kind`) from its `[discriminator]` table with its optimizer.
pub fn translation_networks(setup: &RecipeSetup, discriminator_kind: NetworkKind) -> Vec<NetworkDecl> {
    let translator = |name: &str, init_stream| NetworkDecl {
        name: name.into(),
        kind: NetworkKind::Network,
        spec: setup.generator.clone(),
        optimizer: setup.generator_optimizer,
        ema: false,
        init_stream,
    };
    let discriminator = |name: &str, init_stream| NetworkDecl {
        name: name.into(),
        kind: discriminator_kind,
        spec: setup.discriminator.clone(),
        optimizer: setup.discriminator_optimizer,
        ema: false,
        init_stream,
    };
    vec![
        translator(TRANSLATORS[0], 0),
        discriminator(DISCRIMINATORS[0], 1),
        translator(TRANSLATORS[1], 2),
        discriminator(DISCRIMINATORS[1], 3),
    ]
}

/// The iteration's real images of domain A and of domain B (this rank's rows of each) and the random
/// generator that continues after their draw.
pub fn domain_batches(cx: &mut dyn TrainContext) -> condor_core::Result<(Tensor, Tensor, Rng)> {
    let (batch, rng) = cx
        .next_batch()
        .ok_or_else(|| condor_core::Error::InvalidInput("translation recipes draw one batch per step".into()))?;
    if batch.samples.dim(0)? != 2 * cx.batch_size() {
        return Err(condor_core::Error::InvalidInput(format!(
            "translation recipes need unpaired data (`[data] kind = \"unpaired\"`), whose batch of {} holds {} images \
             of each domain; this data's holds {}",
            cx.batch_size(),
            cx.batch_size(),
            batch.samples.dim(0)?
        )));
    }
    let both = cx.rows(&batch.samples, 2)?.to_dtype(cx.dtype())?;
    let n = both.dim(0)? / 2;
    Ok((both.narrow(0, 0, n)?, both.narrow(0, n, n)?, rng))
}

/// The mean absolute difference of `a` and `b`, in float32.
pub fn l1(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    (a - b)?.abs()?.to_dtype(candle_core::DType::F32)?.mean_all()
}

/// The mean of `t`, in float32.
pub fn mean(t: &Tensor) -> candle_core::Result<Tensor> {
    t.to_dtype(candle_core::DType::F32)?.mean_all()
}

/// The mean squared difference of `a` and `b`, in float32.
pub fn mse(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    (a - b)?.sqr()?.to_dtype(candle_core::DType::F32)?.mean_all()
}

/// The mean squared difference of `x` from the constant `target` (least-squares GAN), in float32.
pub fn mse_to(x: &Tensor, target: f64) -> candle_core::Result<Tensor> {
    (x - target)?.sqr()?.to_dtype(candle_core::DType::F32)?.mean_all()
}

/// Images of each domain the progress grids translate: the first `n` of the run's first batch.
fn grid_inputs(trainer: &Trainer, n: usize) -> crate::Result<[Tensor; 2]> {
    let config = trainer.config();
    let mut rng = condor_core::rng::Stream::FixedNoise(None).rng(config.seed);
    let batch = trainer.data().batch(0, config.batch_size, &mut rng, trainer.device())?;
    let bs = config.batch_size;
    let n = n.min(bs);
    Ok([batch.samples.narrow(0, 0, n)?, batch.samples.narrow(0, bs, n)?])
}

/// Writes the translation grid of `trainer`'s translators to `path`: six rows of up to eight images,
/// domain A's inputs, their translations to B and those translated back, then the same from B.
pub fn write_translation_grid(trainer: &Trainer, pair: &TranslationPair, path: &Path) -> crate::Result<()> {
    let translator = |name: &str| -> crate::Result<&dyn condor_core::Network> {
        let net = trainer.network(name).ok_or_else(|| crate::TrainError::Config(format!("no network `{name}`")))?;
        Ok(as_network(name, net.for_sampling())?)
    };
    let (ab, ba) = (translator(&pair.a_to_b)?, translator(&pair.b_to_a)?);
    let [a, b] = grid_inputs(trainer, 8)?;
    let (a_to_b, b_to_a) = (ab.forward(&a, None, false)?, ba.forward(&b, None, false)?);
    let rows = [
        a.clone(),
        a_to_b.clone(),
        ba.forward(&a_to_b, None, false)?,
        b.clone(),
        b_to_a.clone(),
        ab.forward(&b_to_a, None, false)?,
    ];
    let cols = a.dim(0)?;
    let rows: Vec<Tensor> =
        rows.iter().map(|r| r.to_dtype(candle_core::DType::F32)).collect::<candle_core::Result<_>>()?;
    condor_infer::plot::image_grid_png(path, &Tensor::cat(&rows, 0)?, cols)?;
    Ok(())
}

/// The translation card of `trainer`'s checkpoint at `state`, whose translators are `pair`.
pub fn translation_card(trainer: &Trainer, pair: &TranslationPair, state: &TrainState) -> TranslationCard {
    let config = trainer.config();
    let spec =
        |name: &str| trainer.network(name).map(|n| n.decl.spec.clone()).expect("checked when the trainer was built");
    let domains = match &config.data {
        condor_data::DatasetConfig::Unpaired { domains, .. } => domains.names(),
        _ => ["A".into(), "B".into()],
    };
    TranslationCard {
        name: config.name.clone(),
        domains,
        a_to_b: spec(&pair.a_to_b),
        b_to_a: spec(&pair.b_to_a),
        weights: [pair.a_to_b.clone(), pair.b_to_a.clone()],
        data: config.data.clone(),
        step: state.step,
        written_by: state.written_by.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_distances_on_known_values() {
        let a = Tensor::new(&[1f32, -2.0, 0.5, 4.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[0f32, 1.0, 0.5, 2.0], &Device::Cpu).unwrap();
        let scalar = |t: Tensor| t.to_scalar::<f32>().unwrap();
        assert_eq!(scalar(l1(&a, &b).unwrap()), (1.0 + 3.0 + 0.0 + 2.0) / 4.0);
        assert_eq!(scalar(mse(&a, &b).unwrap()), (1.0 + 9.0 + 0.0 + 4.0) / 4.0);
        assert_eq!(scalar(mse_to(&a, 1.0).unwrap()), (0.0 + 9.0 + 0.25 + 9.0) / 4.0);
    }
}
