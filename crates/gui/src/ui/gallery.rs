//! The gallery: thumbnails with score and predicted class, framed by verdict at δ, filtered and
//! sorted, virtualised (only visible rows are laid out; thumbnails are made lazily, a few per frame).
//! And the detail panel of the selected image.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use egui::{Color32, ColorImage, RichText, TextureHandle, TextureOptions, Vec2};

use crate::app::{Command, OodscopeApp};
use oodscope_data::noise::noise_image;
use oodscope_data::{ImageSet, Role, SetSource};

const CELL: f32 = 96.0;
const THUMB: u32 = 64;
const NEW_THUMBNAILS_PER_FRAME: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerdictFilter {
    #[default]
    All,
    CalledId,
    CalledOod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    ScoreDescending,
    ScoreAscending,
    FileOrder,
}

/// What the gallery remembers between frames, kept in egui's memory (the UI's own state: the app
/// holds none of it).
#[derive(Default)]
pub struct GalleryState {
    pub set_filter: Option<usize>,
    pub verdict: VerdictFilter,
    pub sort: SortOrder,
    thumbnails: HashMap<(usize, usize), TextureHandle>,
    /// The result the thumbnails were made for (`OodscopeApp::result_serial`).
    serial: u64,
    /// The images in the set filter and sort order, made once per result, scores and filter
    /// (sorting 10⁶ scores each frame would take far longer than a frame).
    order: Option<(OrderKey, Arc<Vec<usize>>)>,
    /// The decimals the tiles' scores are shown with, for the same key as `order`.
    decimals: usize,
}

/// What the cached order depends on: the result, its displayed scores (their buffer and length),
/// the set filter and the sort.
type OrderKey = (u64, usize, usize, Option<usize>, SortOrder);

/// The images of `sets_of` (each image's set) in `set` (or all), in `sort` order of `scores`.
pub fn ordered(scores: &[f32], sets_of: &[usize], set: Option<usize>, sort: SortOrder) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len())
        .filter(|&i| set.is_none_or(|s| sets_of.get(i) == Some(&s)))
        .collect();
    match sort {
        SortOrder::ScoreDescending => order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b))),
        SortOrder::ScoreAscending => order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b))),
        SortOrder::FileOrder => {}
    }
    order
}

/// The images of `order` (from [`ordered`]) that the verdict at δ keeps (called ID: `score > δ`):
/// in a score order a binary search for the cut, in file order one pass.
pub fn at_threshold<'a>(
    order: &'a [usize],
    scores: &[f32],
    sort: SortOrder,
    verdict: VerdictFilter,
    threshold: f32,
) -> std::borrow::Cow<'a, [usize]> {
    use std::borrow::Cow;
    let called_id = |i: &usize| scores[*i] > threshold;
    match (verdict, sort) {
        (VerdictFilter::All, _) => Cow::Borrowed(order),
        (VerdictFilter::CalledId, SortOrder::ScoreDescending) => {
            Cow::Borrowed(&order[..order.partition_point(called_id)])
        }
        (VerdictFilter::CalledOod, SortOrder::ScoreDescending) => {
            Cow::Borrowed(&order[order.partition_point(called_id)..])
        }
        (VerdictFilter::CalledOod, SortOrder::ScoreAscending) => {
            Cow::Borrowed(&order[..order.partition_point(|i| !called_id(i))])
        }
        (VerdictFilter::CalledId, SortOrder::ScoreAscending) => {
            Cow::Borrowed(&order[order.partition_point(|i| !called_id(i))..])
        }
        (VerdictFilter::CalledId, SortOrder::FileOrder) => {
            Cow::Owned(order.iter().copied().filter(called_id).collect())
        }
        (VerdictFilter::CalledOod, SortOrder::FileOrder) => {
            Cow::Owned(order.iter().copied().filter(|i| !called_id(i)).collect())
        }
    }
}

type SharedState = Arc<Mutex<GalleryState>>;

