"""Domogik's side of the wire, in Python with pyzmq, as Domogik speaks it.

Usage: interop.py REP_ENDPOINT SUB_ENDPOINT PUB_ENDPOINT HOST [broker]
(the manager's endpoints: its REP, the SUB that plugins publish to, the PUB
that user interfaces subscribe to). Exits 0 when every check passed, else
prints what failed and exits 1. Written for this project from the protocol,
in the way Domogik's MQSyncReq, MQPub and MQAsyncSub frame messages.
"""
import json
import re
import sys
import time

import zmq

DEADLINE = 10.0
MSG_ID = re.compile(r"^clients\.(list|detail)\.\d+(_\d+)?\.0_1$")


def fail(message):
    print("interop FAILED: " + message)
    sys.exit(1)


def msg_id(category):
    """Domogik's msg_id: category, str(time.time()) with '_', version 0_1."""
    return "%s.%s.0_1" % (category, str(time.time()).replace(".", "_"))


def mdp_request(context, endpoint, action, timeout=None, body=None):
    """What MQSyncReq sends through a REQ socket, and what it checks back."""
    socket = context.socket(zmq.REQ)
    socket.linger = 0
    socket.connect(endpoint)
    frames = [b"MDPC01", b"manager"]
    if timeout is not None:
        frames.append(str(timeout).encode())
    frames += [action.encode(), json.dumps(body or {}).encode()]
    socket.send_multipart(frames)
    if not socket.poll(int(DEADLINE * 1000)):
        fail("no reply to %s" % action)
    reply = socket.recv_multipart()
    socket.close()
    if reply[:2] != [b"MDPC01", b"manager"] or len(reply) != 4:
        fail("MDP reply framing: %r" % reply[:3])
    return reply[2].decode(), json.loads(reply[3].decode())


def status_message(name, host, event):
    body = {"type": "plugin", "name": name, "host": host, "event": event}
    return [msg_id("plugin.status").encode(), json.dumps(body).encode()]


def main():
    rep, sub, pub, host = sys.argv[1:5]
    context = zmq.Context()

    action, body = mdp_request(context, rep, "clients.list.get")
    if action != "clients.list.result":
        fail("list action %s" % action)
    ids = sorted(body["clients"])
    expected = sorted("domogik-%s.%s" % (n, host) for n in ("diskfree", "ebusd", "rfxcom", "test"))
    if ids != expected:
        fail("list ids %r" % ids)
    through_broker = sys.argv[5:] == ["broker"]
    if through_broker:
        # Through Domogik's broker, its client's default timeout frame
        # "None" reaches the worker.
        action, body = mdp_request(context, rep, "clients.list.get", timeout="None")
        if action != "clients.list.result" or len(body["clients"]) != 4:
            fail("list with a None timeout: %s" % action)
    action, body = mdp_request(context, rep, "clients.detail.get", timeout=10)
    entry = body["clients"]["domogik-diskfree.%s" % host]
    if action != "clients.detail.result" or entry["data"]["identity"]["name"] != "diskfree":
        fail("detail reply %s %r" % (action, entry.get("data", {}).get("identity")))
    if entry["configured"] is not None or entry["type"] != "plugin":
        fail("detail entry fields %r" % entry)

    plugin = context.socket(zmq.PUB)
    plugin.linger = 0
    plugin.connect(sub)
    ui = context.socket(zmq.SUB)
    ui.linger = 0
    ui.setsockopt(zmq.SUBSCRIBE, b"clients.list")
    ui.setsockopt(zmq.SUBSCRIBE, b"clients.detail")
    ui.connect(pub)

    # Links come up asynchronously: flip a status until a publication shows it.
    seen = {}
    deadline = time.time() + DEADLINE
    flip = 0
    while "clients.detail" not in seen or seen["clients.detail"]["domogik-ebusd.%s" % host]["status"] != "alive":
        if time.time() > deadline:
            fail("no publication showing ebusd alive; saw %r" % list(seen))
        flip += 1
        plugin.send_multipart(status_message("ebusd", host, "alive" if flip % 2 else "starting"))
        while ui.poll(50):
            frames = ui.recv_multipart()
            if len(frames) != 2:
                fail("publication with %d frames" % len(frames))
            name = frames[0].decode()
            if not MSG_ID.match(name):
                fail("msg_id %r" % name)
            category = name.rsplit(".", 2)[0]
            content = json.loads(frames[1].decode())
            if category == "clients.detail" and "clients.list" not in seen:
                if through_broker:
                    # Through a forwarder the two subscriptions reach the
                    # manager's socket one after the other: a first detail
                    # may pass while the list before it was still filtered.
                    continue
                fail("detail published before list")
            seen[category] = content
    if seen["clients.list"]["domogik-ebusd.%s" % host]["status"] != "alive":
        fail("list and detail disagree")

    # The seed's older shape from a plugin that only knows its id.
    old = {"type": "plugin", "id": "rfxcom", "event": "dead"}
    plugin.send_multipart([msg_id("plugin").encode(), json.dumps(old).encode()])
    deadline = time.time() + DEADLINE
    while True:
        if time.time() > deadline:
            fail("no publication showing rfxcom dead")
        if ui.poll(100):
            frames = ui.recv_multipart()
            content = json.loads(frames[1].decode())
            if content["domogik-rfxcom.%s" % host]["status"] == "dead":
                break
    check_v05(context, rep, host)
    print("interop OK")


