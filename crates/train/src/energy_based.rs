//! The energy-based GAN (Zhao, Mathieu and LeCun 2016, "Energy-based Generative Adversarial
//! Network") as a recipe. The discriminator is an energy network, an autoencoder whose energy is its
//! reconstruction error; it learns low energy on real samples and energy above a margin `m` on
//! generated ones, and the generator lowers its samples' energy:
//!
//! `L_D = E D(x) + E relu(m - D(G(z)))`, `L_G = E D(G(z)) + pt_weight * PT(S)`,
//!
//! where `PT` is the paper's pulling-away term on the codes `S` of the generated batch, the mean squared
//! cosine similarity of every pair of distinct rows: it pushes the batch's codes apart, against mode
//! collapse.
//!
//! The energy network is any registered network whose output's first column is the energy and whose
//! other columns are the code (`mlp_autoencoder` by default).

use candle_core::{DType, Tensor};
use condor_core::{ModelSpec, NetworkDecl, NetworkKind, Recipe, RecipeSetup, Scalars, TrainContext};
use serde::{Deserialize, Serialize};

use crate::recipe_inputs::{discriminator_inputs, generator_inputs, Generated};
use crate::recipe_updates::{update_discriminator, update_generator, DiscriminatorStep};

/// The registry name of the recipe.
pub const NAME: &str = "energy_based";

/// The `[recipe] config` table of [`EnergyBased`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnergyBasedConfig {
    /// The margin `m` generated samples' energy is pushed up to.
    pub margin: f64,
    /// Weight of the pulling-away term in the generator's loss (the paper's 0.1).
    pub pt_weight: f64,
    /// Discriminator steps per generator step.
    pub d_steps: usize,
    /// The energy network (plugin and config; its input shape comes from the data).
    pub energy: ModelSpec,
}

impl Default for EnergyBasedConfig {
    fn default() -> Self {
        Self {
            margin: 1.0,
            pt_weight: 0.1,
            d_steps: 1,
            energy: ModelSpec { plugin: "mlp_autoencoder".into(), config: serde_json::json!({}), pack: None },
        }
    }
}

/// The recipe: the run's generator `g` against the energy network `d`, trained with the run's
/// discriminator optimizer.
pub struct EnergyBased {
    config: EnergyBasedConfig,
    networks: Vec<NetworkDecl>,
}

impl EnergyBased {
    /// The recipe for `config` with the run's generator.
    pub fn new(config: EnergyBasedConfig, setup: &RecipeSetup) -> condor_core::Result<Self> {
        let invalid = |message: String| condor_core::Error::recipe_config(NAME, message);
        let valid =
            config.margin > 0.0 && config.margin.is_finite() && config.pt_weight >= 0.0 && config.pt_weight.is_finite();
        if !valid {
            return Err(invalid(format!(
                "margin must be above 0 and pt_weight at least 0, not {} and {}",
                config.margin, config.pt_weight
            )));
        }
        if config.d_steps == 0 {
            return Err(invalid("d_steps must be at least 1".into()));
        }
        let mut networks = setup.generator_and_discriminator();
        networks[1].kind = NetworkKind::Network;
        networks[1].spec = config.energy.clone();
        Ok(Self { config, networks })
    }
}

/// The energies `(B,)` and codes `(B, K)` in an energy network's output `(B, 1 + K)`.
pub fn split_energy(output: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let k = output.dim(1)?;
    if k < 2 {
        candle_core::bail!("an energy network must output the energy and a code of at least one column, not {k}");
    }
    Ok((output.narrow(1, 0, 1)?.squeeze(1)?, output.narrow(1, 1, k - 1)?))
}

/// The discriminator's loss `E energy_real + E relu(margin - energy_fake)`.
pub fn energy_discriminator_loss(real: &Tensor, fake: &Tensor, margin: f64) -> candle_core::Result<Tensor> {
    real.mean_all()? + (fake.neg()? + margin)?.relu()?.mean_all()?
}

