//! Decoding one image file into the model's input: channels converted, resized and cropped as the
//! card says (torchvision's PIL or tensor pipeline, or a Hugging Face processor's), pixel units in
//! [0, 1].

use std::io::Cursor;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::geometry::Geometry;
use super::jpeg::decode_jpeg;
pub use super::limits::{DecodeLimits, SkipReason};
use super::pil::{self, PilFilter};
use super::pil_convert::pil_planes;
use super::preprocessing::{Backend, Interpolation, ResizeMode};
use super::read::read_image_bytes;
use super::resize::{Planes, center_crop, resize_bicubic, resize_bilinear, resize_nearest};
use super::torch_u8::{self, TorchFilter};

/// Luminance weights for RGB → one channel (ITU-R BT.601, as torchvision's `rgb_to_grayscale`).
pub const LUMA_WEIGHTS: [f32; 3] = [0.2989, 0.587, 0.114];

/// What the model wants: its input size and channels, and how images get there (from the card).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preprocess {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub resize: ResizeMode,
    /// The centre crop after the resize (`None`: none).
    pub crop: Option<(usize, usize)>,
    pub interpolation: Interpolation,
    pub backend: Backend,
    pub limits: DecodeLimits,
}

impl Preprocess {
    /// Straight to `height × width` on tensors, bilinear (a card with no preprocessing fields).
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Preprocess {
            channels,
            height,
            width,
            resize: ResizeMode::Resize,
            crop: None,
            interpolation: Interpolation::Bilinear,
            backend: Backend::Tensor,
            limits: DecodeLimits::default(),
        }
    }

    /// The resize target and crop for an image of `height × width`.
    pub fn geometry(&self, height: usize, width: usize) -> Geometry {
        Geometry::plan(self.resize, self.crop, (self.height, self.width), (height, width))
    }

    /// Number of values in one preprocessed image (C·H·W).
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads, decodes and preprocesses one file into `C·H·W` pixel-unit values (not yet normalised).
/// A FIFO, device or socket is refused without being opened ([`read_image_bytes`]).
pub fn decode_file(path: &Path, pre: &Preprocess) -> Result<Vec<f32>, SkipReason> {
    let bytes = read_image_bytes(path, pre.limits.max_file_bytes)?;
    decode_bytes(&bytes, pre)
}

