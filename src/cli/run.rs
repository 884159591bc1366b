//! `run` (the default command): the daemon, with the process's log.

use crate::core::config::Config;

pub(crate) fn run(config: &Config) -> i32 {
    crate::sys::log::init(config.log_level);
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
