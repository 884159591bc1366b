//! What is generated from the command line's definition (the man page, the
//! shell completions) is what is committed, and says every command and
//! option: a change to src/cli/definition.rs or man/dmg_manager.8.in without
//! `cargo run --example gen-docs` fails here.

#[allow(dead_code)]
#[path = "../examples/gen-docs.rs"]
mod gen_docs;

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_committed_man_page_and_completions_are_generated_from_the_definition() {
    for (path, expected) in gen_docs::render_all(Path::new(ROOT)).unwrap() {
        let committed = std::fs::read(Path::new(ROOT).join(&path)).unwrap_or_default();
        assert!(
            committed == expected,
            "{} differs from what src/cli/definition.rs makes: run `cargo run --example gen-docs` and commit it",
            path.display()
        );
    }
}

/// Every command and every option of the definition, as the user types it.
fn words() -> Vec<String> {
    let mut command = domogik_manager::cli::definition();
    command.build();
    let mut words = Vec::new();
    let add_args = |command: &clap::Command, words: &mut Vec<String>| {
        for arg in command.get_arguments() {
            words.extend(arg.get_long().map(|long| format!("--{long}")));
            words.extend(arg.get_short().map(|short| format!("-{short}")));
        }
    };
    add_args(&command, &mut words);
    for sub in command.get_subcommands() {
        words.push(sub.get_name().to_owned());
        add_args(sub, &mut words);
    }
    words
}

#[test]
fn the_man_page_and_the_completions_name_every_command_and_option() {
    let man = std::fs::read_to_string(Path::new(ROOT).join("man/dmg_manager.8")).unwrap();
    // roff writes each hyphen of an option as `\-`.
    let man = man.replace("\\-", "-");
    let bash = std::fs::read_to_string(Path::new(ROOT).join("completions/bash/dmg_manager")).unwrap();
    let words = words();
    assert!(words.contains(&"status".to_owned()) && words.contains(&"--check-config".to_owned()));
    for word in &words {
        assert!(man.contains(&format!("\\fB{word}\\fR")), "man page: {word}");
        assert!(
            bash.split([' ', '"', '\n']).any(|token| token == word),
            "bash completion: {word}"
        );
    }
}

/// The man page reads without a warning from groff (skipped where groff is
/// not installed: the package build has it through man-db).
#[test]
fn the_man_page_is_valid_roff() {
    let Ok(output) = std::process::Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(Path::new(ROOT).join("man/dmg_manager.8"))
        .output()
    else {
        eprintln!("groff not found: not checked");
        return;
    };
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// What bash's completion offers for `COMP_WORDS` (the last word being
/// completed), from the committed script.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = Path::new(ROOT).join("completions/bash/dmg_manager");
    let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _dmg_manager dmg_manager '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let output = std::process::Command::new("bash")
        .args(["--norc", "-c", &program])
        .current_dir(ROOT)
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn bash_completes_the_installed_plugin_names() {
    // etc/manager-dev.cfg's packages_dir, relative to its folder, holds the
    // four sample plugins (plugin_diskfree, plugin_ebusd...).
    let all = ["diskfree", "ebusd", "rfxcom", "test"];
    assert_eq!(bash_completes(&["dmg_manager", "-c", "etc/manager-dev.cfg", "status", ""]), all);
    assert_eq!(bash_completes(&["dmg_manager", "--config=etc/manager-dev.cfg", "start", "e"]), ["ebusd"]);
    assert_eq!(
        bash_completes(&["dmg_manager", "-c", "etc/manager-dev.cfg", "clients", "--history", "r"]),
        ["rfxcom"]
    );
    // The EVENT after NAME: the statuses, not the plugins; no literal <NAME>.
    let events = bash_completes(&["dmg_manager", "-c", "etc/manager-dev.cfg", "status", "diskfree", ""]);
    assert!(events.contains(&"stop-request".to_owned()) && !events.contains(&"diskfree".to_owned()), "{events:?}");
    assert!(!events.iter().any(|word| word.contains('<')), "{events:?}");
}

/// What fish's completion offers for the command line `line`, from the
/// committed script; None when fish is not installed (.ci/run installs it).
fn fish_completes(line: &str) -> Option<Vec<String>> {
    let script = Path::new(ROOT).join("completions/fish/dmg_manager.fish");
    let program = format!("source '{}'; complete -C '{line}'", script.display());
    let output = match std::process::Command::new("fish")
        .args(["--no-config", "-c", &program])
        .current_dir(ROOT)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("fish: {e}"),
    };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    Some(text.lines().map(|line| line.split('\t').next().unwrap().to_owned()).collect())
}

#[test]
fn fish_completes_plugin_names_and_events() {
    let Some(names) = fish_completes("dmg_manager -c etc/manager-dev.cfg status ") else {
        eprintln!("fish is not installed: the fish completion is not checked (apt-get install fish)");
        return;
    };
    assert_eq!(names, ["diskfree", "ebusd", "rfxcom", "test"]);
    let events = fish_completes("dmg_manager -c etc/manager-dev.cfg status diskfree ").unwrap();
    assert!(events.contains(&"stop-request".to_owned()) && events.contains(&"alive".to_owned()), "{events:?}");
    assert!(!events.contains(&"diskfree".to_owned()), "{events:?}");
    assert_eq!(fish_completes("dmg_manager --config=etc/manager-dev.cfg start e").unwrap(), ["ebusd"]);
    assert_eq!(
        fish_completes("dmg_manager -c etc/manager-dev.cfg clients --history r").unwrap(),
        ["rfxcom"]
    );
}
