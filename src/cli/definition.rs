//! The command line: its one definition ([`Cli`]), parsed into a
//! [`Command`], and running it with the process's exit code.

use crate::cli::{clients::ClientsOptions, start::StartOptions, status::StatusOptions, watch::WatchOptions};
use crate::core::config;
use crate::core::packages;
use crate::core::status::Status;
use crate::sys::log::Zone;
use clap::{Args, CommandFactory, FromArgMatches, Parser};
use std::path::PathBuf;
use std::time::Duration;

/// The command line, as one definition: parsing, `--help`, usage errors,
/// and (through examples/gen-docs.rs) the man page, the shell completions
/// and the README's command block all come from it.
#[derive(Debug, Parser)]
#[command(
    name = "dmg_manager",
    version,
    about = "Manager of Domogik plugin clients over ZeroMQ",
    after_help = AFTER_HELP,
    disable_help_subcommand = true,
    help_expected = true
)]
pub(super) struct Cli {
    /// Configuration file; the commands find the manager through it too
    #[arg(
        short = 'c',
        long,
        global = true,
        value_name = "FILE",
        default_value = config::DEFAULT_PATH,
        value_parser = parse_config_path,
        value_hint = clap::ValueHint::FilePath
    )]
    pub config: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(subcommand)]
    pub command: Option<Subcommand>,
}

/// Said after the options in `--help` (the man page has its own sections).
const AFTER_HELP: &str = "\
Signals: SIGHUP rescans the packages folder; SIGTERM and SIGINT stop.
Exit codes: 0 success, 1 configuration or start-up error, no answer or an
error from the manager, 2 usage error. See dmg_manager(8).";

