#!/usr/bin/env python3
"""Checks the shape of the code (CODE_STYLE.md, docs/architecture.md), run by scripts/test.sh:

- crates depend one way down: each crate's normal dependencies on other workspace crates are only
  those allowed below (cargo already refuses circles between crates);
- the engine's dependency tree holds no egui, eframe, clap or rfd; the data crate's no tch; the
  metrics crate has no dependencies at all;
- inside each crate, the top-level modules depend on each other without a circle (a module's
  `crate::x` / `super::x` paths name what it uses; unit tests may use any module);
- no source file is over 600 lines;
- every module starts with a `//!` line.

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600

# Which workspace crates each crate may depend on (normal dependencies; tests may use more).
ALLOWED = {
    "oodscope-metrics": set(),
    "oodscope-data": set(),
    "oodscope-engine": {"oodscope-metrics", "oodscope-data"},
    "oodscope-gui": {"oodscope-metrics", "oodscope-data", "oodscope-engine"},
    # The server: a crate on the engine alone (no window, no command line).
    "oodscope-serve": {"oodscope-data", "oodscope-engine"},
    # The Python package: the engine in-process (no window, no command line, no server).
    "oodscope-python": {"oodscope-metrics", "oodscope-data", "oodscope-engine"},
    "oodscope": {"oodscope-metrics", "oodscope-data", "oodscope-engine", "oodscope-gui", "oodscope-serve"},
    "oodscope-bench": {"oodscope-metrics", "oodscope-data", "oodscope-engine", "oodscope-gui", "oodscope-serve"},
    "oodscope-testkit": set(),
}
# Crates that must not appear anywhere in a crate's normal dependency tree.
FORBIDDEN_TREE = {
    "oodscope-engine": {"egui", "eframe", "clap", "rfd", "egui_plot", "egui_kittest"},
    "oodscope-serve": {"egui", "eframe", "clap", "rfd", "egui_plot", "egui_kittest"},
    "oodscope-python": {"egui", "eframe", "clap", "rfd", "egui_plot", "egui_kittest", "axum", "tokio"},
    "oodscope-data": {"tch", "torch-sys", "egui", "eframe", "clap", "rfd"},
    "oodscope-metrics": None,  # None: no dependencies at all
}


def metadata() -> dict:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--filter-platform", "x86_64-unknown-linux-gnu"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def normal_tree(meta: dict, package_id: str) -> set[str]:
    """Names of every package in `package_id`'s normal (non-dev, non-build) dependency tree."""
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    names = {p["id"]: p["name"] for p in meta["packages"]}
    seen, stack = set(), [package_id]
    while stack:
        node = nodes[stack.pop()]
        for dep in node["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]) and dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                stack.append(dep["pkg"])
    return {names[p] for p in seen}


def check_crates(meta: dict, problems: list[str]) -> None:
    members = {p["id"]: p for p in meta["packages"] if p["id"] in meta["workspace_members"]}
    for pid, package in members.items():
        name = package["name"]
        direct = {d["name"] for d in package["dependencies"] if d["kind"] is None and d.get("path")}
        allowed = ALLOWED.get(name)
        if allowed is None:
            problems.append(f"{name}: not in scripts/check_layers.py's ALLOWED table")
            continue
        for dep in sorted(direct - allowed):
            problems.append(f"{name}: depends on {dep}, which is not below it")
        if name in FORBIDDEN_TREE:
            tree = normal_tree(meta, pid)
            forbidden = FORBIDDEN_TREE[name]
            if forbidden is None:
                if tree:
                    problems.append(f"{name}: must have no dependencies, has {', '.join(sorted(tree))}")
            else:
                for bad in sorted(tree & forbidden):
                    problems.append(f"{name}: {bad} is in its dependency tree")


def top_modules(src: Path) -> dict[str, list[Path]]:
    """Each top-level module of a crate and its files."""
    modules: dict[str, list[Path]] = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        top = rel.parts[0][:-3] if len(rel.parts) == 1 else rel.parts[0]
        if top in ("lib", "main"):
            continue
        modules.setdefault(top, []).append(path)
    return modules


def strip_comments(text: str) -> str:
    """The code without comments, strings and its unit tests (tests may use any module)."""
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def module_graph(src: Path) -> dict[str, set[str]]:
    modules = top_modules(src)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, files in modules.items():
        for path in files:
            text = strip_comments(path.read_text())
            used = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
            for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
                used |= set(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
            # `super::x` from a top-level module's own files is the module itself or its children.
            if len(path.relative_to(src).parts) == 1:
                used |= set(re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", text))
            graph[module] |= {u for u in used if u in modules and u != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def check_modules(problems: list[str]) -> None:
    for crate in sorted((ROOT / "crates").iterdir()):
        src = crate / "src"
        if not src.is_dir():
            continue
        cycle = find_cycle(module_graph(src))
        if cycle:
            problems.append(f"crates/{crate.name}: modules in a circle: {' → '.join(cycle)}")


def check_files(problems: list[str]) -> int:
    files = sorted(ROOT.glob("crates/*/src/**/*.rs")) + sorted(ROOT.glob("crates/*/tests/**/*.rs"))
    files += sorted(ROOT.glob("crates/*/build.rs")) + sorted(ROOT.glob("build/*.rs"))
    for path in files:
        lines = path.read_text().splitlines()
        rel = path.relative_to(ROOT)
        if len(lines) > MAX_LINES:
            problems.append(f"{rel}: {len(lines)} lines, over {MAX_LINES}")
        first = next((l for l in lines if l.strip() and not l.startswith("#![")), "")
        if not first.startswith("//!"):
            problems.append(f"{rel}: no `//!` line at the top")
    return len(files)


def main() -> int:
    problems: list[str] = []
    check_crates(metadata(), problems)
    check_modules(problems)
    count = check_files(problems)
    for p in problems:
        print(p)
    if problems:
        print(f"check_layers: {len(problems)} problem(s)")
        return 1
    print(f"check_layers: crates one way down, no circle between modules, {count} files ≤ {MAX_LINES} lines with a //! line")
    return 0


if __name__ == "__main__":
    sys.exit(main())
