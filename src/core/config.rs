//! The configuration file (PROTOCOL.md §5): INI text in, a validated
//! [`Config`] out, or one [`ConfigError`] line naming the file, the key and
//! what was expected.
//!
//! [`parse`] is pure (text, path and the machine's hostname and address
//! in); `disk::load_config` reads the file and the machine.

pub use crate::core::expected::Expected;
use crate::core::log_policy::Level;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) const DEFAULT_PATH: &str = "/etc/domogik/manager.cfg";
pub(crate) const DEFAULT_PACKAGES_DIR: &str = "/var/lib/domogik/domogik_packages";
/// Where Domogik 0.5 keeps its data types: its resources folder, under
/// its libraries path (`/var/lib/domogik`, which also holds the packages).
pub(crate) const DEFAULT_DATATYPES_FILE: &str = "/var/lib/domogik/resources/datatypes.json";
/// Domogik refuses longer host names; so do we.
pub const MAX_HOST_LEN: usize = 16;
const MAX_RESCAN_INTERVAL: u64 = 24 * 60 * 60;
/// A config file is a few hundred bytes; refuse to read a huge one.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Whether a socket binds its endpoint or connects to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Bind,
    Connect,
}

/// A ZeroMQ endpoint with its direction: `@tcp://...` binds, `>tcp://...` connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub direction: Direction,
    /// The address as libzmq takes it, e.g. `tcp://127.0.0.1:40410`.
    pub address: String,
}

impl Endpoint {
    #[cfg(test)]
    pub(crate) fn bind(address: impl Into<String>) -> Endpoint {
        Endpoint {
            direction: Direction::Bind,
            address: address.into(),
        }
    }

    pub(crate) fn connect(address: impl Into<String>) -> Endpoint {
        Endpoint {
            direction: Direction::Connect,
            address: address.into(),
        }
    }

    /// Parses the CZMQ-style `@address` / `>address` notation.
    pub fn parse(text: &str) -> Result<Endpoint, Expected> {
        const EXPECTED: &str = "'@' (bind) or '>' (connect) then tcp://HOST:PORT or ipc://PATH";
        let (direction, address) = match (text.strip_prefix('@'), text.strip_prefix('>')) {
            (Some(address), _) => (Direction::Bind, address),
            (_, Some(address)) => (Direction::Connect, address),
            _ => return Err(format!("expected {EXPECTED}").into()),
        };
        if let Some(rest) = address.strip_prefix("tcp://") {
            let valid_port = |port: &str| port.parse::<u16>().map(|p| p > 0).unwrap_or(false);
            match rest.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && (valid_port(port) || (port == "*" && direction == Direction::Bind)) => {}
                _ => {
                    return Err(
                        format!("expected {EXPECTED} (a port from 1 to 65535, or * to bind any free port)").into(),
                    )
                }
            }
        } else if let Some(path) = address.strip_prefix("ipc://") {
            if path.is_empty() {
                return Err(format!("expected {EXPECTED}: the ipc path is empty").into());
            }
        } else {
            return Err(format!("expected {EXPECTED}").into());
        }
        Ok(Endpoint {
            direction,
            address: address.to_owned(),
        })
    }

    /// True for a TCP endpoint bound on every interface.
    pub(crate) fn binds_every_interface(&self) -> bool {
        self.direction == Direction::Bind
            && ["tcp://*:", "tcp://0.0.0.0:", "tcp://[::]:"]
                .iter()
                .any(|prefix| self.address.starts_with(prefix))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.direction {
            Direction::Bind => '@',
            Direction::Connect => '>',
        };
        write!(f, "{sign}{}", self.address)
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub host: String,
    pub packages_dir: PathBuf,
    pub rescan_interval: Duration,
    pub service: String,
    pub(crate) log_level: Level,
    pub sub_endpoint: Endpoint,
    pub pub_endpoint: Endpoint,
    /// `rep_endpoint = @X` answers requests on a bound socket (standalone
    /// layout); `>X` is the MDP worker connected to Domogik's broker at X.
    pub rep_endpoint: Endpoint,
    /// How plugins are run and watched (PROTOCOL.md §9).
    pub(crate) plugins: PluginsConfig,
    /// The address `[mq] ip = *` was resolved to for connecting sockets
    /// (for the log), `None` when ip is not `*`.
    pub star_ip: Option<String>,
    /// Domogik 0.5's dead rule and status interval (src/core/liveness.rs).
    pub dead_after: Duration,
    pub status_interval: Duration,
    /// How long a `config.get` to dbmgr may take before it is asked again.
    pub dbmgr_timeout: Duration,
    /// Domogik's `datatypes.json` (`datatype.get`).
    pub datatypes_file: PathBuf,
    /// The `[xpl]` section (docs/PROTOCOL.md §11).
    pub xpl: XplConfig,
    /// The other hosts held on a bus (PROTOCOL.md §13): `max_hosts`,
    /// `max_host_clients`, `forget_host_after`; silent after `dead_after`.
    pub hosts: crate::core::hosts::Limits,
}

