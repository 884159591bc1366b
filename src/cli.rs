//! The command line: parsing arguments into a [`Command`], and running it
//! with the process's exit code.

use crate::config;
use crate::packages;
use crate::status::Status;
use crate::tools::{self, clients::ClientsOptions, status::StatusOptions, watch::WatchOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const USAGE: &str = "\
Usage: dmg_manager [--config FILE] [run] [--check-config]
       dmg_manager [--config FILE] clients [--detail] [--json] [--timeout SECS]
       dmg_manager [--config FILE] watch [--timeout SECS]
       dmg_manager [--config FILE] status NAME EVENT [--comment TEXT] [--timeout SECS]
       dmg_manager --version | --help

The Domogik manager: keeps the list of installed plugins and their status,
answers user interfaces over ZeroMQ and publishes every change.

Commands (the manager's endpoints come from the same config file):
  run              run the manager (the default)
  clients          print the running manager's clients: id, type, plugin,
                   host, status, configured
  watch            print one line per change of the clients (status,
                   added, removed, reloaded) until Ctrl-C
  status NAME EVENT
                   announce that plugin NAME of this host is EVENT: unknown,
                   starting, alive, stop-request, stopped, dead, invalid or
                   not-configured

Options:
  --config FILE    configuration file (default: /etc/domogik/manager.cfg)
  --check-config   validate the configuration, print a summary and exit
  --detail         clients: add version, author and description (for an
                   invalid package, what is wrong with it)
  --json           clients: print the manager's reply body unchanged
  --comment TEXT   status: a comment sent with the status
  --timeout SECS   how long to wait for the manager (default 3)
  --version        print the version and exit
  -h, --help       print this help and exit

Signals: SIGHUP rescans the packages folder; SIGTERM and SIGINT stop.
Exit codes: 0 success, 1 configuration or start-up error, no answer or an
error from the manager, 2 usage error.";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run { config: PathBuf },
    CheckConfig { config: PathBuf },
    Clients { config: PathBuf, options: ClientsOptions },
    Watch { config: PathBuf, options: WatchOptions },
    Status { config: PathBuf, options: StatusOptions },
    Version,
    Help,
}

/// A usage error: exit code 2 and a one-line hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

/// The longest `--timeout` accepted, in seconds.
const MAX_TIMEOUT_SECS: f64 = 3600.0;

/// The arguments as given, before they are checked against the command
/// (ripgrep's "low-level" arguments).
#[derive(Debug, Default)]
struct RawArgs {
    help: bool,
    version: bool,
    config: Option<PathBuf>,
    check_config: bool,
    detail: bool,
    json: bool,
    timeout: Option<String>,
    comment: Option<String>,
    /// The command, then its positional arguments.
    words: Vec<String>,
}

impl RawArgs {
    /// The options given, by name, for the check that each applies.
    fn options_given(&self) -> [(&'static str, bool); 5] {
        [
            ("--check-config", self.check_config),
            ("--detail", self.detail),
            ("--json", self.json),
            ("--timeout", self.timeout.is_some()),
            ("--comment", self.comment.is_some()),
        ]
    }
}

/// Parses the arguments after the program name.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, UsageError> {
    let raw = read_args(args)?;
    if raw.help {
        return Ok(Command::Help);
    }
    if raw.version {
        return Ok(Command::Version);
    }
    resolve(raw)
}

/// Sorts the arguments into options and words. Options may come before or
/// after the command; `--name value` and `--name=value` are the same.
fn read_args<I: IntoIterator<Item = String>>(args: I) -> Result<RawArgs, UsageError> {
    let mut raw = RawArgs::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| match inline.clone().or_else(|| args.next()) {
            Some(value) => Ok(value),
            None => Err(UsageError(format!("{name} needs {what}"))),
        };
        let flag = |set: &mut bool| match inline {
            None => {
                *set = true;
                Ok(())
            }
            Some(_) => Err(UsageError(format!("{name} takes no value"))),
        };
        match name {
            "-h" | "--help" => flag(&mut raw.help)?,
            "-V" | "--version" => flag(&mut raw.version)?,
            "--check-config" => flag(&mut raw.check_config)?,
            "--detail" => flag(&mut raw.detail)?,
            "--json" => flag(&mut raw.json)?,
            "-c" | "--config" => match value("a file name")? {
                path if path.is_empty() => return Err(UsageError(format!("{name} needs a file name"))),
                path => raw.config = Some(PathBuf::from(path)),
            },
            "--timeout" => raw.timeout = Some(value("a number of seconds")?),
            "--comment" => raw.comment = Some(value("a text")?),
            _ if arg.starts_with('-') && arg.len() > 1 => {
                return Err(UsageError(format!("unknown argument {arg:?}")));
            }
            _ => raw.words.push(arg),
        }
    }
    Ok(raw)
}