/// Decodes and preprocesses an in-memory encoded image.
pub fn decode_bytes(bytes: &[u8], pre: &Preprocess) -> Result<Vec<f32>, SkipReason> {
    let mut image = decode_limited(bytes, &pre.limits)?;
    if matches!(pre.backend, Backend::Hf) {
        // transformers' load_image (what its image-classification pipeline opens files with)
        // turns a photo upright by its EXIF orientation (PIL's ImageOps.exif_transpose); a
        // torchvision loader does not, so the other backends leave it as stored.
        image.apply_orientation(exif_orientation(bytes));
    }
    if image.width() == 0 || image.height() == 0 {
        return Err(SkipReason(format!(
            "image is {}×{}: no pixels",
            image.width(),
            image.height()
        )));
    }
    let geometry = pre.geometry(image.height() as usize, image.width() as usize);
    let (h, w) = geometry.resize;
    // A long thin image resized by its shorter side can grow without bound.
    let bytes_needed = h.saturating_mul(w).saturating_mul(pre.channels).saturating_mul(4);
    if bytes_needed as u64 > pre.limits.max_alloc_bytes {
        return Err(SkipReason(format!(
            "image is {}×{}: resized to {w}×{h} it would take {} MB, over the {} MB limit",
            image.width(),
            image.height(),
            bytes_needed >> 20,
            pre.limits.max_alloc_bytes >> 20
        )));
    }
    let data = match pre.backend {
        Backend::Tensor => {
            let planes = to_planes(&image, pre.channels);
            drop(image); // the decoded samples are not needed again: not held through the resize
            let sized = match pre.interpolation {
                Interpolation::Bilinear => resize_bilinear(&planes, h, w),
                Interpolation::Bicubic => resize_bicubic(&planes, h, w),
                Interpolation::Nearest => resize_nearest(&planes, h, w),
            };
            match geometry.crop {
                Some((ch, cw)) => center_crop(&sized, ch, cw).data,
                None => sized.data,
            }
        }
        Backend::Pil => {
            let filter = match pre.interpolation {
                Interpolation::Bilinear => PilFilter::Bilinear,
                Interpolation::Bicubic => PilFilter::Bicubic,
                Interpolation::Nearest => PilFilter::Nearest,
            };
            let sized = pil::resize(&pil_planes(&image, pre.channels), h, w, filter);
            let cropped = match geometry.crop {
                Some((ch, cw)) => center_crop(&sized, ch, cw),
                None => sized,
            };
            // ToTensor: float32(v) / 255.
            cropped.data.iter().map(|&v| f32::from(v) / 255.0).collect()
        }
        Backend::Hf => {
            let filter = match pre.interpolation {
                Interpolation::Bilinear => TorchFilter::Bilinear,
                Interpolation::Bicubic => TorchFilter::Bicubic,
                Interpolation::Nearest => TorchFilter::NearestExact,
            };
            let sized = torch_u8::resize(&pil_planes(&image, pre.channels), h, w, filter);
            let cropped = match geometry.crop {
                Some((ch, cw)) => torch_u8::hf_center_crop(&sized, ch, cw),
                None => sized,
            };
            // The processor's rescale (by 1/255) fused into its normalisation: the card's
            // mean/std then act on v / 255 (float32 rounding apart, as the processor's own).
            cropped.data.iter().map(|&v| f32::from(v) / 255.0).collect()
        }
    };
    if data.len() != pre.len() {
        return Err(SkipReason(format!(
            "preprocessing gave {} values, the model takes {} (card's resize/crop do not reach the input size)",
            data.len(),
            pre.len()
        )));
    }
    Ok(data)
}

/// The EXIF orientation of an encoded image: no transform where it has none, or it cannot be read
/// (the image itself then decodes, or says why not, as without it).
fn exif_orientation(bytes: &[u8]) -> Orientation {
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_decoder().ok())
        .and_then(|mut decoder| decoder.orientation().ok())
        .unwrap_or(Orientation::NoTransforms)
}

fn decode_limited(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, SkipReason> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SkipReason(format!("cannot read: {e}")))?;
    match reader.format() {
        None => return Err(SkipReason("not an image (unrecognised content)".into())),
        Some(image::ImageFormat::Jpeg) => {
            if let Some(image) = decode_jpeg(bytes, limits)? {
                return Ok(image);
            }
        }
        Some(_) => {}
    }
    if let Ok((w, h)) = reader.into_dimensions() {
        limits.check_pixels(u64::from(w), u64::from(h))?;
    }
    // No bound on either side alone (the default): the pixels were counted above, and the
    // decoder's buffers are bounded by `max_alloc` in any case.
    let mut decode_limits = Limits::default();
    decode_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SkipReason(format!("cannot read: {e}")))?;
    reader.limits(decode_limits);
    reader.decode().map_err(|e| SkipReason(describe_decode_error(&e)))
}

fn describe_decode_error(e: &image::ImageError) -> String {
    match e {
        image::ImageError::Limits(l) => format!("over the decoding limits: {l}"),
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "truncated file (data ends early)".into()
        }
        other => format!("cannot decode: {other}"),
    }
}

