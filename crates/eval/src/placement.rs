//! Whether a what-and-where model draws its bird where it is asked: a [`Locator`] trained on rendered
//! birds (whose boxes and keypoints are exact) reads where each generated bird is, and the reading is
//! compared with the layout the generator was given. The locator is itself checked on rendered test
//! birds first, at a mean IoU of at least [`LOCATOR_MIN_IOU`].

use std::path::Path;

use candle_core::Device;
use condor_core::layout::iou;
use condor_data::birds::{BirdSplit, BirdWorld, Spread, SyntheticBirds};
use condor_data::layout::ObjectLayout;
use condor_infer::{StyleOptions, TextToImage};
use condor_metrics::locator::LAYOUT_VALUES;
use condor_metrics::{AttributeTraining, Locator};
use serde::{Deserialize, Serialize};

use crate::bird_judge::{check_side, load_or_train, rendered_birds, shipped_or_local};
use crate::error::{EvalError, Result};

/// The least mean IoU on rendered test birds the locator needs before it measures generated ones.
pub const LOCATOR_MIN_IOU: f64 = 0.9;
/// Rendered training birds a locator of centred birds learns from ([`locator_schedule`]).
pub const LOCATOR_TRAIN_BIRDS: u64 = 12_000;
/// Rendered test birds it is checked on, and the test birds whose captions and layouts a model is
/// asked to draw.
pub const LOCATOR_TEST_BIRDS: u64 = 1_000;

/// How well drawn objects sit where they were asked.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayoutScore {
    /// Mean IoU of the box read and the box asked.
    pub mean_iou: f64,
    /// Share of images whose box reads at IoU 0.5 or more.
    pub hits: f64,
    /// Mean distance between the keypoints read and those asked, in fractions of the image side.
    pub keypoint_error: f64,
}

/// Scores `read` layouts (the locator's) against the `asked` ones.
pub fn score_layouts(read: &[[f32; LAYOUT_VALUES]], asked: &[ObjectLayout]) -> LayoutScore {
    let n = read.len().min(asked.len()).max(1) as f64;
    let (mut total_iou, mut hits, mut distance, mut points) = (0.0, 0.0, 0.0, 0usize);
    for (r, a) in read.iter().zip(asked) {
        let i = iou([r[0], r[1], r[2], r[3]], a.bbox) as f64;
        total_iou += i;
        hits += f64::from(u8::from(i >= 0.5));
        for (k, p) in a.keypoints.iter().enumerate() {
            if let Some([x, y]) = p {
                distance += f64::from((r[4 + 2 * k] - x).hypot(r[5 + 2 * k] - y));
                points += 1;
            }
        }
    }
    LayoutScore { mean_iou: total_iou / n, hits: hits / n, keypoint_error: distance / points.max(1) as f64 }
}

/// The mean IoU of each asked box with the next one's (the last with the first): what a model that
/// ignores its box would score if it drew every bird as the data places them. A placement score means
/// something only well above it.
pub fn chance_iou(asked: &[ObjectLayout]) -> f64 {
    let n = asked.len();
    let total: f64 = (0..n).map(|i| f64::from(iou(asked[i].bbox, asked[(i + 1) % n].bbox))).sum();
    total / n.max(1) as f64
}

/// The boxes asked of a generator in [`evaluate_placement`]: those of the first `n` test birds.
pub fn asked_layouts(world: BirdWorld, n: u64) -> Vec<ObjectLayout> {
    layouts(world.split(BirdSplit::Test), 0..n)
}

/// A locator and its score on rendered test birds.
pub struct CheckedLocator {
    /// The locator.
    pub locator: Locator,
    /// Its reading of rendered test birds: the ceiling of any generator's score.
    pub real: LayoutScore,
}

/// The layouts of birds `range` of `world`.
fn layouts(world: SyntheticBirds, range: std::ops::Range<u64>) -> Vec<ObjectLayout> {
    range.map(|i| world.layout(i)).collect()
}

/// How many rendered training birds a locator of `world` learns from, over how many epochs: wide birds
/// are small at 32 px, and their boxes take more examples to read at the same IoU.
pub fn locator_schedule(world: BirdWorld) -> (u64, usize) {
    match world.spread {
        Spread::Centred => (LOCATOR_TRAIN_BIRDS, 8),
        Spread::Wide => (2 * LOCATOR_TRAIN_BIRDS, 16),
    }
}

