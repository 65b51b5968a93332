//! The honest split: the first K images of each set choose the parameters, the rest report on the
//! choice.
//!
//! The validation split is decoded once and kept in memory as preprocessed pixels, because every
//! grid setting runs over all of it: `C·H·W` floats per image, 3 MB per 1000 images of 28×28 (the
//! demo's sizes, at most a few thousand images), but 600 MB per 1000 images of 3×224×224 — use a
//! smaller `--validation` there. The test split is never held: it streams through `run_scoring`.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::grid::ValidationSplit;
use crate::Error;
use crate::pipeline::SkippedFile;
use crate::score::ScoreRun;
use oodscope_data::noise::noise_image;
use oodscope_data::{ImageSet, Preprocess, SetSource, decode_file};

/// How one set is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SetSplit {
    /// Images `0..validation` (in the set's sorted order) are the validation split.
    pub validation: usize,
    /// Images `validation..total` are the test split.
    pub test: usize,
}

/// The split of every set; fails when a set would have no test images.
pub fn split_sets(sets: &[ImageSet], split: ValidationSplit) -> Result<Vec<SetSplit>, Error> {
    sets.iter()
        .map(|set| {
            let total = set.len();
            let validation = split.count_for(total);
            if validation >= total {
                return Err(Error::Invalid(format!(
                    "{} set `{}` has {total} images: a validation split of {validation} leaves none for the test split (use a smaller --validation)",
                    set.role.name().to_uppercase(),
                    set.name
                )));
            }
            Ok(SetSplit {
                validation,
                test: total - validation,
            })
        })
        .collect()
}

/// The decoded validation split of every set, in set order then image order.
#[derive(Debug, Clone, Default)]
pub struct ValidationData {
    /// `C·H·W` pixel-unit values per image, images back to back.
    pub pixels: Vec<f32>,
    /// The set of each decoded image.
    pub set_of: Vec<usize>,
    /// Values per image.
    pub image_len: usize,
    /// Validation images that could not be decoded, with reasons.
    pub skipped: Vec<SkippedFile>,
}

impl ValidationData {
    /// Number of decoded images.
    pub fn len(&self) -> usize {
        self.set_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set_of.is_empty()
    }

    /// Images per set, for `sets` sets.
    pub fn per_set(&self, sets: usize) -> Vec<usize> {
        (0..sets)
            .map(|s| self.set_of.iter().filter(|&&d| d == s).count())
            .collect()
    }

    /// The pixels of images `start..end`.
    pub fn images(&self, start: usize, end: usize) -> &[f32] {
        &self.pixels[start * self.image_len..end * self.image_len]
    }
}

/// Decodes the validation split of every set in parallel, `batch_size` images at a time; reports
/// `(done, total)` after each batch and stops on cancel between batches.
pub fn load_validation(
    sets: &[ImageSet],
    splits: &[SetSplit],
    pre: &Preprocess,
    batch_size: usize,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<ValidationData, Error> {
    let items: Vec<(usize, usize)> = splits
        .iter()
        .enumerate()
        .flat_map(|(set, split)| (0..split.validation).map(move |index| (set, index)))
        .collect();
    let mut data = ValidationData {
        image_len: pre.len(),
        ..ValidationData::default()
    };
    data.pixels.reserve(items.len() * pre.len());
    let mut done = 0;
    for chunk in items.chunks(batch_size.max(1)) {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let decoded: Vec<Result<Vec<f32>, String>> = chunk
            .par_iter()
            .map(|&(set, index)| match &sets[set].source {
                SetSource::Folder { files, .. } => decode_file(&files[index].path, pre).map_err(|e| e.0),
                SetSource::Noise { kind, first, .. } => Ok(noise_image(*kind, first + index, pre.len())),
            })
            .collect();
        for (&(set, index), result) in chunk.iter().zip(decoded) {
            match result {
                Ok(pixels) => {
                    data.pixels.extend_from_slice(&pixels);
                    data.set_of.push(set);
                }
                Err(reason) => data.skipped.push(SkippedFile {
                    set,
                    path: sets[set].item_name(index),
                    reason,
                }),
            }
        }
        done += chunk.len();
        on_progress(done, items.len());
    }
    Ok(data)
}

/// The test split of every set, as sets `run_scoring` can stream. A folder set keeps its files
/// after the validation split; a noise set (its images are seeded by index) stays whole, and
/// [`drop_validation_scores`] removes its validation images from the run afterwards.
pub fn test_sets(sets: &[ImageSet], splits: &[SetSplit]) -> Vec<ImageSet> {
    sets.iter()
        .zip(splits)
        .map(|(set, split)| {
            let mut test = set.clone();
            if let SetSource::Folder { files, .. } = &mut test.source {
                files.drain(..split.validation);
            }
            test
        })
        .collect()
}

/// Removes from a run over [`test_sets`] the images of noise sets that belong to the validation split.
pub fn drop_validation_scores(run: &mut ScoreRun, sets: &[ImageSet], splits: &[SetSplit]) {
    let in_validation = |set: usize, index: usize| {
        matches!(sets[set].source, SetSource::Noise { .. }) && index < splits[set].validation
    };
    run.retain(|s| !in_validation(s.set, s.index));
}

#[cfg(test)]
mod tests {
    use super::*;
    use oodscope_data::Role;

    #[test]
    fn splits_need_test_images() {
        let sets = vec![
            ImageSet::open("uniform:10", Role::Id, &[]).unwrap(),
            ImageSet::open("gaussian:4", Role::Ood, &[]).unwrap(),
        ];
        let splits = split_sets(&sets, ValidationSplit::Count(3)).unwrap();
        assert_eq!(splits[0], SetSplit { validation: 3, test: 7 });
        assert_eq!(splits[1], SetSplit { validation: 3, test: 1 });
        let err = split_sets(&sets, ValidationSplit::Count(4)).unwrap_err().to_string();
        assert!(err.contains("OOD set `gaussian` has 4 images"), "{err}");
    }

    #[test]
    fn noise_validation_is_the_first_images() {
        let sets = vec![ImageSet::open("uniform:5", Role::Ood, &[]).unwrap()];
        let splits = split_sets(&sets, ValidationSplit::Count(2)).unwrap();
        let pre = Preprocess::new(1, 2, 2);
        let data = load_validation(&sets, &splits, &pre, 1, &AtomicBool::new(false), &mut |_, _| {}).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(
            data.images(1, 2),
            noise_image(oodscope_data::NoiseKind::Uniform, 1, 4).as_slice()
        );
        let cancelled = load_validation(&sets, &splits, &pre, 1, &AtomicBool::new(true), &mut |_, _| {});
        assert!(matches!(cancelled, Err(Error::Cancelled)));
    }
}
