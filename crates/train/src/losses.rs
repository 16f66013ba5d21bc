//! Adversarial losses, written from primitive candle ops so that every gradient exists and is stable.
//!
//! The f-GAN divergences (Nowozin et al. 2016, table 2) take the discriminator's raw output `v`
//! through the divergence's output activation `g_f` and score generated samples with the Fenchel
//! conjugate `f*`: the discriminator minimises `-(E_real g_f(v) - E_fake f*(g_f(v)))`, and the
//! generator the paper's practical objective `-E_fake g_f(v)`. Each pair is written out in closed
//! form (for Jensen-Shannon, for example, `f*(g_f(v)) = softplus(v) - log 2`), so it stays finite.

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
    /// Wasserstein (WGAN) critic loss D(G(z)) - D(x); pair with weight clipping (the default) or a
    /// gradient penalty (WGAN-GP).
    Wasserstein,
    /// Boundary-seeking GAN (Hjelm et al. 2017): BCE for the discriminator; the generator minimises
    /// `0.5 (log D(G(z)) - log(1 - D(G(z))))^2`, which for the logit `v` is `0.5 v^2`: it aims at the
    /// decision boundary, where the discriminator's density ratio is one.
    BoundarySeeking,
    /// f-GAN, Kullback-Leibler: `g_f(v) = v`, `f*(t) = exp(t - 1)`.
    KullbackLeibler,
    /// f-GAN, reverse Kullback-Leibler: `g_f(v) = -exp(-v)`, `f*(t) = -1 - log(-t)`.
    ReverseKullbackLeibler,
    /// f-GAN, Pearson chi-squared: `g_f(v) = v`, `f*(t) = t^2 / 4 + t`.
    PearsonChiSquared,
    /// f-GAN, squared Hellinger: `g_f(v) = 1 - exp(-v)`, `f*(t) = t / (1 - t)`.
    SquaredHellinger,
    /// f-GAN, Jensen-Shannon: `g_f(v) = log 2 - log(1 + exp(-v))`, `f*(t) = -log(2 - exp(t))`.
    JensenShannon,
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

/// The mean binary cross-entropy of `logits` against the constant `target`.
pub fn bce_to(logits: &Tensor, target: f64) -> candle_core::Result<Tensor> {
    bce_with_logits(logits, &(logits.ones_like()? * target)?)?.mean_all()
}

/// Feature matching (Salimans et al. 2016): the mean over features of the squared difference of
/// their batch means on real and on generated samples.
pub fn feature_matching(real: &Tensor, fake: &Tensor) -> candle_core::Result<Tensor> {
    (real.mean(0)? - fake.mean(0)?)?.sqr()?.mean_all()
}

/// The mean of `sigmoid(logits)`: a discriminator's mean score as a probability, for the log.
pub fn mean_probability(logits: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::sigmoid(logits)?.mean_all()
}

impl LossKind {
    /// Whether the loss uses targets (so label smoothing and flipping apply).
    pub fn uses_targets(&self) -> bool {
        matches!(self, Self::NonSaturating | Self::Minimax | Self::LeastSquares | Self::BoundarySeeking)
    }

    /// Whether the discriminator's output is a logit of a probability (so sigmoid means something).
    pub fn is_probabilistic(&self) -> bool {
        matches!(self, Self::NonSaturating | Self::Minimax | Self::BoundarySeeking | Self::JensenShannon)
    }

    /// The discriminator's loss on a batch of real and a batch of generated samples' logits: the
    /// real term plus the fake term.
    pub fn discriminator(&self, real: &Tensor, fake: &Tensor, targets: &Targets) -> candle_core::Result<Tensor> {
        self.real_term(real, targets)? + self.fake_term(fake, targets)?
    }

    /// The part of the discriminator's loss that pushes `real` logits up.
    pub fn real_term(&self, real: &Tensor, targets: &Targets) -> candle_core::Result<Tensor> {
        match self {
            Self::NonSaturating | Self::Minimax | Self::BoundarySeeking => {
                bce_with_logits(real, &targets.real)?.mean_all()
            }
            Self::LeastSquares => (real - &targets.real)?.sqr()?.mean_all()? * 0.5,
            Self::Hinge => (1.0 - real)?.relu()?.mean_all(),
            Self::Wasserstein | Self::KullbackLeibler | Self::PearsonChiSquared => real.mean_all()?.neg(),
            // -g_f(v) for the rest of the f-GAN divergences.
            Self::ReverseKullbackLeibler => real.neg()?.exp()?.mean_all(),
            Self::SquaredHellinger => real.neg()?.exp()?.mean_all()? - 1.0,
            Self::JensenShannon => softplus(&real.neg()?)?.mean_all()? - std::f64::consts::LN_2,
        }
    }

