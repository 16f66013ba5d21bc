//! The held-out synonym split: prompts that name a bird's body colour with a word the training
//! captions never use ("a crimson-coloured bird", "a bird with navy plumage all over"), in sentence shapes the caption
//! templates do not have. It measures whether a text-to-image model follows colour words it was not
//! trained on, which depends on the text encoder and on caption augmentation, not on the images.

use super::attributes::Colour;
use super::captions::with_articles;

/// Colour words absent from every training caption, three for each body colour: names of shades
/// an English speaker would read as that colour.
pub fn synonyms(colour: Colour) -> [&'static str; 3] {
    match colour {
        Colour::Red => ["crimson", "scarlet", "ruby"],
        Colour::Blue => ["navy", "azure", "cobalt"],
        Colour::Yellow => ["golden", "lemon", "canary"],
        Colour::Black => ["ebony", "jet", "inky"],
        Colour::White => ["snowy", "ivory", "pearly"],
        Colour::Brown => ["chestnut", "chocolate", "cinnamon"],
        Colour::Grey => ["slate", "ashen", "silvery"],
        Colour::Green => ["emerald", "jade", "lime"],
        Colour::Orange => ["tangerine", "amber", "pumpkin"],
    }
}

/// Sentence shapes absent from the caption templates, each naming only the body colour (`{c}`).
pub const SHAPES: [&str; 3] = ["a {c}-coloured bird", "a bird with {c} plumage all over", "picture a {c} songbird"];

/// The prompts of one synonym: `word` in each shape.
pub fn prompts_for(word: &str) -> Vec<String> {
    SHAPES.iter().map(|shape| with_articles(&shape.replace("{c}", word))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::birds::{BirdSplit, SyntheticBirds, TEMPLATES};

    /// Every prompt of the split for `colour`: each synonym in each shape.
    fn synonym_prompts(colour: Colour) -> Vec<String> {
        synonyms(colour).iter().flat_map(|word| prompts_for(word)).collect()
    }

    /// The words of a text, lower-cased, without punctuation.
    fn words(text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    }

    #[test]
    fn no_synonym_or_shape_appears_in_the_training_captions() {
        let synonyms: Vec<&str> = Colour::ALL.iter().flat_map(|&c| synonyms(c)).collect();
        assert_eq!(synonyms.len(), 27);
        let mut seen = std::collections::BTreeSet::new();
        for s in &synonyms {
            assert!(seen.insert(*s), "{s} names two colours");
            assert!(Colour::ALL.iter().all(|c| c.word() != *s), "{s} is a caption colour word");
        }
        let world = SyntheticBirds::new(0, BirdSplit::Train);
        let mut captions = 0;
        for i in 0..2000 {
            for caption in world.captions(i) {
                let w = words(&caption.text);
                if let Some(s) = synonyms.iter().find(|s| w.iter().any(|x| x == *s)) {
                    panic!("training caption {:?} uses the held-out word {s}", caption.text);
                }
                captions += 1;
            }
        }
        assert!(captions > 4000, "{captions}");
        for t in TEMPLATES.iter() {
            assert!(synonyms.iter().all(|s| !words(t.text).contains(&s.to_string())), "{}", t.text);
            for shape in SHAPES {
                let stem = shape.replace("{c}", "").replace("  ", " ");
                assert!(!t.text.contains(stem.trim()), "template {:?} has the shape {shape:?}", t.text);
            }
        }
    }

    #[test]
    fn each_colour_has_nine_prompts_with_the_right_articles() {
        let red = synonym_prompts(Colour::Red);
        assert_eq!(red.len(), 9);
        assert_eq!(red[0], "a crimson-coloured bird");
        assert!(synonym_prompts(Colour::Orange).contains(&"an amber-coloured bird".to_string()));
        assert!(synonym_prompts(Colour::White).contains(&"picture an ivory songbird".to_string()));
    }
}
