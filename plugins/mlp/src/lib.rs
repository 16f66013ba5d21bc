//! # condor-mlp: multilayer-perceptron GAN plugins
//!
//! A generator and a discriminator made of fully connected layers, with configurable widths,
//! activations and batch norm. Either can be conditioned on a vector (a sentence embedding, a one-hot
//! class): the vector is joined to the input of the first layer. Samples of any shape are flattened on
//! the way in and reshaped on the way out, so the same plugins serve 2D points and small images.
//!
//! Registered as `"mlp"` for both kinds by [`register`].

use candle_core::{Module, Tensor, D};
use candle_nn::VarBuilder;
use condor_core::activation::Activation as Act;
use condor_core::linear::{linear, Linear};
use condor_core::norm::{batch_norm, BatchNorm};
use condor_core::{
    check_conditioning, Conditioning, ConditioningKind, Discriminator, Generator, LatentCodes, Registry,
};
use serde::{Deserialize, Serialize};

/// A hidden-layer non-linearity.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// x for x > 0, `slope * x` otherwise (the slope is the config's `negative_slope`).
    LeakyRelu,
    /// Hyperbolic tangent.
    Tanh,
}

/// What the generator's last layer applies.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputActivation {
    /// Raw values (points in the plane).
    Identity,
    /// Values in [-1, 1] (images).
    Tanh,
}

/// Configuration of the MLP generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpGeneratorConfig {
    /// Size of the latent code z.
    pub latent_dim: usize,
    /// Size of the conditioning vector joined to z; 0 for an unconditional generator.
    pub cond_dim: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Shape of one output sample (`[2]` for points, `[1, 28, 28]` for small images).
    pub output_shape: Vec<usize>,
    /// Hidden-layer non-linearity.
    pub activation: Activation,
    /// Slope of the leaky ReLU for negative inputs.
    pub negative_slope: f64,
    /// Batch norm after each hidden linear layer.
    pub batch_norm: bool,
    /// Non-linearity of the output layer.
    pub output_activation: OutputActivation,
    /// Leading latent columns read as InfoGAN codes (none by default); see [`LatentCodes`].
    #[serde(skip_serializing_if = "LatentCodes::is_empty")]
    pub codes: LatentCodes,
}

impl Default for MlpGeneratorConfig {
    fn default() -> Self {
        Self {
            latent_dim: 16,
            cond_dim: 0,
            hidden: vec![128, 128],
            output_shape: vec![2],
            activation: Activation::Relu,
            negative_slope: 0.2,
            batch_norm: false,
            output_activation: OutputActivation::Identity,
            codes: LatentCodes::default(),
        }
    }
}

/// Configuration of the MLP discriminator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpDiscriminatorConfig {
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
    /// Size of the conditioning vector joined to the input; 0 for an unconditional discriminator.
    pub cond_dim: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Hidden-layer non-linearity.
    pub activation: Activation,
    /// Slope of the leaky ReLU for negative inputs.
    pub negative_slope: f64,
}

impl Default for MlpDiscriminatorConfig {
    fn default() -> Self {
        Self {
            input_shape: vec![2],
            cond_dim: 0,
            hidden: vec![128, 128],
            activation: Activation::LeakyRelu,
            negative_slope: 0.2,
        }
    }
}

/// A stack of linear layers with an activation (and optional batch norm) between them.
struct Stack {
    layers: Vec<(Linear, Option<BatchNorm>)>,
    output: Linear,
    activation: Activation,
    negative_slope: f64,
}

impl Stack {
    fn new(
        input: usize,
        hidden: &[usize],
        output: usize,
        with_norm: bool,
        act: Activation,
        slope: f64,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let mut layers = Vec::with_capacity(hidden.len());
        let mut width = input;
        for (i, &h) in hidden.iter().enumerate() {
            let fc = linear(width, h, vb.pp(format!("fc{i}")))?;
            let bn = if with_norm { Some(batch_norm(h, 1e-5, vb.pp(format!("bn{i}")))?) } else { None };
            layers.push((fc, bn));
            width = h;
        }
        let output = linear(width, output, vb.pp("out"))?;
        Ok(Self { layers, output, activation: act, negative_slope: slope })
    }

    fn forward(&self, x: Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.output.forward(&self.features(x, train)?)
    }

    /// The activations of the last hidden layer (the input itself without hidden layers).
    fn features(&self, mut x: Tensor, train: bool) -> candle_core::Result<Tensor> {
        let act = match self.activation {
            Activation::Relu => Act::Relu,
            Activation::LeakyRelu => Act::LeakyRelu(self.negative_slope),
            Activation::Tanh => Act::Tanh,
        };
        for (fc, bn) in &self.layers {
            x = match bn {
                Some(bn) => bn.forward_act(&fc.forward(&x)?, train, act)?,
                None => fc.forward_act(&x, act)?,
            };
        }
        Ok(x)
    }
}

