//! An image set as the user names it: a folder, or a synthetic `uniform:N` / `gaussian:N` set.

use crate::Error;
use std::path::{Path, PathBuf};

use super::noise::NoiseKind;
use super::path_text::path_to_text;
use super::scan::{FileEntry, scan_folder};
use super::shard::Shard;

/// In-distribution or out-of-distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Id,
    Ood,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Id => "id",
            Role::Ood => "ood",
        }
    }
}

/// Where a set's images come from.
#[derive(Debug, Clone)]
pub enum SetSource {
    Folder {
        root: PathBuf,
        files: Vec<FileEntry>,
    },
    /// `count` images of noise starting at image `first` of the endless seeded sequence
    /// (`first` is 0 except for a shard of a noise set).
    Noise {
        kind: NoiseKind,
        count: usize,
        first: usize,
    },
}

/// A named, scanned image set ready to be scored.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub name: String,
    pub role: Role,
    pub source: SetSource,
    /// Entries the scan could not follow (symlink loops, permissions), with reasons.
    pub unreadable: Vec<(PathBuf, String)>,
    pub labelled: bool,
}

impl ImageSet {
    /// Opens a set from its spec: `uniform:N`, `gaussian:N`, or a folder path.
    pub fn open(spec: &str, role: Role, classes: &[String]) -> Result<ImageSet, Error> {
        if let Some((kind, count)) = parse_noise_spec(spec)? {
            return Ok(ImageSet {
                name: kind.name().to_string(),
                role,
                source: SetSource::Noise { kind, count, first: 0 },
                unreadable: Vec::new(),
                labelled: false,
            });
        }
        let root = Path::new(spec);
        if !root.exists() {
            return Err(Error::NotFound { spec: spec.into() });
        }
        if !root.is_dir() {
            return Err(Error::NotAFolder { spec: spec.into() });
        }
        let scan = scan_folder(root, classes);
        if scan.files.is_empty() {
            return Err(Error::Empty {
                spec: spec.into(),
                extensions: super::scan::IMAGE_EXTENSIONS.join(", "),
            });
        }
        Ok(ImageSet {
            name: folder_name(root),
            role,
            source: SetSource::Folder {
                root: root.to_path_buf(),
                files: scan.files,
            },
            unreadable: scan.unreadable,
            labelled: scan.labelled,
        })
    }

    /// A set of individual files (e.g. dropped on the window), in the given order.
    pub fn from_files(name: &str, role: Role, paths: &[PathBuf]) -> ImageSet {
        let files = paths
            .iter()
            .map(|p| FileEntry {
                path: p.clone(),
                label: None,
            })
            .collect();
        ImageSet {
            name: name.to_string(),
            role,
            source: SetSource::Folder {
                root: PathBuf::new(),
                files,
            },
            unreadable: Vec::new(),
            labelled: false,
        }
    }

