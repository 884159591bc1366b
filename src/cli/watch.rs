//! `dmg_manager watch`: follows the manager's publications and prints one
//! line per change (`TIME CLIENT WHAT`) until Ctrl-C or SIGTERM.
//!
//! It subscribes to `clients.detail`: the detail carries everything the
//! list does (status) plus the package data, which is how a reload is
//! seen, and the manager publishes it after every change. The xPL devices
//! (docs/PROTOCOL.md §11) are only in the 0.5 maps: it subscribes to
//! `client.list` too, and follows its clients that are no plugin. Before
//! the first publication it fetches the current detail (and 0.5 list) with
//! a request, so that the first change is shown as a change; the
//! subscriptions are made first, so no change falls between the two.
//!
//! Limit: a publication the manager sent just before it answered the fetch
//! may still be on its way; it is then shown as a change back to the
//! previous state, followed at once by the change to the current one.

use super::clients;
use super::endpoints::{self, Peer, Target};
use super::render::{changes, colour};
use super::{net, stdout_failed, ToolError, Unexpected};
use crate::core::config::Config;
use crate::core::manager::{DETAIL_CATEGORY, V05_LIST_CATEGORY};
use crate::core::wire;
use crate::sys::signals::SignalPipe;
use serde_json::{Map, Value};
use std::io::Write;
use std::time::{Duration, SystemTime};

/// The options of `watch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchOptions {
    /// How long the first fetch waits for the manager's reply.
    pub timeout: Duration,
}

/// Poll slots, by name.
const SLOT_SUB: usize = 0;
const SLOT_SIGNALS: usize = 1;

/// Runs `watch` until a signal, or until stdout is closed.
pub(crate) fn run(config: &Config, options: &WatchOptions) -> Result<(), ToolError> {
    let target = endpoints::target(Peer::Publications, config)?;
    let context = zmq::Context::new();
    let sub = net::connect(&context, zmq::SUB, &target)?;
    for category in [DETAIL_CATEGORY, V05_LIST_CATEGORY] {
        sub.set_subscribe(format!("{category}.").as_bytes())
            .map_err(|e| ToolError(format!("cannot subscribe at {}: {e}", target.address)))?;
    }
    let mut known = starting_point(&context, config, options.timeout, &target);
    // Installed after the fetch: until then Ctrl-C simply ends the process.
    // SIGHUP ends it too (the terminal is gone), as it would by default.
    let mut signals = SignalPipe::install().map_err(|e| ToolError(format!("cannot handle signals: {e}")))?;
    let colour = colour::enabled_for_stdout();
    loop {
        let mut items = [
            sub.as_poll_item(zmq::POLLIN),
            zmq::PollItem::from_fd(signals.fd(), zmq::POLLIN),
        ];
        match signals.while_waiting(|| zmq::poll(&mut items, -1)) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(e) => return Err(ToolError(format!("cannot poll: {e}"))),
        }
        let (sub_ready, signal_ready) = (items[SLOT_SUB].is_readable(), items[SLOT_SIGNALS].is_readable());
        if signal_ready {
            let received = signals.take();
            if received.terminate || received.rescan {
                return Ok(());
            }
        }
        if sub_ready && !follow(&sub, &mut known, colour)? {
            return Ok(());
        }
    }
}

/// The current clients (and xPL devices), fetched with requests, to
/// compare the first publications with; `None` (and a note on stderr) if
/// the manager does not answer, and then the first publication is the
/// starting point.
fn starting_point(context: &zmq::Context, config: &Config, timeout: Duration, publications: &Target) -> Known {
    match clients::fetch(context, config, true, timeout) {
        Ok(fetched) => {
            let devices = clients::fetch_v05_list(context, config, timeout).map(|list| devices_of(&list));
            eprintln!(
                "dmg_manager: watching {} clients at {} ({}); Ctrl-C to stop",
                fetched.clients.len(),
                publications.address,
                publications.origin
            );
            Known {
                clients: Some(fetched.clients),
                devices,
            }
        }
        Err(error) => {
            eprintln!(
                "dmg_manager: cannot fetch the current clients: {error}; watching {} anyway: \
                 the first publication will be the starting point",
                publications.address
            );
            Known {
                clients: None,
                devices: None,
            }
        }
    }
}

/// What each publication is compared with: the seed's detail (the
/// plugins) and the 0.5 list's clients that are no plugin (the xPL
/// devices); `None` until known.
struct Known {
    clients: Option<Map<String, Value>>,
    devices: Option<Map<String, Value>>,
}

/// The entries of a 0.5 list that are no plugin: the xPL devices.
fn devices_of(list: &Map<String, Value>) -> Map<String, Value> {
    list.iter()
        .filter(|(_, entry)| entry.get("type").and_then(Value::as_str) != Some("plugin"))
        .map(|(id, entry)| (id.clone(), entry.clone()))
        .collect()
}

