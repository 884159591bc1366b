//! Writes what is generated from the command line's one definition
//! (`domogik_manager::cli::definition`): the man page and the shell
//! completions. `cargo run --example gen-docs` rewrites them in place;
//! tests/docs.rs fails when a committed file differs from what this makes.
//!
//! - `man/dmg_manager.8`: `man/dmg_manager.8.in` (the hand-written prose:
//!   description, configuration, service, signals, files...) with its
//!   `@NAME@`, `@SYNOPSIS@`, `@OPTIONS@`, `@COMMANDS@`, `@VERSION@` and
//!   `@GENERATED@` lines filled from the definition;
//! - `completions/bash/dmg_manager`, `completions/zsh/_dmg_manager`,
//!   `completions/fish/dmg_manager.fish`: clap_complete's scripts, installed
//!   by the .deb where Debian's shells look (debian/domogik-manager.install).
//!   clap_complete knows no value of NAME (bash offered a literal `<NAME>`)
//!   nor, in fish, of EVENT: bash and fish complete NAME (of `status`,
//!   `start` and `clients --history`) with the plugins installed, the
//!   `plugin_NAME` folders of the config's `packages_dir` (the config of
//!   `-c`/`--config` on the line, else /etc/domogik/manager.cfg; relative to
//!   the config's folder, as the manager reads it), and fish EVENT with the
//!   statuses.

// Tests and tools, not the core: they may do I/O and read the clock
// (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// Every generated file: its path from the crate's root, and its content.
pub fn render_all(root: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = vec![(
        PathBuf::from("man/dmg_manager.8"),
        man_page(&std::fs::read_to_string(root.join("man/dmg_manager.8.in"))?).into_bytes(),
    )];
    for (shell, path) in [
        (Shell::Bash, "completions/bash/dmg_manager"),
        (Shell::Zsh, "completions/zsh/_dmg_manager"),
        (Shell::Fish, "completions/fish/dmg_manager.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(
            shell,
            &mut domogik_manager::cli::definition(),
            "dmg_manager",
            &mut script,
        );
        let script = String::from_utf8(script).expect("clap_complete writes UTF-8");
        let script = match shell {
            Shell::Bash => bash_names(&script),
            Shell::Fish => fish_names_and_events(&script),
            _ => script,
        };
        files.push((PathBuf::from(path), script.into_bytes()));
    }
    Ok(files)
}

