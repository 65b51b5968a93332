//! OOD set groups on the command line: `--ood near:DIR` puts the set in group `near`, as OpenOOD's
//! near-OOD and far-OOD splits.

use std::path::Path;

/// Words that start a synthetic set spec (`uniform:N`), never a group.
const SET_KINDS: [&str; 2] = ["uniform", "gaussian"];

/// Splits `GROUP:SPEC` into the group and the set spec. A prefix is a group when it is a plain word
/// (letters, digits, `-`, `_`), is not a synthetic set kind, and the whole text is not an existing
/// path (a folder may have a colon in its name).
pub fn split_group(spec: &str) -> (Option<String>, &str) {
    let Some((prefix, rest)) = spec.split_once(':') else {
        return (None, spec);
    };
    let is_word = !prefix.is_empty() && prefix.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    let is_kind = SET_KINDS.iter().any(|k| k.eq_ignore_ascii_case(prefix));
    if !is_word || is_kind || rest.is_empty() || Path::new(spec).exists() {
        return (None, spec);
    }
    (Some(prefix.to_string()), rest)
}

#[cfg(test)]
mod tests {
    use super::split_group;

    #[test]
    fn groups_are_plain_words_before_a_colon() {
        assert_eq!(split_group("near:data/mnist"), (Some("near".into()), "data/mnist"));
        assert_eq!(split_group("far:uniform:100"), (Some("far".into()), "uniform:100"));
        assert_eq!(split_group("uniform:100"), (None, "uniform:100"));
        assert_eq!(split_group("Gaussian:5"), (None, "Gaussian:5"));
        assert_eq!(split_group("data/mnist"), (None, "data/mnist"));
        assert_eq!(split_group("./a:b"), (None, "./a:b"));
        assert_eq!(split_group("near:"), (None, "near:"));
    }
}
