//! The style-based generator: mapping network, synthesis network with modulated convolutions and
//! noise inputs, style mixing and the moving average of `w` for the truncation trick.

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{Init, VarBuilder};
use condor_core::augmentation::{reparameterise, Augmentation};
use condor_core::rng::{derived_rng, Fnv64};
use condor_core::{
    check_conditioning, check_latent, Conditioning, ConditioningKind, Error, Generator, NoiseInputs, StyleControl,
};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::layers::{normalize_2nd_moment, EqualLinear, ModulatedConv, ACTIVATION_GAIN};
use crate::{channels_at, resolutions};
use condor_core::activation::Activation;
use condor_core::resample::upsample2x;

/// Configuration of [`StyleGanGenerator`]. The defaults: 32 pixels, 32 to 128 feature maps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StyleGanGeneratorConfig {
    /// Size of the noise vector z.
    pub z_dim: usize,
    /// Size of the conditioning embedding; 0 for an unconditional generator.
    pub cond_dim: usize,
    /// Size of the embedded conditioning joined to z (without augmentation).
    pub cond_code_dim: usize,
    /// StackGAN's conditioning augmentation, which replaces the plain embedding when set.
    pub augmentation: Option<Augmentation>,
    /// Size of the style vector w.
    pub w_dim: usize,
    /// Layers of the mapping network (StyleGAN: 8).
    pub mapping_layers: usize,
    /// Learning-rate multiplier of the mapping network (StyleGAN: 0.01).
    pub mapping_lr_mul: f64,
    /// Side of the square output: a power of two from 8 to 1024.
    pub image_size: usize,
    /// Channels of the output image.
    pub channels: usize,
    /// Feature maps at resolution r are `min(channel_base / r, channel_max)`.
    pub channel_base: usize,
    /// Upper bound on feature maps per layer.
    pub channel_max: usize,
    /// Probability that a training sample mixes the styles of two latents (StyleGAN: 0.9).
    pub style_mixing: f64,
    /// Decay of the moving average of w tracked in training (StyleGAN: 0.995).
    pub w_avg_decay: f64,
}

impl Default for StyleGanGeneratorConfig {
    fn default() -> Self {
        Self {
            z_dim: 128,
            cond_dim: 0,
            cond_code_dim: 128,
            augmentation: None,
            w_dim: 256,
            mapping_layers: 8,
            mapping_lr_mul: 0.01,
            image_size: 32,
            channels: 3,
            channel_base: 1024,
            channel_max: 128,
            style_mixing: 0.9,
            w_avg_decay: 0.995,
        }
    }
}

/// Random streams derived from a sample's latent vector.
const NOISE_STREAM: u64 = 1;
const MIXING_STREAM: u64 = 2;

/// How the generator reads the conditioning vector.
enum TextCode {
    /// An equalised linear embedding (StyleGAN2-ADA's conditional mapping).
    ///
    /// Both forms read the embedding scaled to unit second moment: sentence embeddings have unit length,
    /// so their entries are about `1/sqrt(dim)`, and without the scaling the text's part of the code
    /// starts some 20 times smaller than the noise (augmentation's draw) beside it.
    Embedded(EqualLinear),
    /// Conditioning augmentation: `(mu, log sigma)` from the embedding, sampled with `eps` taken from
    /// the end of the latent vector.
    Augmented(EqualLinear, Augmentation),
}

/// One modulated 3x3 convolution with its noise input, bias and activation; `up` doubles the side first.
struct StyleLayer {
    conv: ModulatedConv,
    noise_strength: Tensor,
    fixed_noise: Tensor,
    bias: Tensor,
    up: bool,
    resolution: usize,
}

