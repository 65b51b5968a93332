#!/usr/bin/env python3
"""Issue 21's benchmark of the Python package: fit plus every method that needs no input gradient, on
in-memory arrays, against pytorch-ood on the same arrays, and oodscope's KNN against faiss on the same
bank; one process, the same torch thread count for every side.

The arrays are synthetic but shaped like a classifier's (seeded, so every run sees the same numbers):
C class centres in D dimensions; training features are ReLU'd draws around the centre of their label,
ID test features the same, OOD test features around other centres (each a blend of an ID centre and a
fresh one); the head is random but classifies (W = the centred class centres, scaled, plus noise;
b random) and the logits are W·z + b for every set. The training arrays carry their labels.

  (a) oodscope: ``Outputs`` (its validation and copy), ``Fit.from_outputs`` with the head, then
      ``score`` on the test arrays with every method of ``oodscope.methods()`` whose input step is
      off by default (``needs.gradient`` false, or only an ``epsilon`` parameter whose default is 0:
      energy and mahalanobis; odin, confidence and ensemble are left out), default parameters,
      knn with k = 50.
  (b) pytorch-ood: for each of those methods with a counterpart among its detectors, the detector
      constructed, fitted where it needs a fit (``fit_features`` / ``fit_logits`` /
      ``fit_feature_maps``) on the training arrays and asked for the test arrays' scores
      (``predict_features`` / ``predict_logits`` / ``predict_feature_maps``) on the same float32
      tensors, with oodscope's default parameters (percentiles as fractions). The whole test array
      in one call, except DICE (its B×C×D product is batched, ``--dice-batch`` rows) and GradNorm
      (1024 rows a call: within a call it keeps every micro-batch's per-sample gradients).
  (c) KNN alone: oodscope's knn score against faiss-cpu's exact IndexFlatL2 and IndexFlatIP on the same
      L2-normalised bank and queries, k = 50 (faiss: index build + search).

Scores are compared through their AUROC (ID test against OOD test; pytorch-ood's outlier scores are
negated): equal to ``--tolerance`` where the two define the same score up to a monotone map. Prints
one markdown table and, last, one JSON line.

    .venv/bin/python scripts/bench_python.py [--train 50000] [--test 20000] [--classes 1000]
        [--dim 512] [--threads N] [--seed 0] [--only msp,knn,…] [--json-out FILE]
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import oodscope

KNN_K = 50  # the k, for oodscope, pytorch-ood and faiss
GRADNORM_BATCH = 1024  # rows per pytorch-ood GradNorm call


def make_arrays(args):
    """Seeded train/ID/OOD features, labels and a head that classifies (float32 numpy)."""
    rng = np.random.default_rng(args.seed)
    c, d = args.classes, args.dim
    centres = rng.standard_normal((c, d), dtype=np.float32)

    def draw(centre_of, rows):
        z = centre_of + args.spread * rng.standard_normal((rows, d), dtype=np.float32)
        return np.maximum(z, 0, out=z)

    # every class occurs (pytorch-ood's Mahalanobis needs labels 0..C-1, all of them)
    y_train = rng.permutation(np.arange(args.train) % c)
    z_train = draw(centres[y_train], args.train)
    half = args.test // 2
    z_id = draw(centres[rng.integers(0, c, half)], half)
    fresh = rng.standard_normal((c, d), dtype=np.float32)
    others = (args.overlap * centres[rng.permutation(c)] + np.sqrt(1 - args.overlap**2) * fresh).astype(np.float32)
    z_ood = draw(others[rng.integers(0, c, args.test - half)], args.test - half)

    centred = centres - centres.mean(axis=0)
    w = (args.head_scale / np.sqrt(d)) * centred + 0.02 * rng.standard_normal((c, d), dtype=np.float32)
    b = 0.1 * rng.standard_normal(c, dtype=np.float32)
    w, b = w.astype(np.float32), b.astype(np.float32)

    def logits(z):
        return (z @ w.T + b).astype(np.float32)

    assert all(x.dtype == np.float32 for x in (z_train, z_id, z_ood, w, b))
    return {"z_train": z_train, "y_train": y_train.astype(np.int64), "l_train": logits(z_train),
            "z_id": z_id, "l_id": logits(z_id), "z_ood": z_ood, "l_ood": logits(z_ood), "w": w, "b": b}


def oodscope_methods(classes, dim):
    """oodscope's methods that run on arrays with their defaults: no input step (gradient false, or an
    epsilon parameter whose default is 0), no confidence branch, no ensemble."""
    chosen = []
    for m in oodscope.methods(classes, dim):
        needs = m["needs"]
        if needs["confidence"] or needs["ensemble"]:
            continue
        if needs["gradient"]:
            epsilon = [p for p in m["params"] if p["name"] == "epsilon"]
            if not epsilon or float(epsilon[0]["default"]) != 0.0:
                continue
        chosen.append(m["name"])
    return chosen


def pytorch_ood_detectors(w, b, dim):
    """oodscope's method → (pytorch-ood class name, make, fit(detector, tensors), predict(detector, z, l),
    same definition). ``tensors``: the training tensors (z, y, logits)."""
    from pytorch_ood.detector import (ASH, DICE, GEN, KNN, LTS, NCI, RMD, SCALE, SHE, VRA, EnergyBased, Entropy,
                                      GradNorm, KLMatching, Mahalanobis, MaxLogit, MaxSoftmax, ReAct,
                                      TemperatureScaling, ViM, fDBD)

    wt, bt = torch.from_numpy(w), torch.from_numpy(b)

    def linear():
        head = torch.nn.Linear(wt.shape[1], wt.shape[0])
        with torch.no_grad():
            head.weight.copy_(wt)
            head.bias.copy_(bt)
        return head

    def head_of(x):  # feature maps B×D×1×1 → logits
        return F.linear(x.flatten(1), wt, bt)

    vim_dim = 1000 if dim >= 2048 else max(dim // 2, 1)  # oodscope's default

    def on_logits(make):
        return (make, None, lambda det, z, l: det.predict_logits(l))

    def on_features(make, fit=True):
        return (make, (lambda det, t: det.fit_features(t["z"], t["y"])) if fit else None,
                lambda det, z, l: det.predict_features(z))

    def on_maps(make, fit=False):
        return (make, (lambda det, t: det.fit_feature_maps(t["z"][:, :, None, None], t["y"])) if fit else None,
                lambda det, z, l: det.predict_feature_maps(z[:, :, None, None]))

    def batched(predict, rows):
        def run(det, z, l):
            return torch.cat([predict(det, z[i:i + rows], l[i:i + rows]) for i in range(0, len(z), rows)])
        return run

    def gradnorm_predict(det, z, l):
        return det.predict(z)

    table = {
        "msp": ("MaxSoftmax", *on_logits(lambda: MaxSoftmax(None))),
        "energy": ("EnergyBased", *on_logits(lambda: EnergyBased(None))),
        "maxlogit": ("MaxLogit", *on_logits(lambda: MaxLogit(None))),
        "entropy": ("Entropy", *on_logits(lambda: Entropy(None))),
        "gen": ("GEN", *on_logits(lambda: GEN(None, gamma=0.1, M=100))),
        "klm": ("KLMatching", lambda: KLMatching(None), lambda det, t: det.fit_logits(t["l"]),
                lambda det, z, l: det.predict_logits(l)),
        # L-BFGS on the labelled training logits' NLL (it needs autograd: fitted with gradients on)
        "tempscale": ("TemperatureScaling", lambda: TemperatureScaling(None),
                      lambda det, t: det.fit_logits(t["l"], t["y"]), lambda det, z, l: det.predict_logits(l)),
        "mahalanobis": ("Mahalanobis", *on_features(lambda: Mahalanobis(None))),
        "rmds": ("RMD", *on_features(lambda: RMD(None))),
        "knn": ("KNN", *on_features(lambda: KNN(None, k=KNN_K))),
        "vim": ("ViM", *on_features(lambda: ViM(None, d=vim_dim, w=wt, b=bt))),
        "fdbd": ("fDBD", *on_features(lambda: fDBD(None, linear()))),
        "nci": ("NCI", *on_features(lambda: NCI(None, linear(), alpha=0.0))),
        "she": ("SHE", *on_features(lambda: SHE(None, linear()))),
        "react": ("ReAct", *on_maps(lambda: ReAct(None, head_of, percentile=0.9), fit=True)),
        "vra": ("VRA", *on_maps(lambda: VRA(None, head_of, lower_percentile=0.01, upper_percentile=0.99), fit=True)),
        "ash-p": ("ASH", *on_maps(lambda: ASH(None, head_of, variant="ash-p", percentile=0.9))),
        "ash-b": ("ASH", *on_maps(lambda: ASH(None, head_of, variant="ash-b", percentile=0.9))),
        "ash-s": ("ASH", *on_maps(lambda: ASH(None, head_of, variant="ash-s", percentile=0.9))),
        "scale": ("SCALE", *on_maps(lambda: SCALE(None, head_of, percentile=0.85))),
        "lts": ("LTS", *on_features(lambda: LTS(None, linear(), p=0.05), fit=False)),
        "dice": ("DICE", *on_features(lambda: DICE(None, w=wt, b=bt, p=0.9))),
        # the gradient of the uniform cross-entropy with respect to W alone, as oodscope's closed form
        "gradnorm": ("GradNorm", lambda: GradNorm(linear(), param_filter=lambda n: n == "weight"), None,
                     gradnorm_predict),
    }
    return table, batched


def auroc(id_scores, ood_scores):
    return float(oodscope.metrics(np.asarray(id_scores, dtype=np.float64), np.asarray(ood_scores, dtype=np.float64))["auroc"])


def rank_correlation(a, b):
    """Spearman's ρ of two score vectors (ties broken by position): 1 where one is a monotone map of
    the other."""
    ra = np.empty(len(a)); ra[np.argsort(a, kind="stable")] = np.arange(len(a))
    rb = np.empty(len(b)); rb[np.argsort(b, kind="stable")] = np.arange(len(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def timed(f):
    t0 = time.perf_counter()
    value = f()
    return value, time.perf_counter() - t0


def run_oodscope(arrays, names, half, labelled):
    """Seconds of Outputs, the fit and each method's scores; the scores."""
    labels = arrays["y_train"] if labelled else None
    outputs_train, s_outputs = timed(lambda: oodscope.Outputs(arrays["l_train"], arrays["z_train"], labels))
    test_logits = np.concatenate([arrays["l_id"], arrays["l_ood"]])
    test_features = np.concatenate([arrays["z_id"], arrays["z_ood"]])
    outputs_test, s_test = timed(lambda: oodscope.Outputs(test_logits, test_features))
    fit, s_fit = timed(lambda: oodscope.Fit.from_outputs(outputs_train, head=(arrays["w"], arrays["b"])))
    print(f"oodscope  Outputs {s_outputs + s_test:7.2f} s   fit {s_fit:7.2f} s  ({fit!r})", flush=True)
    seconds, scores = {}, {}
    for name in names:
        params = {"k": KNN_K} if name == "knn" else {}
        s, t = timed(lambda: oodscope.score(name, outputs_test, fit, **params))
        seconds[name], scores[name] = t, np.asarray(s, dtype=np.float64)
        print(f"oodscope  {name:12s} {t:7.2f} s   AUROC {auroc(s[:half], s[half:]):.4f}", flush=True)
    return {"outputs_s": s_outputs + s_test, "fit_s": s_fit, "score_s": seconds}, scores


