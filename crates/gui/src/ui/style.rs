//! The window's look, set once when it opens: no text under 12 px, and text colours that keep WCAG
//! AA contrast (4.5:1) on every background they are drawn on, in the dark and the light theme;
//! with the colours of text that carries a meaning (an error, a file written, ID, OOD).

use egui::{Color32, Style, Visuals};

/// The smallest text the window draws (egui's `Small` is 9 px: paths and hints were unreadable).
pub const MIN_TEXT_PX: f32 = 12.0;

/// WCAG 2.x AA for normal text.
pub const MIN_CONTRAST: f64 = 4.5;

/// Sets the window's text sizes and colours, in both themes.
pub fn install(ctx: &egui::Context) {
    ctx.all_styles_mut(apply);
}

/// The window's changes to egui's style: every text style at least [`MIN_TEXT_PX`]; body text,
/// weak text (hints, paths) and links brighter (dark theme) or darker (light theme) than egui's
/// defaults, whose weak text (the body colour at 60% alpha) is about 2.6:1 on the dark panel.
pub fn apply(style: &mut Style) {
    for font in style.text_styles.values_mut() {
        font.size = font.size.max(MIN_TEXT_PX);
    }
    let visuals = &mut style.visuals;
    if visuals.dark_mode {
        visuals.widgets.noninteractive.fg_stroke.color = Color32::from_gray(190);
        visuals.weak_text_color = Some(Color32::from_gray(150));
    } else {
        visuals.widgets.noninteractive.fg_stroke.color = Color32::from_gray(40);
        visuals.weak_text_color = Some(Color32::from_gray(95));
        visuals.hyperlink_color = Color32::from_rgb(0, 90, 180);
    }
}

/// Colours of text that carries a meaning, readable on the theme's panels.
#[derive(Debug, Clone, Copy)]
pub struct TextColours {
    /// Something failed or is refused.
    pub error: Color32,
    /// A file was written.
    pub done: Color32,
    /// In-distribution (a set's tag, a verdict).
    pub id: Color32,
    /// Out-of-distribution.
    pub ood: Color32,
    /// An estimate or a stale view (amber).
    pub warn: Color32,
}

/// The meaning colours for `visuals`' theme. The plots keep the saturated set colours; text of the
/// same meaning is lighter on dark panels and darker on light ones (the plots' red, 214/39/40, is
/// 3.4:1 on the dark panel).
pub fn text_colours(visuals: &Visuals) -> TextColours {
    if visuals.dark_mode {
        TextColours {
            error: Color32::from_rgb(255, 125, 115),
            done: Color32::from_rgb(110, 210, 110),
            id: Color32::from_rgb(95, 200, 95),
            ood: Color32::from_rgb(255, 125, 115),
            warn: Color32::from_rgb(240, 170, 60),
        }
    } else {
        TextColours {
            error: Color32::from_rgb(175, 20, 20),
            done: Color32::from_rgb(20, 110, 20),
            id: Color32::from_rgb(20, 115, 20),
            ood: Color32::from_rgb(175, 20, 20),
            warn: Color32::from_rgb(140, 75, 0),
        }
    }
}

/// The meaning colours of the theme `ui` draws in.
pub fn colours(ui: &egui::Ui) -> TextColours {
    text_colours(ui.visuals())
}

