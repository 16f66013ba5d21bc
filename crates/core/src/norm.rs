//! Normalisation layers fused with the activation after them: [`BatchNorm`], [`sample_norm_act`]
//! (each sample over all its channels and positions, with a per-channel scale and shift) and
//! [`instance_norm_act`] (each channel of each sample over its positions).
//!
//! On the CPU in f32 and f64 the normalisation, the affine map and the activation are one op in
//! candle's graph, forward and backward in two passes each (`kernels::norm`); candle's own
//! formulation took a dozen ops and as many full-size intermediates. On other devices and dtypes the
//! layers run candle's ops, as before.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, Var};

use crate::activation::Activation;
pub(crate) use crate::kernels::norm::Normalise;
use crate::kernels::norm::{affine_act_backward, affine_act_forward, channel_stats, Dims};
use crate::kernels::{on_cpu, real_op, split_gradients};

/// `(B, C, positions)` of a tensor of rank 2 or more.
fn dims(shape: &Shape, op: &str) -> Result<Dims> {
    match shape.dims() {
        [b, c, rest @ ..] => Ok(Dims { batch: *b, channels: *c, spatial: rest.iter().product() }),
        _ => candle_core::bail!("{op}: expects (batch, channels, ...), got {shape:?}"),
    }
}

/// Per-channel mean and biased variance of `(B, C, ...)` as a `(2, C)` tensor (no gradient).
struct ChannelStats;

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "channel-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = dims(l.shape(), self.name())?;
        let out = crate::profile::timed(
            || format!("{} {}x{}x{}", self.name(), d.batch, d.channels, d.spatial),
            || Ok::<_, candle_core::Error>(real_op!(self.name(), [(s, l)], |x| channel_stats(x, d))),
        )?;
        Ok((out, (2, d.channels).into()))
    }
}

/// `act(gamma_c * xhat + beta_c)` for `x` `(B, C, ...)` and `params` `(4, C)` (rows gamma, beta, mean,
/// var), `xhat` as `norm` says.
#[derive(Clone, Copy, Debug)]
struct AffineAct {
    norm: Normalise,
    act: Activation,
    eps: f64,
}

impl AffineAct {
    fn check(&self, x: &Layout, params: &Layout) -> Result<Dims> {
        let d = dims(x.shape(), "affine-act")?;
        if params.shape().dims() != [4, d.channels] {
            candle_core::bail!("affine-act: parameters {:?} for {} channels", params.shape(), d.channels);
        }
        Ok(d)
    }
}

impl CustomOp2 for AffineAct {
    fn name(&self) -> &'static str {
        "affine-act"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = self.check(l1, l2)?;
        let (norm, act, eps) = (self.norm, self.act, self.eps);
        let out = crate::profile::timed(
            || format!("{} {norm:?} {act:?} {}x{}x{}", self.name(), d.batch, d.channels, d.spatial),
            || {
                Ok::<_, candle_core::Error>(real_op!(self.name(), [(s1, l1), (s2, l2)], |x, p| affine_act_forward(
                    x, p, d, norm, act, eps
                )))
            },
        )?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both = x.apply_op3_no_bwd(&grad.contiguous()?, params, &AffineActGrad(*self))?;
        split_gradients(&both, x, params)
    }
}

/// The gradients of [`AffineAct`] for `(x, dy, params)`: `dx` then `d params`, flattened into one vector.
struct AffineActGrad(AffineAct);

impl CustomOp3 for AffineActGrad {
    fn name(&self) -> &'static str {
        "affine-act-grad"
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
        let d = self.0.check(l1, l3)?;
        if l2.shape() != l1.shape() {
            candle_core::bail!("affine-act-grad: gradient {:?} for input {:?}", l2.shape(), l1.shape());
        }
        let AffineAct { norm, act, eps } = self.0;
        let out = crate::profile::timed(
            || format!("{} {norm:?} {act:?} {}x{}x{}", self.name(), d.batch, d.channels, d.spatial),
            || {
                Ok::<_, candle_core::Error>(real_op!(self.name(), [(s1, l1), (s2, l2), (s3, l3)], |x, dy, p| {
                    affine_act_backward(x, dy, p, d, norm, act, eps)
                }))
            },
        )?;
        Ok((out, (d.len() + 4 * d.channels).into()))
    }
}

