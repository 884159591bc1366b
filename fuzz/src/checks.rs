//! What must hold for any input, whoever feeds it: the fuzz targets (in
//! `fuzz/`) and the corpus regression tests (`tests/fuzz_regressions.rs`,
//! which includes this file) run exactly these checks.
//!
//! Input layout, so that one file can carry several messages: messages are
//! separated by the byte 0x1E (record separator), the frames of a message
//! by 0x00. An empty message has no frame at all.

use domogik_manager::core::config;
use domogik_manager::core::envelope;
use domogik_manager::core::manager::{Manager, StatusOutcome};
use domogik_manager::core::packages::{self, Package, PackageChange};
use domogik_manager::core::wire::{self, Framing};
use serde_json::value::RawValue;
use serde_json::Value;
use std::path::Path;

/// More messages than this in one input are ignored (keeps runs fast).
pub const MAX_MESSAGES: usize = 32;
/// A reason or a log detail longer than this would let a peer bloat the log.
pub const MAX_REASON_CHARS: usize = 512;

/// Splits one fuzz input into messages of frames (see the module comment).
pub fn messages(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    data.split(|byte| *byte == 0x1e)
        .take(MAX_MESSAGES)
        .map(|message| {
            if message.is_empty() {
                Vec::new()
            } else {
                message.split(|byte| *byte == 0).map(<[u8]>::to_vec).collect()
            }
        })
        .collect()
}

