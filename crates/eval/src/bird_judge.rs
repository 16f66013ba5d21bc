//! The judge of generated birds: an [`AttributeClassifier`] trained on rendered synthetic birds, whose
//! ground-truth attributes are exact. It must read at least [`JUDGE_MIN_ACCURACY`] of every attribute
//! of rendered test birds right before it judges a generator.

use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use condor_data::birds::{
    Background, Beak, BirdAttributes, BirdSplit, BirdWorld, Caption, Colour, Facing, Part, Pose, RenderedBird, Size,
    SyntheticBirds, TEMPLATES,
};
use condor_metrics::{AttributeClassifier, AttributeTraining};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// The least accuracy on rendered test birds an attribute needs before the judge judges it.
pub const JUDGE_MIN_ACCURACY: f64 = 0.98;
/// Attributes the judge must be able to judge (every colour, and what is visible at 32 px); the small
/// details (beak length, eye ring, wing bar) are judged only where the judge reads them well enough.
pub const REQUIRED_ATTRIBUTES: [&str; 8] = ["body", "wing", "head", "belly", "size", "facing", "pose", "background"];
/// Rendered test birds the judge is checked on (bird indices 0..this of the test split).
pub const JUDGE_TEST_BIRDS: u64 = 2000;
/// Rendered training birds the judge learns from, and birds of the held-out colour combinations among
/// them (indices from [`JUDGE_COMBINATION_START`], apart from the test birds): the judge is a measuring
/// instrument, so it learns every combination, lest it read a held-out wing colour as the body's.
pub const JUDGE_TRAIN_BIRDS: u64 = 20_000;
/// Held-out-combination birds in the judge's training set.
pub const JUDGE_COMBINATION_BIRDS: u64 = 5_000;
/// First held-out-combination bird index used for training.
pub const JUDGE_COMBINATION_START: u64 = 100_000;

/// The attributes the judge reads, with their number of classes, in head order.
pub const BIRD_ATTRIBUTES: [(&str, usize); 11] = [
    ("body", 9),
    ("wing", 9),
    ("head", 9),
    ("belly", 9),
    ("size", 2),
    ("beak", 2),
    ("facing", 2),
    ("pose", 2),
    ("background", 4),
    ("eye_ring", 2),
    ("wing_bar", 2),
];

fn colour_index(c: Colour) -> usize {
    Colour::ALL.iter().position(|&x| x == c).unwrap_or(0)
}

/// The class of each attribute of a bird, in [`BIRD_ATTRIBUTES`] order.
pub fn attribute_labels(a: &BirdAttributes) -> Vec<usize> {
    vec![
        colour_index(a.body),
        colour_index(a.wing),
        colour_index(a.head),
        colour_index(a.belly),
        usize::from(a.size == Size::Large),
        usize::from(a.beak == Beak::Long),
        usize::from(a.facing == Facing::Right),
        usize::from(a.pose == Pose::Flying),
        match a.background {
            Background::Sky => 0,
            Background::Foliage => 1,
            Background::Water => 2,
            Background::Plain => 3,
        },
        usize::from(a.eye_ring),
        usize::from(a.wing_bar),
    ]
}

