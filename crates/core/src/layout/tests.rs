use super::*;
use crate::gradcheck::check_gradients;
use crate::Params;
use candle_core::{DType, Device};

fn grid(values: Vec<f32>, side: usize) -> Tensor {
    Tensor::from_vec(values, (1, 1, side, side), &Device::Cpu).unwrap()
}

fn rows(x: &Tensor) -> Vec<Vec<f32>> {
    x.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap()
}

#[test]
fn placing_stretches_the_features_over_the_box_and_leaves_zeros_outside() {
    // A 2x2 map into the right half of a 4x4 frame: each column doubles, each row is read bilinearly
    // (cell centres at 1/8, 3/8, ... of the frame fall at 0.25, 0.75, ... of the input's cells).
    let x = grid(vec![1.0, 2.0, 3.0, 4.0], 2);
    let out = rows(&place_in_boxes(&x, &[[0.5, 0.0, 0.5, 1.0]], 4).unwrap());
    assert_eq!(out[0], vec![0.0, 0.0, 1.0, 2.0]);
    assert_eq!(out[1], vec![0.0, 0.0, 0.75 * 1.0 + 0.25 * 3.0, 0.75 * 2.0 + 0.25 * 4.0]);
    assert_eq!(out[2], vec![0.0, 0.0, 0.25 * 1.0 + 0.75 * 3.0, 0.25 * 2.0 + 0.75 * 4.0]);
    assert_eq!(out[3], vec![0.0, 0.0, 3.0, 4.0]);
}

#[test]
fn cropping_a_placed_map_gives_it_back_and_the_whole_box_is_the_identity() {
    let x = Tensor::arange(0f32, 2.0 * 3.0 * 16.0, &Device::Cpu).unwrap().reshape((2, 3, 4, 4)).unwrap();
    let whole = crop_boxes(&x, &[[0.0, 0.0, 1.0, 1.0]; 2], 4).unwrap();
    assert_eq!(
        whole.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    // A box aligned with the frame's cells holds the placed map cell for cell.
    let boxes = [[0.25, 0.5, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]];
    let back = crop_boxes(&place_in_boxes(&x, &boxes, 8).unwrap(), &boxes, 4).unwrap();
    assert_eq!(
        back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}

#[test]
fn cropping_reads_the_boxes_region() {
    // The bottom-right quarter of a 4x4 map, read at 2x2, is exactly its cells (2..4, 2..4).
    let x = grid((0..16).map(|v| v as f32).collect(), 4);
    let out = rows(&crop_boxes(&x, &[[0.5, 0.5, 0.5, 0.5]], 2).unwrap());
    assert_eq!(out, vec![vec![10.0, 11.0], vec![14.0, 15.0]]);
}

#[test]
fn both_transforms_pass_gradients_that_match_finite_differences() {
    let params = Params::new(5);
    let vb = params.var_builder(DType::F64, &Device::Cpu);
    let init = candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 };
    let x = vb.get_with_hints((2, 3, 4, 4), "x", init).unwrap();
    let wp = vb.get_with_hints((2, 3, 8, 8), "wp", init).unwrap();
    let wc = vb.get_with_hints((2, 3, 3, 3), "wc", init).unwrap();
    let boxes = [[0.1, 0.2, 0.6, 0.7], [0.3, 0.05, 0.5, 0.9]];
    let checked = check_gradients(&params, 40, 1e-6, || {
        let placed = place_in_boxes(&x, &boxes, 8).map_err(candle_core::Error::wrap)?;
        let cropped = crop_boxes(&x, &boxes, 3).map_err(candle_core::Error::wrap)?;
        (placed.sqr()? * &wp)?.sum_all()? + (cropped.sqr()? * &wc)?.sum_all()?
    });
    assert!(checked.unwrap() >= 40);
}

#[test]
fn masks_cover_the_box_with_fractional_edges() {
    let m = box_masks(&[[0.25, 0.125, 0.5, 0.5]], 4, &Device::Cpu).unwrap();
    assert_eq!(
        rows(&m),
        vec![vec![0.0, 0.5, 0.5, 0.0], vec![0.0, 1.0, 1.0, 0.0], vec![0.0, 0.5, 0.5, 0.0], vec![0.0, 0.0, 0.0, 0.0]]
    );
}

#[test]
fn keypoint_maps_peak_at_visible_keypoints_only() {
    let k = Tensor::new(&[[[0.625f32, 0.125, 1.0], [0.5, 0.5, 0.0]]], &Device::Cpu).unwrap();
    let maps = keypoint_maps(&k, 4, 1.0).unwrap();
    assert_eq!(maps.dims(), &[1, 2, 4, 4]);
    let first = maps.narrow(1, 0, 1).unwrap();
    assert_eq!(rows(&first)[0][2], 1.0);
    assert!((rows(&first)[0][3] - (-0.5f32).exp()).abs() < 1e-6);
    assert_eq!(maps.narrow(1, 1, 1).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn iou_of_known_boxes() {
    assert_eq!(iou([0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]), 1.0);
    assert_eq!(iou([0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]), 0.0);
    // Half of one box overlaps a box of the same size: 1/8 over 3/8.
    assert!((iou([0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.5, 0.5]) - 1.0 / 3.0).abs() < 1e-6);
}

#[test]
fn bad_boxes_are_refused_with_the_reason() {
    assert!(check_box([0.1, 0.1, 0.5, 0.5]).is_ok());
    assert!(check_box([0.1, 0.1, 0.0, 0.5]).unwrap_err().contains("positive"));
    assert!(check_box([0.8, 0.1, 0.5, 0.5]).unwrap_err().contains("inside"));
    assert!(check_box([f32::NAN, 0.1, 0.5, 0.5]).unwrap_err().contains("not a number"));
    assert!(Layout::from_boxes(Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap()).is_err());
}

#[test]
fn lerp_mixes_boxes_and_keeps_only_keypoints_visible_in_both() {
    let dev = Device::Cpu;
    let a = Layout {
        boxes: Tensor::new(&[[0.0f32, 0.0, 0.5, 0.5]], &dev).unwrap(),
        keypoints: Some(Tensor::new(&[[[0.2f32, 0.2, 1.0], [0.4, 0.4, 1.0]]], &dev).unwrap()),
    };
    let b = Layout {
        boxes: Tensor::new(&[[0.5f32, 0.5, 0.5, 0.5]], &dev).unwrap(),
        keypoints: Some(Tensor::new(&[[[0.6f32, 0.6, 1.0], [0.8, 0.8, 0.0]]], &dev).unwrap()),
    };
    let mid = a.lerp(&b, 0.5).unwrap();
    assert_eq!(mid.box_rows().unwrap(), vec![[0.25, 0.25, 0.5, 0.5]]);
    let k = mid.keypoints.unwrap().to_vec3::<f32>().unwrap();
    assert_eq!(k[0][0], vec![0.4, 0.4, 1.0]);
    assert_eq!(k[0][1][2], 0.0);
}
