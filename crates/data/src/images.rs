//! Real images with captions: CUB-200-2011 with the text descriptions of Reed et al., and any folder
//! of `name.jpg|png` + `name.txt`. Images are decoded, cropped and resized on demand; unreadable ones
//! are skipped and counted (or are an error in strict mode).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::layout::ObjectLayout;
use crate::DataError;

/// Where CUB-200-2011 comes from, for error messages.
const CUB_SOURCE: &str = "CUB-200-2011 comes from https://www.vision.caltech.edu/datasets/cub_200_2011/ \
    and its captions (text_c10) from Reed et al., https://github.com/reedscot/icml2016";

/// `(3, size, size)` channel-major values in [0, 1] as interleaved 8-bit RGB rows (for PNGs).
pub fn planes_to_rgb8(planes: &[f32], size: usize) -> Vec<u8> {
    let n = size * size;
    (0..n).flat_map(|i| (0..3).map(move |c| (planes[c * n + i].clamp(0.0, 1.0) * 255.0).round() as u8)).collect()
}

/// One captioned image.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptionedImage {
    /// The image file.
    pub path: PathBuf,
    /// Its captions.
    pub captions: Vec<String>,
    /// Crop box `[x, y, width, height]` in pixels, if any.
    pub bbox: Option<[f32; 4]>,
    /// Class index, where the dataset has classes.
    pub class: Option<usize>,
    /// Part locations in pixels, by [`crate::layout::KEYPOINTS`] position, where the dataset has them
    /// (CUB's `parts/part_locs.txt`).
    pub parts: Option<[Option<[f32; 2]>; 5]>,
}

/// Which CUB images to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CubSplit {
    /// The text-to-image training classes (150, from `trainvalclasses.txt`).
    TextToImageTrain,
    /// The text-to-image test classes (50, from `testclasses.txt`).
    TextToImageTest,
    /// The official image split, training half (`train_test_split.txt`).
    OfficialTrain,
    /// The official image split, test half.
    OfficialTest,
}

/// A list of captioned images with a record of what was skipped.
#[derive(Clone, Debug, Default)]
pub struct ImageSet {
    /// The usable images.
    pub images: Vec<CaptionedImage>,
    /// Files left out and why.
    pub skipped: Vec<(PathBuf, String)>,
}

fn missing(path: &Path, hint: &str) -> DataError {
    DataError::MissingFile { path: path.to_path_buf(), hint: hint.to_string() }
}

fn read_lines(path: &Path, hint: &str) -> Result<Vec<String>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|_| missing(path, hint))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

/// Reads `<id> <rest>` lines into a map.
fn id_map(path: &Path) -> Result<HashMap<u32, String>, DataError> {
    let mut out = HashMap::new();
    for (n, line) in read_lines(path, CUB_SOURCE)?.iter().enumerate() {
        let (id, rest) = line.split_once(' ').ok_or_else(|| DataError::Malformed { path: path.into(), line: n + 1 })?;
        let id = id.parse().map_err(|_| DataError::Malformed { path: path.into(), line: n + 1 })?;
        out.insert(id, rest.trim().to_string());
    }
    Ok(out)
}

/// Part locations in pixels, by [`crate::layout::KEYPOINTS`] position.
type Keypoints = [Option<[f32; 2]>; 5];

/// CUB's part ids (1-based) of [`crate::layout::KEYPOINTS`]: crown, beak, tail, the two wings (their
/// mean where both show), belly.
const CUB_PARTS: [&[usize]; 5] = [&[5], &[2], &[14], &[9, 13], &[3]];

/// The visible keypoints of each image in CUB's `part_locs.txt` (`image part x y visible` lines), in
/// pixels; empty when the file is absent (it is optional: only what-and-where models read it).
fn cub_parts(path: &Path) -> Result<HashMap<u32, Keypoints>, DataError> {
    let mut seen: HashMap<u32, HashMap<usize, [f32; 2]>> = HashMap::new();
    if !path.exists() {
        return Ok(HashMap::new());
    }
    for (n, line) in read_lines(path, CUB_SOURCE)?.iter().enumerate() {
        let v: Vec<f32> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        let [id, part, x, y, visible] = v[..] else {
            return Err(DataError::Malformed { path: path.into(), line: n + 1 });
        };
        if visible > 0.5 {
            seen.entry(id as u32).or_default().insert(part as usize, [x, y]);
        }
    }
    let mean = |points: Vec<[f32; 2]>| {
        (!points.is_empty()).then(|| {
            let n = points.len() as f32;
            [points.iter().map(|p| p[0]).sum::<f32>() / n, points.iter().map(|p| p[1]).sum::<f32>() / n]
        })
    };
    Ok(seen
        .into_iter()
        .map(|(id, parts)| (id, CUB_PARTS.map(|ids| mean(ids.iter().filter_map(|p| parts.get(p).copied()).collect()))))
        .collect())
}