/// The keys about plugin processes: `python`, `pythonpath`, `kill_delay`, `restart`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PluginsConfig {
    /// The interpreter plugins are run with (default `/usr/bin/python`).
    pub(crate) python: PathBuf,
    /// `PYTHONPATH` given to the plugins (Domogik's libraries); `None`: unset.
    pub(crate) pythonpath: Option<PathBuf>,
    pub(crate) policy: crate::core::children::Policy,
    /// More arguments after `-f` for hosts whose plugins want them
    /// (`plugin_args`, split on spaces; none by default: 0.5.2's refuse any).
    pub(crate) extra_args: Vec<String>,
    /// The core components to start and supervise (`core`, plus the `run`
    /// flags `-a -d -x -s -b`), dbmgr first, then in 0.5.2's order.
    pub(crate) core: Vec<String>,
    /// Domogik's bin dir, where `<name>.py` of each core component is
    /// (`core_bin_dir`); `None`: asked of the interpreter at start.
    pub(crate) core_bin_dir: Option<PathBuf>,
}

/// The core components Domogik 0.5.2's manager starts, in its order (dbmgr
/// first: the others ask it their configuration).
pub(crate) const CORE_COMPONENTS: [&str; 5] = ["dbmgr", "xplgw", "admin", "scenario", "butler"];

impl PluginsConfig {
    /// Adds core components (the `run` flags), keeping 0.5.2's order.
    pub(crate) fn add_core(&mut self, names: &[&str]) {
        let mut all: Vec<&str> = self.core.iter().map(String::as_str).chain(names.iter().copied()).collect();
        all.sort_by_key(|name| CORE_COMPONENTS.iter().position(|known| known == name));
        all.dedup();
        self.core = all.into_iter().map(str::to_owned).collect();
    }
}

pub(crate) const DEFAULT_PYTHON: &str = "/usr/bin/python";
const MAX_KILL_DELAY: u64 = 3600;

/// A configuration that cannot be used, with the file it came from;
/// displayed as one line, `FILE: PROBLEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problem: ConfigProblem,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// What is wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    /// The file could not be read (the system's reason).
    Unreadable(String),
    TooLarge,
    NotUtf8,
    /// Not INI text: the line (from 1) and the parser's reason.
    NotIni {
        line: usize,
        reason: String,
    },
    KeyOutsideSection(String),
    UnknownSection(String),
    UnknownKey {
        key: String,
        section: String,
        known: &'static [&'static str],
    },
    DuplicateKey {
        key: String,
        section: String,
    },
    /// `[section] key = "value"`, and what was expected instead.
    BadValue {
        section: String,
        key: String,
        value: String,
        expected: Expected,
    },
    /// The host part of client ids cannot be used: where it came from
    /// (`[manager] host` or the hostname), the value (`None`: empty), and why.
    BadHost {
        origin: &'static str,
        host: Option<String>,
        why: &'static str,
    },
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::Unreadable(why) => write!(f, "cannot read the config file: {why}"),
            ConfigProblem::TooLarge => write!(f, "the config file is larger than {MAX_CONFIG_BYTES} bytes"),
            ConfigProblem::NotUtf8 => f.write_str("the config file is not UTF-8 text"),
            ConfigProblem::NotIni { line, reason } => {
                write!(
                    f,
                    "line {line}: {reason} (expected INI: [section] then key = value lines)"
                )
            }
            ConfigProblem::KeyOutsideSection(key) => {
                write!(f, "key {key:?} is outside any section: put it under [mq] or [manager]")
            }
            ConfigProblem::UnknownSection(section) => {
                write!(f, "unknown section [{section}]: expected [mq], [manager] and [xpl]")
            }
            ConfigProblem::UnknownKey { key, section, known } => {
                write!(
                    f,
                    "unknown key {key:?} in [{section}]: expected one of {}",
                    known.join(", ")
                )
            }
            ConfigProblem::DuplicateKey { key, section } => write!(f, "key {key:?} appears twice in [{section}]"),
            ConfigProblem::BadValue {
                section,
                key,
                value,
                expected,
            } => write!(f, "[{section}] {key} = {value:?}: {expected}"),
            ConfigProblem::BadHost { origin, host, why } => {
                let how = "set [manager] host to a name of 1 to 16 letters, digits or '-'";
                match host {
                    None => write!(f, "{origin} is empty: {how}"),
                    Some(host) => write!(f, "{origin} {host:?} {why}: {how}"),
                }
            }
        }
    }
}


impl std::error::Error for ConfigError {}

/// What the config's defaults depend on, read from the machine by
/// `disk::load_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Machine {
    pub hostname: String,
    /// The first non-loopback IPv4 address, for `[mq] ip = *` on sockets
    /// that connect; `None` when there is none (then 127.0.0.1).
    pub ipv4: Option<std::net::Ipv4Addr>,
}

/// Domogik's MQ resolves `ip = *` to the host's first IPv4 address that
/// is not a loopback one: `addresses` are `(address, on a loopback
/// interface)` in the interfaces' order.
pub(crate) fn first_non_loopback_ipv4(addresses: &[(std::net::Ipv4Addr, bool)]) -> Option<std::net::Ipv4Addr> {
    addresses
        .iter()
        .find(|(address, loopback)| !loopback && !address.is_loopback())
        .map(|(address, _)| *address)
}

/// Domogik's host name from the machine's: the first label, lower-cased,
/// every `-` removed, cut to [`MAX_HOST_LEN`] characters (`domo-box.lan`
/// is `domobox` to every plugin).
pub(crate) fn sanitize_hostname(hostname: &str) -> String {
    hostname
        .split('.')
        .next()
        .unwrap_or("")
        .trim()
        .to_lowercase()
        .chars()
        .filter(|&c| c != '-')
        .take(MAX_HOST_LEN)
        .collect()
}

