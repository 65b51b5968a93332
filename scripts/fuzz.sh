#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/, docs/reliability.md#fuzzing) for SECONDS each, then minimises what
# they found into fuzz/corpus/<target>.tar.zst (replayed by the `fuzz_corpus` test).
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     default: 60 s, every target
# A crash stops with the input saved in fuzz/artifacts/<target>/: fix it, then keep the input in
# fuzz/regressions/<target>/ so that CI replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(card image results fit detector)

# The project's own setup (the venv's libtorch) and the fuzzing tools.
[ -x .venv/bin/python ] || scripts/setup.sh
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
command -v zstd >/dev/null || { apt-get update -qq && apt-get install -y -qq zstd; }
# The fuzz binaries find libtorch where the venv's PyTorch keeps it.
torch_lib="$(.venv/bin/python -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Never the bounds of the CI's test runs: a fuzzer's inputs are small.
export RUST_BACKTRACE=1

# No sanitizer: libtorch is not built with one, and the targets look for panics and aborts.
fuzz=(cargo +nightly fuzz)
flags=(-s none --fuzz-dir fuzz)
"${fuzz[@]}" build "${flags[@]}"

started="$(mktemp)"  # crashes found by this run are the artifacts newer than this
trap 'rm -f "$started"' EXIT
for target in "${targets[@]}"; do
    # The corpus so far: the committed archive, then what earlier runs here grew.
    work="target/fuzz-corpus/$target"
    mkdir -p "$work"
    archive="fuzz/corpus/$target.tar.zst"
    [ -f "$archive" ] && zstd -d -q --long=27 -c "$archive" | tar -C "$work" -xf -
    echo "== $target: ${seconds} s"
    "${fuzz[@]}" run "${flags[@]}" "$target" "$work" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
        2>&1 | grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb|SUMMARY)|panicked|ERROR' || true
    # Minimised (the fewest inputs that keep every feature reached) into the committed archive:
    # one file, compressed across inputs (they are mutations of a few seeds).
    min="target/fuzz-corpus/$target.min"
    rm -rf "$min" && mkdir -p "$min"
    "${fuzz[@]}" run "${flags[@]}" "$target" "$min" "$work" -- -set_cover_merge=1 -rss_limit_mb=4096 -timeout=30 >/dev/null 2>&1 || true
    if [ -n "$(ls -A "$min")" ]; then
        mkdir -p fuzz/corpus
        (cd "$min" && ls | LC_ALL=C sort | tar --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - -T -) \
            | zstd -19 --long=27 -q -c > "$archive"
        echo "   corpus: $(ls "$min" | wc -l) inputs, $(du -k "$archive" | cut -f1) KB as $archive"
    fi
done
found="$(find fuzz/artifacts -type f -newer "$started" 2>/dev/null || true)"
if [ -n "$found" ]; then
    echo "crashes found (replay one: cargo +nightly fuzz run -s none --fuzz-dir fuzz TARGET FILE):"
    echo "$found"
    exit 1
fi
echo "no crash"
