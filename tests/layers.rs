//! The layers of src/lib.rs, kept: nothing points back up. The core uses no
//! edge (daemon, disk, sys, cli); the disk and the system edges use neither
//! the daemon nor the command line; the daemon does not use the command
//! line. clippy.toml keeps I/O out of the core; this keeps the core from
//! reaching it through an edge. Test code (`#[cfg(test)]`) may use anything.

use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// A file's code without its tests (`#[cfg(test)] mod tests` to the end,
/// the first line of other `#[cfg(test)]` items), and the files of the
/// modules it declares under `#[cfg(test)]` (test helpers).
fn code_of(path: &Path) -> (String, Vec<PathBuf>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut code = String::new();
    let mut test_modules = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "#[cfg(test)]" {
            match lines
                .peek()
                .and_then(|next| next.strip_prefix("mod "))
                .and_then(|m| m.strip_suffix(';'))
            {
                Some(name) => {
                    let dir = match path.file_stem().and_then(|stem| stem.to_str()) {
                        Some("mod" | "lib") => path.parent().unwrap().to_path_buf(),
                        _ => path.with_extension(""),
                    };
                    test_modules.push(dir.join(format!("{name}.rs")));
                    lines.next();
                    continue;
                }
                // The tests, to the end of the file.
                None if lines.peek().is_some_and(|next| next.starts_with("mod tests")) => break,
                // One test-only item: its first line skipped (its body, if
                // any, is checked: stricter, never looser).
                None => {
                    lines.next();
                    continue;
                }
            }
        }
        code.push_str(line);
        code.push('\n');
    }
    (code, test_modules)
}

#[test]
fn no_layer_uses_one_above_it() {
    let root = Path::new(ROOT);
    let mut files = Vec::new();
    sources(root, &mut files);
    let mut code = Vec::new();
    let mut test_only = Vec::new();
    for file in &files {
        let (text, tests) = code_of(file);
        code.push((file.clone(), text));
        test_only.extend(tests);
    }
    let above = |relative: &Path| -> &[&str] {
        match relative.components().next().and_then(|c| c.as_os_str().to_str()) {
            Some("core") => &["crate::daemon", "crate::disk", "crate::sys", "crate::cli"],
            Some("disk" | "sys") => &["crate::daemon", "crate::cli"],
            Some("daemon" | "daemon.rs") => &["crate::cli"],
            _ => &[],
        }
    };
    let mut breaches = Vec::new();
    for (file, text) in &code {
        if test_only.contains(file) {
            continue;
        }
        let relative = file.strip_prefix(root).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for layer in above(relative) {
                if code.contains(&format!("{layer}::")) || code.contains(&format!("{layer};")) {
                    breaches.push(format!("src/{}:{}: {}", relative.display(), number + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "a layer uses one above it (src/lib.rs says the order):\n{}",
        breaches.join("\n")
    );
    assert!(code.len() > 50, "only {} source files found under {ROOT}", code.len());
}
