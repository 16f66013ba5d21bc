//! Per-channel affine maps with an optional normalisation and an activation, forward and backward, in
//! two passes over the data each way: `act(gamma_c * xhat + beta_c)` for `x` laid out `(B, C, S)`.
//!
//! `xhat` is `x` normalised by the batch's statistics per channel (batch norm in training), by given
//! statistics per channel (batch norm in evaluation), by each sample's own statistics over all its
//! channels and positions (the layer norm of Gulrajani et al.), or `x` itself (a bias and activation).
//! Sums are accumulated in `f64`, each over a fixed order, so results do not depend on the threads.

use super::act::{with_act, Act};
use super::{for_each_chunk, lane_sum, lane_sums, map_range, parallel_elements, vectorised, Real, Vectorise, LANES};
use crate::activation::Activation;

/// The layout `(batch, channels, positions per channel)` of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dims {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
}

impl Dims {
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    fn sample(&self) -> usize {
        self.channels * self.spatial
    }
}

/// What `xhat` is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Normalise {
    /// Per channel by the statistics passed in, which are this batch's own: the gradient flows through
    /// them.
    BatchStats,
    /// Per channel by statistics passed in as constants (running averages).
    GivenStats,
    /// Per sample over all its channels and positions, with this variance floor.
    PerSample { eps: f64 },
    /// No normalisation: `xhat = x`.
    None,
}

