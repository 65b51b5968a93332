//! The refresh policy: what brings the display in line with the sliders. `decide` (with a model)
//! and `decide_without_model` (a results file open on its own) are pure functions of a snapshot of
//! the app, so unit tests drive every case without a worker; `OodscopeApp::refresh` takes the
//! snapshot and carries the decision out.

use oodscope_engine::score::ScoreSettings;

/// What the app knows when the sliders (or the sets, or the fit) changed, with a model loaded.
#[derive(Debug, Clone, Default)]
pub struct Snapshot<'a> {
    /// Every set of the side panel has been opened (scanned).
    pub sets_open: bool,
    /// The wanted method needs a fit; the fit is ready; a fit is being made.
    pub needs_fit: bool,
    pub has_fit: bool,
    pub fitting: bool,
    /// The result on display is over the enabled sets.
    pub same_sets: bool,
    /// It shows exactly the wanted settings (not an estimate).
    pub on_display: bool,
    /// It was computed with exactly the wanted settings.
    pub computed_is_wanted: bool,
    /// Its cached outputs give the wanted settings without the model (no input step).
    pub can_show: bool,
    /// The open results file's stored column of the wanted settings (over the enabled sets).
    pub opened_column: Option<usize>,
    /// The comparison's column of the wanted settings (over the enabled sets).
    pub compared_column: Option<usize>,
    /// The settings of the re-score in flight, and of the scoring job in flight over the enabled
    /// sets.
    pub rescoring: Option<&'a ScoreSettings>,
    pub scoring: Option<&'a ScoreSettings>,
    pub wanted: Option<&'a ScoreSettings>,
    /// The enabled sets hold at least one ID and one OOD set.
    pub has_id_and_ood: bool,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing yet: the sets are being opened, or the fit is being made, or no settings are valid.
    Wait,
    /// The wanted method needs a fit, and none is ready or coming: say so.
    AskForFit,
    /// Show the results file's stored column (no job; stop any other).
    ShowStoredColumn(usize),
    /// Show the comparison's kept column (no job; stop any other).
    ShowComparedColumn(usize),
    /// The wanted settings are on display: stop any re-score and scoring job.
    Showing,
    /// Show the computed scores again.
    ShowComputed,
    /// Re-score the cached outputs (no model pass).
    Rescore,
    /// The re-score in flight is the wanted one.
    KeepRescoring,
    /// The scoring job in flight is the wanted one, over the enabled sets.
    KeepScoring,
    /// Scoring needs an ID and an OOD set: say so.
    NeedIdAndOod,
    /// Run the model (cancelling any other scoring job); with a first-order estimate first where
    /// the result on display is over the same sets.
    Score { estimate: bool },
}

/// The decision with a model loaded.
pub fn decide(s: &Snapshot) -> Decision {
    let Some(wanted) = s.wanted else {
        return Decision::Wait;
    };
    if !s.sets_open {
        return Decision::Wait; // scoring starts once every set is open
    }
    if s.needs_fit && !s.has_fit {
        return if s.fitting { Decision::Wait } else { Decision::AskForFit };
    }
    if !s.on_display {
        if let Some(column) = s.opened_column {
            return Decision::ShowStoredColumn(column);
        }
        if let Some(column) = s.compared_column {
            return Decision::ShowComparedColumn(column);
        }
    }
    if s.same_sets && s.can_show {
        return if s.on_display {
            Decision::Showing
        } else if s.computed_is_wanted {
            Decision::ShowComputed
        } else if s.rescoring == Some(wanted) {
            Decision::KeepRescoring
        } else {
            Decision::Rescore
        };
    }
    if s.scoring == Some(wanted) {
        return Decision::KeepScoring;
    }
    if !s.has_id_and_ood {
        return Decision::NeedIdAndOod;
    }
    Decision::Score { estimate: s.same_sets }
}

/// What the app knows with a results file open and no model.
#[derive(Debug, Clone, Default)]
pub struct StoredSnapshot<'a> {
    pub wanted: Option<&'a ScoreSettings>,
    /// The result on display shows the wanted settings.
    pub on_display: bool,
    /// The file's stored column of the wanted settings.
    pub stored_column: Option<usize>,
    /// A re-score of these settings from the saved outputs failed before (and said why).
    pub failed_before: bool,
    /// What the saved outputs lack for the wanted settings, if anything.
    pub missing: Option<String>,
    /// The settings of the re-score in flight.
    pub rescoring: Option<&'a ScoreSettings>,
}

/// What to do without a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredDecision {
    Wait,
    /// On display: stop any re-score.
    Showing,
    ShowStoredColumn(usize),
    /// Re-score the saved logits / features.
    Rescore,
    KeepRescoring,
    /// Say what is missing (the model, a fit, the features…); stop any re-score.
    Explain(String),
}

