//! The Inception-v3 network of the standard FID, in candle.
//!
//! It is the TF-2015 graph (`inception-2015-12-05`) that TTUR's FID code uses, as ported to PyTorch by
//! NVIDIA for StyleGAN2-ADA, and computes what that graph computes:
//!
//! - images with values 0..=255 are resized to 299x299 by TF's legacy bilinear resize (no half-pixel
//!   centres: source position = destination position x in / out, clamped at the border);
//! - scaled to (x - 128) / 128, the graph's input range [-1, 0.9921875];
//! - 94 convolutions, each followed by batch normalisation without scale (epsilon 1e-3) and ReLU, in the
//!   stem and eleven Inception blocks;
//! - the 8x8 average pool gives the 2048-d pool-3 features.
//!
//! Batch normalisation is folded into each convolution's weights and bias when the weights are loaded.
//! The weights come from `just fid-weights` (scripts/fetch_fid_weights.py).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};

use crate::error::{Error, Result};

/// Side of the network's input.
pub const INPUT_SIDE: usize = 299;
/// Length of the pool-3 feature vector.
pub const FEATURES: usize = 2048;
/// Where `just fid-weights` puts the converted weights, relative to the repository root.
pub const DEFAULT_WEIGHTS: &str = "data/fid/inception-v3-fid.safetensors";
const BN_EPS: f64 = 1e-3;
const CONVOLUTIONS: usize = 94;

/// A convolution with its batch normalisation folded in, followed by ReLU.
struct ConvBnRelu {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    /// Zero padding (rows, columns).
    padding: (usize, usize),
}

impl ConvBnRelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (ph, pw) = self.padding;
        let (_, _, kh, kw) = self.weight.dims4()?;
        let y = if ph == pw && kh == kw {
            // Square kernels through condor-core's convolution (faster on the CPU than candle's).
            condor_core::conv::conv2d(x, &self.weight, ph, self.stride)?
        } else if ph == pw {
            x.conv2d(&self.weight, ph, self.stride, 1, 1)?
        } else {
            x.pad_with_zeros(2, ph, ph)?.pad_with_zeros(3, pw, pw)?.conv2d(&self.weight, 0, self.stride, 1, 1)?
        };
        Ok(condor_core::activation::bias_act(&y, Some(&self.bias), condor_core::activation::Activation::Relu)?)
    }
}

/// 3x3 max pooling with stride 2, no padding.
fn max_pool_s2(x: &Tensor) -> Result<Tensor> {
    Ok(x.max_pool2d_with_stride(3, 2)?)
}

/// 3x3 max pooling with stride 1 and padding 1. Its inputs come out of a ReLU (>= 0), so zero padding
/// gives what padding with -inf gives.
fn max_pool_same(x: &Tensor) -> Result<Tensor> {
    Ok(x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.max_pool2d_with_stride(3, 1)?)
}

/// 3x3 average pooling with stride 1 and padding 1 that does not count the padding.
fn avg_pool_same(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let sum = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.avg_pool2d_with_stride(3, 1)?;
    let ones = Tensor::ones((1, 1, h, w), x.dtype(), x.device())?;
    let count = ones.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.avg_pool2d_with_stride(3, 1)?;
    Ok(sum.broadcast_div(&count)?)
}

/// Inception-v3 with the FID graph's weights.
pub struct FidInception {
    convs: HashMap<String, ConvBnRelu>,
    device: Device,
}

