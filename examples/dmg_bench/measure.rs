//! The client side of the measurements: user interfaces asking (REQ),
//! plugins announcing statuses (PUB), a user interface listening (SUB).
//! Each function measures the manager and the floor the same way.

use super::fixture::client_id;
use super::floor;
use super::stats::{summarize, Summary};
use super::Failure;
use domogik_manager::core::manager::LIST_CATEGORY;
use domogik_manager::core::status::Status;
use domogik_manager::core::wire::{self, StatusUpdate};
use std::time::{Duration, Instant};

/// No reply or publication within this is a failed run.
const DEADLINE: Duration = Duration::from_secs(30);
const WARM_UP_REQUESTS: usize = 100;
/// Statuses a burst cycles through; consecutive messages to one plugin
/// always differ, so every message is a change the manager must apply.
const CYCLE: [Status; 4] = [Status::Starting, Status::Alive, Status::StopRequest, Status::Stopped];
/// The statuses of a burst's last round, which appear nowhere before it:
/// a `clients.list` showing them all shows the end of the burst, never
/// an earlier state that happens to look the same.
const LAST: [Status; 2] = [Status::Dead, Status::NotConfigured];
/// The time in the `msg_id` of every status message sent.
const MSG_TIME: f64 = 1_764_000_000.5;

fn zmq_error(what: &str) -> impl Fn(zmq::Error) -> Failure + '_ {
    move |e| format!("{what}: {e}")
}

/// A REQ socket connected to `endpoint`, never waiting past the deadline.
pub fn req_socket(context: &zmq::Context, endpoint: &str) -> Result<zmq::Socket, Failure> {
    let socket = context.socket(zmq::REQ).map_err(zmq_error("REQ socket"))?;
    let millis = DEADLINE.as_millis() as i32;
    socket.set_linger(0).map_err(zmq_error("REQ linger"))?;
    socket.set_rcvtimeo(millis).map_err(zmq_error("REQ timeout"))?;
    socket.set_sndtimeo(millis).map_err(zmq_error("REQ timeout"))?;
    socket.connect(endpoint).map_err(zmq_error("REQ connect"))?;
    Ok(socket)
}

/// One plain-framed request; the reply frames.
pub fn request(socket: &zmq::Socket, action: &str) -> Result<Vec<Vec<u8>>, Failure> {
    socket
        .send_multipart([action.as_bytes(), b"{}"], 0)
        .map_err(|e| format!("cannot send {action}: {e}"))?;
    socket
        .recv_multipart(0)
        .map_err(|e| format!("no reply to {action} within {DEADLINE:?}: {e}"))
}

/// Round trips of `action` to the manager and to the floor, and of a bare
/// echo to the floor, interleaved request by request so that all three
/// see the same machine noise.
pub fn round_trips(
    manager: &zmq::Socket,
    floor: &zmq::Socket,
    action: &str,
    count: usize,
) -> Result<[Summary; 3], Failure> {
    let expected = action.replace(".get", ".result");
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for index in 0..WARM_UP_REQUESTS + count {
        let start = Instant::now();
        let reply = request(manager, action)?;
        let manager_time = start.elapsed();
        if reply.first().map(Vec::as_slice) != Some(expected.as_bytes()) {
            return Err(format!(
                "the manager answered {action} with {:?}",
                reply.first().map(|f| String::from_utf8_lossy(f).into_owned())
            ));
        }
        let start = Instant::now();
        request(floor, action)?;
        let floor_time = start.elapsed();
        let start = Instant::now();
        request(floor, floor::ECHO_ACTION)?;
        let echo_time = start.elapsed();
        if index >= WARM_UP_REQUESTS {
            samples[0].push(manager_time);
            samples[1].push(floor_time);
            samples[2].push(echo_time);
        }
    }
    Ok(samples.map(|mut times| summarize(&mut times)))
}

/// A plugin's PUB connected to a server's SUB endpoint, and a user
/// interface's SUB (prefix `clients.list`) connected to its PUB endpoint.
pub struct StatusLink {
    pub plugin: zmq::Socket,
    pub ui: zmq::Socket,
}

impl StatusLink {
    pub fn connect(context: &zmq::Context, sub_endpoint: &str, pub_endpoint: &str) -> Result<StatusLink, Failure> {
        let plugin = context.socket(zmq::PUB).map_err(zmq_error("plugin PUB"))?;
        plugin.set_linger(0).map_err(zmq_error("plugin PUB"))?;
        // Unlimited: a burst must queue here, never be dropped by us.
        plugin.set_sndhwm(0).map_err(zmq_error("plugin PUB"))?;
        plugin.connect(sub_endpoint).map_err(zmq_error("plugin connect"))?;
        let ui = context.socket(zmq::SUB).map_err(zmq_error("UI SUB"))?;
        ui.set_linger(0).map_err(zmq_error("UI SUB"))?;
        ui.set_rcvhwm(0).map_err(zmq_error("UI SUB"))?;
        ui.set_subscribe(LIST_CATEGORY.as_bytes())
            .map_err(zmq_error("UI SUB"))?;
        ui.connect(pub_endpoint).map_err(zmq_error("UI connect"))?;
        Ok(StatusLink { plugin, ui })
    }

