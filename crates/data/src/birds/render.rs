//! The procedural bird renderer: anti-aliased shapes in resolution-independent coordinates, with
//! shading, texture noise, pose, placement and background, deterministic from (seed, index).
//!
//! Each shape's coverage of a pixel comes from an approximate signed distance to its edge,
//! `clamp(0.5 - d / pixel, 0, 1)`, which gives one pixel of anti-aliasing at every resolution.

use condor_core::Rng;
use rand::Rng as _;

use super::attributes::{Background, Beak, BirdAttributes, Colour, Facing, Pose, Size};
use super::Spread;

/// Which part of the bird (if any) a pixel shows, for checking colours and for masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Part {
    /// Background, branch, legs, or an edge where shapes mix.
    None = 0,
    /// The body.
    Body,
    /// A wing (or the tail, painted in the wing colour).
    Wing,
    /// The head and crown.
    Head,
    /// The belly and breast.
    Belly,
    /// Beak, eye, eye ring or wing bar.
    Detail,
}

/// A rendered bird.
#[derive(Clone, Debug)]
pub struct RenderedBird {
    /// Side length in pixels.
    pub size: usize,
    /// `(3, size, size)` RGB values in [0, 1], channel-major.
    pub pixels: Vec<f32>,
    /// For each pixel, the part that covers it fully and is on top (`None` for background and edges).
    pub parts: Vec<Part>,
}

impl RenderedBird {
    /// Mean RGB of the pixels showing `part`, or `None` if it is hidden.
    pub fn mean_colour(&self, part: Part) -> Option<[f32; 3]> {
        let n = self.size * self.size;
        let idx: Vec<usize> = (0..n).filter(|&i| self.parts[i] == part).collect();
        if idx.is_empty() {
            return None;
        }
        let mut m = [0f32; 3];
        for (c, mc) in m.iter_mut().enumerate() {
            *mc = idx.iter().map(|&i| self.pixels[c * n + i]).sum::<f32>() / idx.len() as f32;
        }
        Some(m)
    }

    /// The image as 8-bit RGB rows (for PNGs).
    pub fn to_rgb8(&self) -> Vec<u8> {
        crate::images::planes_to_rgb8(&self.pixels, self.size)
    }
}

/// How near a widely spread bird's body may come to the frame's edge (fraction of the side).
const WIDE_MARGIN: f32 = 0.03;

/// Where and how the bird sits in the frame; drawn from the renderer's generator.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    cx: f32,
    cy: f32,
    scale: f32,
    angle: f32,
    flip: f32,
}

impl Placement {
    /// The placement of a bird with `attributes` spread as `spread`: the first draws of its rendering
    /// stream `rng` (the centred draws are the world's original ones, unchanged by the option).
    pub(crate) fn draw(attributes: &BirdAttributes, spread: Spread, rng: &mut Rng) -> Self {
        let base = match attributes.size {
            Size::Small => 0.24,
            Size::Large => 0.33,
        };
        let flip = if attributes.facing == Facing::Right { 1.0 } else { -1.0 };
        match spread {
            Spread::Centred => Placement {
                cx: 0.5 + rng.random_range(-0.07..0.07),
                cy: 0.5 + rng.random_range(-0.05..0.05),
                scale: base * rng.random_range(0.92..1.08),
                angle: rng.random_range(-0.15..0.15),
                flip,
            },
            Spread::Wide => {
                let scale = base * rng.random_range(0.6..0.8);
                let angle = rng.random_range(-0.15..0.15);
                let middle = Placement { cx: 0.5, cy: 0.5, scale, angle, flip };
                let e = bird_extent(attributes, &middle);
                let shift = |rng: &mut Rng, lo: f32, hi: f32| {
                    // The offsets that keep the body inside a margin of the frame.
                    let (lo, hi) = ((WIDE_MARGIN - lo).min(0.0), (1.0 - WIDE_MARGIN - hi).max(0.0));
                    if hi > lo {
                        rng.random_range(lo..hi)
                    } else {
                        0.0
                    }
                };
                let (dx, dy) = (shift(rng, e[0], e[2]), shift(rng, e[1], e[3]));
                Placement { cx: 0.5 + dx, cy: 0.5 + dy, ..middle }
            }
        }
    }

