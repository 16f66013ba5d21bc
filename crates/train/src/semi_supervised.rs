//! The semi-supervised GAN of Salimans, Goodfellow, Zaremba, Cheung, Radford and Chen (2016,
//! "Improved Techniques for Training GANs", section 5) as a recipe: the discriminator is a classifier
//! over the data's `K` classes plus a `K+1`-th class "generated", trained on a few labelled samples, on
//! unlabelled real ones and on generated ones; the generator is trained by feature matching.
//!
//! With the generated class's logit fixed at 0 (the paper's parametrisation), the classifier's logits
//! `l(x)` give `D(x) = Z(x) / (Z(x) + 1)` with `Z(x) = sum_k exp l_k(x)`, so with `s(x) = logsumexp l(x)`:
//!
//! - supervised: the cross-entropy of the labelled samples' logits against their classes;
//! - unsupervised: `E_real [softplus(s) - s] + E_fake softplus(s)`, the GAN loss on `D`;
//! - generator: `mean_j (E_real f_j(x) - E_fake f_j(G(z)))^2` over the features `f` of the
//!   discriminator's last hidden layer (feature matching).
//!
//! `unsupervised_weight = 0` trains the same classifier on the labelled samples alone (and leaves the
//! generator as it is): the baseline the paper's figure is read against. Gaussian noise of
//! `input_noise` on the classifier's training inputs stands in for the paper's noise layers (its
//! hidden ones need noise inside the plugin).
//!
//! The classifier is one network `d` (`mlp` with `features` by default) whose output holds the `K`
//! logits, then the features; the recipe sets its `outputs` and `features`.

use candle_core::{DType, Device, Tensor};
use condor_core::rng::normal;
use condor_core::{
    Labelled, ModelSpec, Network, NetworkDecl, NetworkKind, Recipe, RecipeSetup, Rng, Scalars, TrainContext,
};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::infogan::cross_entropy;
use crate::losses::{feature_matching, softplus};
use crate::recipe_inputs::{discriminator_inputs, generator_inputs, Generated};
use crate::recipe_updates::{update_discriminator, update_generator, DiscriminatorStep};

/// The registry name of the recipe.
pub const NAME: &str = "semi_supervised";

/// The `[recipe] config` table of [`SemiSupervised`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SemiSupervisedConfig {
    /// Labelled samples of each class (the paper's 100 MNIST labels are 10 a class).
    pub labelled_per_class: usize,
    /// Seed of the choice of labelled samples.
    pub label_seed: u64,
    /// Weight of the unsupervised (GAN) term; 0 trains on the labels alone.
    pub unsupervised_weight: f64,
    /// Standard deviation of the Gaussian noise added to the classifier's inputs in training.
    pub input_noise: f64,
    /// The classifier (plugin and config; `outputs`, `features` and its input shape are filled).
    pub network: ModelSpec,
}

impl Default for SemiSupervisedConfig {
    fn default() -> Self {
        Self {
            labelled_per_class: 10,
            label_seed: 0,
            unsupervised_weight: 1.0,
            input_noise: 0.3,
            network: ModelSpec { plugin: "mlp".into(), config: serde_json::json!({}), pack: None },
        }
    }
}

/// The recipe: the run's generator `g` against the classifier `d`, with the labelled subset it reads
/// from the data at its first step.
pub struct SemiSupervised {
    config: SemiSupervisedConfig,
    networks: Vec<NetworkDecl>,
    classes: usize,
    labelled: Option<Labelled>,
}

/// An error in this recipe's config.
fn invalid(message: impl Into<String>) -> condor_core::Error {
    condor_core::Error::recipe_config(NAME, message)
}

impl SemiSupervised {
    /// The recipe for `config` with the run's generator; the classifier has `classes` logits, the
    /// number of classes of the data, which its network's `outputs` states (10 when left out).
    pub fn new(config: SemiSupervisedConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        let settings = [("unsupervised_weight", config.unsupervised_weight), ("input_noise", config.input_noise)];
        condor_core::Error::check_non_negative(NAME, &settings)?;
        if config.labelled_per_class == 0 {
            return Err(invalid("labelled_per_class must be at least 1"));
        }
        let classes = config.network.config.get("outputs").and_then(|v| v.as_u64()).unwrap_or(10) as usize;
        if classes < 2 {
            return Err(invalid(format!("the classifier needs at least 2 classes, not {classes}")));
        }
        let mut networks = setup.generator_and_discriminator();
        networks[1].kind = NetworkKind::Network;
        let spec = config.network.with_field("outputs", classes.into()).map_err(invalid)?;
        networks[1].spec = spec.with_field("features", true.into()).map_err(invalid)?;
        Ok(Self { config, networks, classes, labelled: None })
    }