/// The plugin names, for bash: a function that lists them, called where
/// clap_complete put `<NAME>` (the first positional of `status` and
/// `start`) and for the value of `--history`.
fn bash_names(script: &str) -> String {
    let mut out = String::new();
    let mut block = "";
    let mut skipping = false;
    for line in script.lines() {
        let trimmed = line.trim_start();
        if skipping {
            // clap_complete's own body for --history (file names), replaced.
            skipping = trimmed != ";;";
            continue;
        }
        if let Some(name) = trimmed.strip_suffix(')').filter(|name| name.starts_with("dmg_manager__")) {
            block = match name {
                "dmg_manager__status" => "status",
                "dmg_manager__start" => "start",
                "dmg_manager__clients" => "clients",
                _ => "",
            };
        }
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("opts=") {
            out.push_str(&line.replace(" <NAME>", ""));
        } else if (block == "status" || block == "start") && trimmed.starts_with("if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]]") {
            // The NAME position, right after the command (global options
            // such as -c FILE may come before it): the installed plugins.
            out.push_str(&format!("{indent}if [[ ${{cur}} != -* && ${{prev}} == \"{block}\" ]] ; then\n"));
            out.push_str(&format!("{indent}    COMPREPLY=( $(compgen -W \"$(_dmg_manager_plugins)\" -- \"${{cur}}\") )\n"));
            out.push_str(&format!("{indent}    return 0\n{indent}fi\n"));
            out.push_str(line);
        } else if block == "clients" && trimmed == "--history)" {
            out.push_str(line);
            out.push('\n');
            out.push_str(&format!("{indent}    COMPREPLY=( $(compgen -W \"$(_dmg_manager_plugins)\" -- \"${{cur}}\") )\n"));
            out.push_str(&format!("{indent}    return 0\n{indent}    ;;"));
            skipping = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    let helper = r#"# The plugins installed: the plugin_NAME folders of the config's
# packages_dir (the -c/--config file on the line, else the default config).
_dmg_manager_plugins() {
    local config=/etc/domogik/manager.cfg i dir
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        case "${COMP_WORDS[i]}" in
            -c|--config) config="${COMP_WORDS[i+1]}" ;;
            --config=*) config="${COMP_WORDS[i]#--config=}" ;;
        esac
    done
    config="${config/#\~/$HOME}"
    dir=$(sed -n '/^[[:space:]]*\[manager\]/,/^[[:space:]]*\[/ s/^[[:space:]]*packages_dir[[:space:]]*=[[:space:]]*\([^;#]*\).*/\1/p' "$config" 2>/dev/null | tail -n 1)
    dir="${dir%"${dir##*[![:space:]]}"}"
    [ -n "$dir" ] || dir=/var/lib/domogik/domogik_packages
    case "$dir" in /*) ;; *) dir="$(dirname -- "$config")/$dir" ;; esac
    local folder
    for folder in "$dir"/plugin_*/; do
        [ -d "$folder" ] || continue
        folder="${folder%/}"
        printf '%s\n' "${folder##*/plugin_}"
    done
}

"#;
    format!("{helper}{out}")
}

/// Fish: NAME (the installed plugins, as for bash) and EVENT (the statuses
/// of `status`), which clap_complete leaves without values.
fn fish_names_and_events(script: &str) -> String {
    let mut command = domogik_manager::cli::definition();
    command.build();
    let events: Vec<String> = command
        .find_subcommand("status")
        .and_then(|status| status.get_arguments().find(|arg| arg.get_id() == "event"))
        .map(|arg| arg.get_possible_values().iter().map(|value| value.get_name().to_owned()).collect())
        .unwrap_or_default();
    assert!(!events.is_empty(), "status EVENT has possible values");
    let mut out = script.to_owned();
    out.push_str(r#"
# The plugins installed: the plugin_NAME folders of the config's
# packages_dir (the -c/--config file on the line, else the default config).
function __fish_dmg_manager_plugins
    set -l words (commandline -opc)
    set -l config /etc/domogik/manager.cfg
    for i in (seq (count $words))
        switch $words[$i]
            case -c --config
                set -q words[(math $i + 1)]; and set config $words[(math $i + 1)]
            case '--config=*'
                set config (string replace -- '--config=' '' $words[$i])
        end
    end
    set -l dir (sed -n '/^[[:space:]]*\[manager\]/,/^[[:space:]]*\[/ s/^[[:space:]]*packages_dir[[:space:]]*=[[:space:]]*\([^;#]*\).*/\1/p' $config 2>/dev/null | tail -n 1 | string trim)
    test -n "$dir"; or set dir /var/lib/domogik/domogik_packages
    string match -q '/*' -- $dir; or set dir (dirname -- $config)/$dir
    for folder in $dir/plugin_*/
        string replace -r '.*/plugin_([^/]*)/$' '$1' -- $folder
    end
end

# How many positional words follow the command (the values of the options
# that take one are not).
function __fish_dmg_manager_positionals
    set -l words (commandline -opc)
    set -l n 0
    set -l skip 0
    set -l seen 0
    for word in $words[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $word
            case -c --config --comment --timeout --history
                set skip 1
            case '-*'
            case '*'
                if test $seen = 0
                    set seen 1
                else
                    set n (math $n + 1)
                end
        end
    end
    echo $n
end

complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand status; and test (__fish_dmg_manager_positionals) = 0" -f -a "(__fish_dmg_manager_plugins)" -d 'installed plugin'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand start; and test (__fish_dmg_manager_positionals) = 0" -f -a "(__fish_dmg_manager_plugins)" -d 'installed plugin'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -l history -f -r -a "(__fish_dmg_manager_plugins)"
"#);
    out.push_str(&format!(
        "complete -c dmg_manager -n \"__fish_dmg_manager_using_subcommand status; and test (__fish_dmg_manager_positionals) = 1\" -f -a \"{}\" -d 'status'\n",
        events.join(" ")
    ));
    out
}

/// The template with its placeholder lines filled.
pub fn man_page(template: &str) -> String {
    let mut command = domogik_manager::cli::definition();
    command.build();
    let mut page = String::new();
    for line in template.lines() {
        match line {
            "@GENERATED@" => page.push_str(
                ".\\\" Generated from src/cli/definition.rs and man/dmg_manager.8.in by\n\
                 .\\\" `cargo run --example gen-docs`: edit those, not this file.\n",
            ),
            "@NAME@" => {
                let about = command.get_about().map(ToString::to_string).unwrap_or_default();
                let about = about.get(..1).unwrap_or("").to_lowercase() + about.get(1..).unwrap_or("");
                page.push_str(&format!("{} \\- {}\n", command.get_name(), escape(&about)));
            }
            "@SYNOPSIS@" => {
                page.push_str(".SH SYNOPSIS\n");
                let synopsis = domogik_manager::cli::synopsis(&command);
                let lines: Vec<String> = synopsis.lines().map(synopsis_line).collect();
                page.push_str(&lines.join(".br\n"));
            }
            "@OPTIONS@" => {
                page.push_str(".SH OPTIONS\n");
                for arg in command.get_arguments() {
                    page.push_str(&arg_item(arg));
                }
            }
            "@COMMANDS@" => {
                page.push_str(".SH COMMANDS\n");
                for sub in command.get_subcommands() {
                    page.push_str(&command_item(sub));
                }
            }
            line => {
                page.push_str(&line.replace("@VERSION@", env!("CARGO_PKG_VERSION")));
                page.push('\n');
            }
        }
    }
    page
}

/// Text for roff: backslashes, hyphens (a `-` is a hyphen, `\-` a minus
/// sign, as options need) and a leading dot or quote (a request).
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

/// One usage line: literals in bold, PLACEHOLDERS in italics, brackets and
/// bars in roman.
fn synopsis_line(line: &str) -> String {
    let words: Vec<String> = line
        .split(' ')
        .map(|word| {
            let core = word.trim_matches(|c| c == '[' || c == ']');
            let (open, close) = word.split_at(word.find(core).unwrap_or(0));
            let close = close.get(core.len()..).unwrap_or("");
            let font = if core == "|" {
                return word.to_owned();
            } else if core.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                "I"
            } else {
                "B"
            };
            format!("{open}\\f{font}{}\\fR{close}", escape(core))
        })
        .collect();
    format!("{}\n", words.join(" "))
}

/// `.TP` item for one argument: its flags or name, value, help, default,
/// possible values.
fn arg_item(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map(ToString::to_string)
        .unwrap_or_else(|| arg.get_id().as_str().to_ascii_uppercase());
    let mut head: Vec<String> = Vec::new();
    if arg.is_positional() {
        head.push(format!("\\fI{}\\fR", escape(&value)));
    } else {
        if let Some(short) = arg.get_short() {
            head.push(format!("\\fB\\-{short}\\fR"));
        }
        if let Some(long) = arg.get_long() {
            head.push(format!("\\fB\\-\\-{}\\fR", escape(long)));
        }
    }
    let mut head = head.join(", ");
    if !arg.is_positional() && arg.get_action().takes_values() {
        head.push_str(&format!(" \\fI{}\\fR", escape(&value)));
    }
    let mut text = arg
        .get_long_help()
        .or(arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    if !text.is_empty() && !text.ends_with('.') {
        text.push('.');
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|value| value.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && arg.get_action().takes_values() {
        text.push_str(&format!("\nDefault: {}.", defaults.join(", ")));
    }
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|value| value.get_name().to_owned())
        .collect();
    if !possible.is_empty() {
        text.push_str(&format!("\nOne of: {}.", possible.join(", ")));
    }
    format!(".TP\n{head}\n{}\n", escape(&text))
}

/// `.TP` item for one command, its own arguments indented below it.
fn command_item(command: &clap::Command) -> String {
    let mut item = format!(".TP\n\\fB{}\\fR", escape(command.get_name()));
    let own: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|arg| !arg.is_global_set() && !matches!(arg.get_id().as_str(), "help" | "version"))
        .collect();
    for arg in own.iter().filter(|arg| arg.is_positional()) {
        let value = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(ToString::to_string);
        item.push_str(&format!(" \\fI{}\\fR", escape(&value.unwrap_or_default())));
    }
    let about = command
        .get_long_about()
        .or(command.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    item.push_str(&format!("\n{}.\n", escape(about.trim_end_matches('.'))));
    if !own.is_empty() {
        item.push_str(".RS\n");
        for arg in own {
            item.push_str(&arg_item(arg));
        }
        item.push_str(".RE\n");
    }
    item
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, content) in render_all(root)? {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, content)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
