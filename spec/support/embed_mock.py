"""The test server's embedding model (server.py answers with it).

Three routes, in the shapes of Baseten's embedding deployments (BEI) and
OpenAI's API:

  POST /v1/embeddings  {"input": str | [str], "model", "dimensions",
                        "encoding_format": "float" | "base64"}
       -> {"object": "list", "data": [{"object": "embedding", "index": i,
           "embedding": [floats] | "<base64 of little-endian float32>"}],
           "model", "usage": {"prompt_tokens", "total_tokens"}}
  POST /rerank (or /v1/rerank)  {"query", "texts": [str], "return_text"}
       -> [{"index": i (0-based), "score": s[, "text"]}, ...] best first
  POST /predict (or /v1/predict)  {"inputs": [str] | [[str]] | str}
       -> [[{"label", "score"}, ...] per input], scores summing to 1

Vectors are deterministic bags of words: each lowercase word adds +-1 to a
dimension picked by its hash, then the vector is normalized. Texts that
share words point the same way, so a search over them finds what it should;
an empty text gives a vector of zeros. Default 32 dimensions.

Model names change the answer: one containing "nobase64" ignores
encoding_format (always float arrays, as some servers do); "shuffled"
lists data in reverse index order; "nan" puts a NaN in the first vector
(a NaN float in base64, a bare NaN token in JSON).

Faults, set with POST /_control/config {"embed": {...}} (see
EmbedFaults.configure): per-input failures and delays matched by
substring, and a slow-tail share of requests.
"""

import base64
import hashlib
import json
import math
import struct

DEFAULT_DIMS = 32
ROUTES = {"/v1/embeddings": "embed", "/embeddings": "embed",
          "/rerank": "rerank", "/v1/rerank": "rerank",
          "/predict": "predict", "/v1/predict": "predict"}
LABELS = ["positive", "negative", "neutral"]
POSITIVE = {"good", "great", "love", "happy", "excellent", "nice", "fast"}
NEGATIVE = {"bad", "awful", "hate", "sad", "terrible", "slow", "broken"}


def words(text):
    return [w for w in "".join(c.lower() if c.isalnum() else " "
                               for c in text).split() if w]


def vector(text, dims):
    v = [0.0] * dims
    for w in words(text):
        h = hashlib.md5(w.encode("utf-8")).digest()
        i = int.from_bytes(h[:4], "little") % dims
        v[i] += 1.0 if h[4] & 1 else -1.0
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v] if n > 0 else v


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b))


def f32(values):
    """Floats as float32 (what a real server returns), as Python floats."""
    return list(struct.unpack("<%df" % len(values),
                              struct.pack("<%df" % len(values), *values)))