/// The attributes (indices into [`BIRD_ATTRIBUTES`]) a caption states: its colour words, and the size,
/// beak, facing, pose, background, eye ring or wing bar its phrasing names.
pub fn mentioned_attributes(caption: &Caption) -> Vec<usize> {
    let mut out: Vec<usize> = caption
        .mentions
        .iter()
        .filter_map(|(part, _)| match part {
            Part::Body => Some(0),
            Part::Wing => Some(1),
            Part::Head => Some(2),
            Part::Belly => Some(3),
            _ => None,
        })
        .collect();
    let text = TEMPLATES.get(caption.template).map_or("", |t| t.text);
    for (slot, head) in
        [("{size}", 4), ("{beak}", 5), ("{facing}", 6), ("{pose}", 7), ("{bg}", 8), ("eye ring", 9), ("wing bar", 10)]
    {
        if text.contains(slot) {
            out.push(head);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Body pixels a 32 px bird must show for its body colour to be judged (scaled with the area at other
/// sizes). Wings, head and belly cover most of the body: at 32 px half the birds show fewer than 6 body
/// pixels, and there the judge reads the body colour right 90% of the time, against 99% where it shows.
pub const MIN_BODY_PIXELS_32: usize = 6;

/// Whether a rendered bird shows its body colour: it is mostly that colour, or shows enough body pixels.
pub fn body_shown(attributes: &BirdAttributes, image: &RenderedBird) -> bool {
    let body = image.parts.iter().filter(|p| **p == Part::Body).count();
    attributes.mostly_body_colour() || body * 32 * 32 >= MIN_BODY_PIXELS_32 * image.size * image.size
}

/// Rendered birds with their ground truth.
pub struct RenderedSet {
    /// `(N, 3, side, side)` in [-1, 1].
    pub images: Tensor,
    /// Their attributes.
    pub attributes: Vec<BirdAttributes>,
    /// Whether each shows its body colour ([`body_shown`]).
    pub body_shown: Vec<bool>,
}

/// Renders birds `range` of `world` at `side` pixels.
pub fn rendered_birds(world: SyntheticBirds, range: Range<u64>, side: usize, device: &Device) -> Result<RenderedSet> {
    let n = (range.end - range.start) as usize;
    let mut pixels = Vec::with_capacity(n * 3 * side * side);
    let (mut attributes, mut shown) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in range {
        let (a, image) = (world.attributes(i), world.render(i, side));
        pixels.extend(image.pixels.iter().map(|v| v * 2.0 - 1.0));
        shown.push(body_shown(&a, &image));
        attributes.push(a);
    }
    Ok(RenderedSet { images: Tensor::from_vec(pixels, (n, 3, side, side), device)?, attributes, body_shown: shown })
}

/// The file of the bird instrument `name` (`judge`, `locator`) for `side`-pixel birds of `world` under
/// `root`: in `weights/` where the project ships it, in `data/judges/` where it is trained locally.
pub(crate) fn instrument_path(root: &Path, name: &str, world: BirdWorld, side: usize, shipped: bool) -> PathBuf {
    let dir = if shipped { "weights" } else { "data/judges" };
    root.join(dir).join(format!("birds-{name}-{}-{side}px.safetensors", world.tag()))
}

/// The shipped instrument `name` if there is one, else the local one.
pub(crate) fn shipped_or_local(root: &Path, name: &str, world: BirdWorld, side: usize) -> PathBuf {
    let shipped = instrument_path(root, name, world, side, true);
    if shipped.exists() {
        shipped
    } else {
        instrument_path(root, name, world, side, false)
    }
}

/// Where a judge for `side`-pixel birds of `world` is kept, under `root`, when trained locally.
pub fn judge_path(root: &Path, world: BirdWorld, side: usize) -> PathBuf {
    instrument_path(root, "judge", world, side, false)
}

/// Where the project ships a judge for `side`-pixel birds of `world` (32 and 64 px, world 0 centred),
/// so that everyone's numbers come from the same judge.
pub fn shipped_judge_path(root: &Path, world: BirdWorld, side: usize) -> PathBuf {
    instrument_path(root, "judge", world, side, true)
}

/// Trains a judge on [`JUDGE_TRAIN_BIRDS`] training birds and [`JUDGE_COMBINATION_BIRDS`]
/// held-out-combination birds of `world` at `side` pixels.
pub fn train_bird_judge(
    world: BirdWorld,
    side: usize,
    config: &AttributeTraining,
    device: &Device,
) -> Result<(AttributeClassifier, Vec<f32>)> {
    let train = world.split(BirdSplit::Train);
    let combos = world.split(BirdSplit::HeldOutCombinations);
    let a = rendered_birds(train, 0..JUDGE_TRAIN_BIRDS, side, device)?;
    let range = JUDGE_COMBINATION_START..JUDGE_COMBINATION_START + JUDGE_COMBINATION_BIRDS;
    let b = rendered_birds(combos, range, side, device)?;
    let attributes: Vec<BirdAttributes> = a.attributes.into_iter().chain(b.attributes).collect();
    let images = Tensor::cat(&[a.images, b.images], 0)?;
    let labels: Vec<Vec<usize>> = attributes.iter().map(attribute_labels).collect();
    let heads: Vec<usize> = BIRD_ATTRIBUTES.iter().map(|(_, c)| *c).collect();
    Ok(AttributeClassifier::train(&images, &labels, &heads, config)?)
}

/// The judge's accuracy on rendered birds of one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeAccuracy {
    /// The split.
    pub split: BirdSplit,
    /// Birds read.
    pub birds: usize,
    /// Birds among them that show their body colour, on which the body's accuracy is measured.
    pub body_birds: usize,
    /// Accuracy per attribute, in [`BIRD_ATTRIBUTES`] order (the body's on `body_birds`).
    pub per_attribute: Vec<f64>,
}

impl JudgeAccuracy {
    /// The lowest accuracy over attributes.
    pub fn worst(&self) -> f64 {
        self.per_attribute.iter().copied().fold(1.0, f64::min)
    }
}

/// An attribute classifier that has passed its check on rendered test birds.
pub struct BirdJudge {
    /// The classifier.
    pub classifier: AttributeClassifier,
    /// Its accuracy on the test split (seen distribution) and on the held-out colour combinations.
    pub accuracy: Vec<JudgeAccuracy>,
    /// For each attribute of [`BIRD_ATTRIBUTES`]: read right at least [`JUDGE_MIN_ACCURACY`] of the time
    /// in both splits, and so judged.
    pub judged: Vec<bool>,
}

impl BirdJudge {
    /// Checks `classifier` on the first [`JUDGE_TEST_BIRDS`] test birds and held-out-combination birds
    /// of `world`. Attributes read right at least [`JUDGE_MIN_ACCURACY`] of the time in both are
    /// judged; an error unless every one of [`REQUIRED_ATTRIBUTES`] is.
    pub fn check(classifier: AttributeClassifier, world: BirdWorld, device: &Device) -> Result<Self> {
        if classifier.heads().len() != BIRD_ATTRIBUTES.len() {
            return Err(EvalError::Invalid(format!(
                "a bird judge has {} heads, not {}",
                BIRD_ATTRIBUTES.len(),
                classifier.heads().len()
            )));
        }
        let mut accuracy = Vec::new();
        for split in [BirdSplit::Test, BirdSplit::HeldOutCombinations] {
            let set = rendered_birds(world.split(split), 0..JUDGE_TEST_BIRDS, classifier.side(), device)?;
            let labels: Vec<Vec<usize>> = set.attributes.iter().map(attribute_labels).collect();
            let predicted = classifier.predict(&set.images)?;
            let mut per_attribute = Vec::with_capacity(BIRD_ATTRIBUTES.len());
            for h in 0..BIRD_ATTRIBUTES.len() {
                let counted: Vec<usize> = (0..labels.len()).filter(|&i| h != 0 || set.body_shown[i]).collect();
                let right = counted.iter().filter(|&&i| predicted[i][h] == labels[i][h]).count();
                per_attribute.push(right as f64 / counted.len().max(1) as f64);
            }
            let body_birds = set.body_shown.iter().filter(|&&b| b).count();
            accuracy.push(JudgeAccuracy { split, birds: labels.len(), body_birds, per_attribute });
        }
        let judged: Vec<bool> = (0..BIRD_ATTRIBUTES.len())
            .map(|i| accuracy.iter().all(|a| a.per_attribute[i] >= JUDGE_MIN_ACCURACY))
            .collect();
        let judge = Self { classifier, accuracy, judged };
        let failing: Vec<&str> = BIRD_ATTRIBUTES
            .iter()
            .zip(&judge.judged)
            .filter(|((name, _), ok)| !**ok && REQUIRED_ATTRIBUTES.contains(name))
            .map(|((name, _), _)| *name)
            .collect();
        if !failing.is_empty() {
            return Err(EvalError::WeakJudge(format!(
                "the bird judge needs {:.0}% on rendered birds for every one of {REQUIRED_ATTRIBUTES:?}, but not for {}:\n{}",
                100.0 * JUDGE_MIN_ACCURACY,
                failing.join(", "),
                judge.to_markdown()
            )));
        }
        Ok(judge)
    }

    /// A Markdown table of the judge's accuracy per attribute and split.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| attribute |");
        for a in &self.accuracy {
            out += &format!(" {:?} ({} birds) |", a.split, a.birds);
        }
        out += &format!(" judged |\n|---|{}---|\n", "---|".repeat(self.accuracy.len()));
        for (i, (name, _)) in BIRD_ATTRIBUTES.iter().enumerate() {
            let birds: Vec<String> = self.accuracy.iter().map(|a| a.body_birds.to_string()).collect();
            let label = if i == 0 {
                format!("body (on the {} birds that show it)", birds.join(" / "))
            } else {
                name.to_string()
            };
            out += &format!("| {label} |");
            for a in &self.accuracy {
                out += &format!(" {:.2}% |", 100.0 * a.per_attribute[i]);
            }
            out += if self.judged[i] { " yes |\n" } else { " no (below the threshold) |\n" };
        }
        out
    }
}

/// The measuring instrument kept at `path`, loaded with `load`, or made with `train` and kept there
/// with `save`; `what` names it in what `log` hears.
pub(crate) fn load_or_train<T>(
    path: &Path,
    what: &str,
    log: &mut dyn FnMut(&str),
    load: impl FnOnce(&Path) -> Result<T>,
    train: impl FnOnce() -> Result<(T, Vec<f32>)>,
    save: impl FnOnce(&T, &Path) -> Result<()>,
) -> Result<T> {
    if path.exists() {
        log(&format!("{what}: {}", path.display()));
        return load(path);
    }
    log(&format!("{what}: none at {}; training one", path.display()));
    let start = std::time::Instant::now();
    let (made, losses) = train()?;
    log(&format!("{what}: trained in {:.0} s, epoch losses {losses:.4?}", start.elapsed().as_secs_f64()));
    save(&made, path)?;
    Ok(made)
}

/// Fails unless the instrument at `path`, which reads `read`-pixel birds, reads `side`-pixel ones.
pub(crate) fn check_side(path: &Path, read: usize, side: usize) -> Result<()> {
    if read != side {
        return Err(EvalError::Invalid(format!("{} reads {read} px birds, not {side} px", path.display())));
    }
    Ok(())
}

/// Loads the shipped judge ([`shipped_judge_path`]) or the one kept at [`judge_path`], or trains one
/// there (about 15 minutes on a 2-core CPU) and keeps it; either way it is checked before it is
/// returned. `log` hears what happens.
pub fn load_or_train_judge(
    root: &Path,
    world: BirdWorld,
    side: usize,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<BirdJudge> {
    let path = shipped_or_local(root, "judge", world, side);
    let classifier = load_or_train(
        &path,
        &format!("bird judge (trained on {JUDGE_TRAIN_BIRDS} rendered birds)"),
        log,
        |p| Ok(AttributeClassifier::load(p, device)?),
        || train_bird_judge(world, side, &AttributeTraining { epochs: 6, ..Default::default() }, device),
        |c, p| Ok(c.save(p)?),
    )?;
    check_side(&path, classifier.side(), side)?;
    BirdJudge::check(classifier, world, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_state_the_attributes_they_name() {
        let world = SyntheticBirds::new(0, BirdSplit::Test);
        for i in 0..50 {
            let a = world.attributes(i);
            let labels = attribute_labels(&a);
            for caption in world.captions(i) {
                let mentioned = mentioned_attributes(&caption);
                assert!(!mentioned.is_empty(), "{}", caption.text);
                let words: Vec<&str> = caption.text.split(' ').collect();
                for &m in &mentioned {
                    // Colour heads: the caption holds the colour's word.
                    if m < 4 {
                        assert!(words.contains(&Colour::ALL[labels[m]].word()), "{} / {m}", caption.text);
                    }
                }
                if caption.text.contains("eye ring") {
                    assert!(mentioned.contains(&9) && a.eye_ring);
                }
            }
        }
    }
}
