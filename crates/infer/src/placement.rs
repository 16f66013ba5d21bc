//! Where a what-and-where model draws: the box (and keypoints) a user asks for, parsed from the
//! command line's `--box x,y,w,h` and `--keypoints head=x,y;beak=x,y`, or one drawn from the boxes of
//! the model's training birds.

use candle_core::Device;
use condor_core::layout::{check_box, Layout, LayoutKind, KEYPOINTS};
use condor_core::rng::Stream;
use condor_data::birds::SyntheticBirds;
use condor_data::layout::ObjectLayout;
use condor_data::DatasetConfig;
use rand::Rng as _;

use crate::error::{InferError, Result};

/// The box and keypoints asked for; what is left out is drawn from the training layouts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// `(x, y, w, h)` in fractions of the image.
    pub bbox: Option<[f32; 4]>,
    /// Keypoints by [`KEYPOINTS`] position; `None` entries are not given.
    pub keypoints: Option<[Option<[f32; 2]>; 5]>,
}

impl Placement {
    /// Whether anything is asked.
    pub fn is_empty(&self) -> bool {
        self.bbox.is_none() && self.keypoints.is_none()
    }

    /// Checks that a generator reading `kind` can be asked this: a model that reads no layout takes
    /// neither box nor keypoints, one that reads boxes only takes no keypoints.
    pub fn check_for(&self, kind: LayoutKind) -> Result<()> {
        if kind == LayoutKind::None && !self.is_empty() {
            return Err(InferError::Request(
                "this model draws wherever it likes; a box or keypoints need a what-and-where model \
                 (a generator with `layout = { ... }`)"
                    .into(),
            ));
        }
        if kind == LayoutKind::Boxes && self.keypoints.is_some() {
            return Err(InferError::Request(
                "this model reads boxes only; keypoints need one trained with `layout = { keypoints = true }`".into(),
            ));
        }
        Ok(())
    }

    /// The asked layout completed from `drawn`: an asked box with the drawn keypoints moved into it,
    /// asked keypoints over drawn ones.
    pub fn complete(&self, drawn: Option<ObjectLayout>) -> ObjectLayout {
        let drawn =
            drawn.unwrap_or(ObjectLayout { bbox: self.bbox.unwrap_or([0.0, 0.0, 1.0, 1.0]), keypoints: [None; 5] });
        let bbox = self.bbox.unwrap_or(drawn.bbox);
        let mut keypoints = moved_into(&drawn, bbox);
        if let Some(given) = self.keypoints {
            for (k, g) in keypoints.iter_mut().zip(given) {
                if g.is_some() {
                    *k = g;
                }
            }
        }
        ObjectLayout { bbox, keypoints }
    }
}

/// Parses `x,y,w,h` (fractions of the image) into a box, with the reason when it is not one.
pub fn parse_box(text: &str) -> std::result::Result<[f32; 4], String> {
    let values = parse_numbers(text, 4, "a box is x,y,w,h: four fractions of the image, as 0.1,0.2,0.5,0.6")?;
    let b = [values[0], values[1], values[2], values[3]];
    check_box(b)?;
    Ok(b)
}

/// Parses `name=x,y;name=x,y` (names from [`KEYPOINTS`], fractions of the image).
pub fn parse_keypoints(text: &str) -> std::result::Result<[Option<[f32; 2]>; 5], String> {
    let mut out = [None; 5];
    for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, at) = item.split_once('=').ok_or_else(|| format!("`{item}`: a keypoint is name=x,y"))?;
        let k = KEYPOINTS.iter().position(|n| n.eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
            format!("`{}` is not a keypoint; the keypoints are {}", name.trim(), KEYPOINTS.join(", "))
        })?;
        let v = parse_numbers(at, 2, "a keypoint's place is x,y: two fractions of the image")?;
        if !v.iter().all(|c| (0.0..=1.0).contains(c)) {
            return Err(format!("the {} keypoint {v:?} must lie inside the image (0 to 1)", KEYPOINTS[k]));
        }
        out[k] = Some([v[0], v[1]]);
    }
    if out.iter().all(Option::is_none) {
        return Err("no keypoint given: write name=x,y;name=x,y".into());
    }
    Ok(out)
}

