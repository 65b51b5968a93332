//! gmm's per-class covariances on the command line: `score --train` asks for them itself and the
//! cache then serves every method from that fit; a fit without them (as every fit made before gmm)
//! is one line saying how to refit, and `compare` runs the other methods and says why gmm did not
//! run; a model whose C·D² covariances exceed the limit (1000 classes of 2048 features) is refused
//! before any image is passed, by `fit`, `score` and (for gmm alone) `compare`, with its size and
//! what to use instead.

use crate::support;

use std::path::Path;

use support::oodscope_with_cache as oodscope;

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A TorchScript model of 1000 classes on 2048 features (untrained), with its card, in `dir`.
fn big_model(dir: &Path) -> String {
    let code = r#"
import sys, torch, torch.nn as nn
class Big(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3 * 12 * 12, 2048)
        self.fc = nn.Linear(2048, 1000)
    def forward(self, x):
        z = torch.relu(self.body(x.flatten(1)))
        return self.fc(z), z
torch.manual_seed(0)
m = Big().eval()
for p in m.parameters():
    p.requires_grad_(False)
torch.jit.trace(m, torch.rand(2, 3, 12, 12)).save(sys.argv[1])
print("saved")
"#;
    let model = dir.join("big.pt");
    assert_eq!(support::python_last_line(code, &[s(&model).to_string()]), "saved");
    let classes: Vec<String> = (0..1000).map(|c| format!("\"c{c}\"")).collect();
    std::fs::write(
        dir.join("big.toml"),
        format!(
            "name = \"big\"\noutputs = \"logits+features\"\nhead = \"fc\"\ninput = [3, 12, 12]\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\nclasses = [{}]\nresize = \"resize\"\n",
            classes.join(", ")
        ),
    )
    .unwrap();
    s(&model).to_string()
}

/// The one error line of a failed run.
fn one_error(code: i32, err: &str) -> String {
    assert_eq!(code, 1, "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    errors[0].to_string()
}

#[test]
fn too_many_class_covariances_are_refused_before_any_image_is_passed() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let model = big_model(work.path());
    let train = fx("features/fit");
    let size = [
        "C·D² = 1000·2048²",
        "(33.6 GB)",
        "over oodscope's limit of 4 GB",
        "mahalanobis",
    ];
    let out = work.path().join("fit.safetensors");
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            &model,
            "--train",
            &train,
            "--class-covariances",
            "--out",
            s(&out),
            "--quiet",
            "--device",
            "cpu",
        ],
    );
    let line = one_error(code, &err);
    assert!(size.iter().all(|p| line.contains(p)), "{line}");
    assert!(
        !out.exists() && !err.contains("fitting"),
        "refused before the pass: {err}"
    );

    // gmm with --train: refused the same way, nothing fitted or cached.
    let [id, ood] = [fx("features/images/id"), fx("features/images/ood")];
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "score", "--model", &model, "--method", "gmm", "--train", &train, "--id", &id, "--ood", &ood, "--quiet",
            "--device", "cpu",
        ],
    );
    let line = one_error(code, &err);
    assert!(size.iter().all(|p| line.contains(p)), "{line}");
    let fits = cache.path().join("fits");
    assert!(
        !fits.exists() || support::names_in(&fits).is_empty(),
        "nothing cached: {err}"
    );

    // compare: gmm alone is refused the same way; beside other methods it is left out, saying why.
    let compare = |methods: &str| {
        oodscope(
            cache.path(),
            &[
                "compare",
                "--model",
                &model,
                "--methods",
                methods,
                "--train",
                &train,
                "--id",
                &id,
                "--ood",
                &ood,
                "--quiet",
                "--device",
                "cpu",
            ],
        )
    };
    let (code, _, err) = compare("gmm");
    let line = one_error(code, &err);
    assert!(size.iter().all(|p| line.contains(p)), "{line}");
    let (code, _, err) = compare("gmm,mahalanobis");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("note: the fit keeps no per-class covariances, so gmm is not run: gmm needs C·D² = 1000·2048²"),
        "{err}"
    );
    assert!(
        err.contains("not run: method `gmm` needs each class's covariance"),
        "{err}"
    );
}

#[test]
fn a_fit_without_class_covariances_serves_the_rest_and_says_how_to_refit_for_gmm() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let model = fx("features/models/feat.pt");
    let train = fx("features/fit");
    let [id, ood] = [fx("features/images/id"), fx("features/images/ood")];
    let plain = work.path().join("plain.safetensors");
    let (code, stdout, err) = oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            &model,
            "--train",
            &train,
            "--out",
            s(&plain),
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!stdout.contains("per-class covariances"), "{stdout}");
    let score = |method: &str, fit: &[&str]| {
        let mut args = vec![
            "score", "--model", &model, "--method", method, "--id", &id, "--ood", &ood, "--quiet", "--device", "cpu",
        ];
        args.extend_from_slice(fit);
        oodscope(cache.path(), &args)
    };
    let (code, _, err) = score("gmm", &["--fit", s(&plain)]);
    let line = one_error(code, &err);
    assert!(
        line.contains(&format!("the fit {} has no per-class covariances", s(&plain)))
            && line.contains("refit with `oodscope fit --class-covariances`"),
        "{line}"
    );
    let (code, _, err) = score("knn", &["--fit", s(&plain)]);
    assert_eq!(code, 0, "{err}");

    // compare runs the others and says why gmm did not run.
    let (code, stdout, err) = oodscope(
        cache.path(),
        &[
            "compare",
            "--model",
            &model,
            "--methods",
            "gmm,knn",
            "--fit",
            s(&plain),
            "--id",
            &id,
            "--ood",
            &ood,
            "--quiet",
            "--device",
            "cpu",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("not run: method `gmm` needs each class's covariance, which this fit does not keep"),
        "{err}"
    );
    assert!(
        stdout.contains("KNN") && !stdout.contains("Gaussian mixture"),
        "{stdout}"
    );

    // With --train, gmm's fit keeps them (and says so); the file is the fit --class-covariances one.
    let (code, stdout, err) = score("gmm", &["--train", &train]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("fit: computed from 120 images"), "{err}");
    assert!(stdout.contains("Gaussian mixture"), "{stdout}");
    let with = work.path().join("with.safetensors");
    let (code, stdout, err) = oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            &model,
            "--train",
            &train,
            "--class-covariances",
            "--out",
            s(&with),
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("per-class covariances: 4 × 16 × 16 (0.0 MB)"),
        "{stdout}"
    );
    let (a, b) = (score("gmm", &["--fit", s(&with)]), score("gmm", &["--train", &train]));
    assert_eq!((a.0, &a.1), (b.0, &b.1), "{} / {}", a.2, b.2);
    assert!(b.2.contains("fit: using the cached statistics"), "{}", b.2);
}