/// Checks the raw arguments against the command they name.
fn resolve(raw: RawArgs) -> Result<Command, UsageError> {
    let config = raw
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let (command, arguments) = match raw.words.split_first() {
        Some((command, arguments)) => (command.as_str(), arguments),
        None => ("run", &[][..]),
    };
    check_options_apply(&raw, command)?;
    let timeout = raw
        .timeout
        .as_deref()
        .map(parse_timeout)
        .transpose()?
        .unwrap_or(tools::DEFAULT_TIMEOUT);
    // The command is known by now: `run` is what is left.
    Ok(match (command, arguments) {
        ("status", [name, event]) => {
            let options = StatusOptions {
                name: parse_name(name)?,
                status: parse_event(event)?,
                comment: raw.comment,
                timeout,
            };
            Command::Status { config, options }
        }
        ("status", [] | [_]) => return Err(UsageError("'status' needs NAME and EVENT".into())),
        ("status", [_, _, extra, ..]) | (_, [extra, ..]) => {
            return Err(UsageError(format!("unexpected argument {extra:?}")))
        }
        ("clients", []) => {
            let options = ClientsOptions {
                detail: raw.detail,
                json: raw.json,
                timeout,
            };
            Command::Clients { config, options }
        }
        ("watch", []) => Command::Watch {
            config,
            options: WatchOptions { timeout },
        },
        (_, []) if raw.check_config => Command::CheckConfig { config },
        (_, []) => Command::Run { config },
    })
}

/// Refuses an unknown command, and an option given to a command it does
/// not apply to (rather than ignoring it silently).
fn check_options_apply(raw: &RawArgs, command: &str) -> Result<(), UsageError> {
    let allowed: &[&str] = match command {
        "run" => &["--check-config"],
        "clients" => &["--detail", "--json", "--timeout"],
        "watch" => &["--timeout"],
        "status" => &["--comment", "--timeout"],
        other => {
            return Err(UsageError(format!(
                "unknown command {other:?} (expected run, clients, watch or status)"
            )))
        }
    };
    match raw
        .options_given()
        .into_iter()
        .find(|(option, given)| *given && !allowed.contains(option))
    {
        Some((option, _)) => Err(UsageError(format!("{option} does not apply to '{command}'"))),
        None => Ok(()),
    }
}

/// `--timeout`: a positive number of seconds, fractions allowed.
fn parse_timeout(text: &str) -> Result<Duration, UsageError> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= MAX_TIMEOUT_SECS => Ok(Duration::from_secs_f64(secs)),
        _ => Err(UsageError(format!(
            "--timeout {text:?}: expected a number of seconds above 0 and at most {MAX_TIMEOUT_SECS}, e.g. 3 or 0.5"
        ))),
    }
}

/// A plugin name: lower-case ASCII letters and digits, as a package folder's.
fn parse_name(name: &str) -> Result<String, UsageError> {
    if packages::is_valid_plugin_name(name) {
        Ok(name.to_owned())
    } else {
        Err(UsageError(format!(
            "NAME {name:?} is not a plugin name: lower-case letters and digits only, e.g. diskfree"
        )))
    }
}

/// One of the eight statuses, as spelt on the wire.
fn parse_event(event: &str) -> Result<Status, UsageError> {
    Status::parse(event).ok_or_else(|| {
        let all: Vec<&str> = Status::ALL.iter().map(|status| status.as_str()).collect();
        UsageError(format!(
            "EVENT {event:?} is not a status: expected one of {}",
            all.join(", ")
        ))
    })
}

/// Runs the program and returns its exit code.
pub fn main_with_args<I: IntoIterator<Item = String>>(args: I) -> i32 {
    let command = match parse_args(args) {
        Ok(command) => command,
        Err(UsageError(message)) => {
            crate::log::fatal(format_args!("{message} (try 'dmg_manager --help')"));
            return 2;
        }
    };
    // Blocked since main's first line (signals::block_early): the daemon
    // handles them in its loop; every other command gets their default
    // action back, so that Ctrl-C or a hang-up ends it at once.
    if !matches!(command, Command::Run { .. }) {
        crate::signals::unblock();
    }
    match command {
        Command::Help => {
            println!("{USAGE}");
            0
        }
        Command::Version => {
            println!("dmg_manager {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::CheckConfig { config } => with_config(&config, print_summary),
        Command::Run { config } => with_config(&config, run_daemon),
        Command::Clients { config, options } => {
            with_config(&config, |config| exit_code(tools::clients::run(config, &options)))
        }
        Command::Watch { config, options } => {
            with_config(&config, |config| exit_code(tools::watch::run(config, &options)))
        }
        Command::Status { config, options } => {
            with_config(&config, |config| exit_code(tools::status::run(config, &options)))
        }
    }
}

/// Loads the config and runs a command with it; a config that cannot be
/// used is one line on stderr and exit code 1, whatever the command.
fn with_config(path: &Path, command: impl FnOnce(&config::Config) -> i32) -> i32 {
    match config::load(path) {
        Ok(config) => command(&config),
        Err(error) => failed(format_args!("{error}{}", config_advice(path))),
    }
}

/// What to do about a config file that cannot be used, to end its line.
fn config_advice(path: &Path) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a FIFO for reading must not wait for a writer.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    match opened {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            " (run as root, or as a member of the file's group: the package's file is readable by group domogik, \
             joined with 'adduser USER domogik' and a new login)"
                .to_owned()
        }
        Err(_) => format!(
            " (give the file with --config FILE; the package installs {})",
            config::DEFAULT_PATH
        ),
        Ok(_) => format!(
            " (fix the file, check it with 'dmg_manager --config {} --check-config', then start the manager again: \
             'systemctl restart domogik-manager' for the service)",
            path.display()
        ),
    }
}

