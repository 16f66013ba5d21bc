//! Two image domains without pairs, for unpaired translation (CycleGAN, DiscoGAN): synthetic birds
//! on the sky and on water, red birds and blue birds, or any two folders of images.
//!
//! The bird domains are drawn from the synthetic world with one attribute set: the sky domain is
//! world birds `0..count` with the sky behind them, the water domain birds `count..2 count` on water,
//! so no bird appears in both (nothing is paired). Every other attribute is drawn as usual.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::birds::{Background, BirdAttributes, BirdSplit, Colour, RenderedBird, SyntheticBirds};
use crate::images::{uncaptioned_folder, ImageSet};
use crate::loader::CaptionedSource;
use crate::DataError;

/// Which two domains (`[data] domains = "sky_water"`, or `domains = { folders = { a = "..", b = ".." } }`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Domains {
    /// Birds on the sky (A) and birds on water (B): the background changes, the bird stays.
    SkyWater,
    /// Red birds (A) and blue birds (B), every part of the plumage one colour: the colour changes,
    /// pose, size, facing and background stay.
    RedBlue,
    /// The images of two folders (`name.jpg|jpeg|png`, searched recursively).
    Folders {
        /// Domain A's folder.
        a: PathBuf,
        /// Domain B's folder.
        b: PathBuf,
    },
}

/// The one attribute a bird domain fixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    /// The background behind every bird.
    Background(Background),
    /// The colour of every part of the plumage.
    Plumage(Colour),
}

impl Look {
    /// `a` with this look.
    pub fn apply(self, mut a: BirdAttributes) -> BirdAttributes {
        match self {
            Look::Background(b) => a.background = b,
            Look::Plumage(c) => (a.body, a.wing, a.head, a.belly) = (c, c, c, c),
        }
        a
    }

    /// Its name in grids and reports ("sky", "red").
    pub fn name(self) -> &'static str {
        match self {
            Look::Background(Background::Sky) => "sky",
            Look::Background(Background::Water) => "water",
            Look::Background(Background::Foliage) => "foliage",
            Look::Background(Background::Plain) => "plain",
            Look::Plumage(c) => c.word(),
        }
    }
}

impl Domains {
    /// The looks of domains A and B, for the bird domains; `None` for folders.
    pub fn looks(&self) -> Option<[Look; 2]> {
        match self {
            Self::SkyWater => Some([Look::Background(Background::Sky), Look::Background(Background::Water)]),
            Self::RedBlue => Some([Look::Plumage(Colour::Red), Look::Plumage(Colour::Blue)]),
            Self::Folders { .. } => None,
        }
    }

    /// The names of domains A and B: the looks, or the folders' last components.
    pub fn names(&self) -> [String; 2] {
        match (self.looks(), self) {
            (Some(l), _) => l.map(|l| l.name().to_string()),
            (None, Self::Folders { a, b }) => [a, b]
                .map(|p| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())),
            (None, _) => unreachable!("only folders have no look"),
        }
    }

    /// Opens both domains: `count` birds of `split` of world `world_seed` each, or the two folders
    /// (which also returns what each skipped).
    pub fn open(&self, world_seed: u64, count: usize, split: BirdSplit) -> Result<OpenDomains, DataError> {
        if let Some(looks) = self.looks() {
            if count == 0 {
                return Err(DataError::InvalidConfig("`count` of birds per domain must be at least 1".into()));
            }
            let world = SyntheticBirds::new(world_seed, split);
            let domain = |k: usize| -> Arc<dyn CaptionedSource> {
                Arc::new(BirdDomain { world, first: (k * count) as u64, len: count, look: looks[k] })
            };
            return Ok(OpenDomains { sources: [domain(0), domain(1)], skipped: [Vec::new(), Vec::new()] });
        }
        let Self::Folders { a, b } = self else { unreachable!("bird domains returned above") };
        let [a, b]: [ImageSet; 2] = [uncaptioned_folder(a)?, uncaptioned_folder(b)?];
        let skipped = [a.skipped.clone(), b.skipped.clone()];
        Ok(OpenDomains { sources: [Arc::new(a), Arc::new(b)], skipped })
    }
}