/// The gallery's state, its thumbnails forgotten when a new result has arrived.
fn state(ctx: &egui::Context, serial: u64) -> SharedState {
    let state = ctx.data_mut(|d| {
        d.get_temp_mut_or_default::<SharedState>(egui::Id::unique("oodscope-gallery"))
            .clone()
    });
    if let Ok(mut g) = state.lock()
        && g.serial != serial
    {
        g.thumbnails.clear();
        g.serial = serial;
    }
    state
}

/// Locks the state (a poisoned lock still gives its data: no panic in the UI).
fn lock(state: &SharedState) -> MutexGuard<'_, GalleryState> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn gallery_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    let Some(result) = &app.result else { return };
    let threshold = app.threshold.unwrap_or(f32::NEG_INFINITY);
    controls_ui(app, ui);
    let shared = state(ui.ctx(), app.result_serial);
    let mut gallery = lock(&shared);
    let key: OrderKey = (
        app.result_serial,
        result.scores.as_ptr() as usize,
        result.scores.len(),
        gallery.set_filter,
        gallery.sort,
    );
    let sorted = match &gallery.order {
        Some((k, order)) if *k == key => order.clone(),
        _ => {
            let sets_of: Vec<usize> = result.run.images.iter().map(|e| e.set).collect();
            let order = Arc::new(ordered(&result.scores, &sets_of, gallery.set_filter, gallery.sort));
            gallery.order = Some((key, order.clone()));
            gallery.decimals = score_decimals(&result.scores);
            order
        }
    };
    let order = at_threshold(&sorted, &result.scores, gallery.sort, gallery.verdict, threshold);
    ui.label(format!("{} images", order.len()));
    if let Some(opened) = &app.opened {
        let note = match opened.missing_images {
            _ if opened.has_no_images() => Some(
                "The images of this results file are not on this machine: the tiles are placeholders; each score and verdict is the file's.".to_string(),
            ),
            Some((missing, checked)) if missing > 0 => Some(format!(
                "{missing} of {checked} images checked are no longer where the file says: their tiles are placeholders."
            )),
            _ => None,
        };
        if let Some(note) = note {
            ui.label(RichText::new(note).weak());
        }
    }
    let decimals = gallery.decimals;
    let thumbnails = &mut gallery.thumbnails;
    let per_row = ((ui.available_width() / (CELL + 22.0)).floor() as usize).max(1);
    let rows = order.len().div_ceil(per_row);
    let mut made = 0;
    let mut clicked = None;
    egui::ScrollArea::vertical()
        .auto_shrink(false)
        .show_rows(ui, CELL + 34.0, rows, |ui, visible| {
            for row in visible {
                ui.horizontal(|ui| {
                    for &i in order.iter().skip(row * per_row).take(per_row) {
                        let entry = &result.run.images[i];
                        let set = &result.sets[entry.set];
                        let score = result.scores[i];
                        let called_id = score > threshold;
                        let key = (entry.set, entry.index);
                        if !thumbnails.contains_key(&key) && made < NEW_THUMBNAILS_PER_FRAME {
                            made += 1;
                            let texture =
                                thumbnail(ui.ctx(), set, entry.index, THUMB, app.model.as_ref().map(|m| &m.card));
                            thumbnails.insert(key, texture);
                        }
                        let colour = if called_id { super::ID_COLOUR } else { super::OOD_COLOUR };
                        let class = app
                            .model
                            .as_ref()
                            .and_then(|m| m.card.classes.get(entry.pred as usize))
                            .cloned()
                            .unwrap_or_default();
                        let response = egui::Frame::new()
                            .stroke(egui::Stroke::new(3.0, colour))
                            .inner_margin(2.0)
                            .show(ui, |ui| {
                                ui.set_width(CELL);
                                ui.vertical_centered(|ui| {
                                    match thumbnails.get(&key) {
                                        Some(t) => {
                                            ui.add(egui::Image::new(t).fit_to_exact_size(Vec2::splat(THUMB as f32)))
                                        }
                                        None => ui.add_sized(Vec2::splat(THUMB as f32), egui::Spinner::new()),
                                    };
                                    ui.label(RichText::new(format!("{score:.decimals$}")).small().strong());
                                    let role = if set.role == Role::Id { "ID" } else { "OOD" };
                                    ui.label(RichText::new(format!("{role} · {class}")).small());
                                });
                            });
                        let response = response.response.interact(egui::Sense::click()).on_hover_text(format!(
                            "{}\nset {} ({})\nscore {score}\ncalled {}",
                            result.run.path_of(i, &result.sets),
                            set.name,
                            set.role.name().to_uppercase(),
                            if called_id { "ID" } else { "OOD" }
                        ));
                        if response.clicked() {
                            clicked = Some(i);
                        }
                    }
                });
            }
        });
    if made == NEW_THUMBNAILS_PER_FRAME {
        ui.ctx().request_repaint();
    }
    if let Some(i) = clicked {
        out.push(Command::Select(Some(i)));
    }
}