/// The per-channel parameters: rows `gamma`, `beta`, `mean` and `var` of a `(4, C)` slice, with
/// `1 / sqrt(var + eps)` precomputed (the statistics rows are unused for [`Normalise::PerSample`] and
/// [`Normalise::None`], which normalise by mean 0 and scale 1 here).
struct Channels {
    gamma: Vec<f64>,
    beta: Vec<f64>,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

impl Channels {
    fn new<T: Real>(params: &[T], c: usize, norm: Normalise, eps: f64) -> Self {
        let row = |r: usize| params[r * c..(r + 1) * c].iter().map(|v| v.to_f64()).collect::<Vec<_>>();
        let (mean, inv_std) = match norm {
            Normalise::BatchStats | Normalise::GivenStats => {
                (row(2), row(3).into_iter().map(|v| 1.0 / (v + eps).sqrt()).collect())
            }
            Normalise::PerSample { .. } | Normalise::None => (vec![0.0; c], vec![1.0; c]),
        };
        Self { gamma: row(0), beta: row(1), mean, inv_std }
    }
}

/// One sample's own mean and `1 / sqrt(var + eps)` for [`Normalise::PerSample`]; 0 and 1 otherwise.
fn sample_stats<T: Real>(x: &[T], norm: Normalise) -> (f64, f64) {
    let Normalise::PerSample { eps } = norm else { return (0.0, 1.0) };
    let n = x.len() as f64;
    let mean = lane_sum(x, |v| v) / n;
    let m = T::from_f64(mean);
    let var = lane_sum(x, |v| (v - m) * (v - m)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Per-channel mean and biased variance over batch and positions, as a `(2, C)` vector.
pub(crate) fn channel_stats<T: Real>(x: &[T], d: Dims) -> Vec<T> {
    let stats: Vec<(f64, f64)> = map_range(d.channels, parallel_elements(d.len()), |c| {
        let plane = |b: usize| &x[(b * d.channels + c) * d.spatial..][..d.spatial];
        let n = (d.batch * d.spatial) as f64;
        let mean = (0..d.batch).map(|b| lane_sum(plane(b), |v| v)).sum::<f64>() / n;
        let m = T::from_f64(mean);
        let sq = |b: usize| lane_sum(plane(b), |v| (v - m) * (v - m));
        (mean, (0..d.batch).map(sq).sum::<f64>() / n)
    });
    let means = stats.iter().map(|s| T::from_f64(s.0));
    means.chain(stats.iter().map(|s| T::from_f64(s.1))).collect()
}

/// `f(b, sample)` over the `(C, S)` samples of `data`, on several threads when it is large.
fn for_each_sample<T: Send>(data: &mut [T], d: Dims, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    for_each_chunk(data, d.sample(), parallel_elements(d.len()), f)
}

/// The map of one channel of one sample, in the element type: `xhat = x * a + b` and
/// `y = x * scale + shift`.
#[derive(Clone, Copy)]
struct Plane<T> {
    a: T,
    b: T,
    scale: T,
    shift: T,
}

impl<T: Real> Plane<T> {
    fn new(ch: &Channels, c: usize, (s_mean, s_inv): (f64, f64)) -> Self {
        let inv = ch.inv_std[c] * s_inv;
        let mean = ch.mean[c] + s_mean;
        let scale = ch.gamma[c] * inv;
        let f = T::from_f64;
        Self { a: f(inv), b: f(-mean * inv), scale: f(scale), shift: f(ch.beta[c] - scale * mean) }
    }
}

/// Every channel's [`Plane`] for one sample's statistics.
fn planes<T: Real>(ch: &Channels, stats: (f64, f64)) -> Vec<Plane<T>> {
    (0..ch.gamma.len()).map(|c| Plane::new(ch, c, stats)).collect()
}

/// The channel maps of each sample: computed once for all samples unless the statistics are the
/// sample's own.
struct SamplePlanes<T> {
    shared: Option<Vec<Plane<T>>>,
}

impl<T: Real> SamplePlanes<T> {
    fn new(ch: &Channels, norm: Normalise) -> Self {
        let own = matches!(norm, Normalise::PerSample { .. });
        Self { shared: (!own).then(|| planes(ch, (0.0, 1.0))) }
    }

    /// Runs `f` with the maps for a sample of statistics `stats` (computed only when they are its own).
    fn with<R>(&self, ch: &Channels, stats: (f64, f64), f: impl FnOnce(&[Plane<T>]) -> R) -> R {
        match &self.shared {
            Some(p) => f(p),
            None => f(&planes(ch, stats)),
        }
    }
}

/// `act(gamma_c * xhat + beta_c)` for `x` `(B, C, S)` and `params` `(4, C)`.
pub(crate) fn affine_act_forward<T: Real>(
    x: &[T],
    params: &[T],
    d: Dims,
    norm: Normalise,
    act: Activation,
    eps: f64,
) -> Vec<T> {
    let ch = Channels::new(params, d.channels, norm, eps);
    let maps = SamplePlanes::<T>::new(&ch, norm);
    let mut out = vec![T::ZERO; d.len()];
    for_each_sample(&mut out, d, |b, out| {
        let xs = &x[b * d.sample()..][..d.sample()];
        maps.with(&ch, sample_stats(xs, norm), |planes| vectorised(MapRows { planes, xs, out, d, act }));
    });
    out
}

/// What the backward pass needs of one sample: its statistics and, per channel, `sum g` and
/// `sum g xhat`, where `g = dy act'(y)` is the gradient at the affine map's output.
struct SampleSums {
    stats: (f64, f64),
    per_channel: Vec<(f64, f64)>,
}

#[inline(always)]
fn sample_sums<T: Real>(
    xs: &[T],
    dys: &[T],
    planes: &[Plane<T>],
    stats: (f64, f64),
    d: Dims,
    act: Activation,
) -> SampleSums {
    let rows = xs.chunks_exact(d.spatial).zip(dys.chunks_exact(d.spatial));
    let per_channel = with_act!(act, T, |a| {
        let g_and_gx = |p: &Plane<T>, v: T, dy: T| {
            let g = dy * a.derivative(v * p.scale + p.shift);
            (g, g * (v * p.a + p.b))
        };
        planes
            .iter()
            .zip(rows)
            .map(|(p, (xp, dyp))| {
                if d.spatial < LANES {
                    // Short planes (a dense layer's features): no lanes to fill.
                    xp.iter().zip(dyp).fold((0.0, 0.0), |(sg, sgx), (&v, &dy)| {
                        let (g, gx) = g_and_gx(p, v, dy);
                        (sg + g.to_f64(), sgx + gx.to_f64())
                    })
                } else {
                    lane_sums(xp, dyp, |v, dy| g_and_gx(p, v, dy))
                }
            })
            .collect()
    });
    SampleSums { stats, per_channel }
}

/// The gradients of [`affine_act_forward`] for the output gradient `dy`: `dx` `(B, C, S)` followed by
/// `(4, C)` rows `d gamma`, `d beta` and two zero rows (the statistics are not trained).
///
/// With `g = dy act'(y)`: `d beta_c = sum g`, `d gamma_c = sum g xhat`, and
/// `dx = inv (gamma_c g - A - xhat B)`, where `inv` is the normalisation's scale and `A`, `B` the means
/// of `gamma_c g` and `gamma_c g xhat` over what the statistics were taken of (a channel's batch and
/// positions for batch statistics, a sample for its own); constant statistics have none.
pub(crate) fn affine_act_backward<T: Real>(
    x: &[T],
    dy: &[T],
    params: &[T],
    d: Dims,
    norm: Normalise,
    act: Activation,
    eps: f64,
) -> Vec<T> {
    let ch = Channels::new(params, d.channels, norm, eps);
    let maps = SamplePlanes::<T>::new(&ch, norm);
    let sums = map_range(d.batch, parallel_elements(d.len()), |b| {
        let r = b * d.sample()..(b + 1) * d.sample();
        let stats = sample_stats(&x[r.clone()], norm);
        maps.with(&ch, stats, |planes| vectorised(SumRows { xs: &x[r.clone()], dys: &dy[r], planes, stats, d, act }))
    });
    let mut total = vec![(0.0f64, 0.0f64); d.channels];
    for s in &sums {
        for (t, p) in total.iter_mut().zip(&s.per_channel) {
            (t.0, t.1) = (t.0 + p.0, t.1 + p.1);
        }
    }
    // Per channel: gamma and, for batch statistics, the means of gamma g and gamma g xhat.
    let n = (d.batch * d.spatial) as f64;
    let coefficients: Vec<(T, T, T)> = (0..d.channels)
        .map(|c| {
            let gamma = ch.gamma[c];
            let (ma, mb) = match norm {
                Normalise::BatchStats => (gamma * total[c].0 / n, gamma * total[c].1 / n),
                _ => (0.0, 0.0),
            };
            (T::from_f64(gamma), T::from_f64(ma), T::from_f64(mb))
        })
        .collect();
    let mut out = vec![T::ZERO; d.len() + 4 * d.channels];
    let (dx, dparams) = out.split_at_mut(d.len());
    for_each_sample(dx, d, |b, dxs| {
        let r = b * d.sample()..(b + 1) * d.sample();
        let (xs, dys, s) = (&x[r.clone()], &dy[r], &sums[b]);
        // For the sample's own statistics: its means of gamma_c g and gamma_c g xhat.
        let own = matches!(norm, Normalise::PerSample { .. }).then(|| {
            let mean = |k: fn(&(f64, f64)) -> f64| {
                let total: f64 = s.per_channel.iter().zip(&ch.gamma).map(|(p, g)| g * k(p)).sum();
                T::from_f64(total / d.sample() as f64)
            };
            (mean(|p| p.0), mean(|p| p.1))
        });
        maps.with(&ch, s.stats, |planes| {
            vectorised(GradRows { planes, coefficients: &coefficients, own, xs, dys, dxs, d, act })
        });
    });
    for (c, t) in total.iter().enumerate() {
        dparams[c] = T::from_f64(t.1);
        dparams[d.channels + c] = T::from_f64(t.0);
    }
    out
}

/// The forward map of one sample's rows, `act(x scale + shift)`, as vectorised work.
struct MapRows<'a, T> {
    planes: &'a [Plane<T>],
    xs: &'a [T],
    out: &'a mut [T],
    d: Dims,
    act: Activation,
}

impl<T: Real> Vectorise for MapRows<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Self { planes, xs, out, d, act } = self;
        let rows = out.chunks_exact_mut(d.spatial).zip(xs.chunks_exact(d.spatial));
        with_act!(act, T, |a| {
            for (p, (o, xp)) in planes.iter().zip(rows) {
                for (o, &v) in o.iter_mut().zip(xp) {
                    *o = a.apply(v * p.scale + p.shift);
                }
            }
        });
    }
}

