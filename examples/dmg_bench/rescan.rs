//! Item 7, measured in-process with the library's own `Scanner` (the code
//! the daemon runs at each rescan), on a generated tree of packages; and
//! what the daemon does next when a rescan finds a change: apply it and
//! serialise both dialects' maps and `package.detail` for publication.

use super::fixture::{self, Template};
use super::stats::{summarize, Summary};
use super::Failure;
use domogik_manager::core::manager::Manager;
use domogik_manager::disk::scanner::Scanner;
use std::path::Path;
use std::time::{Duration, Instant};

const UNCHANGED_SCANS: usize = 200;
const CHANGED_SCANS: usize = 30;

#[derive(Debug, Clone)]
pub struct RescanFigures {
    pub packages: usize,
    /// The first scan, which reads and parses every `info.json`.
    pub first: Duration,
    pub unchanged: Summary,
    /// The floor: listing the folder and one `stat` per package, nothing else.
    pub stat_floor: Summary,
    pub one_changed: Summary,
    /// Applying that change and serialising both publications.
    pub republish: Summary,
    pub detail_bytes: usize,
}

pub fn measure(dir: &Path, count: usize, templates: &[Template]) -> Result<RescanFigures, Failure> {
    let names = fixture::write_packages(dir, count, templates)?;
    let mut scanner = Scanner::new(dir.to_path_buf());
    let mut manager = Manager::new(fixture::HOST, "manager", domogik_manager::sys::clock::now());

    let start = Instant::now();
    let report = scanner.scan().map_err(|e| e.to_string())?;
    let first = start.elapsed();
    // Each package's info.json, then its extra files (conversion/, udev_rules/).
    if report.changes.len() != 2 * count {
        return Err(format!(
            "first scan found {} changes, expected {}",
            report.changes.len(),
            2 * count
        ));
    }
    manager.apply_package_changes(report.changes);
    let detail_bytes = manager
        .take_publications(0.0)
        .and_then(|mut publications| publications.nth(1))
        .map(|detail| detail.iter().map(Vec::len).sum())
        .unwrap_or(0);

    let mut unchanged = Vec::with_capacity(UNCHANGED_SCANS);
    let mut floor = Vec::with_capacity(UNCHANGED_SCANS);
    for _ in 0..UNCHANGED_SCANS {
        let start = Instant::now();
        let report = scanner.scan().map_err(|e| e.to_string())?;
        unchanged.push(start.elapsed());
        if !report.changes.is_empty() {
            return Err("a rescan of an unchanged tree reported changes".into());
        }
        // The floor, the least any rescan must do: list the folder, stat
        // each info.json.
        let start = Instant::now();
        fixture::info_json_bytes(dir)?;
        floor.push(start.elapsed());
    }

    let mut one_changed = Vec::with_capacity(CHANGED_SCANS);
    let mut republish = Vec::with_capacity(CHANGED_SCANS);
    for revision in 0..CHANGED_SCANS {
        let index = revision * 7 % count;
        let template = &templates[index % templates.len()];
        fixture::write_package(dir, &names[index], template, Some(revision as u64))?;
        let start = Instant::now();
        let report = scanner.scan().map_err(|e| e.to_string())?;
        one_changed.push(start.elapsed());
        if report.changes.len() != 1 {
            return Err(format!("one changed file gave {} changes", report.changes.len()));
        }
        let start = Instant::now();
        manager.apply_package_changes(report.changes);
        // Build every publication, as the daemon does: both dialects'
        // maps, and package.detail (a package changed).
        let published = manager.take_publications(1.0).map(Iterator::count);
        republish.push(start.elapsed());
        if published != Some(6) {
            return Err("a changed package was not republished".into());
        }
    }
    Ok(RescanFigures {
        packages: count,
        first,
        unchanged: summarize(&mut unchanged),
        stat_floor: summarize(&mut floor),
        one_changed: summarize(&mut one_changed),
        republish: summarize(&mut republish),
        detail_bytes,
    })
}
