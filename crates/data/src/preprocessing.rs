//! How an image of any size becomes the model's input: the resize mode, the centre crop, the
//! resampling filter and the pipeline reproduced (the card's preprocessing fields, checked).

/// How an image of any size is brought to the model's input size (before the optional crop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizeMode {
    /// `resize = "resize"`: straight to the input H×W.
    #[default]
    Resize,
    /// `resize = "center-crop"`: shorter side scaled to cover H×W, then the centre H×W cut out.
    CenterCrop,
    /// `resize = S`: shorter side to S, the longer to ⌊S·long/short⌋ (torchvision's `Resize(S)`).
    ShorterSide(usize),
    /// `resize = [H, W]`: exactly that size (torchvision's `Resize((H, W))`).
    Size { height: usize, width: usize },
}

/// The resampling filter (`interpolation`), as torchvision names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    #[default]
    Bilinear,
    Bicubic,
    Nearest,
}

impl Interpolation {
    /// The card's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bilinear => "bilinear",
            Self::Bicubic => "bicubic",
            Self::Nearest => "nearest",
        }
    }
}

/// Which torchvision pipeline the preprocessing reproduces (`backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// On PIL images: decoded as `convert("RGB")` / `convert("L")`, resized with Pillow's 8-bit
    /// filters, cropped, then `ToTensor`.
    Pil,
    /// On float tensors: pixels in [0, 1], antialiased float resize (the behaviour of old cards).
    #[default]
    Tensor,
    /// As a Hugging Face image processor (transformers 5's default, torchvision backend) does it:
    /// decoded and turned upright by its EXIF orientation (as transformers' `load_image`), as
    /// `convert("RGB")` / `convert("L")`, resized as a uint8 tensor by PyTorch's CPU
    /// kernel ([`crate::torch_u8`]; `nearest` is `NEAREST_EXACT`), centre-cropped with the
    /// processor's truncated offsets, then divided by 255.
    Hf,
}

/// The card's preprocessing fields, checked: how any image becomes `input` H×W.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preprocessing {
    pub resize: ResizeMode,
    /// The centre crop `(H, W)` after the resize, if any (an integer `resize` defaults it to the input).
    pub crop: Option<(usize, usize)>,
    pub interpolation: Interpolation,
    pub backend: Backend,
}

impl Preprocessing {
    /// Checks the raw fields against the input size `h × w`; the message says what is wrong.
    pub fn parse(
        resize: Option<&toml::Value>,
        crop: Option<&toml::Value>,
        interpolation: Option<&str>,
        backend: Option<&str>,
        (h, w): (usize, usize),
    ) -> Result<Self, crate::Error> {
        Self::parse_fields(resize, crop, interpolation, backend, (h, w)).map_err(crate::Error::BadPreprocessing)
    }

    fn parse_fields(
        resize: Option<&toml::Value>,
        crop: Option<&toml::Value>,
        interpolation: Option<&str>,
        backend: Option<&str>,
        (h, w): (usize, usize),
    ) -> Result<Self, String> {
        let interpolation = match interpolation {
            None | Some("bilinear") => Interpolation::Bilinear,
            Some("bicubic") => Interpolation::Bicubic,
            Some("nearest") => Interpolation::Nearest,
            Some(other) => {
                return Err(format!(
                    "`interpolation` must be \"bilinear\", \"bicubic\" or \"nearest\", got \"{other}\""
                ));
            }
        };
        let backend = match backend {
            None | Some("tensor") => Backend::Tensor,
            Some("pil") => Backend::Pil,
            Some("hf") => Backend::Hf,
            Some(other) => {
                return Err(format!(
                    "`backend` must be \"pil\", \"tensor\" or \"hf\", got \"{other}\""
                ));
            }
        };
        let resize = match resize {
            None => ResizeMode::Resize,
            Some(toml::Value::String(s)) if s == "resize" => ResizeMode::Resize,
            Some(toml::Value::String(s)) if s == "center-crop" => ResizeMode::CenterCrop,
            Some(toml::Value::Integer(s)) => ResizeMode::ShorterSide(positive(*s, "resize")?),
            Some(value @ toml::Value::Array(_)) => {
                let (height, width) = pair(value, "resize")?;
                ResizeMode::Size { height, width }
            }
            Some(other) => {
                return Err(format!(
                    "`resize` must be an integer (the shorter side), [H, W], \"resize\" or \"center-crop\"; got {other}"
                ));
            }
        };
        let crop = match crop {
            None => None,
            Some(toml::Value::Integer(s)) => {
                let s = positive(*s, "crop")?;
                Some((s, s))
            }
            Some(value) => Some(pair(value, "crop")?),
        };
        let final_size = match (resize, crop) {
            (ResizeMode::Resize | ResizeMode::CenterCrop, Some(_)) => {
                return Err(
                    "`crop` needs `resize` to be a size (an integer shorter side or [H, W]); \"resize\" and \"center-crop\" already end at the input size"
                        .into(),
                );
            }
            (ResizeMode::Resize | ResizeMode::CenterCrop, None) => (h, w),
            (ResizeMode::ShorterSide(s), crop) => {
                let (ch, cw) = crop.unwrap_or((h, w));
                if ch > s || cw > s {
                    let which = if crop.is_some() {
                        "`crop`"
                    } else {
                        "the default crop (the input size)"
                    };
                    return Err(format!(
                        "{which} {ch}×{cw} is larger than `resize` = {s} (the resized shorter side): crop at most {s}×{s}"
                    ));
                }
                (ch, cw)
            }
            (ResizeMode::Size { height, width }, Some((ch, cw))) => {
                if ch > height || cw > width {
                    return Err(format!(
                        "`crop` {ch}×{cw} is larger than `resize` = [{height}, {width}]"
                    ));
                }
                (ch, cw)
            }
            (ResizeMode::Size { height, width }, None) => (height, width),
        };
        if final_size != (h, w) {
            return Err(format!(
                "`resize` and `crop` give {}×{} images, but `input` is {h}×{w}",
                final_size.0, final_size.1
            ));
        }
        Ok(Preprocessing {
            resize,
            crop: match resize {
                ResizeMode::ShorterSide(_) => Some(crop.unwrap_or((h, w))),
                _ => crop,
            },
            interpolation,
            backend,
        })
    }
}

fn positive(v: i64, field: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("`{field}` must be positive, got {v}"))
}

/// `[H, W]` with both positive.
fn pair(value: &toml::Value, field: &str) -> Result<(usize, usize), String> {
    let items = value
        .as_array()
        .map(|a| a.iter().map(toml::Value::as_integer).collect::<Option<Vec<_>>>());
    match items {
        Some(Some(v)) if v.len() == 2 => Ok((positive(v[0], field)?, positive(v[1], field)?)),
        _ => Err(format!("`{field}` must be an integer or [H, W], got {value}")),
    }
}
