//! The command line: parsing arguments into a [`Command`], and running it
//! with the process's exit code.

use crate::config;
use std::path::PathBuf;

pub const USAGE: &str = "\
Usage: dmg_manager [--config FILE] [--check-config]
       dmg_manager --version | --help

The Domogik manager: keeps the list of installed plugins and their status,
answers user interfaces over ZeroMQ and publishes every change.

Options:
  --config FILE    configuration file (default: /etc/domogik/manager.cfg)
  --check-config   validate the configuration, print a summary and exit
  --version        print the version and exit
  -h, --help       print this help and exit

Signals: SIGHUP rescans the packages folder; SIGTERM and SIGINT stop.
Exit codes: 0 success, 1 configuration or start-up error, 2 usage error.";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run { config: PathBuf },
    CheckConfig { config: PathBuf },
    Version,
    Help,
}

/// A usage error: exit code 2 and a one-line hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Parses the arguments after the program name.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, UsageError> {
    let mut config = PathBuf::from(config::DEFAULT_PATH);
    let mut check = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--check-config" => check = true,
            "-c" | "--config" => match args.next() {
                Some(path) if !path.is_empty() => config = PathBuf::from(path),
                _ => return Err(UsageError(format!("{arg} needs a file name"))),
            },
            _ => match arg.strip_prefix("--config=") {
                Some(path) if !path.is_empty() => config = PathBuf::from(path),
                Some(_) => return Err(UsageError("--config needs a file name".into())),
                None => return Err(UsageError(format!("unknown argument {arg:?}"))),
            },
        }
    }
    Ok(if check {
        Command::CheckConfig { config }
    } else {
        Command::Run { config }
    })
}

/// Runs the program and returns its exit code.
pub fn main_with_args<I: IntoIterator<Item = String>>(args: I) -> i32 {
    let command = match parse_args(args) {
        Ok(command) => command,
        Err(UsageError(message)) => {
            eprintln!("dmg_manager: {message} (try 'dmg_manager --help')");
            return 2;
        }
    };
    match command {
        Command::Help => {
            println!("{USAGE}");
            0
        }
        Command::Version => {
            println!("dmg_manager {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::CheckConfig { config } => match config::load(&config) {
            Ok(config) => {
                println!("{}: OK", config.path.display());
                println!(
                    "  host {}, service \"{}\", packages_dir {}",
                    config.host,
                    config.service,
                    config.packages_dir.display()
                );
                println!(
                    "  sub {}, pub {}, rep {}",
                    config.sub_endpoint, config.pub_endpoint, config.rep_endpoint
                );
                0
            }
            Err(error) => {
                eprintln!("dmg_manager: {error}");
                1
            }
        },
        Command::Run { config } => run_daemon(&config),
    }
}

fn run_daemon(path: &std::path::Path) -> i32 {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dmg_manager: {error}");
            return 1;
        }
    };
    crate::log::init(config.log_level);
    crate::info!(
        "dmg_manager {} starting with {}",
        env!("CARGO_PKG_VERSION"),
        config.path.display()
    );
    match crate::daemon::run(&config) {
        Ok(()) => 0,
        Err(error) => {
            crate::error!("{error}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        parse_args(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn defaults_to_running_with_the_system_config() {
        assert_eq!(
            parse(&[]),
            Ok(Command::Run {
                config: PathBuf::from("/etc/domogik/manager.cfg")
            })
        );
    }

    #[test]
    fn options() {
        assert_eq!(
            parse(&["--config", "a.cfg"]),
            Ok(Command::Run { config: "a.cfg".into() })
        );
        assert_eq!(
            parse(&["--config=b.cfg", "--check-config"]),
            Ok(Command::CheckConfig { config: "b.cfg".into() })
        );
        assert_eq!(parse(&["--version"]), Ok(Command::Version));
        assert_eq!(parse(&["--check-config", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["--config="]).is_err());
        assert_eq!(
            parse(&["--verbose"]),
            Err(UsageError("unknown argument \"--verbose\"".into()))
        );
    }
}
