#!/usr/bin/env python3
"""A tiny xPL hub for the tests (docs/PROTOCOL.md §11), as the xPL hub
specification describes one: it listens on one UDP port, registers every
local application whose hbeat.app (or config.app) gives a `port` and a
loopback `remote-ip`, relays every datagram to each registered application
(all of them for target=*, the sender included: that echo is how an
application knows it is registered), and forgets one at its hbeat.end
(after relaying it) or after 2 x its interval + 1 minute of silence.

Usage: xplhub.py [BIND_ADDRESS] [MINUTE_MS] [PORT]
  BIND_ADDRESS  default 127.255.255.255 (the loopback broadcast address, as
                the real-domogik host binds Domogik's hub); the port is the
                kernel's choice, printed first as `listening PORT`.
  MINUTE_MS     the length of an xPL minute, default 60000 (tests shorten it).
  PORT          default 0: the kernel's choice.
Each registration and removal is printed (`registered SOURCE PORT`,
`removed SOURCE`), and a line `invalid N` for each datagram that is not an
xPL message. Stops on SIGTERM or when stdin closes.
"""

import os
import select
import signal
import socket
import sys
import time


def parse(datagram):
    """(type, source, target, schema, body dict) or None. Lenient on purpose:
    the tests check the manager's decoder, not this one."""
    try:
        lines = datagram.decode("utf-8").split("\n")
        kind, open1, hop, source, target, close1, schema, open2 = lines[:8]
        if (open1, close1, open2) != ("{", "}", "{") or kind not in ("xpl-cmnd", "xpl-stat", "xpl-trig"):
            return None
        if not (hop.startswith("hop=") and source.startswith("source=") and target.startswith("target=")):
            return None
        body = {}
        for line in lines[8:]:
            if line == "}":
                return kind, source[7:], target[7:], schema, body
            name, sep, value = line.partition("=")
            if not sep:
                return None
            body.setdefault(name, value)
    except (UnicodeDecodeError, ValueError):
        return None
    return None


def main():
    bind = sys.argv[1] if len(sys.argv) > 1 else "127.255.255.255"
    minute = (float(sys.argv[2]) if len(sys.argv) > 2 else 60000.0) / 1000.0
    hub = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hub.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    hub.bind((bind, int(sys.argv[3]) if len(sys.argv) > 3 else 0))
    print("listening %d" % hub.getsockname()[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    clients = {}  # source -> (port, interval in s, last heard)
    invalid = 0
    while True:
        now = time.monotonic()
        for source, (port, interval, heard) in list(clients.items()):
            if now > heard + 2 * interval + minute:
                del clients[source]
                print("removed %s" % source, flush=True)
        readable, _, _ = select.select([hub, sys.stdin], [], [], minute)
        if sys.stdin in readable and not sys.stdin.buffer.read1(1):
            return
        if hub not in readable:
            continue
        datagram, (ip, _) = hub.recvfrom(2048)
        message = parse(datagram)
        if message is None:
            invalid += 1
            print("invalid %d" % invalid, flush=True)
            continue
        kind, source, target, schema, body = message
        if schema in ("hbeat.app", "config.app") and ip.startswith("127.") and body.get("remote-ip", "").startswith("127."):
            try:
                port = int(body["port"])
                interval = max(1, int(body.get("interval", "5"))) * minute
            except (KeyError, ValueError):
                port = None
            if port:
                if clients.get(source, (None,))[0] != port:
                    print("registered %s %d" % (source, port), flush=True)
                clients[source] = (port, interval, time.monotonic())
        for client, (port, _, _) in list(clients.items()):
            if target == "*" or target == client:
                try:
                    hub.sendto(datagram, ("127.0.0.1", port))
                except OSError:
                    pass
        if schema == "hbeat.end" and source in clients:
            del clients[source]
            print("removed %s" % source, flush=True)


if __name__ == "__main__":
    main()
