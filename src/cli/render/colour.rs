//! Terminal colours for statuses: on only when stdout is a terminal,
//! `NO_COLOR` is unset (<https://no-color.org>) and `TERM` is not `dumb`
//! (a terminal that says it understands no escape sequence: Emacs' shell,
//! some serial consoles), so pipes and scripts get plain text.

use std::ffi::OsStr;
use std::io::IsTerminal;

/// Whether to colour, given what stdout is and the values of `NO_COLOR`
/// and `TERM`. An empty `NO_COLOR` counts as unset, as the convention
/// says; `TERM=dumb` means no colour.
pub(crate) fn enabled(stdout_is_terminal: bool, no_color: Option<&OsStr>, term: Option<&OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(OsStr::is_empty) && term != Some(OsStr::new("dumb"))
}

/// [`enabled`] for this process.
pub(crate) fn enabled_for_stdout() -> bool {
    enabled(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    )
}

/// The SGR code of a status: green when running, yellow on the way, red
/// when broken. Statuses this build does not know stay plain.
fn status_code(status: &str) -> Option<&'static str> {
    Some(match status {
        "alive" => "32",
        "starting" | "stop-request" => "33",
        "dead" => "31",
        "invalid" => "1;31",
        "not-configured" => "35",
        "stopped" => "34",
        "unknown" => "2",
        _ => return None,
    })
}

/// `status`, coloured when `on`.
pub(crate) fn status(status: &str, on: bool) -> String {
    match status_code(status) {
        Some(code) if on => format!("\x1b[{code}m{status}\x1b[0m"),
        _ => status.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_on_a_terminal_without_no_color() {
        assert!(enabled(true, None, None));
        assert!(enabled(true, Some(OsStr::new("")), None));
        assert!(!enabled(true, Some(OsStr::new("1")), None));
        assert!(!enabled(false, None, None));
    }

    #[test]
    fn term_dumb_is_no_colour() {
        assert!(!enabled(true, None, Some(OsStr::new("dumb"))));
        assert!(enabled(true, None, Some(OsStr::new("xterm-256color"))));
        assert!(enabled(true, None, Some(OsStr::new("linux"))));
    }

    #[test]
    fn statuses_are_wrapped_in_one_code_and_reset() {
        assert_eq!(status("alive", true), "\x1b[32malive\x1b[0m");
        assert_eq!(status("alive", false), "alive");
        assert_eq!(status("sleepy", true), "sleepy");
    }
}