def run_pytorch_ood(arrays, names, half, dice_batch):
    table, batched = pytorch_ood_detectors(arrays["w"], arrays["b"], arrays["z_train"].shape[1])
    train = {"z": torch.from_numpy(arrays["z_train"]), "y": torch.from_numpy(arrays["y_train"]),
             "l": torch.from_numpy(arrays["l_train"])}
    z = torch.from_numpy(np.concatenate([arrays["z_id"], arrays["z_ood"]]))
    l = torch.from_numpy(np.concatenate([arrays["l_id"], arrays["l_ood"]]))
    fits, predicts, scores, classes = {}, {}, {}, {}
    for name in names:
        if name not in table:
            continue
        cls, make, fit, predict = table[name]
        if name == "dice":
            predict = batched(predict, dice_batch)
        elif name == "gradnorm":
            # in one call pytorch-ood keeps every micro-batch's per-sample gradients (B×C×D) alive
            # until the end (the head's parameters require grad): 20 000 rows ran out of 23 GB
            predict = batched(predict, GRADNORM_BATCH)
        t0 = time.perf_counter()
        with torch.set_grad_enabled(name == "tempscale"):
            det = make()
            if fit is not None:
                fit(det, train)
        t1 = time.perf_counter()
        if name == "gradnorm":
            out = predict(det, z, l)  # it turns gradients on for itself
        else:
            with torch.no_grad():
                out = predict(det, z, l)
        t2 = time.perf_counter()
        s = -out.double().cpu().numpy()  # pytorch-ood: outlier scores, higher = OOD
        fits[name], predicts[name], scores[name], classes[name] = t1 - t0, t2 - t1, s, cls
        print(f"pytorch-ood {name:10s} {cls:12s} fit {t1 - t0:7.2f} s  predict {t2 - t1:7.2f} s   "
              f"AUROC {auroc(s[:half], s[half:]):.4f}", flush=True)
        del det
    return {"fit_s": fits, "predict_s": predicts, "class": classes}, scores