/// `act(gamma * xhat + beta)` as one fused op (CPU, f32 or f64 only): `gamma`, `beta` and the
/// statistics `(mean, var)` are `(C,)`; the statistics rows are ignored unless `norm` reads them.
pub(crate) fn affine_act(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: Option<(&Tensor, &Tensor)>,
    norm: Normalise,
    act: Activation,
    eps: f64,
) -> Result<Tensor> {
    if !on_cpu(x) {
        debug_assert!(matches!(norm, Normalise::None), "normalising layers take their own fallback");
        return act.forward(&per_channel_affine(x, gamma, beta)?);
    }
    let (mean, var) = match stats {
        Some((m, v)) => (m.detach(), v.detach()),
        None => (gamma.zeros_like()?.detach(), gamma.ones_like()?.detach()),
    };
    let params = Tensor::stack(&[gamma, beta, &mean, &var], 0)?;
    x.contiguous()?.apply_op2(&params, AffineAct { norm, act, eps })
}

/// Batch normalisation over the batch and positions of each channel of `(B, C, ...)` followed by an
/// activation, with running statistics (momentum 0.1, unbiased running variance) as
/// `candle_nn::BatchNorm` keeps them, whose weights it takes.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    inner: candle_nn::BatchNorm,
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    /// A layer with these parameters; the running statistics are updated in place in training (they
    /// should be variables, as a `VarBuilder` over [`crate::Params`] gives them).
    pub fn new(weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor, eps: f64) -> Result<Self> {
        let n = weight.elem_count();
        let inner =
            candle_nn::BatchNorm::new(n, running_mean.clone(), running_var.clone(), weight.clone(), bias.clone(), eps)?;
        let running_mean = Var::from_tensor(&running_mean)?;
        let running_var = Var::from_tensor(&running_var)?;
        Ok(Self { inner, weight, bias, running_mean, running_var, eps, momentum: 0.1 })
    }

    /// `act(batch_norm(x))`: normalised by the batch's statistics in training (which also update the
    /// running ones), by the running statistics otherwise.
    pub fn forward_act(&self, x: &Tensor, train: bool, act: Activation) -> Result<Tensor> {
        if !on_cpu(x) {
            return act.forward(&candle_nn::ModuleT::forward_t(&self.inner, x, train)?);
        }
        let (w, b) = (&self.weight, &self.bias);
        if !train {
            let stats = (self.running_mean.as_tensor(), self.running_var.as_tensor());
            return affine_act(x, w, b, Some(stats), Normalise::GivenStats, act, self.eps);
        }
        let stats = x.contiguous()?.apply_op1_no_bwd(&ChannelStats)?;
        let (mean, var) = (stats.get(0)?, stats.get(1)?);
        self.update_running(&mean, &var, x.elem_count() / x.dim(1)?)?;
        affine_act(x, w, b, Some((&mean, &var)), Normalise::BatchStats, act, self.eps)
    }

    /// Moves the running statistics toward a batch's `mean` and biased `var` over `n` values per
    /// channel, as candle-nn does.
    fn update_running(&self, mean: &Tensor, var: &Tensor, n: usize) -> Result<()> {
        let m = self.momentum;
        let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?;
        let unbiased = m * n as f64 / (n as f64 - 1.0);
        let rv = ((self.running_var.as_tensor() * (1.0 - m))? + (var * unbiased)?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)
    }
}

/// A batch norm of `n` channels initialised as `candle_nn::batch_norm` does (scale 1, shift 0, running
/// mean 0 and variance 1), under the same variable names.
pub fn batch_norm(n: usize, eps: f64, vb: candle_nn::VarBuilder) -> Result<BatchNorm> {
    use candle_nn::Init::Const;
    let mean = vb.get_with_hints(n, "running_mean", Const(0.0))?;
    let var = vb.get_with_hints(n, "running_var", Const(1.0))?;
    BatchNorm::new(
        vb.get_with_hints(n, "weight", Const(1.0))?,
        vb.get_with_hints(n, "bias", Const(0.0))?,
        mean,
        var,
        eps,
    )
}

