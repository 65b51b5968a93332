//! Resampling of planar f32 images: antialiased bilinear (as PyTorch's `interpolate(mode="bilinear",
//! antialias=True)`) and the centre crop (as torchvision's `CenterCrop`).

/// A planar image: `channels` planes of `height × width` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Planes {
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }
}

/// Resizes to `out_h × out_w` with antialiased bilinear filtering, align_corners = false.
/// Matches ATen's `_upsample_bilinear2d_aa` on float tensors: separable, width first, f32 weights.
pub fn resize_bilinear(img: &Planes, out_h: usize, out_w: usize) -> Planes {
    let mut cur = img.clone();
    if cur.width != out_w {
        let taps = filter_taps(cur.width, out_w);
        cur = resample_rows(&cur, out_w, &taps);
    }
    if cur.height != out_h {
        let taps = filter_taps(cur.height, out_h);
        cur = resample_columns(&cur, out_h, &taps);
    }
    cur
}

/// Scales the shorter side to fit (covering `out_h × out_w`), then cuts out the centre.
pub fn resize_center_crop(img: &Planes, out_h: usize, out_w: usize) -> Planes {
    let (h, w) = (img.height as f64, img.width as f64);
    let (new_h, new_w) = if out_h as f64 / h >= out_w as f64 / w {
        (out_h, ((w * out_h as f64 / h) as usize).max(out_w))
    } else {
        (((h * out_w as f64 / w) as usize).max(out_h), out_w)
    };
    let scaled = resize_bilinear(img, new_h, new_w);
    crop(
        &scaled,
        half_rounded_even(new_h - out_h),
        half_rounded_even(new_w - out_w),
        out_h,
        out_w,
    )
}

/// `round(d / 2)` with Python's round-half-to-even, as torchvision's centre crop computes offsets.
fn half_rounded_even(d: usize) -> usize {
    let q = d / 2;
    if d % 2 == 1 && q % 2 == 1 { q + 1 } else { q }
}

fn crop(img: &Planes, top: usize, left: usize, h: usize, w: usize) -> Planes {
    let mut data = Vec::with_capacity(img.channels * h * w);
    for c in 0..img.channels {
        let plane = img.plane(c);
        for y in top..top + h {
            data.extend_from_slice(&plane[y * img.width + left..y * img.width + left + w]);
        }
    }
    Planes {
        channels: img.channels,
        height: h,
        width: w,
        data,
    }
}

/// The input span and normalised weights for each output position along one axis.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

fn filter_taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f32 / out_size as f32;
    let support = if scale >= 1.0 { scale } else { 1.0 };
    let inv_scale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let triangle = |x: f32| {
        let x = x.abs();
        if x < 1.0 { 1.0 - x } else { 0.0 }
    };
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for i in 0..out_size {
        let center = scale * (i as f32 + 0.5);
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let mut w: Vec<f32> = (xmin..xmax)
            .map(|j| triangle((j as f32 - center + 0.5) * inv_scale))
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
        let out = resize_center_crop(&img, 4, 4);
        assert_eq!(out.data[0], 2.0);
        assert_eq!(out.width, 4);
    }

    #[test]
    fn rounding_matches_python() {
        assert_eq!([0, 1, 2, 3, 5, 7].map(half_rounded_even), [0, 0, 1, 2, 2, 4]);
    }
}
