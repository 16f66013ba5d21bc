//! Does a text-to-digit generator draw the digit it is asked for? Every caption phrasing of every
//! digit (seen in training or held out, [`condor_data::mnist::PHRASINGS`]) gives `n` images; a CNN
//! judge trained on real digits ([`condor_metrics::digits::DigitClassifier`]) reads them. The judge
//! must first reach [`JUDGE_MIN_ACCURACY`] on the real test digits. Diversity within a class is the
//! mean pairwise pixel distance of the generated digits, next to that of the real test digits.

use candle_core::{DType, Device, Tensor};
use condor_data::loader::CaptionedSource;
use condor_data::mnist::DigitSet;
use condor_data::mnist::{digit_captions, Digits, MnistSplit, Phrasings, PHRASINGS};
use condor_data::stacked_mnist::{mode_of, StackedDigits, MODES};
use condor_metrics::digits::{frechet_digit_distance, mean_pairwise_distance, DigitClassifier, SIDE};
use condor_metrics::mode_histogram::{mode_histogram, ModeHistogram};
use std::path::Path;

use condor_core::Generator;
use condor_infer::TextToImage;

use crate::error::{EvalError, Result};

/// The accuracy on real test digits a judge needs before its verdicts count.
pub const JUDGE_MIN_ACCURACY: f64 = 0.98;

/// The outcome for one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptScore {
    /// The digit asked for.
    pub digit: usize,
    /// The prompt.
    pub prompt: String,
    /// Its phrasing's template (from [`PHRASINGS`]).
    pub phrasing: &'static str,
    /// Whether the phrasing was held out of training.
    pub held_out: bool,
    /// Images drawn.
    pub total: usize,
    /// Images the judge reads as the asked digit.
    pub correct: usize,
}

/// Spread of the images of one digit.
#[derive(Clone, Debug, PartialEq)]
pub struct Diversity {
    /// The digit.
    pub digit: usize,
    /// Mean pairwise distance (pixels in [0, 1]) among generated images for "a handwritten {digit}".
    pub generated: f64,
    /// The same among the real test digits of that class.
    pub real: f64,
}

/// Scores of a text-to-digit generator.
#[derive(Clone, Debug, PartialEq)]
pub struct DigitReport {
    /// The judge's accuracy on the real test digits.
    pub judge_accuracy: f64,
    /// One entry per (digit, phrasing).
    pub per_prompt: Vec<PromptScore>,
    /// One entry per digit.
    pub diversity: Vec<Diversity>,
}

impl DigitReport {
    /// Share of images read as the asked digit, over seen (`false`) or held-out (`true`) phrasings.
    pub fn accuracy(&self, held_out: bool) -> f64 {
        let chosen = self.per_prompt.iter().filter(|s| s.held_out == held_out);
        let (total, correct) = chosen.fold((0, 0), |(t, c), s| (t + s.total, c + s.correct));
        correct as f64 / total.max(1) as f64
    }

    /// Share of images read as the asked digit, per digit, over the phrasings of one kind.
    pub fn accuracy_of(&self, digit: usize, held_out: bool) -> f64 {
        let chosen = self.per_prompt.iter().filter(|s| s.held_out == held_out && s.digit == digit);
        let (total, correct) = chosen.fold((0, 0), |(t, c), s| (t + s.total, c + s.correct));
        correct as f64 / total.max(1) as f64
    }

    /// Markdown tables: per digit, accuracy on seen and held-out phrasings and diversity; then per
    /// phrasing.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("Judge accuracy on real test digits: {:.2}%\n\n", 100.0 * self.judge_accuracy);
        out += "| digit | seen phrasings | held-out phrasings | diversity generated / real |\n|---|---|---|---|\n";
        for d in &self.diversity {
            out += &format!(
                "| {} | {:.1}% | {:.1}% | {:.2} / {:.2} |\n",
                d.digit,
                100.0 * self.accuracy_of(d.digit, false),
                100.0 * self.accuracy_of(d.digit, true),
                d.generated,
                d.real
            );
        }
        out += &format!(
            "| **all** | **{:.1}%** | **{:.1}%** | |\n\n",
            100.0 * self.accuracy(false),
            100.0 * self.accuracy(true)
        );
        out += "| phrasing | held out | right digit |\n|---|---|---|\n";
        for (t, held_out) in PHRASINGS {
            let chosen = self.per_prompt.iter().filter(|s| s.phrasing == t);
            let (total, correct) = chosen.fold((0, 0), |(a, b), s| (a + s.total, b + s.correct));
            out += &format!("| {t} | {} | {:.1}% |\n", if held_out { "yes" } else { "no" }, pct(correct, total));
        }
        out
    }
}