const MQ_KEYS: [&str; 4] = ["ip", "req_rep_port", "pub_port", "sub_port"];
/// Keys of Domogik's other components that may sit in a copied domogik-mq.cfg.
const MQ_FOREIGN_KEYS: [&str; 4] = ["is_master", "log_dir_path", "pid_dir_path", "log_level"];
/// The `[xpl]` keys (docs/PROTOCOL.md §11).
const XPL_KEYS: [&str; 4] = ["enabled", "bind_interface", "broadcast", "max_clients"];
const MANAGER_KEYS: [&str; 22] = [
    "max_hosts",
    "max_host_clients",
    "forget_host_after",
    "dead_after",
    "dbmgr_timeout",
    "status_interval",
    "datatypes_file",
    "host",
    "packages_dir",
    "rescan_interval",
    "service",
    "log_level",
    "sub_endpoint",
    "pub_endpoint",
    "rep_endpoint",
    "python",
    "pythonpath",
    "kill_delay",
    "restart",
    "plugin_args",
    "core",
    "core_bin_dir",
];

/// Parses and validates config text. `path` is used in messages and to
/// resolve a relative `packages_dir`; `hostname` is the machine's name.
pub fn parse(text: &str, path: &Path, hostname: &str) -> Result<Config, ConfigError> {
    let machine = Machine {
        hostname: hostname.to_owned(),
        ipv4: None,
    };
    parse_on(text, path, &machine)
}

/// [`parse`] with every fact about the machine given.
pub(crate) fn parse_on(text: &str, path: &Path, machine: &Machine) -> Result<Config, ConfigError> {
    validate(text, path, machine).map_err(|problem| ConfigError {
        path: path.to_owned(),
        problem,
    })
}

fn validate(text: &str, path: &Path, machine: &Machine) -> Result<Config, ConfigProblem> {
    let hostname = machine.hostname.as_str();
    let sections = read_sections(text)?;
    let ip = sections.get("mq", "ip", "127.0.0.1".to_owned(), read_ip)?;
    let port = |key: &str, default: u16| sections.get("mq", key, default, read_port);
    let req_rep_port = port("req_rep_port", 40410)?;
    let pub_port = port("pub_port", 40411)?;
    let sub_port = port("sub_port", 40412)?;
    // '*' binds every interface; a connection goes where Domogik's MQ
    // sends it, the first non-loopback IPv4 address. An IPv6 address is
    // written without brackets in [mq] ip (Domogik's format).
    let star_ip = machine.ipv4.map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string());
    let ip = if ip.contains(':') && !ip.starts_with('[') {
        format!("[{ip}]")
    } else {
        ip
    };
    let connect_ip = if ip == "*" { star_ip.as_str() } else { ip.as_str() };
    let endpoint = |key: &str, default: Endpoint| sections.get("manager", key, default, Endpoint::parse);
    let sub_endpoint = endpoint(
        "sub_endpoint",
        Endpoint::connect(format!("tcp://{connect_ip}:{sub_port}")),
    )?;
    let pub_endpoint = endpoint(
        "pub_endpoint",
        Endpoint::connect(format!("tcp://{connect_ip}:{pub_port}")),
    )?;
    // The MDP broker's port: the manager is a worker there (PROTOCOL.md §7).
    let rep_endpoint = endpoint(
        "rep_endpoint",
        Endpoint::connect(format!("tcp://{connect_ip}:{req_rep_port}")),
    )?;

    let host = resolve_host(sections.value("manager", "host"), hostname)?;
    let packages_dir = {
        let dir = Path::new(
            sections
                .value("manager", "packages_dir")
                .unwrap_or(DEFAULT_PACKAGES_DIR),
        );
        // Relative to the config file, so a config can travel with its tree.
        match path.parent() {
            Some(base) if dir.is_relative() => base.join(dir),
            _ => dir.to_owned(),
        }
    };
    let rescan_interval = sections.get("manager", "rescan_interval", Duration::from_secs(30), read_seconds)?;
    let service = sections.get("manager", "service", "manager".to_owned(), read_service)?;
    let log_level = sections.get("manager", "log_level", Level::Info, read_level)?;
    let plugins = PluginsConfig {
        python: PathBuf::from(sections.value("manager", "python").unwrap_or(DEFAULT_PYTHON)),
        pythonpath: sections.value("manager", "pythonpath").map(PathBuf::from),
        policy: crate::core::children::Policy {
            kill_delay: sections.get(
                "manager",
                "kill_delay",
                crate::core::children::DEFAULT_KILL_DELAY,
                read_kill_delay,
            )?,
            restart: sections.get(
                "manager",
                "restart",
                crate::core::children::RestartSet::Nobody,
                read_restart,
            )?,
        },
        extra_args: sections
            .value("manager", "plugin_args")
            .map(|args| args.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        core: Vec::new(),
        core_bin_dir: sections.value("manager", "core_bin_dir").map(PathBuf::from),
    };
    let mut plugins = plugins;
    let core = sections.get("manager", "core", Vec::new(), read_core)?;
    plugins.add_core(&core.iter().map(String::as_str).collect::<Vec<_>>());
    let dead_after = sections.get(
        "manager",
        "dead_after",
        crate::core::liveness::DEFAULT_DEAD_AFTER,
        read_delay,
    )?;
    let dbmgr_timeout = sections.get("manager", "dbmgr_timeout", Duration::from_secs(5), read_delay)?;
    let status_interval = sections.get(
        "manager",
        "status_interval",
        crate::core::liveness::DEFAULT_STATUS_INTERVAL,
        read_delay,
    )?;
    let datatypes_file = PathBuf::from(
        sections
            .value("manager", "datatypes_file")
            .unwrap_or(DEFAULT_DATATYPES_FILE),
    );
    let defaults = crate::core::hosts::Limits::default();
    let hosts = crate::core::hosts::Limits {
        max_hosts: sections.get("manager", "max_hosts", defaults.max_hosts, |text| {
            read_count(text, 1024)
        })?,
        max_clients: sections.get("manager", "max_host_clients", defaults.max_clients, |text| {
            read_count(text, 100_000)
        })?,
        silent_after: dead_after,
        forget_after: sections.get("manager", "forget_host_after", defaults.forget_after, read_delay)?,
    };
    let enabled = sections.get("xpl", "enabled", Enabled::Auto, read_enabled)?;
    let xpl = XplConfig {
        enabled: enabled.resolve(rep_endpoint.direction == Direction::Connect),
        bind_interface: sections.get("xpl", "bind_interface", "lo".to_owned(), read_bind_interface)?,
        broadcast: sections.get("xpl", "broadcast", None, |text| read_broadcast(text).map(Some))?,
        max_clients: sections.get(
            "xpl",
            "max_clients",
            crate::core::xpl::devices::DEFAULT_MAX_DEVICES,
            read_max_clients,
        )?,
    };
    Ok(Config {
        hosts,
        xpl,
        dead_after,
        dbmgr_timeout,
        status_interval,
        datatypes_file,
        path: path.to_owned(),
        host,
        packages_dir,
        rescan_interval,
        service,
        log_level,
        sub_endpoint,
        pub_endpoint,
        rep_endpoint,
        plugins,
        star_ip: (ip == "*").then_some(star_ip),
    })
}

