//! Batches of captioned images for training: seeded shuffling per epoch, a caption re-drawn per
//! image each epoch, optional random crop and flip, and a background thread that prefetches.
//!
//! Batch `b` is a pure function of `(seed, b)`, so a resumed run sees exactly the batches it would
//! have seen.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use condor_core::derived_rng;
use rand::seq::SliceRandom;
use rand::Rng as _;

use crate::birds::{BirdAttributes, SyntheticBirds};
use crate::images::{load_cropped, ImageSet};
use crate::layout::ObjectLayout;
use crate::DataError;

/// Images with captions, addressable by index.
pub trait CaptionedSource: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// True when there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Colour channels of the images: 3 (RGB) unless the source says otherwise.
    fn channels(&self) -> usize {
        3
    }
    /// Image `index` at `size` x `size`: `(channels, size, size)` in [0, 1].
    fn image(&self, index: usize, size: usize) -> Result<Vec<f32>, DataError>;
    /// The captions of image `index`.
    fn captions(&self, index: usize) -> Vec<String>;
    /// Ground-truth attributes, for synthetic data.
    fn attributes(&self, _index: usize) -> Option<BirdAttributes> {
        None
    }
    /// Ground-truth class of image `index`, where the source has one (a digit's value).
    fn label(&self, _index: usize) -> Option<usize> {
        None
    }
    /// Where the object of image `index` is (box and keypoints), where the source knows.
    fn layout(&self, _index: usize) -> Option<ObjectLayout> {
        None
    }
}

/// The first `len` birds of a synthetic world.
pub struct BirdSet {
    /// The world.
    pub world: SyntheticBirds,
    /// How many birds.
    pub len: usize,
}

impl CaptionedSource for BirdSet {
    fn len(&self) -> usize {
        self.len
    }
    fn image(&self, index: usize, size: usize) -> Result<Vec<f32>, DataError> {
        Ok(self.world.render(index as u64, size).pixels)
    }
    fn captions(&self, index: usize) -> Vec<String> {
        self.world.captions(index as u64).into_iter().map(|c| c.text).collect()
    }
    fn attributes(&self, index: usize) -> Option<BirdAttributes> {
        Some(self.world.attributes(index as u64))
    }
    fn layout(&self, index: usize) -> Option<ObjectLayout> {
        Some(self.world.layout(index as u64))
    }
}

impl CaptionedSource for ImageSet {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn image(&self, index: usize, size: usize) -> Result<Vec<f32>, DataError> {
        load_cropped(&self.images[index], size)
    }
    fn captions(&self, index: usize) -> Vec<String> {
        self.images[index].captions.clone()
    }
    fn layout(&self, index: usize) -> Option<ObjectLayout> {
        crate::images::cropped_layout(&self.images[index]).ok().flatten()
    }
}

/// How batches are made.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// Side of the square images.
    pub size: usize,
    /// Seed of the shuffling, caption choice and augmentation.
    pub seed: u64,
    /// Random crop: images are made `crop` larger, then a random `size` window is taken (0: off).
    pub crop: f32,
    /// Random horizontal flips (never for a caption that says "left" or "right").
    pub flip: bool,
    /// Carry each row's layout (box and keypoints), where the source knows it.
    pub layouts: bool,
}

/// One batch.
#[derive(Clone, Debug)]
pub struct CaptionedBatch {
    /// `(B, channels, size, size)` values in [-1, 1], flattened.
    pub images: Vec<f32>,
    /// Colour channels of the images.
    pub channels: usize,
    /// Side of the images.
    pub size: usize,
    /// Which image each row is.
    pub indices: Vec<usize>,
    /// The caption drawn for each row.
    pub captions: Vec<String>,
    /// `(image, caption)` position of each drawn caption.
    pub caption_ids: Vec<(usize, usize)>,
    /// Attributes of each row, for synthetic data.
    pub attributes: Option<Vec<BirdAttributes>>,
    /// Class of each row, for labelled data.
    pub labels: Option<Vec<usize>>,
    /// Where each row's object is, after the row's crop and flip, when asked for and the data knows.
    pub layouts: Option<Vec<ObjectLayout>>,
}