fn controls_ui(app: &OodscopeApp, ui: &mut egui::Ui) {
    let Some(result) = &app.result else { return };
    let names: Vec<String> = result
        .sets
        .iter()
        .map(|s| format!("{} ({})", s.name, s.role.name().to_uppercase()))
        .collect();
    let ood_sets: Vec<usize> = (0..result.sets.len())
        .filter(|&s| result.sets[s].role == Role::Ood)
        .collect();
    let id_sets: Vec<usize> = (0..result.sets.len())
        .filter(|&s| result.sets[s].role == Role::Id)
        .collect();
    let shared = state(ui.ctx(), app.result_serial);
    let mut gallery = lock(&shared);
    let g = &mut *gallery;
    ui.horizontal_wrapped(|ui| {
        egui::ComboBox::from_label("set")
            .selected_text(g.set_filter.map_or("all sets".to_string(), |s| names[s].clone()))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut g.set_filter, None, "all sets");
                for (s, name) in names.iter().enumerate() {
                    ui.selectable_value(&mut g.set_filter, Some(s), name);
                }
            });
        ui.selectable_value(&mut g.verdict, VerdictFilter::All, "all");
        ui.selectable_value(&mut g.verdict, VerdictFilter::CalledId, "called ID");
        ui.selectable_value(&mut g.verdict, VerdictFilter::CalledOod, "called OOD");
        ui.separator();
        ui.selectable_value(&mut g.sort, SortOrder::ScoreDescending, "high scores first");
        ui.selectable_value(&mut g.sort, SortOrder::ScoreAscending, "low scores first");
        ui.selectable_value(&mut g.sort, SortOrder::FileOrder, "file order");
        ui.separator();
        if ui
            .button("Worst OOD mistakes")
            .on_hover_text("OOD images called ID, highest score first")
            .clicked()
        {
            g.set_filter = ood_sets.first().copied().filter(|_| ood_sets.len() == 1);
            g.verdict = VerdictFilter::CalledId;
            g.sort = SortOrder::ScoreDescending;
            if g.set_filter.is_none() && !ood_sets.is_empty() {
                g.set_filter = Some(ood_sets[0]);
            }
        }
        if ui
            .button("Worst ID mistakes")
            .on_hover_text("ID images called OOD, lowest score first")
            .clicked()
        {
            g.set_filter = id_sets.first().copied();
            g.verdict = VerdictFilter::CalledOod;
            g.sort = SortOrder::ScoreAscending;
        }
    });
}

/// A thumbnail of image `index` of `set`: the file scaled down, or the noise image as the model sees it.
pub(crate) fn thumbnail(
    ctx: &egui::Context,
    set: &ImageSet,
    index: usize,
    size: u32,
    card: Option<&oodscope_engine::model::ModelCard>,
) -> TextureHandle {
    let image = match &set.source {
        // A file that no longer exists (a results file's image moved): a grey placeholder, quietly.
        SetSource::Folder { files, .. } => match files.get(index).map(|f| f.path.as_path()) {
            Some(path) if path.exists() => image::open(path)
                .map(|i| {
                    let t = i.thumbnail(size, size).to_rgba8();
                    ColorImage::from_rgba_unmultiplied([t.width() as usize, t.height() as usize], t.as_raw())
                })
                .unwrap_or_else(|_| ColorImage::filled([size as usize, size as usize], Color32::DARK_RED)),
            _ => placeholder(size),
        },
        SetSource::Noise { kind, first, .. } => {
            let (c, h, w) = card.map_or((1, 28, 28), |c| (c.channels, c.height, c.width));
            planes_to_image(&noise_image(*kind, first + index, c * h * w), c, h, w)
        }
    };
    ctx.load_texture(format!("thumb-{}-{index}", set.name), image, TextureOptions::NEAREST)
}