    /// The part of the discriminator's loss that pushes `fake` logits down (generated samples, or in
    /// GAN-CLS real images with mismatched captions).
    pub fn fake_term(&self, fake: &Tensor, targets: &Targets) -> candle_core::Result<Tensor> {
        match self {
            Self::NonSaturating | Self::Minimax | Self::BoundarySeeking => {
                bce_with_logits(fake, &targets.fake)?.mean_all()
            }
            Self::LeastSquares => (fake - &targets.fake)?.sqr()?.mean_all()? * 0.5,
            Self::Hinge => (fake + 1.0)?.relu()?.mean_all(),
            Self::Wasserstein => fake.mean_all(),
            // f*(g_f(v)) for the f-GAN divergences.
            Self::KullbackLeibler => (fake - 1.0)?.exp()?.mean_all(),
            Self::ReverseKullbackLeibler => fake.mean_all()? - 1.0,
            Self::PearsonChiSquared => (fake.sqr()? * 0.25 + fake)?.mean_all(),
            Self::SquaredHellinger => fake.exp()?.mean_all()? - 1.0,
            Self::JensenShannon => softplus(fake)?.mean_all()? - std::f64::consts::LN_2,
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
            Self::BoundarySeeking => fake.sqr()?.mean_all()? * 0.5,
            // -g_f(v): f-GAN's practical generator objective.
            Self::KullbackLeibler | Self::PearsonChiSquared => fake.mean_all()?.neg(),
            Self::ReverseKullbackLeibler => fake.neg()?.exp()?.mean_all(),
            Self::SquaredHellinger => fake.neg()?.exp()?.mean_all()? - 1.0,
            Self::JensenShannon => softplus(&fake.neg()?)?.mean_all()? - std::f64::consts::LN_2,
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
    fn f_gan_losses_are_the_papers_activations_and_conjugates() {
        // Nowozin et al. 2016, table 2: the output activation g_f and the conjugate f* of each divergence.
        type F = fn(f64) -> f64;
        let table: [(LossKind, F, F); 5] = [
            (LossKind::KullbackLeibler, |v| v, |t| (t - 1.0).exp()),
            (LossKind::ReverseKullbackLeibler, |v| -(-v).exp(), |t| -1.0 - (-t).ln()),
            (LossKind::PearsonChiSquared, |v| v, |t| t * t / 4.0 + t),
            (LossKind::SquaredHellinger, |v| 1.0 - (-v).exp(), |t| t / (1.0 - t)),
            (LossKind::JensenShannon, |v| std::f64::consts::LN_2 - (1.0 + (-v).exp()).ln(), |t| -(2.0 - t.exp()).ln()),
        ];
        let (real_v, fake_v) = ([0.7, -0.4, 1.9], [-1.2, 0.3, 0.05]);
        let (real, fake) = (t(&real_v.map(|v| v as f32)), t(&fake_v.map(|v| v as f32)));
        let mean = |f: &dyn Fn(f64) -> f64, v: &[f64; 3]| v.iter().map(|&x| f(x)).sum::<f64>() / 3.0;
        for (kind, g_f, conj) in table {
            let d = scalar(kind.discriminator(&real, &fake, &plain_targets(3)).unwrap()) as f64;
            let want_d = -(mean(&g_f, &real_v) - mean(&|v| conj(g_f(v)), &fake_v));
            assert!((d - want_d).abs() < 1e-5 * (1.0 + want_d.abs()), "{kind:?}: D loss {d} vs {want_d}");
            let g = scalar(kind.generator(&fake).unwrap()) as f64;
            let want_g = -mean(&g_f, &fake_v);
            assert!((g - want_g).abs() < 1e-5 * (1.0 + want_g.abs()), "{kind:?}: G loss {g} vs {want_g}");
            assert!(!kind.uses_targets(), "{kind:?} has no targets to smooth");
        }
        // Jensen-Shannon's discriminator loss is the BCE's less 2 log 2, and it stays finite far out.
        let js = scalar(LossKind::JensenShannon.discriminator(&real, &fake, &plain_targets(3)).unwrap());
        let bce = scalar(LossKind::NonSaturating.discriminator(&real, &fake, &plain_targets(3)).unwrap());
        assert!((js - (bce - 2.0 * std::f32::consts::LN_2)).abs() < 1e-5);
        let far = t(&[80.0, -80.0]);
        assert!(scalar(LossKind::JensenShannon.discriminator(&far, &far, &plain_targets(2)).unwrap()).is_finite());
    }

    #[test]
    fn boundary_seeking_generator_aims_at_the_decision_boundary() {
        let fake = Var::new(&[-2f32, 0.5, 3.0][..], &Device::Cpu).unwrap();
        let loss = LossKind::BoundarySeeking.generator(fake.as_tensor()).unwrap();
        // 0.5 (log D - log(1 - D))^2 with D = sigmoid(v) is 0.5 v^2.
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let want: f32 =
            [-2f32, 0.5, 3.0].iter().map(|&v| 0.5 * (sig(v).ln() - (1.0 - sig(v)).ln()).powi(2)).sum::<f32>() / 3.0;
        assert!((scalar(loss.clone()) - want).abs() < 1e-5, "{} vs {want}", scalar(loss.clone()));
        // Its gradient v / B vanishes at the boundary v = 0 and pushes both sides toward it.
        let g: Vec<f32> = loss.backward().unwrap().get(&fake).unwrap().to_vec1().unwrap();
        assert_eq!(g, vec![-2.0 / 3.0, 0.5 / 3.0, 1.0]);
        // The discriminator's side is the BCE.
        let (real, fake) = (t(&[1.0, -1.0]), t(&[0.2, 0.4]));
        let bce = scalar(LossKind::NonSaturating.discriminator(&real, &fake, &plain_targets(2)).unwrap());
        assert_eq!(scalar(LossKind::BoundarySeeking.discriminator(&real, &fake, &plain_targets(2)).unwrap()), bce);
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