/// A manager on host `box`, service `manager`, with two valid clients
/// (`a`, `test`) and one invalid (`bad`), as a running daemon could have.
pub fn fresh_manager() -> Manager {
    let mut manager = Manager::new("box", "manager", domogik_manager::sys::clock::now());
    let valid = |name: &str| PackageChange::Updated {
        name: name.to_owned(),
        package: Package::Valid {
            data: RawValue::from_string(format!(r#"{{"identity": {{"name": "{name}", "type": "plugin"}}}}"#))
                .expect("valid JSON"),
        },
    };
    manager.apply_package_changes(vec![
        valid("a"),
        valid("test"),
        PackageChange::Updated {
            name: "bad".to_owned(),
            package: Package::Invalid {
                reason: "plugin_bad/info.json is missing".to_owned(),
            },
        },
    ]);
    manager.take_publications(0.0);
    manager
}

/// A line that goes to the log or into an `error` reply: one line, no
/// control characters, bounded length.
pub fn assert_one_short_line(what: &str, text: &str) {
    assert!(!text.is_empty(), "{what}: empty");
    assert!(
        !text.chars().any(char::is_control),
        "{what}: control character in {text:?}"
    );
    assert!(
        text.chars().count() <= MAX_REASON_CHARS,
        "{what}: {} characters",
        text.chars().count()
    );
}

fn json(frame: &[u8], what: &str) -> Value {
    serde_json::from_slice(frame).unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {frame:?}"))
}

/// Requests: every one gets exactly one well-formed reply in its framing.
/// Each input message is also taken as what the ROUTER socket delivers
/// (routing id first): split as REP would, answered behind the same envelope.
pub fn request(data: &[u8]) {
    let mut manager = fresh_manager();
    for message in messages(data) {
        check_reply(&mut manager, &message);
        match envelope::split(message.clone()) {
            Some((envelope, frames)) => {
                // REP's rules: the envelope ends at the first empty frame,
                // which has at least one frame after it.
                let (delimiter, hops) = envelope.split_last().expect("an envelope is never empty");
                assert!(delimiter.is_empty() && !hops.iter().any(Vec::is_empty));
                assert!(!frames.is_empty());
                assert_eq!(envelope.len() + frames.len(), message.len());
                let reply = check_reply(&mut manager, &frames);
                let wrapped = envelope::wrap(envelope.clone(), reply.clone());
                assert_eq!(wrapped[..envelope.len()], envelope[..]);
                assert_eq!(wrapped[envelope.len()..], reply[..]);
            }
            None => {
                let last = message.len().saturating_sub(1);
                assert!(
                    !message.iter().take(last).any(Vec::is_empty),
                    "{message:?} has a delimiter"
                );
            }
        }
    }
}

/// Answers `frames` and checks the reply; returns its frames. The reply is
/// read back with the crate's own reply decoder (what `dmg_manager clients`
/// uses), and must come in the request's framing: MDP when the first of at
/// least two frames is `MDPC01` (PROTOCOL.md), its service echoed.
fn check_reply(manager: &mut Manager, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let reply = manager.handle_request(frames);
    let received =
        wire::decode_reply(&reply.frames).unwrap_or_else(|e| panic!("reply to {frames:?}: {e}: {:?}", reply.frames));
    let framing = match frames {
        [header, service, ..] if header == b"MDPC01" => Framing::Mdp {
            service: service.clone(),
        },
        _ => Framing::Plain,
    };
    assert_eq!(received.framing, framing, "reply to {frames:?}: {:?}", reply.frames);
    let body = json(received.body.as_bytes(), "reply body");
    match &reply.error {
        Some(reason) => {
            assert_eq!(received.action, "error");
            assert_eq!(body["status"], Value::Bool(false));
            assert_eq!(body["reason"].as_str(), Some(reason.as_str()));
            assert_one_short_line("error reason", reason);
        }
        None => {
            assert!(
                received.action == "clients.list.result" || received.action == "clients.detail.result",
                "{}",
                received.action
            );
            let clients = body["clients"].as_object().expect("a clients object");
            assert_eq!(clients.len(), 3);
        }
    }
    reply.frames
}

/// Status messages: nothing crashes, log details are short single lines,
/// publications are owed exactly when something changed, and the list and
/// detail views published agree with each other and with the replies.
pub fn status(data: &[u8]) {
    let mut manager = fresh_manager();
    for frames in messages(data) {
        let outcome = manager.handle_status_message(&frames);
        match &outcome {
            StatusOutcome::Malformed(why) => assert_one_short_line("malformed", &why.to_string()),
            StatusOutcome::Rejected(why) => assert_one_short_line("rejected", &why.to_string()),
            StatusOutcome::Changed { id, .. } => assert_one_short_line("changed id", id),
            StatusOutcome::Unchanged | StatusOutcome::NotForUs => {}
        }
        let publications = manager.take_publications(1371071554.16);
        assert_eq!(
            publications.is_some(),
            matches!(outcome, StatusOutcome::Changed { .. }),
            "{outcome:?}"
        );
        let Some(publications) = publications else {
            continue;
        };
        // The seed's pair, then the 0.5 dialect's three (PROTOCOL.md §8).
        let Ok([list, detail, _, _, _]) = <[_; 5]>::try_from(publications.collect::<Vec<_>>()) else {
            panic!("not exactly five publications (list, detail, client.list, client.detail, client.conversion)");
        };
        assert_eq!(list[0], b"clients.list.1371071554_16.0_1");
        assert_eq!(detail[0], b"clients.detail.1371071554_16.0_1");
        let (list, detail) = (json(&list[1], "list"), json(&detail[1], "detail"));
        let (list_map, detail_map) = (list.as_object().expect("map"), detail.as_object().expect("map"));
        assert_eq!(list_map.len(), 3);
        assert_eq!(
            list_map.keys().collect::<Vec<_>>(),
            detail_map.keys().collect::<Vec<_>>()
        );
        for (id, entry) in list_map {
            assert_eq!(entry["status"], detail_map[id]["status"], "{id}");
        }
        let reply = manager.handle_request(&[b"clients.list.get".to_vec(), b"{}".to_vec()]);
        assert_eq!(json(&reply.frames[1], "reply")["clients"], list);
    }
}

/// `info.json` bytes, after an optional `<folder name>\n` line: a valid
/// package is what Python would have parsed, written back in Python's
/// layout, and reading that again changes nothing; an invalid one has a
/// short one-line reason.
pub fn info_json(data: &[u8]) {
    // Only valid plugin names reach the parser: the scanner skips the rest.
    let (name, bytes) = match data.iter().position(|byte| *byte == b'\n') {
        Some(end) if end <= 64 => match std::str::from_utf8(&data[..end]) {
            Ok(name) if packages::is_valid_plugin_name(name) => (name.to_owned(), &data[end + 1..]),
            _ => ("demo".to_owned(), data),
        },
        _ => ("demo".to_owned(), data),
    };
    match packages::parse_info_json(&name, bytes) {
        Package::Invalid { reason } => assert_one_short_line("invalid reason", &reason),
        Package::Valid { data: written } => {
            let value = json(written.get().as_bytes(), "written data");
            let identity = &value["identity"];
            assert_eq!(identity["type"], "plugin");
            let declared = identity.get("name").or_else(|| identity.get("id"));
            assert_eq!(declared.and_then(Value::as_str), Some(name.as_str()));
            assert!(written.get().is_ascii(), "Python's json.dumps writes ASCII");
            // Same value as a plain JSON reader sees in the original bytes.
            let original = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
            let original: Value = serde_json::from_slice(original).expect("accepted, so JSON");
            assert_eq!(value, original, "the data changed on the way");
            // Idempotent: our own output reads back as itself.
            match packages::parse_info_json(&name, written.get().as_bytes()) {
                Package::Valid { data: again } => assert_eq!(again.get(), written.get()),
                Package::Invalid { reason } => panic!("own output refused: {reason}"),
            }
        }
    }
}

/// Config text: an error is one line naming the file; a config accepted
/// is within the documented ranges and its endpoints read back as themselves.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // config::load refuses non-UTF-8 files before parsing.
    };
    let path = Path::new("/etc/domogik/manager.cfg");
    match config::parse(text, path, "darkstar.example.org") {
        Err(error) => {
            let line = error.to_string();
            assert!(line.starts_with("/etc/domogik/manager.cfg: "), "{line}");
            assert!(!line.contains(['\n', '\r']), "not one line: {line:?}");
        }
        Ok(config) => {
            assert!(!config.host.is_empty() && config.host.chars().count() <= config::MAX_HOST_LEN);
            assert!(config.host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            let secs = config.rescan_interval.as_secs();
            assert!((1..=86_400).contains(&secs), "{secs}");
            for endpoint in [&config.sub_endpoint, &config.pub_endpoint, &config.rep_endpoint] {
                assert_eq!(
                    config::Endpoint::parse(&endpoint.to_string()).as_ref(),
                    Ok(endpoint),
                    "{endpoint}"
                );
            }
        }
    }
}

/// xPL datagrams (up to 32, separated by 0x1E): a decoded one encodes
/// back to a datagram that decodes as itself (or is over the size limit
/// only because the last line feed was added); an error is a short line;
/// fed to the xPL devices' state (at most 4 kept, a minute between two
/// datagrams), the state stays bounded, holds no Domogik source, and its
/// deadline is never in the past after the timeouts are handled.
pub fn xpl(data: &[u8]) {
    use domogik_manager::core::liveness::Now;
    use domogik_manager::core::status::Status;
    use domogik_manager::core::xpl::devices::{Devices, Heard, DOMOGIK_VENDOR};
    use domogik_manager::core::xpl::message::{decode, encode, MAX_DATAGRAM};
    use std::time::{Duration, Instant};

    let minute = Duration::from_secs(60);
    let mut devices = Devices::new(4, minute);
    let mut now = Now {
        mono: Instant::now(),
        unix: 1_000_000.0,
    };
    for datagram in data.split(|byte| *byte == 0x1e).take(MAX_MESSAGES) {
        now = Now {
            mono: now.mono + minute,
            unix: now.unix + 60.0,
        };
        let message = match decode(datagram) {
            Ok(message) => message,
            Err(error) => {
                assert_one_short_line("xpl decode error", &error.to_string());
                continue;
            }
        };
        match encode(&message) {
            Ok(bytes) => {
                assert!(bytes.len() <= MAX_DATAGRAM);
                assert_eq!(decode(&bytes).as_ref(), Ok(&message), "{:?}", String::from_utf8_lossy(&bytes));
            }
            Err(size) => {
                assert!(size > MAX_DATAGRAM && size == datagram.len() + 1, "{size} from {}", datagram.len());
            }
        }
        let before = devices.len();
        match devices.handle_message(&message, now) {
            Heard::Added { source, forgotten } => {
                assert_eq!(source, message.source.as_str());
                assert_eq!(forgotten.is_some(), before == 4);
                assert_eq!(devices.get(&source).map(|device| device.status()), Some(Status::Alive));
            }
            Heard::Changed { source, status } => {
                assert_eq!(devices.get(&source).map(|device| device.status()), Some(status));
            }
            Heard::Seen | Heard::Ignored => assert_eq!(devices.len(), before),
        }
        assert!(devices.len() <= 4);
        assert!(devices.iter().all(|device| device.source().vendor() != DOMOGIK_VENDOR));
        for source in devices.handle_timeout(now.mono) {
            assert_eq!(devices.get(&source).map(|device| device.status()), Some(Status::Dead));
        }
        assert!(devices.poll_timeout().is_none_or(|deadline| deadline >= now.mono));
    }
}
