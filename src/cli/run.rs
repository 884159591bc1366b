//! `run` (the default command): the daemon, with the process's log, once
//! it is sure to be the only manager of its host and bus.

use crate::core::config::Config;
use crate::sys::instance::{self, InstanceLock};

/// One manager per host and bus (src/sys/instance.rs): the lock, held
/// until the process exits, or why this one must not start.
fn take_instance_lock(config: &Config) -> Result<Option<InstanceLock>, String> {
    let Some(name) = crate::core::instance::lock_file_name(&config.host, &config.rep_endpoint) else {
        return Ok(None);
    };
    let what = format!("host {} on {}", config.host, config.rep_endpoint);
    let lock = instance::acquire(&instance::runtime_dir(), &name, &what)?;
    crate::debug!("{} taken: the only manager of {what}", lock.path.display());
    Ok(Some(lock))
}

pub(crate) fn run(config: &Config) -> i32 {
    crate::sys::log::init(config.log_level);
    crate::info!(
        "dmg_manager {} starting with {}",
        env!("CARGO_PKG_VERSION"),
        config.path.display()
    );
    let _lock = match take_instance_lock(config) {
        Ok(lock) => lock,
        Err(refusal) => {
            crate::error!("{refusal}");
            return 1;
        }
    };
    match crate::daemon::run(config) {
        Ok(()) => 0,
        Err(error) => {
            crate::error!("{error}");
            1
        }
    }
}
