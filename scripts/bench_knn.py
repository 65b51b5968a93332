#!/usr/bin/env python3
"""The faiss side of the KNN benchmark (scripts/bench.py runs it; each step is its own process).

  gen    writes a seeded bank [N, D] and queries [Q, D] as raw little-endian float32 files:
         ReLU'd Gaussian mixtures, like penultimate features (the queries: half from the bank's
         mixture, half from another), written in chunks so that no size sits in memory.
  faiss  times faiss-cpu's exact flat index (IndexFlatIP on the L2-normalised vectors) on the bank
         that `oodscope-bench knn-bank` wrote (its `knn_bank` rows, already normalised: the very
         vectors oodscope searches), with the queries in batches; the k-th nearest distance is
         sqrt(2 - 2 s) of the k-th largest similarity s. Prints one JSON line; writes the distances.
  check  compares two distance files (oodscope's, faiss's) and both with a float64 brute-force
         reference on the first queries. Prints one JSON line.
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np

CHUNK_ROWS = 1 << 15
WARM_UP_QUERIES = 64  # as oodscope-bench knn: one untimed first call


def mixture(rng, centres, rows, spread):
    """`rows` ReLU'd draws around randomly chosen `centres` (float32)."""
    label = rng.integers(0, len(centres), rows)
    x = centres[label] + spread * rng.standard_normal((rows, centres.shape[1]), dtype=np.float32)
    return np.maximum(x, 0, out=x)


def gen(args):
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.classes, args.dim), dtype=np.float32)
    others = rng.standard_normal((args.classes, args.dim), dtype=np.float32)
    start = time.perf_counter()
    with open(args.bank_out, "wb") as f:
        for first in range(0, args.rows, CHUNK_ROWS):
            mixture(rng, centres, min(CHUNK_ROWS, args.rows - first), args.spread).tofile(f)
    half = args.queries // 2
    q = np.concatenate([mixture(rng, centres, half, args.spread), mixture(rng, others, args.queries - half, args.spread)])
    # Shuffled, so that every batch holds both kinds.
    q[rng.permutation(len(q))].astype("<f4").tofile(args.queries_out)
    print(json.dumps({"kind": "knn_gen", "rows": args.rows, "dim": args.dim, "queries": args.queries,
                      "seed": args.seed, "classes": args.classes, "seconds": time.perf_counter() - start}))


