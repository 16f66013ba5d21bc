//! Does a text-to-bird generator draw the colour it is asked for? For each body colour of the
//! synthetic birds, the prompt "a {colour} bird" gives `n` images; each image's bird pixels are found
//! and their mean colour is matched to the nearest colour of the renderer's table
//! ([`condor_data::birds::bird_colour_name`]).

use condor_data::birds::synonyms::{prompts_for, synonyms, SHAPES};
use condor_data::birds::{bird_colour_name, colour_prompt, Colour};
use condor_infer::{StyleOptions, TextToImage};

use crate::error::Result;

/// The outcome for one asked-for colour.
#[derive(Clone, Debug, PartialEq)]
pub struct ColourScore {
    /// The colour named in the prompt.
    pub colour: Colour,
    /// The prompt used.
    pub prompt: String,
    /// Images drawn.
    pub total: usize,
    /// Images in which a bird was found at all.
    pub found: usize,
    /// Images whose bird is nearest to the asked colour.
    pub correct: usize,
    /// The other colours the found birds were nearest to, with how many images each, most first.
    pub mistaken_for: Vec<(Colour, usize)>,
}

/// Scores for every body colour.
#[derive(Clone, Debug, PartialEq)]
pub struct ColourReport {
    /// One entry per colour of [`Colour::ALL`].
    pub per_colour: Vec<ColourScore>,
}

impl ColourReport {
    /// Fraction of all images whose bird has the asked colour.
    pub fn accuracy(&self) -> f64 {
        let total: usize = self.per_colour.iter().map(|s| s.total).sum();
        let correct: usize = self.per_colour.iter().map(|s| s.correct).sum();
        correct as f64 / total.max(1) as f64
    }

    /// A Markdown table: prompt, images, birds found, right colour, and what the others looked like.
    pub fn to_markdown(&self) -> String {
        let mut out =
            String::from("| prompt | images | bird found | right colour | mistaken for |\n|---|---|---|---|---|\n");
        for s in &self.per_colour {
            let mistaken: Vec<String> = s.mistaken_for.iter().map(|(c, k)| format!("{} {k}", c.word())).collect();
            out += &format!("| {} | {} | {} | {} | {} |\n", s.prompt, s.total, s.found, s.correct, mistaken.join(", "));
        }
        out += &format!("| **all** | | | **{:.1}%** | |\n", 100.0 * self.accuracy());
        out
    }
}

/// Draws `n` images for each colour prompt (latent codes from `seed`, the same for every prompt; style
/// options for style-based generators) and scores their colours.
pub fn colour_accuracy(model: &TextToImage, n: usize, seed: u64, options: &StyleOptions) -> Result<ColourReport> {
    let groups = Colour::ALL.iter().map(|&c| (c, colour_prompt(c), vec![colour_prompt(c)])).collect();
    score_groups(model, groups, n, seed, options)
}

/// The held-out synonym split ([`condor_data::birds::synonyms`]): for each colour word the training
/// captions never use ("crimson", "navy"), `n` images for each of its sentence shapes, scored by the
/// body colour drawn. One row per synonym.
pub fn synonym_accuracy(model: &TextToImage, n: usize, seed: u64, options: &StyleOptions) -> Result<ColourReport> {
    let groups = Colour::ALL
        .iter()
        .flat_map(|&colour| {
            synonyms(colour)
                .into_iter()
                .map(move |word| (colour, format!("{word} ({} shapes)", SHAPES.len()), prompts_for(word)))
        })
        .collect();
    score_groups(model, groups, n, seed, options)
}

/// Draws `n` images for every prompt of every group (one batch, the same latent codes for every
/// prompt) and scores each group's images against its colour.
fn score_groups(
    model: &TextToImage,
    groups: Vec<(Colour, String, Vec<String>)>,
    n: usize,
    seed: u64,
    options: &StyleOptions,
) -> Result<ColourReport> {
    let prompts: Vec<String> = groups.iter().flat_map(|(_, _, p)| p.iter().cloned()).collect();
    let drawn = model.generate(&prompts, n, seed, options)?;
    let (_, _, size, _) = drawn.images.dims4()?;
    let unit = ((drawn.images.to_dtype(candle_core::DType::F32)? + 1.0)? * 0.5)?.clamp(0.0, 1.0)?;
    let per = 3 * size * size;
    let flat: Vec<f32> = unit.flatten_all()?.to_vec1()?;
    let mut first = 0;
    let per_colour = groups
        .into_iter()
        .map(|(colour, prompt, group)| {
            let images = first..first + group.len() * n;
            first = images.end;
            let seen: Vec<Option<Colour>> =
                images.map(|i| bird_colour_name(&flat[i * per..(i + 1) * per], size)).collect();
            ColourScore {
                colour,
                prompt,
                total: seen.len(),
                found: seen.iter().filter(|c| c.is_some()).count(),
                correct: seen.iter().filter(|&&c| c == Some(colour)).count(),
                mistaken_for: mistakes(colour, &seen),
            }
        })
        .collect();
    Ok(ColourReport { per_colour })
}

/// How often each colour other than `asked` was seen, most first (ties in table order).
fn mistakes(asked: Colour, seen: &[Option<Colour>]) -> Vec<(Colour, usize)> {
    let mut counts: Vec<(Colour, usize)> = Colour::ALL
        .iter()
        .filter(|&&c| c != asked)
        .map(|&c| (c, seen.iter().filter(|&&s| s == Some(c)).count()))
        .filter(|&(_, k)| k > 0)
        .collect();
    counts.sort_by_key(|&(_, k)| std::cmp::Reverse(k));
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistakes_count_other_colours_most_first() {
        let (r, b, o) = (Some(Colour::Red), Some(Colour::Brown), Some(Colour::Orange));
        let seen = [r, b, None, o, b, r, b];
        assert_eq!(mistakes(Colour::Red, &seen), vec![(Colour::Brown, 3), (Colour::Orange, 1)]);
        assert_eq!(mistakes(Colour::Brown, &seen), vec![(Colour::Red, 2), (Colour::Orange, 1)]);
        assert!(mistakes(Colour::Red, &[r, None]).is_empty());
    }

    #[test]
    fn markdown_lists_the_mistakes() {
        let score = ColourScore {
            colour: Colour::Red,
            prompt: "a red bird".into(),
            total: 4,
            found: 3,
            correct: 1,
            mistaken_for: vec![(Colour::Brown, 2)],
        };
        let md = ColourReport { per_colour: vec![score] }.to_markdown();
        assert!(md.contains("| a red bird | 4 | 3 | 1 | brown 2 |"), "{md}");
        assert!(md.contains("**25.0%**"), "{md}");
    }
}