impl FidInception {
    /// Loads the converted weights (`just fid-weights`) onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(Error::MissingWeights(path.to_path_buf()));
        }
        let bad = |why: String| Error::BadFile { path: path.to_path_buf(), why };
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
        let mut convs = HashMap::new();
        for name in tensors.keys().filter_map(|k| k.strip_suffix(".weight")) {
            let get =
                |part: &str| tensors.get(&format!("{name}.{part}")).ok_or_else(|| bad(format!("{name} has no {part}")));
            let weight = get("weight")?.to_dtype(DType::F32)?;
            let (out, _, kh, kw) = weight.dims4().map_err(|e| bad(format!("{name}.weight: {e}")))?;
            let [beta, mean, var] = ["beta", "mean", "var"].map(|p| get(p).map(|t| t.to_dtype(DType::F32)));
            let (beta, mean, var) = (beta??, mean??, var??);
            for (part, t) in [("beta", &beta), ("mean", &mean), ("var", &var)] {
                if t.dims() != [out] {
                    return Err(bad(format!("{name}.{part} has shape {:?}, expected [{out}]", t.dims())));
                }
            }
            let scale = (var + BN_EPS)?.sqrt()?.recip()?;
            let weight = weight.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
            let bias = (beta - (mean * &scale)?)?;
            let (stride, padding) = geometry(name, kh, kw);
            let conv = ConvBnRelu { weight: weight.to_device(device)?, bias: bias.to_device(device)?, stride, padding };
            convs.insert(name.to_string(), conv);
        }
        if convs.len() != CONVOLUTIONS {
            return Err(bad(format!("expected {CONVOLUTIONS} convolutions, found {}", convs.len())));
        }
        let model = Self { convs, device: device.clone() };
        for name in model.convs.keys() {
            if !model_uses(name) {
                return Err(bad(format!("unexpected convolution {name}")));
            }
        }
        Ok(model)
    }

    /// Loads the weights from `data/fid/` under `root`, or from `$CONDOR_FID_WEIGHTS` when it is set.
    pub fn load_default(root: &Path, device: &Device) -> Result<Self> {
        let path =
            std::env::var_os("CONDOR_FID_WEIGHTS").map(PathBuf::from).unwrap_or_else(|| root.join(DEFAULT_WEIGHTS));
        Self::load(&path, device)
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn conv(&self, name: &str, x: &Tensor) -> Result<Tensor> {
        let conv = self.convs.get(name).ok_or_else(|| Error::Input(format!("missing convolution {name}")))?;
        conv.forward(x)
    }

    fn chain(&self, prefix: &str, names: &[&str], x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for n in names {
            let name = if prefix.is_empty() { n.to_string() } else { format!("{prefix}.{n}") };
            h = self.conv(&name, &h)?;
        }
        Ok(h)
    }

    /// Block A (35x35): 1x1; 1x1 -> 5x5; 1x1 -> 3x3 -> 3x3; 3x3 average pool -> 1x1.
    fn block_a(&self, p: &str, x: &Tensor) -> Result<Tensor> {
        let a = self.conv(&format!("{p}.conv"), x)?;
        let b = self.chain(&format!("{p}.tower"), &["conv", "conv_1"], x)?;
        let c = self.chain(&format!("{p}.tower_1"), &["conv", "conv_1", "conv_2"], x)?;
        let d = self.conv(&format!("{p}.tower_2.conv"), &avg_pool_same(x)?)?;
        Ok(Tensor::cat(&[a, b, c, d], 1)?)
    }

    /// Block B (35 -> 17): 3x3 stride 2; 1x1 -> 3x3 -> 3x3 stride 2; max pool.
    fn block_b(&self, p: &str, x: &Tensor) -> Result<Tensor> {
        let a = self.conv(&format!("{p}.conv"), x)?;
        let b = self.chain(&format!("{p}.tower"), &["conv", "conv_1", "conv_2"], x)?;
        Ok(Tensor::cat(&[a, b, max_pool_s2(x)?], 1)?)
    }

    /// Block C (17x17): factorised 7x7 towers.
    fn block_c(&self, p: &str, x: &Tensor) -> Result<Tensor> {
        let a = self.conv(&format!("{p}.conv"), x)?;
        let b = self.chain(&format!("{p}.tower"), &["conv", "conv_1", "conv_2"], x)?;
        let c = self.chain(&format!("{p}.tower_1"), &["conv", "conv_1", "conv_2", "conv_3", "conv_4"], x)?;
        let d = self.conv(&format!("{p}.tower_2.conv"), &avg_pool_same(x)?)?;
        Ok(Tensor::cat(&[a, b, c, d], 1)?)
    }

    /// Block D (17 -> 8).
    fn block_d(&self, p: &str, x: &Tensor) -> Result<Tensor> {
        let a = self.chain(&format!("{p}.tower"), &["conv", "conv_1"], x)?;
        let b = self.chain(&format!("{p}.tower_1"), &["conv", "conv_1", "conv_2", "conv_3"], x)?;
        Ok(Tensor::cat(&[a, b, max_pool_s2(x)?], 1)?)
    }

    /// Block E (8x8); the graph's first E block pools by average, the second by max.
    fn block_e(&self, p: &str, x: &Tensor, max_pool: bool) -> Result<Tensor> {
        let c = |n: &str, h: &Tensor| self.conv(&format!("{p}.{n}"), h);
        let a = c("tower_conv", x)?;
        let b = c("tower_1_conv_1", &c("tower_1_conv", x)?)?;
        let pooled = if max_pool { max_pool_same(x)? } else { avg_pool_same(x)? };
        let parts = [
            c("conv", x)?,
            c("tower_mixed_conv", &a)?,
            c("tower_mixed_conv_1", &a)?,
            c("tower_1_mixed_conv", &b)?,
            c("tower_1_mixed_conv_1", &b)?,
            c("tower_2_conv", &pooled)?,
        ];
        Ok(Tensor::cat(&parts, 1)?)
    }

    /// Pool-3 features `(B, 2048)` of network inputs `(B, 3, 299, 299)` already scaled to the graph's range.
    pub fn forward_scaled(&self, x: &Tensor) -> Result<Tensor> {
        match x.dims() {
            [_, 3, INPUT_SIDE, INPUT_SIDE] => {}
            d => return Err(Error::Input(format!("the Inception network reads (B, 3, 299, 299), got {d:?}"))),
        }
        let mut h = self.chain("", &["conv", "conv_1", "conv_2"], x)?;
        h = max_pool_s2(&h)?;
        h = self.chain("", &["conv_3", "conv_4"], &h)?;
        h = max_pool_s2(&h)?;
        for p in ["mixed", "mixed_1", "mixed_2"] {
            h = self.block_a(p, &h)?;
        }
        h = self.block_b("mixed_3", &h)?;
        for p in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {
            h = self.block_c(p, &h)?;
        }
        h = self.block_d("mixed_8", &h)?;
        h = self.block_e("mixed_9", &h, false)?;
        h = self.block_e("mixed_10", &h, true)?;
        Ok(h.mean(D::Minus1)?.mean(D::Minus1)?)
    }

    /// Pool-3 features `(B, 2048)` of RGB images `(B, 3, H, W)` with values in 0..=255: TF's legacy
    /// bilinear resize to 299x299, scaling to (x - 128) / 128, the network.
    pub fn features_0_255(&self, images: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = images.dims4()?;
        if c != 3 || h == 0 || w == 0 || b == 0 {
            return Err(Error::Input(format!("expected a batch of RGB images (B, 3, H, W), got {:?}", images.dims())));
        }
        let x = images.to_device(&self.device)?.to_dtype(DType::F32)?;
        let x = resize_tf_bilinear(&x, INPUT_SIDE, INPUT_SIDE)?;
        self.forward_scaled(&((x - 128.0)? / 128.0)?)
    }

    /// Pool-3 features of generator outputs `(B, 3, H, W)` in [-1, 1]: quantised to 8 bits as when
    /// saved to PNG ((x + 1) * 127.5, rounded, clamped), then [`Self::features_0_255`].
    pub fn features_of_samples(&self, images: &Tensor) -> Result<Tensor> {
        let q = ((images.to_dtype(DType::F32)? + 1.0)? * 127.5)?.round()?.clamp(0f32, 255f32)?;
        self.features_0_255(&q)
    }

    /// Features of many samples in [-1, 1], `batch` images at a time, as rows of f32.
    pub fn features_batched(&self, images: &Tensor, batch: usize) -> Result<Vec<Vec<f32>>> {
        let n = images.dim(0)?;
        let mut rows = Vec::with_capacity(n);
        for start in (0..n).step_by(batch.max(1)) {
            let chunk = images.narrow(0, start, batch.max(1).min(n - start))?;
            rows.extend(self.features_of_samples(&chunk)?.to_dtype(DType::F32)?.to_vec2::<f32>()?);
        }
        Ok(rows)
    }
}