/// The pulling-away term of `(N, K)` codes: the mean, over ordered pairs of distinct rows, of their
/// squared cosine similarity. 0 for one row.
pub fn pulling_away(codes: &Tensor) -> candle_core::Result<Tensor> {
    let n = codes.dim(0)?;
    if n < 2 {
        return Tensor::new(0f32, codes.device())?.to_dtype(codes.dtype());
    }
    let norms = (codes.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?;
    let unit = codes.broadcast_div(&norms)?;
    let cosines = unit.matmul(&unit.t()?)?;
    // Every diagonal entry is 1: take them out of the sum of squares.
    let off_diagonal = (cosines.sqr()?.sum_all()? - n as f64)?;
    off_diagonal / (n * (n - 1)) as f64
}

impl Recipe for EnergyBased {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn batches_per_step(&self) -> usize {
        self.config.d_steps
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> condor_core::Result<Scalars> {
        let mut log = Scalars::new();
        while let Some((batch, mut rng)) = cx.next_batch() {
            let (real, Generated { images: fake, .. }) = discriminator_inputs(cx, &batch, &mut rng)?;
            let d = cx.network("d")?;
            let (e_real, _) = split_energy(&d.forward(&real, None, true)?.to_dtype(DType::F32)?)?;
            let (e_fake, _) = split_energy(&d.forward(&fake, None, true)?.to_dtype(DType::F32)?)?;
            let loss = energy_discriminator_loss(&e_real, &e_fake, self.config.margin)?;
            let (real, fake) = (e_real.mean_all()?, e_fake.mean_all()?);
            let step =
                DiscriminatorStep { loss: &loss, what: "discriminator loss", real: &real, fake: &fake, extra: &[] };
            update_discriminator(cx, &mut log, "d", step)?;
        }
        let Generated { images: fake, .. } = generator_inputs(cx)?;
        let d = cx.frozen_network("d")?;
        let (e_fake, codes) = split_energy(&d.forward(&fake, None, true)?.to_dtype(DType::F32)?)?;
        let pt = pulling_away(&codes)?;
        let loss = (e_fake.mean_all()? + (&pt * self.config.pt_weight)?)?;
        update_generator(cx, &mut log, &loss, &[("pulling_away", &pt)])?;
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_losses_match_hand_computed_values() {
        let dev = Device::Cpu;
        let out = Tensor::new(&[[0.5f32, 1.0, 0.0], [2.0, 0.0, 3.0]], &dev).unwrap();
        let (energy, codes) = split_energy(&out).unwrap();
        assert_eq!(energy.to_vec1::<f32>().unwrap(), vec![0.5, 2.0]);
        assert_eq!(codes.dims(), &[2, 2]);
        let real = Tensor::new(&[0.25f32, 0.75], &dev).unwrap();
        let fake = Tensor::new(&[0.5f32, 3.0], &dev).unwrap();
        // E real = 0.5; relu(1 - 0.5) = 0.5 and relu(1 - 3) = 0: mean 0.25.
        let loss = energy_discriminator_loss(&real, &fake, 1.0).unwrap().to_scalar::<f32>().unwrap();
        assert!((loss - 0.75).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn the_pulling_away_term_is_the_mean_squared_cosine_of_distinct_pairs() {
        let dev = Device::Cpu;
        // Rows at 0, 90 and 45 degrees (lengths differ: cosines ignore them): squared cosines of the
        // pairs are 0, 1/2 and 1/2, each counted twice over 3 * 2 ordered pairs: 2 / 6.
        let codes = Tensor::new(&[[1.0f32, 0.0], [0.0, 3.0], [2.0, 2.0]], &dev).unwrap();
        let pt = pulling_away(&codes).unwrap().to_scalar::<f32>().unwrap();
        assert!((pt - 1.0 / 3.0).abs() < 1e-6, "{pt}");
        // Identical directions: 1; one row: 0.
        let same = Tensor::new(&[[1.0f32, 1.0], [2.0, 2.0]], &dev).unwrap();
        assert!((pulling_away(&same).unwrap().to_scalar::<f32>().unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(pulling_away(&codes.narrow(0, 0, 1).unwrap()).unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }
}
