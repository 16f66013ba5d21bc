//! Per-sample channel scales, noise inputs, biases and an activation as one op:
//! `act(x[b,c,s] a[b,c] + n[b,s] sigma[c] + beta[c]) * gain` ([`channel_affine_act`]).
//!
//! StyleGAN's layers are made of these: the input modulation (`a` the styles), the demodulation with
//! the noise input, bias and scaled leaky ReLU after the convolution, and every `lrelu(conv(x) + b) *
//! sqrt(2)` of the discriminator. As candle ops each of those terms was a full-size pass forward and
//! two or three backward; here the forward is one pass and the backward one more (f32, f64 on the
//! CPU; candle's ops elsewhere).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use crate::activation::Activation;
use crate::kernels::act::Act;
use crate::kernels::{
    check_counts, for_each_chunk, lane_sums, map_chunks, on_cpu, parallel_elements, real_op, split_gradients,
    vectorised, Real, Vectorise,
};

/// Which terms an op has and the shapes they take; `packed` holds them in this order: `a` `(B, C)`,
/// `sigma` `(C)`, `beta` `(C)`, the noise `(noise_batch, S)`.
#[derive(Clone, Copy, Debug)]
struct Terms {
    batch: usize,
    channels: usize,
    spatial: usize,
    scale: bool,
    /// Rows of the noise map (1: shared by the batch, or the batch size); `None` without noise.
    noise_batch: Option<usize>,
    bias: bool,
    act: Activation,
    gain: f64,
}

/// Offsets of the terms in the packed parameter vector.
struct Offsets {
    scale: Option<usize>,
    sigma: Option<usize>,
    beta: Option<usize>,
    noise: Option<usize>,
    len: usize,
}

impl Terms {
    fn offsets(&self) -> Offsets {
        let mut at = 0;
        let mut take = |present: bool, n: usize| {
            let start = present.then_some(at);
            at += if present { n } else { 0 };
            start
        };
        let scale = take(self.scale, self.batch * self.channels);
        let sigma = take(self.noise_batch.is_some(), self.channels);
        let beta = take(self.bias, self.channels);
        let noise = take(self.noise_batch.is_some(), self.noise_batch.unwrap_or(0) * self.spatial);
        Offsets { scale, sigma, beta, noise, len: at }
    }

    fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    /// The terms of sample `b`, channel `c`: `(a, sigma, beta)` and the sample's noise row.
    #[inline(always)]
    fn channel<T: Real>(&self, o: &Offsets, p: &[T], b: usize, c: usize) -> (T, T, T) {
        let at = |off: Option<usize>, i: usize, default: T| off.map_or(default, |s| p[s + i]);
        (at(o.scale, b * self.channels + c, T::ONE), at(o.sigma, c, T::ZERO), at(o.beta, c, T::ZERO))
    }

    fn noise_row<'a, T: Real>(&self, o: &Offsets, p: &'a [T], b: usize) -> Option<&'a [T]> {
        let (start, rows) = (o.noise?, self.noise_batch?);
        let row = if rows == 1 { 0 } else { b };
        Some(&p[start + row * self.spatial..][..self.spatial])
    }

    fn forward<T: Real>(&self, x: &[T], p: &[T]) -> Vec<T> {
        let o = self.offsets();
        let sample_len = self.channels * self.spatial;
        let mut out = vec![T::ZERO; self.len()];
        let sample = |b: usize, out: &mut [T]| {
            let x = &x[b * sample_len..][..sample_len];
            vectorised(SampleForward { terms: self, o: &o, p, b, x, out });
        };
        for_each_chunk(&mut out, sample_len, parallel_elements(self.len()), sample);
        out
    }

    /// One sample's input gradient (into `dx`), and per channel the sums of `g x`, `g n` and `g`
    /// (the gradients of its scale, noise strength and bias), with the noise map's gradient.
    fn sample_backward<T: Real>(
        &self,
        o: &Offsets,
        (dy, x, p): (&[T], &[T], &[T]),
        b: usize,
        dx: &mut [T],
    ) -> SampleGrads<T> {
        let sample_len = self.channels * self.spatial;
        let (x, dy) = (&x[b * sample_len..][..sample_len], &dy[b * sample_len..][..sample_len]);
        vectorised(SampleBackward { terms: self, o, p, b, x, dy, dx })
    }

    fn backward<T: Real>(&self, dy: &[T], x: &[T], p: &[T]) -> Vec<T> {
        let o = self.offsets();
        let c_count = self.channels;
        // `dx` then the parameters' gradients, in one buffer (no copy to join them).
        let mut out = vec![T::ZERO; self.len() + o.len];
        let (dx, dp) = out.split_at_mut(self.len());
        let sample = |b: usize, dx: &mut [T]| self.sample_backward(&o, (dy, x, p), b, dx);
        let per_sample = map_chunks(dx, c_count * self.spatial, parallel_elements(self.len()), sample);
        for (b, grads) in per_sample.iter().enumerate() {
            for (c, sums) in grads.per_channel.iter().enumerate() {
                if let Some(s) = o.scale {
                    dp[s + b * c_count + c] = T::from_f64(sums[0]);
                }
                if let Some(s) = o.sigma {
                    dp[s + c] += T::from_f64(sums[1]);
                }
                if let Some(s) = o.beta {
                    dp[s + c] += T::from_f64(sums[2]);
                }
            }
            if let (Some(start), Some(rows)) = (o.noise, self.noise_batch) {
                let row = &mut dp[start + if rows == 1 { 0 } else { b * self.spatial }..][..self.spatial];
                row.iter_mut().zip(&grads.d_noise).for_each(|(r, &d)| *r += d);
            }
        }
        out
    }
}