/// Stride and zero padding of a convolution of the graph, from its name and kernel size: the stem's
/// first, second and fifth convolutions and every stride-2 convolution are unpadded, the rest keep size.
fn geometry(name: &str, kh: usize, kw: usize) -> (usize, (usize, usize)) {
    const STRIDE_2: [&str; 5] =
        ["conv", "mixed_3.conv", "mixed_3.tower.conv_2", "mixed_8.tower.conv_1", "mixed_8.tower_1.conv_3"];
    if STRIDE_2.contains(&name) {
        (2, (0, 0))
    } else if name == "conv_1" || name == "conv_4" {
        (1, (0, 0))
    } else {
        (1, (kh / 2, kw / 2))
    }
}

fn model_uses(name: &str) -> bool {
    let stem = ["conv", "conv_1", "conv_2", "conv_3", "conv_4"];
    stem.contains(&name) || name.starts_with("mixed")
}

/// Interpolation matrix `(out, in)` of TF's legacy bilinear resize (align_corners = false, no
/// half-pixel centres): output i reads input position i * in / out, clamped at the last pixel.
fn tf_bilinear_matrix(input: usize, output: usize) -> Vec<f32> {
    let mut m = vec![0f32; output * input];
    let scale = input as f64 / output as f64;
    for i in 0..output {
        let src = i as f64 * scale;
        let i0 = (src.floor() as usize).min(input - 1);
        let i1 = (i0 + 1).min(input - 1);
        let frac = (src - i0 as f64) as f32;
        m[i * input + i0] += 1.0 - frac;
        m[i * input + i1] += frac;
    }
    m
}