    pub fn len(&self) -> usize {
        match &self.source {
            SetSource::Folder { files, .. } => files.len(),
            SetSource::Noise { count, .. } => *count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name shown for image `index`: its path, or `uniform#17` for synthetic images. A path
    /// that is not UTF-8 is escaped losslessly ([`path_to_text`]): the scores CSV, the results
    /// file and the report keep it exactly.
    pub fn item_name(&self, index: usize) -> String {
        match &self.source {
            SetSource::Folder { files, .. } => path_to_text(&files[index].path),
            SetSource::Noise { kind, first, .. } => format!("{kind}#{}", first + index),
        }
    }

    /// Shard `shard` of this set alone: a contiguous block of its sorted listing (see [`Shard`]).
    pub fn shard(&self, shard: Shard) -> ImageSet {
        self.block(shard.range(self.len()), shard.index == 0)
    }

    /// The images `range` of this set's sorted listing (a shard's block, [`Shard::blocks`]). Image
    /// names and noise images keep their place in the whole set; the scan's unreadable entries go
    /// with the `first` block only.
    pub fn block(&self, range: std::ops::Range<usize>, first: bool) -> ImageSet {
        let source = match &self.source {
            SetSource::Folder { root, files } => SetSource::Folder {
                root: root.clone(),
                files: files[range].to_vec(),
            },
            SetSource::Noise { kind, first, .. } => SetSource::Noise {
                kind: *kind,
                count: range.len(),
                first: first + range.start,
            },
        };
        ImageSet {
            name: self.name.clone(),
            role: self.role,
            source,
            unreadable: if first { self.unreadable.clone() } else { Vec::new() },
            labelled: self.labelled,
        }
    }

    pub fn label(&self, index: usize) -> Option<usize> {
        match &self.source {
            SetSource::Folder { files, .. } => files[index].label,
            SetSource::Noise { .. } => None,
        }
    }
}

/// The most images a noise set may have: 10⁷. A run keeps about 100 bytes per image (its record,
/// its name, its scores, its place in the stream), so 10⁷ images take about 1 GB before any is
/// scored, and the metrics of uniform or Gaussian noise settle long before (they are the same
/// images in distribution); at a few thousand images a second 10⁷ take an hour.
pub const MAX_NOISE_IMAGES: usize = 10_000_000;

/// `uniform:N` or `gaussian:N` → the kind and count; anything else is not a noise spec.
fn parse_noise_spec(spec: &str) -> Result<Option<(NoiseKind, usize)>, Error> {
    let Some((prefix, count)) = spec.split_once(':') else {
        return Ok(None);
    };
    let kind = match prefix {
        "uniform" => NoiseKind::Uniform,
        "gaussian" => NoiseKind::Gaussian,
        _ => return Ok(None),
    };
    match count.parse::<u128>() {
        Ok(n) if n > MAX_NOISE_IMAGES as u128 => Err(Error::BadSpec {
            spec: spec.into(),
            message: format!(
                "at most {MAX_NOISE_IMAGES} noise images (a run keeps about 100 bytes per image, so 10⁷ take about 1 GB); use a smaller N"
            ),
        }),
        Ok(n) if n > 0 => Ok(Some((kind, n as usize))),
        _ => Err(Error::BadSpec {
            spec: spec.into(),
            message: format!("expected {prefix}:N with N a positive count"),
        }),
    }
}

fn folder_name(root: &Path) -> String {
    let canonical = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| root.display().to_string())
}

/// Makes set names unique by suffixing repeats: `ood`, `ood-2`, …
pub fn make_names_unique(sets: &mut [ImageSet]) {
    let mut seen: Vec<String> = Vec::new();
    for set in sets.iter_mut() {
        let base = set.name.clone();
        let mut n = 1;
        while seen.contains(&set.name) {
            n += 1;
            set.name = format!("{base}-{n}");
        }
        seen.push(set.name.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_specs_parse() {
        let set = ImageSet::open("gaussian:12", Role::Ood, &[]).unwrap();
        assert_eq!((set.name.as_str(), set.len()), ("gaussian", 12));
        assert!(
            ImageSet::open("uniform:0", Role::Ood, &[])
                .unwrap_err()
                .to_string()
                .contains("positive")
        );
    }

    #[test]
    fn a_noise_set_over_the_budget_is_refused_before_anything_is_allocated() {
        assert_eq!(
            ImageSet::open("uniform:10000000", Role::Ood, &[]).unwrap().len(),
            10_000_000
        );
        for spec in [
            "uniform:10000001",
            "gaussian:100000000000000",
            "uniform:99999999999999999999999",
        ] {
            assert_eq!(
                ImageSet::open(spec, Role::Ood, &[]).unwrap_err().to_string(),
                format!(
                    "{spec}: at most 10000000 noise images (a run keeps about 100 bytes per image, so 10⁷ take about 1 GB); use a smaller N"
                )
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_path_that_is_not_utf8_keeps_its_bytes_in_its_name() {
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(b"ood/bad\xff\xfename.png"));
        let set = ImageSet::from_files("ood", Role::Ood, std::slice::from_ref(&path));
        assert_eq!(set.item_name(0), r"ood/bad\xff\xfename.png");
        assert_eq!(crate::path_from_text(&set.item_name(0)), path);
    }

    #[test]
    fn shards_of_a_noise_set_keep_each_image_in_its_place() {
        let whole = ImageSet::open("uniform:10", Role::Ood, &[]).unwrap();
        let part = whole.shard(Shard::new(1, 3).unwrap());
        assert_eq!(part.len(), 3);
        assert_eq!(part.item_name(0), whole.item_name(3));
        assert!(matches!(part.source, SetSource::Noise { first: 3, count: 3, .. }));
    }

    #[test]
    fn empty_and_missing_folders_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().to_str().unwrap();
        assert!(
            ImageSet::open(spec, Role::Id, &[])
                .unwrap_err()
                .to_string()
                .contains("no images found")
        );
        let missing = format!("{spec}/nope");
        assert!(
            ImageSet::open(&missing, Role::Id, &[])
                .unwrap_err()
                .to_string()
                .contains("no such folder")
        );
    }
}
