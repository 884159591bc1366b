//! `--check-config`: the config is good; say what it amounts to, and warn
//! on stderr about what parses but cannot be meant: a `packages_dir` that
//! cannot be listed (often written in quotes), `restart` names that are no
//! plugin folder in it. The exit code stays 0: the file is usable, and a
//! packages_dir may be mounted later.

use crate::core::config::Config;
use crate::core::config_warnings;
use crate::core::packages::{classify_folder, FolderKind};

/// `--check-config`: the config is good; say what it amounts to.
pub(crate) fn run(config: &Config) -> i32 {
    for warning in disk_warnings(config) {
        eprintln!("dmg_manager: warning: {warning}");
    }
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

/// What the disk shows of the config: one line per problem.
fn disk_warnings(config: &Config) -> Vec<String> {
    let entries = match std::fs::read_dir(&config.packages_dir) {
        Ok(entries) => entries,
        Err(error) => {
            let not_found = error.kind() == std::io::ErrorKind::NotFound;
            return vec![config_warnings::packages_dir_warning(
                &config.packages_dir,
                not_found,
                &error.to_string(),
            )];
        }
    };
    let installed = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|folder| match classify_folder(&folder) {
            FolderKind::Package(name) => Some(name),
            _ => None,
        })
        .collect();
    config_warnings::unknown_restart_names(&config.plugins.policy.restart, &installed)
        .into_iter()
        .map(|(_, line)| line)
        .collect()
}
