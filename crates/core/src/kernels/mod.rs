//! CPU kernels behind condor-core's layers: matrix products through faer, the patch gathers of
//! convolutions, fused normalisation and activation passes, and the rule for when a kernel uses
//! several threads.
//!
//! Every kernel is written for `f32` and `f64` ([`Real`]) on contiguous slices, and splits its work
//! into pieces whose boundaries depend only on the shapes, never on the number of threads, so that
//! results are the same bit for bit on any machine size.

pub(crate) mod act;
pub(crate) mod conv;
pub(crate) mod direct;
pub(crate) mod norm;
pub(crate) mod patches;

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use candle_core::{Layout, Result, Tensor};
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Multiply-adds below which a matrix product stays on the calling thread, and element visits below
/// which an element-wise pass does: about half a millisecond of one core's work each. Handing work to
/// another thread costs some microseconds on an idle machine; on one whose cores are busy with other
/// processes, a thread that waits for a helper the kernel has descheduled loses a time slice (a few
/// milliseconds), so small models run several times faster on one thread there and barely slower
/// when the machine is idle.
const PARALLEL_MIN_MACS: usize = 1 << 25;
const PARALLEL_MIN_ELEMENTS: usize = 1 << 19;

/// Whether a product of this many multiply-adds is worth several threads.
pub(crate) fn parallel_macs(macs: usize) -> bool {
    macs >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1
}

/// Whether an element-wise pass over this many elements is worth several threads.
pub(crate) fn parallel_elements(elements: usize) -> bool {
    elements >= PARALLEL_MIN_ELEMENTS && rayon::current_num_threads() > 1
}

/// `f(i, chunk)` for the `len`-element chunks of `data`, in order: on several threads when `parallel`.
pub(crate) fn map_chunks<T: Send, R: Send>(
    data: &mut [T],
    len: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) -> R + Sync + Send,
) -> Vec<R> {
    if parallel {
        data.par_chunks_mut(len).enumerate().map(|(i, c)| f(i, c)).collect()
    } else {
        data.chunks_mut(len).enumerate().map(|(i, c)| f(i, c)).collect()
    }
}

/// Runs `f(i, chunk)` over the `len`-element chunks of `data`: on several threads when `parallel`.
pub(crate) fn for_each_chunk<T: Send>(
    data: &mut [T],
    len: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    map_chunks(data, len, parallel, f);
}

/// `f(i)` for `i` in `0..n`, in order: on several threads when `parallel`.
pub(crate) fn map_range<R: Send>(n: usize, parallel: bool, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if parallel {
        (0..n).into_par_iter().map(f).collect()
    } else {
        (0..n).map(f).collect()
    }
}

/// Lanes of the partial sums: independent accumulators the compiler keeps in vector registers.
pub(crate) const LANES: usize = 16;

/// Blocks of [`LANES`] values summed in the element type before the lanes are added into `f64`.
const BLOCKS_PER_FLUSH: usize = 64;

/// `(sum f(v), sum h(v))` over `values` (pairs of slices of one length), in `f64`, in a fixed order:
/// lane-wise in the element type over runs of `LANES * BLOCKS_PER_FLUSH` values, then in `f64`.
#[inline(always)]
pub(crate) fn lane_sums<T: Real>(a: &[T], b: &[T], f: impl Fn(T, T) -> (T, T)) -> (f64, f64) {
    debug_assert_eq!(a.len(), b.len());
    let run = LANES * BLOCKS_PER_FLUSH;
    let mut total = (0.0f64, 0.0f64);
    for (ar, br) in a.chunks(run).zip(b.chunks(run)) {
        let (mut s1, mut s2) = ([T::ZERO; LANES], [T::ZERO; LANES]);
        let (ab, bb) = (ar.chunks_exact(LANES), br.chunks_exact(LANES));
        let (arem, brem) = (ab.remainder(), bb.remainder());
        for (xa, xb) in ab.zip(bb) {
            for i in 0..LANES {
                let (u, v) = f(xa[i], xb[i]);
                s1[i] += u;
                s2[i] += v;
            }
        }
        for (i, (&xa, &xb)) in arem.iter().zip(brem).enumerate() {
            let (u, v) = f(xa, xb);
            s1[i] += u;
            s2[i] += v;
        }
        total.0 += s1.iter().map(|v| v.to_f64()).sum::<f64>();
        total.1 += s2.iter().map(|v| v.to_f64()).sum::<f64>();
    }
    total
}

/// `sum f(v)` over `values` in `f64`, as [`lane_sums`] adds.
#[inline(always)]
pub(crate) fn lane_sum<T: Real>(values: &[T], f: impl Fn(T) -> T) -> f64 {
    lane_sums(values, values, |v, _| (f(v), T::ZERO)).0
}