fn failed(error: impl std::fmt::Display) -> i32 {
    crate::log::fatal(format_args!("{error}"));
    1
}

fn exit_code(result: Result<(), tools::ToolError>) -> i32 {
    result.map_or_else(failed, |()| 0)
}

/// `--check-config`: the config is good; say what it amounts to.
fn print_summary(config: &config::Config) -> i32 {
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

fn run_daemon(config: &config::Config) -> i32 {
    crate::log::init(config.log_level);
    crate::info!(
        "dmg_manager {} starting with {}",
        env!("CARGO_PKG_VERSION"),
        config.path.display()
    );
    match crate::daemon::run(config) {
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

    fn config() -> PathBuf {
        PathBuf::from("/etc/domogik/manager.cfg")
    }

    #[test]
    fn run_is_the_default_command() {
        assert_eq!(parse(&["run"]), parse(&[]));
        assert_eq!(
            parse(&["run", "--check-config", "--config", "x.cfg"]),
            Ok(Command::CheckConfig { config: "x.cfg".into() })
        );
    }

    #[test]
    fn clients_with_options_before_or_after_the_command() {
        let expected = Command::Clients {
            config: "a.cfg".into(),
            options: ClientsOptions {
                detail: true,
                json: false,
                timeout: Duration::from_millis(500),
            },
        };
        assert_eq!(
            parse(&["--config", "a.cfg", "clients", "--detail", "--timeout", "0.5"]),
            Ok(expected.clone())
        );
        assert_eq!(
            parse(&["clients", "--timeout=0.5", "--detail", "--config=a.cfg"]),
            Ok(expected)
        );
        assert_eq!(
            parse(&["clients", "--json"]),
            Ok(Command::Clients {
                config: config(),
                options: ClientsOptions {
                    detail: false,
                    json: true,
                    timeout: Duration::from_secs(3)
                },
            })
        );
    }

    #[test]
    fn watch_and_status() {
        assert_eq!(
            parse(&["watch"]),
            Ok(Command::Watch {
                config: config(),
                options: WatchOptions {
                    timeout: Duration::from_secs(3)
                }
            })
        );
        assert_eq!(
            parse(&["status", "diskfree", "stop-request", "--comment", "-- bye --"]),
            Ok(Command::Status {
                config: config(),
                options: StatusOptions {
                    name: "diskfree".into(),
                    status: Status::StopRequest,
                    comment: Some("-- bye --".into()),
                    timeout: Duration::from_secs(3),
                },
            })
        );
        assert_eq!(parse(&["status", "x", "alive", "--help"]), Ok(Command::Help));
    }

    #[test]
    fn command_usage_errors_say_what_is_wrong() {
        let error = |args: &[&str]| parse(args).unwrap_err().0;
        assert_eq!(
            error(&["list"]),
            "unknown command \"list\" (expected run, clients, watch or status)"
        );
        assert_eq!(error(&["watch", "--detail"]), "--detail does not apply to 'watch'");
        assert_eq!(error(&["--json"]), "--json does not apply to 'run'");
        assert_eq!(
            error(&["clients", "--check-config"]),
            "--check-config does not apply to 'clients'"
        );
        assert_eq!(error(&["clients", "extra"]), "unexpected argument \"extra\"");
        assert_eq!(error(&["run", "extra"]), "unexpected argument \"extra\"");
        assert_eq!(
            error(&["status", "diskfree", "alive", "extra"]),
            "unexpected argument \"extra\""
        );
        assert_eq!(error(&["status", "diskfree"]), "'status' needs NAME and EVENT");
        assert!(error(&["status", "Disk_Free", "alive"]).contains("lower-case letters and digits"));
        assert!(error(&["status", "diskfree", "sleepy"]).contains("unknown, starting, alive, stop-request"));
        for bad in ["0", "-1", "soon", "NaN", "inf", "7200"] {
            assert!(error(&["clients", "--timeout", bad]).starts_with("--timeout"), "{bad}");
        }
        assert_eq!(error(&["clients", "--timeout"]), "--timeout needs a number of seconds");
        assert_eq!(error(&["clients", "--json=yes"]), "--json takes no value");
        assert_eq!(error(&["status", "a", "alive", "--comment"]), "--comment needs a text");
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
