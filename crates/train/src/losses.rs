//! Adversarial losses, written from primitive candle ops so that every gradient exists and is stable.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// Which adversarial objective to train with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// BCE for the discriminator; the generator maximises log D(G(z)) (Goodfellow et al.'s practical
    /// choice, with strong gradients early in training).
    NonSaturating,
    /// BCE for the discriminator; the generator minimises log(1 - D(G(z))), the original minimax game.
    Minimax,
    /// Least squares (LSGAN): targets 1 for real and 0 for fake.
    LeastSquares,
    /// Hinge: max(0, 1 - D(x)) + max(0, 1 + D(G(z))) for the discriminator, -D(G(z)) for the generator.
    Hinge,
    /// Wasserstein (WGAN) critic loss D(G(z)) - D(x); pair with weight clipping.
    Wasserstein,
}

/// Per-sample discriminator targets: what real and fake samples should score (after smoothing and
/// flipping). Used by the losses with targets.
#[derive(Clone, Debug)]
pub struct Targets {
    /// `(B,)` targets for real samples (1 without tricks).
    pub real: Tensor,
    /// `(B,)` targets for generated samples (0 without tricks).
    pub fake: Tensor,
}

/// `softplus(x) = log(1 + exp(x))`, stable for any x: `relu(x) + log(1 + exp(-|x|))`.
pub fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Element-wise binary cross-entropy of `logits` against `targets` in [0, 1], in the stable form
/// `relu(x) - x*y + log(1 + exp(-|x|))`: finite for any logit (candle's own version is not beyond
/// |x| ~ 20).
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    (logits.relu()? - logits.mul(targets)?)? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?
}

impl LossKind {
    /// Whether the loss uses targets (so label smoothing and flipping apply).
    pub fn uses_targets(&self) -> bool {
        matches!(self, Self::NonSaturating | Self::Minimax | Self::LeastSquares)
    }

    /// Whether the discriminator's output is a logit of a probability (so sigmoid means something).
    pub fn is_probabilistic(&self) -> bool {
        matches!(self, Self::NonSaturating | Self::Minimax)
    }

    /// The discriminator's loss on a batch of real and a batch of generated samples' logits: the
    /// real term plus the fake term.
    pub fn discriminator(&self, real: &Tensor, fake: &Tensor, targets: &Targets) -> candle_core::Result<Tensor> {
        self.real_term(real, targets)? + self.fake_term(fake, targets)?
    }

    /// The part of the discriminator's loss that pushes `real` logits up.
    pub fn real_term(&self, real: &Tensor, targets: &Targets) -> candle_core::Result<Tensor> {
        match self {
            Self::NonSaturating | Self::Minimax => bce_with_logits(real, &targets.real)?.mean_all(),
            Self::LeastSquares => (real - &targets.real)?.sqr()?.mean_all()? * 0.5,
            Self::Hinge => (1.0 - real)?.relu()?.mean_all(),
            Self::Wasserstein => real.mean_all()?.neg(),
        }
    }

    /// The part of the discriminator's loss that pushes `fake` logits down (generated samples, or in
    /// GAN-CLS real images with mismatched captions).
    pub fn fake_term(&self, fake: &Tensor, targets: &Targets) -> candle_core::Result<Tensor> {
        match self {
            Self::NonSaturating | Self::Minimax => bce_with_logits(fake, &targets.fake)?.mean_all(),
            Self::LeastSquares => (fake - &targets.fake)?.sqr()?.mean_all()? * 0.5,
            Self::Hinge => (fake + 1.0)?.relu()?.mean_all(),
            Self::Wasserstein => fake.mean_all(),
        }
    }

