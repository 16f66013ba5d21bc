//! A plugin crate outside Condor's built-ins, the worked example of `docs/plugins.md`: a generator
//! (`tanh-mlp`) and a training recipe with a loss Condor does not ship, the relativistic average GAN
//! of Jolicoeur-Martineau (2018, "The relativistic discriminator: a key element missing from standard
//! GAN"). It depends on condor-core alone for the contract; `src/main.rs` adds the command line.

use condor_core::prelude::*;

/// Registers the generator `tanh-mlp` and the recipe `relativistic`.
pub fn register(registry: &mut Registry) -> Result<()> {
    registry.register_generator("tanh-mlp", TanhMlp::new)?;
    registry.register_recipe("relativistic", Relativistic::new)
}

// ANCHOR: generator
/// Config of [`TanhMlp`]; omitted fields take the defaults.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(crate = "condor_core::prelude::serde", default, deny_unknown_fields)]
pub struct TanhMlpConfig {
    /// Size of the latent code.
    pub latent_dim: usize,
    /// Width of the two hidden layers.
    pub hidden: usize,
    /// Size of each sample (a point of the plane: 2).
    pub output_dim: usize,
}

impl Default for TanhMlpConfig {
    fn default() -> Self {
        Self { latent_dim: 16, hidden: 128, output_dim: 2 }
    }
}

/// An unconditional generator of points: z -> tanh -> tanh -> linear.
pub struct TanhMlp {
    layers: [candle_nn::Linear; 3],
    config: TanhMlpConfig,
}

impl TanhMlp {
    /// Creates its variables through `vb` (the trainer owns, initialises and saves them).
    pub fn new(config: TanhMlpConfig, vb: VarBuilder) -> Result<Self> {
        let c = &config;
        let layers = [
            candle_nn::linear(c.latent_dim, c.hidden, vb.pp("l0"))?,
            candle_nn::linear(c.hidden, c.hidden, vb.pp("l1"))?,
            candle_nn::linear(c.hidden, c.output_dim, vb.pp("l2"))?,
        ];
        Ok(Self { layers, config })
    }
}

impl Generator for TanhMlp {
    fn latent_dim(&self) -> usize {
        self.config.latent_dim
    }
    fn sample_shape(&self) -> Vec<usize> {
        vec![self.config.output_dim]
    }
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::None
    }
    fn forward(&self, z: &Tensor, _cond: Option<&Conditioning>, _train: bool) -> Result<Tensor> {
        check_latent("tanh-mlp", z, self.config.latent_dim)?;
        let h = self.layers[0].forward(z)?.tanh()?;
        let h = self.layers[1].forward(&h)?.tanh()?;
        Ok(self.layers[2].forward(&h)?)
    }
}
// ANCHOR_END: generator

// ANCHOR: recipe
/// Config of [`Relativistic`]: the recipe's own `[recipe] config` table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(crate = "condor_core::prelude::serde", default, deny_unknown_fields)]
pub struct RelativisticConfig {
    /// Discriminator steps per generator step.
    pub d_steps: usize,
}

/// The relativistic average GAN: the discriminator estimates how much more real a real sample is than
/// the average generated one, and the other way round:
/// `L_D = -E log sigma(C(x) - E C(G(z))) - E log(1 - sigma(C(G(z)) - E C(x)))`, and the generator's
/// loss swaps real and generated.
pub struct Relativistic {
    d_steps: usize,
    networks: Vec<NetworkDecl>,
}

impl Relativistic {
    /// Trains the run's generator `g` against its discriminator `d`.
    pub fn new(config: RelativisticConfig, setup: &RecipeSetup) -> Result<Self> {
        Ok(Self { d_steps: config.d_steps.max(1), networks: setup.generator_and_discriminator() })
    }
}

/// `log(1 + exp(x))` without overflow: `max(x, 0) + log(1 + exp(-|x|))`.
fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// The relativistic average loss of scores `a` that should look more real than scores `b`:
/// `E softplus(-(a - E b)) + E softplus(b - E a)`.
pub fn relativistic_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (mean_a, mean_b) = (a.mean_all()?, b.mean_all()?);
    let more_real = softplus(&a.broadcast_sub(&mean_b)?.neg()?)?.mean_all()?;
    let less_real = softplus(&b.broadcast_sub(&mean_a)?)?.mean_all()?;
    Ok((more_real + less_real)?)
}

impl Recipe for Relativistic {
    fn networks(&self) -> Vec<NetworkDecl> {
        self.networks.clone()
    }

    fn batches_per_step(&self) -> usize {
        self.d_steps
    }

    fn step(&mut self, cx: &mut dyn TrainContext) -> Result<Scalars> {
        let mut log = Scalars::new();
        let mut last_real = None;
        while let Some((batch, mut rng)) = cx.next_batch() {
            // The discriminator's step: the generator's parameters are constants here.
            let (g, d) = (cx.frozen_generator("g")?, cx.discriminator("d")?);
            let z = cx.rows(&normal(&mut rng, (cx.batch_size(), g.latent_dim()), cx.device())?, 1)?;
            let real = cx.rows(&batch.samples, 1)?;
            let fake = g.forward(&z, None, true)?;
            let (c_real, c_fake) = (d.forward(&real, None, true)?, d.forward(&fake, None, true)?);
            let loss = relativistic_loss(&c_real, &c_fake)?;
            let values = cx.scalars(&[&loss, &c_real.mean_all()?, &c_fake.mean_all()?])?;
            log.insert("loss_d".into(), cx.finite("discriminator loss", values[0])?);
            log.insert("d_real".into(), values[1]);
            log.insert("d_fake".into(), values[2]);
            cx.update("d", &loss)?;
            last_real = Some(real);
        }
        // The generator's step, against the last real batch; the discriminator's parameters are
        // constants here.
        let real = last_real.ok_or_else(|| Error::InvalidInput("the iteration drew no real batch".into()))?;
        let (g, d) = (cx.generator("g")?, cx.frozen_discriminator("d")?);
        let (_, mut rng) = cx.generator_draw();
        let z = cx.rows(&normal(&mut rng, (cx.batch_size(), g.latent_dim()), cx.device())?, 1)?;
        let c_fake = d.forward(&g.forward(&z, None, true)?, None, true)?;
        let c_real = d.forward(&real, None, true)?;
        let loss = relativistic_loss(&c_fake, &c_real)?;
        let value = cx.scalars(&[&loss])?[0];
        log.insert("loss_g".into(), cx.finite("generator loss", value)?);
        cx.update("g", &loss)?;
        Ok(log)
    }
}
// ANCHOR_END: recipe
