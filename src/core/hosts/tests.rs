//! The other hosts' view, with a fake clock.

use super::*;
use serde_json::json;

const FORWARD_DEADLINE_FOR_TESTS: Duration = forward::FORWARD_DEADLINE;

fn limits() -> Limits {
    Limits {
        max_hosts: 3,
        max_clients: 4,
        silent_after: Duration::from_secs(30),
        forget_after: Duration::from_secs(600),
    }
}

/// A v05 list entry of `name` on `host`.
fn entry(name: &str, host: &str, status: &str) -> String {
    format!(r#""plugin-{name}.{host}": {{"host": "{host}", "type": "plugin", "name": "{name}", "status": "{status}"}}"#)
}

fn view(entries: &[String]) -> String {
    format!("{{{}}}", entries.join(", "))
}

/// Host `host`'s manager publishing `own` as view `index`.
fn published(host: &str, instance: &str, index: usize, own: &str) -> Vec<Vec<Vec<u8>>> {
    Hosts::new(host, instance, limits()).clients_messages(index, own, 1.0)
}

fn feed(hosts: &mut Hosts, messages: Vec<Vec<Vec<u8>>>, now: Instant) {
    for message in messages {
        assert_eq!(hosts.handle_message(&message, now), Handled::Taken);
    }
}

fn status_of(host: &str, event: &str) -> Vec<Vec<u8>> {
    vec![
        b"plugin.status.1_0.0_1".to_vec(),
        format!(r#"{{"type": "core", "name": "manager", "host": "{host}", "event": "{event}"}}"#).into_bytes(),
    ]
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn other_hosts_clients_follow_ours_each_once() {
    let t0 = Instant::now();
    let mut hosts = Hosts::new("box", "1", limits());
    let own = view(&[entry("a", "box", "alive")]);
    assert_eq!(hosts.merged(2, &own, true), own, "no other host: ours as is");
    feed(
        &mut hosts,
        published(
            "garage",
            "7",
            2,
            &view(&[entry("x", "garage", "alive"), entry("y", "garage", "stopped")]),
        ),
        t0,
    );
    feed(
        &mut hosts,
        published("kitchen", "8", 2, &view(&[entry("z", "kitchen", "alive")])),
        t0,
    );
    let merged = parsed(hosts.merged(2, &own, false));
    let ids: Vec<&String> = merged.as_object().unwrap().keys().collect();
    assert_eq!(
        ids,
        ["plugin-a.box", "plugin-x.garage", "plugin-y.garage", "plugin-z.kitchen"],
        "ours, then each host's"
    );
    assert_eq!(merged["plugin-x.garage"]["host"], "garage");
    // The same host published again: replaced, not added.
    feed(
        &mut hosts,
        published("garage", "7", 2, &view(&[entry("x", "garage", "stopped")])),
        t0,
    );
    let merged = parsed(hosts.merged(2, &own, false));
    assert_eq!(merged.as_object().unwrap().len(), 3);
    assert_eq!(merged["plugin-x.garage"]["status"], "stopped");
    assert!(merged.get("plugin-y.garage").is_none(), "gone from its host: gone");
    // Other views are merged apart: the detail has none yet.
    assert_eq!(hosts.merged(3, "{}", true), "{}");
    let events = hosts.take_events();
    assert_eq!(
        events,
        [
            Event::Joined { host: "garage".into() },
            Event::Joined { host: "kitchen".into() }
        ]
    );
}

#[test]
fn nothing_naming_our_host_overrides_our_clients() {
    let t0 = Instant::now();
    let mut hosts = Hosts::new("box", "1", limits());
    let own = view(&[entry("a", "box", "stopped")]);
    // Our own, back through the forwarder: ignored without a word.
    feed(
        &mut hosts,
        published("box", "1", 2, &view(&[entry("a", "box", "alive")])),
        t0,
    );
    assert!(hosts.take_events().is_empty());
    // Another manager claiming our host: ignored, said.
    feed(
        &mut hosts,
        published("box", "666", 2, &view(&[entry("a", "box", "alive")])),
        t0,
    );
    assert_eq!(hosts.take_events(), [Event::Forged { instance: "666".into() }]);
    // Another host slipping our clients (or a third host's) into its own.
    feed(
        &mut hosts,
        published(
            "garage",
            "7",
            2,
            &view(&[
                entry("a", "box", "alive"),
                r#""plugin-b.garage": {"host": "box", "status": "alive"}"#.to_owned(),
                entry("c", "kitchen", "alive"),
                entry("x", "garage", "alive"),
            ]),
        ),
        t0,
    );
    let merged = parsed(hosts.merged(2, &own, true));
    assert_eq!(merged["plugin-a.box"]["status"], "stopped", "ours stays ours");
    assert_eq!(merged.as_object().unwrap().len(), 2, "{merged}");
    assert!(merged.get("plugin-x.garage").is_some());
    assert!(matches!(hosts.take_events().last(), Some(Event::Malformed { reason }) if reason.contains("3 entries")));
    // A manager status naming our host is ours (no instance to tell): nothing held.
    assert_eq!(hosts.handle_message(&status_of("box", "alive"), t0), Handled::Taken);
    assert_eq!(hosts.hosts().count(), 1);
}

#[test]
fn a_silent_host_is_shown_dead_then_back_then_forgotten() {
    let t0 = Instant::now();
    let mut hosts = Hosts::new("box", "1", limits());
    let detail = r#"{"plugin-x.garage": {"host": "garage", "status": "alive", "data": {"status": "alive"}, "comment": "hi"}, "plugin-y.garage": {"host": "garage", "status": "stopped"}}"#;
    feed(&mut hosts, published("garage", "7", 3, detail), t0);
    hosts.take_events();
    assert_eq!(hosts.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    hosts.handle_timeout(t0 + Duration::from_secs(30));
    assert!(hosts.take_events().is_empty(), "30 s is not more than 30 s");
    // Its manager's heartbeat keeps it.
    assert_eq!(
        hosts.handle_message(&status_of("garage", "alive"), t0 + Duration::from_secs(15)),
        Handled::Taken
    );
    hosts.handle_timeout(t0 + Duration::from_secs(44));
    assert!(hosts.take_events().is_empty());
    let silent_at = t0 + Duration::from_millis(45_001);
    assert_eq!(hosts.poll_timeout(), Some(t0 + Duration::from_secs(45)));
    hosts.handle_timeout(silent_at);
    assert_eq!(
        hosts.take_events(),
        [Event::Silent {
            host: "garage".into(),
            why: "host garage not heard from for more than 30 s".into(),
            stopped: false
        }]
    );
    assert!(hosts.take_publish_owed(), "subscribers must see it");
    let merged = parsed(hosts.merged(3, "{}", true));
    assert_eq!(merged["plugin-x.garage"]["status"], "dead", "not left alive");
    assert_eq!(
        merged["plugin-x.garage"]["comment"],
        "host garage not heard from for more than 30 s"
    );
    assert_eq!(merged["plugin-x.garage"]["data"]["status"], "alive", "data untouched");
    assert_eq!(merged["plugin-y.garage"]["status"], "stopped", "not running: as it was");
    // Back: shown as it published.
    hosts.handle_message(&status_of("garage", "alive"), silent_at + Duration::from_secs(5));
    assert_eq!(hosts.take_events(), [Event::Back { host: "garage".into() }]);
    assert_eq!(
        parsed(hosts.merged(3, "{}", false))["plugin-x.garage"]["status"],
        "alive"
    );
    // A clean stop: silent at once.
    let stop_at = silent_at + Duration::from_secs(6);
    hosts.handle_message(&status_of("garage", "stopped"), stop_at);
    assert!(
        matches!(&hosts.take_events()[..], [Event::Silent { why, .. }] if why == "the manager of host garage stopped")
    );
    assert_eq!(
        parsed(hosts.merged(3, "{}", false))["plugin-x.garage"]["status"],
        "dead"
    );
    // Forgotten after forget_after.
    assert_eq!(hosts.poll_timeout(), Some(stop_at + Duration::from_secs(600)));
    hosts.handle_timeout(stop_at + Duration::from_secs(601));
    assert!(matches!(&hosts.take_events()[..], [Event::Forgotten { host, .. }] if host == "garage"));
    assert_eq!(hosts.merged(3, "{}", false), "{}");
    assert_eq!(hosts.poll_timeout(), None);
}

#[test]
fn hosts_and_clients_are_bounded() {
    let t0 = Instant::now();
    let mut hosts = Hosts::new("box", "1", limits());
    for host in ["h1", "h2", "h3", "h4", "h5"] {
        let names: Vec<String> = (0..6).map(|i| entry(&format!("p{i}"), host, "alive")).collect();
        feed(&mut hosts, published(host, "1", 2, &view(&names)), t0);
    }
    assert_eq!(hosts.hosts().count(), 3);
    let merged = parsed(hosts.merged(2, "{}", true));
    assert_eq!(merged.as_object().unwrap().len(), 12, "3 hosts of 4 clients");
    let events = hosts.take_events();
    let too_many_hosts = events
        .iter()
        .filter(|event| matches!(event, Event::TooManyHosts { .. }))
        .count();
    assert_eq!(too_many_hosts, 1, "said once while it lasts: {events:?}");
    let cut = events
        .iter()
        .filter(|event| matches!(event, Event::TooManyClients { .. }))
        .count();
    assert_eq!(cut, 3, "once per host");
    // Not a host name: not held.
    feed(&mut hosts, published("a.b", "1", 2, "{}"), t0);
    assert_eq!(hosts.hosts().count(), 3);
}

#[test]
fn a_large_view_goes_in_parts_and_comes_back_whole() {
    let t0 = Instant::now();
    let big = "x".repeat(PART_BYTES / 3);
    let entries: Vec<String> = (0..4)
        .map(|i| format!(r#""plugin-p{i}.garage": {{"host": "garage", "status": "alive", "data": "{big}"}}"#))
        .collect();
    let own = view(&entries);
    let messages = published("garage", "7", 3, &own);
    assert_eq!(messages.len(), 2, "2 parts of at most {PART_BYTES} bytes of entries");
    for message in &messages {
        assert!(message[1].len() < PART_BYTES + 1024);
    }
    let mut hosts = Hosts::new(
        "box",
        "1",
        Limits {
            max_clients: 100,
            ..limits()
        },
    );
    // The second part alone is nothing.
    feed(&mut hosts, vec![messages[1].clone()], t0);
    assert_eq!(hosts.merged(3, "{}", true), "{}");
    feed(&mut hosts, messages, t0);
    let merged = parsed(hosts.merged(3, "{}", true));
    assert_eq!(merged, parsed(&own));
}

#[test]
fn hellos_bring_the_others_clients_at_once() {
    let t0 = Instant::now();
    let mut hosts = Hosts::new("box", "1", limits());
    assert_eq!(hosts.take_owed(), (false, false));
    hosts.joined_bus();
    assert_eq!(hosts.take_owed(), (true, true));
    let hello = hosts.hello(5.0);
    assert_eq!(hello[0], b"manager.hello.5_0.0_1");
    assert_eq!(
        parsed(std::str::from_utf8(&hello[1]).unwrap()),
        json!({"host": "box", "instance": "1"})
    );
    // Another manager's hello: our clients owed to it.
    let theirs = Hosts::new("garage", "7", limits()).hello(5.0);
    feed(&mut hosts, vec![theirs], t0);
    let (hello_owed, clients_owed) = hosts.take_owed();
    assert!(clients_owed);
    assert!(hello_owed, "a new host: its clients asked for too");
    // Its heartbeat while its clients have not come: asked again, not more than every 2 s.
    hosts.handle_message(&status_of("garage", "alive"), t0 + Duration::from_secs(1));
    assert_eq!(hosts.take_owed(), (false, false));
    hosts.handle_message(&status_of("garage", "alive"), t0 + Duration::from_secs(2));
    assert_eq!(hosts.take_owed(), (true, false));
    feed(
        &mut hosts,
        published("garage", "7", 2, "{}"),
        t0 + Duration::from_secs(3),
    );
    hosts.handle_message(&status_of("garage", "alive"), t0 + Duration::from_secs(9));
    assert_eq!(hosts.take_owed(), (false, false), "its clients came");
    // Plugins' statuses are the manager's.
    let plugin = vec![
        b"plugin.status.1_0.0_1".to_vec(),
        br#"{"type": "plugin", "name": "x", "host": "garage", "event": "alive"}"#.to_vec(),
    ];
    assert_eq!(hosts.handle_message(&plugin, t0), Handled::NotOurs);
    // Garbage is said, not taken.
    let garbage = vec![b"manager.clients.1_0.0_1".to_vec(), b"{nope".to_vec()];
    assert_eq!(hosts.handle_message(&garbage, t0), Handled::Taken);
    assert!(matches!(hosts.take_events().last(), Some(Event::Malformed { .. })));
}

#[test]
fn a_restarted_manager_is_said_and_its_new_clients_shown() {
    let t0 = Instant::now();
    let mut hosts = Hosts::new("box", "1", limits());
    feed(
        &mut hosts,
        published("garage", "7", 2, &view(&[entry("x", "garage", "alive")])),
        t0,
    );
    feed(
        &mut hosts,
        published("garage", "8", 2, &view(&[entry("x", "garage", "starting")])),
        t0,
    );
    assert_eq!(
        hosts.take_events(),
        [
            Event::Joined { host: "garage".into() },
            Event::Restarted { host: "garage".into() }
        ]
    );
    assert_eq!(
        parsed(hosts.merged(2, "{}", true))["plugin-x.garage"]["status"],
        "starting"
    );
}

/// A `plugin.start.do` for `host` as the broker hands it to a worker.
fn start_do(host: &str) -> Vec<Vec<u8>> {
    vec![
        b"MDPC01".to_vec(),
        b"manager".to_vec(),
        b"plugin.start.do".to_vec(),
        format!(r#"{{"type": "plugin", "name": "x", "host": "{host}"}}"#).into_bytes(),
    ]
}

/// The category and body of a published message.
fn message_of(frames: &[Vec<u8>]) -> (String, Value) {
    let category = wire::category_of(std::str::from_utf8(&frames[0]).unwrap())
        .unwrap()
        .to_owned();
    (category, parsed(std::str::from_utf8(&frames[1]).unwrap()))
}

#[test]
fn an_action_for_another_host_is_run_there_and_its_answer_relayed() {
    let t0 = Instant::now();
    let mut master = Hosts::new("master", "1", limits());
    let mut garage = Hosts::new("garage", "2", limits());
    feed(&mut master, vec![garage.hello(1.0)], t0);
    let envelope = vec![b"client-7".to_vec(), Vec::new()];
    // Ours, or not an action: answered here.
    assert_eq!(
        master.forward(&start_do("master"), envelope.clone(), "manager", t0),
        Forward::Local(envelope.clone())
    );
    let list = vec![b"client.list.get".to_vec(), br#"{"host": "garage"}"#.to_vec()];
    assert_eq!(
        master.forward(&list, envelope.clone(), "manager", t0),
        Forward::Local(envelope.clone())
    );
    // The garage's: forwarded.
    assert_eq!(
        master.forward(&start_do("garage"), envelope.clone(), "manager", t0),
        Forward::Waiting
    );
    let outgoing = master.take_outgoing(2.0);
    assert_eq!(outgoing.len(), 1);
    let (category, body) = message_of(&outgoing[0]);
    assert_eq!(category, "manager.do");
    assert_eq!(body["to"], "garage");
    assert_eq!(body["action"], "plugin.start.do");
    // The garage runs it as its own request, and answers.
    assert_eq!(garage.handle_message(&outgoing[0], t0), Handled::Taken);
    let incoming = garage.take_incoming();
    assert_eq!(incoming.len(), 1);
    assert_eq!(incoming[0].from, "master");
    assert_eq!(incoming[0].frames[0], b"plugin.start.do");
    let result = br#"{"type": "plugin", "name": "x", "host": "garage", "status": true, "reason": ""}"#;
    garage.answer_incoming(&incoming[0], &[b"plugin.start.result".to_vec(), result.to_vec()]);
    let done = garage.take_outgoing(3.0);
    assert_eq!(message_of(&done[0]).0, "manager.done");
    // A third manager sees it, and does nothing with it.
    let mut kitchen = Hosts::new("kitchen", "3", limits());
    feed(&mut kitchen, done.clone(), t0);
    assert!(kitchen.take_relayed().is_empty() && kitchen.take_incoming().is_empty());
    // The master relays it, in the request's framing, to its envelope.
    feed(&mut master, done.clone(), t0 + Duration::from_millis(10));
    let relayed = master.take_relayed();
    assert_eq!(
        relayed,
        [(
            envelope.clone(),
            vec![
                b"MDPC01".to_vec(),
                b"manager".to_vec(),
                b"plugin.start.result".to_vec(),
                result.to_vec()
            ]
        )]
    );
    assert_eq!(
        master.poll_timeout(),
        Some(t0 + Duration::from_millis(10) + Duration::from_secs(30))
    );
    // The same answer again (or late) relays nothing.
    feed(&mut master, done, t0);
    assert!(master.take_relayed().is_empty());
}

#[test]
fn an_unknown_silent_or_mute_host_is_refused_with_a_reason() {
    let t0 = Instant::now();
    let mut master = Hosts::new("master", "1", limits());
    let envelope = vec![b"c".to_vec(), Vec::new()];
    let reason = |forward: Forward| match forward {
        Forward::Reply(_, reply) => {
            assert_eq!(reply[2], b"plugin.start.result");
            let body = parsed(std::str::from_utf8(&reply[3]).unwrap());
            assert_eq!(body["status"], false);
            assert_eq!(body["name"], "x", "the request's fields");
            body["reason"].as_str().unwrap().to_owned()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        reason(master.forward(&start_do("attic"), envelope.clone(), "manager", t0)),
        "no manager of host attic on the bus"
    );
    feed(&mut master, vec![Hosts::new("garage", "2", limits()).hello(1.0)], t0);
    // No answer: refused at the deadline, not before.
    assert_eq!(
        master.forward(&start_do("garage"), envelope.clone(), "manager", t0),
        Forward::Waiting
    );
    assert_eq!(master.poll_timeout(), Some(t0 + FORWARD_DEADLINE_FOR_TESTS));
    master.handle_timeout(t0 + Duration::from_millis(4_999));
    assert!(master.take_relayed().is_empty());
    master.handle_timeout(t0 + Duration::from_secs(5));
    let relayed = master.take_relayed();
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].0, envelope);
    let body = parsed(std::str::from_utf8(&relayed[0].1[3]).unwrap());
    assert_eq!(body["reason"], "the manager of host garage did not answer within 5 s");
    // Silent: refused at once.
    master.handle_timeout(t0 + Duration::from_secs(31));
    assert!(
        reason(master.forward(&start_do("garage"), envelope, "manager", t0 + Duration::from_secs(31)))
            .starts_with("host garage not heard from for more than 30 s")
    );
}

#[test]
fn xpl_devices_another_manager_sees_are_shown_once() {
    let t0 = Instant::now();
    let mut hosts = Hosts::new("box", "1", limits());
    let lamp = r#""acme-lamp.hall": {"host": "hall", "type": "xpl_client", "name": "acme-lamp", "status": "alive"}"#;
    let ours = format!("{{{lamp}}}");
    feed(
        &mut hosts,
        published(
            "garage",
            "7",
            2,
            &view(&[entry("x", "garage", "alive"), lamp.to_owned()]),
        ),
        t0,
    );
    let relay = r#""acme-relay.shed": {"host": "shed", "type": "xpl_client", "name": "acme-relay", "status": "alive"}"#;
    feed(
        &mut hosts,
        published(
            "kitchen",
            "8",
            2,
            &view(&[lamp.replace("alive", "dead"), relay.to_owned()]),
        ),
        t0,
    );
    feed(
        &mut hosts,
        published("garage", "7", 4, r#"{"plugin-x.garage": {}, "acme-lamp.hall": null}"#),
        t0,
    );
    assert!(
        !hosts
            .take_events()
            .iter()
            .any(|event| matches!(event, Event::Malformed { .. })),
        "devices are not another host's forgeries"
    );
    let merged = parsed(hosts.merged(2, &ours, true));
    let text = hosts.merged(2, &ours, false).to_owned();
    assert_eq!(text.matches("\"acme-lamp.hall\": ").count(), 1, "each once: {text}");
    assert!(text.starts_with(&ours[..ours.len() - 1]), "ours first: {text}");
    assert_eq!(merged.as_object().unwrap().len(), 3);
    assert_eq!(merged["acme-lamp.hall"]["status"], "alive", "as we see it");
    let conversions = parsed(hosts.merged(4, "{}", true));
    assert_eq!(conversions, json!({"plugin-x.garage": {}, "acme-lamp.hall": null}));
}

#[test]
fn a_lone_manager_publishes_its_clients_only_when_asked() {
    let t0 = Instant::now();
    let mut hosts = Hosts::new("box", "1", limits());
    hosts.own_changed();
    assert_eq!(hosts.take_owed(), (false, false), "nobody to tell");
    feed(&mut hosts, vec![status_of("garage", "alive")], t0);
    assert_eq!(
        hosts.take_owed(),
        (true, true),
        "a host heard first: its clients asked for, ours owed to it (our change made alone included)"
    );
    hosts.own_changed();
    assert_eq!(hosts.take_owed(), (false, true));
}

#[test]
fn another_hosts_history_is_asked_of_its_manager() {
    let t0 = Instant::now();
    let mut master = Hosts::new("master", "1", limits());
    let ask = |host: &str| {
        vec![
            b"client.history.get".to_vec(),
            format!(r#"{{"type": "plugin", "name": "x", "host": "{host}"}}"#).into_bytes(),
        ]
    };
    let envelope = vec![b"c".to_vec(), Vec::new()];
    match master.forward(&ask("attic"), envelope.clone(), "manager", t0) {
        Forward::Reply(_, reply) => {
            assert_eq!(reply[0], b"client.history.result");
            let body = parsed(std::str::from_utf8(&reply[1]).unwrap());
            assert_eq!(body["history"], json!([]));
            assert_eq!(body["reason"], "no manager of host attic on the bus");
        }
        other => panic!("{other:?}"),
    }
    feed(&mut master, vec![Hosts::new("garage", "2", limits()).hello(1.0)], t0);
    assert_eq!(
        master.forward(&ask("garage"), envelope.clone(), "manager", t0),
        Forward::Waiting
    );
    let list = vec![b"client.list.get".to_vec(), br#"{"host": "garage"}"#.to_vec()];
    assert_eq!(
        master.forward(&list, envelope.clone(), "manager", t0),
        Forward::Local(envelope)
    );
}

#[test]
fn the_other_hosts_entries_are_held_within_a_byte_budget() {
    let t0 = Instant::now();
    let mut hosts = Hosts::new(
        "box",
        "1",
        Limits {
            max_hosts: 64,
            ..limits()
        },
    );
    hosts.max_bytes = 7 * PART_BYTES;
    // Each host publishes a detail view of 3 entries of almost a part each,
    // in 3 parts: the third host would pass the budget.
    let big = "x".repeat(PART_BYTES - 200);
    for index in 0..8 {
        let host = format!("h{index}");
        let entries: Vec<String> = (0..3)
            .map(|i| format!(r#""plugin-p{i}.{host}": {{"host": "{host}", "status": "alive", "data": "{big}"}}"#))
            .collect();
        feed(&mut hosts, published(&host, "1", 3, &view(&entries)), t0);
    }
    let held: usize = hosts.hosts.values().map(|held| held.bytes).sum();
    assert!(held <= 7 * PART_BYTES, "{held}");
    assert!(held > 5 * PART_BYTES, "two hosts held: {held}");
    let large = hosts
        .take_events()
        .into_iter()
        .filter(|event| matches!(event, Event::TooLarge { .. }))
        .count();
    assert_eq!(large, 6, "said once per host refused");
}

#[test]
fn an_entry_too_large_for_the_others_sub_is_not_sent() {
    let huge = "x".repeat(MAX_ENTRY_BYTES);
    let own = view(&[
        r#""plugin-a.garage": {"host": "garage", "status": "alive"}"#.to_owned(),
        format!(r#""plugin-b.garage": {{"host": "garage", "data": "{huge}"}}"#),
    ]);
    let messages = published("garage", "7", 3, &own);
    assert!(messages.iter().all(|message| message[1].len() < 1024 * 1024));
    let mut hosts = Hosts::new("box", "1", limits());
    feed(&mut hosts, messages, Instant::now());
    let merged = parsed(hosts.merged(3, "{}", true));
    assert_eq!(merged.as_object().unwrap().len(), 1, "only a");
}