    /// A vector in bird units, in image fractions (the inverse of the renderer's map into the bird).
    pub(crate) fn vector_to_image(&self, v: [f32; 2]) -> [f32; 2] {
        let (sa, ca) = self.angle.sin_cos();
        let (a, b) = (v[0] * self.flip * self.scale, v[1] * self.scale);
        [ca * a - sa * b, sa * a + ca * b]
    }

    /// A point in bird units, in image fractions.
    pub(crate) fn image_point(&self, p: [f32; 2]) -> [f32; 2] {
        let d = self.vector_to_image(p);
        [self.cx + d[0], self.cy + d[1]]
    }
}

/// A shape in bird-local coordinates (x toward the head, y down, unit = body scale).
enum Shape {
    /// Centre, radii, rotation.
    Ellipse { c: [f32; 2], r: [f32; 2], rot: f32 },
    /// A convex polygon, vertices in either order.
    Polygon(Vec<[f32; 2]>),
    /// A thick segment: ends and half-width.
    Capsule { a: [f32; 2], b: [f32; 2], w: f32 },
}

impl Shape {
    /// A circle (centre, radius) in bird units that contains the shape.
    fn bound(&self) -> ([f32; 2], f32) {
        match self {
            Shape::Ellipse { c, r, .. } => (*c, r[0].max(r[1])),
            Shape::Polygon(pts) => {
                let n = pts.len() as f32;
                let c = [pts.iter().map(|p| p[0]).sum::<f32>() / n, pts.iter().map(|p| p[1]).sum::<f32>() / n];
                (c, pts.iter().map(|p| ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt()).fold(0.0, f32::max))
            }
            Shape::Capsule { a, b, w } => {
                let c = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
                (c, ((a[0] - c[0]).powi(2) + (a[1] - c[1]).powi(2)).sqrt() + w)
            }
        }
    }

    /// The shape's extent in the image under placement `p`: `[min x, min y, max x, max y]`.
    fn image_extent(&self, p: &Placement) -> [f32; 4] {
        match self {
            Shape::Ellipse { c, r, rot } => {
                let (s, co) = rot.sin_cos();
                let centre = p.image_point(*c);
                let (a1, a2) = (p.vector_to_image([r[0] * co, r[0] * s]), p.vector_to_image([-r[1] * s, r[1] * co]));
                let half = [a1[0].hypot(a2[0]), a1[1].hypot(a2[1])];
                [centre[0] - half[0], centre[1] - half[1], centre[0] + half[0], centre[1] + half[1]]
            }
            Shape::Polygon(pts) => {
                pts.iter().map(|&q| p.image_point(q)).map(|[x, y]| [x, y, x, y]).fold(NO_EXTENT, union)
            }
            Shape::Capsule { a, b, w } => {
                let (a, b, w) = (p.image_point(*a), p.image_point(*b), w * p.scale);
                [a[0].min(b[0]) - w, a[1].min(b[1]) - w, a[0].max(b[0]) + w, a[1].max(b[1]) + w]
            }
        }
    }

