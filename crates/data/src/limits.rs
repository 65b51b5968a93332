//! Memory budgets, checked before anything is allocated: what decoding one image may take on
//! (file bytes, pixels, working memory), the size of one model input and of one batch; and why a
//! file is skipped.

use crate::preprocessing::ResizeMode;

/// Why a file was skipped; the run goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReason(pub String);

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bounds on what a decoder may take on: guards against decompression bombs and huge files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest file read (256 MB).
    pub max_file_bytes: u64,
    /// The most pixels (width × height) an image may have, whatever its shape: Pillow's
    /// `Image.MAX_IMAGE_PIXELS`, 2³⁰ / 4 / 3 = 89 478 485 (about 9459 × 9459), above which Pillow
    /// warns of a decompression bomb. At that size an RGB image's float32 planes take
    /// [`DecodeLimits::max_alloc_bytes`]. (Counting pixels rather than sides: a 20000 × 1 strip is
    /// fine, a 16000 × 16000 image is not.)
    pub max_pixels: u64,
    /// The most bytes one buffer of the decoding may take: the decoder's own, the float32 planes,
    /// the resized image (1 GiB).
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_file_bytes: 256 << 20,
            max_pixels: (1 << 30) / 4 / 3,
            max_alloc_bytes: 1 << 30,
        }
    }
}

impl DecodeLimits {
    /// Refuses an image of `width × height` with more than [`DecodeLimits::max_pixels`] pixels.
    pub fn check_pixels(&self, width: u64, height: u64) -> Result<(), SkipReason> {
        let pixels = u128::from(width) * u128::from(height);
        if pixels > u128::from(self.max_pixels) {
            return Err(SkipReason(format!(
                "image is {width}×{height} ({:.1} megapixels), over the {:.1}-megapixel limit (possible decompression bomb)",
                pixels as f64 / 1e6,
                self.max_pixels as f64 / 1e6
            )));
        }
        Ok(())
    }
}

/// The most bytes one preprocessed input image (C·H·W float32 values) may take: 256 MiB. Real
/// classifiers take 224 to 1024 px (ImageNet models 224–600, SAM-style encoders 1024); 4096 × 4096
/// RGB takes 192 MiB and fits, 8192 × 8192 grey takes exactly 256 MiB. A larger `input` is surely a
/// typo, and would ask gigabytes of the load probe and of every batch.
pub const MAX_INPUT_BYTES: u64 = 256 << 20;

/// The most bytes one batch of preprocessed images may take (4 GiB): a batch is held as decoded
/// pixels and again as a tensor (and one batch ahead on a GPU). 64 images of 2048 × 2048 RGB
/// (3 GiB) fit; `preprocess`'s whole tensor is bounded by it too.
pub const MAX_BATCH_BYTES: u64 = 4 << 30;

/// Checks a card's `input` `[C, H, W]` (and its `resize`) against the budgets: one line saying
/// what it would take, or `Ok`.
pub fn check_input_size(channels: u64, height: u64, width: u64, resize: ResizeMode) -> Result<(), String> {
    let bytes = u128::from(channels) * u128::from(height) * u128::from(width) * 4;
    if bytes > u128::from(MAX_INPUT_BYTES) {
        return Err(format!(
            "`input` = [{channels}, {height}, {width}] takes {} MiB per image as float32, over the {} MiB limit for one input image (4096×4096 RGB takes 192 MiB; classifiers take 224 to 1024 px)",
            bytes >> 20,
            MAX_INPUT_BYTES >> 20
        ));
    }
    let (rh, rw, what) = match resize {
        ResizeMode::ShorterSide(s) => (s as u64, s as u64, format!("`resize` = {s}")),
        ResizeMode::Size { height, width } => (height as u64, width as u64, format!("`resize` = [{height}, {width}]")),
        ResizeMode::Resize | ResizeMode::CenterCrop => return Ok(()),
    };
    let limit = DecodeLimits::default().max_alloc_bytes;
    let resized = u128::from(channels) * u128::from(rh) * u128::from(rw) * 4;
    if resized > u128::from(limit) {
        return Err(format!(
            "{what} makes every image at least {rh}×{rw} before the crop, {} MiB as float32, over the {} MiB decoding limit",
            resized >> 20,
            limit >> 20
        ));
    }
    Ok(())
}

/// How many images of `values_per_image` float32 values fit [`MAX_BATCH_BYTES`] (at least 1).
pub fn max_batch_images(values_per_image: usize) -> usize {
    let bytes = (values_per_image as u64).saturating_mul(4).max(1);
    (MAX_BATCH_BYTES / bytes).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_counted_not_sides() {
        let limits = DecodeLimits::default();
        assert!(limits.check_pixels(20_000, 1).is_ok());
        assert!(limits.check_pixels(9_459, 9_459).is_ok());
        assert_eq!(
            limits.check_pixels(16_000, 16_000).unwrap_err().0,
            "image is 16000×16000 (256.0 megapixels), over the 89.5-megapixel limit (possible decompression bomb)"
        );
        assert!(limits.check_pixels(u64::from(u32::MAX), u64::from(u32::MAX)).is_err());
    }

    #[test]
    fn an_input_over_the_budget_is_refused_with_what_it_takes() {
        assert!(check_input_size(3, 4096, 4096, ResizeMode::Resize).is_ok());
        assert!(check_input_size(1, 8192, 8192, ResizeMode::Resize).is_ok());
        assert_eq!(
            check_input_size(1, 100_000, 100_000, ResizeMode::Resize).unwrap_err(),
            "`input` = [1, 100000, 100000] takes 38146 MiB per image as float32, over the 256 MiB limit for one input image (4096×4096 RGB takes 192 MiB; classifiers take 224 to 1024 px)"
        );
        // No overflow at the largest sizes a card can say.
        assert!(check_input_size(3, i64::MAX as u64, i64::MAX as u64, ResizeMode::Resize).is_err());
    }

    #[test]
    fn a_resize_over_the_decoding_limit_is_refused() {
        assert!(check_input_size(3, 224, 224, ResizeMode::ShorterSide(256)).is_ok());
        assert_eq!(
            check_input_size(3, 224, 224, ResizeMode::ShorterSide(100_000)).unwrap_err(),
            "`resize` = 100000 makes every image at least 100000×100000 before the crop, 114440 MiB as float32, over the 1024 MiB decoding limit"
        );
        let size = ResizeMode::Size {
            height: 30_000,
            width: 30_000,
        };
        assert!(
            check_input_size(1, 224, 224, size)
                .unwrap_err()
                .starts_with("`resize` = [30000, 30000]")
        );
    }

    #[test]
    fn a_batch_holds_what_fits_the_budget() {
        assert_eq!(max_batch_images(3 * 224 * 224), 7133);
        assert_eq!(max_batch_images(3 * 4096 * 4096), 21);
        assert_eq!(max_batch_images(usize::MAX), 1);
    }
}