    /// The labelled subset, read from the data the first time.
    fn labelled(&mut self, cx: &dyn TrainContext) -> condor_core::Result<&Labelled> {
        if self.labelled.is_none() {
            let set = cx
                .data()
                .labelled(self.config.labelled_per_class, self.config.label_seed, cx.device())?
                .ok_or_else(|| invalid("the semi-supervised GAN needs data with classes (MNIST, a mixture)"))?;
            if set.classes != self.classes {
                return Err(invalid(format!(
                    "the data has {} classes but the classifier {}; set the network's `outputs` to {}",
                    set.classes, self.classes, set.classes
                )));
            }
            self.labelled = Some(set);
        }
        Ok(self.labelled.as_ref().expect("just read"))
    }

    /// A batch of `n` labelled rows drawn with replacement by `rng`, and their classes one-hot.
    fn labelled_batch(&mut self, cx: &dyn TrainContext, rng: &mut Rng) -> condor_core::Result<(Tensor, Tensor)> {
        let n = cx.batch_size();
        let classes = self.classes;
        let set = self.labelled(cx)?;
        let picks: Vec<usize> = (0..n).map(|_| rng.random_range(0..set.labels.len())).collect();
        let rows = Tensor::from_vec(picks.iter().map(|&i| i as u32).collect::<Vec<_>>(), n, set.samples.device())?;
        let samples = set.samples.index_select(&rows, 0)?;
        let one_hot: Vec<f32> =
            picks.iter().flat_map(|&i| (0..classes).map(move |c| if set.labels[i] == c { 1.0 } else { 0.0 })).collect();
        let one_hot = Tensor::from_vec(one_hot, (n, classes), set.samples.device())?;
        Ok((cx.rows(&samples, 1)?.to_dtype(cx.dtype())?, cx.rows(&one_hot, 1)?))
    }

    /// `x` with the configured Gaussian noise, drawn from `rng`.
    fn noisy(&self, x: &Tensor, rng: &mut Rng, device: &Device) -> condor_core::Result<Tensor> {
        if self.config.input_noise == 0.0 {
            return Ok(x.clone());
        }
        let noise = (normal(rng, x.dims(), device)? * self.config.input_noise)?;
        Ok((x + noise.to_dtype(x.dtype())?)?)
    }

    /// The classifier's `(B, K)` logits and `(B, F)` features of `x`.
    fn classify(&self, d: &dyn Network, x: &Tensor, train: bool) -> condor_core::Result<(Tensor, Tensor)> {
        split_output(&d.forward(x, None, train)?, self.classes)
    }
}

/// The `(B, K)` logits and `(B, F)` features in a classifier's output `(B, K + F)`, in float32.
pub fn split_output(output: &Tensor, classes: usize) -> condor_core::Result<(Tensor, Tensor)> {
    let output = output.to_dtype(DType::F32)?;
    let width = output.dim(1)?;
    if width <= classes {
        return Err(condor_core::Error::InvalidInput(format!(
            "the classifier gives {width} columns: {classes} logits and no features"
        )));
    }
    Ok((output.narrow(1, 0, classes)?, output.narrow(1, classes, width - classes)?))
}

/// `logsumexp` of each row of `(B, K)` logits: `(B,)`.
pub fn log_sum_exp(logits: &Tensor) -> candle_core::Result<Tensor> {
    let max = logits.max_keepdim(1)?.detach();
    logits.broadcast_sub(&max)?.exp()?.sum(1)?.log()? + max.squeeze(1)?
}

/// The unsupervised loss on real and generated logits: `E [softplus(s) - s]` over real rows plus
/// `E softplus(s)` over generated ones, `s` the rows' logsumexp.
pub fn unsupervised_loss(real: &Tensor, fake: &Tensor) -> candle_core::Result<Tensor> {
    let (s_real, s_fake) = (log_sum_exp(real)?, log_sum_exp(fake)?);
    (softplus(&s_real)? - s_real)?.mean_all()? + softplus(&s_fake)?.mean_all()?
}

/// The mean of `D(x) = Z / (Z + 1) = sigmoid(logsumexp l(x))` over rows of logits.
pub fn real_probability(logits: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::sigmoid(&log_sum_exp(logits)?)?.mean_all()
}

/// The classifier's predicted class of each of `images`, `batch` at a time, in evaluation mode.
pub fn predict_classes(
    network: &dyn Network,
    classes: usize,
    images: &Tensor,
    batch: usize,
) -> condor_core::Result<Vec<usize>> {
    let (logits, _) = split_output(&crate::networks::forward_in_batches(network, images, batch)?, classes)?;
    Ok(logits.argmax(1)?.to_vec1::<u32>()?.into_iter().map(|c| c as usize).collect())
}

