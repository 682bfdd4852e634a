"""Starting `reconciler serve` for tests, and talking HTTP to it."""
import json
import socket
import time
import urllib.error
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Service:
    def __init__(self, env, **settings):
        self.env = env
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        defaults = {"PORT": self.port, "RECONCILIATION_ENABLED": "false",
                    "COUNT_MONITOR_ENABLED": "false"}
        defaults.update(settings)
        self.proc = env.spawn("serve", **defaults)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited: %s" % self.proc.stderr.read())
            try:
                if self.http("GET", "/api/health/live")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("serve did not come up")

    def http(self, method, path, body=None, headers=None, raw=None, timeout=120):
        data = raw
        h = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if data is None and method == "POST":
            data = b""
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read().decode()
                ctype = r.headers.get("Content-Type", "")
                return r.status, json.loads(text) if "json" in ctype else text, r.headers
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text), e.headers
            except ValueError:
                return e.code, text, e.headers

    def stop(self, sig=15, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except Exception:
            self.proc.kill()
            out, err = self.proc.communicate()
        self.stderr = err
        return self.proc.returncode