/// Core component names separated by spaces or commas, each one of 0.5.2's.
fn read_core(text: &str) -> Result<Vec<String>, Expected> {
    let names: Vec<String> = text
        .split([',', ' '])
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    match names.iter().find(|name| !CORE_COMPONENTS.contains(&name.as_str())) {
        Some(bad) => Err(format!(
            "{:?} is not a core component: expected names among {}",
            crate::core::wire::truncate(bad, 40),
            CORE_COMPONENTS.join(" ")
        )
        .into()),
        None => Ok(names),
    }
}

fn read_kill_delay(text: &str) -> Result<Duration, Expected> {
    match text.parse::<u64>() {
        Ok(secs) if (1..=MAX_KILL_DELAY).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(format!("expected a whole number of seconds from 1 to {MAX_KILL_DELAY}").into()),
    }
}

/// `*` (every plugin) or plugin names separated by spaces or commas.
fn read_restart(text: &str) -> Result<crate::core::children::RestartSet, Expected> {
    use crate::core::children::RestartSet;
    if text == "*" {
        return Ok(RestartSet::Everyone);
    }
    let names: std::collections::BTreeSet<String> = text
        .split([',', ' '])
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    match names
        .iter()
        .find(|name| !crate::core::packages::is_valid_plugin_name(name))
    {
        Some(bad) => {
            Err(format!("{bad:?} is not a plugin name: expected * or names in lower-case letters and digits").into())
        }
        None => Ok(RestartSet::Only(names)),
    }
}

fn read_ip(ip: &str) -> Result<String, Expected> {
    if ip.contains(['/', ' ']) {
        Err("expected an IP address, a host name or *".into())
    } else {
        Ok(ip.to_owned())
    }
}

fn read_port(text: &str) -> Result<u16, Expected> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err("expected a port number from 1 to 65535".into()),
    }
}

fn read_seconds(text: &str) -> Result<Duration, Expected> {
    match text.parse::<u64>() {
        Ok(secs) if (1..=MAX_RESCAN_INTERVAL).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(format!("expected a whole number of seconds from 1 to {MAX_RESCAN_INTERVAL}").into()),
    }
}

/// A whole number from 1 to `max`.
fn read_count(text: &str, max: usize) -> Result<usize, Expected> {
    match text.parse::<usize>() {
        Ok(count) if (1..=max).contains(&count) => Ok(count),
        _ => Err(format!("expected a whole number from 1 to {max}").into()),
    }
}

/// Seconds, fractions allowed (tests use 0.5 s), from 0.05 to a day.
fn read_delay(text: &str) -> Result<Duration, Expected> {
    match text.parse::<f64>() {
        Ok(secs) if (0.05..=86_400.0).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err("expected a number of seconds from 0.05 to 86400".into()),
    }
}

fn read_service(name: &str) -> Result<String, Expected> {
    if name.chars().all(|c| c.is_ascii_graphic()) {
        Ok(name.to_owned())
    } else {
        Err("expected a name without spaces".into())
    }
}

fn read_level(text: &str) -> Result<Level, Expected> {
    Level::parse(text).ok_or_else(|| "expected error, warn, info, debug or trace".into())
}

fn resolve_host(configured: Option<&str>, hostname: &str) -> Result<String, ConfigProblem> {
    let (host, origin) = match configured {
        Some(host) => (host.to_lowercase(), "[manager] host"),
        None => (sanitize_hostname(hostname), "this machine's hostname"),
    };
    let why = if host.is_empty() {
        return Err(ConfigProblem::BadHost {
            origin,
            host: None,
            why: "is empty",
        });
    } else if host.chars().count() > MAX_HOST_LEN {
        "is longer than 16 characters (Domogik refuses it)"
    } else if !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        "has characters other than letters, digits and '-'"
    } else {
        return Ok(host);
    };
    Err(ConfigProblem::BadHost {
        origin,
        host: Some(host),
        why,
    })
}

