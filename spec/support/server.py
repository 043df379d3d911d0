#!/usr/bin/env python3
"""Local OpenAI-compatible test server for the baseten Lua client.

Python 3 standard library only (tested with Debian 12's Python 3.11).

Usage:
    python3 spec/support/server.py [--host 127.0.0.1] [--port 0]
        [--port-file PATH] [--api-key KEY] [--parent-pid PID] [--verbose]

It binds to loopback only (port 0 = ephemeral), writes the actual port to
--port-file (atomically: temp file + rename), prints
"listening on http://127.0.0.1:PORT" to stdout and serves until SIGTERM /
SIGINT, or until the --parent-pid process is gone.

Every non-control request consumes the next scripted response (FIFO) queued
with POST /_control/enqueue; with an empty queue a tiny deterministic mock
"model" answers /v1/models and /v1/chat/completions.  A model name
containing "reasoning" ("test/reasoning", "test/reasoning-alt") is a
reasoning model: see reasoning_response() below ("test/reasoning-require"
and "test/reasoning-reject" also judge a tool loop's history: see
history_error()).  The full reference of
the control API and of the scripted response fields is in the docstrings of
Handler.control() and Handler.send_scripted() below.

Two more mock models: a model name containing "nulls" ("test/nulls") sends
every nullable field as null, and one containing "utf16-split-K-O" cuts
its text by UTF-16 units as JavaScript servers do: see null_heavy() and
utf16_pieces() below.

Structured output (a json_schema or json_object response_format) streams
in pieces of 4 characters, so a watcher of the JSON sees it grow. A model
name containing "fenced" wraps that JSON in a ```json code fence, one
containing "not-json" breaks it halfway, and one containing "-paced"
("test/npc-paced") sends a chunk every 20 ms, as a model types.
"""

import argparse
import base64
import collections
import json
import os
import random
import re
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

import embed_mock

CREATED = 1735689600  # fixed timestamp: responses are deterministic

MODELS = [
    "openai/gpt-oss-120b",
    "deepseek-ai/DeepSeek-V3.1",
    "moonshotai/Kimi-K2-Instruct-0905",
    "Qwen/Qwen3-Coder-480B-A35B-Instruct",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
]

# Served but not listed by /v1/models (the list stays as specs know it):
# reasoning models under their Baseten slugs, answering as "test/reasoning".
REASONING_MODELS = ["deepseek-ai/DeepSeek-R1-0528"]

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted",
    204: "No Content", 301: "Moved Permanently", 302: "Found",
    304: "Not Modified", 307: "Temporary Redirect",
    308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    413: "Payload Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Entity", 425: "Too Early",
    429: "Too Many Requests", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
    529: "Site is overloaded",
}

REPEAT_BATCH = 256 * 1024  # bytes per write when expanding {"repeat":...}
MAX_LINE = 65536
MAX_HEADERS = 256

VERBOSE = False


def log(*args):
    if VERBOSE:
        sys.stderr.write(" ".join(str(a) for a in args) + "\n")
        sys.stderr.flush()


class BadRequest(Exception):
    pass


class ClientGone(Exception):
    pass