    /// Approximate signed distance in bird units (negative inside).
    fn distance(&self, q: [f32; 2]) -> f32 {
        match self {
            Shape::Ellipse { c, r, rot } => {
                let (s, co) = rot.sin_cos();
                let (dx, dy) = (q[0] - c[0], q[1] - c[1]);
                let (x, y) = (co * dx + s * dy, -s * dx + co * dy);
                let f = ((x / r[0]).powi(2) + (y / r[1]).powi(2)).sqrt();
                (f - 1.0) * r[0].min(r[1])
            }
            Shape::Polygon(pts) => {
                // The shoelace sign tells the winding, so either vertex order works.
                let area: f32 = (0..pts.len())
                    .map(|i| {
                        let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
                        a[0] * b[1] - b[0] * a[1]
                    })
                    .sum();
                let sign = if area >= 0.0 { 1.0 } else { -1.0 };
                let mut d = f32::NEG_INFINITY;
                for i in 0..pts.len() {
                    let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
                    let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
                    let len = (ex * ex + ey * ey).sqrt().max(1e-6);
                    let (nx, ny) = (sign * ey / len, -sign * ex / len);
                    d = d.max(nx * (q[0] - a[0]) + ny * (q[1] - a[1]));
                }
                d
            }
            Shape::Capsule { a, b, w } => {
                let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
                let t = (((q[0] - a[0]) * ex + (q[1] - a[1]) * ey) / (ex * ex + ey * ey).max(1e-9)).clamp(0.0, 1.0);
                let (px, py) = (a[0] + t * ex - q[0], a[1] + t * ey - q[1]);
                (px * px + py * py).sqrt() - w
            }
        }
    }
}

/// One painted layer: a shape, its colour, the part it belongs to, and whether it is clipped to the body.
struct Layer {
    shape: Shape,
    colour: [f32; 3],
    part: Part,
    clip_to_body: bool,
    shaded: bool,
}

const BEAK: [f32; 3] = [0.30, 0.26, 0.22];
const BRANCH: [f32; 3] = [0.36, 0.25, 0.14];

/// The extent `[min x, min y, max x, max y]` of nothing, which [`union`] with any extent leaves it.
const NO_EXTENT: [f32; 4] = [f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY];

/// The extent covering two extents.
fn union(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
    [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]
}

/// Centre of the head, in bird units.
const HEAD_CENTRE: [f32; 2] = [0.56, -0.3];
/// Centre of the belly patch.
const BELLY_CENTRE: [f32; 2] = [0.1, 0.2];
/// The middle of the tail's outer edge.
const TAIL_TIP: [f32; 2] = [-1.0, -0.07];
/// Where the beak's upper edge leaves the head, and the height of its tip.
const BEAK_ROOT_X: f32 = 0.74;
const BEAK_TIP_Y: f32 = -0.29;

/// The wing's centre, radii and rotation for a pose.
fn wing(pose: Pose) -> ([f32; 2], [f32; 2], f32) {
    match pose {
        Pose::Perched => ([-0.12, -0.04], [0.4, 0.17], -0.2),
        Pose::Flying => ([-0.12, -0.42], [0.46, 0.15], -1.05),
    }
}

/// Length of the beak.
fn beak_length(beak: Beak) -> f32 {
    match beak {
        Beak::Short => 0.17,
        Beak::Long => 0.4,
    }
}

/// The bird's keypoints in bird units, in [`crate::birds::KEYPOINTS`] order: head, beak tip, tail tip,
/// wing, belly.
pub(crate) fn keypoints_local(a: &BirdAttributes) -> [[f32; 2]; 5] {
    [HEAD_CENTRE, [BEAK_ROOT_X + beak_length(a.beak), BEAK_TIP_Y], TAIL_TIP, wing(a.pose).0, BELLY_CENTRE]
}

/// The bird's extent in the image, `[min x, min y, max x, max y]` (fractions): every painted shape
/// that belongs to the bird (not the legs or the branch).
pub(crate) fn bird_extent(a: &BirdAttributes, p: &Placement) -> [f32; 4] {
    layers(a).iter().filter(|l| l.part != Part::None).map(|l| l.shape.image_extent(p)).fold(NO_EXTENT, union)
}