    fn next(&self, within: Duration) -> Result<Option<Vec<Vec<u8>>>, Failure> {
        next_publication(&self.ui, within)
    }

    /// Drops every publication already queued.
    fn drain(&self) -> Result<(), Failure> {
        loop {
            match self.ui.recv_multipart(zmq::DONTWAIT) {
                Ok(_) => {}
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(e) => return Err(format!("UI receive: {e}")),
            }
        }
    }

    /// Waits for a publication whose body satisfies `wanted`.
    fn await_body(&self, what: &str, wanted: impl Fn(&str) -> bool) -> Result<Instant, Failure> {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(frames) = self.next(Duration::from_millis(100))? {
                if frames.get(1).is_some_and(|body| wanted(&String::from_utf8_lossy(body))) {
                    return Ok(Instant::now());
                }
            }
        }
        Err(format!("no publication {what} within {DEADLINE:?}"))
    }
}

/// The next publication's frames on `ui`, or `None` after `within`.
fn next_publication(ui: &zmq::Socket, within: Duration) -> Result<Option<Vec<Vec<u8>>>, Failure> {
    let mut items = [ui.as_poll_item(zmq::POLLIN)];
    zmq::poll(&mut items, within.as_millis() as i64).map_err(zmq_error("UI poll"))?;
    if !items[0].is_readable() {
        return Ok(None);
    }
    ui.recv_multipart(0).map(Some).map_err(zmq_error("UI receive"))
}

/// A status message in later Domogik's shape (`plugin.status`), as the
/// crate's own `status` command encodes it.
pub fn status_message(name: &str, host: &str, status: Status) -> Vec<Vec<u8>> {
    let update = StatusUpdate {
        name: name.to_owned(),
        host: Some(host.to_owned()),
        status,
        comment: None,
    };
    wire::encode_status(&update, host, MSG_TIME)
}

/// What a `clients.list` body says of one client, as a substring.
fn shows(id: &str, status: Status) -> String {
    format!(r#""{id}": {{"status": "{status}""#)
}

/// The statuses the manager was last told, to send only real changes.
pub struct Plugins {
    pub names: Vec<String>,
    pub host: String,
    current: Vec<Status>,
}

impl Plugins {
    pub fn new(names: Vec<String>, host: &str) -> Plugins {
        let current = vec![Status::Unknown; names.len()];
        Plugins {
            names,
            host: host.to_owned(),
            current,
        }
    }

    /// Sends plugin `index` a status other than its current one; returns
    /// the substring the next `clients.list` must contain.
    fn flip(&mut self, link: &StatusLink, index: usize) -> Result<String, Failure> {
        let next = if self.current[index] == Status::Alive {
            Status::Stopped
        } else {
            Status::Alive
        };
        self.current[index] = next;
        let name = &self.names[index];
        link.plugin
            .send_multipart(status_message(name, &self.host, next), 0)
            .map_err(zmq_error("plugin send"))?;
        Ok(shows(&client_id(name), next))
    }
}

/// Pub/sub links come up asynchronously and drop messages until then:
/// flip a status until the user interface sees a publication.
pub fn warm_up(link: &StatusLink, plugins: &mut Plugins) -> Result<(), Failure> {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        plugins.flip(link, 0)?;
        if link.next(Duration::from_millis(50))?.is_some() {
            std::thread::sleep(Duration::from_millis(50));
            return link.drain();
        }
    }
    Err(format!("pub/sub links not up within {DEADLINE:?}"))
}

/// Time from a status message sent to the `clients.list` that shows it.
pub fn status_latency(link: &StatusLink, plugins: &mut Plugins, samples: usize) -> Result<Summary, Failure> {
    let mut times = Vec::with_capacity(samples);
    for index in 0..samples {
        link.drain()?;
        let start = Instant::now();
        let needle = plugins.flip(link, index % plugins.names.len())?;
        let seen = link.await_body("showing a status", |body| body.contains(&needle))?;
        times.push(seen - start);
    }
    Ok(summarize(&mut times))
}

/// Time from a status message sent to the floor's next publication.
pub fn floor_latency(link: &StatusLink, plugins: &mut Plugins, samples: usize) -> Result<Summary, Failure> {
    let mut times = Vec::with_capacity(samples);
    for index in 0..samples {
        link.drain()?;
        let start = Instant::now();
        plugins.flip(link, index % plugins.names.len())?;
        link.next(DEADLINE)?
            .ok_or("the floor published nothing after a status message")?;
        times.push(start.elapsed());
    }
    Ok(summarize(&mut times))
}

/// A burst: `rounds` status messages per plugin, plugin after plugin.
pub struct Burst {
    messages: Vec<Vec<Vec<u8>>>,
    /// The last status sent to each plugin.
    final_statuses: Vec<Status>,
    /// What the final `clients.list` must show, one substring per plugin.
    final_shows: Vec<String>,
}

