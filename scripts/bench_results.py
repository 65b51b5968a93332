#!/usr/bin/env python3
"""The benchmark of the per-image results table (issue 13) at scale, as whole processes.

  1. writes an N-row results file (default 10^7: half an ID folder set, half an OOD one, two score
     columns) through oodscope's streaming writer (`oodscope-bench results-write`): time, rows/s,
     file size, peak RSS (the synthetic listing of N paths included, and reported apart);
  2. opens it with `results::open_with` (`oodscope-bench results-open`, the window's and merge's
     loader) in a fresh process: time and peak RSS (VmHWM), and the RSS of the process before the
     open (libtorch loaded);
  3. baseline, same session and file: pyarrow `read_table` of the same columns, and pandas
     `read_parquet` of the whole file, each in a fresh Python process (time, peak RSS).
Each measurement is the median of --repeats runs. Prints a markdown table; with --write-benchmarks
it replaces the section between the bench-results markers in docs/benchmarks.md.

    python scripts/bench_results.py [--rows 10000000] [--repeats 3] [--write-benchmarks]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "oodscope-bench")

PYREAD = r"""
import json, resource, sys, time
import pyarrow.parquet as pq
path, how = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if how == "pyarrow":
    table = pq.read_table(path, columns=["index", "label", "pred", "pred_prob", "msp", "energy", "path"])
    rows = table.num_rows
else:
    import pandas as pd
    rows = len(pd.read_parquet(path))
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write-benchmarks", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(BENCH):
        sys.exit(f"{BENCH} missing: cargo build --release --bin oodscope-bench")
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, "target")) as tmp:
        path = os.path.join(tmp, "results.parquet")
        writes = [run_json([BENCH, "results-write", "--out", path, "--rows", str(args.rows)]) for _ in range(args.repeats)]
        opens = [run_json([BENCH, "results-open", "--file", path]) for _ in range(args.repeats)]
        py = sys.executable
        arrow = [run_json([py, "-c", PYREAD, path, "pyarrow"]) for _ in range(args.repeats)]
        pandas = [run_json([py, "-c", PYREAD, path, "pandas"]) for _ in range(args.repeats)]
    w_s, o_s = median_of(writes, "seconds"), median_of(opens, "seconds")
    a_s, p_s = median_of(arrow, "seconds"), median_of(pandas, "seconds")
    rows = [
        ("oodscope: write (streaming writer)", w_s, median_of(writes, "peak_rss_mib"),
         f"{median_of(writes, 'rows_per_s') / 1e6:.2f} M rows/s, {writes[0]['file_mib']:.0f} MiB file; "
         f"the synthetic listing of {args.rows:,} paths alone: {median_of(writes, 'rss_after_listing_mib'):.0f} MiB"),
        ("oodscope: `results::open` (sets + ScoreRun)", o_s, median_of(opens, "peak_rss_mib"),
         f"{median_of(opens, 'rss_at_start_mib'):.0f} MiB before the open (libtorch loaded)"),
        ("baseline: pyarrow `read_table` (the same 7 columns)", a_s, median_of(arrow, "peak_rss_mib"),
         f"open / pyarrow = {o_s / a_s:.2f}×"),
        ("baseline: pandas `read_parquet` (every column)", p_s, median_of(pandas, "peak_rss_mib"),
         f"open / pandas = {o_s / p_s:.2f}×"),
    ]
    table = [
        f"{args.rows:,} rows (2 sets, 2 score columns), median of {args.repeats} runs each, fresh process per run; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores.",
        "",
        "| step | seconds | peak RSS (MiB) | notes |",
        "|---|---:|---:|---|",
    ]
    table += [f"| {name} | {s:.2f} | {rss:.0f} | {note} |" for name, s, rss, note in rows]
    text = "\n".join(table) + "\n"
    print(text)
    if args.write_benchmarks:
        bench = os.path.join(ROOT, "docs/benchmarks.md")
        doc = open(bench).read()
        begin, end = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"
        if begin in doc and end in doc:
            doc = doc[: doc.index(begin) + len(begin)] + "\n" + text + doc[doc.index(end):]
            open(bench, "w").write(doc)
            print(f"wrote {bench}")
        else:
            print(f"docs/benchmarks.md has no {begin} … {end} section: not written", file=sys.stderr)


if __name__ == "__main__":
    main()
