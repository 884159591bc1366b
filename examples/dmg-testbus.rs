//! `dmg-testbus`: a stand-in for a Domogik host's MQ, an MDP broker and an
//! XSUB/XPUB forwarder, for tests and for trying the manager by hand.
//!
//! ```text
//! cargo run --example dmg-testbus -- --broker tcp://127.0.0.1:40410 \
//!     --forwarder tcp://127.0.0.1:40411 tcp://127.0.0.1:40412 [--heartbeat-ms 1000] [--quiet]
//! ```
//! Prints the bound endpoints, then `dmg-testbus ready`, and runs until
//! killed. Either part may be left out. Not part of the manager: a test tool
//! (two threads, no signal handling).

// Tests and tools, not the core: they may do I/O and read the clock
// (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "dmg_testbus/broker.rs"]
mod broker;
#[path = "dmg_testbus/forwarder.rs"]
mod forwarder;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: dmg-testbus [--broker ENDPOINT] [--forwarder XSUB_ENDPOINT XPUB_ENDPOINT] [--heartbeat-ms N] [--quiet]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut broker_at, mut forwarder_at, mut heartbeat, mut quiet) = (None, None, 1000u64, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--broker" => broker_at = Some(args.next().unwrap_or_else(|| usage())),
            "--forwarder" => {
                let xsub = args.next().unwrap_or_else(|| usage());
                let xpub = args.next().unwrap_or_else(|| usage());
                forwarder_at = Some((xsub, xpub));
            }
            "--heartbeat-ms" => {
                heartbeat = args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| usage());
            }
            "--quiet" => quiet = true,
            _ => usage(),
        }
    }
    if broker_at.is_none() && forwarder_at.is_none() {
        usage();
    }
    let context = zmq::Context::new();
    let mut threads = Vec::new();
    if let Some((xsub_at, xpub_at)) = forwarder_at {
        let (xsub, xpub, xsub_endpoint, xpub_endpoint) = forwarder::bind(&context, &xsub_at, &xpub_at).unwrap_or_else(|e| {
            eprintln!("dmg-testbus: cannot bind the forwarder on {xsub_at} and {xpub_at}: {e}");
            std::process::exit(1)
        });
        println!("forwarder: publishers connect to {xsub_endpoint}, subscribers to {xpub_endpoint}");
        threads.push(std::thread::spawn(move || forwarder::forward(&xsub, &xpub, &AtomicBool::new(false))));
    }
    if let Some(at) = broker_at {
        let mut broker = broker::Broker::bind(&context, &at, Duration::from_millis(heartbeat), !quiet).unwrap_or_else(|e| {
            eprintln!("dmg-testbus: cannot bind the broker on {at}: {e}");
            std::process::exit(1)
        });
        println!("broker bound to {}", broker.endpoint);
        threads.push(std::thread::spawn(move || broker.run()));
    }
    println!("dmg-testbus ready");
    for thread in threads {
        let _ = thread.join();
    }
}
