//! CUB-style captions written from a bird's attributes: many phrasings, most naming only some
//! attributes, every named attribute true of the image. Some phrasings are held out of training.

use condor_core::Rng;
use rand::seq::SliceRandom;

use super::attributes::{Background, Beak, BirdAttributes, Colour, Facing, Pose, Size};
use super::render::Part;

/// A caption and the colour claims it makes (which part is which colour).
#[derive(Clone, Debug, PartialEq)]
pub struct Caption {
    /// The text.
    pub text: String,
    /// The template it came from (an index into [`TEMPLATES`]).
    pub template: usize,
    /// Each colour word in the caption and the part it describes.
    pub mentions: Vec<(Part, Colour)>,
}

/// A caption template: `{body}`, `{wing}`, `{head}`, `{belly}` (colours), `{size}`, `{beak}`,
/// `{pose}`, `{bg}`, `{facing}`; `needs` says when it can describe a bird truthfully.
pub struct Template {
    /// The text with slots.
    pub text: &'static str,
    /// True for phrasings kept out of training.
    pub held_out: bool,
    needs: fn(&BirdAttributes) -> bool,
}

fn always(_: &BirdAttributes) -> bool {
    true
}

const fn t(text: &'static str) -> Template {
    Template { text, held_out: false, needs: always }
}

/// A phrasing whose only colour word is the body's, read as the bird's overall colour ("a red bird"):
/// used only for birds that are mostly that colour.
const fn main_colour(text: &'static str) -> Template {
    Template { text, held_out: false, needs: BirdAttributes::mostly_body_colour }
}

const fn held(text: &'static str) -> Template {
    Template { text, held_out: true, needs: always }
}

/// All caption templates; those with `held_out` are used only by the held-out-phrasing split.
pub const TEMPLATES: [Template; 26] = [
    t("a {body} bird with {wing} wings"),
    t("this bird has a {head} crown and {wing} wings"),
    main_colour("a {size} {body} bird with a {beak} beak"),
    t("this bird is mostly {body} with a {belly} belly"),
    t("a {size} bird with a {head} head and a {belly} breast"),
    t("the bird has {wing} wings, a {body} body and a {beak} beak"),
    main_colour("a {body} bird {pose}"),
    main_colour("a {size} {body} bird {bg}"),
    t("this {body} bird has a {head} crown"),
    t("a bird with a {belly} breast and {wing} wings"),
    Template { text: "this bird has a white eye ring and a {head} head", held_out: false, needs: |a| a.eye_ring },
    Template {
        text: "a {body} bird with a pale wing bar",
        held_out: false,
        needs: |a| a.wing_bar && a.mostly_body_colour(),
    },
    t("a {size} bird facing {facing} with a {beak} beak"),
    t("this bird has a {beak} beak, a {head} head and a {body} body"),
    t("{body} body, {wing} wings, {head} crown"),
    t("a {size} bird that is {body} with {wing} wings"),
    t("the bird with the {head} head has {wing} wings"),
    t("a {body} bird with a {head} head {pose}"),
    held("an image of a {body} bird whose wings are {wing}"),
    held("a {beak} beaked {size} bird with a {belly} underside"),
    held("look at this {body} bird, its crown is {head}"),
    held("a bird with {wing} feathers on its wings and a {body} body {bg}"),
    held("here is a {size} {body} bird with a {head} cap"),
    held("its belly is {belly} and its back is {body}"),
    held("a {body} songbird with {wing} flight feathers"),
    held("the {size} {body} bird, {pose}, has a {belly} chest"),
];

fn word_size(s: Size) -> &'static str {
    match s {
        Size::Small => "small",
        Size::Large => "large",
    }
}

fn fill(template: &Template, index: usize, a: &BirdAttributes) -> Caption {
    let mut text = template.text.to_string();
    let mut mentions = Vec::new();
    for (slot, part, colour) in [
        ("{body}", Part::Body, a.body),
        ("{wing}", Part::Wing, a.wing),
        ("{head}", Part::Head, a.head),
        ("{belly}", Part::Belly, a.belly),
    ] {
        if text.contains(slot) {
            text = text.replace(slot, colour.word());
            mentions.push((part, colour));
        }
    }
    let pose = match a.pose {
        Pose::Perched => "perched on a branch",
        Pose::Flying => "in flight",
    };
    let bg = match a.background {
        Background::Sky => "against the sky",
        Background::Foliage => "among green leaves",
        Background::Water => "over the water",
        Background::Plain => "on a plain background",
    };
    let beak = match a.beak {
        Beak::Short => "short",
        Beak::Long => "long",
    };
    let facing = match a.facing {
        Facing::Left => "left",
        Facing::Right => "right",
    };
    text = text
        .replace("{size}", word_size(a.size))
        .replace("{beak}", beak)
        .replace("{pose}", pose)
        .replace("{bg}", bg)
        .replace("{facing}", facing);
    Caption { text: with_articles(&text), template: index, mentions }
}

/// The prompt that names only a bird's body colour: "a red bird", "an orange bird".
pub fn colour_prompt(colour: Colour) -> String {
    with_articles(&format!("a {} bird", colour.word()))
}

/// "a" before a vowel sound becomes "an" ("a orange crown" -> "an orange crown").
pub fn with_articles(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let next_vowel = words.get(i + 1).and_then(|n| n.chars().next()).is_some_and(|c| "aeiou".contains(c));
        out.push(match (*w, next_vowel) {
            ("a", true) => "an",
            ("A", true) => "An",
            _ => w,
        });
    }
    out.join(" ")
}

/// `count` captions for a bird, from distinct templates that fit it: the held-out phrasings if
/// `held_out`, the training phrasings otherwise (fewer if fewer fit).
pub fn captions(a: &BirdAttributes, held_out: bool, count: usize, rng: &mut Rng) -> Vec<Caption> {
    let mut ids: Vec<usize> =
        (0..TEMPLATES.len()).filter(|&i| TEMPLATES[i].held_out == held_out && (TEMPLATES[i].needs)(a)).collect();
    ids.shuffle(rng);
    ids.into_iter().take(count).map(|i| fill(&TEMPLATES[i], i, a)).collect()
}
