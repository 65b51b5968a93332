//! The bar at the window's foot, of a fixed height so that nothing above it ever moves: every long
//! background job in flight (a progress bar with its counts and the time left) with Cancel, and the
//! latest message, coloured by its kind (the others on hover), with a button to dismiss it.

use std::time::Duration;

use egui::RichText;

use crate::app::message::MessageKind;
use crate::app::tasks::{Task, TaskKind, TaskProgress, ViewJob};
use crate::app::{Command, OodscopeApp, Tab};

/// The bar's height: one row of buttons and a progress bar.
pub const HEIGHT: f32 = 30.0;

/// Progress bars shown side by side; more jobs are counted, and listed on hover.
const SHOWN_JOBS: usize = 2;

pub fn status_bar_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.horizontal_centered(|ui| {
        let jobs = jobs_not_in_view(app);
        for task in jobs.iter().take(SHOWN_JOBS) {
            job_ui(task, 300.0, ui);
        }
        if jobs.len() > SHOWN_JOBS {
            let rest: Vec<String> = jobs[SHOWN_JOBS..].iter().map(|t| t.kind.describe()).collect();
            ui.label(format!("+{} more", rest.len())).on_hover_text(rest.join("\n"));
        }
        if jobs.iter().any(|t| t.kind.is_cancellable())
            && ui
                .button("Cancel")
                .on_hover_text("Stop every background job (Esc)")
                .clicked()
        {
            out.push(Command::Cancel);
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            message_ui(app, out, ui);
        });
    });
}

/// The long jobs the bar shows: those in flight but for the ones the screen already shows with
/// their own progress bar and Cancel (the fit in the side panel; a comparison, a tuning run or a
/// detector opening in its own view), so that no job has two bars or two Cancel buttons.
fn jobs_not_in_view(app: &OodscopeApp) -> Vec<&Task> {
    let in_view = |k: &TaskKind| {
        ViewJob::Fit.is(k)
            || match app.settings.tab {
                Tab::Compare => ViewJob::Compare.is(k),
                Tab::Tuning => ViewJob::Tune.is(k),
                Tab::Detector => ViewJob::OpenDetector.is(k),
                _ => false,
            }
    };
    long_jobs(app).into_iter().filter(|t| !in_view(&t.kind)).collect()
}

/// The long jobs in flight, oldest first.
pub fn long_jobs(app: &OodscopeApp) -> Vec<&Task> {
    app.tasks.iter().map(|(_, t)| t).filter(|t| t.kind.is_long()).collect()
}

/// One job: a progress bar with its counts and time left (a spinner until the first count).
pub fn job_ui(task: &Task, width: f32, ui: &mut egui::Ui) {
    let text = job_text(task);
    let fraction = task
        .progress
        .as_ref()
        .map(TaskProgress::fraction)
        .filter(|(_, t)| *t > 0);
    let response = match fraction {
        Some((done, total)) => ui.add(
            egui::ProgressBar::new(done as f32 / total as f32)
                .desired_width(width)
                .text(text),
        ),
        None => {
            ui.spinner();
            ui.label(text)
        }
    };
    response.on_hover_text(task.kind.describe());
}

/// What a job's bar says: what it does, how far it is, and the time left, e.g. "Fitting: 1200 /
/// 6000 images · about 1 min 20 s left".
pub fn job_text(task: &Task) -> String {
    describe_job(&task.kind, task.progress.as_ref(), task.eta(), task.started.elapsed())
}

