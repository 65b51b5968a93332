//! The window's fonts: egui's own, then fallbacks for the file names they cannot draw — DejaVu Sans
//! (symbols such as ☕, Greek, Cyrillic) and a CJK subset of WenQuanYi Micro Hei, both bundled in
//! the binary, then a full CJK font of the system when one is installed (for rarer characters).

use std::sync::Arc;

use egui::{FontData, FontDefinitions, FontFamily};

/// The bundled fallbacks, by name, in the order they are tried.
pub const BUNDLED: [(&str, &[u8]); 2] = [
    ("DejaVuSans", oodscope_engine::report::histogram::FONT),
    (
        "WenQuanYiMicroHei-subset",
        include_bytes!("../../../../assets/fonts/WenQuanYiMicroHei-subset.ttf"),
    ),
];

/// Full CJK fonts of Debian packages, tried in this order after the bundled ones (fonts-noto-cjk,
/// fonts-wqy-microhei, fonts-wqy-zenhei, fonts-droid-fallback); the first found is used.
const SYSTEM_CJK: [&str; 4] = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
];

/// The name of the system font in the definitions, when one was found.
pub const SYSTEM_NAME: &str = "system-cjk";

/// egui's default fonts with the fallbacks appended to both families.
pub fn definitions() -> FontDefinitions {
    let mut fonts = FontDefinitions::default();
    let mut fallbacks: Vec<String> = Vec::new();
    for (name, bytes) in BUNDLED {
        fonts
            .font_data
            .insert(name.to_string(), Arc::new(FontData::from_static(bytes)));
        fallbacks.push(name.to_string());
    }
    if let Some(bytes) = SYSTEM_CJK.iter().find_map(|path| std::fs::read(path).ok()) {
        fonts
            .font_data
            .insert(SYSTEM_NAME.to_string(), Arc::new(FontData::from_owned(bytes)));
        fallbacks.push(SYSTEM_NAME.to_string());
    }
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        fonts
            .families
            .entry(family)
            .or_default()
            .extend(fallbacks.iter().cloned());
    }
    fonts
}

/// Installs the fonts in the window's context.
pub fn install(ctx: &egui::Context) {
    ctx.set_fonts(definitions());
}