/// Flattens `(B, ...)` samples and joins the conditioning vector, if any.
fn input_rows(x: &Tensor, cond: Option<&Conditioning>, kind: ConditioningKind) -> condor_core::Result<Tensor> {
    let b = x.dims()[0];
    check_conditioning(kind, cond, b)?;
    let flat = x.flatten_from(1)?;
    Ok(match (kind, cond) {
        (ConditioningKind::None, _) | (_, None) => flat,
        (_, Some(c)) => Tensor::cat(&[&flat, &c.embedding.to_dtype(flat.dtype())?], D::Minus1)?,
    })
}

/// The MLP generator: `[z, cond] -> hidden layers -> output_shape`.
pub struct MlpGenerator {
    config: MlpGeneratorConfig,
    stack: Stack,
}

impl MlpGenerator {
    /// Builds the generator's layers through `vb`.
    pub fn new(config: MlpGeneratorConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let out: usize = config.output_shape.iter().product();
        if config.latent_dim == 0 || out == 0 {
            return Err(condor_core::Error::InvalidInput(
                "mlp generator: latent_dim and output_shape must be non-zero".into(),
            ));
        }
        config.codes.check(config.latent_dim)?;
        let stack = Stack::new(
            config.latent_dim + config.cond_dim,
            &config.hidden,
            out,
            config.batch_norm,
            config.activation,
            config.negative_slope,
            vb,
        )?;
        Ok(Self { config, stack })
    }
}

impl Generator for MlpGenerator {
    fn latent_dim(&self) -> usize {
        self.config.latent_dim
    }
    fn sample_shape(&self) -> Vec<usize> {
        self.config.output_shape.clone()
    }
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::vector_or_none(self.config.cond_dim)
    }
    fn forward(&self, z: &Tensor, cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        condor_core::check_latent("mlp generator", z, self.config.latent_dim)?;
        let z = self.config.codes.apply(z)?;
        let x = self.stack.forward(input_rows(&z, cond, self.conditioning())?, train)?;
        let x = match self.config.output_activation {
            OutputActivation::Identity => x,
            OutputActivation::Tanh => x.tanh()?,
        };
        let mut shape = vec![z.dims()[0]];
        shape.extend_from_slice(&self.config.output_shape);
        Ok(x.reshape(shape)?)
    }
}

/// The MLP discriminator: `[flatten(x), cond] -> hidden layers -> logit`.
pub struct MlpDiscriminator {
    config: MlpDiscriminatorConfig,
    stack: Stack,
}

impl MlpDiscriminator {
    /// Builds the discriminator's layers through `vb`.
    pub fn new(config: MlpDiscriminatorConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let input: usize = config.input_shape.iter().product();
        if input == 0 {
            return Err(condor_core::Error::InvalidInput("mlp discriminator: input_shape must be non-empty".into()));
        }
        let stack = Stack::new(
            input + config.cond_dim,
            &config.hidden,
            1,
            false,
            config.activation,
            config.negative_slope,
            vb,
        )?;
        Ok(Self { config, stack })
    }
}

impl Discriminator for MlpDiscriminator {
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::vector_or_none(self.config.cond_dim)
    }
    fn sample_shape(&self) -> Option<Vec<usize>> {
        Some(self.config.input_shape.clone())
    }
    fn forward(&self, x: &Tensor, cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        condor_core::check_samples("mlp discriminator", x, &self.config.input_shape)?;
        Ok(self.stack.forward(input_rows(x, cond, self.conditioning())?, train)?.squeeze(1)?)
    }
}

/// Config of [`MlpAutoencoder`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpAutoencoderConfig {
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
    /// Widths of the encoder's hidden layers; the decoder's are the same in reverse.
    pub hidden: Vec<usize>,
    /// Size of the code between encoder and decoder.
    pub code_dim: usize,
    /// Hidden-layer non-linearity.
    pub activation: Activation,
    /// Slope of the leaky ReLU for negative inputs.
    pub negative_slope: f64,
}

impl Default for MlpAutoencoderConfig {
    fn default() -> Self {
        Self {
            input_shape: vec![2],
            hidden: vec![128],
            code_dim: 32,
            activation: Activation::LeakyRelu,
            negative_slope: 0.2,
        }
    }
}