fn pct(a: usize, b: usize) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

/// Generated or real digit images as the judge's input: `(N, 1, 28, 28)` in [-1, 1]. 32 px images (the
/// DCGAN's, digits padded by 2) are cropped back to 28.
pub fn judge_input(images: &Tensor) -> Result<Tensor> {
    let (_, c, h, w) = images.dims4()?;
    if c != 1 || h != w || h < SIDE {
        return Err(EvalError::Invalid(format!("expected grey digits of 28 px or more, got {:?}", images.dims())));
    }
    let o = (h - SIDE) / 2;
    Ok(images.to_dtype(DType::F32)?.narrow(2, o, SIDE)?.narrow(3, o, SIDE)?.contiguous()?)
}

/// Real digits as `(N, 1, 28, 28)` in [-1, 1] with their labels.
pub fn digits_tensor(digits: &Digits, device: &Device) -> Result<(Tensor, Vec<usize>)> {
    let v: Vec<f32> = digits.pixels.iter().map(|&b| b as f32 / 127.5 - 1.0).collect();
    let x = Tensor::from_vec(v, (digits.len(), 1, digits.rows, digits.cols), device)?;
    Ok((x, digits.labels.iter().map(|&l| l as usize).collect()))
}

/// `n` of `digits` (at most all) spread evenly over the set, which comes class by class: real digits
/// to score as a generator's samples are, for the floor of a figure such as the FID.
pub fn evenly_spaced(digits: &Digits, n: usize, device: &Device) -> Result<Tensor> {
    let (all, _) = digits_tensor(digits, device)?;
    let total = digits.len();
    let n = n.min(total);
    let ids: Vec<u32> = (0..n).map(|i| (i * total / n.max(1)) as u32).collect();
    Ok(all.index_select(&Tensor::new(ids.as_slice(), device)?, 0)?)
}

/// Mean pairwise distance of images in [-1, 1], measured on pixels in [0, 1].
fn spread(x: &Tensor) -> Result<f64> {
    Ok(mean_pairwise_distance(&((x + 1.0)? * 0.5)?)?)
}

/// A digit classifier that has read the real test digits well enough ([`JUDGE_MIN_ACCURACY`]) to judge
/// generated ones, with those digits kept for the real side of the diversity figures.
pub struct Judge {
    classifier: DigitClassifier,
    accuracy: f64,
    real: Tensor,
    labels: Vec<usize>,
}

impl Judge {
    /// Checks `classifier` on `test`: an error when its accuracy is below [`JUDGE_MIN_ACCURACY`].
    pub fn check(classifier: DigitClassifier, test: &Digits, device: &Device) -> Result<Self> {
        let (real, labels) = digits_tensor(test, device)?;
        let accuracy = classifier.accuracy(&real, &labels)?;
        if accuracy < JUDGE_MIN_ACCURACY {
            return Err(EvalError::Invalid(format!(
                "the digit judge reads {:.2}% of the real test digits right, below the {:.0}% it needs to judge",
                100.0 * accuracy,
                100.0 * JUDGE_MIN_ACCURACY
            )));
        }
        Ok(Self { classifier, accuracy, real, labels })
    }

    /// The judge saved at `path` (by `condor mnist judge`), checked on the test digits of the MNIST
    /// folder `data`.
    pub fn load(path: &Path, data: &Path, device: &Device) -> Result<Self> {
        let test = Digits::open(data, MnistSplit::Test)?;
        let classifier = DigitClassifier::load(path, device).map_err(|e| {
            EvalError::Invalid(format!(
                "loading the digit judge {}: {e} (train it with `just mnist-judge`)",
                path.display()
            ))
        })?;
        Self::check(classifier, &test, device)
    }

    /// Its accuracy on the real test digits.
    pub fn accuracy(&self) -> f64 {
        self.accuracy
    }

    /// The Fréchet distance in its features between `images` and the real test digits (an MNIST FID).
    pub fn fid(&self, images: &Tensor) -> Result<f64> {
        Ok(frechet_digit_distance(&self.classifier, &judge_input(images)?, &self.real)?)
    }

    /// The share of `images` (generated or reconstructed digits) it reads as their `labels`.
    pub fn agreement(&self, images: &Tensor, labels: &[usize]) -> Result<f64> {
        Ok(self.classifier.accuracy(&judge_input(images)?, labels)?)
    }
}

