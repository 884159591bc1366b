//! The benchmark's modules and its entry point: parse the options, then
//! either serve as the floor (a child process) or run every measurement.

mod bus;
mod dialects;
mod fixture;
mod floor;
mod hosts;
mod footprint;
mod measure;
mod options;
mod process;
mod procfs;
mod report;
mod rescan;
mod run;
mod stats;
mod strace;
mod table;

use options::Mode;

/// What went wrong, in one line: the benchmark's only error type.
pub type Failure = String;

/// Runs the command line and returns the exit code: 0, 1 when a run
/// failed, 2 on a usage error.
pub fn main() -> i32 {
    let mode = match options::parse(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("dmg-bench: {message} (try --help)");
            return 2;
        }
    };
    let outcome = match mode {
        Mode::Help => {
            println!("{}", options::USAGE);
            return 0;
        }
        Mode::FloorServer { canned } => floor::serve(&canned),
        Mode::Bench(options) => run::run(&options),
        Mode::Dialects => run::run_dialects(),
        Mode::Bus(options) => run::run_bus(&options),
        Mode::Hosts(options) => hosts::run_hosts(&options),
        Mode::Footprint(options) => footprint::run(&options),
    };
    match outcome {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("dmg-bench: {failure}");
            1
        }
    }
}
