//! PyTorch's CPU resize of uint8 images, bit for bit: the antialiased bilinear and bicubic kernels
//! that `torchvision.transforms.v2.functional.resize(uint8 tensor, antialias=True)` runs on a CPU
//! with AVX2 (or AVX-512), and the `NEAREST_EXACT` rule; with the Hugging Face image processors'
//! centre crop. This is what `backend = "hf"` reproduces: transformers 5's default ("fast",
//! torchvision) image processors resize the decoded uint8 image this way.
//!
//! Why by hand: the data crate has no tch (layers, `scripts/check_layers.py`), and neither Pillow
//! ([`super::pil`]) nor the float resize ([`super::resize`]) gives these pixels. Measured on the
//! repository's photos (`assets/internet`, 8 images from 40×30 to 1000×872, 5 sizes each, up and
//! down, both filters): Pillow 13's 8-bit resize is up to 2 levels off, in up to 4.4% of the values
//! (bilinear; 1% bicubic), because PyTorch
//! - keeps its weights as `i16` with a per-axis precision (the largest `p < 22` with
//!   `round(max weight · 2^(p+1)) < 2^15`), where Pillow uses `i32` with 22 bits;
//! - always runs the horizontal pass first (Pillow 13 runs the vertical one first when the height
//!   shrinks more than twice as much as the width);
//! - writes the bicubic tail as `((a·x − 5a)·x + 8a)·x − 4a` (Pillow: `(((x − 5)·x + 8)·x − 4)·a`),
//!   which rounds otherwise in `f64`, and so can move a weight by one step.
//!
//! What this module reproduces (`aten/src/ATen/native/cpu/UpSampleKernel.cpp`,
//! `_compute_indices_min_size_weights_aa` and `_compute_index_ranges_int16_weights`, and
//! `UpSampleKernelAVXAntialias.h`):
//! - per axis, `scale = in / out` (`f64`), `support = (taps / 2)·max(scale, 1)` (taps 2 bilinear,
//!   4 bicubic), centre `scale·(i + 0.5)`, window `[⌊centre − support + 0.5⌋, ⌊centre + support +
//!   0.5⌋)` clipped to the image, weights `filter((j − centre + 0.5) / max(scale, 1))` normalised to
//!   sum 1;
//! - each weight becomes `trunc(w·2^p ± 0.5)` (`i16`), `p` as above from the axis's largest weight;
//! - a pass's sum starts at `2^(p−1)`, adds `pixel·weight` in `i32` (exact: the SIMD lanes' order
//!   cannot change an integer sum), and keeps `clamp(sum >> p, 0, 255)`;
//! - horizontal pass first, then vertical; a pass whose size does not change is skipped.
//!
//! Measured: a transcription of these rules in Python gives 0 differences to torchvision 0.28 /
//! torch 2.13 (x86-64, AVX-512) in those 80 resizes; this module gives the processor's pixels
//! exactly on the 16 pipelines of the `hf_model` test (8 photos, a ViT's bilinear resize and a
//! ConvNeXt's bicubic resize and crop). On a CPU without AVX2 torchvision resizes bilinear uint8
//! images through float32 (±1 level at some pixels); bicubic uint8 stays in PyTorch's integer
//! kernel on every CPU (its generic, non-AVX form there: not measured here).

use super::pil::Planes8;

/// The filters PyTorch's uint8 kernel has (the ones Hugging Face processors name with PIL codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchFilter {
    /// `InterpolationMode.NEAREST_EXACT`: source `min(⌊(i + 0.5)·in/out⌋, in − 1)` (f32).
    NearestExact,
    /// `InterpolationMode.BILINEAR`, antialiased: triangle, support 1 (scaled when shrinking).
    Bilinear,
    /// `InterpolationMode.BICUBIC`, antialiased: Keys cubic with a = −0.5, support 2.
    Bicubic,
}

/// `resize(img, [out_h, out_w], interpolation, antialias=True)` on every plane.
pub fn resize(img: &Planes8, out_h: usize, out_w: usize, filter: TorchFilter) -> Planes8 {
    if img.height == out_h && img.width == out_w {
        return img.clone();
    }
    let taps = match filter {
        TorchFilter::NearestExact => return resize_nearest_exact(img, out_h, out_w),
        TorchFilter::Bilinear => 2,
        TorchFilter::Bicubic => 4,
    };
    let kernel = move |x: f64| match filter {
        TorchFilter::Bicubic => bicubic(x),
        _ => bilinear(x),
    };
    let horizontal = (img.width != out_w).then(|| Taps::new(img.width, out_w, taps, kernel));
    let vertical = (img.height != out_h).then(|| Taps::new(img.height, out_h, taps, kernel));
    let mut data = Vec::with_capacity(img.channels * out_h * out_w);
    for c in 0..img.channels {
        let plane = img.plane(c);
        let across = match &horizontal {
            Some(h) => convolve_rows(plane, img.width, h),
            None => plane.to_vec(),
        };
        match &vertical {
            Some(v) => data.extend(convolve_columns(&across, out_w, v)),
            None => data.extend(across),
        }
    }
    Planes8 {
        channels: img.channels,
        height: out_h,
        width: out_w,
        data,
    }
}

