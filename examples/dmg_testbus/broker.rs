//! A small MDP broker (Majordomo 0.1, rfc.zeromq.org/spec:7) with
//! Domogik's twist (PROTOCOL.md §7), written from the spec for the tests
//! and for `dmg-testbus`: one ROUTER, a service registry, heartbeats both
//! ways, silent workers dropped, a worker's DISCONNECT honoured at once, a
//! numeric timeout frame stripped and `None` kept. A request for a service
//! that has had a worker but has none now waits, for a while, for the next
//! one to register (the spec's SHOULD; Domogik's broker keeps it queued
//! too); one for a service never registered is dropped.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Frames = Vec<Vec<u8>>;

const CLIENT: &[u8] = b"MDPC01";
const WORKER: &[u8] = b"MDPW01";
const READY: u8 = 1;
const REQUEST: u8 = 2;
const REPLY: u8 = 3;
const HEARTBEAT: u8 = 4;
const DISCONNECT: u8 = 5;

/// Flags a running broker reads between polls.
#[derive(Default)]
pub struct Control {
    pub stop: AtomicBool,
    /// Send DISCONNECT to every worker, once, and forget them.
    pub disconnect_all: AtomicBool,
    /// Requests relayed to a worker, replies relayed to a client.
    pub requests: AtomicUsize,
    pub replies: AtomicUsize,
    /// Workers dropped because they were silent past the expiry.
    pub dropped: AtomicUsize,
    /// Workers that left by sending DISCONNECT.
    pub left: AtomicUsize,
}

/// Requests waiting for a worker of their service, at most this many each.
const MAX_WAITING: usize = 100;

struct Worker {
    service: Vec<u8>,
    expiry: Instant,
}

pub struct Broker {
    socket: zmq::Socket,
    pub endpoint: String,
    heartbeat: Duration,
    /// A worker silent this long is dropped (Domogik: 5 s).
    expiry: Duration,
    workers: HashMap<Vec<u8>, Worker>,
    /// Round-robin position per service.
    turn: HashMap<Vec<u8>, usize>,
    /// Every service that has had a worker, and the requests waiting for
    /// one (until their deadline), as `REQUEST` bodies.
    waiting: HashMap<Vec<u8>, VecDeque<(Instant, Frames)>>,
    /// How long a request waits for a worker: 10 worker expiries.
    wait_for: Duration,
    pub control: Arc<Control>,
    log: bool,
}

impl Broker {
    /// Binds `endpoint` (e.g. `tcp://127.0.0.1:*`); `heartbeat` is sent to
    /// each worker, and a worker silent for 5 heartbeats is dropped.
    pub fn bind(context: &zmq::Context, endpoint: &str, heartbeat: Duration, log: bool) -> zmq::Result<Broker> {
        let socket = context.socket(zmq::ROUTER)?;
        socket.set_linger(0)?;
        if endpoint.contains('[') {
            socket.set_ipv6(true)?;
        }
        socket.bind(endpoint)?;
        let endpoint = socket.get_last_endpoint()?.unwrap_or_else(|_| endpoint.to_owned());
        Ok(Broker {
            socket,
            endpoint,
            heartbeat,
            expiry: heartbeat * 5,
            workers: HashMap::new(),
            turn: HashMap::new(),
            waiting: HashMap::new(),
            wait_for: heartbeat * 50,
            control: Arc::new(Control::default()),
            log,
        })
    }

    fn say(&self, what: std::fmt::Arguments<'_>) {
        if self.log {
            eprintln!("broker: {what}");
        }
    }

    /// Serves until `control.stop` is set.
    pub fn run(&mut self) {
        let mut next_heartbeat = Instant::now() + self.heartbeat;
        while !self.control.stop.load(Ordering::SeqCst) {
            let left = next_heartbeat.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
            if self.socket.poll(zmq::POLLIN, left.as_millis() as i64).unwrap_or(0) > 0 {
                while let Ok(frames) = self.socket.recv_multipart(zmq::DONTWAIT) {
                    self.handle(frames);
                }
            }
            if self.control.disconnect_all.swap(false, Ordering::SeqCst) {
                for id in std::mem::take(&mut self.workers).into_keys() {
                    self.send_worker(&id, DISCONNECT, Vec::new());
                }
                self.say(format_args!("DISCONNECT sent to every worker"));
            }
            let now = Instant::now();
            if now >= next_heartbeat {
                next_heartbeat = now + self.heartbeat;
                let ids: Vec<Vec<u8>> = self.workers.keys().cloned().collect();
                for id in ids {
                    self.send_worker(&id, HEARTBEAT, Vec::new());
                }
                let expired: Vec<Vec<u8>> =
                    self.workers.iter().filter(|(_, w)| w.expiry <= now).map(|(id, _)| id.clone()).collect();
                for id in expired {
                    if let Some(worker) = self.workers.remove(&id) {
                        self.control.dropped.fetch_add(1, Ordering::SeqCst);
                        self.say(format_args!("worker of {} silent: dropped", String::from_utf8_lossy(&worker.service)));
                    }
                }
                let before: usize = self.waiting.values().map(VecDeque::len).sum();
                for queue in self.waiting.values_mut() {
                    queue.retain(|(deadline, _)| *deadline > now);
                }
                let expired = before - self.waiting.values().map(VecDeque::len).sum::<usize>();
                if expired > 0 {
                    self.say(format_args!("{expired} requests waited too long for a worker: dropped"));
                }
            }
        }
    }

