//! The metrics table: per OOD set, the five metrics, and TPR, FPR and the 2×2 counts at δ.

use egui::RichText;

use crate::app::OodscopeApp;

pub fn metrics_table_ui(app: &OodscopeApp, ui: &mut egui::Ui) {
    let Some(derived) = &app.derived else { return };
    let accuracy = app.result.as_ref().and_then(|r| r.id_accuracy);
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("ID images: {}", derived.id_scores.len())).strong());
        if let Some(a) = accuracy {
            ui.label(format!("· ID accuracy {:.2}%", 100.0 * a));
        }
        if let Some(t) = app.threshold {
            ui.label(format!("· δ = {t:.6}"));
        }
    });
    let pct = |v: f64| format!("{:.1}%", 100.0 * v);
    egui::Grid::new("metrics").striped(true).num_columns(11).show(ui, |ui| {
        for h in [
            "OOD set",
            "images",
            "FPR at 95% TPR",
            "Detection error",
            "AUROC",
            "AUPR-In",
            "AUPR-Out",
            "TPR at δ",
            "FPR at δ",
            "ID: kept / rejected",
            "OOD: accepted / rejected",
        ] {
            ui.label(RichText::new(h).strong());
        }
        ui.end_row();
        for ood in &derived.ood {
            ui.label(&ood.name);
            ui.label(ood.count.to_string());
            match &ood.metrics {
                Some(m) => {
                    for v in [m.fpr_at_95_tpr, m.detection_error, m.auroc, m.aupr_in, m.aupr_out] {
                        ui.label(pct(v));
                    }
                }
                None => {
                    ui.label(ood.sorted.as_ref().err().cloned().unwrap_or_default());
                    for _ in 0..4 {
                        ui.label("—");
                    }
                }
            }
            match app.threshold.and_then(|t| ood.operating_point(t)) {
                Some(p) => {
                    ui.label(pct(p.tpr));
                    ui.label(pct(p.fpr));
                    ui.label(format!("{} / {}", p.id_as_id, p.id_as_ood));
                    ui.label(format!("{} / {}", p.ood_as_id, p.ood_as_ood));
                }
                None => {
                    for _ in 0..4 {
                        ui.label("—");
                    }
                }
            }
            ui.end_row();
        }
    });
}