/// The commands; without one, the manager runs.
///
/// To add one (or an option): a variant here with its `Args` struct (the
/// doc comments are its `--help`, man page and completion text), a
/// [`Command`] variant and its arm in `From<Cli>`; then `cargo run
/// --example gen-docs` rewrites the man page and the completions, and
/// tests/cli.rs prints the README's new command block if it drifted.
#[derive(Debug, clap::Subcommand)]
pub(super) enum Subcommand {
    /// Run the manager in the foreground (the default, and what the service runs)
    Run(RunArgs),
    /// Print the running manager's clients: id, type, plugin, host, status, configured, last seen, pid
    Clients(ClientsArgs),
    /// Print one line per change of the clients (status, added, removed, reloaded) until Ctrl-C
    Watch(WatchArgs),
    /// Announce, as a plugin would, that plugin NAME of this host is EVENT
    Status(StatusArgs),
    /// Ask the running manager to start plugin NAME of this host
    Start(StartArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub(super) struct RunArgs {
    /// Validate the configuration, print a summary and exit
    #[arg(long)]
    pub check_config: bool,
    /// Start and supervise Domogik's admin (as Domogik's init script asks: `-a -d -x -s -b`)
    #[arg(short = 'a')]
    pub admin: bool,
    /// Start and supervise Domogik's dbmgr (first of the core components)
    #[arg(short = 'd')]
    pub dbmgr: bool,
    /// Start and supervise Domogik's xPL gateway, xplgw
    #[arg(short = 'x')]
    pub xplgw: bool,
    /// Start and supervise Domogik's scenario manager
    #[arg(short = 's')]
    pub scenario: bool,
    /// Start and supervise Domogik's butler
    #[arg(short = 'b')]
    pub butler: bool,
}

impl RunArgs {
    /// The core components the flags name (PROTOCOL.md §10).
    fn core(&self) -> Vec<String> {
        [
            (self.dbmgr, "dbmgr"),
            (self.xplgw, "xplgw"),
            (self.admin, "admin"),
            (self.scenario, "scenario"),
            (self.butler, "butler"),
        ]
        .into_iter()
        .filter(|(wanted, _)| *wanted)
        .map(|(_, name)| name.to_owned())
        .collect()
    }

    /// These flags and `other`'s together (`-a run -d`).
    fn or(&self, other: &RunArgs) -> RunArgs {
        RunArgs {
            check_config: self.check_config || other.check_config,
            admin: self.admin || other.admin,
            dbmgr: self.dbmgr || other.dbmgr,
            xplgw: self.xplgw || other.xplgw,
            scenario: self.scenario || other.scenario,
            butler: self.butler || other.butler,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub(super) struct TimeoutArg {
    /// How long to wait for the manager, in seconds (fractions allowed)
    // The default is crate::cli::DEFAULT_TIMEOUT (a test holds them together).
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_timeout, allow_negative_numbers = true)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub(super) struct ClientsArgs {
    /// Add version, author and description (for an invalid package, what is wrong with it)
    #[arg(long)]
    pub detail: bool,
    /// Print the manager's reply body unchanged
    #[arg(long)]
    pub json: bool,
    /// Print the status history of plugin NAME instead, newest first
    #[arg(long, value_name = "NAME", value_parser = parse_name, conflicts_with = "detail")]
    pub history: Option<String>,
    /// With --history: times in UTC, not in this machine's time zone
    #[arg(long, requires = "history")]
    pub utc: bool,
    /// Show only the clients of host NAME (every manager on a bus answers for every host)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["history", "json"])]
    pub host: Option<String>,
    #[command(flatten)]
    pub timeout: TimeoutArg,
}

#[derive(Debug, Clone, Args)]
pub(super) struct WatchArgs {
    /// Times in UTC, not in this machine's time zone
    #[arg(long)]
    pub utc: bool,
    #[command(flatten)]
    pub timeout: TimeoutArg,
}

#[derive(Debug, Clone, Args)]
pub(super) struct StatusArgs {
    /// The plugin's name: lower-case letters and digits, as its folder plugin_NAME
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The status to announce
    #[arg(value_parser = event_parser())]
    pub event: Status,
    /// A comment sent with the status
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub timeout: TimeoutArg,
}

#[derive(Debug, Clone, Args)]
pub(super) struct StartArgs {
    /// The plugin's name: lower-case letters and digits, as its folder plugin_NAME
    #[arg(value_parser = parse_name)]
    pub name: String,
    #[command(flatten)]
    pub timeout: TimeoutArg,
}

/// What the user asked for, checked: the command and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    /// The daemon, with the core components to start (`-a -d -x -s -b`).
    Run { config: PathBuf, core: Vec<String> },
    CheckConfig { config: PathBuf },
    Clients { config: PathBuf, options: ClientsOptions },
    Watch { config: PathBuf, options: WatchOptions },
    Status { config: PathBuf, options: StatusOptions },
    Start { config: PathBuf, options: StartOptions },
}

impl From<Cli> for Command {
    fn from(cli: Cli) -> Command {
        let config = cli.config;
        match cli.command {
            None => Command::from_run(config, &cli.run),
            // `--check-config run` as `run --check-config`.
            Some(Subcommand::Run(run)) => Command::from_run(config, &run.or(&cli.run)),
            Some(Subcommand::Clients(args)) => Command::Clients {
                config,
                options: ClientsOptions {
                    detail: args.detail,
                    json: args.json,
                    history: args.history,
                    zone: zone(args.utc),
                    host: args.host,
                    timeout: args.timeout.timeout,
                },
            },
            Some(Subcommand::Watch(args)) => Command::Watch {
                config,
                options: WatchOptions {
                    timeout: args.timeout.timeout,
                    zone: zone(args.utc),
                },
            },
            Some(Subcommand::Status(args)) => Command::Status {
                config,
                options: StatusOptions {
                    name: args.name,
                    status: args.event,
                    comment: args.comment,
                    timeout: args.timeout.timeout,
                },
            },
            Some(Subcommand::Start(args)) => Command::Start {
                config,
                options: StartOptions {
                    name: args.name,
                    timeout: args.timeout.timeout,
                },
            },
        }
    }
}

/// `--utc` or not.
fn zone(utc: bool) -> Zone {
    if utc {
        Zone::Utc
    } else {
        Zone::Local
    }
}

impl Command {
    fn from_run(config: PathBuf, run: &RunArgs) -> Command {
        if run.check_config {
            Command::CheckConfig { config }
        } else {
            Command::Run {
                config,
                core: run.core(),
            }
        }
    }
}

/// The longest `--timeout` accepted, in seconds.
const MAX_TIMEOUT_SECS: f64 = 3600.0;

/// The definition as clap builds it, with the usage lines of [`synopsis`]
/// in `--help`. Public for examples/gen-docs.rs and the tests.
pub fn definition() -> clap::Command {
    let command = Cli::command();
    let lines = synopsis(&command);
    let usage = lines
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                line.to_owned()
            } else {
                format!("       {line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    command.override_usage(usage)
}

/// One usage line per command, built from the definition: the README's
/// command block and the man page's SYNOPSIS are this text.
///
/// ```text
/// dmg_manager [-c FILE] [run] [--check-config] [-a] [-d] [-x] [-s] [-b]
/// dmg_manager [-c FILE] clients [--detail] [--json] [--history NAME] [--utc] [--host NAME] [--timeout SECS]
/// ```
pub fn synopsis(command: &clap::Command) -> String {
    let name = command.get_name();
    let globals: Vec<String> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .map(|arg| format!("[{}]", arg_usage(arg)))
        .collect();
    let globals = globals.join(" ");
    let mut lines = vec![format!("{name} {globals} [run]{}", args_usage(command))];
    for sub in command.get_subcommands().filter(|sub| sub.get_name() != "run") {
        lines.push(format!("{name} {globals} {}{}", sub.get_name(), args_usage(sub)));
    }
    lines.push(format!("{name} --version | --help"));
    lines.join("\n")
}

/// A command's own arguments (not the global ones, help or version), each
/// as `[--flag]`, `[--option VALUE]` or `POSITIONAL`, positionals first.
fn args_usage(command: &clap::Command) -> String {
    let own = |arg: &&clap::Arg| {
        !arg.is_global_set() && !arg.is_hide_set() && !matches!(arg.get_id().as_str(), "help" | "version")
    };
    let positionals = command.get_positionals().filter(own).map(arg_usage);
    let options = command
        .get_arguments()
        .filter(|arg| !arg.is_positional())
        .filter(own)
        .map(|arg| format!("[{}]", arg_usage(arg)));
    positionals.chain(options).map(|usage| format!(" {usage}")).collect()
}

/// `--timeout SECS`, `-c FILE`, `--json`, `NAME`: short form when there is one.
fn arg_usage(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map_or_else(|| arg.get_id().as_str().to_ascii_uppercase(), ToString::to_string);
    if arg.is_positional() {
        return value;
    }
    let flag = match (arg.get_short(), arg.get_long()) {
        (Some(short), _) => format!("-{short}"),
        (None, Some(long)) => format!("--{long}"),
        (None, None) => value.clone(),
    };
    if arg.get_action().takes_values() {
        format!("{flag} {value}")
    } else {
        flag
    }
}

/// Parses the arguments after the program name. `--help` and `--version`
/// come back as the errors clap makes of them (printed to stdout, exit 0).
pub(crate) fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, clap::Error> {
    let name = std::iter::once(String::from("dmg_manager"));
    let mut definition = definition();
    let matches = definition.try_get_matches_from_mut(name.chain(args))?;
    let cli = Cli::from_arg_matches(&matches)?;
    if cli.run.check_config && !matches!(cli.command, None | Some(Subcommand::Run(_))) {
        let message = "--check-config applies to 'run' only, not to another command";
        return Err(clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, message).with_cmd(&definition));
    }
    Ok(cli.into())
}

/// A clap error as one line, without the usage block or colours: its
/// first paragraph (the message, and what it lists: the missing arguments,
/// the possible values), lines joined.
pub(crate) fn one_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let paragraph: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    let line = paragraph.join(" ");
    match line.strip_prefix("error: ") {
        Some(message) => message.to_owned(),
        None => line,
    }
}

/// `--config`: a file name, not empty.
fn parse_config_path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        Err("expected a file name".into())
    } else {
        Ok(PathBuf::from(text))
    }
}

/// `--timeout`: a positive number of seconds, fractions allowed.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= MAX_TIMEOUT_SECS => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "expected a number of seconds above 0 and at most {MAX_TIMEOUT_SECS}, e.g. 3 or 0.5"
        )),
    }
}