/// [`sample_sums`] as vectorised work.
struct SumRows<'a, T> {
    xs: &'a [T],
    dys: &'a [T],
    planes: &'a [Plane<T>],
    stats: (f64, f64),
    d: Dims,
    act: Activation,
}

impl<T: Real> Vectorise for SumRows<'_, T> {
    type Output = SampleSums;
    #[inline(always)]
    fn run(self) -> SampleSums {
        sample_sums(self.xs, self.dys, self.planes, self.stats, self.d, self.act)
    }
}

/// The input gradient of one sample's rows, as vectorised work: `coefficients` are each channel's
/// `(gamma, A, B)`, `own` the sample's own `(A, B)` when its statistics are its own.
struct GradRows<'a, T> {
    planes: &'a [Plane<T>],
    coefficients: &'a [(T, T, T)],
    own: Option<(T, T)>,
    xs: &'a [T],
    dys: &'a [T],
    dxs: &'a mut [T],
    d: Dims,
    act: Activation,
}

impl<T: Real> Vectorise for GradRows<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Self { planes, coefficients, own, xs, dys, dxs, d, act } = self;
        let rows = dxs.chunks_exact_mut(d.spatial).zip(xs.chunks_exact(d.spatial).zip(dys.chunks_exact(d.spatial)));
        with_act!(act, T, |a| {
            for ((p, &(gamma, ma, mb)), (o, (xp, dyp))) in planes.iter().zip(coefficients).zip(rows) {
                let (ma, mb) = own.unwrap_or((ma, mb));
                for ((o, &v), &dy) in o.iter_mut().zip(xp).zip(dyp) {
                    let g = dy * a.derivative(v * p.scale + p.shift);
                    *o = p.a * (gamma * g - ma - (v * p.a + p.b) * mb);
                }
            }
        });
    }
}
