//! Reading a bird's colour off an image, generated or rendered, without knowing its parts.

use super::attributes::Colour;

/// How far (Euclidean, RGB in [0, 1]) a pixel must be from every border pixel to count as bird.
pub const BIRD_PIXEL_DISTANCE: f32 = 0.08;

/// The pixels of a `(3, size, size)` image in [0, 1] inside the bird: those whose colour, and their
/// four neighbours' colours, are unlike every pixel on the image border. The border shows only background (and the branch, which
/// runs across the image), since birds are drawn in the middle.
pub fn bird_mask(pixels: &[f32], size: usize) -> Vec<bool> {
    let n = size * size;
    let at = |i: usize| [pixels[i], pixels[n + i], pixels[2 * n + i]];
    let border: Vec<[f32; 3]> = (0..n)
        .filter(|&i| {
            let (y, x) = (i / size, i % size);
            y == 0 || x == 0 || y + 1 == size || x + 1 == size
        })
        .map(at)
        .collect();
    let limit = BIRD_PIXEL_DISTANCE * BIRD_PIXEL_DISTANCE;
    let raw: Vec<bool> = (0..n)
        .map(|i| {
            let p = at(i);
            border.iter().all(|b| (0..3).map(|c| (p[c] - b[c]).powi(2)).sum::<f32>() > limit)
        })
        .collect();
    // Erode by one pixel: outline pixels blend bird and background and would pull the mean to grey.
    (0..n)
        .map(|i| {
            let (y, x) = (i / size, i % size);
            raw[i]
                && y > 0
                && x > 0
                && y + 1 < size
                && x + 1 < size
                && raw[i - 1]
                && raw[i + 1]
                && raw[i - size]
                && raw[i + size]
        })
        .collect()
}

/// Mean RGB of the bird pixels of a `(3, size, size)` image in [0, 1] (see [`bird_mask`]), or `None`
/// when fewer than 1% of the pixels look like bird.
pub fn bird_colour(pixels: &[f32], size: usize) -> Option<[f32; 3]> {
    let n = size * size;
    let mask = bird_mask(pixels, size);
    let count = mask.iter().filter(|&&m| m).count();
    if count * 100 < n {
        return None;
    }
    let mut sum = [0f32; 3];
    for (i, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
        for (c, s) in sum.iter_mut().enumerate() {
            *s += pixels[c * n + i];
        }
    }
    Some(sum.map(|s| s / count as f32))
}

/// The colour of the renderer's table nearest to the bird's mean colour, if a bird is found.
pub fn bird_colour_name(pixels: &[f32], size: usize) -> Option<Colour> {
    bird_colour(pixels, size).map(Colour::nearest)
}