/// Makes batches from a source.
pub struct Loader {
    source: Arc<dyn CaptionedSource>,
    config: LoaderConfig,
}

/// Whether a caption says which way the bird faces ("left", "right"), so that its image must not be mirrored.
pub fn mentions_direction(caption: &str) -> bool {
    caption
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case("left") || w.eq_ignore_ascii_case("right"))
}

impl Loader {
    /// A loader over `source`.
    pub fn new(source: Arc<dyn CaptionedSource>, config: LoaderConfig) -> Result<Self, DataError> {
        if source.is_empty() || config.batch_size == 0 || config.size == 0 || !(0.0..1.0).contains(&config.crop) {
            return Err(DataError::InvalidConfig(
                "a loader needs images, batch_size >= 1, size >= 1 and crop in [0, 1)".into(),
            ));
        }
        Ok(Self { source, config })
    }

    /// The order of images in `epoch`.
    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.source.len()).collect();
        order.shuffle(&mut derived_rng(self.config.seed, &[epoch, u64::MAX]));
        order
    }

    /// Batch number `b`: the next `batch_size` images of the shuffled epochs, continuing across epochs.
    pub fn batch(&self, b: u64) -> Result<CaptionedBatch, DataError> {
        let (n, bs, size) = (self.source.len() as u64, self.config.batch_size as u64, self.config.size);
        let channels = self.source.channels();
        let mut out = CaptionedBatch {
            images: Vec::with_capacity(self.config.batch_size * channels * size * size),
            channels,
            size,
            indices: Vec::new(),
            captions: Vec::new(),
            caption_ids: Vec::new(),
            attributes: self.source.attributes(0).map(|_| Vec::new()),
            labels: self.source.label(0).map(|_| Vec::new()),
            layouts: (self.config.layouts && self.source.layout(0).is_some()).then(Vec::new),
        };
        let mut cached_epoch = None;
        let mut order = Vec::new();
        for k in b * bs..(b + 1) * bs {
            let (epoch, pos) = (k / n, (k % n) as usize);
            if cached_epoch != Some(epoch) {
                order = self.order(epoch);
                cached_epoch = Some(epoch);
            }
            let index = order[pos];
            let mut rng = derived_rng(self.config.seed, &[epoch, index as u64]);
            let captions = self.source.captions(index);
            let c = rng.random_range(0..captions.len().max(1));
            let caption = captions.get(c).cloned().unwrap_or_default();
            let big = ((size as f32) * (1.0 + self.config.crop)).round() as usize;
            let pixels = self.source.image(index, big)?;
            let (ox, oy) =
                if big > size { (rng.random_range(0..=big - size), rng.random_range(0..=big - size)) } else { (0, 0) };
            let flip = self.config.flip && !mentions_direction(&caption) && rng.random_bool(0.5);
            for ch in 0..channels {
                for y in 0..size {
                    for x in 0..size {
                        let sx = if flip { size - 1 - x } else { x };
                        out.images.push(pixels[ch * big * big + (oy + y) * big + ox + sx] * 2.0 - 1.0);
                    }
                }
            }
            if let (Some(attrs), Some(a)) = (out.attributes.as_mut(), self.source.attributes(index)) {
                attrs.push(a);
            }
            if let (Some(labels), Some(l)) = (out.labels.as_mut(), self.source.label(index)) {
                labels.push(l);
            }
            if let (Some(layouts), Some(l)) = (out.layouts.as_mut(), self.source.layout(index)) {
                let window = l.within([ox as f32 / big as f32, oy as f32 / big as f32, size as f32 / big as f32]);
                layouts.push(if flip { window.flipped() } else { window });
            }
            out.indices.push(index);
            out.captions.push(caption);
            out.caption_ids.push((index, c));
        }
        Ok(out)
    }

    /// Batches `start, start + 1, ...` made on a background thread, `depth` ahead of the consumer.
    pub fn prefetch(self: Arc<Self>, start: u64, depth: usize) -> Receiver<Result<CaptionedBatch, DataError>> {
        let (tx, rx) = sync_channel(depth.max(1));
        std::thread::spawn(move || {
            for b in start.. {
                if tx.send(self.batch(b)).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

/// A class-balanced subset of `source` for semi-supervised training: the indices of `per_class` images
/// of each class, the first of each class in an order shuffled by `seed`, and the number of classes
/// (one more than the largest label). An error when the source has no classes or a class has too few
/// images.
pub fn balanced_subset(
    source: &dyn CaptionedSource,
    per_class: usize,
    seed: u64,
) -> Result<(Vec<usize>, usize), DataError> {
    let labels: Vec<Option<usize>> = (0..source.len()).map(|i| source.label(i)).collect();
    let classes = labels.iter().flatten().max().map_or(0, |m| m + 1);
    if classes == 0 || labels.iter().any(Option::is_none) {
        return Err(DataError::InvalidConfig("a labelled subset needs a dataset whose every image has a class".into()));
    }
    let mut order: Vec<usize> = (0..source.len()).collect();
    order.shuffle(&mut derived_rng(seed, &[]));
    let mut taken = vec![0usize; classes];
    let mut chosen = Vec::with_capacity(per_class * classes);
    for i in order {
        let class = labels[i].unwrap_or(0);
        if taken[class] < per_class {
            taken[class] += 1;
            chosen.push(i);
        }
    }
    if let Some(class) = taken.iter().position(|&n| n < per_class) {
        return Err(DataError::InvalidConfig(format!(
            "class {class} has {} images, fewer than the {per_class} a labelled subset asks for",
            taken[class]
        )));
    }
    chosen.sort_by_key(|&i| (labels[i], i));
    Ok((chosen, classes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::birds::{BirdSplit, Facing};

    fn loader(flip: bool, crop: f32) -> Loader {
        let set = BirdSet { world: SyntheticBirds::new(0, BirdSplit::Train), len: 10 };
        Loader::new(Arc::new(set), LoaderConfig { batch_size: 4, size: 32, seed: 9, crop, flip, layouts: true })
            .unwrap()
    }

    #[test]
    fn batches_are_seeded_cover_each_epoch_and_redraw_captions() {
        let l = loader(false, 0.0);
        let a = l.batch(3).unwrap();
        let b = l.batch(3).unwrap();
        assert_eq!((a.indices.clone(), a.captions.clone(), a.images.clone()), (b.indices, b.captions, b.images));
        assert_eq!(a.images.len(), 4 * 3 * 32 * 32);
        assert!(a.images.iter().all(|v| (-1.0..=1.0).contains(v)));
        // Batches 0..5 hold 20 draws = epochs 0 and 1: each image exactly twice.
        let mut seen = vec![0; 10];
        let mut by_epoch: Vec<Vec<(usize, usize)>> = vec![Vec::new(), Vec::new()];
        for bi in 0..5 {
            let batch = l.batch(bi).unwrap();
            for (j, &(i, c)) in batch.caption_ids.iter().enumerate() {
                seen[i] += 1;
                by_epoch[(bi as usize * 4 + j) / 10].push((i, c));
            }
        }
        assert_eq!(seen, vec![2; 10]);
        by_epoch.iter_mut().for_each(|e| e.sort());
        assert_ne!(by_epoch[0], by_epoch[1], "captions are re-drawn each epoch");
        assert_eq!(a.attributes.unwrap().len(), 4);
    }

    #[test]
    fn flips_never_contradict_a_caption_and_prefetch_matches() {
        let plain = loader(false, 0.0);
        let flipping = loader(true, 0.0);
        let mut flipped = 0;
        for b in 0..25 {
            let (p, f) = (plain.batch(b).unwrap(), flipping.batch(b).unwrap());
            for row in 0..4 {
                let n = 3 * 32 * 32;
                if p.images[row * n..(row + 1) * n] != f.images[row * n..(row + 1) * n] {
                    flipped += 1;
                    assert!(
                        !mentions_direction(&f.captions[row]),
                        "flipped a bird described as facing: {}",
                        f.captions[row]
                    );
                    let facing = f.attributes.as_ref().unwrap()[row].facing;
                    assert!(matches!(facing, Facing::Left | Facing::Right));
                }
            }
        }
        assert!(flipped > 10, "only {flipped} flips");
        let shared = Arc::new(loader(true, 0.125));
        let rx = shared.clone().prefetch(7, 2);
        for b in 7..10 {
            assert_eq!(rx.recv().unwrap().unwrap().images, shared.batch(b).unwrap().images);
        }
    }

    #[test]
    fn layouts_follow_their_rows_crop_and_flip() {
        let (plain, flipping) = (loader(false, 0.0), loader(true, 0.0));
        let mut flipped = 0;
        for b in 0..10 {
            let (p, f) = (plain.batch(b).unwrap(), flipping.batch(b).unwrap());
            let (pl, fl) = (p.layouts.unwrap(), f.layouts.unwrap());
            for row in 0..4 {
                let n = 3 * 32 * 32;
                if p.images[row * n..(row + 1) * n] != f.images[row * n..(row + 1) * n] {
                    flipped += 1;
                    assert_eq!(fl[row], pl[row].flipped());
                } else {
                    assert_eq!(fl[row], pl[row]);
                }
            }
        }
        assert!(flipped > 0);
        // With a crop, the box moves by the window's offset and grows by its scale.
        let cropping = loader(false, 0.25);
        let batch = cropping.batch(0).unwrap();
        let world = SyntheticBirds::new(0, BirdSplit::Train);
        for (row, layout) in batch.layouts.unwrap().iter().enumerate() {
            let whole = world.layout(batch.indices[row] as u64).bbox;
            let scale = 40.0 / 32.0;
            assert!(
                (layout.bbox[2] - whole[2] * scale).abs() < 1e-4
                    || layout.bbox[0] == 0.0
                    || layout.bbox[0] + layout.bbox[2] >= 0.9999
            );
        }
    }

    /// Labels `i % 3` for 12 images, except those listed as missing.
    struct Labelled3(Vec<usize>);
    impl CaptionedSource for Labelled3 {
        fn len(&self) -> usize {
            12
        }
        fn image(&self, _: usize, size: usize) -> Result<Vec<f32>, DataError> {
            Ok(vec![0.0; size * size * 3])
        }
        fn captions(&self, _: usize) -> Vec<String> {
            Vec::new()
        }
        fn label(&self, index: usize) -> Option<usize> {
            (!self.0.contains(&index)).then_some(index % 3)
        }
    }

    #[test]
    fn a_balanced_subset_takes_as_many_of_each_class_and_refuses_what_it_cannot() {
        let (chosen, classes) = balanced_subset(&Labelled3(vec![]), 2, 7).unwrap();
        assert_eq!(classes, 3);
        assert_eq!(chosen.len(), 6);
        let per_class: Vec<usize> = (0..3).map(|c| chosen.iter().filter(|&&i| i % 3 == c).count()).collect();
        assert_eq!(per_class, vec![2, 2, 2]);
        assert!(chosen.windows(2).all(|w| (w[0] % 3, w[0]) < (w[1] % 3, w[1])), "sorted by class: {chosen:?}");
        assert_eq!(balanced_subset(&Labelled3(vec![]), 2, 7).unwrap().0, chosen, "the seed decides");
        assert!(balanced_subset(&Labelled3(vec![]), 5, 7).is_err(), "4 images a class");
        assert!(balanced_subset(&Labelled3(vec![3]), 1, 7).is_err(), "an image without a class");
    }
}