/// Converts a decoded image to `channels` planes of values in [0, 1]: 8-bit / 255, 16-bit / 65535,
/// alpha dropped, RGB → luminance for one channel, grey replicated for three. The planes are made
/// straight from the decoded samples, so the float copy of a large image exists once (not also
/// interleaved): its peak is the decoded image plus its float planes.
pub fn to_planes(image: &DynamicImage, channels: usize) -> Planes {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let data = match image {
        DynamicImage::ImageLuma8(i) => planes_of(i.as_raw(), 1, 1, channels, scale_u8),
        DynamicImage::ImageLumaA8(i) => planes_of(i.as_raw(), 2, 1, channels, scale_u8),
        DynamicImage::ImageRgb8(i) => planes_of(i.as_raw(), 3, 3, channels, scale_u8),
        DynamicImage::ImageRgba8(i) => planes_of(i.as_raw(), 4, 3, channels, scale_u8),
        DynamicImage::ImageLuma16(i) => planes_of(i.as_raw(), 1, 1, channels, scale_u16),
        DynamicImage::ImageLumaA16(i) => planes_of(i.as_raw(), 2, 1, channels, scale_u16),
        DynamicImage::ImageRgb16(i) => planes_of(i.as_raw(), 3, 3, channels, scale_u16),
        DynamicImage::ImageRgba16(i) => planes_of(i.as_raw(), 4, 3, channels, scale_u16),
        other => planes_of(other.to_rgb32f().as_raw(), 3, 3, channels, |v: f32| v.clamp(0.0, 1.0)),
    };
    Planes {
        channels,
        height: h,
        width: w,
        data,
    }
}

fn scale_u8(v: u8) -> f32 {
    v as f32 / 255.0
}

fn scale_u16(v: u16) -> f32 {
    v as f32 / 65535.0
}