/// The square (clipped to the image) the text-to-image papers crop around a box `[x, y, w, h]` in an
/// image of `width x height` pixels: side 1.5 x max(w, h), centred on the box. `[x1, y1, x2, y2]`.
fn crop_window(bbox: [f32; 4], width: f32, height: f32) -> [f32; 4] {
    let [x, y, bw, bh] = bbox;
    let r = bw.max(bh) * 0.75;
    let (cx, cy) = (x + bw / 2.0, y + bh / 2.0);
    [(cx - r).max(0.0), (cy - r).max(0.0), (cx + r).min(width), (cy + r).min(height)]
}

/// Where the bird of `image` is in the picture [`load_cropped`] makes of it: its box and parts in
/// fractions of the crop window (which is stretched to a square). `None` for an image without a box.
pub fn cropped_layout(image: &CaptionedImage) -> Result<Option<ObjectLayout>, DataError> {
    let Some(bbox) = image.bbox else { return Ok(None) };
    let (w, h) = image::image_dimensions(&image.path)
        .map_err(|e| DataError::BadImage { path: image.path.clone(), reason: e.to_string() })?;
    let [x1, y1, x2, y2] = crop_window(bbox, w as f32, h as f32);
    let to = |[x, y]: [f32; 2]| [(x - x1) / (x2 - x1).max(1.0), (y - y1) / (y2 - y1).max(1.0)];
    let [bx, by, bw, bh] = bbox;
    let (a, b) = (to([bx, by]), to([bx + bw, by + bh]));
    let keypoints = image.parts.unwrap_or([None; 5]).map(|k| k.map(to));
    Ok(Some(ObjectLayout::from_extent([a[0], a[1], b[0], b[1]], keypoints)))
}

/// Finds the caption tree: `text_c10/` or `text/` inside `root`, or beside it.
fn caption_root(root: &Path) -> Option<PathBuf> {
    let parent = root.parent().unwrap_or(root);
    [root.join("text_c10"), root.join("text"), parent.join("text_c10"), parent.join("text")]
        .into_iter()
        .find(|p| p.is_dir())
}

/// Reads CUB-200-2011 at `root` (the folder holding `images.txt`), with captions from `captions`
/// (default: `text_c10/` or `text/` in or beside `root`). Images without a caption file are skipped.
pub fn cub(root: &Path, captions: Option<&Path>, split: CubSplit) -> Result<ImageSet, DataError> {
    let images = id_map(&root.join("images.txt"))?;
    let boxes = id_map(&root.join("bounding_boxes.txt"))?;
    let is_train = id_map(&root.join("train_test_split.txt"))?;
    let part_locations = cub_parts(&root.join("parts/part_locs.txt"))?;
    let text = match captions {
        Some(p) => p.to_path_buf(),
        None => caption_root(root).ok_or_else(|| missing(&root.join("text_c10"), CUB_SOURCE))?,
    };
    let keep_class: Option<Vec<String>> = match split {
        CubSplit::TextToImageTrain => Some(read_lines(&text.join("trainvalclasses.txt"), CUB_SOURCE)?),
        CubSplit::TextToImageTest => Some(read_lines(&text.join("testclasses.txt"), CUB_SOURCE)?),
        _ => None,
    };
    let mut ids: Vec<u32> = images.keys().copied().collect();
    ids.sort_unstable();
    let mut set = ImageSet::default();
    for id in ids {
        let rel = &images[&id];
        let class_dir = rel.split('/').next().unwrap_or_default().to_string();
        let keep = match (split, &keep_class) {
            (_, Some(classes)) => classes.contains(&class_dir),
            (CubSplit::OfficialTrain, None) => is_train.get(&id).is_some_and(|v| v == "1"),
            (_, None) => is_train.get(&id).is_some_and(|v| v == "0"),
        };
        if !keep {
            continue;
        }
        let path = root.join("images").join(rel);
        let caption_file = text.join(Path::new(rel).with_extension("txt"));
        let Ok(lines) = read_lines(&caption_file, "") else {
            set.skipped.push((path, format!("no caption file {}", caption_file.display())));
            continue;
        };
        let bbox = boxes.get(&id).and_then(|b| {
            let v: Vec<f32> = b.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (v.len() == 4).then(|| [v[0], v[1], v[2], v[3]])
        });
        let class = class_dir.split('.').next().and_then(|c| c.parse::<usize>().ok()).map(|c| c - 1);
        let parts = part_locations.get(&id).copied();
        set.images.push(CaptionedImage { path, captions: lines, bbox, class, parts });
    }
    Ok(set)
}

