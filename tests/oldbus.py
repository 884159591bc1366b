"""A Domogik bus on an old libzmq: pyzmq 16 (libzmq 4.1, ZMTP 3.0, no
PING/PONG), as Domogik 0.4/0.5 hosts on Debian Jessie and Stretch ran it.
Runs on Python 2.7 or 3.6 with pyzmq 16.0.x (tests/oldbus.rs finds or
installs one with scripts/old-pyzmq).

Usage:
  oldbus.py broker ENDPOINT [DOMOGIK_MQ_SRC]
  oldbus.py forwarder XSUB_ENDPOINT XPUB_ENDPOINT [DOMOGIK_MQ_SRC]
  oldbus.py domogik BROKER XSUB XPUB HOST SECONDS ROUNDS

broker, forwarder: with DOMOGIK_MQ_SRC (the `src` folder of a git export
of domogik/domogik-mq), Domogik's own MDPBroker and forwarder run, unchanged,
with their config file pointed at a temporary one; without it, the minimal
ones below, written for this test from the protocol (MDP 0.1 as Domogik's
broker speaks it, PROTOCOL.md section 7; Domogik's XSUB/XPUB forwarder).
Either way every frame arrives as libzmq 4.1 delivers it to Python: a ZMTP
3.1 command (PING) that a 4.1 peer does not know reaches the application
as a data frame.  The minimal broker and forwarder say so on stderr with a
line starting UNEXPECTED; Domogik's broker dies of it (IndexError in
on_message, "Uncaught exception, closing connection") and answers nothing.

domogik: what Domogik's components do on that bus for SECONDS, in ROUNDS
rounds: a plugin (PUB to the forwarder) announces a status, a user interface
(SUB, everything) waits for the manager's publication that shows it, and an
admin asks the manager through the broker (REQ, MQSyncReq's framing with a
timeout frame) for the clients list, which must show it too. Prints one
line `oldbus: N/N requests answered, N/N statuses applied, ...` and exits 0
when every round passed (it stops after 3 failures); UNEXPECTED lines for
anything else seen.
"""
from __future__ import print_function

import json
import os
import sys
import tempfile
import time
import types

import zmq

HEARTBEAT = 1.0  # s: Domogik's broker's
LIVENESS = 5  # broker heartbeats without a worker HEARTBEAT before it is dropped


def say(*parts):
    print(*parts, file=sys.stderr)
    sys.stderr.flush()


SAID = {}


def unexpected(kind, detail):
    """An UNEXPECTED line on stderr: the first 3 of each kind, then a count
    every 100 (a peer that sends the same wrong frame every second)."""
    SAID[kind] = SAID.get(kind, 0) + 1
    count = SAID[kind]
    if count <= 3:
        say("UNEXPECTED %s: %s" % (kind, detail))
    elif count % 100 == 0:
        say("UNEXPECTED %s: %d times so far" % (kind, count))


def text(frame):
    return frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame


# ------------------------------------------------------------- Domogik's own

def domogik_mq(src, ip, ports):
    """Imports domogik-mq from its source folder with a config file of our
    own (its Loader reads /etc/domogik/domogik-mq.cfg) and netifaces, which
    it imports for `ip = *` only, stubbed."""
    sys.path.insert(0, src)
    netifaces = types.ModuleType("netifaces")
    netifaces.AF_INET, netifaces.AF_INET6 = 2, 10
    netifaces.interfaces = lambda: ["lo"]
    netifaces.ifaddresses = lambda name: {}
    sys.modules.setdefault("netifaces", netifaces)
    logs = tempfile.mkdtemp(prefix="domogik-mq-")
    config = os.path.join(logs, "domogik-mq.cfg")
    with open(config, "w") as out:
        out.write("[mq]\nis_master = true\nlog_dir_path = %s\npid_dir_path = %s\nlog_level = info\n"
                  "ip = %s\nreq_rep_port = %s\npub_port = %s\nsub_port = %s\n"
                  % (logs, logs, ip, ports.get("req_rep", 0), ports.get("pub", 0), ports.get("sub", 0)))
    import domogikmq.configloader
    domogikmq.configloader.CONFIG_FILE = config
    # pyzmq's event loop logs a callback's exception through `logging`:
    # to stderr, where the test reads it.
    import logging
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    return logs


def split_tcp(endpoint):
    address, port = endpoint[len("tcp://"):].rsplit(":", 1)
    return address, port


def run_domogik_broker(src, endpoint):
    ip, port = split_tcp(endpoint)
    domogik_mq(src, ip, {"req_rep": port})
    from domogikmq.reqrep.broker import MDPBroker
    from zmq.eventloop.ioloop import IOLoop
    MDPBroker(zmq.Context(), endpoint)
    say("broker: domogik-mq's MDPBroker on %s" % endpoint)
    IOLoop.instance().start()


