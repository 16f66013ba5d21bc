//! Stride-1 convolutions computed directly on a zero-padded copy of each image: no patch matrix.
//!
//! A small generator's 3x3 layers have few channels (8 to 64 at 8x8 to 32x32 pixels): their im2col
//! matrices are `k * k` times the input, gathering and scattering them costs more than the products,
//! and the products are too skinny for a matrix kernel's blocking to pay. Here each output row of a
//! few output channels is accumulated in vector registers over the input channels and taps, with a
//! kernel compiled for each row width (8 to 32 pixels). A convolution's input gradient is the
//! convolution of the output gradient with the transposed, flipped kernel, so one routine serves
//! both directions. The weight gradient of rows 32 wide is summed here too, in lane accumulators per
//! weight over the batch's pixels; on narrower rows it stays a matrix product over patches
//! (`kernels::conv`), whose long inner dimension (the batch's grid) a matrix kernel runs well.
//!
//! Every output element is summed in one fixed order with fused multiply-adds (correctly rounded,
//! so the same bits with or without the instruction), each by one thread: the results are the same
//! on any CPU and any number of threads.

use super::patches::Patches;
use super::{for_each_chunk, map_range, parallel_macs, vectorised, Real, Vectorise};

/// The kernel side the direct loops are compiled for.
const K: usize = 3;

/// Whether the direct kernels compute this convolution (`p` its input's patches, `m` its output
/// channels): stride 1, a 3x3 kernel whose padding leaves the input gradient a convolution too, rows
/// of a width with a kernel of its own on both sides, and few enough input taps per output that the
/// direct loops beat a matrix product (which wins for wide layers).
pub(crate) fn applies(p: &Patches, m: usize) -> bool {
    const MAX_TAPS: usize = 64 * K * K;
    let widths = [p.grid.1, p.image.1];
    p.stride == 1
        && p.kernel == K
        && p.padding < K
        && widths.iter().all(|w| matches!(w, 8 | 16 | 32))
        && p.taps().max(m * K * K) <= MAX_TAPS
}

/// Whether direct loops of `macs` multiply-adds are worth several threads. They do about half the
/// multiply-adds per second of a matrix product, so half as many make the same time of work.
fn parallel_direct(macs: usize) -> bool {
    parallel_macs(2 * macs)
}

/// Batch items per parallel chunk: the shapes decide, so that both threads get several chunks.
fn items_per_chunk(batch: usize) -> usize {
    batch.div_ceil(8).max(1)
}

/// The geometry of one correlation: `sources` channels of `(h, w)` pixels, padded by `pad` on every
/// side, read by a `K x K` window at every position, giving `outputs` channels of `out` pixels.
#[derive(Clone, Copy)]
struct Correlation {
    sources: usize,
    image: (usize, usize),
    pad: usize,
    outputs: usize,
}

impl Correlation {
    fn padded(&self) -> (usize, usize) {
        (self.image.0 + 2 * self.pad, self.image.1 + 2 * self.pad)
    }

    fn out(&self) -> (usize, usize) {
        let (hp, wp) = self.padded();
        (hp + 1 - K, wp + 1 - K)
    }

    fn image_len(&self) -> usize {
        self.sources * self.image.0 * self.image.1
    }

    fn out_len(&self) -> usize {
        let (ho, wo) = self.out();
        self.outputs * ho * wo
    }

    fn padded_len(&self) -> usize {
        let (hp, wp) = self.padded();
        self.sources * hp * wp
    }

    /// Copies one item's `(sources, h, w)` image into `dst` `(sources, h + 2 pad, w + 2 pad)`, zeros
    /// around it.
    fn pad_into<T: Real>(&self, image: &[T], dst: &mut [T]) {
        let ((h, w), (hp, wp), pad) = (self.image, self.padded(), self.pad);
        for (src, plane) in image.chunks_exact(h * w).zip(dst.chunks_exact_mut(hp * wp)) {
            plane[..pad * wp].fill(T::ZERO);
            plane[(pad + h) * wp..].fill(T::ZERO);
            for (row, out) in src.chunks_exact(w).zip(plane[pad * wp..].chunks_exact_mut(wp)) {
                out[..pad].fill(T::ZERO);
                out[pad..pad + w].copy_from_slice(row);
                out[pad + w..].fill(T::ZERO);
            }
        }
    }