/// Resizes `(B, C, H, W)` to `(B, C, out_h, out_w)` with TF's legacy bilinear resize, as two matrix
/// products (rows, then columns).
pub fn resize_tf_bilinear(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let dev = x.device();
    let ry = Tensor::from_vec(tf_bilinear_matrix(h, out_h), (out_h, h), dev)?.to_dtype(x.dtype())?;
    let rx = Tensor::from_vec(tf_bilinear_matrix(w, out_w), (out_w, w), dev)?.to_dtype(x.dtype())?;
    let cols = x.reshape((b * c * h, w))?.matmul(&rx.t()?)?.reshape((b * c, h, out_w))?;
    let rows = ry.broadcast_as((b * c, out_h, h))?.contiguous()?.matmul(&cols)?;
    Ok(rows.reshape((b, c, out_h, out_w))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_bilinear_resize_reads_i_times_in_over_out() {
        // 4 -> 8: output i reads position i / 2, so odd outputs average two neighbours and the last
        // output (position 3.5) is clamped to the last input.
        let x = Tensor::new(&[0f32, 10., 20., 40.], &Device::Cpu).unwrap().reshape((1, 1, 1, 4)).unwrap();
        let y = resize_tf_bilinear(&x, 1, 8).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, vec![0., 5., 10., 15., 20., 30., 40., 40.]);
        // Same size is the identity.
        let z = resize_tf_bilinear(&x, 1, 4).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(z, vec![0., 10., 20., 40.]);
    }

    #[test]
    fn average_pool_does_not_count_padding() {
        let x = Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu).unwrap();
        let y = avg_pool_same(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(y.iter().all(|v| (v - 1.0).abs() < 1e-6), "{y:?}");
        let x = Tensor::arange(0f32, 9., &Device::Cpu).unwrap().reshape((1, 1, 3, 3)).unwrap();
        let y = avg_pool_same(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Corner (0, 0) averages 0, 1, 3, 4; the centre averages all nine.
        assert!((y[0] - 2.0).abs() < 1e-6 && (y[4] - 4.0).abs() < 1e-6, "{y:?}");
    }

    #[test]
    fn missing_weights_name_the_recipe() {
        let err = FidInception::load(Path::new("/nonexistent/inception.safetensors"), &Device::Cpu).err().unwrap();
        assert!(err.to_string().contains("just fid-weights"), "{err}");
    }
}