    fn handle(&mut self, frames: Frames) {
        let mut frames = frames.into_iter();
        let (Some(sender), Some(empty), Some(header)) = (frames.next(), frames.next(), frames.next()) else {
            return;
        };
        if !empty.is_empty() {
            return;
        }
        let rest: Frames = frames.collect();
        if header == CLIENT {
            self.client_message(sender, rest);
        } else if header == WORKER {
            self.worker_message(sender, rest);
        }
    }

    fn client_message(&mut self, client: Vec<u8>, mut rest: Frames) {
        if rest.is_empty() {
            return;
        }
        let service = rest.remove(0);
        // Domogik's twist: a timeout frame that parses as a number is
        // removed; any other (its client's default "None") stays.
        if rest.len() == 3 && std::str::from_utf8(&rest[0]).ok().and_then(|t| t.parse::<f64>().ok()).is_some() {
            rest.remove(0);
        }
        let candidates: Vec<Vec<u8>> = {
            let mut ids: Vec<&Vec<u8>> = self.workers.iter().filter(|(_, w)| w.service == service).map(|(id, _)| id).collect();
            ids.sort();
            ids.into_iter().cloned().collect()
        };
        let mut body = vec![client, Vec::new()];
        body.extend(rest);
        if candidates.is_empty() {
            let name = String::from_utf8_lossy(&service).into_owned();
            match self.waiting.get_mut(&service) {
                Some(queue) if queue.len() < MAX_WAITING => {
                    queue.push_back((Instant::now() + self.wait_for, body));
                    self.say(format_args!("no worker of {name} now: the request waits for one"));
                }
                Some(_) => self.say(format_args!("too many requests wait for a worker of {name}: dropped")),
                None => self.say(format_args!("request for unknown service {name}: dropped")),
            }
            return;
        }
        let turn = self.turn.entry(service).or_insert(0);
        let id = candidates[*turn % candidates.len()].clone();
        *turn += 1;
        self.send_worker(&id, REQUEST, body);
        self.control.requests.fetch_add(1, Ordering::SeqCst);
    }

    fn worker_message(&mut self, id: Vec<u8>, mut rest: Frames) {
        if rest.is_empty() {
            return;
        }
        let command = rest.remove(0);
        let known = self.workers.contains_key(&id);
        match command.as_slice() {
            [READY] if !known => {
                let Some(service) = rest.first().cloned() else { return };
                self.say(format_args!("worker ready for {}", String::from_utf8_lossy(&service)));
                let now = Instant::now();
                let waiting = std::mem::take(self.waiting.entry(service.clone()).or_default());
                self.workers.insert(id.clone(), Worker { service, expiry: now + self.expiry });
                for (deadline, body) in waiting {
                    if deadline > now {
                        self.send_worker(&id, REQUEST, body);
                        self.control.requests.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            [REPLY] if known => {
                let Some(delimiter) = rest.iter().position(Vec::is_empty) else { return };
                let body = rest.split_off(delimiter + 1);
                rest.pop();
                let service = self.workers.get(&id).map(|w| w.service.clone()).unwrap_or_default();
                // As Domogik's broker (domogik-mq reqrep/broker.py): only a
                // HEARTBEAT keeps a worker alive, a REPLY does not.
                let mut message = rest;
                message.push(Vec::new());
                message.push(CLIENT.to_vec());
                message.push(service);
                message.extend(body);
                let _ = self.socket.send_multipart(message, zmq::DONTWAIT);
                self.control.replies.fetch_add(1, Ordering::SeqCst);
            }
            [HEARTBEAT] if known => self.refresh(&id),
            [DISCONNECT] => {
                if let Some(worker) = self.workers.remove(&id) {
                    self.control.left.fetch_add(1, Ordering::SeqCst);
                    self.say(format_args!("worker of {} left (DISCONNECT)", String::from_utf8_lossy(&worker.service)));
                }
            }
            // READY from a known worker, or anything from an unknown one.
            _ => {
                self.workers.remove(&id);
                self.send_worker(&id, DISCONNECT, Vec::new());
            }
        }
    }

    fn refresh(&mut self, id: &[u8]) {
        let expiry = Instant::now() + self.expiry;
        if let Some(worker) = self.workers.get_mut(id) {
            worker.expiry = expiry;
        }
    }

    fn send_worker(&self, id: &[u8], command: u8, body: Frames) {
        let mut message = vec![id.to_vec(), Vec::new(), WORKER.to_vec(), vec![command]];
        message.extend(body);
        let _ = self.socket.send_multipart(message, zmq::DONTWAIT);
    }

    /// How many workers are registered for `service`.
    pub fn workers_of(&self, service: &[u8]) -> usize {
        self.workers.values().filter(|w| w.service == service).count()
    }
}
