//! Faults the manager meets in the field: misbehaving peers on the request
//! port, a forwarder that restarts, packages that break on disk, signals
//! in storms. Each test checks that the manager goes on serving, unharmed.

use crate::util::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn start(label: &str, extra_manager_keys: &str) -> (TempDir, Daemon) {
    let dir = TempDir::new(label);
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, extra_manager_keys));
    (dir, daemon)
}

fn assert_list_reply(reply: &[Vec<u8>]) {
    assert_eq!(reply[0], b"clients.list.result", "{reply:?}");
    assert_eq!(body_of(&reply[1])["clients"].as_object().unwrap().len(), 4);
}

/// A ZMTP 3.0 greeting (64 bytes) for the NULL mechanism, as a client.
fn zmtp3_greeting() -> Vec<u8> {
    let mut greeting = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    greeting.extend(b"NULL");
    greeting.resize(64, 0);
    greeting
}

/// What non-ZeroMQ and broken peers send to the request port, in turn.
fn misbehave(address: &str, round: u64, noise: &mut Noise, stalled: &mut Vec<TcpStream>) {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return;
    };
    let _ = match round % 5 {
        // A port scanner: connect, close.
        0 => Ok(()),
        1 => stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\n\r\n"),
        2 => stream.write_all(&noise.bytes(512)),
        // What libzmq takes for a ZMTP 1.0 peer: an anonymous identity,
        // then a request without the empty delimiter, then gone. libzmq's
        // REP socket loses the next reply to someone else after this.
        3 => stream.write_all(&[1, 0, 2, 1, b'A', 2, 0, b'B']),
        // Half a greeting, then silence: a handshake that never ends.
        _ => stream.write_all(&zmtp3_greeting()[..20]),
    };
    if round % 5 == 4 && stalled.len() < 20 {
        stalled.push(stream);
    }
}

#[test]
fn non_zeromq_clients_never_cost_another_client_its_reply() {
    let (_dir, daemon) = start("non-zmq", "");
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let (stop_here, rounds_here, address) = (Arc::clone(&stop), Arc::clone(&rounds), tcp_address(&daemon.rep));
    let intruder = std::thread::spawn(move || {
        let (mut noise, mut stalled) = (Noise::new(5), Vec::new());
        while !stop_here.load(Ordering::Relaxed) {
            misbehave(
                &address,
                rounds_here.fetch_add(1, Ordering::Relaxed),
                &mut noise,
                &mut stalled,
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    });

    let client = daemon.req_socket();
    let deadline = Instant::now() + DEADLINE;
    let mut answered = 0;
    // Every request, plain or MDP, gets its reply, until the intruder has
    // done each of its tricks many times over.
    while answered < 300 || rounds.load(Ordering::Relaxed) < 250 {
        assert!(Instant::now() < deadline, "{answered} requests, {rounds:?} intrusions");
        if answered % 2 == 0 {
            assert_list_reply(&request_on(&client, &[b"clients.list.get", b"{}"]));
        } else {
            let reply = request_on(&client, &[b"MDPC01", b"manager", b"clients.detail.get", b"{}"]);
            assert_eq!(reply[2], b"clients.detail.result");
        }
        answered += 1;
    }
    stop.store(true, Ordering::SeqCst);
    intruder.join().unwrap();
    // A new client, after it all, is served too.
    assert_list_reply(&daemon.request(&[b"clients.list.get", b"{}"]));
}