/// An MLP autoencoder as an energy function (EBGAN's discriminator): its output `(B, 1 + code_dim)`
/// holds each sample's energy, the mean squared error of its reconstruction, then its code.
pub struct MlpAutoencoder {
    config: MlpAutoencoderConfig,
    encoder: Stack,
    decoder: Stack,
}

impl MlpAutoencoder {
    /// Builds the encoder (`enc.*`) and decoder (`dec.*`) through `vb`.
    pub fn new(config: MlpAutoencoderConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let input: usize = config.input_shape.iter().product();
        if input == 0 || config.code_dim == 0 {
            return Err(condor_core::Error::InvalidInput(
                "mlp autoencoder: input_shape and code_dim must be non-empty".into(),
            ));
        }
        let (act, slope) = (config.activation, config.negative_slope);
        let encoder = Stack::new(input, &config.hidden, config.code_dim, false, act, slope, vb.pp("enc"))?;
        let reversed: Vec<usize> = config.hidden.iter().rev().copied().collect();
        let decoder = Stack::new(config.code_dim, &reversed, input, false, act, slope, vb.pp("dec"))?;
        Ok(Self { config, encoder, decoder })
    }
}

impl condor_core::Network for MlpAutoencoder {
    fn forward(&self, x: &Tensor, _cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        condor_core::check_samples("mlp autoencoder", x, &self.config.input_shape)?;
        let flat = x.flatten_from(1)?;
        let code = self.encoder.forward(flat.clone(), train)?;
        let reconstruction = self.decoder.forward(code.clone(), train)?;
        let energy = (reconstruction - &flat)?.sqr()?.mean_keepdim(1)?;
        Ok(Tensor::cat(&[&energy, &code], 1)?)
    }
}

/// Config of [`MlpNetwork`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpNetworkConfig {
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
    /// Size of the conditioning vector joined to the input; 0 for none.
    pub cond_dim: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Width of the output layer.
    pub outputs: usize,
    /// Hidden-layer non-linearity.
    pub activation: Activation,
    /// Slope of the leaky ReLU for negative inputs.
    pub negative_slope: f64,
    /// Batch norm after each hidden linear layer.
    pub batch_norm: bool,
    /// Also return the last hidden layer's activations, after the outputs (for feature matching and
    /// feature-space reconstruction losses).
    pub features: bool,
}

impl Default for MlpNetworkConfig {
    fn default() -> Self {
        Self {
            input_shape: vec![2],
            cond_dim: 0,
            hidden: vec![128, 128],
            outputs: 1,
            activation: Activation::LeakyRelu,
            negative_slope: 0.2,
            batch_norm: false,
            features: false,
        }
    }
}

/// An MLP of any output width, a network of no fixed role: a discriminator with extra heads (InfoGAN's
/// Q, a K-class classifier) or an encoder. Its output is `(B, outputs)`, followed by the last hidden
/// layer's activations when the config asks for `features`.
pub struct MlpNetwork {
    config: MlpNetworkConfig,
    stack: Stack,
}

impl MlpNetwork {
    /// Builds the layers through `vb` (the same names as the discriminator's).
    pub fn new(config: MlpNetworkConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let input: usize = config.input_shape.iter().product();
        if input == 0 || config.outputs == 0 {
            return Err(condor_core::Error::InvalidInput(
                "mlp network: input_shape and outputs must be non-empty".into(),
            ));
        }
        let (act, slope) = (config.activation, config.negative_slope);
        let stack =
            Stack::new(input + config.cond_dim, &config.hidden, config.outputs, config.batch_norm, act, slope, vb)?;
        Ok(Self { config, stack })
    }
}

impl condor_core::Network for MlpNetwork {
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::vector_or_none(self.config.cond_dim)
    }
    fn forward(&self, x: &Tensor, cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        condor_core::check_samples("mlp network", x, &self.config.input_shape)?;
        let features = self.stack.features(input_rows(x, cond, self.conditioning())?, train)?;
        let outputs = self.stack.output.forward(&features)?;
        Ok(if self.config.features { Tensor::cat(&[&outputs, &features], 1)? } else { outputs })
    }
}

/// Registers the MLP generator and discriminator under the name `"mlp"`, the MLP of any output width
/// as the network `"mlp"`, and the MLP autoencoder (an energy network for the `energy_based` recipe)
/// as the network `"mlp_autoencoder"`.
pub fn register(registry: &mut Registry) -> condor_core::Result<()> {
    registry.register_generator("mlp", MlpGenerator::new)?;
    registry.register_discriminator("mlp", MlpDiscriminator::new)?;
    registry.register_network("mlp", MlpNetwork::new)?;
    registry.register_network("mlp_autoencoder", MlpAutoencoder::new)
}

#[cfg(test)]
mod tests;