/// Draws `n` images for every phrasing of every digit (latent codes from `seed`, the same for every
/// prompt), and scores them with `judge`.
pub fn digit_accuracy(model: &TextToImage, judge: &Judge, n: usize, seed: u64) -> Result<DigitReport> {
    let device = model.device();
    let mut per_prompt = Vec::new();
    let mut diversity = Vec::new();
    for digit in 0..10 {
        let prompts = digit_captions(digit, Phrasings::All);
        let drawn = judge_input(&model.generate(&prompts, n, seed, &Default::default())?.images)?;
        let predicted = judge.classifier.predict(&drawn)?;
        for (p, (prompt, (phrasing, held_out))) in prompts.into_iter().zip(PHRASINGS).enumerate() {
            let correct = predicted[p * n..(p + 1) * n].iter().filter(|&&d| d == digit).count();
            per_prompt.push(PromptScore { digit, prompt, phrasing, held_out, total: n, correct });
        }
        let of_class: Vec<u32> =
            (0..judge.labels.len()).filter(|&i| judge.labels[i] == digit).map(|i| i as u32).collect();
        let ids = Tensor::new(of_class.as_slice(), device)?;
        diversity.push(Diversity {
            digit,
            generated: spread(&drawn.narrow(0, 0, n)?)?,
            real: spread(&judge.real.index_select(&ids, 0)?)?,
        });
    }
    Ok(DigitReport { judge_accuracy: judge.accuracy, per_prompt, diversity })
}

/// What an unconditional digit generator draws: how many of `n` samples the judge reads as each digit,
/// and their spread.
#[derive(Clone, Debug, PartialEq)]
pub struct CoverageReport {
    /// The judge's accuracy on the real test digits.
    pub judge_accuracy: f64,
    /// Samples read as each digit.
    pub per_digit: [usize; 10],
    /// Mean pairwise distance (pixels in [0, 1]) among the samples.
    pub generated: f64,
    /// The same among all real test digits.
    pub real: f64,
    /// Real test digits the FID compares with.
    pub real_count: usize,
    /// The Fréchet distance in the judge's features between the samples and the real test digits (an
    /// MNIST FID: lower is sharper and more varied; comparable at one `n`).
    pub fid: f64,
}

impl CoverageReport {
    /// A Markdown table of the digits drawn.
    pub fn to_markdown(&self) -> String {
        let n: usize = self.per_digit.iter().sum();
        let mut out = format!("Judge accuracy on real test digits: {:.2}%\n\n", 100.0 * self.judge_accuracy);
        out += "| digit | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |\n|---|---|---|---|---|---|---|---|---|---|---|\n| share |";
        for c in self.per_digit {
            out += &format!(" {:.1}% |", pct(c, n));
        }
        out += &format!(
            "\n\nDiversity (mean pairwise distance): generated {:.2}, real {:.2}\n\nFID in the judge's features against the {} test digits: {:.2} ({n} samples)\n",
            self.generated, self.real, self.real_count, self.fid
        );
        out
    }
}

/// Draws `n` samples from an unconditional generator (latent codes from `seed`) and counts the digits
/// the judge sees in them: the digit version of mode coverage.
pub fn digit_coverage(model: &TextToImage, judge: &Judge, n: usize, seed: u64) -> Result<CoverageReport> {
    let mut rng = condor_core::rng::Stream::FixedNoise(Some(2)).rng(seed);
    let drawn = judge_input(&condor_infer::sample::generate(model.generator(), n, None, &mut rng, model.device())?)?;
    let mut per_digit = [0; 10];
    for d in judge.classifier.predict(&drawn)? {
        per_digit[d] += 1;
    }
    Ok(CoverageReport {
        judge_accuracy: judge.accuracy,
        per_digit,
        generated: spread(&drawn)?,
        real: spread(&judge.real)?,
        real_count: judge.real.dim(0)?,
        fid: judge.fid(&drawn)?,
    })
}

/// Samples drawn and judged at a time.
const CHUNK: usize = 1000;

/// The Stacked MNIST modes an unconditional generator of 3-channel digits reaches: `n` samples (latent
/// codes from `seed`), each channel read by the judge, the three digits making the sample's mode.
pub fn stacked_modes(model: &TextToImage, judge: &Judge, n: usize, seed: u64) -> Result<ModeHistogram> {
    generator_stacked_modes(model.generator(), model.device(), judge, n, seed)
}