/// Trains a locator on the first `birds` rendered training birds of `world` at `side`.
pub fn train_locator(
    world: BirdWorld,
    birds: u64,
    side: usize,
    config: &AttributeTraining,
    device: &Device,
) -> Result<(Locator, Vec<f32>)> {
    let train = world.split(BirdSplit::Train);
    let images = rendered_birds(train, 0..birds, side, device)?.images;
    let targets: Vec<[f32; LAYOUT_VALUES]> = layouts(train, 0..birds).iter().map(layout_values).collect();
    Ok(Locator::train(&images, &targets, config)?)
}

/// A layout as the locator's 14 numbers (a synthetic bird shows every keypoint).
pub fn layout_values(l: &ObjectLayout) -> [f32; LAYOUT_VALUES] {
    let mut v = [0f32; LAYOUT_VALUES];
    v[..4].copy_from_slice(&l.bbox);
    for (k, p) in l.keypoints.iter().enumerate() {
        let [x, y] = p.unwrap_or([0.5, 0.5]);
        (v[4 + 2 * k], v[5 + 2 * k]) = (x, y);
    }
    v
}

/// Loads the shipped locator (`weights/birds-locator-{world tag}-{side}px.safetensors`) or the one kept in
/// `data/judges/`, or trains one there and keeps it; either way it is
/// checked on [`LOCATOR_TEST_BIRDS`] rendered test birds and refused below [`LOCATOR_MIN_IOU`].
pub fn load_or_train_locator(
    root: &Path,
    world: BirdWorld,
    side: usize,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<CheckedLocator> {
    let path = shipped_or_local(root, "locator", world, side);
    let (birds, epochs) = locator_schedule(world);
    let locator = load_or_train(
        &path,
        &format!("bird locator (trained on {birds} rendered birds)"),
        log,
        |p| Ok(Locator::load(p, device)?),
        || train_locator(world, birds, side, &AttributeTraining { epochs, ..Default::default() }, device),
        |l, p| Ok(l.save(p)?),
    )?;
    check_side(&path, locator.side(), side)?;
    let test = world.split(BirdSplit::Test);
    let read = locator.predict(&rendered_birds(test, 0..LOCATOR_TEST_BIRDS, side, device)?.images)?;
    let real = score_layouts(&read, &layouts(test, 0..LOCATOR_TEST_BIRDS));
    if real.mean_iou < LOCATOR_MIN_IOU {
        return Err(EvalError::Invalid(format!(
            "the bird locator {} reads rendered test birds at mean IoU {:.3}, below the {LOCATOR_MIN_IOU} it needs",
            path.display(),
            real.mean_iou
        )));
    }
    Ok(CheckedLocator { locator, real })
}

/// Draws each of `n` test birds' first caption in that bird's layout (latent codes from `seed`) and
/// reads where the generated birds are.
pub fn evaluate_placement(
    model: &TextToImage,
    locator: &CheckedLocator,
    world: BirdWorld,
    n: u64,
    seed: u64,
) -> Result<LayoutScore> {
    let test = world.split(BirdSplit::Test);
    let asked = asked_layouts(world, n);
    let prompts: Vec<String> =
        (0..n).map(|i| test.captions(i).into_iter().next().map(|c| c.text).unwrap_or_default()).collect();
    let mut read = Vec::with_capacity(n as usize);
    for (p, a) in prompts.chunks(250).zip(asked.chunks(250)) {
        let drawn = model.generate_laid_out(p, a, seed, false, &StyleOptions::default())?;
        read.extend(locator.locator.predict(&drawn.images)?);
    }
    Ok(score_layouts(&read, &asked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_count_overlap_hits_and_keypoint_distance() {
        let asked =
            ObjectLayout { bbox: [0.0, 0.0, 0.5, 0.5], keypoints: [Some([0.25, 0.25]), None, None, None, None] };
        let mut exact = layout_values(&asked);
        let s = score_layouts(&[exact], &[asked]);
        assert_eq!((s.mean_iou, s.hits, s.keypoint_error), (1.0, 1.0, 0.0));
        // Shifted by half its width: IoU 1/3, a miss, the keypoint 0.25 away.
        exact[0] = 0.25;
        exact[4] = 0.5;
        let s = score_layouts(&[exact], &[asked]);
        assert!((s.mean_iou - 1.0 / 3.0).abs() < 1e-6 && s.hits == 0.0 && (s.keypoint_error - 0.25).abs() < 1e-6);
    }
}