def run_faiss(arrays, threads):
    """faiss's exact flat indexes on the normalised bank: seconds (build + search) and k-th distances."""
    import faiss

    faiss.omp_set_num_threads(threads)

    def normalised(x):
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    out = {"version": faiss.__version__}
    t0 = time.perf_counter()
    bank = normalised(arrays["z_train"])
    queries = normalised(np.concatenate([arrays["z_id"], arrays["z_ood"]]))
    out["normalise_s"] = time.perf_counter() - t0
    for kind in ("IndexFlatL2", "IndexFlatIP"):
        t0 = time.perf_counter()
        index = getattr(faiss, kind)(bank.shape[1])
        index.add(bank)
        d, _ = index.search(queries, KNN_K)
        seconds = time.perf_counter() - t0
        if kind == "IndexFlatL2":  # squared distances, ascending
            kth = np.sqrt(np.maximum(d[:, -1].astype(np.float64), 0))
        else:  # similarities, descending
            kth = np.sqrt(np.maximum(2 - 2 * d[:, -1].astype(np.float64), 0))
        out[kind] = {"seconds": seconds + out["normalise_s"], "kth": kth}
        print(f"faiss     {kind:12s} {seconds + out['normalise_s']:7.2f} s (normalise + add + search, k = {KNN_K})",
              flush=True)
        del index
    return out