def dumps(value, ascii_only=False):
    """Compact JSON as bytes; raw UTF-8 unless the text holds lone surrogates."""
    if not ascii_only:
        try:
            return json.dumps(value, ensure_ascii=False,
                              separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            pass
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def raw_bytes(value, what):
    """A raw-bytes field: a string (sent as UTF-8) or {"b64": ...} /
    {"latin1": ...}."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        if "b64" in value:
            return base64.b64decode(value["b64"])
        if "latin1" in value:
            return value["latin1"].encode("latin-1")
    raise BadRequest("%s must be a string or {\"b64\": ...}" % what)


# ---------------------------------------------------------------------------
# Shared state
# ---------------------------------------------------------------------------

class State:
    def __init__(self, api_key):
        self.lock = threading.Lock()
        self.default_api_key = api_key
        self.next_conn_id = 0  # never reset: ids stay unique for a run
        self.open_conns = set()
        self.reset()

    def reset(self):
        with self.lock:
            self.queue = collections.deque()
            self.requests = []
            self.connections = 0
            self.api_key = self.default_api_key
            self.expect_100 = "ignore"
            self.rate_limit = None
            self.rl_seen = 0
            self.rl_sent = 0
            self.embed = embed_mock.EmbedFaults()
            self.hung_up = 0
            # "barrier" responses (see send_scripted): how many have sent
            # their first chunk, and the most that did before any went on
            self.barrier_arrived = 0
            self.barrier_most = 0
            self.barrier_cond = threading.Condition(self.lock)

    def take_429(self, method, target, n):
        """Under the lock: the 429 answer for this request when the
        rate_limit config (see Handler.control) picks it, else None.

        Of the POST /v1/chat/completions requests counted since the config
        was set, the k-th is answered 429 when floor(k * share) >
        floor((k - 1) * share): share 1 answers every one, 0.5 every second,
        0.25 every fourth; after `count` such answers (if given) the limit
        is off again. Deterministic: the same arrivals get the same answers.
        """
        rl = self.rate_limit
        if not rl or method != "POST" or \
                target.split("?", 1)[0].rstrip("/") != "/v1/chat/completions":
            return None
        if rl.get("count") is not None and self.rl_sent >= rl["count"]:
            return None
        self.rl_seen += 1
        k, share = self.rl_seen, rl.get("share", 1)
        if int(k * share) <= int((k - 1) * share):
            return None
        self.rl_sent += 1
        r = err_openai(429, "Rate limit reached (test server)",
                       "rate_limit_exceeded", "req-%d" % n,
                       typ="rate_limit_error")
        if rl.get("retry_after", "0") is not None:
            r["headers"].append(["Retry-After", str(rl.get("retry_after", "0"))])
        return r

    def new_conn(self):
        with self.lock:
            self.next_conn_id += 1
            return self.next_conn_id


# ---------------------------------------------------------------------------
# Wire writer: splits, trickles, chunked framing
# ---------------------------------------------------------------------------

class Writer:
    def __init__(self, sock, chunked, split=None, seed=1, write_delay=0.0005,
                 split_framing=False):
        self.sock = sock
        self.chunked = chunked
        self.split = split
        self.rng = random.Random(seed)
        self.write_delay = write_delay
        self.split_framing = bool(split and split_framing)
        self.writes = 0
        if split:  # each piece its own segment, as a fragmenting network
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def _sendall(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ClientGone(str(e))

    def _pieces(self, data):
        n = len(data)
        i = 0
        while i < n:
            if self.split == "byte":
                step = 1
            elif isinstance(self.split, int):
                step = self.split
            else:
                step = self.rng.randint(1, 64)
            yield data[i:i + step]
            i += step

    def _split_send(self, data):
        for piece in self._pieces(data):
            if self.writes and self.write_delay > 0:
                time.sleep(self.write_delay)
            self._sendall(piece)
            self.writes += 1

    def wire(self, data):
        """Bytes that are framing or head: split only with split_framing."""
        if not data:
            return
        if self.split_framing:
            self._split_send(data)
        else:
            self._sendall(data)
            self.writes += 1

    def payload(self, data):
        """Body bytes: each write is its own HTTP chunk when chunked."""
        if not data:
            return  # an empty chunk would terminate the chunked body
        if self.split and not self.split_framing:
            for piece in self._pieces(data):
                if self.writes and self.write_delay > 0:
                    time.sleep(self.write_delay)
                if self.chunked:
                    piece = b"%x\r\n" % len(piece) + piece + b"\r\n"
                self._sendall(piece)
                self.writes += 1
        else:
            if self.chunked:
                data = b"%x\r\n" % len(data) + data + b"\r\n"
            self.wire(data)

    def end(self):
        if self.chunked:
            self.wire(b"0\r\n\r\n")


def expand_item(item):
    """Yield the bytes of one `chunks` item, lazily for repeats."""
    if isinstance(item, dict) and "repeat" in item:
        unit = raw_bytes(item["repeat"], "repeat")
        count = int(item.get("count", 1))
        if not unit or count <= 0:
            return
        per = max(1, REPEAT_BATCH // len(unit))
        if count <= per:
            yield unit * count
            return
        batch = unit * per
        full, rest = divmod(count, per)
        for _ in range(full):
            yield batch
        if rest:
            yield unit * rest
    elif isinstance(item, bytes):
        yield item
    else:
        yield raw_bytes(item, "chunks item")


R_FIELDS = {
    "status", "reason", "headers", "body", "json", "chunks", "chunked",
    "delay", "chunk_delay", "split", "seed", "write_delay", "split_framing",
    "trickle", "stall", "truncate", "truncate_at", "reset", "close",
    "expect_100", "garbage", "comment", "barrier",
}


def validate_response(r):
    """Reject typos and wrong types at enqueue time (400 from enqueue)."""
    if not isinstance(r, dict):
        raise BadRequest("each response must be an object")
    unknown = sorted(set(r) - R_FIELDS)
    if unknown:
        raise BadRequest("unknown response field(s): %s" % ", ".join(unknown))
    num = (int, float)
    for k in ("delay", "chunk_delay", "write_delay", "trickle", "stall"):
        if r.get(k) is not None and (not isinstance(r[k], num) or
                                     isinstance(r[k], bool) or r[k] < 0):
            raise BadRequest("%s must be a number >= 0" % k)
    b = r.get("barrier")
    if b is not None and (not isinstance(b, int) or isinstance(b, bool) or
                          b < 1):
        raise BadRequest("barrier must be an integer >= 1")
    if "status" in r and (not isinstance(r["status"], int) or
                          not 100 <= r["status"] <= 999):
        raise BadRequest("status must be an integer 100..999")
    sp = r.get("split")
    if sp not in (None, "byte", "random") and not (
            isinstance(sp, int) and not isinstance(sp, bool) and sp >= 1):
        raise BadRequest('split must be null, "byte", "random" or a size >= 1')
    if r.get("expect_100") not in (None, "ignore", "answer"):
        raise BadRequest('expect_100 must be "ignore" or "answer"')
    h = r.get("headers")
    if h is not None:
        if isinstance(h, dict):
            pass
        elif isinstance(h, list):
            for pair in h:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise BadRequest("headers list items must be [name, value]")
        else:
            raise BadRequest("headers must be an object or a list of pairs")
    for k in ("body", "garbage"):
        if k in r:
            raw_bytes(r[k], k)
    if "chunks" in r:
        chunks = r["chunks"]
        if chunks == {}:
            chunks = r["chunks"] = []
        if not isinstance(chunks, list):
            raise BadRequest("chunks must be a list")
        for item in chunks:
            if isinstance(item, dict) and "repeat" in item:
                raw_bytes(item["repeat"], "repeat")
                if not isinstance(item.get("count", 1), int):
                    raise BadRequest("repeat count must be an integer")
            else:
                raw_bytes(item, "chunks item")


# ---------------------------------------------------------------------------
# Default mock "model"
# ---------------------------------------------------------------------------

STOP_WORDS = set("""
a an and are as at be but by can could did do does for from get give has have
hello hey hi how i i'm in is it look me my of on or please show tell that the
then this to use was weather what what's whats when where which who why will
with would you your call find check compute calculate search write return add
""".split())

CAP_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
NAME_RE = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b")


def text_of(content):
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
            elif isinstance(p, str):
                parts.append(p)
        return " ".join(parts)
    return json.dumps(content)


def words(text):
    return len(text.split())


def city_words(text):
    """Capitalized words (distinct, in order), minus common stop words."""
    out = []
    for w in CAP_WORD_RE.findall(text):
        w = w.strip("'-")
        if w.endswith("'s"):
            w = w[:-2]
        if len(w) < 2 or not w[0].isupper() or w.lower() in STOP_WORDS:
            continue
        if w not in out:
            out.append(w)
    return out


def resolve_ref(schema, root):
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        seen += 1
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return {}
        node = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                return {}
        schema = node
    return schema if isinstance(schema, dict) else {}


def example_for(schema, name, user_text, root, depth=0):
    """A deterministic value matching a JSON schema."""
    schema = resolve_ref(schema, root)
    if depth > 16:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        alts = schema.get(key)
        if isinstance(alts, list) and alts:
            for alt in alts:
                alt = resolve_ref(alt, root)
                if alt.get("type") != "null":
                    return example_for(alt, name, user_text, root, depth + 1)
            return None
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ is None:
        if "properties" in schema:
            typ = "object"
        elif "items" in schema:
            typ = "array"
        else:
            typ = "string"
    if typ == "object":
        out = {}
        props = schema.get("properties") or {}
        for pname, pschema in props.items():
            out[pname] = example_for(pschema, pname, user_text, root,
                                     depth + 1)
        for pname in schema.get("required") or []:
            if pname not in out:
                out[pname] = "example"
        return out
    if typ == "array":
        return [example_for(schema.get("items") or {}, name, user_text, root,
                            depth + 1)]
    if typ == "integer":
        return 1
    if typ == "number":
        return 1.5
    if typ == "boolean":
        return True
    if typ == "null":
        return None
    # string
    lname = (name or "").lower()
    if lname == "email":
        m = EMAIL_RE.search(user_text)
        return m.group(0) if m else "user@example.com"
    if lname == "name":
        for m in NAME_RE.finditer(user_text):
            ws = [w for w in m.group(0).split()
                  if w.lower() not in STOP_WORDS]
            if len(ws) >= 2:
                return ws[0] + " " + ws[1]
        cw = city_words(user_text)
        return cw[0] if cw else "example"
    if lname == "file":
        return "main.lua"
    if lname in ("say", "line", "text"):  # a line worth watching arrive
        return "Well met, traveller! You said: " + user_text
    return "example"


def tool_arguments(params, user_text, city=None):
    """Arguments object for a tool call from its `parameters` schema."""
    params = resolve_ref(params or {}, params or {})
    props = params.get("properties") or {}
    out = {}
    for pname, pschema in props.items():
        pschema = resolve_ref(pschema, params)
        typ = pschema.get("type")
        if isinstance(typ, list):
            typ = next((t for t in typ if t != "null"), "null")
        if isinstance(pschema.get("enum"), list) and pschema["enum"]:
            out[pname] = pschema["enum"][0]
        elif typ == "string" or (typ is None and "properties" not in pschema):
            if city is not None:
                out[pname] = city
            elif pname.lower() in ("city", "location", "place"):
                cw = city_words(user_text)
                out[pname] = cw[-1] if cw else "Paris"
            else:
                out[pname] = "example"
        elif typ in ("integer", "number"):
            out[pname] = 1
        elif typ == "boolean":
            out[pname] = True
        else:
            out[pname] = example_for(pschema, pname, user_text, params)
    return out


def string_props(params):
    params = resolve_ref(params or {}, params or {})
    n = 0
    for pschema in (params.get("properties") or {}).values():
        pschema = resolve_ref(pschema, params)
        if pschema.get("type") == "string" and not pschema.get("enum"):
            n += 1
        elif pschema.get("type") is None and "properties" not in pschema \
                and not pschema.get("enum"):
            n += 1
    return n


def err_baseten(status, message, rid):
    return {"status": status, "json": {"error": message},
            "headers": [["x-request-id", rid]]}


def err_openai(status, message, code, rid, typ="invalid_request_error"):
    return {"status": status,
            "json": {"error": {"message": message, "type": typ,
                               "param": None, "code": code}},
            "headers": [["x-request-id", rid]]}


def null_heavy(message_or_delta, tool_calls=True):
    """The mock's "nulls" model (any model name containing "nulls"): every
    nullable field it would leave out is sent as null, as many servers do:
    a delta's or message's content, refusal and tool_calls (and, in
    null_chunk, a chunk's finish_reason, logprobs and usage)."""
    for k in ("content", "refusal") + (("tool_calls",) if tool_calls else ()):
        message_or_delta.setdefault(k, None)
    return message_or_delta


def null_chunk(chunk):
    for c in chunk["choices"]:
        c.setdefault("logprobs", None)
        c.setdefault("finish_reason", None)
        null_heavy(c["delta"])
    chunk.setdefault("usage", None)
    return chunk


def utf16_pieces(text, size, offset=0):
    """TEXT cut every SIZE UTF-16 units (the first piece OFFSET units when
    OFFSET > 0), as JavaScript servers cut it: an astral character (an
    emoji, 𝄞, CJK Extension B) can end one piece as its high surrogate and
    start the next as its low one. The mock's "utf16-split-SIZE-OFFSET"
    models stream their content and tool-call arguments so; the JSON of a
    piece with a lone half escapes it ("\ud83d"), as JSON.stringify does."""
    units = text.encode("utf-16-le")
    n = len(units) // 2
    cuts = [0] + list(range(offset or size, n, size)) + [n]
    return [units[2 * a:2 * b].decode("utf-16-le", "surrogatepass")
            for a, b in zip(cuts, cuts[1:]) if b > a]


def mock_response(method, path, body, n):
    """Scripted-response dict for the default mock behaviour."""
    rid = "req-%d" % n
    route = path.split("?", 1)[0].rstrip("/")
    if route == "/v1/models" and method == "GET":
        data = [{"id": m, "object": "model", "created": CREATED,
                 "owned_by": "baseten"} for m in MODELS]
        return {"json": {"object": "list", "data": data},
                "headers": [["x-request-id", rid]]}
    if route != "/v1/chat/completions" or method != "POST":
        return err_openai(404, "Unknown request URL: %s %s" % (method, path),
                          "not_found", rid)
    try:
        req = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return err_baseten(400, "Invalid JSON body: %s" % e, rid)
    if not isinstance(req, dict):
        return err_baseten(400, "Request body must be a JSON object", rid)
    model = req.get("model")
    if model is None:
        return err_baseten(400, "model is required", rid)
    if not isinstance(model, str):
        return err_baseten(400, "model must be a string", rid)
    if model not in MODELS and model not in REASONING_MODELS and \
            not model.startswith("test/"):
        return err_baseten(404, "Model not found: %s" % model, rid)
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        return err_baseten(400, "messages must be a non-empty array", rid)

    bad = "reasoning" in model and history_error(model, messages)
    if bad:
        return err_baseten(400, bad, rid)

    last_user = -1
    for i, m in enumerate(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            last_user = i
    user_text = text_of(messages[last_user].get("content")) \
        if last_user >= 0 else ""
    tool_results = [text_of(m.get("content")) for m in messages[last_user + 1:]
                    if isinstance(m, dict) and m.get("role") == "tool"]
    prompt_tokens = sum(words(text_of(m.get("content")))
                        for m in messages if isinstance(m, dict))

    content = None
    tool_calls = None
    finish = "stop"
    tools = req.get("tools")
    tool_choice = req.get("tool_choice")
    rf = req.get("response_format")

    if tool_results:
        content = "Here is what the tools returned: " + "; ".join(tool_results)
    elif isinstance(tools, list) and tools and tool_choice != "none":
        tool = tools[0]
        if isinstance(tool_choice, dict):
            want = (tool_choice.get("function") or {}).get("name")
            for t in tools:
                if isinstance(t, dict) and \
                        (t.get("function") or {}).get("name") == want:
                    tool = t
                    break
        fn = tool.get("function") if isinstance(tool, dict) else None
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name") or "tool"
        params = fn.get("parameters") or {}
        cities = city_words(user_text)
        if len(cities) >= 2 and string_props(params) == 1 and \
                req.get("parallel_tool_calls", True) is not False:
            args_list = [tool_arguments(params, user_text, city=c)
                         for c in cities]
        else:
            args_list = [tool_arguments(params, user_text)]
        tool_calls = []
        for i, args in enumerate(args_list):
            tool_calls.append({
                "id": "call_%d" % (i + 1), "type": "function",
                "function": {"name": name, "arguments": dumps(args).decode(
                    "utf-8", "surrogateescape")}})
        finish = "tool_calls"
    elif isinstance(rf, dict) and rf.get("type") == "json_schema":
        js = rf.get("json_schema") or {}
        schema = js.get("schema") if isinstance(js, dict) else None
        schema = schema if isinstance(schema, dict) else {}
        value = example_for(schema, None, user_text, schema)
        content = dumps(value).decode("utf-8", "surrogateescape")
    elif isinstance(rf, dict) and rf.get("type") == "json_object":
        content = dumps({"answer": user_text}).decode(
            "utf-8", "surrogateescape")
    else:
        content = "Hello from the local test server. You said: " + user_text

    json_reply = content is not None and isinstance(rf, dict) and \
        rf.get("type") in ("json_schema", "json_object") and not tool_results
    if json_reply and "not-json" in model:  # JSON that breaks mid-stream
        content = content[:len(content) // 2] + " oops}"
    if json_reply and "fenced" in model:  # as some models wrap JSON
        content = "```json\n" + content + "\n```"

    if content is not None:
        limit = req.get("max_completion_tokens", req.get("max_tokens"))
        if isinstance(limit, int) and not isinstance(limit, bool) \
                and limit >= 0:
            pieces = re.findall(r"\s*\S+\s*", content)
            if len(pieces) > limit:
                content = "".join(pieces[:limit]).rstrip()
                finish = "length"
        completion_tokens = words(content)
    else:
        completion_tokens = sum(
            words(tc["function"]["name"] + " " + tc["function"]["arguments"])
            for tc in tool_calls)
    usage = {"prompt_tokens": prompt_tokens,
             "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    cid = "chatcmpl-%d" % n
    if "reasoning" in model or model in REASONING_MODELS:
        return reasoning_response(req, model, rid, cid, user_text,
                                  bool(tool_results), content, tool_calls,
                                  finish, usage)

    nulls = "nulls" in model
    split = re.search(r"utf16-split-(\d+)-(\d+)", model)
    if not req.get("stream"):
        message = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        if nulls:
            null_heavy(message)
        return {"json": {"id": cid, "object": "chat.completion",
                         "created": CREATED, "model": model,
                         "choices": [{"index": 0, "message": message,
                                      "logprobs": None,
                                      "finish_reason": finish}],
                         "usage": usage},
                "headers": [["x-request-id", rid]]}

    def chunk(delta, finish_reason=None):
        c = {"id": cid, "object": "chat.completion.chunk",
             "created": CREATED, "model": model,
             "choices": [{"index": 0, "delta": delta,
                          "finish_reason": finish_reason}]}
        return null_chunk(c) if nulls else c

    def cut(text, words_re):
        if split:
            return utf16_pieces(text, int(split.group(1)),
                                int(split.group(2)))
        return re.findall(words_re, text)

    events = [chunk({"role": "assistant", "content": ""})]
    if content:
        # structured output streams in small pieces (JSON has few spaces),
        # so a watcher of the JSON sees it grow
        for w in cut(content, r"(?s).{1,4}" if json_reply else r"\s+|\S+\s*"):
            events.append(chunk({"content": w}))
    for i, tc in enumerate(tool_calls or []):
        events.append(chunk({"tool_calls": [{
            "index": i, "id": tc["id"], "type": "function",
            "function": {"name": tc["function"]["name"], "arguments": ""}}]}))
        for piece in cut(tc["function"]["arguments"], r"(?s).{1,5}"):
            events.append(chunk({"tool_calls": [{
                "index": i, "function": {"arguments": piece}}]}))
    events.append(chunk({}, finish))
    so = req.get("stream_options")
    if isinstance(so, dict) and so.get("include_usage"):
        events.append({"id": cid, "object": "chat.completion.chunk",
                       "created": CREATED, "model": model, "choices": [],
                       "usage": usage})
    items = [b": keep-alive\n\n"]
    items += [b"data: " + dumps(e) + b"\n\n" for e in events]
    items.append(b"data: [DONE]\n\n")
    out = {"chunks": items,
           "headers": [["Content-Type", "text/event-stream"],
                       ["Cache-Control", "no-cache"],
                       ["x-request-id", rid]]}
    if "-paced" in model:  # "test/...-paced": a chunk every 20 ms, as a model types
        out["chunk_delay"] = 0.02
    return out


def history_error(model, messages):
    """Reasoning models that judge a tool loop's history, as real servers
    do: a reasoning model whose name contains "-require" (e.g.
    "test/reasoning-require", "test/reasoning-alt-require") rejects an
    assistant message with tool calls that lacks its reasoning
    (`reasoning_content` or `reasoning`); one whose name contains "-reject"
    rejects any assistant message that carries reasoning.  Returns the
    error message, or None."""
    require = "-require" in model
    if not require and "-reject" not in model:
        return None
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") != "assistant":
            continue
        has = any(isinstance(m.get(k), str) and m.get(k)
                  for k in ("reasoning_content", "reasoning"))
        if require and m.get("tool_calls") and not has:
            return "messages[%d]: an assistant message with tool calls " \
                "must carry its reasoning_content" % i
        if not require and has:
            return "messages[%d]: reasoning_content is not accepted in " \
                "input messages" % i
    return None


def reasoning_response(req, model, rid, cid, user_text, answered_tools,
                       content, tool_calls, finish, usage):
    """The mock's reasoning "model": any model name containing "reasoning"
    (e.g. "test/reasoning").

    It thinks before it answers, as DeepSeek R1 or gpt-oss do: streamed, it
    sends reasoning deltas, then content deltas, then (when tools are given
    and no tool results came back yet) a tool call; not streamed, the
    message carries the whole reasoning beside `content`. The reasoning is
    spelled `reasoning_content` (DeepSeek's and Baseten's spelling), or
    `reasoning` (other servers' spelling) when the model name contains
    "reasoning-alt" (e.g. "test/reasoning-alt"). Usage counts the reasoning
    in `completion_tokens` and in
    `completion_tokens_details.reasoning_tokens`.
    """
    key = "reasoning" if "reasoning-alt" in model else "reasoning_content"
    if tool_calls:
        name = tool_calls[0]["function"]["name"]
        thought = "The user asks: %s I should call %s." % (user_text, name)
        if content is None:
            content = "Let me check with %s." % name
    elif answered_tools:
        thought = "The tools answered, so I can reply."
    else:
        thought = "The user said: %s I should answer." % user_text
    reasoning_tokens = words(thought)
    completion = words(content or "") + reasoning_tokens
    usage = dict(usage, completion_tokens=completion,
                 total_tokens=usage["prompt_tokens"] + completion,
                 completion_tokens_details={
                     "reasoning_tokens": reasoning_tokens})
    headers = [["x-request-id", rid]]

    if not req.get("stream"):
        message = {"role": "assistant", "content": content, key: thought}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {"json": {"id": cid, "object": "chat.completion",
                         "created": CREATED, "model": model,
                         "choices": [{"index": 0, "message": message,
                                      "logprobs": None,
                                      "finish_reason": finish}],
                         "usage": usage},
                "headers": headers}

    def chunk(delta, finish_reason=None):
        return {"id": cid, "object": "chat.completion.chunk",
                "created": CREATED, "model": model,
                "choices": [{"index": 0, "delta": delta,
                             "finish_reason": finish_reason}]}

    events = [chunk({"role": "assistant", "content": ""})]
    for w in re.findall(r"\s+|\S+\s*", thought):
        events.append(chunk({key: w}))
    for w in re.findall(r"\s+|\S+\s*", content or ""):
        events.append(chunk({"content": w}))
    for i, tc in enumerate(tool_calls or []):
        events.append(chunk({"tool_calls": [{
            "index": i, "id": tc["id"], "type": "function",
            "function": tc["function"]}]}))
    events.append(chunk({}, finish))
    so = req.get("stream_options")
    if isinstance(so, dict) and so.get("include_usage"):
        events.append({"id": cid, "object": "chat.completion.chunk",
                       "created": CREATED, "model": model, "choices": [],
                       "usage": usage})
    items = [b"data: " + dumps(e) + b"\n\n" for e in events]
    items.append(b"data: [DONE]\n\n")
    return {"chunks": items,
            "headers": [["Content-Type", "text/event-stream"]] + headers}


# ---------------------------------------------------------------------------
# Connection handler
# ---------------------------------------------------------------------------

class Handler(socketserver.BaseRequestHandler):

    def setup(self):
        self.state = self.server.state
        self.conn = self.request
        self.conn_id = self.state.new_conn()
        self.kind = None  # None until the first request: "client"/"control"
        self.closed = False
        try:
            self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.rfile = self.conn.makefile("rb", buffering=65536)
        with self.state.lock:
            self.state.open_conns.add(self)

    def finish(self):
        with self.state.lock:
            self.state.open_conns.discard(self)
            if self.kind is None:
                # a connection that never sent a request still counts
                self.state.connections += 1
        self.close()

    def classify(self, kind):
        if self.kind is None:
            self.kind = kind
            if kind == "client":
                with self.state.lock:
                    self.state.connections += 1

    def close(self, rst=False):
        if self.closed:
            return
        self.closed = True
        try:
            self.rfile.close()
        except OSError:
            pass
        try:
            if rst:
                self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            else:
                self.conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            self.conn.close()
        except OSError:
            pass

    def wait(self, seconds):
        """Sleep up to `seconds`; return early (False) if the client closed
        its end of the connection."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            try:
                readable, _, _ = select.select([self.conn], [], [], left)
                if readable:
                    if self.conn.recv(1, socket.MSG_PEEK) == b"":
                        return False
                    # the client sent more (pipelining): just sleep it out
                    time.sleep(max(0.0, deadline - time.monotonic()))
                    return True
            except (OSError, ValueError):
                return False

    # -- reading ----------------------------------------------------------

    def readline(self):
        line = self.rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise BadRequest("line too long")
        return line

    def read_exact(self, n):
        data = self.rfile.read(n)
        if data is None or len(data) < n:
            raise ClientGone("short body")
        return data

    def read_chunked(self):
        parts = []
        while True:
            line = self.readline()
            if not line:
                raise ClientGone("eof in chunked body")
            size_s = line.split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise BadRequest("bad chunk size")
            if size == 0:
                while True:  # trailers
                    t = self.readline()
                    if not t:
                        raise ClientGone("eof in trailers")
                    if t in (b"\r\n", b"\n"):
                        return b"".join(parts)
            parts.append(self.read_exact(size))
            if self.readline() not in (b"\r\n", b"\n"):
                raise BadRequest("bad chunk terminator")

    def handle(self):
        try:
            while not self.closed:
                if not self.handle_one():
                    break
        except (ClientGone, ConnectionError, OSError) as e:
            log("connection", self.conn_id, "gone:", e)
        except BadRequest as e:
            log("bad request on", self.conn_id, ":", e)
            try:
                self.conn.sendall(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: "
                    b"application/json\r\nConnection: close\r\n"
                    b"Content-Length: 0\r\n\r\n")
            except OSError:
                pass

    def handle_one(self):
        line = self.readline()
        while line in (b"\r\n", b"\n"):
            line = self.readline()
        if not line:
            return False
        parts = line.decode("latin-1").strip().split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise BadRequest("bad request line %r" % line[:100])
        method, target, version = parts
        headers = []
        while True:
            h = self.readline()
            if not h:
                raise ClientGone("eof in headers")
            if h in (b"\r\n", b"\n"):
                break
            if len(headers) >= MAX_HEADERS:
                raise BadRequest("too many headers")
            h = h.decode("latin-1").rstrip("\r\n")
            if h[:1] in (" ", "\t") and headers:  # obsolete line folding
                headers[-1][1] += " " + h.strip()
                continue
            name, sep, value = h.partition(":")
            if not sep:
                raise BadRequest("bad header line")
            headers.append([name, value.strip()])

        def hget(name):
            name = name.lower()
            for k, v in headers:
                if k.lower() == name:
                    return v
            return None

        conn_hdr = (hget("Connection") or "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in conn_hdr
        else:
            keep_alive = "close" not in conn_hdr
        is_control = target.startswith("/_control/")
        self.classify("control" if is_control else "client")
        expect = (hget("Expect") or "").lower() == "100-continue"

        script = None
        if not is_control:
            st = self.state
            with st.lock:
                n = len(st.requests) + 1
                api_key = st.api_key
                authorized = True
                if api_key is not None and target.startswith("/v1/"):
                    authorized = hget("Authorization") == "Bearer " + api_key
                limited = st.take_429(method, target, n) if authorized \
                    else None
                if limited is None and authorized and st.queue:
                    script = st.queue.popleft()
                expect_mode = st.expect_100
                # record now (body filled in below) so that request numbers
                # follow arrival order
                record = {
                    "index": n, "method": method, "path": target,
                    "http_version": version, "headers": headers,
                    "body": "", "body_b64": "", "json": None,
                    "expect_100": expect, "connection_id": self.conn_id,
                    "time": time.time(), "scripted": script is not None,
                }
                st.requests.append(record)
            if script is not None and "expect_100" in script:
                expect_mode = script["expect_100"]
        else:
            expect_mode = "answer" if expect else "ignore"

        if expect and expect_mode == "answer":
            self.conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        te = (hget("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = self.read_chunked()
        else:
            cl = hget("Content-Length")
            if cl is not None:
                try:
                    length = int(cl)
                except ValueError:
                    raise BadRequest("bad Content-Length")
                if length < 0:
                    raise BadRequest("bad Content-Length")
                body = self.read_exact(length)
            else:
                body = b""

        if is_control:
            status, obj = self.control(method, target, body)
            data = dumps(obj, ascii_only=True)
            head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Unknown")),
                    "Content-Type: application/json",
                    "Content-Length: %d" % len(data)]
            if not keep_alive:
                head.append("Connection: close")
            self.conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
            return keep_alive

        try:
            parsed = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
        record.update({
            "body": body.decode("utf-8", "replace"),
            "body_b64": base64.b64encode(body).decode("ascii"),
            "json": parsed,
        })
        log(method, target, "conn", self.conn_id, "scripted" if script else "")

        if not authorized:
            script = err_baseten(401, "Invalid API key", "req-%d" % n)
        elif limited is not None:
            script = limited
        elif script is None:
            try:
                script = embed_mock.response(
                    self.state.embed, self.state.lock, method,
                    target.split("?", 1)[0].rstrip("/"), body, n) or \
                    mock_response(method, target, body, n)
            except Exception as e:  # a mock bug must not hang the client
                log("mock error:", repr(e))
                script = err_baseten(500, "mock server error: %r" % (e,),
                                     "req-%d" % n)
        return self.send_scripted(script, keep_alive)

    # -- control API ------------------------------------------------------

    def control(self, method, target, body):
        """Control endpoints (JSON in/out; control requests are not recorded
        and their connections are not counted):

        POST /_control/reset    -> {"ok": true}; clears queue, recorded
                                   requests, counters and /_control/config.
        POST /_control/enqueue  body {"responses": [R, ...]} (or a bare list)
                                -> {"ok": true, "queued": <queue length>}
        GET  /_control/requests -> {"requests": [record, ...]}
        GET  /_control/stats    -> {"connections", "requests",
                                    "open_connections",
                                    "open_connection_ids" (sorted),
                                    "distinct_connections", "queued",
                                    "hung_up": responses whose delay the
                                    client cut short by closing,
                                    "barrier_most": barrier streams that
                                    had sent a first chunk when the first
                                    of them went on}
        POST /_control/config   body {"api_key": "K" | null,
                                      "expect_100": "ignore" | "answer",
                                      "rate_limit": {"share": S,
                                                     "retry_after": "1",
                                                     "count": N} | null,
                                      "embed": {"faults": [...],
                                                "slow": {...}} | null}
            embed: failures, delays and a slow tail for the embedding
            routes (embed_mock.EmbedFaults.configure).
            rate_limit answers 429 (an OpenAI-shaped rate_limit_error with
            Retry-After, default "0"; null: no header) to a share S (0..1,
            default 1) of the chat completions that follow, spread evenly,
            for the first N of them only if count is given (State.take_429);
            it is checked before the scripted queue, which a 429 leaves as
            it is. null (or a reset) turns it off.
        """
        st = self.state
        route = target.split("?", 1)[0]
        try:
            arg = json.loads(body.decode("utf-8")) if body.strip() else None
        except (ValueError, UnicodeDecodeError) as e:
            return 400, {"error": "invalid JSON: %s" % e}
        if route == "/_control/reset":
            st.reset()
            return 200, {"ok": True}
        if route == "/_control/enqueue":
            responses = arg.get("responses") if isinstance(arg, dict) else arg
            if responses == {}:
                responses = []
            if not isinstance(responses, list):
                return 400, {"error": "expected {\"responses\": [{...}, ...]}"}
            try:
                for r in responses:
                    validate_response(r)
            except (BadRequest, ValueError, TypeError) as e:
                return 400, {"error": "invalid response: %s" % e}
            with st.lock:
                st.queue.extend(responses)
                return 200, {"ok": True, "queued": len(st.queue)}
        if route == "/_control/requests":
            with st.lock:
                reqs = list(st.requests)
            return 200, {"requests": reqs}
        if route == "/_control/stats":
            with st.lock:
                done = st.requests
                return 200, {
                    "connections": st.connections,
                    "requests": len(st.requests),
                    "open_connections": sum(
                        1 for h in st.open_conns if h.kind != "control"
                        and not h.closed),
                    "open_connection_ids": sorted(
                        h.conn_id for h in st.open_conns
                        if h.kind != "control" and not h.closed),
                    "distinct_connections": len(
                        set(r["connection_id"] for r in done)),
                    "queued": len(st.queue),
                    "hung_up": st.hung_up,
                    "barrier_most": st.barrier_most,
                }
        if route == "/_control/config":
            if not isinstance(arg, dict):
                return 400, {"error": "expected a JSON object"}
            with st.lock:
                if "api_key" in arg:
                    st.api_key = arg["api_key"]
                if "rate_limit" in arg:
                    rl = arg["rate_limit"]
                    if rl is not None and (
                            not isinstance(rl, dict) or
                            set(rl) - {"share", "retry_after", "count"} or
                            not 0 <= rl.get("share", 1) <= 1):
                        return 400, {"error": "rate_limit must be null or "
                                     "{share (0..1), retry_after, count}"}
                    st.rate_limit, st.rl_seen, st.rl_sent = rl, 0, 0
                if "expect_100" in arg:
                    st.expect_100 = arg["expect_100"]
                if "embed" in arg:
                    try:
                        st.embed.configure(arg["embed"] or {})
                    except ValueError as e:
                        return 400, {"error": str(e)}
            return 200, {"ok": True}
        return 404, {"error": "unknown control endpoint %s" % route}

    # -- scripted responses -----------------------------------------------

    def barrier(self, n):
        """Wait (at most 60 s) until N barrier streams have sent their
        first chunk; the count the first one to go on saw is kept."""
        st = self.state
        with st.lock:
            st.barrier_arrived += 1
            if st.barrier_arrived >= n:
                st.barrier_cond.notify_all()
            deadline = time.time() + 60
            while st.barrier_arrived < n and time.time() < deadline:
                st.barrier_cond.wait(deadline - time.time())
            if st.barrier_most == 0:
                st.barrier_most = st.barrier_arrived

    def send_scripted(self, r, keep_alive):
        """Send scripted response R; return True to keep the connection.

        R fields (all optional):
          status (200), reason, headers ({name: value} or [[name, value]]),
          body (raw string, UTF-8 / {"b64": ...}) or json (any value),
          chunks ([item...]; item = string | {"b64": ...} |
                  {"repeat": string, "count": N}),
          chunked (default: true with chunks, false otherwise),
          delay, chunk_delay, split ("byte" | "random" | N bytes a send;
          TCP_NODELAY when split), seed (1),
          write_delay (0.0005), split_framing (false), trickle,
          stall, truncate, truncate_at, reset, close, expect_100, garbage,
          barrier (N: after its first chunk the stream waits, up to 60 s,
          until N barrier streams since the last reset have sent theirs;
          stats' barrier_most says how many had when the first went on).
        """
        delay = float(r.get("delay") or 0)
        if delay > 0 and not self.wait(delay):
            with self.state.lock:  # the client hung up: a canceled request
                self.state.hung_up += 1
            self.close()
            return False

        trickle = r.get("trickle")
        split = r.get("split")
        write_delay = r.get("write_delay", 0.0005)
        if trickle:
            split, write_delay = "byte", float(trickle)
        if split not in (None, "byte", "random") and not isinstance(split, int):
            split = "random"
        seed = r.get("seed", 1)

        if "garbage" in r:
            w = Writer(self.conn, False, split, seed, float(write_delay or 0),
                       True)
            w.wire(raw_bytes(r["garbage"], "garbage"))
            self.close()
            return False

        status = int(r.get("status", 200))
        reason = r.get("reason")
        if reason is None:
            reason = REASONS.get(status, "Unknown")

        hdrs = r.get("headers") or []
        if isinstance(hdrs, dict):
            hdrs = list(hdrs.items())
        hdrs = [[str(k), str(v)] for k, v in hdrs]
        have = set(k.lower() for k, _ in hdrs)

        chunks = r.get("chunks")
        body = None
        if chunks is None:
            if "body" in r:
                body = raw_bytes(r["body"], "body")
            elif "json" in r:
                body = dumps(r["json"])
            else:
                body = b""
            if "content-type" not in have and ("json" in r or (
                    body.lstrip()[:1] in (b"{", b"["))):
                hdrs.append(["Content-Type", "application/json"])
            elif "content-type" not in have and body:
                hdrs.append(["Content-Type", "text/plain; charset=utf-8"])
            chunked = bool(r.get("chunked", False))
            if not body and (r.get("stall") or r.get("truncate") or
                             r.get("reset")) and "chunked" not in r:
                chunked = True  # so the client waits for a body
            chunks = [body] if chunked else None
        else:
            if not isinstance(chunks, list):
                chunks = [chunks]
            chunked = r.get("chunked", True) is not False
            if "content-type" not in have:
                hdrs.append(["Content-Type", "text/event-stream"])

        incomplete = bool(r.get("truncate") or r.get("reset") or
                          r.get("stall"))
        close = bool(r.get("close")) or not keep_alive or incomplete or \
            (chunks is not None and not chunked)
        user_framing = "content-length" in have or \
            "transfer-encoding" in have
        if not user_framing:
            if chunked:
                hdrs.append(["Transfer-Encoding", "chunked"])
            elif body is not None:
                hdrs.append(["Content-Length", str(len(body))])
        if "connection" not in have and close:
            hdrs.append(["Connection", "close"])
        head = "HTTP/1.1 %d %s\r\n" % (status, reason)
        head += "".join("%s: %s\r\n" % (k, v) for k, v in hdrs) + "\r\n"

        w = Writer(self.conn, chunked, split, seed, float(write_delay or 0),
                   bool(r.get("split_framing")))
        w.wire(head.encode("utf-8"))

        if chunks is not None:
            chunk_delay = float(r.get("chunk_delay") or 0)
            barrier = r.get("barrier")
            for i, item in enumerate(chunks):
                if i == 1 and barrier:
                    self.barrier(int(barrier))
                if i and chunk_delay > 0:
                    time.sleep(chunk_delay)
                for data in expand_item(item):
                    w.payload(data)
        elif body:
            if incomplete:
                cut = r.get("truncate_at")
                cut = len(body) // 2 if cut is None else int(cut)
                w.payload(body[:cut])
            else:
                w.payload(body)

        if incomplete:
            stall = float(r.get("stall") or 0)
            if stall > 0:
                self.wait(stall)
            self.close(rst=bool(r.get("reset")))
            return False
        w.end()
        if close:
            self.close()
            return False
        return True


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if VERBOSE:
            socketserver.TCPServer.handle_error(self, request, client_address)


def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--api-key")
    ap.add_argument("--parent-pid", type=int)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    VERBOSE = args.verbose

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("--host must be a loopback address")
    host = "127.0.0.1" if args.host == "localhost" else args.host
    if ":" in host:
        Server.address_family = socket.AF_INET6

    port_file = args.port_file

    def quit_now():
        if port_file:
            try:
                os.remove(port_file)
            except OSError:
                pass
        try:
            sys.stdout.flush()
        except Exception:
            pass
        os._exit(0)

    def stop(signum, frame):
        quit_now()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    srv = Server((host, args.port), Handler)
    srv.state = State(args.api_key)
    port = srv.server_address[1]

    if args.parent_pid:
        ppid = args.parent_pid

        def watch():
            while True:
                try:
                    os.kill(ppid, 0)
                except ProcessLookupError:
                    quit_now()
                except PermissionError:
                    pass
                try:  # a zombie parent is gone too
                    with open("/proc/%d/stat" % ppid, "rb") as f:
                        if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                            quit_now()
                except (OSError, IndexError):
                    pass
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()

    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    display = "[%s]" % host if ":" in host else host
    sys.stdout.write("listening on http://%s:%d\n" % (display, port))
    sys.stdout.flush()
    try:
        srv.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    quit_now()


if __name__ == "__main__":
    main()
