//! Recursive folder scanning: image files by extension, hidden entries skipped, symlink loops survived,
//! FIFOs, devices and sockets listed as unreadable (never opened), ImageFolder labels from
//! class-named sub-folders.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::read::{special_kind, special_reason};

/// File extensions read as images (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"];

/// One image file found in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: PathBuf,
    /// Class index (into the card's classes) when the folder has ImageFolder layout.
    pub label: Option<usize>,
}

/// What a scan found: the files in a stable order, and the entries it could not follow.
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    pub files: Vec<FileEntry>,
    /// Paths that could not be read (permission, symlink loop) or are not regular files (a FIFO, a
    /// device, a socket, named as an image), with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    /// True when every file sits under a top-level sub-folder named as one of the classes.
    pub labelled: bool,
}

pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with('.'))
}

/// Scans `root` recursively (following links; loops are reported, not followed), sorted by path.
pub fn scan_folder(root: &Path, classes: &[String]) -> ScanResult {
    let mut result = ScanResult::default();
    let walker = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
    let mut paths = Vec::new();
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() && is_image_path(e.path()) => paths.push(e.into_path()),
            // A FIFO, device or socket with an image's name: listed with its reason, never opened.
            Ok(e) if is_image_path(e.path()) => {
                if let Some(kind) = special_kind(&e.file_type()) {
                    let reason = special_reason(kind, e.path_is_symlink());
                    result.unreadable.push((e.into_path(), reason));
                }
            }
            Ok(_) => {}
            Err(err) => {
                let path = err.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
                let reason = if err.loop_ancestor().is_some() {
                    "symbolic link loop (not followed)".to_string()
                } else {
                    err.to_string()
                };
                result.unreadable.push((path, reason));
            }
        }
    }
    let labels: Vec<Option<usize>> = paths.iter().map(|p| class_of(root, p, classes)).collect();
    result.labelled = !paths.is_empty() && labels.iter().all(Option::is_some);
    result.files = paths
        .into_iter()
        .zip(labels)
        .map(|(path, label)| FileEntry {
            path,
            label: if result.labelled { label } else { None },
        })
        .collect();
    result
}

/// The class of a file from its top-level sub-folder's name, if it names a class.
fn class_of(root: &Path, path: &Path, classes: &[String]) -> Option<usize> {
    let relative = path.strip_prefix(root).ok()?;
    let mut components = relative.components();
    let top = components.next()?.as_os_str().to_str()?;
    components.next()?; // the file must be inside the folder, not the folder itself
    classes.iter().position(|c| c == top)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn finds_images_recursively_skips_hidden_and_others() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a/1.PNG"));
        touch(&dir.path().join("a/deep/2.jpeg"));
        touch(&dir.path().join("notes.txt"));
        touch(&dir.path().join(".hidden/3.png"));
        touch(&dir.path().join(".4.png"));
        let found = scan_folder(dir.path(), &[]);
        let names: Vec<_> = found
            .files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["1.PNG", "2.jpeg"]);
        assert!(!found.labelled);
    }

    #[test]
    fn class_folders_give_labels() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("cat/1.png"));
        touch(&dir.path().join("dog/x/2.png"));
        let classes = vec!["dog".to_string(), "cat".to_string()];
        let found = scan_folder(dir.path(), &classes);
        assert!(found.labelled);
        assert_eq!(
            found.files.iter().map(|f| f.label).collect::<Vec<_>>(),
            [Some(1), Some(0)]
        );
    }

    #[test]
    fn fifos_and_devices_named_as_images_are_listed_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a/1.png"));
        let fifo = dir.path().join("a/fifo.png");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.png")).unwrap();
        std::os::unix::fs::symlink("/dev/null", dir.path().join("null.txt")).unwrap();
        let found = scan_folder(dir.path(), &[]);
        assert_eq!(found.files.len(), 1);
        let listed: Vec<(&str, &str)> = found
            .unreadable
            .iter()
            .map(|(p, r)| (p.file_name().unwrap().to_str().unwrap(), r.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("fifo.png", "not a regular file: a FIFO (named pipe)"),
                ("zero.png", "not a regular file: a symbolic link to a character device"),
            ]
        );
    }

    #[test]
    fn survives_a_symlink_loop() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a/1.png"));
        std::os::unix::fs::symlink(dir.path(), dir.path().join("a/loop")).unwrap();
        let found = scan_folder(dir.path(), &[]);
        assert_eq!(found.files.len(), 1);
        assert!(
            found.unreadable.iter().any(|(_, r)| r.contains("loop")),
            "{:?}",
            found.unreadable
        );
    }
}