/// A piece of kernel work to compile for the widest vector instructions found at run time: its
/// `run` (marked `#[inline(always)]`, like everything it calls) is inlined into a function built for
/// them. A closure would not do: it stays a function of its own, built for the baseline target.
pub(crate) trait Vectorise {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `work` compiled for the widest vector instructions pulp finds on this CPU (AVX2 and FMA on
/// x86-64): the kernels' loops are written for the compiler to vectorise, and the baseline target
/// gives them SSE2 only. Rust never fuses a multiply and an add, so the results are the same bits
/// with or without the wider instructions.
#[inline(always)]
pub(crate) fn vectorised<W: Vectorise>(work: W) -> W::Output {
    struct Dispatch<W>(W);
    impl<W: Vectorise> pulp::WithSimd for Dispatch<W> {
        type Output = W::Output;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> W::Output {
            self.0.run()
        }
    }
    pulp::Arch::new().dispatch(Dispatch(work))
}

/// A real floating-point element type the kernels run on: `f32` or `f64`.
pub(crate) trait Real:
    Copy
    + Default
    + Send
    + Sync
    + PartialOrd
    + std::fmt::Debug
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn tanh(self) -> Self;
    /// `self * a + b` with one rounding: a fused multiply-add where the CPU has one (inside
    /// [`vectorised`] work on x86-64), the same bits from libm's software fma elsewhere.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// `c = a b`, or `c += a b` with `accumulate`; `parallel` lets the product use every thread.
    fn matmul(c: MatMut<'_, Self>, a: MatRef<'_, Self>, b: MatRef<'_, Self>, accumulate: bool, parallel: bool);
    /// Runs `f` on a buffer of `len` elements that this thread reuses from call to call, so that patch
    /// matrices are neither allocated nor zeroed each time: its contents are whatever the last user
    /// left, and `f` must write every element it reads. (A nested call gets a fresh zeroed buffer.)
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

/// `tanh` for f32 as a rational function of odd and even polynomials on `[-7.99, 7.99]` (where f32's
/// tanh reaches +-1), the approximation of Eigen and XLA: a few units in the last place from the exact
/// value, and unlike a call to libm's `tanhf` it vectorises.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published, each rounds to its f32
fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.998_811_7;
    const ALPHA: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_671_5e-11,
        2.000_187_9e-13,
        -2.760_768_5e-16,
    ];
    const BETA: [f32; 4] = [4.893_525_2e-3, 2.268_434_6e-3, 1.185_347e-4, 1.198_258_4e-6];
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = ALPHA.iter().rev().fold(0.0, |acc, &a| acc * x2 + a) * x;
    let q = BETA.iter().rev().fold(0.0, |acc, &b| acc * x2 + b);
    p / q
}

macro_rules! real {
    ($t:ty, $tanh:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
            fn matmul(c: MatMut<'_, Self>, a: MatRef<'_, Self>, b: MatRef<'_, Self>, accumulate: bool, parallel: bool) {
                let accum = if accumulate { Accum::Add } else { Accum::Replace };
                let par = if parallel { Par::rayon(0) } else { Par::Seq };
                faer::linalg::matmul::matmul(c, accum, a, b, 1.0, par);
            }
            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                thread_local! {
                    static SCRATCH: std::cell::RefCell<Vec<$t>> = const { std::cell::RefCell::new(Vec::new()) };
                }
                SCRATCH.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buf) => {
                        if buf.len() < len {
                            buf.resize(len, 0.0);
                        }
                        f(&mut buf[..len])
                    }
                    Err(_) => f(&mut vec![0.0; len]),
                })
            }
        }
    };
}
real!(f32, tanh_f32);
real!(f64, f64::tanh);

/// The slice of a CPU storage that a contiguous layout covers, or an error naming `op`.
pub(crate) fn contiguous<'a, T>(data: &'a [T], layout: &Layout, op: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: expects a contiguous tensor"),
    }
}

/// Whether the CPU kernels run for `x`: on the CPU, in f32 or f64 (elsewhere the ops run candle's).
pub(crate) fn on_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

/// Checks that each argument of op `op` holds the number of elements its layout is paired with.
pub(crate) fn check_counts(op: &str, args: &[(&Layout, usize)]) -> Result<()> {
    for (i, (layout, n)) in args.iter().enumerate() {
        if layout.shape().elem_count() != *n {
            candle_core::bail!("{op}: argument {i} has shape {:?}, expected {n} elements", layout.shape());
        }
    }
    Ok(())
}

/// Splits a fused backward op's output, `dx` followed by the gradient of the op's parameters (one
/// flat vector), into the gradients of `x` and `params`, each only where it is tracked.
pub(crate) fn split_gradients(both: &Tensor, x: &Tensor, params: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let n = x.elem_count();
    let dx = x.track_op().then(|| both.narrow(0, 0, n)?.reshape(x.shape())).transpose()?;
    let dp = params.track_op().then(|| both.narrow(0, n, params.elem_count())?.reshape(params.shape())).transpose()?;
    Ok((dx, dp))
}

/// Runs `$body` on the contiguous `f32` (or `f64`) slices of one or more CPU storages of the same
/// dtype, each bound to a name, and wraps the `Vec` it returns in a storage of that dtype:
/// `real_op!("op", [(s1, l1), (s2, l2)], |a, b| kernel(a, b))`.
macro_rules! real_op {
    ($op:expr, [$(($s:expr, $l:expr)),+], |$($d:ident),+| $body:expr) => {
        match ($($s,)+) {
            ($(candle_core::CpuStorage::F32($d),)+) => {
                $(let $d = $crate::kernels::contiguous($d, $l, $op)?;)+
                candle_core::CpuStorage::F32($body)
            }
            ($(candle_core::CpuStorage::F64($d),)+) => {
                $(let $d = $crate::kernels::contiguous($d, $l, $op)?;)+
                candle_core::CpuStorage::F64($body)
            }
            _ => candle_core::bail!("{}: f32 or f64 tensors of one dtype only", $op),
        }
    };
}
pub(crate) use act::with_act;
pub(crate) use real_op;

#[cfg(test)]
mod tests {
    #[test]
    fn the_f32_tanh_is_within_a_few_units_in_the_last_place() {
        let mut worst = 0f64;
        for i in -200_000..=200_000 {
            let x = i as f64 * 5e-5; // -10 to 10
            let exact = x.tanh();
            let ulp = (exact as f32).abs().max(f32::MIN_POSITIVE) * f32::EPSILON;
            worst = worst.max((super::tanh_f32(x as f32) as f64 - exact).abs() / ulp as f64);
        }
        assert!(worst <= 4.0, "{worst} ulp");
    }
}
