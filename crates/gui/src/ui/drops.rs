//! Drag and drop: a hover overlay saying what a drop will do; dropped images are scored into
//! result cards, a dropped folder asks to become an ID or OOD set, a dropped model loads, a results
//! or fit file opens.

use std::path::{Path, PathBuf};

use egui::{Align2, Color32, FontId, RichText};

use crate::app::{Command, DropOutcome, OodscopeApp};
use oodscope_data::Role;
use oodscope_data::scan::is_image_path;

/// What a dropped path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropKind {
    Model,
    /// A results file (`.parquet`): opened, not scored.
    Results,
    /// A fit file (`.safetensors`): opened beside the results file.
    Fit,
    Folder,
    Image,
    Other,
}

pub fn classify(path: &Path) -> DropKind {
    if path.is_dir() {
        DropKind::Folder
    } else if path.extension().is_some_and(|e| e == "pt" || e == "toml") {
        DropKind::Model
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet")) {
        DropKind::Results
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors")) {
        DropKind::Fit
    } else if is_image_path(path) {
        DropKind::Image
    } else {
        DropKind::Other
    }
}

/// Turns a drop into commands (pure, so tests can check it).
pub fn commands_for_drop(paths: &[PathBuf]) -> (Vec<Command>, Vec<String>) {
    let mut commands = Vec::new();
    let mut problems = Vec::new();
    let mut images = Vec::new();
    for path in paths {
        match classify(path) {
            DropKind::Model => commands.push(Command::LoadModel(path.clone())),
            DropKind::Results => commands.push(Command::OpenResults(path.clone())),
            DropKind::Fit => commands.push(Command::OpenFit(path.clone())),
            DropKind::Folder => commands.push(Command::AskFolderRole(path.clone())),
            DropKind::Image => images.push(path.clone()),
            DropKind::Other => problems.push(format!(
                "{}: not an image, folder, model (.pt / .toml), results file (.parquet) or fit file (.safetensors)",
                path.display()
            )),
        }
    }
    if !images.is_empty() {
        commands.push(Command::ScoreFiles(images));
    }
    (commands, problems)
}

pub fn drop_ui(app: &OodscopeApp, out: &mut Vec<Command>, ctx: &egui::Context) {
    let hovered: Vec<PathBuf> = ctx.input(|i| i.raw.hovered_files.iter().filter_map(|f| f.path.clone()).collect());
    let hovering = ctx.input(|i| !i.raw.hovered_files.is_empty());
    if hovering {
        let text = describe_drop(&hovered);
        let painter = ctx.layer_painter(egui::LayerId::new(
            egui::Order::Foreground,
            egui::Id::unique("drop-overlay"),
        ));
        let rect = ctx.content_rect();
        painter.rect_filled(rect, 0.0, Color32::from_black_alpha(170));
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            text,
            FontId::proportional(26.0),
            Color32::WHITE,
        );
    }
    let dropped: Vec<PathBuf> = ctx.input(|i| {
        i.raw
            .dropped_files
            .iter()
            .map(|f| f.path().to_path_buf())
            .filter(|p| !p.as_os_str().is_empty())
            .collect()
    });
    if !dropped.is_empty() {
        let (commands, problems) = commands_for_drop(&dropped);
        out.extend(problems.into_iter().map(Command::Message));
        for c in commands {
            out.push(c);
        }
    }
    if let Some(folder) = app.pending_folder.clone() {
        egui::Window::new("Add folder")
            .collapsible(false)
            .resizable(false)
            .anchor(Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                ui.label(format!("Add {} as", folder.display()));
                ui.horizontal(|ui| {
                    if ui.button("ID set").clicked() {
                        out.push(Command::ResolveFolder(Some(Role::Id)));
                    }
                    if ui.button("OOD set").clicked() {
                        out.push(Command::ResolveFolder(Some(Role::Ood)));
                    }
                    if ui
                        .button("Training folder (fit)")
                        .on_hover_text("ID training images for the methods that need a fit (KNN, Mahalanobis, ViM, …)")
                        .clicked()
                    {
                        out.push(Command::ResolveFolderAsTrain);
                    }
                    if ui.button("Cancel").clicked() {
                        out.push(Command::ResolveFolder(None));
                    }
                });
            });
    }
}