/// `act(gamma_c * xhat + beta_c)` where `xhat` is each sample of `x` `(B, C, ...)` normalised over all its
/// channels and positions (variance floor `eps`), and `gamma`, `beta` are per channel `(C,)`: the
/// batch-norm replacement of Gulrajani et al. (2017). Half-precision inputs take their statistics in f32.
pub fn sample_norm_act(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, act: Activation) -> Result<Tensor> {
    if on_cpu(x) {
        return affine_act(x, gamma, beta, None, Normalise::PerSample { eps }, act, eps);
    }
    sample_norm_act_candle(x, gamma, beta, eps, act)
}

/// `act(gamma_c * xhat + beta_c)` where `xhat` is each channel of each sample of `x` `(B, C, ...)`
/// normalised over its positions (variance floor `eps`), and `gamma`, `beta` are per channel `(C,)`:
/// instance normalisation (Ulyanov et al. 2016), the norm of CycleGAN's networks. Each image's
/// statistics are its own, so training and evaluation compute the same thing.
pub fn instance_norm_act(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, act: Activation) -> Result<Tensor> {
    let (b, c) = (x.dim(0)?, x.dim(1)?);
    if on_cpu(x) {
        // Each (sample, channel) plane is one "sample" of the per-sample norm, with unit scale and no
        // shift; the channel's affine map and the activation follow as one op.
        let planes = x.reshape((b * c, 1, ()))?;
        let one = Tensor::ones(1, x.dtype(), x.device())?;
        let zero = Tensor::zeros(1, x.dtype(), x.device())?;
        let normed = affine_act(&planes, &one, &zero, None, Normalise::PerSample { eps }, Activation::Identity, eps)?;
        return affine_act(&normed.reshape(x.shape())?, gamma, beta, None, Normalise::None, act, eps);
    }
    instance_norm_act_candle(x, gamma, beta, eps, act)
}

/// [`instance_norm_act`] in candle's ops.
fn instance_norm_act_candle(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, act: Activation) -> Result<Tensor> {
    let (b, c) = (x.dim(0)?, x.dim(1)?);
    let stats_dtype = if x.dtype() == DType::F64 { DType::F64 } else { DType::F32 };
    let flat = x.reshape((b * c, ()))?.to_dtype(stats_dtype)?;
    let centred = flat.broadcast_sub(&flat.mean_keepdim(1)?)?;
    let std = (centred.sqr()?.mean_keepdim(1)? + eps)?.sqrt()?;
    let normed = centred.broadcast_div(&std)?.reshape(x.shape())?.to_dtype(x.dtype())?;
    act.forward(&per_channel_affine(&normed, gamma, beta)?)
}

/// [`sample_norm_act`] in candle's ops.
fn sample_norm_act_candle(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, act: Activation) -> Result<Tensor> {
    let b = x.dim(0)?;
    // Half-precision sums over thousands of features are off by whole units.
    let stats_dtype = if x.dtype() == DType::F64 { DType::F64 } else { DType::F32 };
    let flat = x.reshape((b, ()))?.to_dtype(stats_dtype)?;
    let centred = flat.broadcast_sub(&flat.mean_keepdim(1)?)?;
    let std = (centred.sqr()?.mean_keepdim(1)? + eps)?.sqrt()?;
    let normed = centred.broadcast_div(&std)?.reshape(x.shape())?.to_dtype(x.dtype())?;
    act.forward(&per_channel_affine(&normed, gamma, beta)?)
}

