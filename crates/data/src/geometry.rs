//! The sizes an image passes through on its way to the model: the resize target for its size and
//! the centre crop after it, from the card's `resize` and `crop`.

use super::preprocessing::ResizeMode;

/// Resize to `resize` (H, W), then cut out the centre `crop` (H, W) if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub resize: (usize, usize),
    pub crop: Option<(usize, usize)>,
}

impl Geometry {
    /// For an image of `height × width` and a model input of `input` (H, W).
    pub fn plan(
        mode: ResizeMode,
        crop: Option<(usize, usize)>,
        input: (usize, usize),
        (height, width): (usize, usize),
    ) -> Geometry {
        match mode {
            ResizeMode::Resize => Geometry {
                resize: input,
                crop: None,
            },
            ResizeMode::CenterCrop => Geometry {
                resize: cover(input, (height, width)),
                crop: Some(input),
            },
            ResizeMode::ShorterSide(side) => Geometry {
                resize: shorter_side_to(side, (height, width)),
                crop,
            },
            ResizeMode::Size { height, width } => Geometry {
                resize: (height, width),
                crop,
            },
        }
    }
}

/// torchvision's `Resize(side)` (`_compute_resized_output_size`): the shorter side becomes `side`,
/// the longer `int(side * long / short)` (Python's true division, truncated).
pub fn shorter_side_to(side: usize, (height, width): (usize, usize)) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = ((side * long) as f64 / short as f64) as usize;
    if width <= height {
        (new_long, side)
    } else {
        (side, new_long)
    }
}

/// The old `"center-crop"` mode's size: the shorter side scaled to cover `out` (as before the
/// preprocessing fields, kept bit for bit).
fn cover((out_h, out_w): (usize, usize), (height, width): (usize, usize)) -> (usize, usize) {
    let (h, w) = (height as f64, width as f64);
    if out_h as f64 / h >= out_w as f64 / w {
        (out_h, ((w * out_h as f64 / h) as usize).max(out_w))
    } else {
        (((h * out_w as f64 / w) as usize).max(out_h), out_w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_side_follows_torchvision() {
        // Portrait 257 × 311 (W × H) to 256: H = int(256 · 311 / 257) = 309.
        assert_eq!(shorter_side_to(256, (311, 257)), (309, 256));
        // Landscape 500 × 333: W = int(256 · 500 / 333) = 384.
        assert_eq!(shorter_side_to(256, (333, 500)), (256, 384));
        // Square and upscaling: 97 × 130 → 256 × int(256 · 130 / 97) = 343.
        assert_eq!(shorter_side_to(256, (130, 97)), (343, 256));
        assert_eq!(shorter_side_to(224, (50, 50)), (224, 224));
    }

    #[test]
    fn old_modes_end_at_the_input() {
        let g = Geometry::plan(ResizeMode::Resize, None, (224, 224), (311, 257));
        assert_eq!(
            g,
            Geometry {
                resize: (224, 224),
                crop: None
            }
        );
        let g = Geometry::plan(ResizeMode::CenterCrop, None, (4, 4), (4, 8));
        assert_eq!(
            g,
            Geometry {
                resize: (4, 8),
                crop: Some((4, 4))
            }
        );
    }
}
