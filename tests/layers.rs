//! The layers of src/lib.rs, kept: nothing points back up. The core uses no
//! edge (daemon, disk, sys, cli); the disk and the system edges use neither
//! the daemon nor the command line; the daemon does not use the command
//! line. clippy.toml keeps I/O out of the core; this keeps the core from
//! reaching it through an edge. And no two modules import each other,
//! directly or around a loop. Test code (`#[cfg(test)]`) may use anything.

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

/// The module path of a source file: `src/core/bus/mdp.rs` is
/// `crate::core::bus::mdp`, `src/disk/mod.rs` is `crate::disk`.
fn module_of(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib" || last == "main")
    {
        parts.pop();
    }
    std::iter::once("crate".to_owned())
        .chain(parts)
        .collect::<Vec<_>>()
        .join("::")
}

/// The `crate::`, `super::` and `self::` paths of `code`, braces expanded
/// one level (`crate::core::{wire, status::Status}`).
fn paths_in(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        let mut rest = code;
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            let path = tail[..end].trim_end_matches(':');
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                if tail[end..].starts_with('{') && tail[..end].ends_with("::") {
                    let group = &tail[end + 1..tail[end..].find('}').map_or(end + 1, |close| end + close)];
                    for item in group.split(',') {
                        let item = item.trim().split([' ', ':']).next().unwrap_or("");
                        if !item.is_empty() {
                            found.push(format!("{path}::{item}"));
                        }
                    }
                } else {
                    found.push(path.to_owned());
                }
            }
            rest = &rest[at + start.len()..];
        }
    }
    found
}

/// The module a path names (its longest prefix that is a module), from `module`.
fn resolve(module: &str, path: &str, modules: &std::collections::BTreeSet<String>) -> Option<String> {
    let mut parts = path.split("::").peekable();
    let mut base: Vec<&str> = match parts.peek() {
        Some(&"crate") => {
            parts.next();
            vec!["crate"]
        }
        _ => module.split("::").collect(),
    };
    while let Some(&part) = parts.peek() {
        match part {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => break,
        }
        parts.next();
    }
    let mut best = None;
    let mut current = base.join("::");
    if modules.contains(&current) {
        best = Some(current.clone());
    }
    for part in parts {
        current = format!("{current}::{part}");
        if !modules.contains(&current) {
            break;
        }
        best = Some(current.clone());
    }
    best
}

#[test]
fn no_import_cycle_between_modules() {
    let root = Path::new(ROOT);
    let mut files = Vec::new();
    sources(root, &mut files);
    let modules: std::collections::BTreeSet<String> = files.iter().map(|file| module_of(root, file)).collect();
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for file in &files {
        let module = module_of(root, file);
        let (code, _) = code_of(file);
        let code: String = code.lines().map(|line| line.split("//").next().unwrap_or("")).collect();
        for path in paths_in(&code) {
            if let Some(target) = resolve(&module, &path, &modules) {
                // A module's own items, and the ancestors' (its parents
                // declare it), are no import.
                if target != module && !module.starts_with(&format!("{target}::")) {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit(
        module: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in edges.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = Default::default();
    for module in edges.keys() {
        if let Some(cycle) = visit(module, &edges, &mut Vec::new(), &mut done) {
            panic!("an import cycle: {}", cycle.join(" -> "));
        }
    }
    assert!(
        edges.len() > 30,
        "only {} modules import anything: the paths were not read",
        edges.len()
    );
}
