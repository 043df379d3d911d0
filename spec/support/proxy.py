#!/usr/bin/env python3
"""A tiny forward proxy for the TLS specs: HTTP CONNECT tunnels only.

Python 3 standard library only.

Usage:
    python3 spec/support/proxy.py --port-file PATH --log PATH
        [--parent-pid PID] [--port 0]

Binds 127.0.0.1 (port 0 = ephemeral), writes the port to --port-file
(atomically), and for each "CONNECT host:port HTTP/1.1" request opens a TCP
connection to host:port, answers "200 Connection established" and relays
bytes both ways until either side closes. Each tunnel appends one line,
"CONNECT host:port", to --log (flushed at once), so a spec counts the
tunnels by counting lines. Any other method gets a 405. Serves until
SIGTERM, or until the --parent-pid process is gone.
"""

import argparse
import os
import select
import signal
import socket
import socketserver
import sys
import threading
import time

LOCK = threading.Lock()
LOG_PATH = None


def note(line):
    with LOCK:
        with open(LOG_PATH, "a") as f:
            f.write(line + "\n")
            f.flush()


def relay(a, b):
    socks = [a, b]
    while True:
        readable, _, failed = select.select(socks, [], socks, 60)
        if failed or not readable:
            return
        for s in readable:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                return
            other = b if s is a else a
            try:
                other.sendall(data)
            except OSError:
                return


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data or len(head) > 65536:
                return
            head += data
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) != 3 or parts[0] != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        target = parts[1]
        host, _, port = target.rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except (OSError, ValueError):
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        upstream.settimeout(None)
        note("CONNECT " + target)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        try:
            if rest:
                upstream.sendall(rest)
            relay(conn, upstream)
        finally:
            upstream.close()


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


def main():
    global LOG_PATH
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--parent-pid", type=int)
    args = ap.parse_args()
    LOG_PATH = args.log
    open(LOG_PATH, "a").close()

    def quit_now(*_):
        try:
            os.remove(args.port_file)
        except OSError:
            pass
        os._exit(0)

    signal.signal(signal.SIGTERM, quit_now)
    signal.signal(signal.SIGINT, quit_now)
    srv = Server(("127.0.0.1", args.port), Handler)
    if args.parent_pid:
        def watch():
            while True:
                try:
                    os.kill(args.parent_pid, 0)
                except ProcessLookupError:
                    quit_now()
                except PermissionError:
                    pass
                time.sleep(0.5)
        threading.Thread(target=watch, daemon=True).start()
    tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, args.port_file)
    sys.stdout.write("proxy on 127.0.0.1:%d\n" % srv.server_address[1])
    sys.stdout.flush()
    srv.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
