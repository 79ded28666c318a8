#!/usr/bin/env python3
"""A TCP proxy that holds every chunk for a fixed delay in each direction,
like a network link between initiator and target: commands in flight
together stay in flight together (each chunk is held from the moment it
arrived, not after the one before it), so a client that saves round trips
shows it here as it would on a real network. Loopback alone hides that:
there a round trip costs little more than the CPU work around it.

Usage: latency-proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MICROSECONDS
(127.0.0.1 both sides; runs until killed). The proxy's own hop adds to
the delay; the benchmark's sequential floor measures the round trip.
"""
import queue
import socket
import sys
import threading
import time


def close_both(a, b):
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def read_side(src, held, delay):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            held.put((time.monotonic() + delay, data))
    except OSError:
        pass
    held.put((0.0, b""))


def write_side(dst, held, src):
    try:
        while True:
            due, data = held.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            dst.sendall(data)
    except OSError:
        pass
    close_both(src, dst)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: latency-proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MICROSECONDS")
    listen_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    delay = int(sys.argv[3]) / 1e6
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(64)
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", upstream_port))
        except OSError:
            client.close()
            continue
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for src, dst in ((client, upstream), (upstream, client)):
            held = queue.Queue()
            threading.Thread(target=read_side, args=(src, held, delay), daemon=True).start()
            threading.Thread(target=write_side, args=(dst, held, src), daemon=True).start()


if __name__ == "__main__":
    main()