    /// `out` `(outputs, ho, wo)` of one item from its padded image, with the weights `wr` laid out
    /// `(sources * k * k, outputs)`.
    #[inline(always)]
    fn item<T: Real>(&self, padded: &[T], wr: &[T], out: &mut [T]) {
        match self.out().1 {
            8 => self.rows::<T, 8, 8>(padded, wr, out),
            16 => self.rows::<T, 16, 4>(padded, wr, out),
            32 => self.rows::<T, 32, 2>(padded, wr, out),
            w => unreachable!("direct convolution of rows {w} wide"),
        }
    }

    /// [`Correlation::item`] for rows `W` wide, `MB` output channels at a time (one at a time for
    /// the rest).
    #[inline(always)]
    fn rows<T: Real, const W: usize, const MB: usize>(&self, padded: &[T], wr: &[T], out: &mut [T]) {
        let mut m0 = 0;
        while m0 + MB <= self.outputs {
            self.block::<T, W, MB>(padded, wr, out, m0);
            m0 += MB;
        }
        while m0 < self.outputs {
            self.block::<T, W, 1>(padded, wr, out, m0);
            m0 += 1;
        }
    }

    /// Output channels `m0..m0 + MB`, row by row, each row's `MB x W` sums held in registers. The
    /// operands are copied into local arrays, which nothing else can alias, so the loops vectorise.
    #[inline(always)]
    fn block<T: Real, const W: usize, const MB: usize>(&self, padded: &[T], wr: &[T], out: &mut [T], m0: usize) {
        let ((hp, wp), ho, m) = (self.padded(), self.out().0, self.outputs);
        for y in 0..ho {
            let mut acc = [[T::ZERO; W]; MB];
            for ci in 0..self.sources {
                let plane = &padded[ci * hp * wp..][..hp * wp];
                let taps = &wr[ci * K * K * m..][..K * K * m];
                for ky in 0..K {
                    let row = &plane[(y + ky) * wp..][..W + K - 1];
                    for kx in 0..K {
                        let seg: [T; W] = row[kx..kx + W].try_into().expect("a padded row holds every tap");
                        let t: [T; MB] = taps[(ky * K + kx) * m + m0..][..MB].try_into().expect("MB taps");
                        for j in 0..MB {
                            for x in 0..W {
                                acc[j][x] = t[j].mul_add(seg[x], acc[j][x]);
                            }
                        }
                    }
                }
            }
            for (j, acc) in acc.iter().enumerate() {
                out[((m0 + j) * ho + y) * W..][..W].copy_from_slice(acc);
            }
        }
    }

    /// `out` `(items, outputs, ho, wo)` for the `(items, sources, h, w)` images, chunks of items on
    /// several threads when the work is large.
    fn run<T: Real>(&self, images: &[T], wr: &[T], batch: usize) -> Vec<T> {
        let mut out = vec![T::ZERO; batch * self.out_len()];
        let per = items_per_chunk(batch);
        let macs = batch * self.out_len() * self.sources * K * K;
        for_each_chunk(&mut out, per * self.out_len(), parallel_direct(macs), |i, out| {
            T::with_scratch(self.padded_len(), |padded| {
                for (j, out) in out.chunks_exact_mut(self.out_len()).enumerate() {
                    let item = i * per + j;
                    self.pad_into(&images[item * self.image_len()..][..self.image_len()], padded);
                    vectorised(Item { corr: self, padded, wr, out });
                }
            });
        });
        out
    }
}

/// Lanes of a weight-gradient accumulator: the partial sums of one weight over every eighth pixel
/// of a row, added up once at the end.
const LANE: usize = 8;

/// Output channels whose weight gradients one pass accumulates (`MB x K` accumulators of [`LANE`]:
/// more spill registers).
const WEIGHT_BLOCK: usize = 2;