/// A plugin name: lower-case ASCII letters and digits, as a package folder's.
fn parse_name(name: &str) -> Result<String, String> {
    if packages::is_valid_plugin_name(name) {
        Ok(name.to_owned())
    } else {
        Err("not a plugin name: lower-case letters and digits only, e.g. diskfree".into())
    }
}

/// One of the eight statuses, as spelt on the wire (and so completed by
/// the shells).
fn event_parser() -> impl clap::builder::TypedValueParser<Value = Status> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Status::ALL.map(Status::as_str))
        .try_map(|event| Status::parse(&event).ok_or("not a status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        parse_args(args.iter().map(|arg| arg.to_string()))
    }

    fn config() -> PathBuf {
        PathBuf::from("/etc/domogik/manager.cfg")
    }

    /// The one line a usage error prints.
    fn error(args: &[&str]) -> String {
        let error = parse(args).unwrap_err();
        assert!(error.use_stderr(), "{args:?}: {error}");
        one_line(&error)
    }

    #[test]
    fn the_definition_is_consistent() {
        definition().debug_assert();
    }

    #[test]
    fn defaults_to_running_with_the_system_config() {
        assert_eq!(
            parse(&[]).unwrap(),
            Command::Run {
                config: config(),
                core: Vec::new()
            }
        );
        // As Domogik's init script starts its manager (MANAGER_PARAMS).
        for args in [&["-a", "-d", "-x", "-s", "-b"][..], &["run", "-adxsb"], &["-b", "-s", "run", "-x", "-d", "-a"]] {
            assert_eq!(
                parse(args).unwrap(),
                Command::Run {
                    config: config(),
                    core: ["dbmgr", "xplgw", "admin", "scenario", "butler"].map(String::from).to_vec()
                },
                "{args:?}"
            );
        }
    }

    #[test]
    fn options() {
        assert_eq!(
            parse(&["--config", "a.cfg"]).unwrap(),
            Command::Run {
                config: "a.cfg".into(),
                core: Vec::new()
            }
        );
        assert_eq!(
            parse(&["-c", "a.cfg"]).unwrap(),
            Command::Run {
                config: "a.cfg".into(),
                core: Vec::new()
            }
        );
        assert_eq!(
            parse(&["--config=b.cfg", "--check-config"]).unwrap(),
            Command::CheckConfig { config: "b.cfg".into() }
        );
        for (args, kind) in [
            (&["--version"][..], clap::error::ErrorKind::DisplayVersion),
            (&["-V"], clap::error::ErrorKind::DisplayVersion),
            (&["--check-config", "-h"], clap::error::ErrorKind::DisplayHelp),
            (&["status", "x", "alive", "--help"], clap::error::ErrorKind::DisplayHelp),
        ] {
            let error = parse(args).unwrap_err();
            assert_eq!(error.kind(), kind, "{args:?}");
            assert!(!error.use_stderr(), "{args:?}: on stdout, exit 0");
        }
    }

    #[test]
    fn run_is_the_default_command() {
        assert_eq!(parse(&["run"]).unwrap(), parse(&[]).unwrap());
        assert_eq!(
            parse(&["run", "--check-config", "--config", "x.cfg"]).unwrap(),
            Command::CheckConfig { config: "x.cfg".into() }
        );
    }

    #[test]
    fn clients_with_options_before_or_after_the_command() {
        let expected = Command::Clients {
            config: "a.cfg".into(),
            options: ClientsOptions {
                detail: true,
                json: false,
                history: None,
                zone: Zone::Local,
                host: None,
                timeout: Duration::from_millis(500),
            },
        };
        assert_eq!(
            parse(&["--config", "a.cfg", "clients", "--detail", "--timeout", "0.5"]).unwrap(),
            expected.clone()
        );
        assert_eq!(
            parse(&["clients", "--timeout=0.5", "--detail", "--config=a.cfg"]).unwrap(),
            expected
        );
        assert_eq!(
            parse(&["clients", "--json"]).unwrap(),
            Command::Clients {
                config: config(),
                options: ClientsOptions {
                    detail: false,
                    json: true,
                    history: None,
                    zone: Zone::Local,
                    host: None,
                    timeout: Duration::from_secs(3)
                },
            }
        );
    }

    #[test]
    fn watch_and_status() {
        assert_eq!(
            parse(&["watch"]).unwrap(),
            Command::Watch {
                config: config(),
                options: WatchOptions {
                    timeout: crate::cli::DEFAULT_TIMEOUT,
                    zone: Zone::Local,
                }
            }
        );
        assert_eq!(
            parse(&["watch", "--utc"]).unwrap(),
            Command::Watch {
                config: config(),
                options: WatchOptions {
                    timeout: crate::cli::DEFAULT_TIMEOUT,
                    zone: Zone::Utc,
                }
            }
        );
        match parse(&["clients", "--history", "diskfree", "--utc"]).unwrap() {
            Command::Clients { options, .. } => assert_eq!(options.zone, Zone::Utc),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["clients", "--utc"]).is_err(), "--utc is for --history");
        assert_eq!(
            parse(&["status", "diskfree", "stop-request", "--comment", "-- bye --"]).unwrap(),
            Command::Status {
                config: config(),
                options: StatusOptions {
                    name: "diskfree".into(),
                    status: Status::StopRequest,
                    comment: Some("-- bye --".into()),
                    timeout: Duration::from_secs(3),
                },
            }
        );
        assert_eq!(
            parse(&["start", "diskfree", "--timeout", "5"]).unwrap(),
            Command::Start {
                config: config(),
                options: StartOptions {
                    name: "diskfree".into(),
                    timeout: Duration::from_secs(5),
                },
            }
        );
        assert!(error(&["start"]).contains("<NAME>"));
        assert!(error(&["start", "Disk_Free"]).contains("lower-case letters and digits"));
    }

    #[test]
    fn command_usage_errors_say_what_is_wrong() {
        assert!(error(&["list"]).contains("'list'"), "{}", error(&["list"]));
        assert!(error(&["watch", "--detail"]).contains("'--detail'"));
        assert!(error(&["--json"]).contains("'--json'"));
        assert!(error(&["clients", "--check-config"]).contains("'--check-config'"));
        assert!(error(&["--check-config", "clients"]).contains("applies to 'run' only"));
        assert_eq!(
            parse(&["--check-config", "run"]).unwrap(),
            Command::CheckConfig { config: config() }
        );
        assert!(error(&["clients", "extra"]).contains("'extra'"));
        assert!(error(&["run", "extra"]).contains("'extra'"));
        assert!(error(&["status", "diskfree", "alive", "extra"]).contains("'extra'"));
        let missing = error(&["status", "diskfree"]);
        assert!(missing.contains("<EVENT>"), "{missing}");
        assert!(error(&["status", "Disk_Free", "alive"]).contains("lower-case letters and digits"));
        let event = error(&["status", "diskfree", "sleepy"]);
        assert!(
            event.contains("'sleepy'") && event.contains("unknown, starting, alive, stop-request"),
            "{event}"
        );
        for bad in ["0", "-1", "soon", "NaN", "inf", "7200"] {
            let message = error(&["clients", "--timeout", bad]);
            assert!(
                message.contains("--timeout") && message.contains("at most 3600"),
                "{bad}: {message}"
            );
        }
        assert!(error(&["clients", "--timeout"]).contains("--timeout <SECS>"));
        assert!(error(&["clients", "--json=yes"]).contains("--json"));
        assert!(error(&["status", "a", "alive", "--comment"]).contains("--comment <TEXT>"));
    }

    #[test]
    fn usage_errors() {
        assert!(error(&["--config"]).contains("--config"));
        assert!(error(&["--config="]).contains("expected a file name"));
        assert_eq!(error(&["--verbose"]), "unexpected argument '--verbose' found");
        for args in [&["--bogus"][..], &["status", "x"], &["clients", "--timeout", "0"]] {
            assert!(!error(args).contains('\n'), "{args:?}");
        }
    }

    #[test]
    fn synopsis_has_one_line_per_command() {
        assert_eq!(
            synopsis(&definition()),
            "dmg_manager [-c FILE] [run] [--check-config] [-a] [-d] [-x] [-s] [-b]\n\
             dmg_manager [-c FILE] clients [--detail] [--json] [--history NAME] [--utc] [--host NAME] [--timeout SECS]\n\
             dmg_manager [-c FILE] watch [--utc] [--timeout SECS]\n\
             dmg_manager [-c FILE] status NAME EVENT [--comment TEXT] [--timeout SECS]\n\
             dmg_manager [-c FILE] start NAME [--timeout SECS]\n\
             dmg_manager --version | --help"
        );
    }
}
