//! `dmg_manager`: the command-line entry point; all the work is in the library.

fn main() {
    std::process::exit(domogik_manager::cli::main_with_args(std::env::args().skip(1)));
}