/// The `[mq]` and `[manager]` sections, with empty values taken as absent.
struct Sections {
    entries: Vec<(String, String, String)>,
}

impl Sections {
    fn value(&self, section: &str, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(s, k, _)| s == section && k == key)
            .map(|(_, _, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// `[section] key` read by `read`, or `default` if absent. An error is
    /// one line naming the key and quoting the value: `[mq] pub_port =
    /// "70000": expected ...`.
    fn get<T>(
        &self,
        section: &str,
        key: &str,
        default: T,
        read: impl FnOnce(&str) -> Result<T, Expected>,
    ) -> Result<T, ConfigProblem> {
        match self.value(section, key) {
            None => Ok(default),
            Some(text) => read(text).map_err(|expected| ConfigProblem::BadValue {
                section: section.to_owned(),
                key: key.to_owned(),
                value: text.to_owned(),
                expected,
            }),
        }
    }
}

/// INI text to `(section, key, value)` triples, refusing what Python's
/// configparser refuses (keys outside a section, duplicates) and what we
/// do not know (a typo must not be silently ignored).
fn read_sections(text: &str) -> Result<Sections, ConfigProblem> {
    let options = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        ..Default::default()
    };
    let ini = ini::Ini::load_from_str_opt(text, options).map_err(|e| ConfigProblem::NotIni {
        line: e.line + 1,
        reason: e.msg.to_string(),
    })?;
    let mut entries = Vec::new();
    for (section, properties) in ini.iter() {
        let Some(section) = section else {
            if let Some((key, _)) = properties.iter().next() {
                return Err(ConfigProblem::KeyOutsideSection(key.to_owned()));
            }
            continue;
        };
        let known: &[&str] = match section {
            "mq" => &MQ_KEYS,
            "manager" => &MANAGER_KEYS,
            "xpl" => &XPL_KEYS,
            other => return Err(ConfigProblem::UnknownSection(crate::core::wire::truncate(other, 40))),
        };
        for (key, value) in properties.iter() {
            // configparser folds key case; so do we.
            let key = key.trim().to_lowercase();
            if section == "mq" && MQ_FOREIGN_KEYS.contains(&key.as_str()) {
                continue;
            }
            if !known.contains(&key.as_str()) {
                return Err(ConfigProblem::UnknownKey {
                    key,
                    section: section.to_owned(),
                    known,
                });
            }
            // Only known keys get here: a dozen at most, so a scan is cheap.
            if entries.iter().any(|(s, k, _)| s == section && *k == key) {
                return Err(ConfigProblem::DuplicateKey {
                    key,
                    section: section.to_owned(),
                });
            }
            entries.push((section.to_owned(), key, strip_comment(value).to_owned()));
        }
    }
    Ok(Sections { entries })
}

/// `key = ; comment` is an empty value: the parser only sees an inline
/// comment after some text, and Domogik's own sample configs write this.
fn strip_comment(value: &str) -> &str {
    let value = value.trim();
    if value.starts_with([';', '#']) {
        ""
    } else {
        value
    }
}

// The [xpl] section (docs/PROTOCOL.md §11).

/// The `[xpl]` section of the config (docs/PROTOCOL.md §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XplConfig {
    /// Whether the manager joins the xPL network at all.
    pub enabled: bool,
    /// The interface to bind (Domogik's `[domogik] bind_interface`): a
    /// name, or `*` (the first interface that is not the loopback one).
    pub bind_interface: String,
    /// Where the hub is reached (Domogik's `[domogik] broadcast`); `None`:
    /// the interface's own broadcast address (127.255.255.255 on `lo`).
    pub broadcast: Option<std::net::Ipv4Addr>,
    /// At most this many xPL devices are kept.
    pub max_clients: usize,
}

/// `[xpl] enabled`: `auto` (the default) is on for a Domogik host (the
/// manager is the MDP worker of a broker), off standalone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enabled {
    Auto,
    Yes,
    No,
}

impl Enabled {
    /// Whether xPL is on, `on_a_bus` being whether `rep_endpoint` connects.
    pub fn resolve(self, on_a_bus: bool) -> bool {
        match self {
            Enabled::Auto => on_a_bus,
            Enabled::Yes => true,
            Enabled::No => false,
        }
    }
}

/// Reads `[xpl] enabled`: `auto`, or configparser's booleans (`yes`/`no`,
/// `true`/`false`, `on`/`off`, `1`/`0`, any case).
pub fn read_enabled(text: &str) -> Result<Enabled, Expected> {
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(Enabled::Auto),
        "yes" | "true" | "on" | "1" => Ok(Enabled::Yes),
        "no" | "false" | "off" | "0" => Ok(Enabled::No),
        _ => Err("expected auto, yes or no".into()),
    }
}

/// Reads `[xpl] bind_interface`: an interface name (`lo`, `eth0`) or `*`.
/// Whether it exists is known only when the socket is opened.
pub fn read_bind_interface(text: &str) -> Result<String, Expected> {
    let name_like = text.len() < 16 && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c));
    match text == "*" || name_like {
        true => Ok(text.to_owned()),
        false => Err("expected an interface name (lo, eth0...) or *".into()),
    }
}

