//! Resampling of planar float images as torchvision does it on tensors: antialiased bilinear and
//! bicubic (PyTorch's `interpolate(..., antialias=True)`), nearest (`mode="nearest"`), and the
//! centre crop (torchvision's `CenterCrop`, zero padding included), the last for any pixel type.

use std::borrow::Cow;

/// A planar image: `channels` planes of `height × width` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes<T = f32> {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<T>,
}

impl<T> Planes<T> {
    pub fn plane(&self, c: usize) -> &[T] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }
}

/// Resizes to `out_h × out_w` with antialiased bilinear filtering, align_corners = false.
/// Matches ATen's `_upsample_bilinear2d_aa` on float tensors: separable, width first, f32 weights.
pub fn resize_bilinear(img: &Planes, out_h: usize, out_w: usize) -> Planes {
    resize_aa(img, out_h, out_w, AaFilter::Triangle)
}

/// Resizes with antialiased bicubic filtering (a = −0.5), as ATen's `_upsample_bicubic2d_aa`.
pub fn resize_bicubic(img: &Planes, out_h: usize, out_w: usize) -> Planes {
    resize_aa(img, out_h, out_w, AaFilter::Cubic)
}

fn resize_aa(img: &Planes, out_h: usize, out_w: usize, filter: AaFilter) -> Planes {
    // Borrowed until a pass makes a new image: a copy of a large input would double its peak.
    let mut cur = Cow::Borrowed(img);
    if cur.width != out_w {
        let taps = filter_taps(cur.width, out_w, filter);
        cur = Cow::Owned(resample_rows(&cur, out_w, &taps));
    }
    if cur.height != out_h {
        let taps = filter_taps(cur.height, out_h, filter);
        cur = Cow::Owned(resample_columns(&cur, out_h, &taps));
    }
    cur.into_owned()
}

/// Nearest neighbour as ATen's `upsample_nearest2d` (torchvision's `NEAREST` on tensors): source
/// index `min(⌊i · (in / out)⌋, in − 1)` in f32, `i / 2` when doubling, `i` when the size is kept.
pub fn resize_nearest<T: Copy>(img: &Planes<T>, out_h: usize, out_w: usize) -> Planes<T> {
    let rows: Vec<usize> = (0..out_h).map(|i| nearest_index(i, img.height, out_h)).collect();
    let columns: Vec<usize> = (0..out_w).map(|i| nearest_index(i, img.width, out_w)).collect();
    let mut data = Vec::with_capacity(img.channels * out_h * out_w);
    for c in 0..img.channels {
        let plane = img.plane(c);
        for &y in &rows {
            data.extend(columns.iter().map(|&x| plane[y * img.width + x]));
        }
    }
    Planes {
        channels: img.channels,
        height: out_h,
        width: out_w,
        data,
    }
}

fn nearest_index(i: usize, in_size: usize, out_size: usize) -> usize {
    if out_size == in_size {
        i
    } else if out_size == 2 * in_size {
        i >> 1
    } else {
        let scale = in_size as f32 / out_size as f32;
        ((i as f32 * scale).floor() as usize).min(in_size - 1)
    }
}

/// torchvision's `CenterCrop((h, w))`: offsets `round((size − crop) / 2)` (half to even); where
/// the image is smaller than the crop it is first padded with zeros, `⌊(crop − size) / 2⌋` before.
pub fn center_crop<T: Copy + Default>(img: &Planes<T>, h: usize, w: usize) -> Planes<T> {
    let top = crop_offset(img.height, h);
    let left = crop_offset(img.width, w);
    let mut data = Vec::with_capacity(img.channels * h * w);
    for c in 0..img.channels {
        let plane = img.plane(c);
        for y in 0..h as isize {
            let sy = y + top;
            if sy < 0 || sy >= img.height as isize {
                data.extend(std::iter::repeat_n(T::default(), w));
                continue;
            }
            let row = &plane[sy as usize * img.width..(sy as usize + 1) * img.width];
            data.extend((0..w as isize).map(|x| {
                let sx = x + left;
                if sx < 0 || sx >= img.width as isize {
                    T::default()
                } else {
                    row[sx as usize]
                }
            }));
        }
    }
    Planes {
        channels: img.channels,
        height: h,
        width: w,
        data,
    }
}

/// Where the crop starts in the source along one axis (negative: padding comes first).
fn crop_offset(size: usize, crop: usize) -> isize {
    if crop > size {
        -(((crop - size) / 2) as isize)
    } else {
        half_rounded_even(size - crop) as isize
    }
}

/// `round(d / 2)` with Python's round-half-to-even, as torchvision's centre crop computes offsets.
fn half_rounded_even(d: usize) -> usize {
    let q = d / 2;
    if d % 2 == 1 && q % 2 == 1 { q + 1 } else { q }
}

#[derive(Debug, Clone, Copy)]
enum AaFilter {
    /// Bilinear: support 1 (times the scale when shrinking).
    Triangle,
    /// Keys cubic, a = −0.5: support 2.
    Cubic,
}

impl AaFilter {
    fn support(self) -> f32 {
        match self {
            Self::Triangle => 1.0,
            Self::Cubic => 2.0,
        }
    }