/// Both domains, opened.
pub struct OpenDomains {
    /// Domain A's and B's images.
    pub sources: [Arc<dyn CaptionedSource>; 2],
    /// The files each folder skipped, and why.
    pub skipped: [Vec<(PathBuf, String)>; 2],
}

/// Birds `first..first + len` of a world, each with `look`.
#[derive(Clone, Copy, Debug)]
pub struct BirdDomain {
    /// The world.
    pub world: SyntheticBirds,
    /// The world index of the domain's first bird.
    pub first: u64,
    /// How many birds.
    pub len: usize,
    /// What every bird of the domain shares.
    pub look: Look,
}

impl BirdDomain {
    /// The attributes of bird `index` of the domain (with the domain's look).
    pub fn bird(&self, index: usize) -> BirdAttributes {
        self.look.apply(self.world.attributes(self.first + index as u64))
    }

    /// Bird `index` of the domain rendered with `look` instead of the domain's: its counterpart in the
    /// other domain, the ideal translation.
    pub fn render_as(&self, index: usize, look: Look, size: usize) -> RenderedBird {
        let i = self.first + index as u64;
        self.world.render_with(i, &look.apply(self.world.attributes(i)), size)
    }
}

impl CaptionedSource for BirdDomain {
    fn len(&self) -> usize {
        self.len
    }
    fn image(&self, index: usize, size: usize) -> Result<Vec<f32>, DataError> {
        Ok(self.render_as(index, self.look, size).pixels)
    }
    fn captions(&self, _index: usize) -> Vec<String> {
        Vec::new()
    }
    fn attributes(&self, index: usize) -> Option<BirdAttributes> {
        Some(self.bird(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_domains_share_their_look_and_no_bird() {
        for domains in [Domains::SkyWater, Domains::RedBlue] {
            let open = domains.open(0, 50, BirdSplit::Train).unwrap();
            let looks = domains.looks().unwrap();
            for (k, source) in open.sources.iter().enumerate() {
                for i in 0..50 {
                    let a = source.attributes(i).unwrap();
                    assert_eq!(looks[k].apply(a), a, "domain {k}, bird {i}");
                }
            }
            // Domain B's birds are other birds of the world, not A's with another look.
            let poses = |k: usize| (0..50).map(|i| open.sources[k].attributes(i).unwrap().size).collect::<Vec<_>>();
            assert_ne!(poses(0), poses(1));
        }
        assert_eq!(Domains::RedBlue.names(), ["red", "blue"]);
        assert!(Domains::SkyWater.open(0, 0, BirdSplit::Train).is_err());
    }

    #[test]
    fn a_counterpart_changes_only_the_look() {
        let open = Domains::RedBlue.open(0, 4, BirdSplit::Test).unwrap();
        let world = SyntheticBirds::new(0, BirdSplit::Test);
        let red = BirdDomain { world, first: 0, len: 4, look: Look::Plumage(Colour::Red) };
        let own = red.render_as(1, Look::Plumage(Colour::Red), 32);
        assert_eq!(own.pixels, open.sources[0].image(1, 32).unwrap());
        let blue = red.render_as(1, Look::Plumage(Colour::Blue), 32);
        // The same bird in the same place: the pixels that differ are the bird's own.
        assert_eq!(own.parts, blue.parts);
        let changed =
            own.pixels.chunks(32 * 32).map(|c| c.to_vec()).ne(blue.pixels.chunks(32 * 32).map(|c| c.to_vec()));
        assert!(changed);
    }

    #[test]
    fn folders_are_read_and_named() {
        let config: Domains = serde_json::from_str(r#"{"folders": {"a": "x/horses", "b": "y/zebras"}}"#).unwrap();
        assert_eq!(config.names(), ["horses", "zebras"]);
        let err = config.open(0, 1, BirdSplit::Train).err().unwrap();
        assert!(err.to_string().contains("x/horses"), "{err}");
    }
}