/// The thumbnail of an image whose file is gone: grey with a darker cross.
pub fn placeholder(size: u32) -> ColorImage {
    let n = size as usize;
    let mut image = ColorImage::filled([n, n], Color32::from_gray(70));
    for k in 0..n {
        for (x, y) in [(k, k), (n - 1 - k, k)] {
            image.pixels[y * n + x] = Color32::from_gray(40);
        }
    }
    image
}

/// Planar values in [0, 1] (1 or 3 channels) → an egui image.
pub fn planes_to_image(values: &[f32], channels: usize, h: usize, w: usize) -> ColorImage {
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let pixels = (0..h * w)
        .map(|p| {
            if channels == 1 {
                Color32::from_gray(byte(values[p]))
            } else {
                Color32::from_rgb(byte(values[p]), byte(values[h * w + p]), byte(values[2 * h * w + p]))
            }
        })
        .collect();
    ColorImage {
        size: [w, h],
        pixels,
        source_size: Vec2::new(w as f32, h as f32),
    }
}

/// The selected image: large view, top-5 classes, score and verdict.
pub fn detail_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    let (Some(i), Some(result), Some(model)) = (app.selected, &app.result, &app.model) else {
        return;
    };
    let Some(entry) = result.run.images.get(i) else { return };
    let set = &result.sets[entry.set];
    ui.horizontal(|ui| {
        ui.heading("Image");
        if ui.small_button("×").on_hover_text("Close (Esc)").clicked() {
            out.push(Command::Select(None));
        }
    });
    let key = (entry.set, entry.index);
    let shared = state(ui.ctx(), app.result_serial);
    let thumbnail = lock(&shared).thumbnails.get(&key).cloned();
    if let Some(t) = &thumbnail {
        ui.add(egui::Image::new(t).fit_to_exact_size(Vec2::splat(224.0)));
    }
    ui.label(RichText::new(result.run.path_of(i, &result.sets)).small());
    ui.label(format!("set {} ({})", set.name, set.role.name().to_uppercase()));
    let score = result.scores[i];
    let verdict = match app.threshold {
        Some(t) if score > t => RichText::new("called ID").color(super::style::colours(ui).id),
        Some(_) => RichText::new("called OOD").color(super::style::colours(ui).ood),
        None => RichText::new(""),
    };
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("{}: {score:.6}", result.title())).strong());
        ui.label(verdict);
    });
    if let Some(label) = entry.label {
        ui.label(format!(
            "label: {}",
            model.card.classes.get(label as usize).cloned().unwrap_or_default()
        ));
    }
    if let Some(shown) = result.method_shown() {
        perturbation_ui(app, ui, key, shown);
    }
    ui.separator();
    ui.label(RichText::new("Top-5 classes").strong());
    let probabilities = oodscope_engine::score::classes::class_probabilities(
        result.logits_of(i),
        &model.layout,
        model.card.num_classes(),
    );
    for (class, p) in oodscope_engine::score::classes::top_classes(&probabilities, 5) {
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(p as f32)
                    .desired_width(120.0)
                    .text(format!("{:.1}%", 100.0 * p)),
            );
            ui.label(model.card.classes.get(class).cloned().unwrap_or_default());
        });
    }
}