V05_LIST_FIELDS = ["compliant_xpl_clients", "configured", "host", "last_seen", "name", "package_id",
                   "pid", "status", "type", "xpl_clients_only", "xpl_source"]


def check_v05(context, rep, host):
    """The 0.5 actions (PROTOCOL.md section 8) as Domogik 0.5's admin, xPL
    gateway and plugins ask them: MQSyncReq with its default timeout, which
    it sends as the text None."""
    action, body = mdp_request(context, rep, "client.list.get", timeout="None")
    entry = body.get("plugin-ebusd.%s" % host)
    if action != "client.list.result" or entry is None:
        fail("client.list reply %s %r" % (action, sorted(body)))
    if sorted(entry) != V05_LIST_FIELDS:
        fail("client.list entry fields %r" % sorted(entry))
    if entry["status"] != "alive" or entry["xpl_source"] != "domogik-ebusd.%s" % host:
        fail("client.list entry %r" % entry)
    if not isinstance(entry["last_seen"], float) or entry["last_seen"] < time.time() - 60:
        fail("last_seen %r" % entry["last_seen"])
    action, body = mdp_request(context, rep, "client.detail.get", timeout="None")
    data = body["plugin-ebusd.%s" % host]["data"]
    if action != "client.detail.result" or data["identity"]["package_id"] != "plugin-ebusd":
        fail("client.detail reply %s %r" % (action, data.get("identity")))
    if data["configuration"][0]["key"] != "auto_startup":
        fail("auto_startup is not first: %r" % data["configuration"][:1])
    action, body = mdp_request(context, rep, "client.conversion.get", timeout="None")
    if action != "client.conversion.result" or body.get("plugin-ebusd.%s" % host) != {}:
        fail("client.conversion reply %s %r" % (action, body))
    who = {"type": "plugin", "name": "ebusd", "host": host}
    action, body = mdp_request(context, rep, "client.history.get", timeout="None", body=who)
    if action != "client.history.result" or body["status"] is not True:
        fail("client.history reply %s %r" % (action, body))
    stamps = [item["timestamp"] for item in body["history"]]
    if body["history"][0]["status"] != "alive" or stamps != sorted(stamps, reverse=True):
        fail("history not newest first: %r" % body["history"])
    action, body = mdp_request(context, rep, "datatype.get", timeout="None")
    if action != "datatype.result" or "datatypes" not in body:
        fail("datatype reply %s %r" % (action, body))
    action, body = mdp_request(context, rep, "device_types.get", timeout="None")
    if action != "device_types.result" or not body:
        fail("device_types reply %s %d types" % (action, len(body)))
    owner = next(iter(body.values()))
    if not owner["identity"]["package_id"].startswith("plugin-"):
        fail("device type owner %r" % owner["identity"])
    action, body = mdp_request(context, rep, "package.detail.get", timeout="None")
    if action != "package.detail.result" or "plugin-rfxcom" not in body:
        fail("package.detail reply %s %r" % (action, sorted(body)))


if __name__ == "__main__":
    main()