/// The `name.jpg|jpeg|png` files of a folder tree, sorted; `hint` says what the folder should hold
/// when it is missing.
fn list_images(root: &Path, hint: &str) -> Result<Vec<PathBuf>, DataError> {
    if !root.is_dir() {
        return Err(missing(root, hint));
    }
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| DataError::Io { path: dir.clone(), reason: e.to_string() })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()))
            {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a folder tree of `name.jpg|jpeg|png` images, each with `name.txt` holding one caption per
/// line. Images without captions are skipped and recorded.
pub fn image_folder(root: &Path) -> Result<ImageSet, DataError> {
    let files = list_images(root, "an image folder holds name.jpg or name.png files, each with name.txt captions")?;
    let mut set = ImageSet::default();
    for path in files {
        match read_lines(&path.with_extension("txt"), "") {
            Ok(captions) if !captions.is_empty() => {
                set.images.push(CaptionedImage { path, captions, bbox: None, class: None, parts: None })
            }
            _ => set.skipped.push((path.clone(), "no captions (name.txt) beside it".into())),
        }
    }
    if set.images.is_empty() {
        return Err(missing(root, "no captioned images found: each name.jpg|png needs a name.txt beside it"));
    }
    Ok(set)
}

/// Reads a folder tree of `name.jpg|jpeg|png` images without captions (one domain of unpaired
/// translation). Files whose header cannot be read as an image are skipped and recorded.
pub fn uncaptioned_folder(root: &Path) -> Result<ImageSet, DataError> {
    let mut set = ImageSet::default();
    for path in list_images(root, "a domain folder holds name.jpg or name.png images")? {
        match image::image_dimensions(&path) {
            Ok((w, h)) if w > 0 && h > 0 => {
                set.images.push(CaptionedImage { path, captions: Vec::new(), bbox: None, class: None, parts: None })
            }
            Ok(_) => set.skipped.push((path, "an empty image".into())),
            Err(e) => set.skipped.push((path, format!("unreadable: {e}"))),
        }
    }
    if set.images.is_empty() {
        return Err(missing(root, "no readable name.jpg|png images found in it"));
    }
    Ok(set)
}

/// Decodes an image, crops it around its box as the text-to-image papers do (a square of side
/// 1.5 x max(width, height) centred on the box, clipped to the image), and resizes it to
/// `size` x `size`. Returns `(3, size, size)` RGB values in [0, 1].
pub fn load_cropped(image: &CaptionedImage, size: usize) -> Result<Vec<f32>, DataError> {
    let img = image::open(&image.path)
        .map_err(|e| DataError::BadImage { path: image.path.clone(), reason: e.to_string() })?
        .to_rgb8();
    let (w, h) = (img.width() as f32, img.height() as f32);
    let img = match image.bbox {
        Some(bbox) => {
            let [x1, y1, x2, y2] = crop_window(bbox, w, h);
            if x2 - x1 < 1.0 || y2 - y1 < 1.0 {
                return Err(DataError::BadImage {
                    path: image.path.clone(),
                    reason: "bounding box outside the image".into(),
                });
            }
            image::imageops::crop_imm(&img, x1 as u32, y1 as u32, (x2 - x1) as u32, (y2 - y1) as u32).to_image()
        }
        None => img,
    };
    let img = image::imageops::resize(&img, size as u32, size as u32, FilterType::Triangle);
    let n = size * size;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = p.0[c] as f32 / 255.0;
        }
    }
    Ok(out)
}

