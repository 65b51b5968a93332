//! A decoded image as Pillow's `convert("RGB")` or `convert("L")` gives it: 8-bit planes, checked
//! against Pillow 13 (`crates/oodscope/tests/preprocess.rs`, and the unit tests below for what they pin down).
//!
//! - Alpha is dropped, never composited; grey is replicated to three channels.
//! - RGB → L is ITU-R 601-2 in integers: `(R·19595 + G·38470 + B·7471 + 0x8000) >> 16`.
//! - 16-bit PNGs: Pillow opens grey as mode `I;16`, whose conversion to RGB or L clips each value to
//!   255 (it does not scale); 16-bit RGB, RGBA and grey+alpha are read as their high bytes.
//! - Palette images arrive expanded by the decoder, as Pillow's palette lookup expands them.
//! - Formats with float samples (none that Pillow reads through torchvision's pipeline) go through
//!   the `image` crate's own 8-bit conversion.

use image::DynamicImage;

use super::pil::Planes8;

/// `convert("L")` of one RGB pixel.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// The image as Pillow would hand it to `Resize` for a model of `channels` (1: L, 3: RGB).
pub fn pil_planes(image: &DynamicImage, channels: usize) -> Planes8 {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let (src_channels, samples): (usize, Vec<u8>) = match image {
        DynamicImage::ImageLuma8(i) => (1, i.as_raw().clone()),
        DynamicImage::ImageLumaA8(i) => (1, i.as_raw().iter().step_by(2).copied().collect()),
        DynamicImage::ImageRgb8(i) => (3, i.as_raw().clone()),
        DynamicImage::ImageRgba8(i) => (3, keep_first(i.as_raw(), 4, 3, |v| v)),
        DynamicImage::ImageLuma16(i) => (1, i.as_raw().iter().map(|&v| v.min(255) as u8).collect()),
        DynamicImage::ImageLumaA16(i) => (1, keep_first(i.as_raw(), 2, 1, high_byte)),
        DynamicImage::ImageRgb16(i) => (3, keep_first(i.as_raw(), 3, 3, high_byte)),
        DynamicImage::ImageRgba16(i) => (3, keep_first(i.as_raw(), 4, 3, high_byte)),
        other => (3, other.to_rgb8().into_raw()),
    };
    let n = width * height;
    let data: Vec<u8> = match (src_channels, channels) {
        (1, 1) => samples,
        (1, _) => samples.iter().cycle().take(3 * n).copied().collect(),
        (_, 1) => samples.chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect(),
        _ => (0..3)
            .flat_map(|c| samples.iter().skip(c).step_by(3).copied())
            .collect(),
    };
    Planes8 {
        channels: if channels == 1 { 1 } else { 3 },
        height,
        width,
        data,
    }
}

fn high_byte(v: u16) -> u8 {
    (v >> 8) as u8
}

/// The first `keep` samples of each `stride`-sample pixel, converted.
fn keep_first<T: Copy>(raw: &[T], stride: usize, keep: usize, convert: impl Fn(T) -> u8) -> Vec<u8> {
    raw.chunks_exact(stride)
        .flat_map(|px| px[..keep].iter().map(|&v| convert(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_pillow() {
        // Pillow 13: Image.fromarray(...).convert("L") of these pixels.
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
        assert_eq!(luma(13, 200, 77), 130);
        assert_eq!(luma(255, 255, 255), 255);
    }

    #[test]
    fn sixteen_bit_as_pillow_converts() {
        let vals = [0u16, 1, 255, 256, 300, 32767, 65535, 40000];
        // Grey (I;16): clipped to 255.
        let grey = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(8, 1, vals.to_vec()).unwrap();
        let out = pil_planes(&DynamicImage::ImageLuma16(grey), 3);
        assert_eq!(&out.data[..8], &[0, 1, 255, 255, 255, 255, 255, 255]);
        // RGB: high bytes; L of them as Pillow gives (92 for (0, 156, 0)).
        let rgb: Vec<u16> = vals.iter().flat_map(|&v| [v, 40000 - v.min(40000), v]).collect();
        let rgb = image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(8, 1, rgb).unwrap();
        let out = pil_planes(&DynamicImage::ImageRgb16(rgb), 3);
        assert_eq!(&out.data[..8], &[0, 0, 0, 1, 1, 127, 255, 156]);
        assert_eq!(luma(0, 156, 0), 92);
    }

    #[test]
    fn alpha_is_dropped_not_composited() {
        let img = image::RgbaImage::from_raw(1, 1, vec![200, 100, 50, 0]).unwrap();
        let out = pil_planes(&DynamicImage::ImageRgba8(img), 3);
        assert_eq!(out.data, vec![200, 100, 50]);
        let la = image::GrayAlphaImage::from_raw(2, 1, vec![10, 0, 200, 255]).unwrap();
        assert_eq!(pil_planes(&DynamicImage::ImageLumaA8(la), 1).data, vec![10, 200]);
    }
}
