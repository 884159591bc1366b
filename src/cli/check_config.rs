//! `--check-config`: the config is good; say what it amounts to.

use crate::core::config::Config;

/// `--check-config`: the config is good; say what it amounts to.
pub(crate) fn run(config: &Config) -> i32 {
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