/// Decodes the image file at `path` and resizes it to `size` x `size` with `channels` planes (1: grey,
/// 3: RGB): `(channels, size, size)` values in [0, 1], as datasets give them.
pub fn load_image(path: &Path, channels: usize, size: usize) -> Result<Vec<f32>, DataError> {
    let img = image::open(path).map_err(|e| DataError::BadImage { path: path.into(), reason: e.to_string() })?;
    planes(&img, path, channels, size)
}

/// [`load_image`] of the image's centred square (the middle of a wide or tall picture, uncropped
/// otherwise), so that nothing is squashed.
pub fn load_centre_square(path: &Path, channels: usize, size: usize) -> Result<Vec<f32>, DataError> {
    let img = image::open(path).map_err(|e| DataError::BadImage { path: path.into(), reason: e.to_string() })?;
    let side = img.width().min(img.height());
    if side == 0 {
        return Err(DataError::BadImage { path: path.into(), reason: "an empty image".into() });
    }
    let square = img.crop_imm((img.width() - side) / 2, (img.height() - side) / 2, side, side);
    planes(&square, path, channels, size)
}

/// `img` resized to `size` x `size` as `channels` planes (1: grey, 3: RGB) of values in [0, 1];
/// `path` names it in errors.
fn planes(img: &image::DynamicImage, path: &Path, channels: usize, size: usize) -> Result<Vec<f32>, DataError> {
    let (s, n) = (size as u32, size * size);
    match channels {
        1 => {
            let grey = image::imageops::resize(&img.to_luma8(), s, s, FilterType::Triangle);
            Ok(grey.into_raw().into_iter().map(|v| v as f32 / 255.0).collect())
        }
        3 => {
            let rgb = image::imageops::resize(&img.to_rgb8(), s, s, FilterType::Triangle);
            let mut out = vec![0f32; 3 * n];
            for (i, p) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    out[c * n + i] = p.0[c] as f32 / 255.0;
                }
            }
            Ok(out)
        }
        other => Err(DataError::BadImage {
            path: path.into(),
            reason: format!("cannot read an image into {other} channels (1 or 3)"),
        }),
    }
}

/// Decodes every image once, keeping those that load: in strict mode the first failure is an error;
/// otherwise failures move to `skipped` (with the reason) and a count is logged at the end.
pub fn load_all(set: &mut ImageSet, size: usize, strict: bool) -> Result<Vec<Vec<f32>>, DataError> {
    let mut pixels = Vec::with_capacity(set.images.len());
    let mut kept = Vec::with_capacity(set.images.len());
    for image in std::mem::take(&mut set.images) {
        match load_cropped(&image, size) {
            Ok(p) => {
                pixels.push(p);
                kept.push(image);
            }
            Err(e) if strict => return Err(e),
            Err(e) => set.skipped.push((image.path.clone(), e.to_string())),
        }
    }
    set.images = kept;
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_file_loads_grey_or_rgb_at_any_size_and_garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("white-left.png");
        // 4x4: white left half, black right half.
        let img = image::GrayImage::from_fn(4, 4, |x, _| image::Luma([if x < 2 { 255 } else { 0 }]));
        img.save(&path).unwrap();
        let grey = load_image(&path, 1, 2).unwrap();
        assert_eq!(grey.len(), 4);
        assert!(grey[0] > 0.8 && grey[1] < 0.2 && grey[0] == grey[2], "{grey:?}");
        let rgb = load_image(&path, 3, 4).unwrap();
        assert_eq!(rgb.len(), 3 * 16);
        assert_eq!((rgb[0], rgb[16], rgb[32], rgb[3]), (1.0, 1.0, 1.0, 0.0));
        let garbage = dir.path().join("garbage.png");
        std::fs::write(&garbage, b"not an image").unwrap();
        let err = load_image(&garbage, 1, 28).unwrap_err().to_string();
        assert!(err.contains("garbage.png"), "{err}");
        assert!(load_image(&path, 2, 4).is_err());
    }
}