/// One sample's forward pass, as vectorised work: `x` and `out` that sample's `(C, S)` values.
struct SampleForward<'a, T> {
    terms: &'a Terms,
    o: &'a Offsets,
    p: &'a [T],
    b: usize,
    x: &'a [T],
    out: &'a mut [T],
}

impl<T: Real> Vectorise for SampleForward<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Self { terms: t, o, p, b, x, out } = self;
        let noise = t.noise_row(o, p, b);
        let gain = T::from_f64(t.gain);
        let rows = out.chunks_exact_mut(t.spatial).zip(x.chunks_exact(t.spatial));
        crate::kernels::with_act!(t.act, T, |f| {
            for (c, (out, xs)) in rows.enumerate() {
                let (a, sigma, beta) = t.channel(o, p, b, c);
                // One loop with the noise and one without, so that neither tests it per element;
                // `+ 0` keeps the arithmetic (and the sign of zeros) of the loop with noise.
                match noise {
                    Some(n) => {
                        for ((o, &v), &n) in out.iter_mut().zip(xs).zip(n) {
                            *o = f.apply(v * a + n * sigma + beta) * gain;
                        }
                    }
                    None => {
                        for (o, &v) in out.iter_mut().zip(xs) {
                            *o = f.apply(v * a + T::ZERO + beta) * gain;
                        }
                    }
                }
            }
        })
    }
}

/// One sample's backward pass, as vectorised work: `x`, `dy` and `dx` that sample's `(C, S)` values.
struct SampleBackward<'a, T> {
    terms: &'a Terms,
    o: &'a Offsets,
    p: &'a [T],
    b: usize,
    x: &'a [T],
    dy: &'a [T],
    dx: &'a mut [T],
}

impl<T: Real> Vectorise for SampleBackward<'_, T> {
    type Output = SampleGrads<T>;
    #[inline(always)]
    fn run(self) -> SampleGrads<T> {
        let Self { terms: t, o, p, b, x, dy, dx } = self;
        let noise = t.noise_row(o, p, b);
        let gain = T::from_f64(t.gain);
        let mut d_noise = vec![T::ZERO; if noise.is_some() { t.spatial } else { 0 }];
        let mut g = vec![T::ZERO; t.spatial];
        let mut per_channel = Vec::with_capacity(t.channels);
        let rows = dx.chunks_exact_mut(t.spatial).zip(x.chunks_exact(t.spatial).zip(dy.chunks_exact(t.spatial)));
        crate::kernels::with_act!(t.act, T, |f| {
            for (c, (dx, (xs, dys))) in rows.enumerate() {
                let (a, sigma, beta) = t.channel(o, p, b, c);
                // The gradient at the activation's input, then what each term gets of it.
                match noise {
                    Some(n) => {
                        for (((g, &v), &d), &n) in g.iter_mut().zip(xs).zip(dys).zip(n) {
                            *g = d * gain * f.derivative(v * a + n * sigma + beta);
                        }
                    }
                    None => {
                        for ((g, &v), &d) in g.iter_mut().zip(xs).zip(dys) {
                            *g = d * gain * f.derivative(v * a + T::ZERO + beta);
                        }
                    }
                }
                for (dx, &g) in dx.iter_mut().zip(&g) {
                    *dx = g * a;
                }
                for (dn, &g) in d_noise.iter_mut().zip(&g) {
                    *dn += g * sigma;
                }
                let (gx, g_sum) = lane_sums(&g, xs, |g, v| (g * v, g));
                let gn = noise.map_or(0.0, |n| lane_sums(&g, n, |g, n| (g * n, T::ZERO)).0);
                per_channel.push([gx, gn, g_sum]);
            }
        });
        SampleGrads { per_channel, d_noise }
    }
}

