//! The fuzz targets' saved inputs replayed as an ordinary test (`fuzz/`, docs/reliability.md):
//! the seeds (`fuzz/seeds/<target>/`: real files, accepted unless named `bad-…`), the corpus the
//! fuzzer grew and minimised (`fuzz/corpus/<target>.tar.zst`) and the inputs that once failed
//! (`fuzz/regressions/<target>/NAME`, refused with a message that holds the text of
//! `NAME.expected`: the check that fixed it) must each return without a panic.

use std::path::{Path, PathBuf};

use oodscope_engine::fuzzing;

use crate::support::repo_root;

/// The files under `fuzz/<kind>/<target>/`, sorted (none when the folder does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = repo_root().join("fuzz").join(kind).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Replays every saved input of `target` through `entry`; the seeds must be accepted or refused
/// as their names say. Returns how many inputs ran.
fn replay(target: &str, entry: impl Fn(&[u8]) -> Result<(), String>) -> usize {
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "fuzz/seeds/{target} has no seeds");
    for seed in &seeds {
        let bytes = std::fs::read(seed).unwrap();
        let refused = name_of(seed).starts_with("bad-");
        match entry(&bytes) {
            Ok(()) => assert!(!refused, "seed {} was accepted", seed.display()),
            Err(e) => assert!(refused, "seed {} was refused: {e}", seed.display()),
        }
    }
    let corpus = corpus(target);
    for (name, bytes) in &corpus {
        // Accepted or refused: either is fine; a panic fails the test and names nothing, so say
        // which input runs.
        eprintln!("{target}: corpus {name}");
        let _ = entry(bytes);
    }
    // What once crashed is refused by the check that fixed it (a build without overflow checks,
    // as this one, may have read it wrongly rather than crash: the message tells them apart).
    let regressions: Vec<PathBuf> = inputs("regressions", target)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "expected"))
        .collect();
    for input in &regressions {
        let expected = std::fs::read_to_string(input.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected file beside it", input.display()));
        match entry(&std::fs::read(input).unwrap()) {
            Ok(()) => panic!("{} was accepted", input.display()),
            Err(e) => assert!(e.contains(expected.trim()), "{}: {e}", input.display()),
        }
    }
    seeds.len() + corpus.len() + regressions.len()
}

/// The inputs in `fuzz/corpus/<target>.tar.zst` (scripts/fuzz.sh writes it), by name; none when
/// there is no archive yet.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let path = repo_root().join("fuzz/corpus").join(format!("{target}.tar.zst"));
    let Ok(file) = std::fs::File::open(&path) else {
        return Vec::new();
    };
    let mut archive = tar::Archive::new(zstd::Decoder::new(file).unwrap());
    let mut inputs = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let name = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            inputs.push((name, bytes));
        }
    }
    assert!(!inputs.is_empty(), "{} holds no inputs", path.display());
    inputs
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn the_card_parsers_saved_inputs_return_without_a_panic() {
    assert!(replay("card", fuzzing::card) >= 3);
}

#[test]
fn the_image_decoders_saved_inputs_return_without_a_panic() {
    assert!(replay("image", fuzzing::image) >= 10);
}

#[test]
fn the_results_readers_saved_inputs_return_without_a_panic() {
    assert!(replay("results", fuzzing::results) >= 2);
}

#[test]
fn the_fit_readers_saved_inputs_return_without_a_panic() {
    let model = fuzzing::demo_model().unwrap();
    let ran = replay("fit", |bytes| fuzzing::fit(bytes, &model));
    assert!(ran >= 1);
    // The seed is a real fit: one byte changed anywhere in its tensors makes it refused.
    let seed = std::fs::read(&inputs("seeds", "fit")[0]).unwrap();
    let mut damaged = seed.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let refused = fuzzing::fit(&damaged, &model).unwrap_err();
    assert!(refused.contains("do not match their digest"), "{refused}");
}

#[test]
fn the_detector_readers_saved_inputs_return_without_a_panic() {
    assert!(replay("detector", fuzzing::detector) >= 2);
}
