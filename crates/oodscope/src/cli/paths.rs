//! A command's output paths checked, before any work starts, against its inputs (the model, its
//! card, head and members, a fit, parts, images, image folders) and against its other outputs, as
//! the file system sees them: existing paths canonicalised (symlinks followed), an output that does
//! not exist yet by its nearest existing folder plus the rest of its name. An output is refused
//! when it is an input, lies inside an input folder, or is another output of the same command.

use std::path::{Component, Path, PathBuf};

use oodscope_engine::model::{CardKind, HeadSource, ModelCard, card_path_for};

/// A path a command reads or writes, as given and as the file system resolves it.
struct Named {
    flag: String,
    given: PathBuf,
    real: PathBuf,
    folder: bool,
}

/// The paths of one command: add its inputs and outputs, then [`Paths::check`].
#[derive(Default)]
pub(crate) struct Paths {
    inputs: Vec<Named>,
    outputs: Vec<Named>,
}

impl Paths {
    pub(crate) fn new() -> Paths {
        Paths::default()
    }

    /// An input file or folder, when given; one that does not exist cannot be overwritten and is
    /// left out.
    pub(crate) fn input<'p>(&mut self, flag: &str, path: impl Into<Option<&'p Path>>) -> &mut Paths {
        if let Some(path) = path.into()
            && let Ok(real) = path.canonicalize()
        {
            self.inputs.push(Named {
                flag: flag.to_string(),
                given: path.to_path_buf(),
                folder: real.is_dir(),
                real,
            });
        }
        self
    }

    /// Image sets as given (`uniform:N` and `gaussian:N` name no file and are left out).
    pub(crate) fn sets(&mut self, flag: &str, specs: &[String]) -> &mut Paths {
        for spec in specs {
            self.input(flag, Path::new(spec));
        }
        self
    }

    /// The model as `--model` names it: the file, its card, and (when the card reads) the
    /// TorchScript file a card names, its head file and its ensemble members. A card that does not
    /// read is left to the model's loading to report.
    pub(crate) fn model(&mut self, flag: &str, path: &Path) -> &mut Paths {
        self.input(flag, path);
        let card_path = card_path_for(path);
        self.input(&format!("{flag}'s card"), card_path.as_path());
        let Ok(card) = ModelCard::load(&card_path) else {
            return self;
        };
        match &card.kind {
            CardKind::Single { head, .. } => {
                if path == card_path {
                    self.input(flag, card_path.with_extension("pt").as_path());
                    self.input(flag, card_path.with_extension("pt2").as_path());
                }
                if let Some(HeadSource::File(head)) = head {
                    self.input(&format!("{flag}'s head"), head.as_path());
                }
            }
            CardKind::Ensemble { members } => {
                for member in members {
                    self.input(&format!("{flag}'s member"), member.model.as_path());
                }
            }
        }
        self
    }

    /// An output, when given.
    pub(crate) fn output<'p>(&mut self, flag: &str, path: impl Into<Option<&'p Path>>) -> &mut Paths {
        if let Some(path) = path.into() {
            self.outputs.push(Named {
                flag: flag.to_string(),
                given: path.to_path_buf(),
                real: resolve(path),
                folder: false,
            });
        }
        self
    }

    /// The first output that would overwrite an input, write into an input folder, or be another
    /// output too, in one line naming both flags and the path.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (i, out) in self.outputs.iter().enumerate() {
            let (flag, path) = (&out.flag, out.given.display());
            for input in &self.inputs {
                let shown = input.given.display();
                if out.real == input.real {
                    return Err(format!(
                        "{flag} {path} would overwrite the input {} ({shown}): give {flag} another path",
                        input.flag
                    ));
                }
                if input.folder && out.real.starts_with(&input.real) {
                    return Err(format!(
                        "{flag} {path} would write into the input folder {} ({shown}): give {flag} a path outside it",
                        input.flag
                    ));
                }
            }
            if let Some(other) = self.outputs[..i].iter().find(|o| o.real == out.real) {
                return Err(format!(
                    "{} {} and {flag} {path} are the same file: give each output its own path",
                    other.flag,
                    other.given.display()
                ));
            }
        }
        Ok(())
    }
}

