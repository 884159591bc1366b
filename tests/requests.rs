//! User interfaces asking for the clients list and details (REQ -> REP).

use crate::util::*;
use serde_json::json;

fn start() -> (TempDir, Daemon) {
    let dir = TempDir::new("requests");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, ""));
    (dir, daemon)
}

#[test]
fn list_in_plain_framing_has_every_fixture_as_unknown() {
    let (_dir, daemon) = start();
    let reply = daemon.request(&[b"clients.list.get", b"{}"]);
    assert_eq!(reply[0], b"clients.list.result");
    let clients = body_of(&reply[1])["clients"].clone();
    let ids: Vec<&String> = clients.as_object().unwrap().keys().collect();
    assert_eq!(
        ids,
        [
            "domogik-diskfree.testhost",
            "domogik-ebusd.testhost",
            "domogik-rfxcom.testhost",
            "domogik-test.testhost"
        ]
    );
    assert_eq!(
        clients["domogik-diskfree.testhost"],
        json!({"status": "unknown", "host": "testhost", "type": "plugin", "id": "diskfree", "configured": null})
    );
}

#[test]
fn list_reply_is_python_json_byte_for_byte() {
    let (_dir, daemon) = start();
    let reply = daemon.request(&[b"clients.list.get", b"{}"]);
    let text = String::from_utf8(reply[1].clone()).unwrap();
    // What Python's json.dumps writes: ", " and ": " separators, keys in
    // insertion order, the whole reply (not a prefix of it).
    let entries: Vec<String> = FIXTURE_NAMES
        .iter()
        .map(|name| {
            format!(
                r#""domogik-{name}.testhost": {{"status": "unknown", "host": "testhost", "type": "plugin", "id": "{name}", "configured": null}}"#
            )
        })
        .collect();
    assert_eq!(text, format!(r#"{{"clients": {{{}}}}}"#, entries.join(", ")));
}

#[test]
fn detail_carries_each_parsed_info_json() {
    let (_dir, daemon) = start();
    let clients = daemon.clients("clients.detail.get");
    for name in FIXTURE_NAMES {
        let entry = &clients[format!("domogik-{name}.testhost")];
        assert_eq!(entry["data"], fixture_json(name), "{name}");
        assert_eq!(entry["status"], "unknown");
        assert!(entry.get("comment").is_none());
    }
    // diskfree's file has "timeout" twice: one key remains, as in Python.
    let sensor = &clients["domogik-diskfree.testhost"]["data"]["sensors"]["get_free_space"];
    assert_eq!(sensor["timeout"], 0);
}

#[test]
fn mdp_framing_with_and_without_timeout() {
    let (_dir, daemon) = start();
    let reply = daemon.request(&[b"MDPC01", b"manager", b"clients.list.get", b"{}"]);
    assert_eq!(
        &reply[..3],
        &[b"MDPC01".to_vec(), b"manager".to_vec(), b"clients.list.result".to_vec()]
    );
    assert_eq!(body_of(&reply[3])["clients"].as_object().unwrap().len(), 4);

    let reply = daemon.request(&[b"MDPC01", b"manager", b"10", b"clients.detail.get", b"{}"]);
    assert_eq!(
        &reply[..3],
        &[
            b"MDPC01".to_vec(),
            b"manager".to_vec(),
            b"clients.detail.result".to_vec()
        ]
    );
    assert_eq!(
        body_of(&reply[3])["clients"]["domogik-test.testhost"]["data"],
        fixture_json("test")
    );
}

#[test]
fn every_bad_request_gets_an_error_and_the_next_one_is_served() {
    let (_dir, daemon) = start();
    let five_mb = vec![b'{'; 5 * 1024 * 1024];
    let cases: Vec<(&str, Vec<&[u8]>, bool)> = vec![
        ("garbage", vec![b"\x00\x01garbage\xff"], false),
        ("1 frame", vec![b"clients.list.get"], false),
        ("5 frames", vec![b"a", b"b", b"c", b"d", b"e"], false),
        ("non-UTF-8 action", vec![b"clients.\xfflist.get", b"{}"], false),
        ("non-UTF-8 body", vec![b"clients.list.get", b"{\"\xff\": 1}"], false),
        ("invalid JSON", vec![b"clients.list.get", b"{not json"], false),
        ("body not an object", vec![b"clients.list.get", b"[]"], false),
        ("unknown action", vec![b"clients.delete", b"{}"], false),
        (
            "wrong service",
            vec![b"MDPC01", b"xplgw", b"clients.list.get", b"{}"],
            true,
        ),
        (
            "MDP missing frames",
            vec![b"MDPC01", b"manager", b"clients.list.get"],
            true,
        ),
        ("5 MB frame", vec![b"clients.list.get", &five_mb], false),
    ];
    let socket = daemon.req_socket();
    for (what, frames, mdp) in cases {
        let reply = request_on(&socket, &frames);
        let (action, body) = if mdp {
            assert_eq!(reply.len(), 4, "{what}: {reply:?}");
            assert_eq!(reply[0], b"MDPC01", "{what}");
            assert_eq!(reply[1], frames[1], "{what}: the service is echoed");
            (&reply[2], &reply[3])
        } else {
            assert_eq!(reply.len(), 2, "{what}: {reply:?}");
            (&reply[0], &reply[1])
        };
        assert_eq!(action, b"error", "{what}");
        let body = body_of(body);
        assert_eq!(body["status"], false, "{what}");
        let reason = body["reason"].as_str().unwrap();
        assert!(!reason.is_empty() && !reason.contains('\n'), "{what}: {reason:?}");

        let reply = request_on(&socket, &[b"clients.list.get", b"{}"]);
        assert_eq!(reply[0], b"clients.list.result", "after {what}");
    }
}

#[test]
fn custom_service_name_is_answered() {
    let dir = TempDir::new("service");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, "service = dmgmanager\n"));
    let reply = daemon.request(&[b"MDPC01", b"dmgmanager", b"clients.list.get", b"{}"]);
    assert_eq!(reply[2], b"clients.list.result");
    let reply = daemon.request(&[b"MDPC01", b"manager", b"clients.list.get", b"{}"]);
    assert_eq!(reply[2], b"error");
}