/// The Hugging Face processors' `center_crop` (transformers 5, torchvision backend): offsets
/// `int((size − crop) / 2)` (truncated, where torchvision's `CenterCrop` rounds half to even); an
/// image smaller than the crop is first padded with zeros, `⌊(crop − size) / 2⌋` before.
pub fn hf_center_crop(img: &Planes8, h: usize, w: usize) -> Planes8 {
    let offset = |size: usize, crop: usize| -> isize {
        if crop > size {
            -(((crop - size) / 2) as isize)
        } else {
            ((size - crop) / 2) as isize
        }
    };
    let (top, left) = (offset(img.height, h), offset(img.width, w));
    let mut data = Vec::with_capacity(img.channels * h * w);
    for c in 0..img.channels {
        let plane = img.plane(c);
        for y in 0..h as isize {
            let sy = y + top;
            for x in 0..w as isize {
                let sx = x + left;
                let inside = sy >= 0 && sx >= 0 && (sy as usize) < img.height && (sx as usize) < img.width;
                data.push(if inside {
                    plane[sy as usize * img.width + sx as usize]
                } else {
                    0
                });
            }
        }
    }
    Planes8 {
        channels: img.channels,
        height: h,
        width: w,
        data,
    }
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// ATen's `cubic_convolution1` / `cubic_convolution2` with a = −0.5, in their own operation order.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// The source window and `i16` weights of every output position along one axis.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i16>>,
    /// The weights' fractional bits.
    precision: u32,
}

impl Taps {
    fn new(in_size: usize, out_size: usize, taps: usize, kernel: impl Fn(f64) -> f64) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let support = if scale >= 1.0 {
            (taps as f64 * 0.5) * scale
        } else {
            taps as f64 * 0.5
        };
        let max_taps = support.ceil() as i64 * 2 + 1;
        let inv_scale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
        let mut first = Vec::with_capacity(out_size);
        let mut float_weights = Vec::with_capacity(out_size);
        let mut max_weight = 0.0f64;
        for i in 0..out_size {
            let center = scale * (i as f64 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xsize = (((center + support + 0.5) as i64).min(in_size as i64) - xmin).clamp(0, max_taps);
            let mut w: Vec<f64> = (0..xsize)
                .map(|j| kernel(((j + xmin) as f64 - center + 0.5) * inv_scale))
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                for v in &mut w {
                    *v /= total;
                    max_weight = max_weight.max(*v);
                }
            }
            first.push(xmin as usize);
            float_weights.push(w);
        }
        let mut precision = 0u32;
        while precision < 22 {
            if (0.5 + max_weight * f64::from(1u32 << (precision + 1))) as i32 >= 1 << 15 {
                break;
            }
            precision += 1;
        }
        let unit = f64::from(1u32 << precision);
        let weights = float_weights
            .iter()
            .map(|w| {
                w.iter()
                    .map(|&v| {
                        let v = v * unit;
                        (if v < 0.0 { (-0.5 + v) as i32 } else { (0.5 + v) as i32 }) as i16
                    })
                    .collect()
            })
            .collect();
        Taps {
            first,
            weights,
            precision,
        }
    }

    fn clip(&self, sum: i32) -> u8 {
        (sum >> self.precision).clamp(0, 255) as u8
    }

    fn half(&self) -> i32 {
        // ATen: `1 << (coefs_precision - 1)`; a precision of 0 (a weight of 2^15 or more: never
        // for normalised weights) would shift by −1, so it starts at 0.
        if self.precision == 0 {
            0
        } else {
            1 << (self.precision - 1)
        }
    }
}

fn convolve_rows(plane: &[u8], width: usize, taps: &Taps) -> Vec<u8> {
    let out_w = taps.first.len();
    let mut out = Vec::with_capacity(plane.len() / width.max(1) * out_w);
    for row in plane.chunks_exact(width) {
        for (x, w) in taps.weights.iter().enumerate() {
            let src = &row[taps.first[x]..taps.first[x] + w.len()];
            let sum = src
                .iter()
                .zip(w)
                .fold(taps.half(), |acc, (&p, &w)| acc + i32::from(p) * i32::from(w));
            out.push(taps.clip(sum));
        }
    }
    out
}