/// [`job_text`] from its parts.
pub fn describe_job(
    kind: &TaskKind,
    progress: Option<&TaskProgress>,
    eta: Option<Duration>,
    elapsed: Duration,
) -> String {
    let what = match kind {
        TaskKind::Score { .. } => "Scoring",
        TaskKind::Fit { .. } => "Fitting",
        TaskKind::Tune => "Tuning",
        TaskKind::Compare => "Comparing methods",
        TaskKind::OpenResults { .. } => "Reading the results file",
        TaskKind::SaveDetector { .. } => "Saving the detector",
        TaskKind::OpenDetector { .. } => "Opening the detector",
        TaskKind::LoadModel => "Loading the model",
        TaskKind::OpenSet { .. } => "Opening a set",
        TaskKind::Rescore { .. } => "Re-scoring",
        TaskKind::Estimate { .. } => "Estimating",
        TaskKind::Perturbation => "Perturbing",
    };
    let counts = match progress {
        Some(TaskProgress::Run(p)) => Some(format!("{} / {} images", p.done, p.total)),
        Some(TaskProgress::Fit(p)) => Some(match p.stage {
            oodscope_engine::fit::FitStage::Images => format!("{} / {} images", p.done, p.total),
            oodscope_engine::fit::FitStage::Statistics => format!("statistics, pass {} / {}", p.done, p.total),
        }),
        Some(TaskProgress::Tune(p)) => {
            let stage = match p.stage {
                oodscope_engine::tune::Stage::Decoding => "decoding",
                oodscope_engine::tune::Stage::Searching => "searching",
                oodscope_engine::tune::Stage::Testing => "testing",
            };
            Some(format!("{stage} {} / {} images", p.done, p.total))
        }
        Some(TaskProgress::Compare(p)) => {
            let stage = match p.stage {
                oodscope_engine::compare::Stage::Decoding => "decoding",
                oodscope_engine::compare::Stage::Searching => "searching",
                oodscope_engine::compare::Stage::Scoring => "scoring",
            };
            Some(format!("{stage} {} / {} images", p.done, p.total))
        }
        Some(TaskProgress::Rows(r)) => Some(format!("{} / {} rows", r.done, r.total)),
        Some(TaskProgress::DetectorRead(_)) => Some("loading its model".to_string()),
        None => None,
    };
    match (counts, eta) {
        (Some(counts), Some(eta)) => format!("{what}: {counts} · about {} left", duration_text(eta)),
        (Some(counts), None) => format!("{what}: {counts}"),
        (None, _) => format!("{what}… {}", duration_text(elapsed)),
    }
}

/// A duration as people say it: "45 s", "2 min 5 s", "1 h 3 min".
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The latest message (right-aligned, cut to the bar's width, in full on hover), how many came
/// before it, and ×.
fn message_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    let Some(last) = app.messages.last() else { return };
    if ui.button("Dismiss").on_hover_text("Clear the messages").clicked() {
        out.push(Command::DismissMessage);
    }
    let all: Vec<&str> = app.messages.iter().map(|m| &m.text[..]).collect();
    if all.len() > 1 {
        ui.label(format!("(+{} more)", all.len() - 1))
            .on_hover_text(all.join("\n"));
    }
    let colours = super::style::colours(ui);
    let colour = match last.kind {
        MessageKind::Error => colours.error,
        MessageKind::Done => colours.done,
        MessageKind::Note => ui.visuals().text_color(),
    };
    ui.add(egui::Label::new(RichText::new(&last.text).color(colour)).truncate())
        .on_hover_text(&last.text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_says_what_it_does_how_far_it_is_and_the_time_left() {
        let fit = TaskKind::Fit { train: "train".into() };
        let progress = TaskProgress::Fit(oodscope_engine::fit::FitProgress {
            stage: oodscope_engine::fit::FitStage::Images,
            done: 1200,
            total: 6000,
            elapsed: Duration::from_secs(20),
        });
        assert_eq!(
            describe_job(&fit, Some(&progress), Some(Duration::from_secs(80)), Duration::ZERO),
            "Fitting: 1200 / 6000 images · about 1 min 20 s left"
        );
        let open = TaskKind::OpenResults {
            path: "r.parquet".into(),
        };
        assert_eq!(
            describe_job(&open, None, None, Duration::from_secs(3)),
            "Reading the results file… 3 s"
        );
        let rows = TaskProgress::Rows(oodscope_engine::results::RowsRead {
            done: 65_536,
            total: 200_000,
        });
        assert_eq!(
            describe_job(&open, Some(&rows), Some(Duration::from_secs(9)), Duration::ZERO),
            "Reading the results file: 65536 / 200000 rows · about 9 s left"
        );
        assert_eq!(duration_text(Duration::from_secs(3725)), "1 h 2 min");
    }
}