fn layers(a: &BirdAttributes) -> Vec<Layer> {
    let layer =
        |shape, colour: Colour, part| Layer { shape, colour: colour.rgb(), part, clip_to_body: false, shaded: true };
    let mut out = Vec::new();
    if a.pose == Pose::Perched {
        let (legs, twig) = ([0.47f32, 0.42], 0.035);
        for x in [-0.1f32, 0.12] {
            out.push(Layer {
                shape: Shape::Capsule { a: [x, 0.2], b: [x - 0.02, legs[0]], w: twig },
                colour: BEAK,
                part: Part::None,
                clip_to_body: false,
                shaded: false,
            });
        }
        out.push(Layer {
            shape: Shape::Capsule { a: [-3.0, legs[1] + 0.08], b: [3.0, legs[1] + 0.02], w: 0.07 },
            colour: BRANCH,
            part: Part::None,
            clip_to_body: false,
            shaded: true,
        });
    }
    // The tail, in the wing colour, behind the body.
    out.push(layer(
        Shape::Polygon(vec![[-0.45, -0.08], [TAIL_TIP[0], -0.26], [TAIL_TIP[0], 0.12], [-0.45, 0.1]]),
        a.wing,
        Part::Wing,
    ));
    out.push(layer(Shape::Ellipse { c: [0.0, 0.0], r: [0.56, 0.34], rot: 0.0 }, a.body, Part::Body));
    out.push(Layer {
        clip_to_body: true,
        ..layer(Shape::Ellipse { c: BELLY_CENTRE, r: [0.42, 0.22], rot: 0.0 }, a.belly, Part::Belly)
    });
    let (wing_c, wing_r, wing_rot) = wing(a.pose);
    out.push(layer(Shape::Ellipse { c: wing_c, r: wing_r, rot: wing_rot }, a.wing, Part::Wing));
    if a.wing_bar {
        let (s, c) = wing_rot.sin_cos();
        // A pale band across the wing, perpendicular to its long axis.
        let (ux, uy) = (c * 0.06, s * 0.06);
        let (vx, vy) = (-s * wing_r[1] * 0.85, c * wing_r[1] * 0.85);
        let m = wing_c;
        out.push(Layer {
            shape: Shape::Polygon(vec![
                [m[0] - ux - vx, m[1] - uy - vy],
                [m[0] + ux - vx, m[1] + uy - vy],
                [m[0] + ux + vx, m[1] + uy + vy],
                [m[0] - ux + vx, m[1] - uy + vy],
            ]),
            colour: [0.93, 0.93, 0.88],
            part: Part::Detail,
            clip_to_body: false,
            shaded: false,
        });
    }
    out.push(layer(Shape::Ellipse { c: HEAD_CENTRE, r: [0.25, 0.24], rot: 0.0 }, a.head, Part::Head));
    let length = beak_length(a.beak);
    out.push(Layer {
        shape: Shape::Polygon(vec![[BEAK_ROOT_X, -0.37], [BEAK_ROOT_X + length, BEAK_TIP_Y], [BEAK_ROOT_X, -0.23]]),
        colour: BEAK,
        part: Part::Detail,
        clip_to_body: false,
        shaded: false,
    });
    if a.eye_ring {
        out.push(Layer {
            shape: Shape::Ellipse { c: [0.63, -0.35], r: [0.075, 0.075], rot: 0.0 },
            colour: [0.97, 0.97, 0.95],
            part: Part::Detail,
            clip_to_body: false,
            shaded: false,
        });
    }
    out.push(Layer {
        shape: Shape::Ellipse { c: [0.63, -0.35], r: [0.042, 0.042], rot: 0.0 },
        colour: [0.03, 0.03, 0.03],
        part: Part::Detail,
        clip_to_body: false,
        shaded: false,
    });
    out
}