def run_domogik_forwarder(src, xsub, xpub):
    ip, pub_port = split_tcp(xsub)
    _, sub_port = split_tcp(xpub)
    logs = domogik_mq(src, ip, {"pub": pub_port, "sub": sub_port})
    from domogikmq.pubsub import forwarder
    say("forwarder: domogik-mq's forwarder on %s (XSUB) and %s (XPUB), log in %s" % (xsub, xpub, logs))
    forwarder.main()


# ----------------------------------------------------------- minimal ones

def run_broker(endpoint):
    """An MDP broker as Domogik's behaves towards a worker: READY registers
    it, a HEARTBEAT every second to it, dropped after 5 without its own;
    requests `[MDPC01, service, timeout?, ...]` go to the service's idle
    worker (queued when none), replies back to their client."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    router.bind(endpoint)
    say("broker: minimal MDP broker on %s" % endpoint)
    workers = {}  # id -> {"service", "liveness"}
    idle = {}  # service -> [worker ids]
    queued = {}  # service -> [(client address, body)]
    next_beat = time.time() + HEARTBEAT

    def dispatch(service):
        while idle.get(service) and queued.get(service):
            worker = idle[service].pop(0)
            client, body = queued[service].pop(0)
            router.send_multipart([worker, b"", b"MDPW01", b"\x02"] + client + [b""] + body)

    while True:
        timeout = max(0, next_beat - time.time())
        if router.poll(int(timeout * 1000) + 1):
            frames = router.recv_multipart()
            sender, rest = frames[0], frames[1:]
            if len(rest) >= 3 and rest[0] == b"" and rest[1] == b"MDPW01":
                command = rest[2]
                if command == b"\x01" and len(rest) == 4:
                    service = rest[3]
                    workers[sender] = {"service": service, "liveness": LIVENESS}
                    idle.setdefault(service, []).append(sender)
                    say("broker: worker registered for %s" % text(service))
                    dispatch(service)
                elif command == b"\x04" and sender in workers:
                    workers[sender]["liveness"] = LIVENESS
                elif command == b"\x03" and sender in workers and b"" in rest[3:]:
                    split = rest.index(b"", 3)
                    client, body = rest[3:split], rest[split + 1:]
                    service = workers[sender]["service"]
                    router.send_multipart(client + [b"", b"MDPC01", service] + body)
                    idle.setdefault(service, []).append(sender)
                    dispatch(service)
                elif command == b"\x05" and sender in workers:
                    service = workers.pop(sender)["service"]
                    idle[service] = [w for w in idle.get(service, []) if w != sender]
                elif command not in (b"\x03", b"\x04", b"\x05"):
                    unexpected("broker", "worker command %r" % rest[:3])
            elif len(rest) >= 4 and rest[0] == b"" and rest[1] == b"MDPC01":
                service, body = rest[2], rest[3:]
                try:
                    float(body[0])
                    body = body[1:]  # Domogik's broker takes a number as the timeout
                except ValueError:
                    pass
                queued.setdefault(service, []).append(([sender], body))
                dispatch(service)
            else:
                unexpected("broker", "a message that is no MDP message: %r" % rest)
        if time.time() >= next_beat:
            next_beat += HEARTBEAT
            for worker, state in list(workers.items()):
                state["liveness"] -= 1
                if state["liveness"] <= 0:
                    say("broker: worker for %s dropped (silent)" % text(state["service"]))
                    del workers[worker]
                    idle[state["service"]] = [w for w in idle.get(state["service"], []) if w != worker]
                else:
                    router.send_multipart([worker, b"", b"MDPW01", b"\x04"])


def run_forwarder(xsub_endpoint, xpub_endpoint):
    """Domogik's forwarder: XSUB where publishers connect, XPUB where
    subscribers connect, every message across. From the XPUB side only
    subscriptions (first byte 0 or 1) are expected."""
    context = zmq.Context()
    xsub = context.socket(zmq.XSUB)
    xsub.bind(xsub_endpoint)
    xpub = context.socket(zmq.XPUB)
    xpub.bind(xpub_endpoint)
    say("forwarder: minimal forwarder on %s (XSUB) and %s (XPUB)" % (xsub_endpoint, xpub_endpoint))
    poller = zmq.Poller()
    poller.register(xsub, zmq.POLLIN)
    poller.register(xpub, zmq.POLLIN)
    while True:
        events = dict(poller.poll(1000))
        if xsub in events:
            xpub.send_multipart(xsub.recv_multipart())
        if xpub in events:
            message = xpub.recv_multipart()
            if len(message) != 1 or message[0][:1] not in (b"\x00", b"\x01"):
                unexpected("forwarder", "from a subscriber, not a subscription: %r" % message)
            xsub.send_multipart(message)


# --------------------------------------------------------------- Domogik

def msg_id(category):
    """Domogik's msg_id: category, str(time.time()) with '_', version 0_1."""
    return "%s.%s.0_1" % (category, str(time.time()).replace(".", "_"))


