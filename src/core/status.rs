//! The statuses a Domogik client can be in, and their wire spelling.

use std::fmt;

/// A client's status, as plugins announce it and user interfaces show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// No news from the plugin yet: every new client starts here.
    Unknown,
    Starting,
    Alive,
    StopRequest,
    Stopped,
    Dead,
    /// The package on disk is broken (the client's `comment` says how).
    Invalid,
    NotConfigured,
}

impl Status {
    pub(crate) const ALL: [Status; 8] = [
        Status::Unknown,
        Status::Starting,
        Status::Alive,
        Status::StopRequest,
        Status::Stopped,
        Status::Dead,
        Status::Invalid,
        Status::NotConfigured,
    ];

    /// The value on the wire, e.g. `stop-request`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Starting => "starting",
            Status::Alive => "alive",
            Status::StopRequest => "stop-request",
            Status::Stopped => "stopped",
            Status::Dead => "dead",
            Status::Invalid => "invalid",
            Status::NotConfigured => "not-configured",
        }
    }

    /// Parses a wire value; `None` for anything that is not one of the eight.
    pub(crate) fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn seed_misspelling_and_case_are_not_statuses() {
        assert_eq!(Status::parse("uknown"), None);
        assert_eq!(Status::parse("ALIVE"), None);
        assert_eq!(Status::parse("stop_request"), None);
    }
}