/// A cheap, well-mixed hash to [-1, 1] for texture noise.
fn noise(seed: u64, x: usize, y: usize) -> f32 {
    let mut h = seed ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

fn background(kind: Background, u: f32, v: f32, phase: [f32; 3]) -> [f32; 3] {
    let mix = |a: [f32; 3], b: [f32; 3], t: f32| {
        [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
    };
    match kind {
        Background::Sky => mix([0.50, 0.72, 0.95], [0.88, 0.94, 1.0], v),
        Background::Foliage => {
            let t = 0.5
                + 0.25
                    * ((u * 17.0 + phase[0]).sin() * (v * 13.0 + phase[1]).sin()
                        + (u * 7.0 - v * 9.0 + phase[2]).sin());
            mix([0.12, 0.30, 0.10], [0.38, 0.62, 0.25], t.clamp(0.0, 1.0))
        }
        Background::Water => {
            let t = 0.5 + 0.5 * (v * 55.0 + 2.5 * (u * 9.0 + phase[0]).sin()).sin();
            mix([0.14, 0.36, 0.52], [0.30, 0.55, 0.70], t)
        }
        Background::Plain => {
            let tint = 0.04 * phase[2].sin();
            [0.86 + tint, 0.83, 0.77 - tint]
        }
    }
}

/// Renders `attributes` at `size` x `size` pixels, placed as `spread`; placement, rotation and texture
/// come from `rng`.
pub fn render(attributes: &BirdAttributes, size: usize, spread: Spread, rng: &mut Rng) -> RenderedBird {
    let p = Placement::draw(attributes, spread, rng);
    let phase = [rng.random_range(0.0..6.3), rng.random_range(0.0..6.3), rng.random_range(0.0..6.3)];
    let texture_seed: u64 = rng.random();
    let layers = layers(attributes);
    let bounds: Vec<([f32; 2], f32)> = layers.iter().map(|l| l.shape.bound()).collect();
    let body = Shape::Ellipse { c: [0.0, 0.0], r: [0.56, 0.34], rot: 0.0 };
    let n = size * size;
    let mut pixels = vec![0f32; 3 * n];
    let mut parts = vec![Part::None; n];
    let pixel = 1.0 / size as f32;
    let (sa, ca) = p.angle.sin_cos();
    for y in 0..size {
        for x in 0..size {
            let (u, v) = ((x as f32 + 0.5) * pixel, (y as f32 + 0.5) * pixel);
            let mut rgb = background(attributes.background, u, v, phase);
            let mut owner = Part::None;
            // Into bird-local coordinates: translate, rotate, scale, mirror.
            let (dx, dy) = (u - p.cx, v - p.cy);
            let q = [p.flip * (ca * dx + sa * dy) / p.scale, (-sa * dx + ca * dy) / p.scale];
            let px = pixel / p.scale;
            let tex = 1.0 + 0.04 * noise(texture_seed, x * 256 / size, y * 256 / size);
            for (l, (bc, br)) in layers.iter().zip(&bounds) {
                // Outside the bounding circle (with a pixel's margin) the layer cannot cover.
                if ((q[0] - bc[0]).powi(2) + (q[1] - bc[1]).powi(2)).sqrt() - br > px {
                    continue;
                }
                let mut cover = (0.5 - l.shape.distance(q) / px).clamp(0.0, 1.0);
                if l.clip_to_body {
                    cover *= (0.5 - body.distance(q) / px).clamp(0.0, 1.0);
                }
                if cover <= 0.0 {
                    continue;
                }
                let shade = if l.shaded { (1.06 - 0.14 * (q[1] + 0.35)) * tex } else { 1.0 };
                for (value, part) in rgb.iter_mut().zip(l.colour) {
                    let col = (part * shade).clamp(0.0, 1.0);
                    *value += (col - *value) * cover;
                }
                // A pixel belongs to a part only where the part covers it fully; edges are mixed.
                owner = if cover >= 0.999 { l.part } else { Part::None };
            }
            for c in 0..3 {
                pixels[c * n + y * size + x] = rgb[c];
            }
            parts[y * size + x] = owner;
        }
    }
    RenderedBird { size, pixels, parts }
}