/// The row width whose weight gradients the direct loops compute. On narrower rows a matrix
/// product over patch matrices is as fast (its inner dimension, the batch's grid, is long), and the
/// patches of 32-wide rows are the largest to build.
const WEIGHT_ROW: usize = 32;

/// Whether [`weight_grad`] computes this convolution's weight gradient (`p` its input's patches, `m`
/// its output channels): those of [`applies`] on rows [`WEIGHT_ROW`] wide.
pub(crate) fn weight_grad_applies(p: &Patches, m: usize) -> bool {
    applies(p, m) && p.grid.1 == WEIGHT_ROW
}

/// The lane sums of one input channel and kernel row: `[output channel][kx][lane]`.
type Lanes<T, const MB: usize> = [[[T; LANE]; K]; MB];

impl Correlation {
    /// The weight gradient `(outputs, sources * K * K)`: for every output channel, source channel and
    /// tap, the sum over the batch and the grid of the output gradient `g` `(items, outputs, out)`
    /// times the padded image's pixel under that tap. Output channels are split into blocks, each
    /// summed whole by one thread.
    fn weight_grad<T: Real>(&self, g: &[T], images: &[T], batch: usize) -> Vec<T> {
        let mut padded = vec![T::ZERO; batch * self.padded_len()];
        for (image, dst) in images.chunks_exact(self.image_len()).zip(padded.chunks_exact_mut(self.padded_len())) {
            self.pad_into(image, dst);
        }
        let blocks = self.outputs.div_ceil(WEIGHT_BLOCK);
        let macs = batch * self.out_len() * self.sources * K * K;
        let parts = map_range(blocks, parallel_direct(macs), |i| {
            let m0 = i * WEIGHT_BLOCK;
            vectorised(WeightBlock {
                corr: self,
                g,
                padded: &padded,
                batch,
                m0,
                mb: WEIGHT_BLOCK.min(self.outputs - m0),
            })
        });
        parts.concat()
    }

    /// [`Correlation::weight_grad`] of output channels `m0..m0 + mb`, `(mb, sources * K * K)`.
    #[inline(always)]
    fn weight_block<T: Real>(&self, g: &[T], padded: &[T], batch: usize, m0: usize, mb: usize) -> Vec<T> {
        if mb == WEIGHT_BLOCK {
            self.weight_rows::<T, WEIGHT_BLOCK>(g, padded, batch, m0)
        } else {
            (m0..m0 + mb).flat_map(|m| self.weight_rows::<T, 1>(g, padded, batch, m)).collect()
        }
    }

    /// The weight gradients of output channels `m0..m0 + MB` on rows [`WEIGHT_ROW`] wide: for each
    /// source channel and kernel row, `MB x K` lane accumulators run over every item and output row,
    /// the output gradient's `LANE` pixels against the padded row's `LANE` pixels under each tap; the
    /// lanes are added last, in order.
    #[inline(always)]
    fn weight_rows<T: Real, const MB: usize>(&self, g: &[T], padded: &[T], batch: usize, m0: usize) -> Vec<T> {
        const W: usize = WEIGHT_ROW;
        assert_eq!(self.out().1, W, "direct weight gradient of rows {} wide", self.out().1);
        let ((hp, wp), ho, c) = (self.padded(), self.out().0, self.sources);
        let mut lanes = vec![[[[T::ZERO; LANE]; K]; MB]; c * K];
        for b in 0..batch {
            let gi = &g[b * self.out_len()..][..self.out_len()];
            let xi = &padded[b * self.padded_len()..][..self.padded_len()];
            for (row, acc) in lanes.iter_mut().enumerate() {
                let (ci, ky) = (row / K, row % K);
                let mut sums: Lanes<T, MB> = *acc;
                for y in 0..ho {
                    let xrow = &xi[(ci * hp + y + ky) * wp..][..W + K - 1];
                    for x0 in (0..W).step_by(LANE) {
                        let gv: [[T; LANE]; MB] = std::array::from_fn(|j| {
                            gi[((m0 + j) * ho + y) * W + x0..][..LANE].try_into().expect("LANE pixels")
                        });
                        for kx in 0..K {
                            let xv: [T; LANE] =
                                xrow[x0 + kx..][..LANE].try_into().expect("a padded row holds every tap");
                            for j in 0..MB {
                                for l in 0..LANE {
                                    sums[j][kx][l] = gv[j][l].mul_add(xv[l], sums[j][kx][l]);
                                }
                            }
                        }
                    }
                }
                *acc = sums;
            }
        }
        let mut out = vec![T::ZERO; MB * c * K * K];
        for (row, acc) in lanes.iter().enumerate() {
            let (ci, ky) = (row / K, row % K);
            for (j, taps) in acc.iter().enumerate() {
                for (kx, lane) in taps.iter().enumerate() {
                    out[(j * c + ci) * K * K + ky * K + kx] = lane.iter().fold(T::ZERO, |s, &v| s + v);
                }
            }
        }
        out
    }
}

