//! Synthetic birds: a procedural renderer with CUB-style captions and exact ground-truth attributes,
//! deterministic from (seed, index), with splits that hold out phrasings and colour combinations.

pub mod attributes;
pub mod captions;
pub mod measure;
pub mod render;
pub mod synonyms;

use condor_core::derived_rng;
use serde::{Deserialize, Serialize};

use crate::layout::ObjectLayout;

pub use attributes::{Background, Beak, BirdAttributes, Colour, Facing, Pose, Size};
pub use captions::{colour_prompt, with_articles, Caption, TEMPLATES};
pub use measure::{bird_colour, bird_colour_name, bird_mask};
pub use render::{Part, RenderedBird};

/// (body, wing) colour pairs never rendered outside the held-out-combination split.
pub const HELD_OUT_PAIRS: [(Colour, Colour); 5] = [
    (Colour::Red, Colour::Blue),
    (Colour::Yellow, Colour::Black),
    (Colour::Green, Colour::Orange),
    (Colour::Blue, Colour::Yellow),
    (Colour::White, Colour::Brown),
];

/// Captions written for each bird.
pub const CAPTIONS_PER_BIRD: usize = 10;

/// Which part of the synthetic world a dataset draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BirdSplit {
    /// Training birds: no held-out colour pair, training phrasings.
    Train,
    /// Other birds of the same distribution (seen phrasings).
    Test,
    /// Test birds described with the held-out phrasings only.
    HeldOutPhrasings,
    /// Birds whose (body, wing) colours are a held-out pair, with training phrasings.
    HeldOutCombinations,
}

/// How widely the birds are spread over the frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// Near the middle (centre within ±0.07 of the side) at their size's full scale: the world the
    /// shipped models and instruments know.
    #[default]
    Centred,
    /// Anywhere their whole body fits, at 60-80% of that scale (small and large birds still never
    /// overlap in scale), so a box says something about where the bird is: the what-and-where data.
    Wide,
}

impl std::str::FromStr for Spread {
    type Err = String;

    /// `centred` or `wide`, as in configs.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "centred" => Ok(Spread::Centred),
            "wide" => Ok(Spread::Wide),
            other => Err(format!("unknown spread `{other}`; use centred or wide")),
        }
    }
}

impl BirdSplit {
    fn stream(self) -> u64 {
        match self {
            BirdSplit::Train => 0,
            BirdSplit::Test => 1,
            BirdSplit::HeldOutPhrasings => 2,
            BirdSplit::HeldOutCombinations => 3,
        }
    }
}

/// A bird of a split: its attributes, image and captions.
#[derive(Clone, Debug)]
pub struct Bird {
    /// Ground-truth attributes.
    pub attributes: BirdAttributes,
    /// The image.
    pub image: RenderedBird,
    /// Its captions.
    pub captions: Vec<Caption>,
}

/// A synthetic-bird world: its seed and where its birds sit. Its splits are [`SyntheticBirds`]; the
/// instruments that read its birds (judges, locators, FID statistics) are made per world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BirdWorld {
    /// Seed of the world.
    pub seed: u64,
    /// Where in the frame the birds sit.
    #[serde(default)]
    pub spread: Spread,
}

impl BirdWorld {
    /// The centred birds of world `seed`.
    pub fn centred(seed: u64) -> Self {
        Self { seed, spread: Spread::Centred }
    }

    /// The birds of `split`.
    pub fn split(self, split: BirdSplit) -> SyntheticBirds {
        SyntheticBirds::new(self.seed, split).with_spread(self.spread)
    }

    /// A short name for file names: `w0` for world 0's centred birds, `w0-wide` for its wide ones.
    pub fn tag(self) -> String {
        match self.spread {
            Spread::Centred => format!("w{}", self.seed),
            Spread::Wide => format!("w{}-wide", self.seed),
        }
    }
}

impl std::fmt::Display for BirdWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.spread {
            Spread::Centred => write!(f, "world {}", self.seed),
            Spread::Wide => write!(f, "world {} (wide)", self.seed),
        }
    }
}

/// The synthetic-bird world for one seed and split: bird `i` is always the same bird.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticBirds {
    /// Seed of the world.
    pub seed: u64,
    /// The split.
    pub split: BirdSplit,
    /// Where in the frame the birds sit.
    pub spread: Spread,
}

impl SyntheticBirds {
    /// The centred birds of `split` under `seed`.
    pub fn new(seed: u64, split: BirdSplit) -> Self {
        Self { seed, split, spread: Spread::Centred }
    }

    /// The world these birds belong to.
    pub fn world(&self) -> BirdWorld {
        BirdWorld { seed: self.seed, spread: self.spread }
    }

    /// The same birds (attributes, captions, pose, texture) placed with `spread`.
    pub fn with_spread(self, spread: Spread) -> Self {
        Self { spread, ..self }
    }

    /// The attributes of bird `index`.
    pub fn attributes(&self, index: u64) -> BirdAttributes {
        let mut rng = derived_rng(self.seed, &[self.split.stream(), index, 0]);
        loop {
            let mut a = BirdAttributes::sample(&mut rng);
            let held = HELD_OUT_PAIRS.contains(&(a.body, a.wing));
            match self.split {
                BirdSplit::HeldOutCombinations => {
                    let (body, wing) = HELD_OUT_PAIRS[(index % HELD_OUT_PAIRS.len() as u64) as usize];
                    (a.body, a.wing) = (body, wing);
                    return a;
                }
                _ if !held => return a,
                _ => {}
            }
        }
    }

    /// The captions of bird `index`.
    pub fn captions(&self, index: u64) -> Vec<Caption> {
        let a = self.attributes(index);
        let mut rng = derived_rng(self.seed, &[self.split.stream(), index, 2]);
        captions::captions(&a, self.split == BirdSplit::HeldOutPhrasings, CAPTIONS_PER_BIRD, &mut rng)
    }

    /// Renders bird `index` at `size` x `size` pixels.
    pub fn render(&self, index: u64, size: usize) -> RenderedBird {
        self.render_with(index, &self.attributes(index), size)
    }

    /// Renders bird `index` with `attributes` in place of its own: the same scene (place, sway,
    /// texture) with what the attributes change, changed.
    pub fn render_with(&self, index: u64, attributes: &BirdAttributes, size: usize) -> RenderedBird {
        render::render(attributes, size, self.spread, &mut self.scene_rng(index))
    }

    /// Where bird `index` is in its image: the box around everything painted as the bird (not the
    /// legs or the branch) and its keypoints, exact from the renderer's geometry.
    pub fn layout(&self, index: u64) -> ObjectLayout {
        let a = self.attributes(index);
        let p = render::Placement::draw(&a, self.spread, &mut self.scene_rng(index));
        let keypoints = render::keypoints_local(&a).map(|k| Some(p.image_point(k)));
        ObjectLayout::from_extent(render::bird_extent(&a, &p), keypoints)
    }

    /// The stream bird `index`'s scene is drawn from: placement first, then texture.
    fn scene_rng(&self, index: u64) -> condor_core::Rng {
        derived_rng(self.seed, &[self.split.stream(), index, 1])
    }

    /// Bird `index` whole.
    pub fn bird(&self, index: u64, size: usize) -> Bird {
        Bird { attributes: self.attributes(index), image: self.render(index, size), captions: self.captions(index) }
    }
}

#[cfg(test)]
mod tests;