/// `n` comma-separated finite numbers, or `usage`.
fn parse_numbers(text: &str, n: usize, usage: &str) -> std::result::Result<Vec<f32>, String> {
    let values: Vec<f32> = text
        .split(',')
        .map(|v| v.trim().parse::<f32>().map_err(|_| format!("`{text}`: {usage}")))
        .collect::<std::result::Result<_, _>>()?;
    if values.len() != n || !values.iter().all(|v| v.is_finite()) {
        return Err(format!("`{text}`: {usage}"));
    }
    Ok(values)
}

/// `layout`'s keypoints moved with its box onto `to` (the same place relative to the box).
fn moved_into(layout: &ObjectLayout, to: [f32; 4]) -> [Option<[f32; 2]>; 5] {
    let [x, y, w, h] = layout.bbox;
    layout.keypoints.map(|k| {
        k.map(|[kx, ky]| {
            let (u, v) = ((kx - x) / w.max(1e-6), (ky - y) / h.max(1e-6));
            [to[0] + u * to[2], to[1] + v * to[3]]
        })
    })
}

/// The layouts of `rows` prompts for a generator that reads `kind`: `asked` where given, the rest
/// from training birds of `data` chosen by `seed` (their keypoints moved into an asked box). `None`
/// for a generator that reads no layout, which refuses an asked one.
pub fn layouts_for(
    kind: LayoutKind,
    asked: &Placement,
    data: &DatasetConfig,
    rows: usize,
    seed: u64,
    device: &Device,
) -> Result<Option<Layout>> {
    asked.check_for(kind)?;
    if kind == LayoutKind::None {
        return Ok(None);
    }
    let Some((world, count)) = training_birds(data) else {
        if asked.bbox.is_some() && (kind == LayoutKind::Boxes || asked.keypoints.is_some()) {
            return Ok(Some(layout_rows(&vec![asked.complete(None); rows], device)?));
        }
        return Err(InferError::Request(
            "this model was not trained on synthetic birds, so there are no training boxes to draw from: \
             give a box (and keypoints if it reads them)"
                .into(),
        ));
    };
    let mut rng = Stream::FixedNoise(Some(3)).rng(seed);
    let drawn = (0..rows).map(|_| world.layout(rng.random_range(0..count as usize) as u64));
    Ok(Some(layout_rows(&drawn.map(|d| asked.complete(Some(d))).collect::<Vec<_>>(), device)?))
}

/// The training birds of `data` and how many there are (at least 1); `None` for other data.
fn training_birds(data: &DatasetConfig) -> Option<(SyntheticBirds, u64)> {
    match data {
        DatasetConfig::Birds { count, split, .. } => Some((data.bird_world()?.split(*split), (*count).max(1) as u64)),
        _ => None,
    }
}

/// The layout of training bird `index % count` of `data` (synthetic birds only): where a box sweep
/// takes its keypoints from.
pub fn training_layout(data: &DatasetConfig, index: u64) -> Option<ObjectLayout> {
    training_birds(data).map(|(world, count)| world.layout(index % count))
}