class EmbedFaults:
    """What the next embedding requests suffer (under the server's lock)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.rules = []     # [{"match", "status", "delay", "times"}]
        self.slow = None    # {"share", "delay"}
        self.seen = 0       # embed/rerank/predict requests since configure

    def configure(self, arg):
        """{"faults": [{"match": "text", "status": 500 | 429 | ...,
                         "delay": seconds, "times": N}],
            "slow": {"share": 0.02, "delay": 1.0} | null}
        A fault applies to a request one of whose inputs contains `match`
        (every request when match is ""): it answers `status` (with an
        OpenAI-shaped error; Retry-After: 0 on a 429) and/or waits `delay`
        seconds first, for the first `times` such requests (every one when
        absent). slow: of the embed/rerank/predict requests counted since,
        the k-th waits `delay` when floor(k * share) > floor((k-1) * share)
        (share 1: every one; 0.02: the 50th, 100th, ...)."""
        if not isinstance(arg, dict) or set(arg) - {"faults", "slow"}:
            raise ValueError("embed must be {faults, slow}")
        rules = arg.get("faults") or []
        for r in rules:
            if not isinstance(r, dict) or not isinstance(r.get("match", ""), str):
                raise ValueError("a fault is {match, status, delay, times}")
        self.rules = [dict(r) for r in rules]
        self.slow = arg.get("slow")
        self.seen = 0

    def take(self, texts):
        """(status or None, delay) for a request holding these texts."""
        self.seen += 1
        status, delay = None, 0.0
        for r in self.rules:
            if r.get("times") is not None and r["times"] <= 0:
                continue
            if not any(r.get("match", "") in t for t in texts):
                continue
            if r.get("times") is not None:
                r["times"] -= 1
            status = r.get("status") or status
            delay = max(delay, float(r.get("delay") or 0))
            break
        s = self.slow
        if s:
            k, share = self.seen, s.get("share", 1)
            if int(k * share) > int((k - 1) * share):
                delay = max(delay, float(s.get("delay", 1)))
        return status, delay


def error(status, message, rid):
    typ = "rate_limit_error" if status == 429 else "server_error"
    r = {"status": status,
         "json": {"error": {"message": message, "type": typ, "code": None}},
         "headers": [["x-request-id", rid]]}
    if status == 429:
        r["headers"].append(["Retry-After", "0"])
    return r


def texts_of(kind, req):
    if kind == "embed":
        x = req.get("input")
        return [x] if isinstance(x, str) else x
    if kind == "rerank":
        return [req.get("query")] + list(req.get("texts") or [])
    x = req.get("inputs")
    if isinstance(x, str):
        return [x]
    if isinstance(x, list):
        return [i[0] if isinstance(i, list) and i else i for i in x]
    return x


def embed(req, rid):
    model = req.get("model") or "test/embed"
    texts = texts_of("embed", req)
    dims = req.get("dimensions") or DEFAULT_DIMS
    if not isinstance(dims, int) or dims < 1 or dims > 65536:
        return error(400, "dimensions must be 1..65536", rid)
    fmt = req.get("encoding_format") or "float"
    if "nobase64" in model:
        fmt = "float"
    data, tokens = [], 0
    for i, t in enumerate(texts):
        v = f32(vector(t, dims))
        if "nan" in model and i == 0:
            v[0] = float("nan")
        tokens += max(1, len(words(t)))
        emb = base64.b64encode(struct.pack("<%df" % dims, *v)).decode() \
            if fmt == "base64" else v
        data.append({"object": "embedding", "index": i, "embedding": emb})
    if "shuffled" in model:
        data.reverse()
    body = {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    # json.dumps writes a NaN as the bare token NaN, as Python servers do
    return {"body": json.dumps(body), "headers": [
        ["Content-Type", "application/json"], ["x-request-id", rid]]}


def rerank(req, rid):
    q = vector(req["query"], 256)
    out = []
    for i, t in enumerate(req["texts"]):
        s = (cosine(q, vector(t, 256)) + 1) / 2
        r = {"index": i, "score": round(s, 6)}
        if req.get("return_text"):
            r["text"] = t
        out.append(r)
    out.sort(key=lambda r: (-r["score"], r["index"]))
    return {"json": out, "headers": [["x-request-id", rid]]}


def predict(texts, rid):
    out = []
    for t in texts:
        ws = words(t)
        pos = sum(1 for w in ws if w in POSITIVE)
        neg = sum(1 for w in ws if w in NEGATIVE)
        raw = [math.exp(pos), math.exp(neg), math.exp(0.5)]
        total = sum(raw)
        scores = [{"label": l, "score": round(r / total, 6)}
                  for l, r in zip(LABELS, raw)]
        scores.sort(key=lambda s: -s["score"])
        out.append(scores)
    return {"json": out, "headers": [["x-request-id", rid]]}


def response(faults, lock, method, route, body, n):
    """The scripted-response dict for an embedding route, or None when the
    route is not one of them."""
    kind = ROUTES.get(route)
    if kind is None or method != "POST":
        return None
    rid = "req-%d" % n
    try:
        req = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return error(400, "invalid JSON body: %s" % e, rid)
    texts = texts_of(kind, req) if isinstance(req, dict) else None
    if not isinstance(texts, list) or not texts or \
            not all(isinstance(t, str) for t in texts):
        return dict(error(400, "expected a non-empty array of strings", rid))
    with lock:
        status, delay = faults.take(texts)
    if status:
        r = error(status, "injected failure (test server)", rid)
    elif kind == "embed":
        r = embed(req, rid)
    elif kind == "rerank":
        r = rerank(req, rid)
    else:
        r = predict(texts, rid)
    if delay > 0:
        r["delay"] = delay
    return r