/// `gamma_c * x + beta_c` for `x` `(B, C, ...)` in candle's ops.
fn per_channel_affine(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let shape: Vec<usize> = [x.dim(1)?].into_iter().chain(std::iter::repeat_n(1, x.rank() - 2)).collect();
    x.broadcast_mul(&gamma.reshape(shape.as_slice())?)?.broadcast_add(&beta.reshape(shape.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::check_gradients;
    use crate::rng::normal;
    use crate::{derived_rng, Params};
    use candle_core::Device;

    const ACTIVATIONS: [Activation; 4] =
        [Activation::Identity, Activation::Relu, Activation::LeakyRelu(0.2), Activation::Tanh];

    fn random(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
        normal(&mut derived_rng(seed, &[]), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.dims(), b.dims());
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        d.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    /// A batch-norm layer over fresh variables (its running statistics are its own).
    fn batch_norm(c: usize, seed: u64) -> (BatchNorm, [Var; 2]) {
        let w = Var::from_tensor(&(random(&[c], seed, DType::F32) * 0.1).unwrap().affine(1.0, 1.0).unwrap()).unwrap();
        let b = Var::from_tensor(&random(&[c], seed + 1, DType::F32)).unwrap();
        let mean = Var::from_tensor(&random(&[c], seed + 2, DType::F32)).unwrap();
        let var = Var::from_tensor(&(random(&[c], seed + 3, DType::F32).abs().unwrap() + 0.5).unwrap()).unwrap();
        let bn = BatchNorm::new(
            w.as_tensor().clone(),
            b.as_tensor().clone(),
            mean.as_tensor().clone(),
            var.as_tensor().clone(),
            1e-5,
        )
        .unwrap();
        (bn, [w, b])
    }

    /// Output, and the gradients of a weighted sum of it for `vars`.
    fn with_gradients(y: Tensor, vars: &[&Var]) -> (Tensor, Vec<Tensor>) {
        let g = random(y.dims(), 99, y.dtype());
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        (y, vars.iter().map(|v| grads.get(v).unwrap().clone()).collect())
    }

    #[test]
    fn batch_norm_matches_candle_nn_with_gradients_and_running_statistics() {
        // Images, and a dense layer's features (one position per channel).
        for (act, shape) in ACTIVATIONS.into_iter().flat_map(|a| [(a, &[4usize, 3, 5, 5][..]), (a, &[6, 3][..])]) {
            for train in [true, false] {
                let x = Var::from_tensor(&random(shape, 1, DType::F32)).unwrap();
                let (ours, [w1, b1]) = batch_norm(3, 10);
                let (theirs, [w2, b2]) = batch_norm(3, 10);
                let (y1, g1) = with_gradients(ours.forward_act(&x, train, act).unwrap(), &[&x, &w1, &b1]);
                let reference = candle_nn::ModuleT::forward_t(&theirs.inner, &x, train).unwrap();
                let (y2, g2) = with_gradients(act.forward(&reference).unwrap(), &[&x, &w2, &b2]);
                let case = format!("{act:?}, {shape:?}, train {train}");
                assert!(max_diff(&y1, &y2) < 1e-5, "output, {case}");
                for (a, b) in g1.iter().zip(&g2) {
                    assert!(max_diff(a, b) < 1e-4, "gradient, {case}: {}", max_diff(a, b));
                }
                for (a, b) in [(&ours.running_mean, &theirs.running_mean), (&ours.running_var, &theirs.running_var)] {
                    assert!(max_diff(a.as_tensor(), b.as_tensor()) < 1e-6, "running statistics, {case}");
                }
            }
        }
    }

    #[test]
    fn sample_norm_and_bias_match_candle_ops() {
        for (act, shape) in ACTIVATIONS.into_iter().flat_map(|a| [(a, &[3usize, 4, 3, 3][..]), (a, &[5, 4][..])]) {
            let x = Var::from_tensor(&random(shape, 2, DType::F32)).unwrap();
            let w = Var::from_tensor(&random(&[4], 3, DType::F32)).unwrap();
            let b = Var::from_tensor(&random(&[4], 4, DType::F32)).unwrap();
            let vars = [&x, &w, &b];
            let (y1, g1) = with_gradients(sample_norm_act(&x, &w, &b, 1e-5, act).unwrap(), &vars);
            let (y2, g2) = with_gradients(sample_norm_act_candle(&x, &w, &b, 1e-5, act).unwrap(), &vars);
            assert!(max_diff(&y1, &y2) < 1e-5, "sample norm output, {act:?}");
            for (a, c) in g1.iter().zip(&g2) {
                assert!(max_diff(a, c) < 1e-4, "sample norm gradient, {act:?}: {}", max_diff(a, c));
            }
            let (y1, g1) = with_gradients(crate::activation::bias_act(&x, Some(&b), act).unwrap(), &[&x, &b]);
            let per_channel: Vec<usize> = [4].into_iter().chain(std::iter::repeat_n(1, shape.len() - 2)).collect();
            let reference = act.forward(&x.broadcast_add(&b.reshape(per_channel).unwrap()).unwrap()).unwrap();
            let (y2, g2) = with_gradients(reference, &[&x, &b]);
            assert!(max_diff(&y1, &y2) < 1e-6, "bias output, {act:?}");
            for (a, c) in g1.iter().zip(&g2) {
                assert!(max_diff(a, c) < 1e-5, "bias gradient, {act:?}");
            }
        }
    }

    #[test]
    fn instance_norm_matches_candle_ops_and_normalises_each_plane() {
        for act in ACTIVATIONS {
            let x = Var::from_tensor(&random(&[3, 4, 5, 5], 8, DType::F32)).unwrap();
            let w = Var::from_tensor(&random(&[4], 9, DType::F32)).unwrap();
            let b = Var::from_tensor(&random(&[4], 10, DType::F32)).unwrap();
            let vars = [&x, &w, &b];
            let (y1, g1) = with_gradients(instance_norm_act(&x, &w, &b, 1e-5, act).unwrap(), &vars);
            let (y2, g2) = with_gradients(instance_norm_act_candle(&x, &w, &b, 1e-5, act).unwrap(), &vars);
            assert!(max_diff(&y1, &y2) < 1e-5, "instance norm output, {act:?}");
            for (a, c) in g1.iter().zip(&g2) {
                assert!(max_diff(a, c) < 1e-4, "instance norm gradient, {act:?}: {}", max_diff(a, c));
            }
        }
        // Unit scale, no shift: every plane has mean 0 and variance 1 of its own.
        let x = random(&[2, 3, 4, 4], 11, DType::F32).affine(3.0, 2.0).unwrap();
        let (one, zero) =
            (Tensor::ones(3, DType::F32, &Device::Cpu).unwrap(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
        let y = instance_norm_act(&x, &one, &zero, 1e-8, Activation::Identity).unwrap().reshape((6, 16)).unwrap();
        for plane in y.to_vec2::<f32>().unwrap() {
            let mean = plane.iter().sum::<f32>() / 16.0;
            let var = plane.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 16.0;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "mean {mean}, variance {var}");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        // float64 central differences, independent of candle's ops. Tanh keeps every point smooth.
        let act = Activation::Tanh;
        let params = Params::new(5);
        let vb = params.var_builder(DType::F64, &Device::Cpu);
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 };
        let x = vb.get_with_hints((3, 2, 2, 3), "x", init).unwrap();
        let w = vb.get_with_hints(2, "weight", candle_nn::Init::Randn { mean: 1.0, stdev: 0.2 }).unwrap();
        let b = vb.get_with_hints(2, "bias", init).unwrap();
        let mean = vb.get_with_hints(2, "norm.running_mean", init).unwrap();
        let var = vb.get_with_hints(2, "norm.running_var", candle_nn::Init::Const(2.0)).unwrap();
        let bn = BatchNorm::new(w.clone(), b.clone(), mean, var, 1e-5).unwrap();
        let g = random(&[3, 2, 2, 3], 6, DType::F64);
        // The bias alone leaves the scale without a gradient: it scales x first.
        let scaled = || x.broadcast_mul(&w.reshape((2, 1, 1))?);
        type Case<'a> = (&'a str, Box<dyn Fn() -> Result<Tensor> + 'a>);
        let cases: [Case; 5] = [
            ("batch norm, training", Box::new(|| bn.forward_act(&x, true, act))),
            ("batch norm, evaluation", Box::new(|| bn.forward_act(&x, false, act))),
            ("sample norm", Box::new(|| sample_norm_act(&x, &w, &b, 1e-5, act))),
            ("instance norm", Box::new(|| instance_norm_act(&x, &w, &b, 1e-5, act))),
            ("bias", Box::new(|| crate::activation::bias_act(&scaled()?, Some(&b), act))),
        ];
        for (case, f) in cases {
            let checked = check_gradients(&params, 12, 1e-6, || (f()? * &g)?.sum_all());
            assert!(checked.unwrap_or_else(|e| panic!("{case}: {e}")) >= 16, "{case}");
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let x = Var::from_tensor(&random(&[32, 16, 16, 16], 7, DType::F32)).unwrap();
        let run = |threads: usize| -> Vec<Vec<f32>> {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let (bn, [w, b]) = batch_norm(16, 20);
                let y = bn.forward_act(&x, true, Activation::LeakyRelu(0.2)).unwrap();
                let y = sample_norm_act(&y, &w, &b, 1e-5, Activation::Relu).unwrap();
                let (y, grads) = with_gradients(y, &[&x, &w, &b]);
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                std::iter::once(&y).chain(&grads).map(flat).chain([flat(bn.running_var.as_tensor())]).collect()
            })
        };
        assert_eq!(run(1), run(2));
    }
}