/// `path` as the file system sees it: canonical when it exists; else its nearest existing ancestor
/// canonicalised, followed by the rest of the path (`..` in that rest taken lexically, as nothing
/// there exists to be a symlink).
fn resolve(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut base = absolute.as_path();
    let mut rest = Vec::new();
    let real_base = loop {
        if let Ok(real) = base.canonicalize() {
            break real;
        }
        // The last component, `..` included (which `file_name` does not give): it is resolved
        // below, against the real folder above it.
        let mut components = base.components();
        match components.next_back() {
            Some(last @ (Component::Normal(_) | Component::ParentDir | Component::CurDir)) => {
                rest.push(last.as_os_str().to_os_string());
                base = components.as_path();
            }
            _ => break base.to_path_buf(),
        }
    };
    let mut out = real_base;
    for part in rest.iter().rev() {
        for component in Path::new(part).components() {
            match component {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(name) => out.push(name),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) -> &Path {
        std::fs::write(path, b"x").unwrap();
        path
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_however_it_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let model = touch(&dir.path().join("m.pt")).to_path_buf();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let spelled = dir.path().join("sub/../m.pt");
        let err = Paths::new()
            .input("--model", model.as_path())
            .output("--out", spelled.as_path())
            .check()
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "--out {} would overwrite the input --model ({}): give --out another path",
                spelled.display(),
                model.display()
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_an_input_is_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let fit = touch(&dir.path().join("a.safetensors")).to_path_buf();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&fit, &link).unwrap();
        let err = Paths::new()
            .input("--fit", fit.as_path())
            .output("--scores", link.as_path())
            .check()
            .unwrap_err();
        assert!(err.starts_with("--scores "), "{err}");
        assert!(err.contains("would overwrite the input --fit"), "{err}");
        // And a folder reached through a symlinked parent.
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("alias")).unwrap();
        let err = Paths::new()
            .output("--results", real.join("r.parquet").as_path())
            .output("--report", dir.path().join("alias/r.parquet").as_path())
            .check()
            .unwrap_err();
        assert!(err.contains("are the same file"), "{err}");
    }

    #[test]
    fn the_card_head_and_files_a_card_names_are_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("m.toml"),
            "name = \"m\"\ninput = [1, 4, 4]\nmean = [0.5]\nstd = [0.5]\nclasses = [\"a\", \"b\"]\n\
             outputs = \"logits+features\"\nfeatures = 3\nhead = \"w.safetensors\"\n",
        )
        .unwrap();
        touch(&d.join("m.pt"));
        touch(&d.join("w.safetensors"));
        let refused = |out: &str, model: &str| {
            Paths::new()
                .model("--model", &d.join(model))
                .output("--out", d.join(out).as_path())
                .check()
                .unwrap_err()
        };
        assert!(refused("m.toml", "m.pt").contains("the input --model's card ("), "card");
        assert!(
            refused("w.safetensors", "m.pt").contains("the input --model's head ("),
            "head"
        );
        assert!(
            refused("m.pt", "m.toml").contains("the input --model ("),
            "the card's .pt"
        );
        assert!(
            Paths::new()
                .model("--model", &d.join("m.pt"))
                .output("--out", d.join("fit.safetensors").as_path())
                .check()
                .is_ok()
        );
    }

    #[test]
    fn an_output_inside_an_image_folder_is_refused_and_noise_sets_are_not_paths() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("id");
        std::fs::create_dir_all(images.join("cat")).unwrap();
        let spec = vec![images.display().to_string(), "uniform:10".to_string()];
        let out = images.join("cat/h.png");
        let err = Paths::new()
            .sets("--id", &spec)
            .output("--histogram", out.as_path())
            .check()
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "--histogram {} would write into the input folder --id ({}): give --histogram a path outside it",
                out.display(),
                images.display()
            )
        );
        assert!(
            Paths::new()
                .sets("--ood", &spec[1..])
                .output("--scores", Path::new("uniform:10"))
                .check()
                .is_ok()
        );
    }

    #[test]
    fn two_outputs_at_one_path_are_refused_even_before_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("new/deeper/out");
        let b = dir.path().join("new/x/../deeper/out");
        let err = Paths::new()
            .output("--results", a.as_path())
            .output("--scores", Path::new("elsewhere"))
            .output("--report", b.as_path())
            .check()
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "--results {} and --report {} are the same file: give each output its own path",
                a.display(),
                b.display()
            )
        );
    }

    #[test]
    fn a_relative_output_resolves_against_the_working_folder() {
        let here = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(
            resolve(Path::new("no-such-file-here.csv")),
            here.join("no-such-file-here.csv")
        );
    }
}
