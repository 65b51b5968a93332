//! The validation metrics of every grid setting, the objective, and the deterministic choice.

use super::grid::{Objective, ParamGrid};
use super::split::ValidationData;
use crate::detect::Params;
use crate::score::run::sets_with_role;
use oodscope_data::{ImageSet, Role};
use oodscope_metrics::{DetectionMetrics, detection_metrics};

/// One OOD set's validation metrics at one setting, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub struct SetMetrics {
    /// Index of the OOD set in the run's set list.
    pub set: usize,
    pub metrics: Result<DetectionMetrics, String>,
}

/// One grid setting on the validation split.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingResult {
    pub params: Params,
    /// Every OOD set against the pooled ID validation images, in set order.
    pub per_set: Vec<SetMetrics>,
    /// The objective over the tuned sets (their mean), or `None` when a tuned set has no metrics.
    pub objective: Option<f64>,
}

/// Metrics of every setting in grid order. `tuned` are the OOD sets the objective averages over.
pub fn evaluate_grid(
    grid: &ParamGrid,
    scores: &[Vec<f32>],
    data: &ValidationData,
    sets: &[ImageSet],
    tuned: &[usize],
    objective: Objective,
) -> Vec<SettingResult> {
    let ood_sets = sets_with_role(sets, Role::Ood);
    scores
        .iter()
        .enumerate()
        .map(|(i, setting_scores)| {
            let of_role = |role: Role| -> Vec<f32> {
                setting_scores
                    .iter()
                    .zip(&data.set_of)
                    .filter(|&(_, &set)| sets[set].role == role)
                    .map(|(&s, _)| s)
                    .collect()
            };
            let id = of_role(Role::Id);
            let per_set: Vec<SetMetrics> = ood_sets
                .iter()
                .map(|&set| {
                    let ood: Vec<f32> = setting_scores
                        .iter()
                        .zip(&data.set_of)
                        .filter(|&(_, &s)| s == set)
                        .map(|(&s, _)| s)
                        .collect();
                    SetMetrics {
                        set,
                        metrics: detection_metrics(&id, &ood).map_err(|e| e.to_string()),
                    }
                })
                .collect();
            SettingResult {
                params: grid.params(i),
                objective: objective_of(&per_set, tuned, objective),
                per_set,
            }
        })
        .collect()
}

/// The mean objective over the tuned sets, summed in set order.
fn objective_of(per_set: &[SetMetrics], tuned: &[usize], objective: Objective) -> Option<f64> {
    let values = per_set
        .iter()
        .filter(|m| tuned.contains(&m.set))
        .map(|m| m.metrics.as_ref().ok().map(|m| objective.value(m)))
        .collect::<Option<Vec<f64>>>()?;
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The best setting: the first in grid order (smaller values of earlier parameters: for ODIN,
/// smaller T, then smaller ε) among the equally good.
/// `None` when no setting has an objective.
pub fn best_setting(results: &[SettingResult], objective: Objective) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, value) in results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.objective.map(|v| (i, v)))
    {
        if best.is_none_or(|(_, incumbent)| objective.is_better(value, incumbent)) {
            best = Some((i, value));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(objective: Option<f64>) -> SettingResult {
        SettingResult {
            params: Params::new(),
            per_set: Vec::new(),
            objective,
        }
    }

    #[test]
    fn first_of_equals_wins_and_missing_objectives_are_skipped() {
        let results: Vec<_> = [None, Some(0.3), Some(0.1), Some(0.1), Some(0.2)]
            .into_iter()
            .map(result)
            .collect();
        assert_eq!(best_setting(&results, Objective::Fpr95), Some(2));
        assert_eq!(best_setting(&results, Objective::Auroc), Some(1));
        assert_eq!(best_setting(&[result(None)], Objective::Fpr95), None);
    }

    #[test]
    fn metrics_come_from_the_validation_images_of_each_set() {
        let sets = vec![
            ImageSet::open("uniform:5", Role::Id, &[]).unwrap(),
            ImageSet::open("gaussian:5", Role::Ood, &[]).unwrap(),
            ImageSet::open("uniform:5", Role::Ood, &[]).unwrap(),
        ];
        let data = ValidationData {
            pixels: Vec::new(),
            set_of: vec![0, 0, 1, 1, 2, 2],
            image_len: 0,
            skipped: Vec::new(),
        };
        let over = vec![
            ("temperature".to_string(), vec![1.0]),
            ("epsilon".to_string(), vec![0.0, 0.1]),
        ];
        let grid = ParamGrid::for_method(crate::score::Method::named("odin"), &Default::default(), &over).unwrap();
        // Setting 0 separates set 1 perfectly and set 2 not at all; setting 1 the other way round.
        let scores = vec![vec![1.0, 0.9, 0.1, 0.2, 1.0, 0.9], vec![1.0, 0.9, 1.0, 0.9, 0.1, 0.2]];
        let results = evaluate_grid(&grid, &scores, &data, &sets, &[1, 2], Objective::Auroc);
        assert_eq!(results[0].objective, Some(0.5 * (1.0 + 0.5)));
        assert_eq!(results[1].params.get("epsilon"), Ok(0.1));
        let only_second = evaluate_grid(&grid, &scores, &data, &sets, &[2], Objective::Auroc);
        assert_eq!(best_setting(&only_second, Objective::Auroc), Some(1));
    }
}
