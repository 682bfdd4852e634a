"""Hostile requests, byte for byte (what the fuzzer found, and what an HTTP
library would not let it send): every answer is a status with valid JSON
(or libmicrohttpd's own 4xx for a broken request line or headers), the
service survives all of it, and exits 0 with no sanitizer report."""
import json
import socket
import threading

from harness import Env, check, done
from service import Service

TOKEN = "t0k-" + "x" * 20


def raw(svc, data, timeout=20):
    s = socket.create_connection(("127.0.0.1", svc.port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass  # it may answer (and close) before the whole body is sent
    out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
    except OSError:
        pass
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    return status, head.decode("latin-1"), body


def req(method, path, body=b"", headers=()):
    h = ["%s %s HTTP/1.1" % (method, path), "Host: x", "Connection: close"]
    h += list(headers)
    if body or method == "POST":
        h.append("Content-Length: %d" % len(body))
    return ("\r\n".join(h) + "\r\n\r\n").encode("latin-1") + body


def is_json_error(body):
    try:
        o = json.loads(body.decode("utf-8"))  # strict UTF-8
    except (UnicodeDecodeError, ValueError):
        return False
    return o.get("success") is False and isinstance(o.get("error"), str)


AUTH = "Authorization: Bearer " + TOKEN

env = Env("hostile")
try:
    env.create_index()
    env.fixture("load", "--count", 20)
    r = env.run("check")
    check(r.returncode == 0, "a run to report on")
    svc = Service(env, API_TOKEN=TOKEN, LOG_LEVEL="debug")
    try:
        cases = [
            # (what, request bytes, expected status, JSON error expected)
            ("%FF in the path is not echoed as invalid UTF-8",
             req("GET", "/%FF%FE/x"), 404, True),
            ("raw bytes >= 0x80 in the path", b"GET /\xff\xc0\xaf HTTP/1.1\r\nHost: x\r\n"
             b"Connection: close\r\n\r\n", 404, True),
            ("a path over 4095 bytes does not match a route once cut",
             req("GET", "/api/health" + "/" * 4100 + "junk"), 404, True),
            ("a run id over 63 characters is not cut into a valid one",
             req("GET", "/api/reconciliation/runs/" + "0" * 62 + "1x"), 400, True),
            ("a run id beyond int64", req("GET", "/api/reconciliation/runs/9223372036854775808"),
             400, True),
            ("before beyond int64 (the schema now says int64)",
             req("GET", "/api/reconciliation/runs?before=76745065554403002123550720"), 400, True),
            ("errors?limit over the maximum (400 is now documented)",
             req("GET", "/api/reconciliation/runs/1/errors?limit=1001"), 400, True),
            ("cancel with a bad id (400 is now documented)",
             req("POST", "/api/reconciliation/runs/-1.5e-303/cancel", headers=[AUTH]), 400, True),
            ("sync/full with wait of the wrong type (400 is now documented)",
             req("POST", "/api/sync/full", b'{"wait": {}}', [AUTH, "Content-Type: application/json"]),
             400, True),
            ("a NUL byte in the body",
             req("POST", "/api/reconciliation/start", b'{"intervalMs":1000}\x00xx', [AUTH]), 400, True),
            ("trailing junk after the JSON object",
             req("POST", "/api/reconciliation/start", b'{"intervalMs":1000} {}', [AUTH]), 400, True),
            ("JSON nested 10,000 deep",
             req("POST", "/api/reconciliation/start", b"[" * 10000 + b"]" * 10000, [AUTH]), 400, True),
            ("a body that is not an object",
             req("POST", "/api/reconciliation/start", b'"x"', [AUTH]), 400, True),
            ("intervalMs 1e400", req("POST", "/api/reconciliation/start", b'{"intervalMs":1e400}',
                                     [AUTH]), 400, True),
            ("Content-Length over 64 KiB: refused before it is read",
             req("POST", "/api/reconciliation/start", b"{" + b" " * 70000 + b"}", [AUTH]), 413, True),
            ("a chunked body over 64 KiB",
             b"POST /api/reconciliation/stop HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() +
             b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
             (b"8000\r\n" + b"a" * 0x8000 + b"\r\n") * 3 + b"0\r\n\r\n", 413, True),
            ("no token", req("POST", "/api/reconciliation/stop"), 401, True),
            ("a token one character short",
             req("POST", "/api/reconciliation/stop", headers=["Authorization: Bearer " + TOKEN[:-1]]),
             401, True),
            ("the token with another scheme",
             req("POST", "/api/reconciliation/stop", headers=["Authorization: Basic " + TOKEN]),
             401, True),
            ("the scheme in lower case is fine (RFC 7235)",
             req("POST", "/api/reconciliation/stop", headers=["Authorization: bearer " + TOKEN]),
             200, False),
            ("an unknown method on a known path", req("FROB", "/api/health"), 405, True),
            ("a Content-Length that is not a number (libmicrohttpd answers)",
             b"POST /api/reconciliation/stop HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
             400, False),
            ("a header of 100 KB (libmicrohttpd answers)",
             b"GET /api/health/live HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 100000 + b"\r\n\r\n",
             431, False),
        ]
        for what, data, want, jsonerr in cases:
            status, head, body = raw(svc, data)
            check(status == want and (not jsonerr or is_json_error(body)),
                  "%s: %d (want %d) %r" % (what, status, want, body[:200]))
            if want == 405:
                check("Allow: GET" in head, "405 says what is allowed")

        # null means the default for the body's optional members (documented)
        st, body, _ = svc.http("POST", "/api/reconciliation/start", {"intervalMs": None},
                               headers={"Authorization": "Bearer " + TOKEN})
        check(st == 200 and body["intervalMs"] == 1800000, "intervalMs null: the default")
        st, body, _ = svc.http("POST", "/api/reconciliation/check", {"wait": True, "dryRun": None},
                               headers={"Authorization": "Bearer " + TOKEN})
        check(st == 200 and body["success"], "dryRun null: the default (%d)" % st)
        svc.http("POST", "/api/reconciliation/stop", headers={"Authorization": "Bearer " + TOKEN})

        # more connections than the service takes at once: it stays up
        results = []

        def hit():
            try:
                results.append(raw(svc, req("GET", "/api/reconciliation/status"), timeout=30)[0])
            except OSError:
                results.append(0)
        threads = [threading.Thread(target=hit) for _ in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(results.count(200) >= 100 and all(s in (0, 200, 503) for s in results),
              "200 connections at once: %d answered 200" % results.count(200))
        st, body, _ = svc.http("GET", "/api/health")
        check(st == 200, "healthy after all of it")

        # a client that sends half a request and goes away
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", svc.port))
            s.sendall(b"POST /api/reconciliation/check HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            s.close()
        check(svc.http("GET", "/api/health/live")[0] == 200, "half requests leave it answering")
    finally:
        code = svc.stop()
        check(code == 0, "the service exits 0 (%d)" % code)
        check("Sanitizer" not in svc.stderr and "runtime error" not in svc.stderr,
              "no sanitizer report: %s" % svc.stderr[svc.stderr.find("ERROR"):][:3000])
finally:
    env.cleanup()
done()
