"""Outputs from arrays: scores by the definitions (NumPy, float64), metrics equal scikit-learn's,
and every bad request an oodscope.OodscopeError with one clear line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

import oodscope
from oodscope import OodscopeError

RNG = np.random.default_rng(7)
C, D = 6, 16
W = RNG.normal(size=(C, D)).astype(np.float32)
B = RNG.normal(size=C).astype(np.float32)


def outputs(n: int, scale: float = 1.0, labels: bool = False) -> oodscope.Outputs:
    z = (RNG.normal(size=(n, D)) * scale).astype(np.float32)
    return oodscope.Outputs(z @ W.T + B, z, labels=RNG.integers(0, C, n) if labels else None)


TRAIN = outputs(400, labels=True)
TEST = outputs(64)


def test_logit_methods_follow_their_definitions():
    l64 = TEST.logits.astype(np.float64)
    p = np.exp(l64 - l64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    references = {
        "msp": p.max(1),
        "energy": np.log(np.exp(l64).sum(1)),
        "maxlogit": l64.max(1),
        "entropy": (p * np.log(p)).sum(1),
    }
    for method, expected in references.items():
        got = oodscope.score(method, TEST)
        assert np.allclose(got, expected, rtol=1e-5, atol=1e-6), method
    # A batch of one scores as in a batch of 64.
    one = oodscope.score("energy", TEST.subset(slice(3, 4)))
    assert one[0] == oodscope.score("energy", TEST)[3]


def test_knn_is_the_distance_to_the_kth_nearest_normalised_fit_feature():
    fit = oodscope.Fit.from_outputs(TRAIN)
    bank = TRAIN.features / np.linalg.norm(TRAIN.features, axis=1, keepdims=True)
    z = TEST.features / np.linalg.norm(TEST.features, axis=1, keepdims=True)
    distances = np.sort(np.linalg.norm(z[:, None, :].astype(np.float64) - bank[None], axis=2), axis=1)
    for k in (1, 5, 50):
        got = oodscope.score("knn", TEST, fit, k=k)
        assert np.allclose(got, -distances[:, k - 1], rtol=1e-5, atol=1e-6), k


def test_gmm_is_the_log_likelihood_of_the_class_gaussians_and_needs_them_in_the_fit():
    fit = oodscope.Fit.from_outputs(TRAIN, class_covariances=True)
    assert "class_covariances" in fit.tensors and fit.info["class_covariances"] is True
    z, y = TRAIN.features.astype(np.float64), TRAIN.labels
    q = TEST.features.astype(np.float64)
    for reg in (1e-6, 0.1):
        terms = []
        for c in range(C):
            own = z[y == c] - z[y == c].mean(axis=0)
            s = own.T @ own / len(own) + reg * np.eye(D)
            diff = q - z[y == c].mean(axis=0)
            maha = (diff * np.linalg.solve(s, diff.T).T).sum(axis=1)
            terms.append(np.log(len(own) / len(z)) - 0.5 * (maha + np.linalg.slogdet(s)[1] + D * np.log(2 * np.pi)))
        expected = np.logaddexp.reduce(np.stack(terms, axis=1), axis=1)
        got = oodscope.score("gmm", TEST, fit, reg=reg)
        assert np.allclose(got, expected, rtol=1e-5, atol=0), reg
    # A fit without them: one line saying how to make one; compare leaves gmm out and says why.
    plain = oodscope.Fit.from_outputs(TRAIN)
    assert "class_covariances" not in plain.tensors and "class_covariances" not in plain.info
    with pytest.raises(OodscopeError, match=r"class_covariances=True"):
        oodscope.score("gmm", TEST, plain)
    frame = oodscope.compare(TEST, {"far": outputs(64, scale=3.0)}, plain)
    assert "gmm" not in frame.index and "mahalanobis" in frame.index
    assert frame.attrs["skipped"]["gmm"] == "needs per-class covariances: Fit.from_outputs(..., class_covariances=True)"
    assert "gmm" in oodscope.compare(TEST, {"far": outputs(64, scale=3.0)}, fit).index


def test_metrics_equal_scikit_learns():
    id_scores = RNG.normal(1.0, 1.0, 3000).astype(np.float32)
    ood_scores = RNG.normal(0.0, 1.2, 2000).astype(np.float32)
    m = oodscope.metrics(id_scores, ood_scores)
    y = np.r_[np.ones(3000), np.zeros(2000)]
    s = np.r_[id_scores, ood_scores].astype(np.float64)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["aupr_in"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["aupr_out"] == pytest.approx(average_precision_score(1 - y, -s), abs=1e-12)
    # FPR at 95% TPR: OOD scores at or above the ⌈0.95·n⌉-th largest ID score.
    cut = np.sort(id_scores)[::-1][int(np.ceil(0.95 * 3000)) - 1]
    assert m["fpr_at_95_tpr"] == pytest.approx(np.mean(ood_scores >= cut), abs=1e-12)
    assert set(m) >= {"auroc", "fpr_at_95_tpr", "detection_error", "aupr_in", "aupr_out"}
    # torch tensors are taken as they are.
    assert oodscope.metrics(torch.from_numpy(id_scores), torch.from_numpy(ood_scores)) == m


def test_methods_list_names_needs_and_parameters():
    listing = {m["name"]: m for m in oodscope.methods(classes=C, features=D)}
    assert listing["knn"]["needs"]["fit"] and listing["knn"]["params"][0]["name"] == "k"
    assert listing["odin"]["needs"]["gradient"] and listing["odin"]["gradient_at_defaults"]
    assert listing["energy"]["needs"]["gradient"] and not listing["energy"]["gradient_at_defaults"]
    assert not listing["msp"]["params"]


def test_compare_lists_what_it_cannot_score_and_why():
    frame = oodscope.compare(TEST, {"far": outputs(64, scale=3.0)})
    assert "msp" in frame.index and "knn" not in frame.index
    assert frame.attrs["skipped"]["knn"] == "needs a fit (Fit.from_outputs)"
    assert "head" in frame.attrs["skipped"]["vim"]
    grouped = oodscope.compare(TEST, {"near": {"a": outputs(32, 1.5)}, "far": {"b": outputs(32, 3.0)}}, methods=["msp"])
    assert {"near/a", "far/b", "near", "far", "mean"} <= set(grouped.columns.get_level_values("set"))


FIT = oodscope.Fit.from_outputs(TRAIN, head=(W, B))

BAD_REQUESTS = [
    (lambda: oodscope.Outputs(np.zeros(5)), "shape [N, K]"),
    (lambda: oodscope.Outputs(np.zeros((4, 3)), np.zeros((5, 2))), "the features have 5 rows and the logits 4"),
    (lambda: oodscope.Outputs(np.zeros((4, 3)), labels=[0, 1]), "2 labels for 4 rows"),
    (lambda: oodscope.Outputs(np.zeros((4, 3)), labels=[0, 1, 2, 3]), "class indices from 0 to 2"),
    (lambda: oodscope.Outputs(np.array([[0.0, np.nan]])), "logits of row 0 are NaN or infinite"),
    (lambda: oodscope.Outputs(np.zeros((2, 3)), np.array([[1.0], [np.inf]])), "features of row 1 are NaN or infinite"),
    (lambda: oodscope.Outputs(np.zeros((0, 3))), "at least one row"),
    (lambda: oodscope.score("nope", TEST), "unknown method `nope`"),
    (lambda: oodscope.score("knn", TEST, FIT, kk=3), "no parameter `kk`"),
    (lambda: oodscope.score("knn", TEST, FIT, k=0), "k"),
    (lambda: oodscope.score("knn", TEST), "needs a fit"),
    (lambda: oodscope.score("vim", TEST, oodscope.Fit.from_outputs(TRAIN)), "needs the head"),
    (lambda: oodscope.score("knn", oodscope.Outputs(TEST.logits), FIT), "needs penultimate features"),
    (lambda: oodscope.score("odin", TEST), "capture with perturb"),
    (lambda: oodscope.score("knn", oodscope.Outputs(TEST.logits, TEST.features[:, :8]), FIT), "width 16"),
    (lambda: oodscope.score("msp", oodscope.Outputs(np.zeros((2, 4)), np.zeros((2, D))), FIT), "6 classes"),
    (lambda: oodscope.score("gradnorm", TEST, head=(W[:, :4], B)), "expected W [6, 16]"),
    (lambda: oodscope.score("gradnorm", TEST, head=(W * 2, B)), "does not reproduce the logits"),
    (lambda: oodscope.score("msp", TEST, fit="fit.safetensors"), "must be an oodscope.Fit"),
    (lambda: oodscope.Fit.from_outputs(TEST, head=(W, B[:3])), "expected W [6, 16] and b [6]"),
    (lambda: oodscope.Fit.load("/no/such/fit.safetensors"), "/no/such/fit.safetensors"),
    (lambda: oodscope.Detector.load("/no/such/detector.oodsd"), "/no/such/detector.oodsd"),
    (lambda: oodscope.metrics([1.0, 2.0], []), "the OOD set has no scores"),
    (lambda: oodscope.metrics([1.0, np.nan], [0.0]), "NaN"),
]


@pytest.mark.parametrize("request_, words", BAD_REQUESTS, ids=[w for _, w in BAD_REQUESTS])
def test_a_bad_request_is_an_exception_with_one_clear_line(request_, words):
    with pytest.raises(OodscopeError) as raised:
        request_()
    message = str(raised.value)
    assert words in message and "\n" not in message and "panicked" not in message


def test_a_foreign_file_is_not_a_fit(tmp_path):
    path = tmp_path / "picture.safetensors"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(OodscopeError, match="picture.safetensors"):
        oodscope.Fit.load(path)
    with pytest.raises(OodscopeError, match="picture.safetensors"):
        oodscope.Detector.load(path)


def test_another_torch_release_is_refused_at_import_in_one_message():
    import subprocess
    import sys

    code = "import torch; torch.__version__ = '2.12.1+cpu'; import oodscope"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: oodscope was built for PyTorch 2.13.x and this environment has torch 2.12.1+cpu")
