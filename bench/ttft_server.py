"""Time-to-first-token server for bench/ttft.sh (issue 26, part 4).

Serves connections one at a time: reads a request, sends the response
headers (Connection: close) at once, waits DELAY seconds so the client sits
idle in its wait, then notes CLOCK_MONOTONIC (the clock baseten.core.now
and the C floor read) and sends the first SSE event in one send, then the
rest and [DONE], and closes. Each noted time goes to stdout, one a line.
Usage: python3 ttft_server.py PORTFILE N
"""
import socket
import sys
import time

DELAY = 0.03
FIRST = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",' \
        b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}\n\n'
REST = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",' \
       b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        got = conn.recv(65536)
        if not got:
            return False
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        got = conn.recv(65536)
        if not got:
            break
        body += got
    return True


def main():
    portfile, n = sys.argv[1], int(sys.argv[2])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    with open(portfile, "w") as f:
        f.write(str(srv.getsockname()[1]))
    for _ in range(n):
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if read_request(conn):
            conn.sendall(HEAD)
            time.sleep(DELAY)
            t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
            conn.sendall(FIRST)
            print("%.9f" % t0, flush=True)
            time.sleep(0.002)
            conn.sendall(REST)
        conn.close()


main()