/// What one sample's backward pass gives the parameters: per channel the sums of `g x`, `g n` and `g`,
/// and the noise map's gradient (empty without noise).
struct SampleGrads<T> {
    per_channel: Vec<[f64; 3]>,
    d_noise: Vec<T>,
}

#[derive(Clone, Copy, Debug)]
struct ChannelAffineAct(Terms);

impl CustomOp2 for ChannelAffineAct {
    fn name(&self) -> &'static str {
        "channel-affine-act"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let t = &self.0;
        check_counts(self.name(), &[(l1, t.len()), (l2, t.offsets().len)])?;
        let label = || format!("channel-affine-act {:?} {}x{}x{}", t.act, t.batch, t.channels, t.spatial);
        let out = crate::profile::timed(label, || {
            Ok::<_, candle_core::Error>(real_op!(self.name(), [(s1, l1), (s2, l2)], |x, p| t.forward(x, p)))
        })?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both = grad.contiguous()?.apply_op3_no_bwd(x, packed, &ChannelAffineActGrad(self.0))?;
        split_gradients(&both, x, packed)
    }
}

/// The backward op: `(dy, x, packed)` to `dx` and the packed terms' gradient, flattened into one vector.
struct ChannelAffineActGrad(Terms);

impl CustomOp3 for ChannelAffineActGrad {
    fn name(&self) -> &'static str {
        "channel-affine-act-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let t = &self.0;
        let o = t.offsets();
        check_counts(self.name(), &[(l1, t.len()), (l2, t.len()), (l3, o.len)])?;
        let label = || format!("channel-affine-act-grad {:?} {}x{}x{}", t.act, t.batch, t.channels, t.spatial);
        let out = crate::profile::timed(label, || {
            Ok::<_, candle_core::Error>(
                real_op!(self.name(), [(s1, l1), (s2, l2), (s3, l3)], |dy, x, p| t.backward(dy, x, p))
            )
        })?;
        Ok((out, (t.len() + o.len).into()))
    }
}

/// `act(x[b,c,..] a[b,c] + n[b,..] sigma[c] + beta[c]) * gain` for `x` `(B, C, ...)`: `scale` `a` is
/// `(B, C)`, `noise` is a map `(1 or B, 1, ...)` with the per-channel strengths `sigma` `(C,)`, `bias`
/// is `(C,)`; each term is optional. One op with a fused backward on the CPU (f32, f64), candle's ops
/// elsewhere.
pub fn channel_affine_act(
    x: &Tensor,
    scale: Option<&Tensor>,
    noise: Option<(&Tensor, &Tensor)>,
    bias: Option<&Tensor>,
    act: Activation,
    gain: f64,
) -> Result<Tensor> {
    let (b, c) = (x.dim(0)?, x.dim(1)?);
    let spatial = x.elem_count() / (b * c).max(1);
    if !on_cpu(x) {
        return channel_affine_act_candle(x, scale, noise, bias, act, gain);
    }
    let noise_batch = noise.map(|(n, _)| n.dim(0)).transpose()?;
    if let Some((n, sigma)) = noise {
        let rows = n.dim(0)?;
        if n.elem_count() != rows * spatial || (rows != 1 && rows != b) || sigma.elem_count() != c {
            candle_core::bail!(
                "channel_affine_act: noise {:?} and strengths {:?} for input {:?}",
                n.shape(),
                sigma.shape(),
                x.shape()
            );
        }
    }
    let terms =
        Terms { batch: b, channels: c, spatial, scale: scale.is_some(), noise_batch, bias: bias.is_some(), act, gain };
    let mut parts = Vec::with_capacity(4);
    parts.extend(scale.map(|s| s.flatten_all()).transpose()?);
    parts.extend(noise.map(|(_, sigma)| sigma.flatten_all()).transpose()?);
    parts.extend(bias.map(|b| b.flatten_all()).transpose()?);
    parts.extend(noise.map(|(n, _)| n.flatten_all()).transpose()?);
    let packed = match parts.len() {
        0 => Tensor::zeros(0, x.dtype(), x.device())?,
        _ => Tensor::cat(&parts, 0)?,
    };
    x.contiguous()?.apply_op2(&packed, ChannelAffineAct(terms))
}