fn describe_drop(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "Drop images to score them, a folder to add a set, a model to load it, or a results file to open it"
            .into();
    }
    let (mut models, mut folders, mut images, mut results, mut fits) = (0, 0, 0, 0, 0);
    for p in paths {
        match classify(p) {
            DropKind::Model => models += 1,
            DropKind::Results => results += 1,
            DropKind::Fit => fits += 1,
            DropKind::Folder => folders += 1,
            DropKind::Image => images += 1,
            DropKind::Other => {}
        }
    }
    let mut parts = Vec::new();
    if images > 0 {
        parts.push(format!("score {images} image{}", if images == 1 { "" } else { "s" }));
    }
    if folders > 0 {
        parts.push(format!(
            "add {folders} folder{} as a set",
            if folders == 1 { "" } else { "s" }
        ));
    }
    if models > 0 {
        parts.push("load the model".to_string());
    }
    if results > 0 {
        parts.push("open the results file".to_string());
    }
    if fits > 0 {
        parts.push("open the fit beside the results file".to_string());
    }
    if parts.is_empty() {
        "Nothing here oodscope can use".into()
    } else {
        format!("Drop to {}", parts.join(", "))
    }
}

/// The result cards of dropped images, newest first, and "Add images…" (a file dialog) for those
/// who do not drag.
pub fn drop_cards_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        if ui
            .button("Add images…")
            .on_hover_text("Choose image files to score, as if dropped on the window")
            .clicked()
            && let Some(files) = rfd::FileDialog::new()
                .add_filter("images", oodscope_data::scan::IMAGE_EXTENSIONS)
                .pick_files()
        {
            out.extend(commands_for_drop(&files).0);
        }
        ui.label("or drag images from a browser or a file manager onto the window to see their confidence.");
    });
    if app.drops.is_empty() {
        return;
    }
    let classes = app.model.as_ref().map(|m| m.card.classes.clone()).unwrap_or_default();
    let threshold = app.threshold;
    egui::ScrollArea::vertical().show(ui, |ui| {
        for card in &app.drops {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_width(ui.available_width());
                let name = card
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                ui.label(RichText::new(name).strong())
                    .on_hover_text(card.path.display().to_string());
                match &card.outcome {
                    DropOutcome::Scoring => {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label(RichText::new("scoring…").italics());
                        })
                        .response
                        .on_hover_text("Scored between the batches of any running job");
                    }
                    DropOutcome::Scored(s) => {
                        let called_id = threshold.is_some_and(|t| s.score > t);
                        let verdict = if called_id {
                            RichText::new("looks in-distribution").color(super::style::colours(ui).id)
                        } else {
                            RichText::new("looks out-of-distribution").color(super::style::colours(ui).ood)
                        };
                        ui.horizontal(|ui| {
                            ui.label(format!("{}: {:.6}", card.settings.describe(), s.score));
                            ui.label(verdict);
                        });
                        let class = classes.get(s.pred).cloned().unwrap_or_default();
                        ui.label(format!("predicted {class} ({:.1}%)", 100.0 * s.pred_prob));
                        let top: Vec<String> = s
                            .top5
                            .iter()
                            .map(|(c, p)| format!("{} {:.1}%", classes.get(*c).cloned().unwrap_or_default(), 100.0 * p))
                            .collect();
                        ui.label(RichText::new(format!("top-5: {}", top.join(" · "))).small());
                    }
                    DropOutcome::Failed(reason) => {
                        ui.label(
                            RichText::new(format!("could not score: {reason}")).color(super::style::colours(ui).error),
                        );
                    }
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_sorted_into_models_folders_and_images() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("a.png");
        let model = dir.path().join("m.pt");
        let other = dir.path().join("notes.txt");
        for p in [&image, &model, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        let (commands, problems) = commands_for_drop(&[image.clone(), model.clone(), dir.path().to_path_buf(), other]);
        assert_eq!(
            commands,
            vec![
                Command::LoadModel(model),
                Command::AskFolderRole(dir.path().to_path_buf()),
                Command::ScoreFiles(vec![image])
            ]
        );
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn a_dropped_parquet_file_opens_as_results_and_is_not_scored() {
        let results = PathBuf::from("/data/run.PARQUET");
        let (commands, problems) = commands_for_drop(std::slice::from_ref(&results));
        assert_eq!(commands, vec![Command::OpenResults(results)]);
        assert!(problems.is_empty());
    }
}
