//! The three matrix products a convolution and its gradients are made of, over batch chunks.
//!
//! With `P` the patch matrix of an image (im2col, [`Patches::gather`]) and `W` a `(M, taps)` matrix:
//! - [`patches_matmul`]: `W P(image)` per batch item (a convolution; a transposed convolution's input
//!   gradient);
//! - [`matmul_scatter`]: `col2im(W^T g)` per batch item (a transposed convolution; a convolution's input
//!   gradient);
//! - [`patches_outer`]: `sum_b g_b P(image_b)^T` (either one's weight gradient).
//!
//! The batch is cut into chunks of a few items whose patch matrices stay small (no buffer large enough
//! to be handed back to the kernel after each use), and the chunks run on the threads side by side,
//! each with a single-threaded matrix product.

use faer::prelude::ReborrowMut;
use faer::{MatMut, MatRef};

use super::patches::Patches;
use super::{for_each_chunk, map_range, parallel_macs, Real};

/// Largest patch matrix of one chunk, in elements.
const CHUNK_ELEMENTS: usize = 1 << 18;

/// Fewest chunks a batch is cut into when it has that many items, so both threads get several.
const MIN_CHUNKS: usize = 8;

/// Grid positions per batch item from which each item gets its own matrix product (its rows are
/// then contiguous in the `(B, M, G)` tensor); below it a chunk is reordered to `(M, items * G)`
/// first, for one wider product.
const DIRECT_GRID: usize = 256;

/// Batch items per chunk for these patches: a function of the shapes alone.
fn items_per_chunk(p: &Patches) -> usize {
    let per_item = p.taps() * p.grid_len();
    (CHUNK_ELEMENTS / per_item.max(1)).clamp(1, p.batch.div_ceil(MIN_CHUNKS).max(1))
}

/// How a kernel's work is spread: over chunks (each product on one thread), or chunk after chunk with
/// every thread inside each product, or on this thread alone.
#[derive(Clone, Copy)]
struct Spread {
    chunks: bool,
    products: bool,
}

fn spread(work: usize, n_chunks: usize) -> Spread {
    let parallel = parallel_macs(work);
    let chunks = parallel && n_chunks >= 2 * rayon::current_num_threads();
    Spread { chunks, products: parallel && !chunks }
}

/// `(items, M, G)` (item-major, as tensors lay out `(B, C, H, W)`) to `(M, items * G)`, into `dst`.
fn to_row_major<T: Real>(src: &[T], m: usize, g: usize, dst: &mut [T]) {
    let items = src.len() / (m * g);
    for (b, item) in src.chunks_exact(m * g).enumerate() {
        for (r, row) in item.chunks_exact(g).enumerate() {
            dst[r * items * g + b * g..][..g].copy_from_slice(row);
        }
    }
}

/// `(M, items * G)` back to `(items, M, G)`, into `dst`.
fn from_row_major<T: Real>(src: &[T], m: usize, g: usize, dst: &mut [T]) {
    let items = src.len() / (m * g);
    for (b, item) in dst.chunks_exact_mut(m * g).enumerate() {
        for (r, row) in item.chunks_exact_mut(g).enumerate() {
            row.copy_from_slice(&src[r * items * g + b * g..][..g]);
        }
    }
}

/// The `(cols, rows)` row-major transpose of the `(rows, cols)` row-major `a`, tile by tile so that
/// reads and writes both stay in cache lines.
fn transposed<T: Real>(a: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 16;
    let mut t = vec![T::ZERO; a.len()];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    t[c * rows + r] = a[r * cols + c];
                }
            }
        }
    }
    t
}

fn mat<T: Real>(data: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::from_row_major_slice(data, rows, cols)
}

fn mat_mut<T: Real>(data: &mut [T], rows: usize, cols: usize) -> MatMut<'_, T> {
    MatMut::from_row_major_slice_mut(data, rows, cols)
}

/// `out[b] = W P(images[b])` for every item: `images` `(B, C, H, W)` as `p` describes, `w` `(m, taps)`,
/// the result `(B, m, grid)`.
pub(crate) fn patches_matmul<T: Real>(images: &[T], w: &[T], m: usize, p: &Patches) -> Vec<T> {
    let (g, taps) = (p.grid_len(), p.taps());
    let per = items_per_chunk(p);
    let mut out = vec![T::ZERO; p.batch * m * g];
    let how = spread(p.batch * m * g * taps, p.batch.div_ceil(per));
    let wm = mat(w, m, taps);
    for_each_chunk(&mut out, per * m * g, how.chunks, |i, out| {
        let nb = out.len() / (m * g);
        let direct = g >= DIRECT_GRID;
        let (n_cols, n_tmp) = (taps * nb * g, if direct { 0 } else { m * nb * g });
        T::with_scratch(n_cols + n_tmp, |scratch| {
            let (cols, tmp) = scratch.split_at_mut(n_cols);
            p.with_batch(nb).gather(&images[i * per * p.image_len()..][..nb * p.image_len()], cols);
            let cm = mat(cols, taps, nb * g);
            if direct {
                for (b, item) in out.chunks_exact_mut(m * g).enumerate() {
                    T::matmul(mat_mut(item, m, g), wm, cm.subcols(b * g, g), false, how.products);
                }
            } else {
                T::matmul(mat_mut(tmp, m, nb * g), wm, cm, false, how.products);
                from_row_major(tmp, m, g, out);
            }
        });
    });
    out
}

