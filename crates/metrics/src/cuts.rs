//! The cuts between tie groups of the descending merged scores, with the number of ID and OOD
//! scores above each: the ROC and precision–recall points that the metrics and curves are read from.

use std::iter;

use crate::sorted::SortedScores;

impl SortedScores {
    /// The cuts between tie groups of the descending merged scores.
    pub(crate) fn cuts(&self) -> Cuts<'_> {
        Cuts {
            id: self.id(),
            ood: self.ood(),
            n_id: self.id().len(),
            n_ood: self.ood().len(),
        }
    }

    /// Each cut paired with the one before it (the first with the "all OOD" cut).
    pub(crate) fn steps(&self) -> impl Iterator<Item = (Cut, Cut)> + '_ {
        iter::once(Cut::ALL_OOD).chain(self.cuts()).zip(self.cuts())
    }
}

/// Counts at one cut of the descending merged scores: everything at or above the cut is called ID.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cut {
    /// ID scores above the cut (true positives).
    pub(crate) id_above: usize,
    /// OOD scores above the cut (false positives).
    pub(crate) ood_above: usize,
}

impl Cut {
    /// The cut above every score: everything is called OOD.
    const ALL_OOD: Self = Self {
        id_above: 0,
        ood_above: 0,
    };
}

/// Iterator over the cuts below each tie group, from the highest score down; the last cut
/// calls everything ID. Walks both ascending slices from their ends, `O(n)` in total.
pub(crate) struct Cuts<'a> {
    /// ID scores not yet passed, ascending.
    id: &'a [f32],
    /// OOD scores not yet passed, ascending.
    ood: &'a [f32],
    n_id: usize,
    n_ood: usize,
}

impl Iterator for Cuts<'_> {
    type Item = Cut;

    fn next(&mut self) -> Option<Cut> {
        let top = match (self.id.last(), self.ood.last()) {
            (None, None) => return None,
            (Some(&id), None) => id,
            (None, Some(&ood)) => ood,
            (Some(&id), Some(&ood)) => id.max(ood),
        };
        self.id = without_top_group(self.id, top);
        self.ood = without_top_group(self.ood, top);
        Some(Cut {
            id_above: self.n_id - self.id.len(),
            ood_above: self.n_ood - self.ood.len(),
        })
    }
}

/// The ascending slice without its trailing scores equal to `value` (`-0.0 == 0.0`).
fn without_top_group(sorted: &[f32], value: f32) -> &[f32] {
    let kept = sorted
        .iter()
        .rposition(|&score| score != value)
        .map_or(0, |last| last + 1);
    &sorted[..kept]
}
