//! Where the object of an image is: its bounding box and the locations of its parts, as fractions of
//! the image, for the "what and where" models (Reed et al. 2016). The synthetic birds know theirs
//! exactly; CUB ships them as `bounding_boxes.txt` and `parts/part_locs.txt`.

pub use condor_core::layout::KEYPOINTS;

/// A box and keypoints in image fractions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObjectLayout {
    /// `(x, y, w, h)`: the top-left corner, width and height.
    pub bbox: [f32; 4],
    /// Each of [`KEYPOINTS`] where it is visible.
    pub keypoints: [Option<[f32; 2]>; 5],
}

impl ObjectLayout {
    /// The layout of an object spanning `[min x, min y, max x, max y]`, clipped to the image.
    pub fn from_extent(e: [f32; 4], keypoints: [Option<[f32; 2]>; 5]) -> Self {
        let (x0, y0) = (e[0].clamp(0.0, 1.0), e[1].clamp(0.0, 1.0));
        let (x1, y1) = (e[2].clamp(0.0, 1.0), e[3].clamp(0.0, 1.0));
        let inside = |p: [f32; 2]| (0.0..=1.0).contains(&p[0]) && (0.0..=1.0).contains(&p[1]);
        Self { bbox: [x0, y0, x1 - x0, y1 - y0], keypoints: keypoints.map(|k| k.filter(|&p| inside(p))) }
    }

    /// The layout of the image mirrored left to right.
    pub fn flipped(&self) -> Self {
        let [x, y, w, h] = self.bbox;
        Self { bbox: [1.0 - x - w, y, w, h], keypoints: self.keypoints.map(|k| k.map(|[x, y]| [1.0 - x, y])) }
    }

    /// The layout within the window `(x, y, side)` of the image (fractions; the window is square):
    /// the box clipped to the window, keypoints outside it dropped.
    pub fn within(&self, window: [f32; 3]) -> Self {
        let [wx, wy, side] = window;
        let to = |p: [f32; 2]| [(p[0] - wx) / side, (p[1] - wy) / side];
        let [x, y, w, h] = self.bbox;
        let (a, b) = (to([x, y]), to([x + w, y + h]));
        Self::from_extent([a[0], a[1], b[0], b[1]], self.keypoints.map(|k| k.map(to)))
    }

    /// The keypoints as rows `(x, y, visible)`.
    pub fn keypoint_rows(&self) -> [[f32; 3]; 5] {
        self.keypoints.map(|k| k.map_or([0.0, 0.0, 0.0], |[x, y]| [x, y, 1.0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: ObjectLayout =
        ObjectLayout { bbox: [0.1, 0.2, 0.4, 0.5], keypoints: [Some([0.3, 0.3]), None, None, None, Some([0.9, 0.9])] };

    #[test]
    fn flipping_mirrors_the_box_and_the_keypoints() {
        let f = LAYOUT.flipped();
        assert!((f.bbox[0] - 0.5).abs() < 1e-6 && f.bbox[1..] == LAYOUT.bbox[1..]);
        assert!((f.keypoints[0].unwrap()[0] - 0.7).abs() < 1e-6);
        assert_eq!(f.flipped().keypoints[1], None);
    }

    #[test]
    fn a_window_rescales_and_clips() {
        let w = LAYOUT.within([0.2, 0.2, 0.5]);
        // x from 0.1 to 0.5 becomes -0.2 to 0.6, clipped to 0 to 0.6; y from 0 to 1.
        let expected = [0.0, 0.0, 0.6, 1.0];
        assert!(w.bbox.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{:?}", w.bbox);
        assert!((w.keypoints[0].unwrap()[0] - 0.2).abs() < 1e-6);
        assert_eq!(w.keypoints[4], None, "outside the window");
        assert_eq!(w.keypoint_rows()[4], [0.0, 0.0, 0.0]);
    }
}