fn convolve_columns(plane: &[u8], width: usize, taps: &Taps) -> Vec<u8> {
    let out_h = taps.first.len();
    let mut out = Vec::with_capacity(out_h * width);
    let mut sums = vec![0i32; width];
    for (y, w) in taps.weights.iter().enumerate() {
        sums.fill(taps.half());
        for (k, &wt) in w.iter().enumerate() {
            let row = taps.first[y] + k;
            let src = &plane[row * width..(row + 1) * width];
            sums.iter_mut()
                .zip(src)
                .for_each(|(s, &p)| *s += i32::from(p) * i32::from(wt));
        }
        out.extend(sums.iter().map(|&s| taps.clip(s)));
    }
    out
}

/// ATen's `nearest_exact_idx`: `min(⌊(i + 0.5)·scale⌋, in − 1)` with `scale = in / out` in f32.
fn resize_nearest_exact(img: &Planes8, out_h: usize, out_w: usize) -> Planes8 {
    let index = |i: usize, in_size: usize, out_size: usize| -> usize {
        let scale = in_size as f32 / out_size as f32;
        (((i as f32 + 0.5) * scale).floor() as usize).min(in_size - 1)
    };
    let rows: Vec<usize> = (0..out_h).map(|i| index(i, img.height, out_h)).collect();
    let columns: Vec<usize> = (0..out_w).map(|i| index(i, img.width, out_w)).collect();
    let mut data = Vec::with_capacity(img.channels * out_h * out_w);
    for c in 0..img.channels {
        let plane = img.plane(c);
        for &y in &rows {
            data.extend(columns.iter().map(|&x| plane[y * img.width + x]));
        }
    }
    Planes8 {
        channels: img.channels,
        height: out_h,
        width: out_w,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(h: usize, w: usize, f: impl Fn(usize, usize) -> u8) -> Planes8 {
        Planes8 {
            channels: 1,
            height: h,
            width: w,
            data: (0..h * w).map(|i| f(i / w, i % w)).collect(),
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        let img = grey(7, 9, |_, _| 200);
        for f in [TorchFilter::NearestExact, TorchFilter::Bilinear, TorchFilter::Bicubic] {
            let out = resize(&img, 4, 13, f);
            assert!(out.data.iter().all(|&v| v == 200), "{f:?}: {:?}", out.data);
        }
    }

    #[test]
    fn halving_with_bilinear_averages_in_i16_weights() {
        // Scale 2, support 2: weights 3/7, 3/7, 1/7 and 1/7, 3/7, 3/7 (clipped at the edges); the
        // largest, 3/7, gives precision 16: round(3/7 · 2^16) = 28087 < 2^15, · 2^17 is not.
        let img = grey(1, 4, |_, x| [0, 80, 160, 240][x]);
        let taps = Taps::new(4, 2, 2, bilinear);
        assert_eq!(taps.precision, 16);
        // (0·3 + 80·3 + 160·1) / 7 = 57.14 and (80·1 + 160·3 + 240·3) / 7 = 182.86.
        assert_eq!(resize(&img, 1, 2, TorchFilter::Bilinear).data, vec![57, 183]);
    }

    #[test]
    fn bicubic_overshoot_is_clipped() {
        let img = grey(1, 8, |_, x| if x < 4 { 0 } else { 255 });
        let out = resize(&img, 1, 13, TorchFilter::Bicubic);
        assert_eq!(out.data.first(), Some(&0));
        assert_eq!(out.data.last(), Some(&255));
    }

    #[test]
    fn nearest_exact_takes_the_centres() {
        // 5 → 3: (i + 0.5)·5/3 = 0.83, 2.5, 4.17 → 0, 2, 4; 2 → 5: 0.2, 0.6, 1.0, 1.4, 1.8.
        let img = grey(1, 5, |_, x| x as u8);
        assert_eq!(resize(&img, 1, 3, TorchFilter::NearestExact).data, vec![0, 2, 4]);
        let img = grey(1, 2, |_, x| x as u8);
        assert_eq!(resize(&img, 1, 5, TorchFilter::NearestExact).data, vec![0, 0, 1, 1, 1]);
    }

    #[test]
    fn hf_crop_truncates_where_torchvision_rounds_half_to_even() {
        // 11 columns to 4: (11 − 4) / 2 = 3.5 → 3 (torchvision: round(3.5) = 4).
        let img = grey(1, 11, |_, x| x as u8);
        assert_eq!(hf_center_crop(&img, 1, 4).data, vec![3, 4, 5, 6]);
        // Smaller than the crop: padded with zeros, 1 before and 2 after for 1 → 4.
        let img = grey(1, 1, |_, _| 9);
        assert_eq!(hf_center_crop(&img, 1, 4).data, vec![0, 9, 0, 0]);
    }
}