def median_of(runs):
    """The runs' figures (nested dicts of seconds), each the median over the runs; other values from
    the first run."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_of([r[k] for r in runs]) for k in first}
    if isinstance(first, float):
        return float(np.median(runs))
    return first


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=50000, help="training rows (the fit)")
    ap.add_argument("--test", type=int, default=20000, help="test rows, half ID and half OOD")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=512, help="feature width D")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (and faiss's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spread", type=float, default=1.0, help="feature noise around a class centre")
    ap.add_argument("--overlap", type=float, default=0.6, help="how much an OOD centre leans on an ID one")
    ap.add_argument("--head-scale", type=float, default=3.0, help="size of the head's class directions")
    ap.add_argument("--dice-batch", type=int, default=256, help="rows per pytorch-ood DICE call (its B×C×D product)")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="largest AUROC difference for an agreeing pair")
    ap.add_argument("--fit-labels", choices=["true", "predicted"], default="true",
                    help="fit on the training labels (default), or on the head's predictions on both sides: "
                         "oodscope's fit then skips temperature scaling's NLL grid (tempscale is left out)")
    ap.add_argument("--only", default=None, help="comma-separated oodscope methods (default: all of them)")
    ap.add_argument("--scale-note", default="", help="a line printed with the sizes (e.g. why they are scaled)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each side, in turn; each figure is their median")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    import pytorch_ood

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"oodscope {oodscope.__version__}, pytorch-ood {pytorch_ood.__version__}, torch {torch.__version__}, "
          f"numpy {np.__version__}, Python {platform.python_version()}; {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}; load average {load}", flush=True)
    print(f"fit labels: {args.fit_labels}", flush=True)
    print(f"sizes: train {args.train} x {args.dim} features, {args.classes} classes, test {args.test} "
          f"({args.test // 2} ID + {args.test - args.test // 2} OOD), seed {args.seed}"
          + (f"; {args.scale_note}" if args.scale_note else ""), flush=True)

    arrays, s_make = timed(lambda: make_arrays(args))
    half = args.test // 2
    accuracy = float((arrays["l_train"].argmax(1) == arrays["y_train"]).mean())
    print(f"arrays made in {s_make:.1f} s; the head's training accuracy {accuracy:.3f}", flush=True)

    names = oodscope_methods(args.classes, args.dim)
    labelled = args.fit_labels == "true"
    if not labelled:
        # both sides fit on the predicted classes; tempscale needs true labels
        arrays["y_train"] = arrays["l_train"].argmax(1).astype(np.int64)
        names = [n for n in names if n != "tempscale"]
        unseen = args.classes - len(np.unique(arrays["y_train"]))
        print(f"fit on the head's predictions (no labels): tempscale left out; {unseen} classes never predicted",
              flush=True)
    # gmm's per-class covariances are an opt-in fit statistic (C·D² values: 2.1 GB here), which the
    # shared fit below does not keep; its cost is in docs/benchmarks.md's gmm notes.
    names = [n for n in names if n != "gmm"]
    print("gmm left out: its per-class covariances are an opt-in part of the fit", flush=True)
    if args.only:
        wanted = args.only.split(",")
        names = [n for n in names if n in wanted]
    # a small untimed warm-up of both sides (library loading, first allocations)
    warm = {k: v[:256] for k, v in arrays.items() if k not in ("w", "b", "y_train")}
    warm_out = oodscope.Outputs(warm["l_id"], warm["z_id"])
    oodscope.score("msp", warm_out)
    from pytorch_ood.detector import MaxSoftmax
    MaxSoftmax(None).predict_logits(torch.from_numpy(warm["l_id"]))

    # Each side `--repeats` times, in turn (oodscope, pytorch-ood, oodscope, …): every figure is the
    # median of its runs, so one slow spell of the shared machine moves neither side much.
    our_runs, their_runs = [], []
    for r in range(args.repeats):
        if args.repeats > 1:
            print(f"repeat {r + 1} of {args.repeats}", flush=True)
        ours, our_scores = run_oodscope(arrays, names, half, labelled)
        theirs, their_scores = run_pytorch_ood(arrays, names, half, args.dice_batch)
        our_runs.append(ours)
        their_runs.append(theirs)
    ours, theirs = median_of(our_runs), median_of(their_runs)
    knn = run_faiss(arrays, args.threads) if "knn" in names else None

    rows, compared = [], []
    for name in names:
        a_ours = auroc(our_scores[name][:half], our_scores[name][half:])
        row = {"method": name, "oodscope_s": ours["score_s"][name], "auroc_oodscope": a_ours}
        if name in their_scores:
            s = their_scores[name]
            a_theirs = auroc(s[:half], s[half:])
            total = theirs["fit_s"][name] + theirs["predict_s"][name]
            row.update({"pytorch_ood": theirs["class"][name], "pytorch_ood_fit_s": theirs["fit_s"][name],
                        "pytorch_ood_predict_s": theirs["predict_s"][name], "pytorch_ood_s": total,
                        "ratio": total / ours["score_s"][name], "auroc_pytorch_ood": a_theirs,
                        "rank_correlation": rank_correlation(our_scores[name], s),
                        "agree": abs(a_ours - a_theirs) <= args.tolerance})
            compared.append(name)
        rows.append(row)

    ours_fit = ours["outputs_s"] + ours["fit_s"]
    ours_total = ours_fit + sum(ours["score_s"][n] for n in compared)
    theirs_total = sum(theirs["fit_s"][n] + theirs["predict_s"][n] for n in compared)
    theirs_fit = sum(theirs["fit_s"][n] for n in compared)

    print()
    print(f"| method | pytorch-ood | oodscope s | pytorch-ood s (fit + predict) | ratio | AUROC oodscope | "
          f"AUROC pytorch-ood | agree (±{args.tolerance:g}) | Spearman ρ |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| Outputs + fit (once) | fits inside each detector | {fmt(ours_fit)} | {fmt(theirs_fit)} (Σ fits) | "
          f"{fmt(theirs_fit / ours_fit, 1)}× | | | | |")
    for r in rows:
        if "pytorch_ood" in r:
            print(f"| {r['method']} | {r['pytorch_ood']} | {fmt(r['oodscope_s'])} | {fmt(r['pytorch_ood_s'])} "
                  f"({fmt(r['pytorch_ood_fit_s'])} + {fmt(r['pytorch_ood_predict_s'])}) | {fmt(r['ratio'], 1)}× | "
                  f"{r['auroc_oodscope']:.4f} | {r['auroc_pytorch_ood']:.4f} | {'yes' if r['agree'] else 'NO'} | "
                  f"{r['rank_correlation']:.6f} |")
        else:
            print(f"| {r['method']} | no counterpart | {fmt(r['oodscope_s'])} | – | – | {r['auroc_oodscope']:.4f} | – | – | – |")
    print(f"| **total, {len(compared)} compared methods** | | **{fmt(ours_total)}** | **{fmt(theirs_total)}** | "
          f"**{fmt(theirs_total / ours_total, 1)}×** | | | | |")
    if knn is not None:
        ours_knn = -our_scores["knn"]
        print()
        print("| KNN, k = 50, same normalised bank | seconds | ratio to oodscope | largest |Δ k-th distance| vs oodscope | AUROC |")
        print("|---|---|---|---|---|")
        print(f"| oodscope `score('knn')` (bank built in the fit) | {fmt(ours['score_s']['knn'])} | 1.0× | 0 | "
              f"{auroc(-ours_knn[:half], -ours_knn[half:]):.4f} |")
        for kind in ("IndexFlatL2", "IndexFlatIP"):
            kth = knn[kind]["kth"]
            print(f"| faiss {knn['version']} {kind} (normalise + add + search) | {fmt(knn[kind]['seconds'])} | "
                  f"{fmt(knn[kind]['seconds'] / ours['score_s']['knn'], 2)}× | {np.abs(kth - ours_knn).max():.2e} | "
                  f"{auroc(-kth[:half], -kth[half:]):.4f} |")
        if "knn" in theirs["predict_s"]:
            skl = -their_scores["knn"]
            print(f"| pytorch-ood KNN (scikit-learn, fit + predict) | {fmt(theirs['fit_s']['knn'] + theirs['predict_s']['knn'])} | "
                  f"{fmt((theirs['fit_s']['knn'] + theirs['predict_s']['knn']) / ours['score_s']['knn'], 2)}× | "
                  f"{np.abs(skl - ours_knn).max():.2e} | {auroc(-skl[:half], -skl[half:]):.4f} |")
    missing = [n for n in names if n not in compared]
    print()
    print(f"compared: {', '.join(compared)}; no pytorch-ood counterpart: {', '.join(missing) or 'none'}")
    print(f"oodscope: Outputs {ours['outputs_s']:.2f} s + fit {ours['fit_s']:.2f} s + scores "
          f"{sum(ours['score_s'][n] for n in compared):.2f} s = {ours_total:.2f} s (compared methods); "
          f"pytorch-ood {theirs_total:.2f} s; ratio {theirs_total / ours_total:.1f}x")
    disagree = [r["method"] for r in rows if r.get("agree") is False]
    print(f"AUROC disagreements beyond {args.tolerance:g}: {', '.join(disagree) or 'none'}")

    summary = {
        "sizes": {"train": args.train, "test": args.test, "classes": args.classes, "dim": args.dim},
        "fit_labels": args.fit_labels, "threads": args.threads, "cores": os.cpu_count(), "load_average": load,
        "repeats": args.repeats,
        "oodscope": {"outputs_s": ours["outputs_s"], "fit_s": ours["fit_s"], "score_s": ours["score_s"]},
        "pytorch_ood": {"fit_s": theirs["fit_s"], "predict_s": theirs["predict_s"]},
        "rows": rows, "total": {"oodscope_s": ours_total, "pytorch_ood_s": theirs_total,
                                "ratio": theirs_total / ours_total},
        "faiss": None if knn is None else {k: (v["seconds"] if isinstance(v, dict) else v) for k, v in knn.items()},
        "versions": {"oodscope": oodscope.__version__, "pytorch_ood": pytorch_ood.__version__,
                     "torch": torch.__version__, "python": sys.version.split()[0]},
    }
    line = json.dumps(summary)
    print(line)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
