//! im2col and col2im: where a convolution's kernel taps fall, gathered into a matrix or scattered back.

use super::Real;

/// Where a convolution's kernel taps fall: an image of `channels` x `image` pixels per batch item,
/// read (or written) by a `kernel` x `kernel` window at every point of a `grid` of positions, `stride`
/// apart, starting `padding` pixels before the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Patches {
    pub batch: usize,
    pub channels: usize,
    pub image: (usize, usize),
    pub grid: (usize, usize),
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Patches {
    /// Pixels of one batch item, all channels.
    pub fn image_len(&self) -> usize {
        self.channels * self.image.0 * self.image.1
    }

    /// Grid positions of one batch item.
    pub fn grid_len(&self) -> usize {
        self.grid.0 * self.grid.1
    }

    /// Rows of the patch matrix: one per channel and kernel tap.
    pub fn taps(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// The same patches for `batch` items.
    pub fn with_batch(self, batch: usize) -> Self {
        Self { batch, ..self }
    }

    /// The grid positions `g` whose tap at kernel offset `k` reads a pixel inside `size`
    /// (`g * stride + k - padding` in `0..size`), and the pixel the first of them reads.
    fn inside(&self, k: usize, size: usize, grid: usize) -> (std::ops::Range<usize>, usize) {
        let s = self.stride;
        let first = self.padding.saturating_sub(k).div_ceil(s);
        let end = (size + self.padding).saturating_sub(k).div_ceil(s).min(grid);
        (first..end.max(first), (first * s + k).saturating_sub(self.padding))
    }

    /// im2col: the `batch` images `(C, H, W)` in `images` to the `(C * k * k, batch * grid)` matrix of
    /// their taps in `cols` (zero outside the image).
    pub fn gather<T: Real>(&self, images: &[T], cols: &mut [T]) {
        let (n, k, s) = (self.batch * self.grid_len(), self.kernel, self.stride);
        let ((h, w), (gh, gw)) = (self.image, self.grid);
        debug_assert_eq!(images.len(), self.batch * self.image_len());
        debug_assert_eq!(cols.len(), self.taps() * n);
        for (row, out) in cols.chunks_exact_mut(n).enumerate() {
            let (c, ky, kx) = (row / (k * k), row / k % k, row % k);
            let (rows, y0) = self.inside(ky, h, gh);
            let (xs, x0) = self.inside(kx, w, gw);
            let full_width = xs.len() == gw;
            if rows.len() != gh || !full_width {
                out.fill(T::ZERO);
            }
            for b in 0..self.batch {
                let plane = &images[(b * self.channels + c) * h * w..][..h * w];
                for (i, gy) in rows.clone().enumerate() {
                    let dst = &mut out[(b * gh + gy) * gw..][xs.clone()];
                    let src = &plane[(y0 + i * s) * w + x0..];
                    if s == 1 {
                        dst.copy_from_slice(&src[..dst.len()]);
                    } else {
                        dst.iter_mut().zip(src.iter().step_by(s)).for_each(|(d, &v)| *d = v);
                    }
                }
            }
        }
    }

    /// col2im, the adjoint of [`Patches::gather`]: adds every tap of the `(C * k * k, batch * grid)`
    /// matrix `cols` onto the pixel of `images` it reads.
    pub fn scatter_add<T: Real>(&self, cols: &[T], images: &mut [T]) {
        let (n, k, s) = (self.batch * self.grid_len(), self.kernel, self.stride);
        let ((h, w), (gh, gw)) = (self.image, self.grid);
        debug_assert_eq!(images.len(), self.batch * self.image_len());
        debug_assert_eq!(cols.len(), self.taps() * n);
        for (plane_index, plane) in images.chunks_exact_mut(h * w).enumerate() {
            let (b, c) = (plane_index / self.channels, plane_index % self.channels);
            for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                let row = &cols[((c * k + ky) * k + kx) * n..][..n];
                let (rows, y0) = self.inside(ky, h, gh);
                let (xs, x0) = self.inside(kx, w, gw);
                for (i, gy) in rows.enumerate() {
                    let taps = &row[(b * gh + gy) * gw..][xs.clone()];
                    let dst = &mut plane[(y0 + i * s) * w + x0..];
                    if s == 1 {
                        dst.iter_mut().zip(taps).for_each(|(d, &t)| *d += t);
                    } else {
                        dst.iter_mut().step_by(s).zip(taps).for_each(|(d, &t)| *d += t);
                    }
                }
            }
        }
    }
}