/// WCAG 2.x relative luminance of an sRGB colour (opaque).
pub fn relative_luminance(c: Color32) -> f64 {
    let channel = |v: u8| {
        let s = f64::from(v) / 255.0;
        if s <= 0.04045 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(c.r()) + 0.7152 * channel(c.g()) + 0.0722 * channel(c.b())
}

/// WCAG 2.x contrast ratio of text `fg` on `bg` (a translucent `fg`, premultiplied as egui's
/// colours are, is first laid over `bg`).
pub fn contrast_ratio(fg: Color32, bg: Color32) -> f64 {
    let over = |f: u8, b: u8| {
        let covered = f64::from(b) * (1.0 - f64::from(fg.a()) / 255.0);
        (f64::from(f) + covered).round().min(255.0) as u8
    };
    let fg = Color32::from_rgb(over(fg.r(), bg.r()), over(fg.g(), bg.g()), over(fg.b(), bg.b()));
    let (a, b) = (relative_luminance(fg) + 0.05, relative_luminance(bg) + 0.05);
    a.max(b) / a.min(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn styled(visuals: Visuals) -> Style {
        let mut style = Style {
            visuals,
            ..Style::default()
        };
        apply(&mut style);
        style
    }

    #[test]
    fn the_wcag_formula_matches_its_known_values() {
        assert!((contrast_ratio(Color32::BLACK, Color32::WHITE) - 21.0).abs() < 1e-9);
        assert!((contrast_ratio(Color32::WHITE, Color32::WHITE) - 1.0).abs() < 1e-9);
        // #767676 on white is the darkest grey that passes AA: 4.54:1.
        let ratio = contrast_ratio(Color32::from_gray(0x76), Color32::WHITE);
        assert!((ratio - 4.54).abs() < 0.01, "{ratio}");
        // egui's own dark weak text (60% of grey 140) on its dark panel fails: the reason for `apply`.
        let egui_weak = Visuals::dark().weak_text_color();
        assert!(contrast_ratio(egui_weak, Visuals::dark().panel_fill) < MIN_CONTRAST);
    }

    #[test]
    fn every_text_colour_keeps_aa_contrast_on_every_background_in_both_themes() {
        for visuals in [Visuals::dark(), Visuals::light()] {
            let theme = if visuals.dark_mode { "dark" } else { "light" };
            let style = styled(visuals);
            let v = &style.visuals;
            let meaning = text_colours(v);
            let texts = [
                ("text", v.text_color()),
                ("weak text", v.weak_text_color()),
                ("strong text", v.strong_text_color()),
                ("link", v.hyperlink_color),
                ("error", meaning.error),
                ("file written", meaning.done),
                ("ID", meaning.id),
                ("OOD", meaning.ood),
                ("amber", meaning.warn),
            ];
            // Where labels sit: panels, windows, text fields, and the striped rows of a table
            // (egui lays the faint stripe over the panel).
            let stripe = {
                let f = v.faint_bg_color;
                let over =
                    |c: u8, p: u8| (f64::from(c) + f64::from(p) * (1.0 - f64::from(f.a()) / 255.0)).min(255.0) as u8;
                let p = v.panel_fill;
                Color32::from_rgb(over(f.r(), p.r()), over(f.g(), p.g()), over(f.b(), p.b()))
            };
            let backgrounds = [
                ("panel", v.panel_fill),
                ("window", v.window_fill),
                ("text field", v.text_edit_bg_color()),
                ("table stripe", stripe),
            ];
            for (text, fg) in texts {
                for (background, bg) in backgrounds {
                    let ratio = contrast_ratio(fg, bg);
                    assert!(
                        ratio >= MIN_CONTRAST,
                        "{theme}: {text} {fg:?} on the {background} {bg:?} is {ratio:.2}:1"
                    );
                }
            }
            // Buttons, checkboxes and the chosen entry of a list: their text on their own fill.
            let w = &v.widgets;
            for (state, widget) in [("idle", &w.inactive), ("hovered", &w.hovered), ("pressed", &w.active)] {
                for fill in [widget.weak_bg_fill, widget.bg_fill] {
                    let ratio = contrast_ratio(widget.text_color(), fill);
                    assert!(ratio >= MIN_CONTRAST, "{theme}: {state} button text is {ratio:.2}:1");
                }
            }
            let ratio = contrast_ratio(v.selection.stroke.color, v.selection.bg_fill);
            assert!(ratio >= MIN_CONTRAST, "{theme}: selected text is {ratio:.2}:1");
        }
    }

    #[test]
    fn no_text_style_is_under_12_px() {
        let style = styled(Visuals::dark());
        for (text_style, font) in &style.text_styles {
            assert!(font.size >= MIN_TEXT_PX, "{text_style:?} is {} px", font.size);
        }
        assert!(Style::default().text_styles[&egui::TextStyle::Small].size < MIN_TEXT_PX);
    }
}
