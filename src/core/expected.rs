//! What a config value should have been: the end of a config error's line
//! (`[mq] pub_port = "70000": expected a port number from 1 to 65535`),
//! returned by every reader of a value (src/core/config.rs, the `[xpl]`
//! section's in src/core/xpl/), which the config names with its key.

use std::fmt;

/// What a config value should have been (`expected a port number from 1
/// to 65535`), as the error line says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected(String);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Expected {
    fn from(text: String) -> Expected {
        Expected(text)
    }
}

impl From<&str> for Expected {
    fn from(text: &str) -> Expected {
        Expected(text.to_owned())
    }
}