/// The decision with a results file open and no model.
pub fn decide_without_model(s: &StoredSnapshot) -> StoredDecision {
    let Some(wanted) = s.wanted else {
        return StoredDecision::Wait;
    };
    if s.on_display {
        return StoredDecision::Showing;
    }
    if let Some(column) = s.stored_column {
        return StoredDecision::ShowStoredColumn(column);
    }
    if s.failed_before {
        return StoredDecision::Wait; // it failed, and said why
    }
    match &s.missing {
        Some(why) => StoredDecision::Explain(why.clone()),
        None if s.rescoring == Some(wanted) => StoredDecision::KeepRescoring,
        None => StoredDecision::Rescore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oodscope_engine::detect::{Dims, Params};
    use oodscope_engine::score::Method;

    fn odin(t: f64, eps: f64) -> ScoreSettings {
        let dims = Dims {
            classes: 10,
            features: None,
            bank: None,
        };
        let given = Params::new().with("temperature", t).with("epsilon", eps);
        ScoreSettings::new(Method::named("odin"), &given, &dims).unwrap()
    }

    /// Everything ready, nothing on display.
    fn ready<'a>(wanted: &'a ScoreSettings) -> Snapshot<'a> {
        Snapshot {
            sets_open: true,
            wanted: Some(wanted),
            has_id_and_ood: true,
            ..Snapshot::default()
        }
    }

    #[test]
    fn nothing_happens_before_the_sets_are_open_or_while_the_fit_is_made() {
        let wanted = odin(1000.0, 0.0);
        let closed = Snapshot {
            sets_open: false,
            ..ready(&wanted)
        };
        assert_eq!(decide(&closed), Decision::Wait);
        let fitting = Snapshot {
            needs_fit: true,
            fitting: true,
            ..ready(&wanted)
        };
        assert_eq!(decide(&fitting), Decision::Wait);
        let no_fit = Snapshot {
            needs_fit: true,
            ..ready(&wanted)
        };
        assert_eq!(decide(&no_fit), Decision::AskForFit);
        assert_eq!(decide(&Snapshot::default()), Decision::Wait, "no valid settings");
    }

    #[test]
    fn a_first_result_runs_the_model_without_an_estimate() {
        let wanted = odin(1000.0, 0.0014);
        assert_eq!(decide(&ready(&wanted)), Decision::Score { estimate: false });
        let lonely = Snapshot {
            has_id_and_ood: false,
            ..ready(&wanted)
        };
        assert_eq!(decide(&lonely), Decision::NeedIdAndOod);
    }

    #[test]
    fn a_new_temperature_with_no_step_re_scores_the_cache_once() {
        let wanted = odin(10.0, 0.0);
        let cached = Snapshot {
            same_sets: true,
            can_show: true,
            ..ready(&wanted)
        };
        assert_eq!(decide(&cached), Decision::Rescore);
        let in_flight = Snapshot {
            rescoring: Some(&wanted),
            ..cached.clone()
        };
        assert_eq!(decide(&in_flight), Decision::KeepRescoring);
        let back = Snapshot {
            computed_is_wanted: true,
            ..cached.clone()
        };
        assert_eq!(decide(&back), Decision::ShowComputed);
        let shown = Snapshot {
            on_display: true,
            ..cached
        };
        assert_eq!(decide(&shown), Decision::Showing);
    }

    #[test]
    fn a_new_epsilon_runs_the_model_with_an_estimate_unless_that_job_already_runs() {
        let wanted = odin(1000.0, 0.002);
        let stepped = Snapshot {
            same_sets: true,
            can_show: false,
            ..ready(&wanted)
        };
        assert_eq!(decide(&stepped), Decision::Score { estimate: true });
        let running = Snapshot {
            scoring: Some(&wanted),
            ..stepped
        };
        assert_eq!(decide(&running), Decision::KeepScoring);
    }

    #[test]
    fn stored_and_compared_columns_come_first_and_at_once() {
        let wanted = odin(1000.0, 0.002);
        let both = Snapshot {
            opened_column: Some(2),
            compared_column: Some(5),
            ..ready(&wanted)
        };
        assert_eq!(decide(&both), Decision::ShowStoredColumn(2));
        let compared = Snapshot {
            opened_column: None,
            ..both.clone()
        };
        assert_eq!(decide(&compared), Decision::ShowComparedColumn(5));
        let on_display = Snapshot {
            on_display: true,
            same_sets: true,
            can_show: true,
            ..both
        };
        assert_eq!(decide(&on_display), Decision::Showing);
    }

    #[test]
    fn without_a_model_a_stored_column_shows_else_the_saved_outputs_re_score_or_say_what_is_missing() {
        let wanted = odin(10.0, 0.0);
        let base = StoredSnapshot {
            wanted: Some(&wanted),
            ..StoredSnapshot::default()
        };
        assert_eq!(decide_without_model(&base), StoredDecision::Rescore);
        let stored = StoredSnapshot {
            stored_column: Some(1),
            ..base.clone()
        };
        assert_eq!(decide_without_model(&stored), StoredDecision::ShowStoredColumn(1));
        let missing = StoredSnapshot {
            missing: Some("needs the model".into()),
            ..base.clone()
        };
        assert_eq!(
            decide_without_model(&missing),
            StoredDecision::Explain("needs the model".into())
        );
        let failed = StoredSnapshot {
            failed_before: true,
            ..base.clone()
        };
        assert_eq!(decide_without_model(&failed), StoredDecision::Wait, "not asked again");
        let running = StoredSnapshot {
            rescoring: Some(&wanted),
            ..base
        };
        assert_eq!(decide_without_model(&running), StoredDecision::KeepRescoring);
    }
}
