#!/usr/bin/env python3
"""Checks the project's markdown: README.md, CODE_STYLE.md (if present) and docs/**/*.md.

- Every relative link and image, inline `[text](target)` / `![alt](target)` or a reference
  definition `[name]: target`, must point at a file or folder that exists (relative to the page).
  A `#anchor` must name a heading of the target page (or of the page itself for `#anchor` alone),
  by GitHub's slug: lower case, every character but letters, marks, digits, spaces, hyphens and
  underscores dropped, spaces turned into hyphens; a repeated heading gets -1, -2, … as on GitHub.
  http(s), mailto and other links with a scheme are not checked. Links inside code (fenced blocks
  and `inline code`) are not links.
- No checked file may mention the workspace's shared folder (the `shared` folder beside the
  repository, or its `SCORING` file): a clone of the repository has no such folder.
- README.md may have at most 250 lines.

Prints one line per problem (`file:line: message`) and exits 1, or a one-line summary and exits 0.
Python 3 standard library only.

Usage: python3 scripts/check_docs.py [--root DIR] [--allow-missing docs/cli.md,docs/architecture.md]
  --allow-missing: comma-separated paths (relative to the root) whose absence is not a problem yet;
                   links to them are counted and reported in the summary instead.
"""

import argparse
import os
import re
import sys
import unicodedata
from urllib.parse import unquote

README_MAX_LINES = 250
# The workspace's shared folder, one level above the repository, and its scoring document.
FORBIDDEN = re.compile(r"\.\./shared\b|\bshared/SCORING")

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$|^ {0,3}(#{1,6})[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
HTML_ID = re.compile(r"""<[a-zA-Z][^>]*?\s(?:id|name)\s*=\s*["']([^"']+)["']""")
# [text](target "title") / ![alt](target); the text may hold one level of brackets (an image in a link).
INLINE_LINK = re.compile(
    r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^<>\n]*>|[^\s()]+(?:\([^\s()]*\)[^\s()]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
REF_DEF = re.compile(r"^ {0,3}\[([^\]]+)\]:[ \t]*(<[^<>\n]*>|\S+)", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def slug(text):
    """GitHub's heading anchor for the heading text `text` (markdown already reduced to text)."""
    out = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch in " -_" or cat[0] in "LMN":
            out.append(ch)
    return "".join(out).replace(" ", "-")


def heading_text(raw):
    """The rendered text of a heading's markdown: links and images reduced to their text."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    return text.strip()


def blank_fences(text):
    """The text with fenced code blocks replaced by empty lines (so line numbers stay right)."""
    lines = text.split("\n")
    out, fence = [], None
    for line in lines:
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            out.append("")
        elif fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
                fence = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def blank_code(text):
    """The text with fenced code blocks and inline code spans blanked (newlines kept), so that
    neither is searched for links and line numbers stay right."""
    text = blank_fences(text)

    # Inline code: a run of N backticks up to the next run of exactly N backticks, not across a
    # blank line (a paragraph break ends a would-be span).
    def repl(m):
        return re.sub(r"[^\n]", " ", m.group(0))

    return re.sub(r"(?<!`)(`+)(?!`)(?:(?!\n[ \t]*\n).)*?(?<!`)\1(?!`)", repl, text, flags=re.S)


def anchors(path, cache):
    """The set of anchors a markdown page defines (headings' slugs, HTML ids and names)."""
    if path in cache:
        return cache[path]
    try:
        with open(path, encoding="utf-8") as f:
            text = blank_fences(f.read())  # a heading's `code` is part of its text
    except (OSError, UnicodeDecodeError):
        cache[path] = set()
        return cache[path]
    found, seen = set(), {}
    lines = text.split("\n")

    def add(raw):
        base = slug(heading_text(raw))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")

    for i, line in enumerate(lines):
        m = ATX.match(line)
        if m:
            add(m.group(2) or "")
        elif (
            SETEXT.match(line)
            and i > 0
            and lines[i - 1].strip()
            and not ATX.match(lines[i - 1])
            and not lines[i - 1].lstrip().startswith(("-", "*", "+", ">", "|"))
            and not SETEXT.match(lines[i - 1])
        ):
            add(lines[i - 1])
        for hid in HTML_ID.findall(line):
            found.add(hid)
    cache[path] = found
    return found


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def check_file(root, rel, allow_missing, cache, problems, stats):
    path = os.path.join(root, rel)
    with open(path, encoding="utf-8") as f:
        raw = f.read()

    for n, line in enumerate(raw.split("\n"), 1):
        for bad in FORBIDDEN.finditer(line):
            problems.append(f"{rel}:{n}: mentions `{bad[0]}`: a clone has no shared folder; point at docs/ instead")

    text = blank_code(raw)
    targets = []
    for m in INLINE_LINK.finditer(text):
        targets.append((m.start(), m.group(3), "image" if m.group(1) else "link"))
        for inner in INLINE_LINK.finditer(m.group(2)):  # an image inside a link's text
            targets.append((m.start(2) + inner.start(), inner.group(3), "image" if inner.group(1) else "link"))
    targets += [(m.start(), m.group(2), "reference") for m in REF_DEF.finditer(text)]
    for offset, target, kind in sorted(targets):
        n = line_of(text, offset)
        target = target.strip()
        if target.startswith("<") and target.endswith(">"):
            target = target[1:-1].strip()
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue
        stats["links"] += 1
        file_part, _, anchor = target.partition("#")
        file_part = unquote(file_part.split("?", 1)[0])
        if file_part:
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
        else:
            dest = path
        dest_rel = os.path.relpath(dest, root).replace(os.sep, "/")
        if not os.path.exists(dest):
            if dest_rel in allow_missing:
                stats["allowed"] += 1
                continue
            problems.append(f"{rel}:{n}: {kind} target `{target}` does not exist ({dest_rel})")
            continue
        if anchor and dest.lower().endswith((".md", ".markdown")) and os.path.isfile(dest):
            if unquote(anchor) not in anchors(dest, cache):
                where = "this page" if dest == path else dest_rel
                problems.append(f"{rel}:{n}: {kind} anchor `#{anchor}` names no heading of {where}")

    if rel == "README.md":
        count = raw.count("\n") + (0 if raw.endswith("\n") or not raw else 1)
        if count > README_MAX_LINES:
            problems.append(f"{rel}:{count}: README.md has {count} lines, more than {README_MAX_LINES}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.dirname(here), help="the repository root (default: scripts/..)")
    ap.add_argument(
        "--allow-missing",
        default="",
        help="comma-separated paths, relative to the root, that links may name before they exist",
    )
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    allow_missing = {os.path.normpath(p.strip()).replace(os.sep, "/") for p in args.allow_missing.split(",") if p.strip()}

    files = []
    for name in ("README.md", "CODE_STYLE.md"):
        if os.path.isfile(os.path.join(root, name)):
            files.append(name)
    docs = os.path.join(root, "docs")
    for dirpath, dirnames, filenames in os.walk(docs):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".md"):
                files.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    if "README.md" not in files:
        print("README.md: missing")
        return 1

    problems, cache = [], {}
    stats = {"links": 0, "allowed": 0}
    for rel in files:
        check_file(root, rel, allow_missing, cache, problems, stats)

    if problems:
        for p in problems:
            print(p)
        return 1
    allowed = ""
    if stats["allowed"]:
        allowed = f" ({stats['allowed']} to pages allowed to be missing: {', '.join(sorted(allow_missing))})"
    print(f"check_docs: {len(files)} files, {stats['links']} relative links checked{allowed}: no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