/// [`stacked_modes`] of a generator that is not (yet) a loaded model, such as a trainer's.
pub fn generator_stacked_modes(
    g: &dyn Generator,
    device: &Device,
    judge: &Judge,
    n: usize,
    seed: u64,
) -> Result<ModeHistogram> {
    let mut rng = condor_core::rng::Stream::FixedNoise(Some(2)).rng(seed);
    let mut modes = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        let drawn = condor_infer::sample::generate(g, CHUNK.min(n - start), None, &mut rng, device)?;
        modes.extend(judge.stacked_modes_of(&drawn)?);
    }
    Ok(mode_histogram(&modes, MODES))
}

/// The same figures for `n` real triples of `digits` (drawn by `seed`): the floor a generator's
/// figures are read against, which the judge's own mistakes and the sample size set.
pub fn real_stacked_modes(judge: &Judge, digits: Digits, n: usize, seed: u64) -> Result<ModeHistogram> {
    let set = StackedDigits::new(DigitSet { digits, phrasings: Phrasings::Seen, limit: None }, n, seed)?;
    let device = judge.real.device().clone();
    let mut modes = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        let count = CHUNK.min(n - start);
        let pixels =
            (start..start + count).map(|i| set.image(i, SIDE)).collect::<std::result::Result<Vec<_>, _>>()?.concat();
        let images = ((Tensor::from_vec(pixels, (count, 3, SIDE, SIDE), &device)? * 2.0)? - 1.0)?;
        modes.extend(judge.stacked_modes_of(&images)?);
    }
    Ok(mode_histogram(&modes, MODES))
}

impl Judge {
    /// The Stacked MNIST mode of each of `images` `(N, 3, H, W)`: the digits it reads in the red,
    /// green and blue channels.
    fn stacked_modes_of(&self, images: &Tensor) -> Result<Vec<usize>> {
        if images.dims().get(1) != Some(&3) {
            return Err(EvalError::Invalid(format!(
                "Stacked MNIST samples have 3 channels (one digit each), not shape {:?}",
                images.dims()
            )));
        }
        let read = (0..3)
            .map(|c| Ok(self.classifier.predict(&judge_input(&images.narrow(1, c, 1)?)?)?))
            .collect::<Result<Vec<_>>>()?;
        Ok((0..read[0].len()).map(|i| mode_of([read[0][i], read[1][i], read[2][i]])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_split_seen_and_held_out_phrasings() {
        let mut per_prompt = Vec::new();
        for digit in 0..10 {
            for (prompt, (phrasing, held_out)) in digit_captions(digit, Phrasings::All).into_iter().zip(PHRASINGS) {
                // Seen phrasings: 9 of 10 right; held out: 5 of 10, but all of them for digit 0.
                let correct = if !held_out {
                    9
                } else if digit == 0 {
                    10
                } else {
                    5
                };
                per_prompt.push(PromptScore { digit, prompt, phrasing, held_out, total: 10, correct });
            }
        }
        let diversity = (0..10).map(|digit| Diversity { digit, generated: 9.0, real: 10.0 }).collect();
        let report = DigitReport { judge_accuracy: 0.99, per_prompt, diversity };
        assert!((report.accuracy(false) - 0.9).abs() < 1e-12);
        // Held out: digit 0 all right, the other nine half right: (1 + 9 * 0.5) / 10.
        assert!((report.accuracy(true) - 0.55).abs() < 1e-12);
        assert_eq!(report.accuracy_of(0, true), 1.0);
        let md = report.to_markdown();
        assert!(md.contains("| **all** | **90.0%** | **55.0%** | |"), "{md}");
        assert!(md.contains("| number {w} written by hand | yes | 55.0% |"), "{md}");
    }

    #[test]
    fn dcgan_digits_are_cropped_back_to_28_and_colour_is_refused() {
        let x = Tensor::arange(0f32, 2.0 * 32.0 * 32.0, &Device::Cpu).unwrap().reshape((2, 1, 32, 32)).unwrap();
        let c = judge_input(&x).unwrap();
        assert_eq!(c.dims(), &[2, 1, 28, 28]);
        let v: Vec<f32> = c.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!((v[0], v[27], v[28]), ((2 * 32 + 2) as f32, (2 * 32 + 29) as f32, (3 * 32 + 2) as f32));
        assert!(judge_input(&Tensor::zeros((1, 3, 28, 28), DType::F32, &Device::Cpu).unwrap()).is_err());
    }
}
