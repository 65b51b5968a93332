//! JPEG decoding through libjpeg-turbo's decoder (MozJPEG), as Pillow decodes: the same IDCT and
//! upsampling, so pixels (and scores) equal those of a torchvision/PIL pipeline exactly.

use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{DynamicImage, GrayImage, RgbImage};

use super::limits::{DecodeLimits, SkipReason};

/// Decodes a JPEG, or says why not. CMYK JPEGs return `Ok(None)`: the caller falls back.
pub fn decode_jpeg(bytes: &[u8], limits: &DecodeLimits) -> Result<Option<DynamicImage>, SkipReason> {
    if is_truncated(bytes) {
        return Err(SkipReason(
            "truncated file (JPEG data ends before its end marker)".into(),
        ));
    }
    // libjpeg reports errors by unwinding through the wrapper; catch them here.
    let result = catch_unwind(AssertUnwindSafe(|| decode_unchecked(bytes, limits)));
    match result {
        Ok(r) => r,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(ToString::to_string))
                .unwrap_or_else(|| "unknown libjpeg error".into());
            Err(SkipReason(format!("cannot decode JPEG: {}", message.trim())))
        }
    }
}

fn decode_unchecked(bytes: &[u8], limits: &DecodeLimits) -> Result<Option<DynamicImage>, SkipReason> {
    let io_err = |e: std::io::Error| SkipReason(format!("cannot decode JPEG: {e}"));
    let decompress = mozjpeg::Decompress::new_mem(bytes).map_err(io_err)?;
    let (w, h) = (decompress.width(), decompress.height());
    limits.check_pixels(w as u64, h as u64)?;
    if (w * h * 3) as u64 > limits.max_alloc_bytes {
        return Err(SkipReason(format!("image is {w}×{h}, over the decoding memory limit")));
    }
    match decompress.image().map_err(io_err)? {
        mozjpeg::decompress::Format::Gray(mut started) => {
            let pixels: Vec<u8> = started.read_scanlines().map_err(io_err)?;
            started.finish().map_err(io_err)?;
            GrayImage::from_raw(w as u32, h as u32, pixels)
                .map(|i| Some(DynamicImage::ImageLuma8(i)))
                .ok_or_else(|| SkipReason("truncated file (fewer JPEG rows than its header says)".into()))
        }
        mozjpeg::decompress::Format::RGB(mut started) => {
            let pixels: Vec<u8> = started.read_scanlines().map_err(io_err)?;
            started.finish().map_err(io_err)?;
            RgbImage::from_raw(w as u32, h as u32, pixels)
                .map(|i| Some(DynamicImage::ImageRgb8(i)))
                .ok_or_else(|| SkipReason("truncated file (fewer JPEG rows than its header says)".into()))
        }
        mozjpeg::decompress::Format::CMYK(_) => Ok(None),
    }
}

/// A JPEG is cut short when no end-of-image marker follows its last start-of-scan marker.
/// (Entropy-coded data never holds `FF D9`; thumbnails sit before the scans.)
fn is_truncated(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(pos) => !bytes[pos..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_bytes() -> Vec<u8> {
        let img = RgbImage::from_fn(32, 24, |x, y| image::Rgb([(x * 7) as u8, (y * 9) as u8, 100]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn decodes_a_jpeg() {
        let img = decode_jpeg(&jpeg_bytes(), &DecodeLimits::default()).unwrap().unwrap();
        assert_eq!((img.width(), img.height()), (32, 24));
    }

    #[test]
    fn truncated_jpeg_is_skipped() {
        let bytes = jpeg_bytes();
        let err = decode_jpeg(&bytes[..bytes.len() * 2 / 3], &DecodeLimits::default()).unwrap_err();
        assert!(err.0.contains("truncated"), "{err}");
    }

    #[test]
    fn garbage_after_the_header_is_an_error_not_a_panic() {
        let mut bytes = jpeg_bytes();
        let sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        bytes[sos + 2..sos + 40].fill(0x13); // corrupt the scan header
        assert!(decode_jpeg(&bytes, &DecodeLimits::default()).is_err());
    }
}