/// Interleaved pixels of `stride` samples, of which the first `src` are colour (1: grey, 3: RGB)
/// → `channels` planes, each sample converted.
fn planes_of<T: Copy>(raw: &[T], stride: usize, src: usize, channels: usize, convert: impl Fn(T) -> f32) -> Vec<f32> {
    let pixels = || raw.chunks_exact(stride);
    // Reserved exactly: a growing vector would briefly hold up to twice the planes.
    let mut out = Vec::with_capacity(pixels().len() * channels);
    match (src, channels) {
        (1, 1) => out.extend(pixels().map(|p| convert(p[0]))),
        (3, 3) => (0..3).for_each(|c| out.extend(pixels().map(|p| convert(p[c])))),
        (1, 3) => (0..3).for_each(|_| out.extend(pixels().map(|p| convert(p[0])))),
        (3, 1) => out.extend(pixels().map(|p| {
            LUMA_WEIGHTS[0] * convert(p[0]) + LUMA_WEIGHTS[1] * convert(p[1]) + LUMA_WEIGHTS[2] * convert(p[2])
        })),
        _ => unreachable!("cards have 1 or 3 channels"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(channels: usize, h: usize, w: usize) -> Preprocess {
        Preprocess::new(channels, h, w)
    }

    fn png_bytes(image: DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn rgba_to_grey_drops_alpha_and_uses_luma() {
        let img = image::RgbaImage::from_pixel(2, 2, image::Rgba([255, 0, 0, 7]));
        let out = decode_bytes(&png_bytes(DynamicImage::ImageRgba8(img)), &pre(1, 2, 2)).unwrap();
        assert_eq!(out, vec![LUMA_WEIGHTS[0]; 4]);
    }

    #[test]
    fn sixteen_bit_keeps_precision() {
        let img = image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(1, 1, image::Luma([1000u16]));
        let out = decode_bytes(&png_bytes(DynamicImage::ImageLuma16(img)), &pre(1, 1, 1)).unwrap();
        assert_eq!(out, vec![1000.0 / 65535.0]);
    }

    #[test]
    fn grey_replicates_to_three_planes() {
        let img = image::GrayImage::from_raw(2, 1, vec![0, 255]).unwrap();
        let out = decode_bytes(&png_bytes(DynamicImage::ImageLuma8(img)), &pre(3, 1, 2)).unwrap();
        assert_eq!(out, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn pil_backend_greys_in_integers() {
        // convert("L") of pure red is (255 · 19595 + 0x8000) >> 16 = 76, then ToTensor: 76 / 255.
        let img = image::RgbImage::from_pixel(3, 2, image::Rgb([255, 0, 0]));
        let pre = Preprocess {
            backend: Backend::Pil,
            ..pre(1, 2, 3)
        };
        let out = decode_bytes(&png_bytes(DynamicImage::ImageRgb8(img)), &pre).unwrap();
        assert_eq!(out, vec![76.0 / 255.0; 6]);
    }

    #[test]
    fn shorter_side_resize_then_crop_reaches_the_input() {
        // 40 × 10 (W × H): shorter side to 6 gives 24 × 6, the centre 4 × 4 is kept.
        let img = image::RgbImage::from_fn(40, 10, |x, _| image::Rgb([(x * 6) as u8, 0, 0]));
        for backend in [Backend::Pil, Backend::Tensor, Backend::Hf] {
            let pre = Preprocess {
                resize: ResizeMode::ShorterSide(6),
                crop: Some((4, 4)),
                backend,
                ..pre(3, 4, 4)
            };
            assert_eq!(pre.geometry(10, 40).resize, (6, 24));
            let out = decode_bytes(&png_bytes(DynamicImage::ImageRgb8(img.clone())), &pre).unwrap();
            assert_eq!(out.len(), 3 * 16);
            // The middle of a left-to-right ramp: red near 0.5 in the crop's centre columns.
            assert!(
                (out[1] - 0.47).abs() < 0.05 && out[16..].iter().all(|&v| v == 0.0),
                "{out:?}"
            );
        }
    }

    #[test]
    fn a_sliver_resized_by_its_shorter_side_is_skipped_not_allocated() {
        // 1 × 4000 to a shorter side of 10 000 would be 10 000 × 40 000 000 pixels.
        let img = image::GrayImage::from_pixel(4000, 1, image::Luma([7]));
        let pre = Preprocess {
            resize: ResizeMode::ShorterSide(10_000),
            crop: Some((4, 4)),
            ..pre(1, 4, 4)
        };
        let err = decode_bytes(&png_bytes(DynamicImage::ImageLuma8(img)), &pre).unwrap_err();
        assert!(err.0.contains("over the 1024 MB limit"), "{err}");
    }

    #[test]
    fn a_long_strip_is_decoded_its_pixels_being_few() {
        // 20 000 × 1: over any bound on a side, but 20 000 pixels (the bound is on their count).
        let img = image::GrayImage::from_fn(20_000, 1, |x, _| image::Luma([(x % 256) as u8]));
        let out = decode_bytes(&png_bytes(DynamicImage::ImageLuma8(img)), &pre(1, 1, 4)).unwrap();
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn every_layout_becomes_the_same_planes() {
        // RGBA8 and RGB16 to three planes and to luminance: the values one by one.
        let rgba = image::RgbaImage::from_raw(2, 1, vec![255, 0, 51, 9, 0, 102, 255, 9]).unwrap();
        let planes = to_planes(&DynamicImage::ImageRgba8(rgba.clone()), 3);
        assert_eq!(planes.data, vec![1.0, 0.0, 0.0, 0.4, 0.2, 1.0]);
        let grey = to_planes(&DynamicImage::ImageRgba8(rgba), 1);
        assert_eq!(grey.data[0], LUMA_WEIGHTS[0] + LUMA_WEIGHTS[2] * 0.2);
        let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(1, 1, vec![65535u16, 0, 65535]).unwrap();
        assert_eq!(to_planes(&DynamicImage::ImageRgb16(deep), 3).data, vec![1.0, 0.0, 1.0]);
        let la = image::ImageBuffer::<image::LumaA<u8>, _>::from_raw(2, 1, vec![0u8, 1, 255, 2]).unwrap();
        assert_eq!(
            to_planes(&DynamicImage::ImageLumaA8(la), 3).data,
            vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
        );
    }

    #[test]
    fn text_is_not_an_image() {
        let err = decode_bytes(b"hello, I am a text file", &pre(1, 2, 2)).unwrap_err();
        assert!(err.0.contains("not an image"), "{err}");
    }

    #[test]
    fn truncated_png_is_skipped_with_reason() {
        let img = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 9]));
        let bytes = png_bytes(DynamicImage::ImageRgb8(img));
        let err = decode_bytes(&bytes[..bytes.len() / 2], &pre(3, 8, 8)).unwrap_err();
        assert!(!err.0.is_empty());
    }
}