/// The perturbation `x̃ − x` as an image: grey = 0, white = +ε, black = −ε.
fn perturbation_ui(
    app: &OodscopeApp,
    ui: &mut egui::Ui,
    key: (usize, usize),
    shown: &oodscope_engine::score::ScoreSettings,
) {
    let eps = shown.epsilon();
    if eps == 0.0 {
        return;
    }
    match app
        .perturbation
        .as_ref()
        .filter(|p| p.key == key && p.settings == *shown)
    {
        Some(p) => {
            let [c, h, w] = p.shape;
            let scaled: Vec<f32> = p.values.iter().map(|v| 0.5 + 0.5 * v / eps as f32).collect();
            let texture = ui.ctx().load_texture(
                "perturbation",
                planes_to_image(&scaled, c, h, w),
                TextureOptions::NEAREST,
            );
            ui.label(RichText::new(format!("Perturbation x̃ − x (±ε = {eps})")).strong());
            ui.add(egui::Image::new(&texture).fit_to_exact_size(Vec2::splat(160.0)));
        }
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("computing the perturbation…");
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary-search cut equals filtering every image at δ, then sorting (what the gallery
    /// did before), for every verdict, sort and set filter, at δ between and on the scores.
    #[test]
    fn the_cut_at_delta_equals_filtering_then_sorting() {
        let scores: Vec<f32> = (0..500).map(|i| ((i * 7919) % 101) as f32 / 10.0 - 3.0).collect();
        let sets_of: Vec<usize> = (0..500).map(|i| i % 3).collect();
        for set in [None, Some(1)] {
            for sort in [
                SortOrder::ScoreDescending,
                SortOrder::ScoreAscending,
                SortOrder::FileOrder,
            ] {
                let order = ordered(&scores, &sets_of, set, sort);
                for threshold in [-5.0, -3.0, 0.0, 1.3, 2.05, 7.0, 9.0] {
                    for verdict in [VerdictFilter::All, VerdictFilter::CalledId, VerdictFilter::CalledOod] {
                        let mut expected: Vec<usize> = (0..scores.len())
                            .filter(|&i| set.is_none_or(|s| sets_of[i] == s))
                            .filter(|&i| match verdict {
                                VerdictFilter::All => true,
                                VerdictFilter::CalledId => scores[i] > threshold,
                                VerdictFilter::CalledOod => scores[i] <= threshold,
                            })
                            .collect();
                        match sort {
                            SortOrder::ScoreDescending => expected.sort_by(|&a, &b| scores[b].total_cmp(&scores[a])),
                            SortOrder::ScoreAscending => expected.sort_by(|&a, &b| scores[a].total_cmp(&scores[b])),
                            SortOrder::FileOrder => {}
                        }
                        let got = at_threshold(&order, &scores, sort, verdict, threshold);
                        assert_eq!(
                            &*got,
                            expected.as_slice(),
                            "{set:?} {sort:?} {verdict:?} δ = {threshold}"
                        );
                    }
                }
            }
        }
    }
}

/// Decimals that tell the tiles apart: three significant digits of the scores' spread (their
/// interquartile range, else their full range), at least 2 and at most 8. ODIN's scores at
/// T = 1000 all read 0.1014 at four decimals; their spread is about 1e-5.
pub fn score_decimals(scores: &[f32]) -> usize {
    let mut finite: Vec<f32> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    if finite.len() < 2 {
        return 4;
    }
    finite.sort_by(f32::total_cmp);
    let at = |q: f64| finite[((finite.len() - 1) as f64 * q).round() as usize] as f64;
    let spread = match at(0.75) - at(0.25) {
        iqr if iqr > 0.0 => iqr,
        _ => at(1.0) - at(0.0),
    };
    if spread <= 0.0 {
        return 4;
    }
    (2.0 - spread.log10().floor()).clamp(2.0, 8.0) as usize
}

#[cfg(test)]
mod decimals_tests {
    #[test]
    fn tiles_get_the_decimals_their_spread_needs() {
        use super::score_decimals;
        // ODIN at T = 1000: scores 0.10140…, their interquartile range 9.8e-6 (three digits of
        // it: 8 decimals).
        let odin: Vec<f32> = (0..100).map(|i| 0.1014 + i as f32 * 2e-7).collect();
        assert_eq!(score_decimals(&odin), 8);
        let msp: Vec<f32> = (0..100).map(|i| 0.3 + i as f32 * 0.007).collect();
        assert_eq!(score_decimals(&msp), 3);
        let energy: Vec<f32> = (0..100).map(|i| i as f32 * 0.4).collect();
        assert_eq!(score_decimals(&energy), 2);
        assert_eq!(score_decimals(&[1.0, 1.0]), 4);
        assert_eq!(score_decimals(&[]), 4);
    }
}
