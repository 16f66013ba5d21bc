//! Real-image datasets read from fixture trees written by the test (real JPEG and PNG files).

use std::path::Path;

use condor_data::images::{cropped_layout, cub, image_folder, load_all, load_cropped, CubSplit};
use condor_data::loader::CaptionedSource;
use condor_data::DataError;

/// A 40x30 white image with a red box at x 10..22, y 8..18 (the bounding box 10 8 12 10).
fn write_bird(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(40, 30, |x, y| {
        if (10..22).contains(&x) && (8..18).contains(&y) {
            image::Rgb([220, 20, 20])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    img.save(path).unwrap();
}

fn write_cub(root: &Path) {
    let classes = ["001.Red_Bird", "002.Blue_Bird", "003.Grey_Bird"];
    let mut images = String::new();
    let mut boxes = String::new();
    let mut split = String::new();
    let mut labels = String::new();
    let mut id = 0;
    for (c, class) in classes.iter().enumerate() {
        for k in 0..2 {
            id += 1;
            let rel = format!("{class}/{class}_{k}.jpg");
            write_bird(&root.join("CUB_200_2011/images").join(&rel));
            images += &format!("{id} {rel}\n");
            boxes += &format!("{id} 10.0 8.0 12.0 10.0\n");
            split += &format!("{id} {}\n", (k == 0) as u8);
            labels += &format!("{id} {}\n", c + 1);
            let txt = root.join("text_c10").join(&rel).with_extension("txt");
            std::fs::create_dir_all(txt.parent().unwrap()).unwrap();
            let caps: Vec<String> = (0..10).map(|i| format!("caption {i} of image {id}")).collect();
            std::fs::write(txt, caps.join("\n")).unwrap();
        }
    }
    let base = root.join("CUB_200_2011");
    std::fs::write(base.join("images.txt"), images).unwrap();
    std::fs::write(base.join("bounding_boxes.txt"), boxes).unwrap();
    std::fs::write(base.join("train_test_split.txt"), split).unwrap();
    std::fs::write(base.join("image_class_labels.txt"), labels).unwrap();
    std::fs::write(
        base.join("classes.txt"),
        classes.iter().enumerate().map(|(i, c)| format!("{} {c}\n", i + 1)).collect::<String>(),
    )
    .unwrap();
    std::fs::write(root.join("text_c10/trainvalclasses.txt"), "001.Red_Bird\n002.Blue_Bird\n").unwrap();
    std::fs::write(root.join("text_c10/testclasses.txt"), "003.Grey_Bird\n").unwrap();
}

#[test]
fn cub_is_read_with_splits_captions_and_crops() {
    let tmp = tempfile::tempdir().unwrap();
    write_cub(tmp.path());
    let root = tmp.path().join("CUB_200_2011");
    let train = cub(&root, None, CubSplit::TextToImageTrain).unwrap();
    assert_eq!(train.images.len(), 4);
    assert_eq!(train.images[0].captions.len(), 10);
    assert_eq!(train.images[0].captions[3], "caption 3 of image 1");
    assert_eq!(train.images[2].class, Some(1));
    assert_eq!(cub(&root, None, CubSplit::TextToImageTest).unwrap().images.len(), 2);
    let official = cub(&root, None, CubSplit::OfficialTrain).unwrap();
    assert_eq!(official.images.len(), 3);
    assert!(official.images.iter().all(|i| i.path.to_string_lossy().ends_with("_0.jpg")));

    // The crop: a square of side 1.5 * 12 = 18 around the box centre (16, 13), i.e. x 7..25, y 4..22;
    // the red box then spans x 3..15, y 4..14 of the 18x18 result.
    let px = load_cropped(&train.images[0], 18).unwrap();
    let at = |c: usize, x: usize, y: usize| px[c * 18 * 18 + y * 18 + x];
    assert!(at(0, 9, 9) > 0.75 && at(1, 9, 9) < 0.3, "inside the box");
    for (x, y) in [(1, 1), (16, 9), (9, 16)] {
        assert!(at(1, x, y) > 0.8, "outside the box at ({x}, {y}): {}", at(1, x, y));
    }
}

#[test]
fn cub_layouts_are_the_box_and_parts_in_the_cropped_picture() {
    let tmp = tempfile::tempdir().unwrap();
    write_cub(tmp.path());
    let root = tmp.path().join("CUB_200_2011");
    // Image 1: crown at (12, 9), beak (10, 10), left wing (16, 12) and right wing (18, 14) (their mean
    // (17, 13)), the tail hidden, belly (16, 16). Image 2 has no parts.
    let lines = ["1 5 12 9 1", "1 2 10 10 1", "1 9 16 12 1", "1 13 18 14 1", "1 14 0 0 0", "1 3 16 16 1"];
    std::fs::create_dir_all(root.join("parts")).unwrap();
    std::fs::write(root.join("parts/part_locs.txt"), lines.join("\n")).unwrap();
    let set = cub(&root, None, CubSplit::TextToImageTrain).unwrap();
    // The crop window is x 7..25, y 4..22 (the crop test above): the box 10..22 x 8..18 sits at
    // 3/18..15/18 by 4/18..14/18.
    let l = cropped_layout(&set.images[0]).unwrap().unwrap();
    let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
    let expected = [3.0 / 18.0, 4.0 / 18.0, 12.0 / 18.0, 10.0 / 18.0];
    assert!(l.bbox.iter().zip(expected).all(|(a, b)| close(*a, b)), "{:?}", l.bbox);
    let head = l.keypoints[0].unwrap();
    assert!(close(head[0], 5.0 / 18.0) && close(head[1], 5.0 / 18.0), "{head:?}");
    let wing = l.keypoints[3].unwrap();
    assert!(close(wing[0], 10.0 / 18.0) && close(wing[1], 9.0 / 18.0), "{wing:?}");
    assert_eq!(l.keypoints[2], None, "the tail is hidden");
    assert_eq!(set.layout(1).unwrap().keypoints, [None; 5], "no parts for image 2");
    std::fs::write(root.join("parts/part_locs.txt"), "1 5 12").unwrap();
    assert!(cub(&root, None, CubSplit::TextToImageTrain).is_err(), "a malformed parts file");
}

#[test]
fn corrupt_images_are_skipped_and_counted_unless_strict() {
    let tmp = tempfile::tempdir().unwrap();
    write_cub(tmp.path());
    let root = tmp.path().join("CUB_200_2011");
    std::fs::write(root.join("images/002.Blue_Bird/002.Blue_Bird_1.jpg"), b"\xff\xd8 not really a jpeg").unwrap();
    let mut set = cub(&root, None, CubSplit::TextToImageTrain).unwrap();
    let pixels = load_all(&mut set, 16, false).unwrap();
    assert_eq!((pixels.len(), set.images.len(), set.skipped.len()), (3, 3, 1));
    assert!(set.skipped[0].0.ends_with("002.Blue_Bird_1.jpg"));
    let mut strict = cub(&root, None, CubSplit::TextToImageTrain).unwrap();
    let err = load_all(&mut strict, 16, true).unwrap_err();
    assert!(matches!(err, DataError::BadImage { .. }) && err.to_string().contains("002.Blue_Bird_1.jpg"), "{err}");
}

#[test]
fn missing_files_are_named_with_where_the_data_comes_from() {
    let tmp = tempfile::tempdir().unwrap();
    write_cub(tmp.path());
    let root = tmp.path().join("CUB_200_2011");
    let err = cub(&root, None, CubSplit::TextToImageTest).err().map(|e| e.to_string());
    assert_eq!(err, None);
    std::fs::rename(root.join("bounding_boxes.txt"), root.join("bb.txt")).unwrap();
    let err = cub(&root, None, CubSplit::OfficialTest).unwrap_err().to_string();
    assert!(err.contains("bounding_boxes.txt") && err.contains("caltech.edu"), "{err}");
    std::fs::rename(root.join("bb.txt"), root.join("bounding_boxes.txt")).unwrap();
    let err = cub(&tmp.path().join("nowhere"), None, CubSplit::OfficialTest).unwrap_err().to_string();
    assert!(err.contains("images.txt"), "{err}");
    std::fs::remove_file(tmp.path().join("text_c10/testclasses.txt")).unwrap();
    let err = cub(&root, None, CubSplit::TextToImageTest).unwrap_err().to_string();
    assert!(err.contains("testclasses.txt") && err.contains("reedscot"), "{err}");
}

#[test]
fn image_folders_pair_images_with_caption_files_at_any_depth() {
    let tmp = tempfile::tempdir().unwrap();
    write_bird(&tmp.path().join("a/b/one.png"));
    std::fs::write(tmp.path().join("a/b/one.txt"), "a red box\n\na small red box\n").unwrap();
    write_bird(&tmp.path().join("two.jpg"));
    std::fs::write(tmp.path().join("two.txt"), "another red box").unwrap();
    write_bird(&tmp.path().join("lonely.png"));
    std::fs::write(tmp.path().join("notes.md"), "not an image").unwrap();
    let set = image_folder(tmp.path()).unwrap();
    assert_eq!(set.images.len(), 2);
    assert_eq!(set.images[0].captions, vec!["a red box", "a small red box"]);
    assert_eq!(set.skipped.len(), 1);
    assert!(set.skipped[0].0.ends_with("lonely.png"));
    let px = load_cropped(&set.images[1], 8).unwrap();
    assert_eq!(px.len(), 3 * 64);
    let empty = tempfile::tempdir().unwrap();
    assert!(image_folder(empty.path()).unwrap_err().to_string().contains("no captioned images"));
}