/// `images[b] = col2im(W^T g[b])` for every item: `g` `(B, m, grid)`, `w` `(m, taps)`, the result
/// `(B, C, H, W)` as `p` describes.
pub(crate) fn matmul_scatter<T: Real>(g_side: &[T], w: &[T], m: usize, p: &Patches) -> Vec<T> {
    let (g, taps) = (p.grid_len(), p.taps());
    let per = items_per_chunk(p);
    let mut images = vec![T::ZERO; p.batch * p.image_len()];
    let how = spread(p.batch * m * g * taps, p.batch.div_ceil(per));
    // W^T laid out row-major once: faer multiplies a transposed view of W several times slower here.
    let w_t = transposed(w, m, taps);
    let wt = mat(&w_t, taps, m);
    for_each_chunk(&mut images, per * p.image_len(), how.chunks, |i, images| {
        let nb = images.len() / p.image_len();
        let src = &g_side[i * per * m * g..][..nb * m * g];
        let direct = g >= DIRECT_GRID;
        let (n_cols, n_tmp) = (taps * nb * g, if direct { 0 } else { m * nb * g });
        T::with_scratch(n_cols + n_tmp, |scratch| {
            let (cols, tmp) = scratch.split_at_mut(n_cols);
            if direct {
                let mut cm = mat_mut(cols, taps, nb * g);
                for (b, item) in src.chunks_exact(m * g).enumerate() {
                    let block = cm.rb_mut().subcols_mut(b * g, g);
                    T::matmul(block, wt, mat(item, m, g), false, how.products);
                }
            } else {
                to_row_major(src, m, g, tmp);
                T::matmul(mat_mut(cols, taps, nb * g), wt, mat(tmp, m, nb * g), false, how.products);
            }
            p.with_batch(nb).scatter_add(cols, images);
        });
    });
    images
}

/// Most partial sums [`patches_outer`] keeps: chunks are summed in this many fixed groups, side by
/// side, and the groups' sums added in order.
const OUTER_GROUPS: usize = 4;

/// `sum_b g[b] P(images[b])^T`: `g` `(B, m, grid)`, `images` `(B, C, H, W)` as `p` describes, the
/// result `(m, taps)`.
pub(crate) fn patches_outer<T: Real>(g_side: &[T], images: &[T], m: usize, p: &Patches) -> Vec<T> {
    let (g, taps) = (p.grid_len(), p.taps());
    let per = items_per_chunk(p);
    let n_chunks = p.batch.div_ceil(per);
    let groups = n_chunks.min(OUTER_GROUPS);
    let how = spread(p.batch * m * g * taps, groups);
    let group_sum = |group: usize| -> Vec<T> {
        let mut acc = vec![T::ZERO; m * taps];
        let first = group * n_chunks / groups;
        for chunk in first..(group + 1) * n_chunks / groups {
            let b0 = chunk * per;
            let nb = per.min(p.batch - b0);
            let direct = g >= DIRECT_GRID;
            let (n_cols, n_tmp) = (taps * nb * g, if direct { 0 } else { m * nb * g });
            T::with_scratch(n_cols + n_tmp, |scratch| {
                let (cols, tmp) = scratch.split_at_mut(n_cols);
                p.with_batch(nb).gather(&images[b0 * p.image_len()..][..nb * p.image_len()], cols);
                let ct = mat(cols, taps, nb * g).transpose();
                let src = &g_side[b0 * m * g..][..nb * m * g];
                if direct {
                    for (b, item) in src.chunks_exact(m * g).enumerate() {
                        let block = ct.subrows(b * g, g);
                        T::matmul(mat_mut(&mut acc, m, taps), mat(item, m, g), block, true, how.products);
                    }
                } else {
                    to_row_major(src, m, g, tmp);
                    T::matmul(mat_mut(&mut acc, m, taps), mat(tmp, m, nb * g), ct, true, how.products);
                }
            });
        }
        acc
    };
    let sums = map_range(groups, how.chunks, group_sum);
    let mut sums = sums.into_iter();
    let mut total = sums.next().unwrap_or_else(|| vec![T::ZERO; m * taps]);
    for s in sums {
        total.iter_mut().zip(&s).for_each(|(t, &v)| *t += v);
    }
    total
}