/// Reads `[xpl] broadcast`: an IPv4 address.
pub fn read_broadcast(text: &str) -> Result<std::net::Ipv4Addr, Expected> {
    text.parse()
        .map_err(|_| "expected an IPv4 address (255.255.255.255, 127.255.255.255...)".into())
}

/// Reads `[xpl] max_clients`: 1 to 65536.
pub fn read_max_clients(text: &str) -> Result<usize, Expected> {
    match text.parse::<usize>() {
        Ok(count) if (1..=65_536).contains(&count) => Ok(count),
        _ => Err("expected a number of xPL devices from 1 to 65536".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/domogik/manager.cfg";

    fn parse_ok(text: &str) -> Config {
        parse(text, Path::new(PATH), "darkstar.example.org").unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new(PATH), "darkstar").unwrap_err().to_string()
    }

    #[test]
    fn xpl_is_on_by_default_on_a_domogik_bus_and_off_standalone() {
        let expected = XplConfig {
            enabled: true,
            bind_interface: "lo".into(),
            broadcast: None,
            max_clients: 256,
        };
        assert_eq!(parse_ok("").xpl, expected, "an existing config: a Domogik host");
        let standalone = "[manager]\nrep_endpoint = @tcp://127.0.0.1:40410\n";
        assert!(!parse_ok(standalone).xpl.enabled, "standalone: no hub");
        assert!(parse_ok(&format!("{standalone}[xpl]\nenabled = yes\n")).xpl.enabled);
        assert!(!parse_ok("[xpl]\nenabled = no\n").xpl.enabled);
        let keys = "[xpl]\nbind_interface = *\nbroadcast = 255.255.255.255\nmax_clients = 3\n";
        let xpl = parse_ok(keys).xpl;
        assert_eq!(
            (xpl.bind_interface.as_str(), xpl.broadcast, xpl.max_clients),
            ("*", Some(std::net::Ipv4Addr::BROADCAST), 3)
        );
        assert_eq!(
            parse_err("[xpl]\nmax_clients = 0\n"),
            format!("{PATH}: [xpl] max_clients = \"0\": expected a number of xPL devices from 1 to 65536")
        );
        assert!(parse_err("[xpl]\nport = 3865\n").contains("unknown key \"port\" in [xpl]"));
    }

    #[test]
    fn empty_file_gives_forwarder_layout_defaults() {
        let config = parse_ok("");
        assert_eq!(config.host, "darkstar");
        assert_eq!(config.packages_dir, PathBuf::from(DEFAULT_PACKAGES_DIR));
        assert_eq!(config.rescan_interval, Duration::from_secs(30));
        assert_eq!(config.service, "manager");
        assert_eq!(config.log_level, Level::Info);
        assert_eq!(config.sub_endpoint, Endpoint::connect("tcp://127.0.0.1:40412"));
        assert_eq!(config.pub_endpoint, Endpoint::connect("tcp://127.0.0.1:40411"));
        assert_eq!(
            config.rep_endpoint,
            Endpoint::connect("tcp://127.0.0.1:40410"),
            "MDP worker"
        );
        assert_eq!(config.star_ip, None);
        assert_eq!(config.plugins.python, PathBuf::from("/usr/bin/python"));
        assert_eq!(config.plugins.pythonpath, None);
        assert_eq!(config.plugins.policy, crate::core::children::Policy::default());
    }

    #[test]
    fn plugin_process_keys() {
        use crate::core::children::RestartSet;
        let config = parse_ok(
            "[manager]\npython = /usr/bin/python2.7\npythonpath = /opt/dmg/domogik\nkill_delay = 1\nrestart = rfxcom, ebusd\n",
        );
        assert_eq!(config.plugins.python, PathBuf::from("/usr/bin/python2.7"));
        assert_eq!(config.plugins.pythonpath, Some(PathBuf::from("/opt/dmg/domogik")));
        assert_eq!(config.plugins.policy.kill_delay, Duration::from_secs(1));
        assert_eq!(
            config.plugins.policy.restart,
            RestartSet::Only(["ebusd".to_owned(), "rfxcom".to_owned()].into())
        );
        assert_eq!(
            parse_ok("[manager]\nrestart = *\n").plugins.policy.restart,
            RestartSet::Everyone
        );
        assert!(parse_err("[manager]\nkill_delay = 0\n").contains("[manager] kill_delay"));
        assert!(parse_err("[manager]\nrestart = Foo\n").contains("not a plugin name"));
    }

    #[test]
    fn liveness_delays_and_datatypes_file() {
        let config = parse_ok("");
        assert_eq!(config.dead_after, Duration::from_secs(30));
        assert_eq!(config.dbmgr_timeout, Duration::from_secs(5));
        assert_eq!(config.status_interval, Duration::from_secs(15));
        assert_eq!(config.hosts, crate::core::hosts::Limits::default());
        assert_eq!(config.datatypes_file, PathBuf::from(DEFAULT_DATATYPES_FILE));
        let config = parse_ok("[manager]\ndead_after = 0.5\nstatus_interval = 0.25\ndatatypes_file = /x/d.json\n");
        assert_eq!(config.dead_after, Duration::from_millis(500));
        assert_eq!(config.status_interval, Duration::from_millis(250));
        assert_eq!(config.datatypes_file, PathBuf::from("/x/d.json"));
        for bad in ["0", "-1", "x", "100000", "NaN"] {
            let error = parse_err(&format!("[manager]\ndead_after = {bad}\n"));
            assert!(
                error.contains("dead_after") && error.contains("seconds from 0.05"),
                "{error}"
            );
        }
    }

    #[test]
    fn shipped_config_is_valid_and_matches_the_defaults() {
        let text = include_str!("../../etc/manager.cfg");
        assert_eq!(parse_ok(text), parse_ok(""));
    }

    #[test]
    fn endpoints_derive_from_mq_section() {
        let config = parse_ok("[mq]\nip = 192.168.1.5\nreq_rep_port = 1\npub_port = 2\nsub_port = 3\n");
        assert_eq!(config.sub_endpoint, Endpoint::connect("tcp://192.168.1.5:3"));
        assert_eq!(config.pub_endpoint, Endpoint::connect("tcp://192.168.1.5:2"));
        assert_eq!(config.rep_endpoint, Endpoint::connect("tcp://192.168.1.5:1"));
    }

    #[test]
    fn every_interface_is_recognised_in_each_spelling_and_only_when_binding() {
        for everywhere in ["@tcp://*:1", "@tcp://0.0.0.0:1", "@tcp://[::]:1", "@tcp://*:*"] {
            assert!(
                Endpoint::parse(everywhere).unwrap().binds_every_interface(),
                "{everywhere}"
            );
        }
        for local in [
            "@tcp://127.0.0.1:1",
            "@tcp://[::1]:1",
            "@ipc:///run/x",
            ">tcp://*:1",
            ">tcp://0.0.0.0:1",
        ] {
            assert!(!Endpoint::parse(local).unwrap().binds_every_interface(), "{local}");
        }
    }

    #[test]
    fn star_ip_connects_to_the_first_non_loopback_ipv4_address() {
        let machine = |ipv4| Machine {
            hostname: "box".into(),
            ipv4,
        };
        let lan = "192.168.1.7".parse().unwrap();
        let config = parse_on("[mq]\nip = *\n", Path::new(PATH), &machine(Some(lan))).unwrap();
        assert_eq!(config.sub_endpoint, Endpoint::connect("tcp://192.168.1.7:40412"));
        assert_eq!(config.pub_endpoint, Endpoint::connect("tcp://192.168.1.7:40411"));
        assert_eq!(config.rep_endpoint, Endpoint::connect("tcp://192.168.1.7:40410"));
        assert_eq!(config.star_ip.as_deref(), Some("192.168.1.7"));
        // No such address: this host's loopback, as before.
        let alone = parse_on("[mq]\nip = *\n", Path::new(PATH), &machine(None)).unwrap();
        assert_eq!(alone.sub_endpoint, Endpoint::connect("tcp://127.0.0.1:40412"));
        // A bound request socket still binds every interface.
        let bound = parse_ok("[mq]\nip = *\n[manager]\nrep_endpoint = @tcp://*:40410\n");
        assert!(bound.rep_endpoint.binds_every_interface());
    }

    #[test]
    fn the_first_non_loopback_ipv4_address_is_chosen_in_interface_order() {
        let ip = |text: &str| text.parse::<std::net::Ipv4Addr>().unwrap();
        let addresses = [
            (ip("127.0.0.1"), true),
            (ip("127.0.1.1"), false),
            (ip("10.0.0.2"), false),
            (ip("192.168.1.7"), false),
        ];
        assert_eq!(first_non_loopback_ipv4(&addresses), Some(ip("10.0.0.2")));
        assert_eq!(first_non_loopback_ipv4(&addresses[..2]), None);
        assert_eq!(first_non_loopback_ipv4(&[]), None);
        // On this machine: whatever it finds is not a loopback address.
        if let Some(found) = first_non_loopback_ipv4(&crate::sys::host::interface_ipv4s()) {
            assert!(!found.is_loopback());
        }
    }

    #[test]
    fn ipv6_addresses_get_brackets_in_endpoints() {
        let config = parse_ok("[mq]\nip = ::1\n");
        assert_eq!(config.sub_endpoint, Endpoint::connect("tcp://[::1]:40412"));
        assert_eq!(config.rep_endpoint, Endpoint::connect("tcp://[::1]:40410"));
        let config = parse_ok("[mq]\nip = [fe80::1]\n");
        assert_eq!(config.pub_endpoint, Endpoint::connect("tcp://[fe80::1]:40411"));
    }

    #[test]
    fn standalone_layout_and_inline_comments() {
        let config = parse_ok(
            "[manager]\nhost =    ; default: sanitized hostname\nsub_endpoint = @tcp://127.0.0.1:40411\n\
             pub_endpoint = @tcp://127.0.0.1:40412 ; UIs subscribe here\nrep_endpoint = @ipc:///run/x.sock\n",
        );
        assert_eq!(config.host, "darkstar");
        assert_eq!(config.sub_endpoint, Endpoint::bind("tcp://127.0.0.1:40411"));
        assert_eq!(config.pub_endpoint, Endpoint::bind("tcp://127.0.0.1:40412"));
        assert_eq!(config.rep_endpoint, Endpoint::bind("ipc:///run/x.sock"));
    }

    #[test]
    fn existing_domogik_mq_cfg_is_accepted() {
        let text = "[mq]\nip = 127.0.0.1\nreq_rep_port = 40410\npub_port = 40411\nsub_port = 40412\n\
                    is_master = True\nlog_dir_path = /var/log/domogik/\npid_dir_path = /var/run/domogik/\nlog_level = debug\n";
        assert_eq!(
            parse_ok(text).log_level,
            Level::Info,
            "[mq] log_level belongs to the MQ broker"
        );
    }

    #[test]
    fn keys_are_case_insensitive_and_relative_dirs_follow_the_config() {
        let config = parse(
            "[manager]\nPackages_Dir = pkgs\nLOG_LEVEL = debug\n",
            Path::new("/srv/cfg/m.cfg"),
            "h",
        )
        .unwrap();
        assert_eq!(config.packages_dir, PathBuf::from("/srv/cfg/pkgs"));
        assert_eq!(config.log_level, Level::Debug);
    }

    #[test]
    fn host_rules() {
        assert_eq!(parse_ok("[manager]\nhost = MyBox\n").host, "mybox");
        let long = parse_err("[manager]\nhost = averyveryverylonghost\n");
        assert!(
            long.contains("longer than 16") && long.contains("set [manager] host"),
            "{long}"
        );
        assert!(parse_err("[manager]\nhost = a.b\n").contains("[manager] host"));
        assert!(parse("", Path::new(PATH), "")
            .unwrap_err()
            .to_string()
            .contains("set [manager] host"));
    }

    #[test]
    fn the_default_host_is_derived_as_domogik_does() {
        let host = |hostname: &str| parse("", Path::new(PATH), hostname).unwrap().host;
        assert_eq!(host("domo-box.lan"), "domobox");
        assert_eq!(host("Domo-Box"), "domobox");
        assert_eq!(
            host("averyveryverylonghostname.lan"),
            "averyveryverylon",
            "cut, not refused"
        );
        assert_eq!(host("a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r"), "abcdefghijklmnop");
        assert_eq!(sanitize_hostname("exactly16charsxx.x"), "exactly16charsxx");
        assert_eq!(sanitize_hostname(""), "");
        // An explicit host keeps its '-': it is what the user chose.
        assert_eq!(parse_ok("[manager]\nhost = domo-box\n").host, "domo-box");
    }

    #[test]
    fn every_error_names_the_file_and_the_key() {
        let cases = [
            (
                "[manager]\nrescan_interval = soon\n",
                "[manager] rescan_interval = \"soon\": expected a whole number",
            ),
            ("[manager]\nrescan_interval = 0\n", "rescan_interval"),
            (
                "[mq]\npub_port = 70000\n",
                "[mq] pub_port = \"70000\": expected a port number",
            ),
            (
                "[manager]\nrescan_intervall = 3\n",
                "unknown key \"rescan_intervall\" in [manager]",
            ),
            ("[mq]\nport = 3\n", "unknown key \"port\" in [mq]"),
            ("[mq]\nip = a b\n", "[mq] ip = \"a b\": expected an IP address"),
            ("[manger]\nhost = x\n", "unknown section [manger]"),
            ("host = x\n", "outside any section"),
            ("[manager]\nhost = a\nhost = b\n", "appears twice"),
            (
                "[manager]\nsub_endpoint = tcp://127.0.0.1:1\n",
                "[manager] sub_endpoint",
            ),
            ("[manager]\nrep_endpoint = @tcp://127.0.0.1\n", "a port from 1 to 65535"),
            ("[manager]\npub_endpoint = >tcp://127.0.0.1:*\n", "pub_endpoint"),
            ("[manager]\npub_endpoint = @udp://x:1\n", "pub_endpoint"),
            (
                "[manager]\nlog_level = loud\n",
                "expected error, warn, info, debug or trace",
            ),
            ("[manager]\nservice = my manager\n", "[manager] service"),
            ("[manager\nhost = x\n", "expected INI"),
        ];
        for (text, expected) in cases {
            let message = parse_err(text);
            assert!(message.starts_with(PATH), "{message}");
            assert!(message.contains(expected), "{message:?} should contain {expected:?}");
            assert!(!message.contains('\n'), "{message:?}");
        }
    }

    #[test]
    fn ephemeral_port_binds_are_allowed() {
        assert_eq!(
            Endpoint::parse("@tcp://127.0.0.1:*"),
            Ok(Endpoint::bind("tcp://127.0.0.1:*"))
        );
    }

    #[test]
    fn xpl_values() {
        assert_eq!(read_enabled("AUTO"), Ok(Enabled::Auto));
        for yes in ["yes", "True", "on", "1"] {
            assert_eq!(read_enabled(yes), Ok(Enabled::Yes), "{yes}");
        }
        for no in ["no", "FALSE", "off", "0"] {
            assert_eq!(read_enabled(no), Ok(Enabled::No), "{no}");
        }
        assert!(read_enabled("maybe").is_err());
        assert!(Enabled::Auto.resolve(true) && !Enabled::Auto.resolve(false));
        assert!(Enabled::Yes.resolve(false) && !Enabled::No.resolve(true));
        assert_eq!(read_bind_interface("eth0"), Ok("eth0".into()));
        assert_eq!(read_bind_interface("*"), Ok("*".into()));
        assert!(read_bind_interface("eth0 eth1").is_err());
        assert!(read_bind_interface("a-very-long-interface-name").is_err());
        assert_eq!(
            read_broadcast("127.255.255.255"),
            Ok(std::net::Ipv4Addr::new(127, 255, 255, 255))
        );
        assert!(read_broadcast("::1").is_err());
        assert_eq!(read_max_clients("256"), Ok(256));
        for bad in ["0", "65537", "-1", "x"] {
            assert!(read_max_clients(bad).is_err(), "{bad}");
        }
    }
}