/// [`Correlation::weight_block`] as vectorised work.
struct WeightBlock<'a, T> {
    corr: &'a Correlation,
    g: &'a [T],
    padded: &'a [T],
    batch: usize,
    m0: usize,
    mb: usize,
}

impl<T: Real> Vectorise for WeightBlock<'_, T> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self) -> Vec<T> {
        self.corr.weight_block(self.g, self.padded, self.batch, self.m0, self.mb)
    }
}

/// `w` `(m, c, k, k)` laid out `(c * k * k, m)`: for each input channel and tap, the weights of every
/// output channel side by side.
fn forward_weights<T: Real>(w: &[T], m: usize, c: usize, k: usize) -> Vec<T> {
    let kk = k * k;
    let mut wr = vec![T::ZERO; w.len()];
    for mi in 0..m {
        for ci in 0..c {
            for t in 0..kk {
                wr[(ci * kk + t) * m + mi] = w[(mi * c + ci) * kk + t];
            }
        }
    }
    wr
}

/// The input gradient's weights: `w` `(m, c, k, k)` transposed and flipped, laid out `(m * k * k, c)`.
fn input_grad_weights<T: Real>(w: &[T], m: usize, c: usize, k: usize) -> Vec<T> {
    let kk = k * k;
    let mut wr = vec![T::ZERO; w.len()];
    for mi in 0..m {
        for ci in 0..c {
            for t in 0..kk {
                wr[(mi * kk + t) * c + ci] = w[(mi * c + ci) * kk + (kk - 1 - t)];
            }
        }
    }
    wr
}

/// The convolution: `images` `(B, C, H, W)` as `p` describes, `w` `(m, C, k, k)`, the result
/// `(B, m, grid)`.
pub(crate) fn conv<T: Real>(images: &[T], w: &[T], m: usize, p: &Patches) -> Vec<T> {
    let corr = Correlation { sources: p.channels, image: p.image, pad: p.padding, outputs: m };
    corr.run(images, &forward_weights(w, m, p.channels, p.kernel), p.batch)
}

/// The input gradient: `g` `(B, m, grid)`, `w` `(m, C, k, k)`, the result `(B, C, H, W)`.
pub(crate) fn input_grad<T: Real>(g: &[T], w: &[T], m: usize, p: &Patches) -> Vec<T> {
    let pad = K - 1 - p.padding;
    let corr = Correlation { sources: m, image: p.grid, pad, outputs: p.channels };
    corr.run(g, &input_grad_weights(w, m, p.channels, p.kernel), p.batch)
}

/// The weight gradient: `g` `(B, m, grid)`, `images` `(B, C, H, W)` as `p` describes, the result
/// `(m, C * k * k)`.
pub(crate) fn weight_grad<T: Real>(g: &[T], images: &[T], m: usize, p: &Patches) -> Vec<T> {
    let corr = Correlation { sources: p.channels, image: p.image, pad: p.padding, outputs: m };
    corr.weight_grad(g, images, p.batch)
}

/// [`Correlation::item`] as vectorised work.
struct Item<'a, T> {
    corr: &'a Correlation,
    padded: &'a [T],
    wr: &'a [T],
    out: &'a mut [T],
}

impl<T: Real> Vectorise for Item<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        self.corr.item(self.padded, self.wr, self.out);
    }
}
