"""A Streamable HTTP MCP server for the specs (Python standard library
only). It listens on 127.0.0.1, port 0, prints the port on its first
stdout line, and appends one JSON line per HTTP request it gets to the
log file named by argv[1]: method, path, the MCP headers, the body.

The first path segment picks the behaviour:
  /json/mcp        answers every request with one JSON body
  /sse/mcp         answers every request with an SSE stream (a
                   notification first, then the response); its GET stream
                   sends one notification (retry 60 s) and ends
  /expire/mcp      after initialize, answers the first tools/call with 404
                   (session expired); a new initialize gets a new session
  /expire_all/mcp  every request after initialize gets 404
  /resume/mcp      tools/call: an SSE stream that sends a progress event
                   (id "e1", retry 50 ms) and is cut; GET with
                   Last-Event-ID: e1 gets the response
  /old/mcp         the old HTTP+SSE transport: POST 405, GET an SSE stream
                   that starts with an `endpoint` event
  /rpc_error/mcp   tools/call gets a JSON-RPC error -32602
"""
import itertools
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = open(sys.argv[1], "a") if len(sys.argv) > 1 else None
LOCK = threading.Lock()
SESSIONS = itertools.count(1)
STATE = {"expired": set()}
PENDING = {}  # session -> the tools/call id a cut stream owes


def log(entry):
    if LOG:
        with LOCK:
            LOG.write(json.dumps(entry) + "\n")
            LOG.flush()


def result(msg):
    m = msg.get("method")
    if m == "initialize":
        return {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                "serverInfo": {"name": "httpfault", "version": "1"}}
    if m == "tools/list":
        return {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
    if m == "tools/call":
        text = (msg.get("params") or {}).get("arguments", {}).get("text", "")
        return {"content": [{"type": "text", "text": "echo: " + text}], "isError": False}
    return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def mode(self):
        return self.path.strip("/").split("/")[0]

    def note(self, body=None):
        log({"method": self.command, "path": self.path, "session": self.headers.get("Mcp-Session-Id"),
             "version": self.headers.get("MCP-Protocol-Version"),
             "accept": self.headers.get("Accept"),
             "last_event_id": self.headers.get("Last-Event-ID"), "body": body})

    def send_json(self, status, obj, session=None):
        data = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        if session:
            self.send_header("Mcp-Session-Id", session)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def sse_start(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()

    def sse(self, data, ev_id=None, retry=None, event=None):
        out = ""
        if retry is not None:
            out += "retry: %d\n" % retry
        if ev_id:
            out += "id: %s\n" % ev_id
        if event:
            out += "event: %s\n" % event
        out += "data: %s\n\n" % (data if isinstance(data, str) else json.dumps(data))
        self.wfile.write(out.encode())
        self.wfile.flush()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode()
        self.note(raw)
        mode = self.mode()
        if mode == "old":
            return self.send_json(405, None)
        msg = json.loads(raw)
        session = self.headers.get("Mcp-Session-Id")
        if msg.get("method") == "initialize":
            return self.send_json(200, {"jsonrpc": "2.0", "id": msg["id"], "result": result(msg)},
                                  session="s%d" % next(SESSIONS))
        if mode == "expire_all" or (mode == "expire" and msg.get("method") == "tools/call"
                                    and session not in STATE["expired"] and session == "s1"):
            STATE["expired"].add(session)
            return self.send_json(404, {"jsonrpc": "2.0", "error": {"code": -32001,
                                                                   "message": "session not found"}})
        if "id" not in msg or "method" not in msg:
            return self.send_json(202, None)
        if mode == "rpc_error" and msg["method"] == "tools/call":
            return self.send_json(200, {"jsonrpc": "2.0", "id": msg["id"],
                                        "error": {"code": -32602, "message": "bad arguments"}})
        reply = {"jsonrpc": "2.0", "id": msg["id"], "result": result(msg)}
        if mode == "sse":
            self.sse_start()
            self.sse({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "info", "data": "working"}})
            self.sse(reply, ev_id="a1")
            return
        if mode == "resume" and msg["method"] == "tools/call":
            PENDING[session] = reply
            self.sse_start()
            self.sse({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "info", "data": "cut next"}}, ev_id="e1", retry=50)
            self.close_connection = True
            return
        self.send_json(200, reply)

    def do_GET(self):
        self.note()
        mode = self.mode()
        if mode == "old":
            self.sse_start()
            self.sse("/messages?sessionId=1", event="endpoint")
            return
        session = self.headers.get("Mcp-Session-Id")
        if mode == "sse":  # the GET stream: one server notification, then the end
            self.sse_start()
            self.sse({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "info", "data": "from the GET stream"}}, retry=60000)
            return
        if mode == "resume" and self.headers.get("Last-Event-ID") == "e1" and session in PENDING:
            self.sse_start()
            self.sse(PENDING.pop(session), ev_id="e2")
            return
        self.send_json(405, None)

    def do_DELETE(self):
        self.note()
        self.send_json(200, None)


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
