//! The CLI reference, docs/cli.md, is the binary's own `--help` for the top level and for every
//! sub-command, so it cannot drift from the code: this test renders the page from the built binary
//! and fails when the committed page differs; with `OODSCOPE_BLESS=1` (scripts/cli_reference.sh)
//! it writes the page instead.

use crate::support;

use std::fmt::Write as _;
use std::process::{Command, Stdio};

/// The page, relative to the repository root.
const PAGE: &str = "docs/cli.md";
/// Set to `1`, the test writes the page instead of comparing it.
const BLESS_VARIABLE: &str = "OODSCOPE_BLESS";
/// What regenerates the page, for the failure message.
const REGENERATE: &str =
    "scripts/cli_reference.sh (OODSCOPE_BLESS=1 cargo test --release -p oodscope --test cli cli_reference)";

#[test]
fn docs_cli_md_is_the_binary_help() {
    let path = support::repo_root().join(PAGE);
    let rendered = render_page();
    if std::env::var(BLESS_VARIABLE).as_deref() == Ok("1") {
        std::fs::write(&path, &rendered).unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        println!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {} ({err}): generate it with {REGENERATE}", path.display()));
    // A checkout with Windows line endings holds the same page.
    if let Some(difference) = first_difference(&committed.replace("\r\n", "\n"), &rendered) {
        panic!("{PAGE} differs from the binary's --help: {difference}\nregenerate it with {REGENERATE}");
    }
}

/// The page: title, how it is made, a table of contents, then one section per command.
fn render_page() -> String {
    let top_level = help(&["--help"]);
    let sub_commands = sub_commands(&top_level);
    assert!(
        !sub_commands.is_empty(),
        "no sub-commands found in the Commands: section of oodscope --help:\n{top_level}"
    );
    let mut sections = vec![("oodscope".to_string(), top_level)];
    for sub_command in &sub_commands {
        sections.push((format!("oodscope {sub_command}"), help(&[sub_command, "--help"])));
    }

    let mut page = String::from("# CLI reference\n\n");
    page.push_str(
        "This page is generated from the binary's own `--help` (`oodscope --help` and \
         `oodscope <command> --help`) by the test `crates/oodscope/tests/cli_reference.rs`, which fails \
         when the page is out of date; regenerate it with `scripts/cli_reference.sh` rather than editing it.\n\n",
    );
    for (title, _) in &sections {
        writeln!(page, "- [{title}](#{})", anchor(title)).expect("writing to a String");
    }
    for (title, text) in &sections {
        writeln!(page, "\n## {title}\n\n```text\n{}\n```", tidy(text)).expect("writing to a String");
    }
    page
}

/// The standard output of `oodscope <args>`, which must succeed.
///
/// clap's `wrap_help` feature is off, so help is not wrapped to the terminal at all; should it ever
/// be turned on, no terminal is attached here (stdin null, stdout and stderr piped) and clap reads
/// the width from `COLUMNS`. Colour is off as well (piped output, and `CLICOLOR_FORCE` removed).
fn help(args: &[&str]) -> String {
    let command_line = format!("oodscope {}", args.join(" "));
    let output = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args)
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command_line}: {err}"));
    assert!(
        output.status.success(),
        "{command_line} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap_or_else(|err| panic!("{command_line} printed invalid UTF-8: {err}"))
}

/// The sub-command names listed under "Commands:" in the top-level help, without `help`.
/// Each entry starts with exactly two spaces; anything else ends the section.
fn sub_commands(top_level_help: &str) -> Vec<String> {
    top_level_help
        .lines()
        .skip_while(|line| line.trim_end() != "Commands:")
        .skip(1)
        .map_while(|line| line.strip_prefix("  ").filter(|entry| !entry.starts_with(' ')))
        .filter_map(|entry| entry.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// A help text without trailing spaces on its lines and without trailing blank lines.
fn tidy(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_string()
}

/// GitHub's anchor of a heading made of lower-case letters, digits, hyphens and spaces.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `None` when the pages are equal, else where they first differ, line by line.
fn first_difference(committed: &str, rendered: &str) -> Option<String> {
    if committed == rendered {
        return None;
    }
    let shown = |line: Option<&str>| line.map_or_else(|| "(end of file)".to_string(), |line| format!("{line:?}"));
    let mut committed_lines = committed.lines();
    let mut rendered_lines = rendered.lines();
    let mut number = 0_usize;
    loop {
        number += 1;
        let (committed_line, rendered_line) = (committed_lines.next(), rendered_lines.next());
        if committed_line != rendered_line {
            return Some(format!(
                "first difference at line {number}\n  {PAGE}: {}\n  --help:      {}",
                shown(committed_line),
                shown(rendered_line)
            ));
        }
        if committed_line.is_none() {
            return Some("the lines are equal; only the final newline differs".to_string());
        }
    }
}