def status_message(name, host, event):
    body = {"type": "plugin", "name": name, "host": host, "event": event}
    return [msg_id("plugin.status").encode(), json.dumps(body).encode()]


def request(context, broker, action, timeout):
    """What MQSyncReq sends: `[MDPC01, service, str(timeout), action, body]`
    on a REQ socket of its own; the reply's body, or None after `timeout`."""
    socket = context.socket(zmq.REQ)
    socket.linger = 0
    socket.connect(broker)
    socket.send_multipart([b"MDPC01", b"manager", str(timeout).encode(), action.encode(), b"{}"])
    try:
        if not socket.poll(int(timeout * 1000)):
            return None
        reply = socket.recv_multipart()
    finally:
        socket.close()
    if reply[:2] != [b"MDPC01", b"manager"] or len(reply) != 4:
        unexpected("domogik", "reply framing %r" % reply[:3])
        return None
    return json.loads(reply[3].decode())


def run_domogik(broker, xsub, xpub, host, seconds, rounds):
    context = zmq.Context()
    plugin = context.socket(zmq.PUB)
    plugin.linger = 0
    plugin.connect(xsub)
    ui = context.socket(zmq.SUB)
    ui.linger = 0
    ui.setsockopt(zmq.SUBSCRIBE, b"")
    ui.connect(xpub)
    client_id = "domogik-diskfree.%s" % host
    own_statuses = [0]

    def read_ui(wait):
        """Publications for `wait` s; the last clients.list among them."""
        latest = None
        until = time.time() + wait
        while ui.poll(max(1, int((until - time.time()) * 1000))):
            frames = ui.recv_multipart()
            if len(frames) != 2:
                unexpected("domogik", "a message of %d frames through the forwarder: %r" % (len(frames), frames))
                continue
            category = text(frames[0]).rsplit(".", 2)[0]
            try:
                body = json.loads(frames[1].decode())
            except ValueError:
                unexpected("domogik", "not JSON through the forwarder: %r" % frames)
                continue
            if category == "clients.list":
                latest = body
            elif category == "plugin.status" and body.get("type") == "core" and body.get("name") == "manager":
                own_statuses[0] += 1
            if time.time() >= until:
                break
        return latest

    # The manager registers with the broker, and the pub/sub links come up,
    # asynchronously: the first round starts once a request is answered.
    deadline = time.time() + 15
    while request(context, broker, "clients.list.get", 0.5) is None:
        if time.time() > deadline:
            unexpected("domogik", "the manager never answered through the broker")
            print("oldbus: 0/%d requests answered (the manager never answered)" % rounds)
            return 1
    started = time.time()
    answered = applied = 0
    failures = []
    for index in range(rounds):
        event = "alive" if index % 2 else "starting"
        # The status is announced until a publication shows it (the links
        # may still be coming up in the first round), for 5 s at most.
        seen = False
        until = time.time() + 5
        while not seen and time.time() < until:
            plugin.send_multipart(status_message("diskfree", host, event))
            latest = read_ui(0.2)
            seen = latest is not None and latest.get(client_id, {}).get("status") == event
        applied += seen
        body = request(context, broker, "clients.list.get", 5)
        if body is None:
            failures.append("round %d: no answer" % index)
        else:
            answered += 1
            status = body.get("clients", {}).get(client_id, {}).get("status")
            if status != event:
                failures.append("round %d: the list shows %s %s, not %s" % (index, client_id, status, event))
        if not seen:
            failures.append("round %d: no publication showed %s %s" % (index, client_id, event))
        if len(failures) >= 3:
            break  # a bus that is broken: say so now, not after every round's timeouts
        # The rounds are spread over SECONDS; the UI keeps reading meanwhile.
        pause = started + seconds * (index + 1) / float(rounds) - time.time()
        if pause > 0:
            read_ui(pause)
    for failure in failures:
        unexpected("domogik", failure)
    print("oldbus: %d/%d requests answered, %d/%d statuses applied, %d statuses of the manager itself seen, "
          "%.0f s, libzmq %s" % (answered, rounds, applied, rounds, own_statuses[0], time.time() - started,
                                 zmq.zmq_version()))
    sys.stdout.flush()
    return 0 if answered == rounds and applied == rounds and not failures else 1


def main():
    role, args = sys.argv[1], sys.argv[2:]
    if role == "broker":
        if len(args) > 1:
            run_domogik_broker(args[1], args[0])
        else:
            run_broker(args[0])
    elif role == "forwarder":
        if len(args) > 2:
            run_domogik_forwarder(args[2], args[0], args[1])
        else:
            run_forwarder(args[0], args[1])
    elif role == "domogik":
        broker, xsub, xpub, host, seconds, rounds = args
        sys.exit(run_domogik(broker, xsub, xpub, host, float(seconds), int(rounds)))
    else:
        sys.exit("unknown role %s" % role)


if __name__ == "__main__":
    main()