impl StyleLayer {
    fn new(
        c_in: usize,
        c_out: usize,
        resolution: usize,
        up: bool,
        w_dim: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            conv: ModulatedConv::new(c_in, c_out, 3, w_dim, true, vb.clone())?,
            noise_strength: vb.get_with_hints(c_out, "noise_strength", Init::Const(0.0))?,
            fixed_noise: vb.get_with_hints(
                (1, 1, resolution, resolution),
                "noise_buffer",
                Init::Randn { mean: 0.0, stdev: 1.0 },
            )?,
            bias: vb.get_with_hints(c_out, "bias", Init::Const(0.0))?,
            up,
            resolution,
        })
    }

    fn forward(&self, x: &Tensor, w: &Tensor, noise: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let x = if self.up { upsample2x(x)? } else { x.clone() };
        let noise = noise.map(|n| (n, &self.noise_strength));
        self.conv.forward_act(&x, w, noise, Some(&self.bias), Activation::LeakyRelu(0.2), ACTIVATION_GAIN)
    }
}

/// toRGB: a modulated 1x1 convolution without demodulation, plus a bias.
struct ToRgb {
    conv: ModulatedConv,
    bias: Tensor,
}

impl ToRgb {
    fn new(c_in: usize, channels: usize, w_dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            conv: ModulatedConv::new(c_in, channels, 1, w_dim, false, vb.clone())?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        self.conv.forward_act(x, w, None, Some(&self.bias), Activation::Identity, 1.0)
    }
}

/// One resolution of the synthesis network: one layer at 4x4, two above (the first upsamples),
/// then toRGB, whose output is added to the upsampled image so far.
struct Block {
    layers: Vec<StyleLayer>,
    to_rgb: ToRgb,
}

/// The StyleGAN-like generator. Its latent vector is z followed, with conditioning augmentation, by
/// the augmentation's standard normal draw. The random parts of a forward pass (noise inputs, and in
/// training the second latent of style mixing) are drawn from generators seeded by each sample's latent
/// vector, so one latent vector fixes one image and training stays reproducible.
pub struct StyleGanGenerator {
    config: StyleGanGeneratorConfig,
    text: Option<TextCode>,
    mapping: Vec<EqualLinear>,
    w_avg: Var,
    constant: Tensor,
    blocks: Vec<Block>,
}

