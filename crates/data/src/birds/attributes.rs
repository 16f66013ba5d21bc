//! What a synthetic bird is made of: its attributes, drawn from a seeded generator.

use condor_core::Rng;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Plumage colours, from CUB's colour vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Colour {
    /// Red.
    Red,
    /// Blue.
    Blue,
    /// Yellow.
    Yellow,
    /// Black.
    Black,
    /// White.
    White,
    /// Brown.
    Brown,
    /// Grey.
    Grey,
    /// Green.
    Green,
    /// Orange.
    Orange,
}

impl Colour {
    /// Every colour, in a fixed order.
    pub const ALL: [Colour; 9] = [
        Colour::Red,
        Colour::Blue,
        Colour::Yellow,
        Colour::Black,
        Colour::White,
        Colour::Brown,
        Colour::Grey,
        Colour::Green,
        Colour::Orange,
    ];

    /// The word used in captions.
    pub fn word(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Black => "black",
            Colour::White => "white",
            Colour::Brown => "brown",
            Colour::Grey => "grey",
            Colour::Green => "green",
            Colour::Orange => "orange",
        }
    }

    /// The reference RGB value in [0, 1] that the renderer paints (before shading and texture).
    pub fn rgb(self) -> [f32; 3] {
        let c = match self {
            Colour::Red => [200, 30, 30],
            Colour::Blue => [40, 80, 210],
            Colour::Yellow => [240, 215, 40],
            Colour::Black => [25, 25, 28],
            Colour::White => [242, 242, 238],
            Colour::Brown => [125, 75, 35],
            Colour::Grey => [128, 128, 132],
            Colour::Green => [40, 150, 55],
            Colour::Orange => [245, 135, 20],
        };
        c.map(|v| v as f32 / 255.0)
    }

    /// The colour of the table nearest to `rgb` (Euclidean distance in RGB).
    pub fn nearest(rgb: [f32; 3]) -> Colour {
        let dist = |c: Colour| c.rgb().iter().zip(rgb).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
        Colour::ALL.into_iter().min_by(|a, b| dist(*a).total_cmp(&dist(*b))).expect("non-empty table")
    }
}

/// Body size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// A small bird.
    Small,
    /// A large bird.
    Large,
}

/// Beak length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Beak {
    /// A short beak.
    Short,
    /// A long beak.
    Long,
}

/// Which way the bird faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facing {
    /// Head on the left of the image.
    Left,
    /// Head on the right of the image.
    Right,
}

/// Perched or in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pose {
    /// Sitting on a branch, wings folded.
    Perched,
    /// Wings raised, no branch.
    Flying,
}

/// The scene behind the bird.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Background {
    /// A sky gradient.
    Sky,
    /// Green leaves.
    Foliage,
    /// Water with ripples.
    Water,
    /// A plain pale backdrop.
    Plain,
}

/// Everything that defines a synthetic bird; every caption is written from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BirdAttributes {
    /// Main body colour.
    pub body: Colour,
    /// Wing (and tail) colour.
    pub wing: Colour,
    /// Head and crown colour.
    pub head: Colour,
    /// Belly and breast colour.
    pub belly: Colour,
    /// Small or large.
    pub size: Size,
    /// Short or long beak.
    pub beak: Beak,
    /// Facing left or right.
    pub facing: Facing,
    /// Perched or flying.
    pub pose: Pose,
    /// The background.
    pub background: Background,
    /// A white ring around the eye.
    pub eye_ring: bool,
    /// A pale bar across the wing.
    pub wing_bar: bool,
}

fn pick<T: Copy>(rng: &mut Rng, options: &[T]) -> T {
    options[rng.random_range(0..options.len())]
}

impl BirdAttributes {
    /// True when the body colour is the colour one sees: wings and belly, the other large parts, share it.
    pub fn mostly_body_colour(&self) -> bool {
        self.wing == self.body && self.belly == self.body
    }

    /// Draws attributes. The body colour is the bird's main colour: wing, head and belly each take it
    /// with probability 1/2 and a uniformly drawn colour otherwise, as real birds mostly have one
    /// dominant colour with accents.
    pub fn sample(rng: &mut Rng) -> Self {
        let body = pick(rng, &Colour::ALL);
        let part = |rng: &mut Rng| if rng.random_bool(0.5) { body } else { pick(rng, &Colour::ALL) };
        Self {
            body,
            wing: part(rng),
            head: part(rng),
            belly: part(rng),
            size: pick(rng, &[Size::Small, Size::Large]),
            beak: pick(rng, &[Beak::Short, Beak::Long]),
            facing: pick(rng, &[Facing::Left, Facing::Right]),
            pose: pick(rng, &[Pose::Perched, Pose::Flying]),
            background: pick(rng, &[Background::Sky, Background::Foliage, Background::Water, Background::Plain]),
            eye_ring: rng.random_bool(0.5),
            wing_bar: rng.random_bool(0.5),
        }
    }
}
