//! Where the bundled model and demo images are: `OODSCOPE_ASSETS`, else beside the installed
//! executable (`<exe>/../share/oodscope`, scripts/install.sh), else the checkout it was built from.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The variable that names the assets folder (it holds `models/` and `assets/demo/`).
pub const ENV: &str = "OODSCOPE_ASSETS";

/// The file whose presence marks an assets folder (with `assets/demo/` beside `models/`).
const MARKER: &str = "models/fmnist-resnet.pt";

/// No folder holds the demo assets; the message names every place looked in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("demo assets not found; looked in {}", looked_in(.0))]
pub struct NotFound(pub Vec<Place>);

/// A place assets were looked for, and why it was a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub dir: PathBuf,
    pub why: &'static str,
}

fn looked_in(places: &[Place]) -> String {
    places
        .iter()
        .map(|p| format!("{} ({})", p.dir.display(), p.why))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `dir` holds the bundled model and the demo sets.
pub fn holds_assets(dir: &Path) -> bool {
    dir.join(MARKER).is_file() && dir.join("assets/demo").is_dir()
}

/// The places to look, in order: the configured folder alone when `OODSCOPE_ASSETS` is set (a
/// wrong setting is an error, not a silent fallback), else beside the executable, then the checkout.
pub fn places(configured: Option<OsString>, exe: Option<&Path>, checkout: &Path) -> Vec<Place> {
    if let Some(dir) = configured.filter(|d| !d.is_empty()) {
        return vec![Place {
            dir: PathBuf::from(dir),
            why: "OODSCOPE_ASSETS",
        }];
    }
    let mut places = Vec::new();
    // The executable's path is resolved (/proc/self/exe): its folder's parent is the prefix.
    if let Some(prefix) = exe.and_then(Path::parent).and_then(Path::parent) {
        places.push(Place {
            dir: prefix.join("share/oodscope"),
            why: "beside the executable",
        });
    }
    places.push(Place {
        dir: checkout.to_path_buf(),
        why: "the checkout it was built from",
    });
    places
}

/// The first of `places` that holds the assets.
pub fn find_in(places: Vec<Place>) -> Result<PathBuf, NotFound> {
    match places.iter().find(|p| holds_assets(&p.dir)) {
        Some(place) => Ok(normalise(&place.dir)),
        None => Err(NotFound(places)),
    }
}

/// The folder as an absolute path without `..` where it exists (paths shown stay short).
fn normalise(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The checkout this crate was built in (the workspace's folder, two above the engine's).
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The assets folder for this process: `OODSCOPE_ASSETS`, the installed copy, or the checkout.
pub fn find() -> Result<PathBuf, NotFound> {
    let exe = std::env::current_exe().ok();
    find_in(places(std::env::var_os(ENV), exe.as_deref(), &checkout()))
}

/// The assets folder, or where it would be expected when there is none (the first place looked
/// in): callers then report the missing model by its path. Prefer [`find`] where an error can be
/// returned.
pub fn assets_root() -> PathBuf {
    find().unwrap_or_else(|NotFound(places)| {
        places
            .into_iter()
            .next()
            .map(|p| p.dir)
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_assets(dir: &Path) {
        std::fs::create_dir_all(dir.join("models")).unwrap();
        std::fs::create_dir_all(dir.join("assets/demo")).unwrap();
        std::fs::write(dir.join(MARKER), b"model").unwrap();
    }

    #[test]
    fn installed_copy_beside_the_executable_comes_before_the_checkout() {
        let tmp = tempfile::tempdir().unwrap();
        let prefix = tmp.path().join("prefix");
        let checkout = tmp.path().join("checkout");
        make_assets(&prefix.join("share/oodscope"));
        make_assets(&checkout);
        let exe = prefix.join("bin/oodscope");
        let found = find_in(places(None, Some(&exe), &checkout)).unwrap();
        assert_eq!(found, prefix.join("share/oodscope").canonicalize().unwrap());
        // Without the installed copy, the checkout.
        let elsewhere = tmp.path().join("elsewhere/bin/oodscope");
        assert_eq!(
            find_in(places(None, Some(&elsewhere), &checkout)).unwrap(),
            checkout.canonicalize().unwrap()
        );
    }

    #[test]
    fn the_configured_folder_wins_and_a_wrong_one_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let configured = tmp.path().join("mine");
        let checkout = tmp.path().join("checkout");
        make_assets(&configured);
        make_assets(&checkout);
        let found = find_in(places(Some(configured.clone().into()), None, &checkout)).unwrap();
        assert_eq!(found, configured.canonicalize().unwrap());
        let wrong = tmp.path().join("typo");
        let err = find_in(places(Some(wrong.clone().into()), None, &checkout)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("demo assets not found; looked in {} (OODSCOPE_ASSETS)", wrong.display())
        );
    }

    #[test]
    fn nowhere_names_every_place_looked_in() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("p/bin/oodscope");
        let checkout = tmp.path().join("gone");
        // A folder with models/ but no demo images does not count.
        std::fs::create_dir_all(checkout.join("models")).unwrap();
        std::fs::write(checkout.join(MARKER), b"model").unwrap();
        let err = find_in(places(None, Some(&exe), &checkout)).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("demo assets not found; looked in "), "{message}");
        assert!(
            message.contains(&format!(
                "{} (beside the executable)",
                tmp.path().join("p/share/oodscope").display()
            )),
            "{message}"
        );
        assert!(
            message.contains(&format!("{} (the checkout it was built from)", checkout.display())),
            "{message}"
        );
    }
}