/// The layouts as the models read them, one row each: `(B, 4)` boxes and `(B, 5, 3)` keypoints.
pub fn layout_rows(layouts: &[ObjectLayout], device: &Device) -> candle_core::Result<Layout> {
    let n = layouts.len();
    let boxes = layouts.iter().flat_map(|l| l.bbox).collect();
    let keypoints = layouts.iter().flat_map(|l| l.keypoint_rows().into_iter().flatten()).collect();
    Ok(Layout {
        boxes: candle_core::Tensor::from_vec(boxes, (n, 4), device)?,
        keypoints: Some(candle_core::Tensor::from_vec(keypoints, (n, KEYPOINTS.len(), 3), device)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_keypoints_parse_and_bad_ones_say_why() {
        assert_eq!(parse_box("0.1, 0.2,0.5,0.6").unwrap(), [0.1, 0.2, 0.5, 0.6]);
        assert!(parse_box("0.1,0.2,0.5").unwrap_err().contains("x,y,w,h"));
        assert!(parse_box("a,b,c,d").unwrap_err().contains("x,y,w,h"));
        assert!(parse_box("0.6,0.2,0.5,0.5").unwrap_err().contains("inside the image"));
        assert!(parse_box("0.1,0.2,-0.5,0.5").unwrap_err().contains("positive"));
        assert!(parse_box("0.1,0.2,inf,0.5").is_err());
        let k = parse_keypoints("head=0.3,0.4; Beak=0.35,0.38").unwrap();
        assert_eq!(k[0], Some([0.3, 0.4]));
        assert_eq!(k[1], Some([0.35, 0.38]));
        assert_eq!(k[2], None);
        assert!(parse_keypoints("nose=0.1,0.1").unwrap_err().contains("head, beak, tail, wing, belly"));
        assert!(parse_keypoints("head=1.5,0.1").unwrap_err().contains("inside"));
        assert!(parse_keypoints("head").unwrap_err().contains("name=x,y"));
        assert!(parse_keypoints("").is_err());
    }

    #[test]
    fn an_asked_box_carries_the_drawn_keypoints_into_it() {
        let drawn = ObjectLayout { bbox: [0.2, 0.2, 0.4, 0.4], keypoints: [Some([0.4, 0.3]), None, None, None, None] };
        let asked = Placement { bbox: Some([0.0, 0.5, 0.2, 0.2]), keypoints: None };
        let l = asked.complete(Some(drawn));
        assert_eq!(l.bbox, [0.0, 0.5, 0.2, 0.2]);
        let k = l.keypoints[0].unwrap();
        assert!((k[0] - 0.1).abs() < 1e-6 && (k[1] - 0.55).abs() < 1e-6, "{k:?}");
    }

    #[test]
    fn models_without_layouts_refuse_a_box_and_layout_models_draw_training_boxes() {
        let data = DatasetConfig::Birds {
            world_seed: 0,
            count: 50,
            split: condor_data::birds::BirdSplit::Train,
            size: 32,
            flip: false,
            crop: 0.0,
            layout: true,
            spread: Default::default(),
        };
        let asked = Placement { bbox: Some([0.1, 0.1, 0.5, 0.5]), keypoints: None };
        let e = layouts_for(LayoutKind::None, &asked, &data, 2, 0, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("draws wherever it likes"), "{e}");
        assert!(layouts_for(LayoutKind::None, &Placement::default(), &data, 2, 0, &Device::Cpu).unwrap().is_none());
        let drawn = layouts_for(LayoutKind::Boxes, &Placement::default(), &data, 3, 4, &Device::Cpu).unwrap().unwrap();
        let again = layouts_for(LayoutKind::Boxes, &Placement::default(), &data, 3, 4, &Device::Cpu).unwrap().unwrap();
        assert_eq!(drawn.box_rows().unwrap(), again.box_rows().unwrap(), "the seed decides");
        let asked_rows = layouts_for(LayoutKind::Boxes, &asked, &data, 2, 4, &Device::Cpu).unwrap().unwrap();
        let with_keypoints = Placement { keypoints: Some([Some([0.5, 0.5]), None, None, None, None]), ..asked };
        let e = layouts_for(LayoutKind::Boxes, &with_keypoints, &data, 2, 4, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("boxes only"), "{e}");
        assert_eq!(asked_rows.box_rows().unwrap(), vec![[0.1, 0.1, 0.5, 0.5]; 2]);
    }
}
