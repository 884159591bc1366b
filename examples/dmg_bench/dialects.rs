//! Item 8 (issue 11), measured in-process with the library's `Manager`:
//! what one status change costs when both dialects are published (the
//! seed's `clients.list` and `clients.detail`, then Domogik 0.5's
//! `client.list`, `client.detail` and `client.conversion`), against the
//! seed's pair alone, on N generated packages. Each sample: apply one
//! status message, build the publications and drop them (no socket).

use super::fixture::{self, Template};
use super::stats::{summarize, Summary};
use super::Failure;
use domogik_manager::core::manager::Manager;
use domogik_manager::disk::scanner::Scanner;
use domogik_manager::core::status::Status;
use domogik_manager::core::wire::{self, StatusUpdate};
use std::path::Path;
use std::time::Instant;

const SAMPLES: usize = 2000;

#[derive(Debug, Clone)]
pub struct DialectFigures {
    pub packages: usize,
    /// Status applied, then `clients.list` and `clients.detail` built.
    pub seed_only: Summary,
    /// Status applied, then all five publications built.
    pub both: Summary,
    pub seed_bytes: usize,
    pub both_bytes: usize,
}

pub fn measure(dir: &Path, count: usize, templates: &[Template]) -> Result<DialectFigures, Failure> {
    let names = fixture::write_packages(dir, count, templates)?;
    let mut scanner = Scanner::new(dir.to_path_buf());
    let mut manager = Manager::new(fixture::HOST, "manager", domogik_manager::sys::clock::now());
    manager.apply_package_changes(scanner.scan().map_err(|e| e.to_string())?.changes);
    manager.take_publications(0.0);

    let mut seed_only = Vec::with_capacity(SAMPLES);
    let mut both = Vec::with_capacity(SAMPLES);
    let (mut seed_bytes, mut both_bytes) = (0, 0);
    for sample in 0..2 * SAMPLES {
        let update = StatusUpdate {
            name: names[sample % names.len()].clone(),
            host: Some(fixture::HOST.into()),
            status: if sample / names.len() % 2 == 0 {
                Status::Alive
            } else {
                Status::Stopped
            },
            comment: None,
        };
        // The seed alone and both dialects take turns: the same noise for both.
        let whole = sample % 2 == 1;
        let frames = wire::encode_status(&update, fixture::HOST, 1.0);
        let start = Instant::now();
        manager.handle_status_message(&frames);
        let publications = manager
            .take_publications(1.0)
            .ok_or_else(|| "a status change was not published".to_owned())?;
        let taken: Vec<Vec<Vec<u8>>> = publications.take(if whole { usize::MAX } else { 2 }).collect();
        let elapsed = start.elapsed();
        let size: usize = taken.iter().flatten().map(Vec::len).sum();
        if whole {
            if taken.len() != 5 {
                return Err(format!("{} publications for a status change, expected 5", taken.len()));
            }
            both.push(elapsed);
            both_bytes = size;
        } else {
            seed_only.push(elapsed);
            seed_bytes = size;
        }
    }
    Ok(DialectFigures {
        packages: count,
        seed_only: summarize(&mut seed_only),
        both: summarize(&mut both),
        seed_bytes,
        both_bytes,
    })
}