impl Burst {
    pub fn new(plugins: &Plugins, total: usize) -> Burst {
        let count = plugins.names.len();
        let rounds = total.div_ceil(count);
        let status = |round: usize, index: usize| {
            if round + 1 == rounds {
                LAST[index % LAST.len()]
            } else {
                CYCLE[(round + index) % CYCLE.len()]
            }
        };
        let messages = (0..rounds * count)
            .map(|i| status_message(&plugins.names[i % count], &plugins.host, status(i / count, i % count)))
            .collect();
        let final_statuses: Vec<Status> = (0..count).map(|index| status(rounds - 1, index)).collect();
        let final_shows = plugins
            .names
            .iter()
            .zip(&final_statuses)
            .map(|(name, status)| shows(&client_id(name), *status))
            .collect();
        Burst {
            messages,
            final_statuses,
            final_shows,
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Records that the burst was delivered, so later flips are changes.
    pub fn delivered(&self, plugins: &mut Plugins) {
        plugins.current.clone_from(&self.final_statuses);
    }
}

/// What a burst showed.
#[derive(Debug, Clone, Copy)]
pub struct Ingestion {
    /// From the first message sent to the publication showing the last.
    pub elapsed: Duration,
    /// How long the benchmark took to hand every message to ZeroMQ.
    pub send_time: Duration,
    pub publications: usize,
}

/// Sends the burst from a second thread; waits on the user interface for
/// the publication that `is_final` recognises.
fn run_burst(
    link: StatusLink,
    burst: &Burst,
    is_final: impl Fn(&[Vec<u8>]) -> bool,
) -> Result<(StatusLink, Ingestion), Failure> {
    link.drain()?;
    let StatusLink { plugin, ui } = link;
    let messages = burst.messages.clone();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        for message in messages {
            if let Err(e) = plugin.send_multipart(message, 0) {
                return Err(format!("plugin send: {e}"));
            }
        }
        Ok((plugin, start.elapsed()))
    });
    let mut publications = 0;
    let deadline = start + DEADLINE;
    let seen = loop {
        if Instant::now() > deadline {
            break None;
        }
        if let Some(frames) = next_publication(&ui, Duration::from_millis(100))? {
            publications += 1;
            if is_final(&frames) {
                break Some(Instant::now());
            }
        }
    };
    let (plugin, send_time) = sender
        .join()
        .map_err(|_| "the burst sender thread panicked".to_string())??;
    let seen = seen.ok_or_else(|| {
        format!("after a burst of {} messages no publication showed the last status of every plugin within {DEADLINE:?}: messages were lost", burst.len())
    })?;
    let link = StatusLink { plugin, ui };
    Ok((
        link,
        Ingestion {
            elapsed: seen - start,
            send_time,
            publications,
        },
    ))
}

/// The manager's ingestion: done when a `clients.list` shows the last
/// status of every plugin (which also proves nothing was lost).
pub fn manager_ingestion(link: StatusLink, burst: &Burst) -> Result<(StatusLink, Ingestion), Failure> {
    let last = burst.final_shows.last().cloned().unwrap_or_default();
    run_burst(link, burst, |frames| {
        let Some(body) = frames.get(1).and_then(|b| std::str::from_utf8(b).ok()) else {
            return false;
        };
        // Cheap test first: the last message sent names the last plugin.
        body.contains(&last) && burst.final_shows.iter().all(|shown| body.contains(shown))
    })
}

/// The floor's ingestion: done when its publication counts every message.
pub fn floor_ingestion(
    link: StatusLink,
    plugins: &mut Plugins,
    burst: &Burst,
) -> Result<(StatusLink, Ingestion), Failure> {
    // The floor's count runs from its start: learn where it stands.
    link.drain()?;
    plugins.flip(&link, 0)?;
    let frames = link
        .next(DEADLINE)?
        .ok_or("the floor published nothing after a status message")?;
    let before = frames.first().and_then(|id| floor::count_of(id)).unwrap_or(0);
    let total = before + burst.len() as u64;
    run_burst(link, burst, |frames| {
        frames
            .first()
            .and_then(|id| floor::count_of(id))
            .is_some_and(|count| count >= total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_ends_in_statuses_it_never_sent_before() {
        let names = (0..3).map(|i| format!("p{i}")).collect();
        let plugins = Plugins::new(names, "h");
        let burst = Burst::new(&plugins, 30);
        assert_eq!(burst.len(), 30);
        assert_eq!(
            burst.final_statuses,
            [Status::Dead, Status::NotConfigured, Status::Dead]
        );
        let bodies: Vec<String> = burst
            .messages
            .iter()
            .map(|message| String::from_utf8_lossy(&message[1]).into_owned())
            .collect();
        let (earlier, last_round) = bodies.split_at(27);
        assert!(earlier
            .iter()
            .all(|b| !b.contains("dead") && !b.contains("not-configured")));
        assert!(last_round[0].contains(r#""name": "p0""#) && last_round[0].contains("dead"));
        // Consecutive messages to one plugin always differ.
        for pair in bodies.chunks(3).collect::<Vec<_>>().windows(2) {
            for (a, b) in pair[0].iter().zip(pair[1]) {
                assert_ne!(a, b);
            }
        }
    }
}