    fn weight(self, x: f32) -> f32 {
        let x = x.abs();
        match self {
            Self::Triangle => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Cubic => {
                const A: f32 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// The input span and normalised weights for each output position along one axis.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

fn filter_taps(in_size: usize, out_size: usize, filter: AaFilter) -> Taps {
    let scale = in_size as f32 / out_size as f32;
    let support = if scale >= 1.0 {
        filter.support() * scale
    } else {
        filter.support()
    };
    let inv_scale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for i in 0..out_size {
        let center = scale * (i as f32 + 0.5);
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let mut w: Vec<f32> = (xmin..xmax)
            .map(|j| filter.weight((j as f32 - center + 0.5) * inv_scale))
            .collect();
        let total: f32 = w.iter().sum();
        if total != 0.0 {
            w.iter_mut().for_each(|v| *v /= total);
        }
        first.push(xmin);
        weights.push(w);
    }
    Taps { first, weights }
}

fn resample_rows(img: &Planes, out_w: usize, taps: &Taps) -> Planes {
    let mut data = Vec::with_capacity(img.channels * img.height * out_w);
    for row in img.data.chunks_exact(img.width) {
        for (x, w) in taps.weights.iter().enumerate() {
            let src = &row[taps.first[x]..taps.first[x] + w.len()];
            data.push(src.iter().zip(w).fold(0.0f32, |acc, (v, wt)| acc + v * wt));
        }
    }
    Planes {
        channels: img.channels,
        height: img.height,
        width: out_w,
        data,
    }
}

fn resample_columns(img: &Planes, out_h: usize, taps: &Taps) -> Planes {
    let width = img.width;
    let mut data = vec![0.0f32; img.channels * out_h * width];
    for c in 0..img.channels {
        let plane = img.plane(c);
        let out = &mut data[c * out_h * width..(c + 1) * out_h * width];
        for (y, w) in taps.weights.iter().enumerate() {
            let out_row = &mut out[y * width..(y + 1) * width];
            for (k, wt) in w.iter().enumerate() {
                let src = &plane[(taps.first[y] + k) * width..(taps.first[y] + k + 1) * width];
                out_row.iter_mut().zip(src).for_each(|(o, v)| *o += v * wt);
            }
        }
    }
    Planes {
        channels: img.channels,
        height: out_h,
        width,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> Planes {
        Planes {
            channels: 1,
            height: h,
            width: w,
            data: (0..h * w).map(|i| i as f32).collect(),
        }
    }

    #[test]
    fn same_size_is_identity() {
        let img = ramp(5, 7);
        assert_eq!(resize_bilinear(&img, 5, 7), img);
    }

    #[test]
    fn halving_averages_pairs() {
        let img = Planes {
            channels: 1,
            height: 1,
            width: 4,
            data: vec![0.0, 2.0, 4.0, 6.0],
        };
        let out = resize_bilinear(&img, 1, 2);
        // Scale 2, triangle of support 2: weights 1/4, 3/4, 3/4, 1/4 around each centre, clipped at the edges.
        assert_eq!(out.data.len(), 2);
        assert!(
            (out.data[0] - (0.0 * 3.0 + 2.0 * 3.0 + 4.0 * 1.0) / 7.0).abs() < 1e-6,
            "{:?}",
            out.data
        );
    }

    #[test]
    fn center_crop_takes_the_middle() {
        let img = ramp(4, 8);
        let out = center_crop(&img, 4, 4);
        assert_eq!(out.data[0], 2.0);
        assert_eq!(out.width, 4);
    }

    #[test]
    fn center_crop_pads_small_images_with_zeros() {
        // torchvision: pad left (4 − 2) // 2 = 1, right 1; top (3 − 1) // 2 = 1, bottom 1.
        let img = Planes {
            channels: 1,
            height: 1,
            width: 2,
            data: vec![5u8, 6],
        };
        let out = center_crop(&img, 3, 4);
        assert_eq!(out.data, vec![0, 0, 0, 0, 0, 5, 6, 0, 0, 0, 0, 0]);
        // Odd padding puts the extra column after: 1 → 4 pads 1 before, 2 after.
        let img = Planes {
            channels: 1,
            height: 1,
            width: 1,
            data: vec![9u8],
        };
        assert_eq!(center_crop(&img, 1, 4).data, vec![0, 9, 0, 0]);
    }

    #[test]
    fn nearest_follows_aten() {
        // 5 → 3: scale 5/3: ⌊0⌋, ⌊1.67⌋, ⌊3.33⌋ = 0, 1, 3 (Pillow would take 0, 2, 4).
        let img = ramp(1, 5);
        assert_eq!(resize_nearest(&img, 1, 3).data, vec![0.0, 1.0, 3.0]);
        let img = ramp(1, 2);
        assert_eq!(resize_nearest(&img, 1, 4).data, vec![0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn bicubic_keeps_constants() {
        let img = Planes {
            channels: 1,
            height: 5,
            width: 7,
            data: vec![0.25; 35],
        };
        let out = resize_bicubic(&img, 3, 11);
        assert!(out.data.iter().all(|v| (v - 0.25).abs() < 1e-6), "{:?}", out.data);
    }

    #[test]
    fn rounding_matches_python() {
        assert_eq!([0, 1, 2, 3, 5, 7].map(half_rounded_even), [0, 0, 1, 2, 2, 4]);
    }
}