    /// The generator's loss given the discriminator's outputs on generated samples.
    pub fn generator(&self, fake: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            // -log sigmoid(x) = softplus(-x)
            Self::NonSaturating => softplus(&fake.neg()?)?.mean_all(),
            // log(1 - sigmoid(x)) = -softplus(x)
            Self::Minimax => softplus(fake)?.neg()?.mean_all(),
            Self::LeastSquares => (fake - 1.0)?.sqr()?.mean_all()? * 0.5,
            Self::Hinge | Self::Wasserstein => fake.mean_all()?.neg(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }
    fn scalar(x: Tensor) -> f32 {
        x.to_scalar::<f32>().unwrap()
    }
    fn plain_targets(n: usize) -> Targets {
        Targets { real: t(&vec![1.0; n]), fake: t(&vec![0.0; n]) }
    }

    #[test]
    fn bce_is_stable_at_large_logits_with_right_gradients() {
        let x = Var::new(&[50f32, -50.0, 0.0, 2.0][..], &Device::Cpu).unwrap();
        let y = t(&[0.0, 1.0, 1.0, 0.3]);
        let l = bce_with_logits(x.as_tensor(), &y).unwrap();
        let v: Vec<f32> = l.to_vec1().unwrap();
        // Exact: 50 for the two confidently wrong logits, ln 2 at 0, and softplus(2) - 0.6 at x = 2.
        assert!((v[0] - 50.0).abs() < 1e-4 && (v[1] - 50.0).abs() < 1e-4, "{v:?}");
        assert!((v[2] - std::f32::consts::LN_2).abs() < 1e-6);
        assert!((v[3] - ((1.0 + 2f32.exp()).ln() - 0.6)).abs() < 1e-6);
        // d/dx = sigmoid(x) - y.
        let g: Vec<f32> = l.sum_all().unwrap().backward().unwrap().get(&x).unwrap().to_vec1().unwrap();
        let sig = |z: f32| 1.0 / (1.0 + (-z).exp());
        for (i, (&xi, &yi)) in [50f32, -50.0, 0.0, 2.0].iter().zip([0.0, 1.0, 1.0, 0.3].iter()).enumerate() {
            assert!((g[i] - (sig(xi) - yi)).abs() < 1e-6, "grad {i}: {} vs {}", g[i], sig(xi) - yi);
        }
    }

    #[test]
    fn loss_values_on_known_inputs() {
        let real = t(&[2.0, -1.0]);
        let fake = t(&[0.5, -3.0]);
        let tg = plain_targets(2);
        let sp = |z: f32| (1.0 + z.exp()).ln();
        // BCE: mean softplus(-real) + mean softplus(fake)
        let bce = (sp(-2.0) + sp(1.0)) / 2.0 + (sp(0.5) + sp(-3.0)) / 2.0;
        assert!((scalar(LossKind::NonSaturating.discriminator(&real, &fake, &tg).unwrap()) - bce).abs() < 1e-6);
        assert!((scalar(LossKind::Minimax.discriminator(&real, &fake, &tg).unwrap()) - bce).abs() < 1e-6);
        let ns = (sp(-0.5) + sp(3.0)) / 2.0;
        assert!((scalar(LossKind::NonSaturating.generator(&fake).unwrap()) - ns).abs() < 1e-6);
        let mm = -(sp(0.5) + sp(-3.0)) / 2.0;
        assert!((scalar(LossKind::Minimax.generator(&fake).unwrap()) - mm).abs() < 1e-6);
        // Least squares: 0.5 * (mean (real-1)^2 + mean fake^2); generator 0.5 * mean (fake-1)^2.
        let ls = 0.5 * ((1.0 + 4.0) / 2.0 + (0.25 + 9.0) / 2.0);
        assert!((scalar(LossKind::LeastSquares.discriminator(&real, &fake, &tg).unwrap()) - ls).abs() < 1e-6);
        assert!((scalar(LossKind::LeastSquares.generator(&fake).unwrap()) - 0.5 * (0.25 + 16.0) / 2.0).abs() < 1e-6);
        // Hinge: mean relu(1 - real) = (0 + 2)/2, mean relu(1 + fake) = (1.5 + 0)/2.
        assert!((scalar(LossKind::Hinge.discriminator(&real, &fake, &tg).unwrap()) - 1.75).abs() < 1e-6);
        assert!((scalar(LossKind::Hinge.generator(&fake).unwrap()) - 1.25).abs() < 1e-6);
        // Wasserstein: mean fake - mean real = -1.25 - 0.5.
        assert!((scalar(LossKind::Wasserstein.discriminator(&real, &fake, &tg).unwrap()) + 1.75).abs() < 1e-6);
        assert!((scalar(LossKind::Wasserstein.generator(&fake).unwrap()) - 1.25).abs() < 1e-6);
    }

    #[test]
    fn smoothed_targets_change_the_bce_loss() {
        let real = t(&[3.0]);
        let fake = t(&[-3.0]);
        let tg = Targets { real: t(&[0.9]), fake: t(&[0.0]) };
        let sp = |z: f32| (1.0 + z.exp()).ln();
        let expected = (sp(3.0) - 0.9 * 3.0) + sp(-3.0);
        let got = scalar(LossKind::NonSaturating.discriminator(&real, &fake, &tg).unwrap());
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    }

    #[test]
    fn minimax_saturates_where_non_saturating_does_not() {
        // Early in training D rejects fakes confidently (logit -8): the minimax generator gradient
        // sigmoid(x) vanishes while the non-saturating one, sigmoid(x) - 1, stays near -1.
        let x = Var::new(&[-8f32][..], &Device::Cpu).unwrap();
        let g_mm: Vec<f32> =
            LossKind::Minimax.generator(x.as_tensor()).unwrap().backward().unwrap().get(&x).unwrap().to_vec1().unwrap();
        let g_ns: Vec<f32> = LossKind::NonSaturating
            .generator(x.as_tensor())
            .unwrap()
            .backward()
            .unwrap()
            .get(&x)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(g_mm[0].abs() < 1e-3, "{g_mm:?}");
        assert!((g_ns[0] + 1.0).abs() < 1e-3, "{g_ns:?}");
    }
}
