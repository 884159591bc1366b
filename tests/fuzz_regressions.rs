//! The fuzz corpus as regression tests: every file in
//! `tests/fuzz-corpus/<target>/` (seeds, and the inputs that once crashed
//! or exposed a bug) goes through the same checks as the fuzz target of
//! that name (`fuzz/src/checks.rs`), without libFuzzer.

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;

use std::path::Path;

fn run_corpus(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(outcome.is_ok(), "{target}: {} fails its checks", file.display());
    }
}

#[test]
fn request_corpus() {
    run_corpus("request", checks::request);
}

#[test]
fn status_corpus() {
    run_corpus("status", checks::status);
}

#[test]
fn info_json_corpus() {
    run_corpus("info_json", checks::info_json);
}

#[test]
fn config_corpus() {
    run_corpus("config", checks::config);
}

#[test]
fn xpl_corpus() {
    run_corpus("xpl", checks::xpl);
}