impl StyleGanGenerator {
    /// Builds the generator's layers through `vb`.
    pub fn new(config: StyleGanGeneratorConfig, vb: VarBuilder) -> condor_core::Result<Self> {
        let res = resolutions(config.image_size, "stylegan generator")?;
        let c = &config;
        if c.z_dim == 0 || c.w_dim == 0 || c.mapping_layers == 0 || c.channels == 0 {
            return Err(Error::InvalidInput(
                "stylegan generator: z_dim, w_dim, mapping_layers and channels must be non-zero".into(),
            ));
        }
        if !(0.0..=1.0).contains(&c.style_mixing) || !(0.0..1.0).contains(&c.w_avg_decay) || c.mapping_lr_mul <= 0.0 {
            return Err(Error::InvalidInput(
                "stylegan generator: style_mixing must be in [0, 1], w_avg_decay in [0, 1), mapping_lr_mul > 0".into(),
            ));
        }
        let (text, code_dim) = match (c.cond_dim, c.augmentation) {
            (0, _) => (None, 0),
            (e, Some(a)) => {
                (Some(TextCode::Augmented(EqualLinear::new(e, 2 * a.dim, 1.0, 0.0, vb.pp("ca"))?, a)), a.dim)
            }
            (e, None) => (
                Some(TextCode::Embedded(EqualLinear::new(e, c.cond_code_dim, 1.0, 0.0, vb.pp("text"))?)),
                c.cond_code_dim,
            ),
        };
        let mvb = vb.pp("mapping");
        let mut mapping = Vec::new();
        for i in 0..c.mapping_layers {
            let fan_in = if i == 0 { c.z_dim + code_dim } else { c.w_dim };
            mapping.push(EqualLinear::new(fan_in, c.w_dim, c.mapping_lr_mul, 0.0, mvb.pp(i))?);
        }
        let w_avg = Var::from_tensor(&mvb.get_with_hints(c.w_dim, "w_avg_buffer", Init::Const(0.0))?)?;
        let svb = vb.pp("synthesis");
        let ch = |r| channels_at(r, c.channel_base, c.channel_max);
        let constant = svb.get_with_hints((ch(4), 4, 4), "const", Init::Randn { mean: 0.0, stdev: 1.0 })?;
        let mut blocks = Vec::new();
        for &r in &res {
            let bvb = svb.pp(format!("b{r}"));
            let layers = if r == 4 {
                vec![StyleLayer::new(ch(4), ch(4), 4, false, c.w_dim, bvb.pp("conv"))?]
            } else {
                vec![
                    StyleLayer::new(ch(r / 2), ch(r), r, true, c.w_dim, bvb.pp("conv0"))?,
                    StyleLayer::new(ch(r), ch(r), r, false, c.w_dim, bvb.pp("conv1"))?,
                ]
            };
            blocks.push(Block { layers, to_rgb: ToRgb::new(ch(r), c.channels, c.w_dim, bvb.pp("to_rgb"))? });
        }
        Ok(Self { config, text, mapping, w_avg, constant, blocks })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &StyleGanGeneratorConfig {
        &self.config
    }

    fn code_dim(&self) -> usize {
        match &self.text {
            Some(TextCode::Augmented(_, a)) => a.dim,
            _ => 0,
        }
    }

    /// `(mu, log sigma)` of the conditioning augmentation for `embedding`, when it is on.
    pub fn augmentation_stats(&self, embedding: &Tensor) -> condor_core::Result<Option<(Tensor, Tensor)>> {
        match &self.text {
            Some(TextCode::Augmented(linear, a)) => {
                Ok(Some(a.split(&linear.forward(&normalize_2nd_moment(embedding)?)?)?))
            }
            _ => Ok(None),
        }
    }

    /// Checks the latent batch and conditioning; returns the batch size.
    fn check(&self, z: &Tensor, cond: Option<&Conditioning>) -> condor_core::Result<usize> {
        check_latent("stylegan generator", z, self.latent_dim())?;
        let b = z.dims()[0];
        check_conditioning(self.conditioning(), cond, b)?;
        Ok(b)
    }

    /// The conditioning code joined to z (None for an unconditional generator).
    fn text_code(&self, z: &Tensor, cond: Option<&Conditioning>) -> condor_core::Result<Option<Tensor>> {
        let (Some(text), Some(c)) = (&self.text, cond) else { return Ok(None) };
        let e = c.embedding.to_dtype(z.dtype())?;
        Ok(Some(match text {
            TextCode::Embedded(linear) => linear.forward(&normalize_2nd_moment(&e)?)?,
            TextCode::Augmented(..) => {
                let (mu, log_sigma) = self.augmentation_stats(&e)?.expect("augmented");
                let eps = z.narrow(1, self.config.z_dim, self.code_dim())?;
                reparameterise(&mu, &log_sigma, &eps)?
            }
        }))
    }

    /// The mapping network on noise `(B, z_dim)` and an optional conditioning code.
    fn mapping(&self, noise: &Tensor, code: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let mut x = normalize_2nd_moment(noise)?;
        if let Some(code) = code {
            x = Tensor::cat(&[&x, &normalize_2nd_moment(code)?], D::Minus1)?;
        }
        for layer in &self.mapping {
            x = layer.forward_lrelu(&x)?;
        }
        Ok(x)
    }

    /// Per-layer styles `(B, style_count, w_dim)` for a training batch: with probability
    /// `style_mixing` per sample, the layers from a random crossover on take the styles of a second
    /// latent (under the same conditioning).
    fn mixed_styles(&self, w: &Tensor, seeds: &[u64], code: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (b, n, l) = (seeds.len(), self.config.z_dim, self.style_count());
        let mut second = Vec::with_capacity(b * n);
        let mut keep = Vec::with_capacity(b * l);
        for &seed in seeds {
            let mut rng = derived_rng(seed, &[MIXING_STREAM]);
            let cutoff = if rng.random::<f64>() < self.config.style_mixing { rng.random_range(1..l) } else { l };
            second.extend((0..n).map(|_| {
                let v: f32 = StandardNormal.sample(&mut rng);
                v
            }));
            keep.extend((0..l).map(|i| if i < cutoff { 1f32 } else { 0.0 }));
        }
        let dev = w.device();
        let w2 = self.mapping(&Tensor::from_vec(second, (b, n), dev)?.to_dtype(w.dtype())?, code)?;
        let keep = Tensor::from_vec(keep, (b, l, 1), dev)?.to_dtype(w.dtype())?;
        let first = w.unsqueeze(1)?.broadcast_mul(&keep)?;
        first + w2.unsqueeze(1)?.broadcast_mul(&(1.0 - keep)?)?
    }

    /// Moves the tracked average of w toward this batch's mean.
    fn track_average(&self, w: &Tensor) -> candle_core::Result<()> {
        let mean = w.detach().mean(0)?.to_dtype(self.w_avg.dtype())?;
        let beta = self.config.w_avg_decay;
        self.w_avg.set(&((self.w_avg.as_tensor() * beta)? + (mean * (1.0 - beta))?)?)
    }

    /// The noise maps of every synthesis layer, in order, for a batch.
    /// `seeds` are the batch's latent seeds ([`latent_seeds`]), read under [`NoiseInputs::FromLatent`].
    fn noise_maps(
        &self,
        seeds: &[u64],
        device: &Device,
        mode: NoiseInputs,
        dtype: DType,
    ) -> candle_core::Result<Vec<Option<Tensor>>> {
        let layers = self.blocks.iter().flat_map(|b| &b.layers);
        match mode {
            NoiseInputs::Zero => Ok(layers.map(|_| None).collect()),
            NoiseInputs::Fixed => layers.map(|l| Ok(Some(l.fixed_noise.clone()))).collect(),
            NoiseInputs::FromLatent => layers
                .enumerate()
                .map(|(i, l)| Ok(Some(seeded_noise(seeds, i as u64, l.resolution, device)?.to_dtype(dtype)?)))
                .collect(),
        }
    }

    fn synthesis(&self, ws: &Tensor, noise: &[Option<Tensor>]) -> candle_core::Result<Tensor> {
        let b = ws.dim(0)?;
        let style = |i: usize| ws.narrow(1, i, 1)?.squeeze(1);
        let mut x = self.constant.unsqueeze(0)?.broadcast_as((b, self.constant.dim(0)?, 4, 4))?.contiguous()?;
        let mut img: Option<Tensor> = None;
        let (mut w_index, mut noise_index) = (0, 0);
        for block in &self.blocks {
            for layer in &block.layers {
                x = layer.forward(&x, &style(w_index)?, noise[noise_index].as_ref())?;
                w_index += 1;
                noise_index += 1;
            }
            let rgb = block.to_rgb.forward(&x, &style(w_index)?)?;
            img = Some(match img {
                Some(prev) => (upsample2x(&prev)? + rgb)?,
                None => rgb,
            });
        }
        img.expect("at least one block").tanh()
    }
}

/// One seed per sample, hashed from the bits of its latent vector.
fn latent_seeds(z: &Tensor) -> candle_core::Result<Vec<u64>> {
    let rows: Vec<Vec<f32>> = z.to_dtype(DType::F32)?.to_vec2()?;
    Ok(rows
        .iter()
        .map(|row| {
            let mut h = Fnv64::default();
            for v in row {
                h.update(&v.to_bits().to_le_bytes());
            }
            h.finish()
        })
        .collect())
}

/// `(B, 1, r, r)` standard normal noise for layer `layer`, each sample's from its own seed.
fn seeded_noise(seeds: &[u64], layer: u64, r: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(seeds.len() * r * r);
    for &seed in seeds {
        let mut rng = derived_rng(seed, &[NOISE_STREAM, layer]);
        data.extend((0..r * r).map(|_| {
            let v: f32 = StandardNormal.sample(&mut rng);
            v
        }));
    }
    Tensor::from_vec(data, (seeds.len(), 1, r, r), device)
}

impl Generator for StyleGanGenerator {
    fn latent_dim(&self) -> usize {
        self.config.z_dim + self.code_dim()
    }
    fn sample_shape(&self) -> Vec<usize> {
        vec![self.config.channels, self.config.image_size, self.config.image_size]
    }
    fn conditioning(&self) -> ConditioningKind {
        ConditioningKind::vector_or_none(self.config.cond_dim)
    }
    fn forward(&self, z: &Tensor, cond: Option<&Conditioning>, train: bool) -> condor_core::Result<Tensor> {
        self.check(z, cond)?;
        let code = self.text_code(z, cond)?;
        let w = self.mapping(&z.narrow(1, 0, self.config.z_dim)?, code.as_ref())?;
        let seeds = latent_seeds(z)?;
        let ws = if train {
            self.track_average(&w)?;
            self.mixed_styles(&w, &seeds, code.as_ref())?
        } else {
            w.unsqueeze(1)?.repeat((1, self.style_count(), 1))?
        };
        let noise = self.noise_maps(&seeds, z.device(), NoiseInputs::FromLatent, ws.dtype())?;
        Ok(self.synthesis(&ws, &noise)?)
    }
    fn regularization(&self, cond: Option<&Conditioning>) -> condor_core::Result<Option<Tensor>> {
        let (Some(TextCode::Augmented(_, a)), Some(c)) = (&self.text, cond) else { return Ok(None) };
        let (mu, log_sigma) =
            self.augmentation_stats(&c.embedding.to_dtype(self.constant.dtype())?)?.expect("augmented");
        Ok(Some(a.weighted_kl(&mu, &log_sigma)?))
    }
    fn styles(&self) -> Option<&dyn StyleControl> {
        Some(self)
    }
}

impl StyleControl for StyleGanGenerator {
    fn style_count(&self) -> usize {
        self.blocks.iter().map(|b| b.layers.len()).sum::<usize>() + 1
    }
    fn style_dim(&self) -> usize {
        self.config.w_dim
    }
    fn map(&self, z: &Tensor, cond: Option<&Conditioning>) -> condor_core::Result<Tensor> {
        self.check(z, cond)?;
        let code = self.text_code(z, cond)?;
        Ok(self.mapping(&z.narrow(1, 0, self.config.z_dim)?, code.as_ref())?)
    }
    fn average_style(&self) -> condor_core::Result<Tensor> {
        Ok(self.w_avg.as_tensor().clone())
    }
    fn synthesize(&self, ws: &Tensor, z: &Tensor, noise: NoiseInputs) -> condor_core::Result<Tensor> {
        let (b, l, d) = ws.dims3()?;
        if l != self.style_count() || d != self.config.w_dim || z.dims() != [b, self.latent_dim()] {
            return Err(Error::InvalidInput(format!(
                "stylegan synthesis expects styles (batch, {}, {}) and latents (batch, {}), got {:?} and {:?}",
                self.style_count(),
                self.config.w_dim,
                self.latent_dim(),
                ws.dims(),
                z.dims()
            )));
        }
        let seeds = if noise == NoiseInputs::FromLatent { latent_seeds(z)? } else { Vec::new() };
        let maps = self.noise_maps(&seeds, z.device(), noise, ws.dtype())?;
        Ok(self.synthesis(ws, &maps)?)
    }
}

#[cfg(test)]
impl StyleGanGenerator {
    /// Sets every layer's noise strength (tests only).
    pub(crate) fn set_noise_strength(&self, value: f64) -> candle_core::Result<()> {
        for layer in self.blocks.iter().flat_map(|b| &b.layers) {
            let var = Var::from_tensor(&layer.noise_strength)?;
            var.set(&(var.ones_like()? * value)?)?;
        }
        Ok(())
    }
}
