#!/usr/bin/env python3
"""Tests for spec/support/server.py (and a smoke test of server.lua).

Run from anywhere:  python3 spec/support/test_server.py [-v]
Python 3 standard library only.
"""

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERVER = os.path.join(HERE, "server.py")

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


class ServerProc:
    def __init__(self, *extra, parent_pid=None):
        self.dir = tempfile.mkdtemp(prefix="bt-test-server-")
        self.port_file = os.path.join(self.dir, "port")
        cmd = [sys.executable, SERVER, "--port", "0",
               "--port-file", self.port_file,
               "--parent-pid", str(parent_pid or os.getpid())] + list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on http://127.0.0.1:"):
            raise RuntimeError("server failed: %r %r" % (
                line, self.proc.stderr.read()))
        self.port = int(line.rsplit(":", 1)[1])
        with open(self.port_file) as f:
            assert int(f.read()) == self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # control API
    def control(self, method, path, obj=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        body = json.dumps(obj).encode() if obj is not None else None
        c.request(method, path, body=body,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, json.loads(data)

    def reset(self):
        assert self.control("POST", "/_control/reset")[0] == 200

    def enqueue(self, *responses):
        st, res = self.control("POST", "/_control/enqueue",
                               {"responses": list(responses)})
        assert st == 200, res
        return res

    def requests(self):
        return self.control("GET", "/_control/requests")[1]["requests"]

    def stats(self):
        return self.control("GET", "/_control/stats")[1]


def read_until_close(sock, limit=None):
    out = []
    n = 0
    while True:
        b = sock.recv(65536)
        if not b:
            break
        out.append(b)
        n += len(b)
        if limit and n >= limit:
            break
    return b"".join(out)


def dechunk(data):
    """Decode a complete chunked body; returns (payload, complete)."""
    out = []
    i = 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return b"".join(out), False
        size = int(data[i:j].split(b";")[0], 16)
        if size == 0:
            return b"".join(out), data[j:j + 4] == b"\r\n\r\n"
        out.append(data[j + 2:j + 2 + size])
        if len(data) < j + 2 + size + 2:
            return b"".join(out), False
        i = j + 2 + size + 2


def sse_events(text):
    events = []
    for block in text.split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                events.append(line[6:])
    return events


class Base(unittest.TestCase):
    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.srv = ServerProc(*cls.extra_args)
        cls.port = cls.srv.port

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def setUp(self):
        self.srv.reset()

    def conn(self, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=timeout)
        self.addCleanup(c.close)
        return c

    def request(self, method, path, body=None, headers=None, timeout=10):
        c = self.conn(timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r, r.read()

    def chat(self, payload, headers=None):
        r, data = self.request("POST", "/v1/chat/completions", payload,
                               dict({"Content-Type": "application/json"},
                                    **(headers or {})))
        return r, data

    def raw(self, request_bytes, timeout=10):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        self.addCleanup(s.close)
        s.sendall(request_bytes)
        return s


GET_RAW = b"GET /v1/x HTTP/1.1\r\nHost: t\r\n\r\n"


class ScriptedTests(Base):

    def test_status_and_baseten_error_body(self):
        self.srv.enqueue({"status": 500, "json": {"error": "boom"}})
        r, data = self.request("GET", "/v1/whatever")
        self.assertEqual(r.status, 500)
        self.assertEqual(r.reason, "Internal Server Error")
        self.assertEqual(json.loads(data), {"error": "boom"})
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        self.assertEqual(int(r.getheader("Content-Length")), len(data))

    def test_openai_error_shape_for_unknown_path(self):
        r, data = self.request("GET", "/v1/nope")
        self.assertEqual(r.status, 404)
        err = json.loads(data)["error"]
        self.assertEqual(err["type"], "invalid_request_error")
        self.assertEqual(err["code"], "not_found")
        self.assertIn("/v1/nope", err["message"])

    def test_custom_reason_and_raw_body(self):
        self.srv.enqueue({"status": 529, "reason": "Overloaded",
                          "body": "plain text"})
        r, data = self.request("POST", "/v1/chat/completions", b"{}")
        self.assertEqual((r.status, r.reason, data),
                         (529, "Overloaded", b"plain text"))
        self.assertTrue(r.getheader("Content-Type").startswith("text/plain"))

    def test_headers_object_and_list(self):
        self.srv.enqueue(
            {"status": 429, "headers": {"Retry-After": "2",
                                        "retry-after-ms": "1500",
                                        "x-request-id": "abc"},
             "json": {"error": "slow down"}},
            {"headers": [["X-Dup", "1"], ["X-Dup", "2"],
                         ["Content-Type", "application/x-custom"]],
             "body": "x"})
        r, _ = self.request("GET", "/v1/a")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.getheader("Retry-After"), "2")
        self.assertEqual(r.getheader("retry-after-ms"), "1500")
        self.assertEqual(r.getheader("x-request-id"), "abc")
        r, _ = self.request("GET", "/v1/a")
        self.assertEqual(r.msg.get_all("X-Dup"), ["1", "2"])
        self.assertEqual(r.getheader("Content-Type"), "application/x-custom")

    def test_delay(self):
        self.srv.enqueue({"delay": 0.3, "json": {}})
        t = time.monotonic()
        r, _ = self.request("GET", "/v1/a")
        self.assertGreaterEqual(time.monotonic() - t, 0.29)
        self.assertEqual(r.status, 200)

    def test_fifo_order_then_default(self):
        self.srv.enqueue({"status": 201}, {"status": 202})
        res = self.srv.enqueue({"status": 203})
        self.assertEqual(res["queued"], 3)
        got = [self.request("GET", "/v1/models")[0].status for _ in range(4)]
        self.assertEqual(got, [201, 202, 203, 200])

    def test_enqueue_validation(self):
        st, res = self.srv.control("POST", "/_control/enqueue",
                                   {"responses": [{"stauts": 200}]})
        self.assertEqual(st, 400)
        self.assertIn("stauts", res["error"])
        st, _ = self.srv.control("POST", "/_control/enqueue",
                                 {"responses": [{"split": "words"}]})
        self.assertEqual(st, 400)
        self.assertEqual(self.srv.stats()["queued"], 0)

    def test_recorded_requests(self):
        s = self.raw(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
                     b"Host: 127.0.0.1\r\nX-Mixed-Case: Value 1\r\n"
                     b"authorization: Bearer k\r\nX-Mixed-Case: two\r\n"
                     b"Content-Length: 11\r\n\r\n{\"a\": \"\xc3\xa9\"}")
        s.recv(65536)
        reqs = self.srv.requests()
        self.assertEqual(len(reqs), 1)
        r = reqs[0]
        self.assertEqual(r["method"], "POST")
        self.assertEqual(r["path"], "/v1/chat/completions?x=1")
        self.assertEqual(r["http_version"], "HTTP/1.1")
        self.assertEqual(r["headers"], [
            ["Host", "127.0.0.1"], ["X-Mixed-Case", "Value 1"],
            ["authorization", "Bearer k"], ["X-Mixed-Case", "two"],
            ["Content-Length", "11"]])
        self.assertEqual(r["body"], '{"a": "\u00e9"}')
        self.assertEqual(base64.b64decode(r["body_b64"]),
                         b'{"a": "\xc3\xa9"}')
        self.assertEqual(r["json"], {"a": "\u00e9"})
        self.assertEqual(r["index"], 1)
        self.assertFalse(r["expect_100"])
        self.assertIsInstance(r["connection_id"], int)

    def test_recorded_binary_and_chunked_request_body(self):
        s = self.raw(b"POST /v1/x HTTP/1.1\r\nHost: t\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     b"3\r\n\xff\x00a\r\n2;ext=1\r\nbc\r\n0\r\nTrailer: x\r\n\r\n")
        s.recv(65536)
        r = self.srv.requests()[0]
        self.assertEqual(base64.b64decode(r["body_b64"]), b"\xff\x00abc")
        self.assertEqual(r["body"], "\ufffd\x00abc")
        self.assertIsNone(r["json"])

    def wait_idle(self):
        deadline = time.monotonic() + 3
        while self.srv.stats()["open_connections"] and \
                time.monotonic() < deadline:
            time.sleep(0.02)

    def test_keep_alive_connection_counting(self):
        self.wait_idle()
        c = self.conn()
        for _ in range(2):
            c.request("GET", "/v1/models")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        st = self.srv.stats()
        self.assertEqual(st["connections"], 1)
        self.assertEqual(st["requests"], 2)
        self.assertEqual(st["distinct_connections"], 1)
        self.assertEqual(st["open_connections"], 1)
        reqs = self.srv.requests()
        self.assertEqual(reqs[0]["connection_id"], reqs[1]["connection_id"])
        c.close()
        c2 = self.conn()
        c2.request("GET", "/v1/models")
        c2.getresponse().read()
        st = self.srv.stats()
        self.assertEqual(st["connections"], 2)
        self.assertEqual(st["distinct_connections"], 2)
        c2.close()
        self.wait_idle()
        self.assertEqual(self.srv.stats()["open_connections"], 0)

    def test_close_field(self):
        self.srv.enqueue({"json": {"a": 1}, "close": True})
        s = self.raw(GET_RAW)
        data = read_until_close(s)
        self.assertIn(b"Connection: close\r\n", data)
        self.assertTrue(data.endswith(b'{"a":1}'))

    def test_scripted_chunked_stream_with_done(self):
        self.srv.enqueue({"chunks": [
            'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n',
            "data: [DONE]\n\n"]})
        r, data = self.request("POST", "/v1/chat/completions", b"{}")
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
        self.assertEqual(sse_events(data.decode())[-1], "[DONE]")

    def test_chunks_not_chunked_close_delimited(self):
        self.srv.enqueue({"chunks": ["a", "b", {"b64": "/w=="}],
                          "chunked": False})
        s = self.raw(GET_RAW)
        data = read_until_close(s)
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertNotIn(b"Content-Length", head)
        self.assertNotIn(b"Transfer-Encoding", head)
        self.assertEqual(body, b"ab\xff")

    def test_byte_split(self):
        payload = b"data: hello world\n\n"
        self.srv.enqueue({"chunks": [payload.decode()], "split": "byte",
                          "write_delay": 0.002})
        s = self.raw(GET_RAW)
        reads = []
        while True:
            b = s.recv(65536)
            reads.append(b)
            if b.endswith(b"0\r\n\r\n"):
                break
        data = b"".join(reads)
        body = data.split(b"\r\n\r\n", 1)[1]
        self.assertIn(b"1\r\nd\r\n1\r\na\r\n", body)
        self.assertEqual(dechunk(body), (payload, True))
        self.assertGreater(len(reads), 10)

    def test_random_split_framing(self):
        payload = b"data: " + b"x" * 300 + b"\n\n"
        self.srv.enqueue({"chunks": [payload.decode()], "split": "random",
                          "seed": 7, "split_framing": True,
                          "write_delay": 0.001})
        s = self.raw(GET_RAW)
        reads = []
        while True:
            b = s.recv(65536)
            reads.append(b)
            if b"".join(reads).endswith(b"0\r\n\r\n"):
                break
        self.assertGreater(len(reads), 3)
        self.assertTrue(all(len(b) <= 128 for b in reads))
        body = b"".join(reads).split(b"\r\n\r\n", 1)[1]
        self.assertEqual(dechunk(body), (payload, True))

    def test_repeat_and_chunk_delay(self):
        self.srv.enqueue({"chunks": ["a", {"repeat": "xy", "count": 3}, "b"],
                          "chunk_delay": 0.1})
        t = time.monotonic()
        r, data = self.request("GET", "/v1/a")
        self.assertGreaterEqual(time.monotonic() - t, 0.19)
        self.assertEqual(data, b"axyxyxyb")

    def test_barrier(self):
        # two barrier streams: the first waits after its first chunk until
        # the second has sent its own, so their bodies interleave
        import threading
        for _ in range(2):
            self.srv.enqueue({"chunks": ["a", "b"], "barrier": 2})
        first = {}

        def read(i):
            c = self.conn()
            c.request("GET", "/v1/a")
            r = c.getresponse()
            first[i] = r.read()
        t1 = threading.Thread(target=read, args=(1,))
        t1.start()
        time.sleep(0.3)
        self.assertTrue(t1.is_alive())  # held at the barrier
        read(2)
        t1.join(10)
        self.assertEqual(first, {1: b"ab", 2: b"ab"})
        self.assertEqual(self.srv.stats()["barrier_most"], 2)
        self.assertEqual(self.srv.control(
            "POST", "/_control/enqueue", {"responses": [{"barrier": 0}]})[0],
            400)

    def test_trickle(self):
        self.srv.enqueue({"body": "abcde", "trickle": 0.05})
        t = time.monotonic()
        r, data = self.request("GET", "/v1/a")
        self.assertEqual(data, b"abcde")
        self.assertGreaterEqual(time.monotonic() - t, 0.19)

    def test_truncate_chunked(self):
        self.srv.enqueue({"chunks": ["data: 1\n\n", "data: 2\n\n"],
                          "truncate": True})
        r, _ = None, None
        c = self.conn()
        c.request("GET", "/v1/a")
        r = c.getresponse()
        with self.assertRaises(http.client.IncompleteRead) as cm:
            r.read()
        self.assertEqual(cm.exception.partial, b"data: 1\n\ndata: 2\n\n")

    def test_truncate_content_length(self):
        self.srv.enqueue({"body": "0123456789", "truncate": True})
        c = self.conn()
        c.request("GET", "/v1/a")
        r = c.getresponse()
        self.assertEqual(r.getheader("Content-Length"), "10")
        with self.assertRaises(http.client.IncompleteRead) as cm:
            r.read()
        self.assertEqual(cm.exception.partial, b"01234")

    def test_reset(self):
        self.srv.enqueue({"chunks": ["data: 1\n\n"], "reset": True})
        s = self.raw(GET_RAW)
        got = b""
        with self.assertRaises(ConnectionResetError):
            while True:
                time.sleep(0.05)
                b = s.recv(65536)
                got += b
                if not b:
                    break
        self.assertIn(b"data: 1", got)

    def test_stall_client_times_out(self):
        self.srv.enqueue({"chunks": ["data: 1\n\n"], "stall": 3})
        c = self.conn(timeout=0.5)
        c.request("GET", "/v1/a")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        t = time.monotonic()
        with self.assertRaises(socket.timeout):
            r.read()
        self.assertLess(time.monotonic() - t, 2)
        # the server keeps serving others meanwhile
        r2, _ = self.request("GET", "/v1/models")
        self.assertEqual(r2.status, 200)

    def test_stall_without_body_waits(self):
        self.srv.enqueue({"stall": 2})
        c = self.conn(timeout=0.4)
        c.request("GET", "/v1/a")
        r = c.getresponse()
        with self.assertRaises(socket.timeout):
            r.read()

    def test_delay_timeout_before_headers(self):
        self.srv.enqueue({"delay": 2})
        c = self.conn(timeout=0.3)
        c.request("GET", "/v1/a")
        with self.assertRaises(socket.timeout):
            c.getresponse()

    def test_garbage(self):
        self.srv.enqueue({"garbage": "HTTP/1.1 200 OK\r\nbroken"})
        s = self.raw(GET_RAW)
        self.assertEqual(read_until_close(s), b"HTTP/1.1 200 OK\r\nbroken")
        self.srv.enqueue({"garbage": {"b64": "AAEC/w=="}})
        s = self.raw(GET_RAW)
        self.assertEqual(read_until_close(s), b"\x00\x01\x02\xff")
        self.srv.enqueue({"garbage": "not http at all\r\n\r\n"})
        c = self.conn()
        c.request("GET", "/v1/a")
        with self.assertRaises(http.client.HTTPException):
            c.getresponse()

    def test_expect_100_ignore_is_default(self):
        self.srv.enqueue({"json": {"ok": True}})
        s = self.raw(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                     b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n",
                     timeout=0.3)
        with self.assertRaises(socket.timeout):
            s.recv(100)
        s.settimeout(5)
        s.sendall(b"{}")
        data = s.recv(65536)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"), data)
        r = self.srv.requests()[0]
        self.assertTrue(r["expect_100"])

    def test_expect_100_answer(self):
        self.srv.enqueue({"expect_100": "answer", "json": {"ok": True}})
        s = self.raw(b"POST /v1/x HTTP/1.1\r\nHost: t\r\n"
                     b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(s.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"{}")
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200 OK"))

    def test_big_repeat_is_fast(self):
        unit = "data: " + json.dumps({"choices": [{"delta": {
            "content": "x" * 120}}]}) + "\n\n"
        n = 200000
        self.srv.enqueue({"chunks": [{"repeat": unit, "count": n},
                                     "data: [DONE]\n\n"]})
        s = self.raw(GET_RAW)
        t = time.monotonic()
        total = 0
        tail = b""
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            total += len(b)
            tail = (tail + b)[-64:]
            if tail.endswith(b"0\r\n\r\n"):
                break
        dt = time.monotonic() - t
        self.assertGreater(total, n * len(unit))
        self.assertLess(dt, 5, "%.1f MB/s" % (total / dt / 1e6))

    def test_huge_line(self):
        self.srv.enqueue({"chunks": ["data: ", {"repeat": "a",
                                                "count": 5000000}, "\n\n"]})
        r, data = self.request("GET", "/v1/a")
        self.assertEqual(len(data), 5000008)

    def test_client_disconnect_mid_response(self):
        self.srv.enqueue({"chunks": [{"repeat": "z" * 100,
                                      "count": 1000000}]})
        s = self.raw(GET_RAW)
        s.recv(1000)
        s.close()
        time.sleep(0.1)
        r, _ = self.request("GET", "/v1/models")
        self.assertEqual(r.status, 200)

    def test_bad_request_line(self):
        s = self.raw(b"NONSENSE\r\n\r\n")
        self.assertTrue(read_until_close(s).startswith(b"HTTP/1.1 400"))

    def test_control_connections_not_counted(self):
        for _ in range(3):
            self.srv.stats()
        st = self.srv.stats()
        self.assertEqual((st["connections"], st["requests"]), (0, 0))


class MockTests(Base):

    def test_models(self):
        r, data = self.request("GET", "/v1/models")
        self.assertEqual(r.status, 200)
        obj = json.loads(data)
        self.assertEqual(obj["object"], "list")
        ids = [m["id"] for m in obj["data"]]
        self.assertIn("openai/gpt-oss-120b", ids)
        self.assertIn("meta-llama/Llama-4-Scout-17B-16E-Instruct", ids)
        self.assertEqual(len(ids), 5)
        self.assertTrue(all(m["owned_by"] == "baseten" for m in obj["data"]))

    def test_chat(self):
        r, data = self.chat({"model": "openai/gpt-oss-120b", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"}]})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("x-request-id"), "req-1")
        obj = json.loads(data)
        self.assertEqual(obj["id"], "chatcmpl-1")
        self.assertEqual(obj["object"], "chat.completion")
        self.assertEqual(obj["model"], "openai/gpt-oss-120b")
        ch = obj["choices"][0]
        self.assertEqual(ch["finish_reason"], "stop")
        self.assertEqual(ch["message"]["role"], "assistant")
        self.assertEqual(ch["message"]["content"], "Hello from the local test "
                         "server. You said: Hello there")
        self.assertEqual(obj["usage"], {"prompt_tokens": 4,
                                        "completion_tokens": 10,
                                        "total_tokens": 14})

    def test_content_parts_and_test_models(self):
        r, data = self.chat({"model": "test/anything", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})
        self.assertEqual(r.status, 200)
        self.assertTrue(json.loads(data)["choices"][0]["message"]["content"]
                        .endswith("You said: Hi"))

    def test_max_tokens_length(self):
        r, data = self.chat({"model": "test/x", "max_tokens": 3,
                             "messages": [{"role": "user", "content": "x"}]})
        ch = json.loads(data)["choices"][0]
        self.assertEqual(ch["finish_reason"], "length")
        self.assertEqual(ch["message"]["content"], "Hello from the")

    def test_errors(self):
        r, data = self.chat({"model": "nobody/nothing",
                             "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(r.status, 404)
        self.assertEqual(json.loads(data),
                         {"error": "Model not found: nobody/nothing"})
        self.assertTrue(r.getheader("x-request-id").startswith("req-"))
        r, data = self.request("POST", "/v1/chat/completions", b"{nope")
        self.assertEqual(r.status, 400)
        self.assertIsInstance(json.loads(data)["error"], str)
        r, data = self.chat({"messages": []})
        self.assertEqual(r.status, 400)
        self.assertIn("model", json.loads(data)["error"])

    def test_stream_with_usage(self):
        r, data = self.chat({"model": "deepseek-ai/DeepSeek-V3.1",
                             "stream": True,
                             "stream_options": {"include_usage": True},
                             "messages": [{"role": "user",
                                           "content": "one two"}]})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        text = data.decode()
        self.assertTrue(text.startswith(": keep-alive\n\n"))
        events = sse_events(text)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"],
                         {"role": "assistant", "content": ""})
        content = "".join(c["choices"][0]["delta"].get("content", "")
                          for c in chunks if c["choices"])
        self.assertEqual(content,
                         "Hello from the local test server. You said: one two")
        self.assertEqual(chunks[1]["choices"][0]["delta"]["content"],
                         "Hello ")
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"], "stop")
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 10)
        for c in chunks:
            self.assertEqual(c["object"], "chat.completion.chunk")
            self.assertEqual(c["id"], "chatcmpl-1")
            self.assertEqual(c["model"], "deepseek-ai/DeepSeek-V3.1")

    def test_stream_without_usage(self):
        r, data = self.chat({"model": "test/x", "stream": True,
                             "messages": [{"role": "user", "content": "a"}]})
        chunks = [json.loads(e) for e in sse_events(data.decode())[:-1]]
        self.assertTrue(all(c["choices"] for c in chunks))
        self.assertNotIn("usage", chunks[-1])

    def weather(self, text, **kw):
        req = {"model": "moonshotai/Kimi-K2-Instruct-0905",
               "messages": [{"role": "user", "content": text}],
               "tools": [WEATHER_TOOL]}
        req.update(kw)
        return self.chat(req)

    def test_tool_call_single(self):
        r, data = self.weather("What's the weather in Berlin?")
        ch = json.loads(data)["choices"][0]
        self.assertEqual(ch["finish_reason"], "tool_calls")
        self.assertIsNone(ch["message"]["content"])
        tc = ch["message"]["tool_calls"]
        self.assertEqual(len(tc), 1)
        self.assertEqual(tc[0]["id"], "call_1")
        self.assertEqual(tc[0]["type"], "function")
        self.assertEqual(tc[0]["function"]["name"], "get_weather")
        self.assertEqual(json.loads(tc[0]["function"]["arguments"]),
                         {"city": "Berlin"})
        r, data = self.weather("what is the weather?")
        tc = json.loads(data)["choices"][0]["message"]["tool_calls"]
        self.assertEqual(json.loads(tc[0]["function"]["arguments"]),
                         {"city": "Paris"})

    def test_tool_calls_parallel(self):
        r, data = self.weather("Weather in Paris and Tokyo?")
        tc = json.loads(data)["choices"][0]["message"]["tool_calls"]
        self.assertEqual([t["id"] for t in tc], ["call_1", "call_2"])
        self.assertEqual([json.loads(t["function"]["arguments"]) for t in tc],
                         [{"city": "Paris"}, {"city": "Tokyo"}])

    def test_tool_calls_stream(self):
        r, data = self.weather("Weather in Paris and Tokyo?", stream=True)
        chunks = [json.loads(e) for e in sse_events(data.decode())[:-1]]
        calls = {}
        for c in chunks:
            for tc in c["choices"][0]["delta"].get("tool_calls", []):
                cur = calls.setdefault(tc["index"], {"arguments": ""})
                if "id" in tc:
                    self.assertEqual(tc["function"]["arguments"], "")
                    cur["id"] = tc["id"]
                    cur["name"] = tc["function"]["name"]
                else:
                    self.assertLessEqual(len(tc["function"]["arguments"]), 5)
                cur["arguments"] += tc["function"].get("arguments", "")
        self.assertEqual(calls, {
            0: {"id": "call_1", "name": "get_weather",
                "arguments": '{"city":"Paris"}'},
            1: {"id": "call_2", "name": "get_weather",
                "arguments": '{"city":"Tokyo"}'}})
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"],
                         "tool_calls")

    def test_tool_choice_and_schema_types(self):
        other = {"type": "function", "function": {
            "name": "book", "parameters": {"type": "object", "properties": {
                "city": {"type": "string"}, "nights": {"type": "integer"},
                "budget": {"type": "number"}, "breakfast": {"type": "boolean"},
                "note": {"type": "string"}}}}}
        r, data = self.chat({
            "model": "test/x", "tools": [WEATHER_TOOL, other],
            "tool_choice": {"type": "function", "function": {"name": "book"}},
            "messages": [{"role": "user", "content": "Book Rome please"}]})
        tc = json.loads(data)["choices"][0]["message"]["tool_calls"]
        self.assertEqual(len(tc), 1)
        self.assertEqual(tc[0]["function"]["name"], "book")
        self.assertEqual(json.loads(tc[0]["function"]["arguments"]), {
            "city": "Rome", "nights": 1, "budget": 1, "breakfast": True,
            "note": "example"})

    def test_tool_results(self):
        r, data = self.chat({"model": "test/x", "tools": [WEATHER_TOOL],
                             "messages": [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "rainy"}]})
        ch = json.loads(data)["choices"][0]
        self.assertEqual(ch["finish_reason"], "stop")
        self.assertEqual(ch["message"]["content"],
                         "Here is what the tools returned: sunny; rainy")

    def test_reasoning_model(self):
        def stream(model, **kw):
            req = {"model": model, "stream": True,
                   "stream_options": {"include_usage": True},
                   "messages": [{"role": "user", "content": "Hi there."}]}
            req.update(kw)
            r, data = self.chat(req)
            self.assertEqual(r.status, 200)
            return [json.loads(e) for e in sse_events(data.decode())[:-1]]

        def kinds(chunks):
            out = []
            for c in chunks:
                for k, v in (c["choices"][0]["delta"]
                             if c["choices"] else {}).items():
                    if k != "role" and v != "":
                        if not out or out[-1][0] != k:
                            out.append([k, ""])
                        out[-1][1] += v if isinstance(v, str) else "*"
            return out

        chunks = stream("test/reasoning")
        self.assertEqual(kinds(chunks), [
            ["reasoning_content", "The user said: Hi there. I should answer."],
            ["content", "Hello from the local test server. You said: "
                        "Hi there."]])
        self.assertEqual(chunks[-1]["usage"], {
            "prompt_tokens": 2, "completion_tokens": 18, "total_tokens": 20,
            "completion_tokens_details": {"reasoning_tokens": 8}})
        # the other spelling; and with tools: reasoning, content, tool call
        chunks = stream("test/reasoning-alt", tools=[WEATHER_TOOL])
        self.assertEqual([k for k, _ in kinds(chunks)],
                         ["reasoning", "content", "tool_calls"])
        self.assertEqual(kinds(chunks)[1][1],
                         "Let me check with get_weather.")
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"],
                         "tool_calls")
        tc = chunks[-3]["choices"][0]["delta"]["tool_calls"][0]
        self.assertEqual(tc["function"], {"name": "get_weather",
                                          "arguments": '{"city":"Paris"}'})
        # not streamed: the reasoning is in the message
        r, data = self.chat({"model": "test/reasoning", "messages": [
            {"role": "user", "content": "Hi there."}]})
        doc = json.loads(data)
        msg = doc["choices"][0]["message"]
        self.assertEqual(msg["reasoning_content"],
                         "The user said: Hi there. I should answer.")
        self.assertTrue(msg["content"].startswith("Hello from"))
        self.assertEqual(
            doc["usage"]["completion_tokens_details"]["reasoning_tokens"], 8)
        # tool results answered: no tool call again
        r, data = self.chat({"model": "test/reasoning-alt",
                             "tools": [WEATHER_TOOL], "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]})
        msg = json.loads(data)["choices"][0]["message"]
        self.assertEqual(msg["reasoning"],
                         "The tools answered, so I can reply.")
        self.assertNotIn("tool_calls", msg)

    def test_json_schema(self):
        schema = {"type": "object", "properties": {
            "name": {"type": "string"}, "email": {"type": "string"}},
            "required": ["name", "email"], "additionalProperties": False}
        r, data = self.chat({
            "model": "test/x",
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "contact", "strict": True, "schema": schema}},
            "messages": [{"role": "user", "content":
                          "My name is Ada Lovelace, write to ada@example.com"}]})
        content = json.loads(data)["choices"][0]["message"]["content"]
        self.assertEqual(json.loads(content),
                         {"name": "Ada Lovelace", "email": "ada@example.com"})

    def test_json_schema_types(self):
        schema = {"type": "object", "properties": {
            "n": {"type": "integer"}, "x": {"type": "number"},
            "b": {"type": "boolean"}, "tags": {"type": "array",
                                             "items": {"type": "string"}},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "ref": {"$ref": "#/$defs/Inner"}},
            "$defs": {"Inner": {"type": "object",
                                "properties": {"k": {"type": "string"}}}}}
        r, data = self.chat({
            "model": "test/x", "response_format": {
                "type": "json_schema", "json_schema": {"schema": schema}},
            "messages": [{"role": "user", "content": "x"}]})
        content = json.loads(data)["choices"][0]["message"]["content"]
        self.assertEqual(json.loads(content), {
            "n": 1, "x": 1.5, "b": True, "tags": ["example"], "kind": "a",
            "ref": {"k": "example"}})

    def test_json_object(self):
        r, data = self.chat({"model": "test/x",
                             "response_format": {"type": "json_object"},
                             "messages": [{"role": "user", "content": "hi"}]})
        content = json.loads(data)["choices"][0]["message"]["content"]
        self.assertEqual(json.loads(content), {"answer": "hi"})

    def test_request_ids_count_up(self):
        ids = [self.request("GET", "/v1/models")[0].getheader("x-request-id")
               for _ in range(3)]
        self.assertEqual(ids, ["req-1", "req-2", "req-3"])


class ApiKeyTests(Base):
    extra_args = ("--api-key", "sekrit-key")

    def test_401_without_key(self):
        r, data = self.chat({"model": "test/x",
                             "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(r.status, 401)
        self.assertEqual(json.loads(data), {"error": "Invalid API key"})
        r, data = self.chat({"model": "test/x", "messages": [
            {"role": "user", "content": "x"}]},
            {"Authorization": "Bearer wrong"})
        self.assertEqual(r.status, 401)
        self.assertNotIn(b"wrong", data)
        self.assertNotIn(b"sekrit", data)

    def test_ok_with_key_and_scripts_not_consumed_by_401(self):
        self.srv.enqueue({"status": 418})
        r, _ = self.request("GET", "/v1/models")
        self.assertEqual(r.status, 401)
        r, _ = self.request("GET", "/v1/models",
                            headers={"Authorization": "Bearer sekrit-key"})
        self.assertEqual(r.status, 418)
        r, _ = self.request("GET", "/v1/models",
                            headers={"Authorization": "Bearer sekrit-key"})
        self.assertEqual(r.status, 200)

    def test_runtime_config(self):
        st, _ = self.srv.control("POST", "/_control/config", {"api_key": None})
        self.assertEqual(st, 200)
        self.assertEqual(self.request("GET", "/v1/models")[0].status, 200)
        self.srv.reset()  # back to the command-line key
        self.assertEqual(self.request("GET", "/v1/models")[0].status, 401)


class ProcessTests(unittest.TestCase):

    def test_sigterm_exits_cleanly(self):
        srv = ServerProc()
        t = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(srv.proc.wait(5), 0)
        self.assertLess(time.monotonic() - t, 2)
        self.assertEqual(srv.proc.stderr.read(), b"")
        srv.stop()

    def test_parent_pid(self):
        parent = subprocess.Popen(["sleep", "0.3"])
        srv = ServerProc(parent_pid=parent.pid)
        try:
            parent.wait()
            srv.proc.wait(3)
        finally:
            srv.stop()


class LuaHelperTests(unittest.TestCase):
    SNIPPET = r'''
local server = require("spec.support.server")
local s = server.start()
assert(s.url == "http://127.0.0.1:" .. s.port .. "/v1")
s:enqueue({status = 500, json = {error = "x"}}, {body = "\255\0bin"},
  {chunks = {"data: a\n\n", {["repeat"] = "\200", count = 2}}})
assert(s:stats().queued == 3)
local socket = require("socket")
local c = socket.tcp(); c:settimeout(5)
assert(c:connect("127.0.0.1", s.port))
c:send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-T: 1\r\n" ..
  "Content-Length: 4\r\n\r\n\255\0{}")
local line = c:receive("*l")
assert(line == "HTTP/1.1 500 Internal Server Error", line)
c:close()
local reqs = s:requests()
assert(#reqs == 1)
assert(reqs[1].body == "\255\0{}")
assert(reqs[1].header_map["x-t"] == "1")
assert(reqs[1].headers[2][1] == "X-T")
s:reset()
assert(#s:requests() == 0 and s:stats().queued == 0)
local t = server.json_decode(server.json_encode({a = {1, 2}, b = "\"\n\0é",
  e = server.array()}))
assert(t.a[2] == 2 and t.b == "\"\n\0é" and #t.e == 0)
s:stop()
assert(not s:alive())
print("lua ok")
'''

    def test_lua_versions(self):
        found = False
        for lua in ("lua5.1", "lua5.3", "lua5.4", "luajit"):
            exe = shutil.which(lua)
            if not exe:
                continue
            ok = subprocess.run([exe, "-e", "require('socket')"],
                                capture_output=True).returncode == 0
            if not ok:
                continue
            found = True
            with self.subTest(lua=lua):
                env = dict(os.environ, BASETEN_TEST_PYTHON=sys.executable)
                p = subprocess.run([exe, "-e", self.SNIPPET], cwd=ROOT,
                                   capture_output=True, timeout=60, env=env)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                self.assertIn(b"lua ok", p.stdout)
        if not found:
            self.skipTest("no Lua interpreter with LuaSocket")


if __name__ == "__main__":
    unittest.main(verbosity=int(os.environ.get("VERBOSE", "1")))