def bank_location(path):
    """(offset of the first byte, rows, dim) of `knn_bank` in a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    info = header["knn_bank"]
    if info["dtype"] != "F32":
        sys.exit(f"{path}: knn_bank is {info['dtype']}, expected F32")
    rows, dim = info["shape"]
    return 8 + n + info["data_offsets"][0], rows, dim


def bank_blocks(path, rows_per_block=CHUNK_ROWS):
    """The normalised bank rows of `path`, block by block (float32)."""
    offset, rows, dim = bank_location(path)
    with open(path, "rb") as f:
        f.seek(offset)
        for first in range(0, rows, rows_per_block):
            n = min(rows_per_block, rows - first)
            yield np.fromfile(f, dtype="<f4", count=n * dim).reshape(n, dim)


def read_queries(path, dim, limit):
    q = np.fromfile(path, dtype="<f4")
    if q.size % dim:
        sys.exit(f"{path}: {q.size} values is not a whole number of rows of D = {dim}")
    q = q.reshape(-1, dim)
    return q[:limit] if limit else q


def run_faiss(args):
    import faiss

    faiss.omp_set_num_threads(args.threads)
    start = time.perf_counter()
    _, rows, dim = bank_location(args.bank)
    index = faiss.IndexFlatIP(dim)
    for block in bank_blocks(args.bank):
        index.add(np.ascontiguousarray(block))
    open_seconds = time.perf_counter() - start
    q = np.ascontiguousarray(read_queries(args.queries, dim, args.limit), dtype=np.float32)
    faiss.normalize_L2(q)

    index.search(q[: min(WARM_UP_QUERIES, args.batch_size, len(q))], args.k)
    distances, batch_seconds = [], []
    start = time.perf_counter()
    for first in range(0, len(q), args.batch_size):
        t = time.perf_counter()
        s, _ = index.search(q[first: first + args.batch_size], args.k)
        distances.append(np.sqrt(np.maximum(2.0 - 2.0 * s[:, args.k - 1].astype(np.float64), 0.0)))
        batch_seconds.append(time.perf_counter() - t)
    seconds = time.perf_counter() - start
    d = np.concatenate(distances)
    if args.distances_out:
        d.astype("<f8").tofile(args.distances_out)
    print(json.dumps({
        "kind": "faiss", "index": "IndexFlatIP", "faiss_version": faiss.__version__, "bank_rows": rows, "dim": dim,
        "k": args.k, "batch_size": args.batch_size, "queries": len(q), "seconds": seconds,
        "queries_per_s": len(q) / seconds, "batch_seconds_median": float(np.median(batch_seconds)),
        "open_seconds": open_seconds, "threads": faiss.omp_get_max_threads(), "mean_distance": float(d.mean()),
    }))


def reference(bank, q, k):
    """The exact k-th nearest distance of each query (normalised in float64) to the bank's rows,
    in float64, by brute force over the blocks."""
    q = q.astype(np.float64)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    best = np.empty((len(q), 0))
    for block in bank_blocks(bank):
        b = block.astype(np.float64)
        d2 = (q * q).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * q @ b.T
        both = np.concatenate([best, d2], axis=1)
        keep = min(k, both.shape[1])
        best = np.partition(both, keep - 1, axis=1)[:, :keep]
    return np.sqrt(np.maximum(np.sort(best, axis=1)[:, k - 1], 0.0))


def check(args):
    a, b = np.fromfile(args.a, dtype="<f8"), np.fromfile(args.b, dtype="<f8")
    if a.shape != b.shape:
        sys.exit(f"check: {args.a} has {a.size} distances, {args.b} {b.size}")
    _, _, dim = bank_location(args.bank)
    n = min(args.reference, len(a))
    ref = reference(args.bank, read_queries(args.queries, dim, n), args.k) if n else None
    out = {"kind": "knn_check", "queries": int(a.size), "max_abs_diff": float(np.abs(a - b).max()),
           "mean_distance": float(a.mean()), "reference_queries": n}
    if ref is not None:
        out["max_abs_diff_a_reference"] = float(np.abs(a[:n] - ref).max())
        out["max_abs_diff_b_reference"] = float(np.abs(b[:n] - ref).max())
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--rows", type=int, required=True)
    g.add_argument("--dim", type=int, required=True)
    g.add_argument("--queries", type=int, required=True)
    g.add_argument("--classes", type=int, default=10, help="mixture components")
    g.add_argument("--spread", type=float, default=0.5, help="standard deviation around a component's centre")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--bank-out", required=True)
    g.add_argument("--queries-out", required=True)
    f = sub.add_parser("faiss")
    f.add_argument("--bank", required=True, help="a file holding knn_bank (oodscope-bench knn-bank)")
    f.add_argument("--queries", required=True)
    f.add_argument("--k", type=int, default=50)
    f.add_argument("--batch-size", type=int, default=64)
    f.add_argument("--limit", type=int, default=0)
    f.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    f.add_argument("--distances-out")
    c = sub.add_parser("check")
    c.add_argument("--bank", required=True)
    c.add_argument("--queries", required=True)
    c.add_argument("--k", type=int, default=50)
    c.add_argument("--a", required=True, help="distances (raw float64), e.g. oodscope's")
    c.add_argument("--b", required=True, help="distances (raw float64), e.g. faiss's")
    c.add_argument("--reference", type=int, default=256, help="queries checked against a float64 brute force")
    args = ap.parse_args()
    {"gen": gen, "faiss": run_faiss, "check": check}[args.command](args)


if __name__ == "__main__":
    main()