/// Handles one publication waiting on `sub`. `Ok(false)`: stdout is
/// closed, time to stop.
///
/// One, not all that are queued: signals are only delivered while the loop
/// polls ([`SignalPipe::while_waiting`]), so draining a queue that a busy
/// manager keeps filling would leave Ctrl-C pending for as long as it does.
fn follow(sub: &zmq::Socket, known: &mut Known, colour: bool) -> Result<bool, ToolError> {
    let frames = match sub.recv_multipart(zmq::DONTWAIT) {
        Ok(frames) => frames,
        Err(zmq::Error::EAGAIN) => return Ok(true),
        Err(e) => return Err(ToolError(format!("cannot receive a publication: {e}"))),
    };
    let (category, map) = match decode_publication(&frames) {
        Ok(decoded) => decoded,
        Err(why) => {
            eprintln!("dmg_manager: publication ignored: {why}");
            return Ok(true);
        }
    };
    let changes = if category == V05_LIST_CATEGORY {
        let devices = devices_of(&map);
        let changes = known
            .devices
            .as_ref()
            .map(|previous| changes::diff(previous, &devices))
            .unwrap_or_default();
        known.devices = Some(devices);
        changes
    } else {
        let changes = match known.clients.as_ref() {
            Some(previous) => changes::diff(previous, &map),
            None => {
                eprintln!(
                    "dmg_manager: first publication: {} clients; changes are shown from now on",
                    map.len()
                );
                Vec::new()
            }
        };
        known.clients = Some(map);
        changes
    };
    let time = crate::sys::log::utc_timestamp(SystemTime::now());
    for (id, change) in changes {
        if let Err(error) = print_line(&changes::line(&time, &id, &change, colour)) {
            return stdout_failed(error).map_or(Ok(false), Err);
        }
    }
    Ok(true)
}

/// Writes one line and flushes it: `watch` is meant to be piped.
fn print_line(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// The category (`clients.detail` or `client.list`) and the clients map
/// of a publication.
fn decode_publication(frames: &[Vec<u8>]) -> Result<(&'static str, Map<String, Value>), Unexpected> {
    let [msg_id, body] = frames else {
        return Err(Unexpected::FrameCount(frames.len()));
    };
    let msg_id = std::str::from_utf8(msg_id).map_err(|_| Unexpected::MsgIdNotUtf8)?;
    let category = match wire::category_of(msg_id) {
        Some(DETAIL_CATEGORY) => DETAIL_CATEGORY,
        Some(V05_LIST_CATEGORY) => V05_LIST_CATEGORY,
        _ => return Err(Unexpected::MsgId(wire::truncate(msg_id, 60))),
    };
    let map = wire::parse_json_object(body).map_err(|why| Unexpected::Body(why.to_string()))?;
    Ok((category, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_publications_decode_to_their_map() {
        let frames = wire::encode_publication("clients.detail", 1.5, r#"{"a": {"status": "alive"}}"#.into());
        let (category, map) = decode_publication(&frames).unwrap();
        assert_eq!((category, &map["a"]["status"]), (DETAIL_CATEGORY, &Value::from("alive")));
        let frames = wire::encode_publication("client.list", 1.5, r#"{"a": {"type": "xpl_client"}}"#.into());
        assert_eq!(decode_publication(&frames).unwrap().0, V05_LIST_CATEGORY);
    }

    #[test]
    fn the_devices_are_the_0_5_lists_clients_that_are_no_plugin() {
        let list = serde_json::json!({
            "plugin-a.box": {"type": "plugin", "status": "stopped"},
            "acme-sensor.kitchen": {"type": "xpl_client", "status": "alive"},
        });
        let devices = devices_of(list.as_object().unwrap());
        assert_eq!(devices.keys().collect::<Vec<_>>(), ["acme-sensor.kitchen"]);
    }

    #[test]
    fn other_publications_are_refused_with_a_reason() {
        let list = wire::encode_publication("clients.list", 1.5, "{}".into());
        assert!(decode_publication(&list)
            .unwrap_err()
            .to_string()
            .contains("clients.list.1_5.0_1"));
        let not_json = vec![b"clients.detail.1_0.0_1".to_vec(), b"{".to_vec()];
        assert!(decode_publication(&not_json)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        let array = vec![b"clients.detail.1_0.0_1".to_vec(), b"[]".to_vec()];
        assert!(decode_publication(&array)
            .unwrap_err()
            .to_string()
            .contains("not a JSON object"));
        assert!(decode_publication(&[b"x".to_vec()])
            .unwrap_err()
            .to_string()
            .contains("got 1"));
    }
}