/// [`channel_affine_act`] in candle's ops.
fn channel_affine_act_candle(
    x: &Tensor,
    scale: Option<&Tensor>,
    noise: Option<(&Tensor, &Tensor)>,
    bias: Option<&Tensor>,
    act: Activation,
    gain: f64,
) -> Result<Tensor> {
    let (b, c) = (x.dim(0)?, x.dim(1)?);
    let trailing = vec![1; x.rank() - 2];
    let per_channel: Vec<usize> = [1, c].into_iter().chain(trailing.iter().copied()).collect();
    let mut y = x.clone();
    if let Some(s) = scale {
        let shape: Vec<usize> = [b, c].into_iter().chain(trailing.iter().copied()).collect();
        y = y.broadcast_mul(&s.reshape(shape)?)?;
    }
    if let Some((n, sigma)) = noise {
        y = y.broadcast_add(&n.broadcast_mul(&sigma.reshape(per_channel.as_slice())?)?)?;
    }
    if let Some(bias) = bias {
        y = y.broadcast_add(&bias.reshape(per_channel.as_slice())?)?;
    }
    act.forward(&y)? * gain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::check_gradients;
    use crate::rng::normal;
    use crate::{derived_rng, Params};
    use candle_core::{DType, Device, Var};

    fn random(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
        normal(&mut derived_rng(seed, &[]), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    /// [`channel_affine_act`] or its candle formulation.
    type ChannelAffineFn =
        fn(&Tensor, Option<&Tensor>, Option<(&Tensor, &Tensor)>, Option<&Tensor>, Activation, f64) -> Result<Tensor>;

    /// Every combination of terms, shared and per-sample noise.
    fn cases() -> Vec<(bool, Option<usize>, bool, Activation)> {
        let mut out = Vec::new();
        for scale in [false, true] {
            for noise in [None, Some(1), Some(3)] {
                for bias in [false, true] {
                    for act in [Activation::Identity, Activation::LeakyRelu(0.2), Activation::Tanh] {
                        out.push((scale, noise, bias, act));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn values_and_gradients_match_candle_ops() {
        for (i, (scale, noise, bias, act)) in cases().into_iter().enumerate() {
            let seed = 10 * i as u64;
            let x = Var::from_tensor(&random(&[3, 4, 5, 5], seed, DType::F32)).unwrap();
            let a = Var::from_tensor(&random(&[3, 4], seed + 1, DType::F32)).unwrap();
            let sigma = Var::from_tensor(&random(&[4], seed + 2, DType::F32)).unwrap();
            let beta = Var::from_tensor(&random(&[4], seed + 3, DType::F32)).unwrap();
            let n = noise.map(|rows| Var::from_tensor(&random(&[rows, 1, 5, 5], seed + 4, DType::F32)).unwrap());
            let terms = |f: ChannelAffineFn| {
                let nt = n.as_ref().map(|n| (n.as_tensor(), sigma.as_tensor()));
                f(&x, scale.then_some(a.as_tensor()), nt, bias.then_some(beta.as_tensor()), act, 1.5).unwrap()
            };
            let (ours, theirs) = (terms(channel_affine_act), terms(channel_affine_act_candle));
            let g = random(ours.dims(), seed + 5, DType::F32);
            let diff = |p: &Tensor, q: &Tensor| {
                (p - q).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
            };
            let case = format!("scale {scale}, noise {noise:?}, bias {bias}, {act:?}");
            assert!(diff(&ours, &theirs) < 1e-5, "{case}");
            let (g1, g2) = (
                (&ours * &g).unwrap().sum_all().unwrap().backward().unwrap(),
                (&theirs * &g).unwrap().sum_all().unwrap().backward().unwrap(),
            );
            let mut vars = vec![&x, &a, &sigma, &beta];
            vars.extend(n.as_ref());
            for v in vars {
                match (g1.get(v), g2.get(v)) {
                    (Some(p), Some(q)) => assert!(diff(p, q) < 1e-4, "{case}: {}", diff(p, q)),
                    (None, None) => {}
                    (p, q) => panic!("{case}: gradient present {} against {}", p.is_some(), q.is_some()),
                }
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let params = Params::new(3);
        let vb = params.var_builder(DType::F64, &Device::Cpu);
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 };
        let x = vb.get_with_hints((2, 3, 2, 2), "x", init).unwrap();
        let a = vb.get_with_hints((2, 3), "a", init).unwrap();
        let sigma = vb.get_with_hints(3, "sigma", init).unwrap();
        let beta = vb.get_with_hints(3, "beta", init).unwrap();
        let n = vb.get_with_hints((1, 1, 2, 2), "noise", init).unwrap();
        let g = random(&[2, 3, 2, 2], 4, DType::F64);
        let checked = check_gradients(&params, 8, 1e-6, || {
            (channel_affine_act(&x, Some(&a), Some((&n, &sigma)), Some(&beta), Activation::Tanh, 1.3)? * &g)?.sum_all()
        });
        assert!(checked.unwrap() >= 20);
    }
}