impl Recipe for SemiSupervised {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let mut log = Scalars::new();
        let missing = || condor_core::Error::InvalidInput("the iteration drew no batch".into());
        let (batch, mut rng) = cx.next_batch().ok_or_else(missing)?;
        let (labelled, targets) = self.labelled_batch(cx, &mut rng)?;
        let (real, fake) = discriminator_inputs(cx, &batch, &mut rng)?;
        let device = cx.device().clone();
        let d = cx.network("d")?;
        let (logits, _) = self.classify(d, &self.noisy(&labelled, &mut rng, &device)?, true)?;
        let supervised = cross_entropy(&logits, &targets)?;
        let right = logits.argmax(1)?.eq(&targets.argmax(1)?)?.to_dtype(DType::F32)?.mean_all()?;
        let weight = self.config.unsupervised_weight;
        let zero = supervised.zeros_like()?;
        let (loss, unsupervised, scores) = if weight > 0.0 {
            let (l_real, _) = self.classify(d, &self.noisy(&real, &mut rng, &device)?, true)?;
            let (l_fake, _) = self.classify(d, &self.noisy(&fake.images, &mut rng, &device)?, true)?;
            let unsupervised = unsupervised_loss(&l_real, &l_fake)?;
            let scores = [real_probability(&l_real)?, real_probability(&l_fake)?];
            ((&supervised + (&unsupervised * weight)?)?, unsupervised, scores)
        } else {
            (supervised.clone(), zero.clone(), [zero.clone(), zero])
        };
        let extra =
            [("loss_supervised", &supervised), ("loss_unsupervised", &unsupervised), ("labelled_accuracy", &right)];
        let step = DiscriminatorStep {
            loss: &loss,
            what: "discriminator loss",
            real: &scores[0],
            fake: &scores[1],
            extra: &extra,
        };
        update_discriminator(cx, &mut log, "d", step)?;
        if weight > 0.0 {
            let Generated { images, .. } = generator_inputs(cx)?;
            let d = cx.frozen_network("d")?;
            let (_, f_real) = self.classify(d, &real, true)?;
            let (_, f_fake) = self.classify(d, &images, true)?;
            let loss = feature_matching(&f_real, &f_fake)?;
            update_generator(cx, &mut log, &loss, &[])?;
        }
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_losses_match_hand_computed_values() {
        let dev = Device::Cpu;
        // Row logits (0, ln 3): Z = 4, s = ln 4. Row (ln 2, ln 2): s = ln 4 too.
        let real = Tensor::new(&[[0.0f32, 3f32.ln()], [2f32.ln(), 2f32.ln()]], &dev).unwrap();
        let s = log_sum_exp(&real).unwrap().to_vec1::<f32>().unwrap();
        assert!(s.iter().all(|v| (v - 4f32.ln()).abs() < 1e-6), "{s:?}");
        // Real: softplus(ln 4) - ln 4 = ln 5 - ln 4 = -ln D(x) with D = 4/5.
        // Fake logits (ln 1/3, ln 1/3... ): s = ln(2/3), softplus = ln(5/3) = -ln(1 - D) with D = 2/5.
        let fake = Tensor::new(&[[(1f32 / 3.0).ln(), (1f32 / 3.0).ln()]], &dev).unwrap();
        let loss = unsupervised_loss(&real, &fake).unwrap().to_scalar::<f32>().unwrap();
        let want = (5f32 / 4.0).ln() + (5f32 / 3.0).ln();
        assert!((loss - want).abs() < 1e-5, "{loss} vs {want}");
        // Feature means (1, 2) and (0, 4): mean of 1 and 4.
        let f_real = Tensor::new(&[[0.0f32, 1.0], [2.0, 3.0]], &dev).unwrap();
        let f_fake = Tensor::new(&[[0.0f32, 4.0]], &dev).unwrap();
        assert_eq!(feature_matching(&f_real, &f_fake).unwrap().to_scalar::<f32>().unwrap(), 2.5);
        let (logits, features) = split_output(&f_real, 1).unwrap();
        assert_eq!((logits.dims(), features.dims()), (&[2, 1][..], &[2, 1][..]));
        assert!(split_output(&f_real, 2).is_err());
    }

    #[test]
    fn log_sum_exp_is_stable_and_its_gradient_is_the_softmax() {
        let dev = Device::Cpu;
        let x = candle_core::Var::new(&[[1000.0f64, 1000.0], [0.0, 3f64.ln()]], &dev).unwrap();
        let s = log_sum_exp(x.as_tensor()).unwrap();
        let values = s.to_vec1::<f64>().unwrap();
        assert!((values[0] - (1000.0 + 2f64.ln())).abs() < 1e-9 && (values[1] - 4f64.ln()).abs() < 1e-12);
        let grads = s.sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        for (row, want) in g.iter().zip([[0.5, 0.5], [0.25, 0.75]]) {
            assert!(row.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-9), "{g:?}");
        }
    }
}
