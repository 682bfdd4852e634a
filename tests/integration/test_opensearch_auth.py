"""OpenSearch behind a TLS proxy that asks for credentials (issue 22 item
2): a client certificate (mutual TLS, CERT_REQUIRED), a bearer token (401
without the right one), or both. The proxy is a small forwarding HTTPS
server on a free loopback port in front of the real test node; the CA, the
server's and the client's certificates are made here with the openssl CLI.
doctor, check and check --full pass through it with the right settings; a
wrong token or a missing client certificate fails naming what to fix; a
token file is read again when it changes (rotation under a running
serve); the token never shows in output or logs; contradictory settings
stop the program at load (78)."""
import glob
import http.server
import os
import ssl
import subprocess
import threading
import urllib.error
import urllib.request

from harness import check, run_all, write
from service import Service

TOKEN = "tok-3f1e5c0a9b7d-secret"


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate,
    each signed by the CA; returns their paths."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=reconciler test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                 "extendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name, "-keyout",
                name + ".key", "-out", name + ".csr", cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out",
                name + ".pem", cwd=d)
    return {k: os.path.join(d, k + ".pem") for k in ("ca", "server", "client")} | {
        "client_key": os.path.join(d, "client.key"), "server_key": os.path.join(d, "server.key")}


class Proxy:
    """HTTPS on a free loopback port, forwarding to upstream (plain http).
    require_cert: the TLS handshake asks for a client certificate signed by
    the CA (ssl.CERT_REQUIRED). token: the bearer token a request must
    carry (None: any); changeable while the proxy runs (rotation)."""

    def __init__(self, upstream, certs, require_cert, token):
        self.upstream, self.token, self.seen_auth = upstream, token, []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization")
                proxy.seen_auth.append(auth)
                if proxy.token is not None and auth != "Bearer " + proxy.token:
                    self.answer(401, b'{"error":"unauthorized"}', "application/json")
                    return
                req = urllib.request.Request(proxy.upstream + self.path,
                                             data=body if body else None, method=self.command)
                if self.headers.get("Content-Type"):
                    req.add_header("Content-Type", self.headers["Content-Type"])
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        status, data, ctype = r.status, r.read(), r.headers.get("Content-Type")
                except urllib.error.HTTPError as e:
                    status, data, ctype = e.code, e.read(), e.headers.get("Content-Type")
                self.answer(status, data, ctype)

            def answer(self, status, data, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs["server"], certs["server_key"])
        if require_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(certs["ca"])
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def loaded(env):
    env.fixture("load", "--count", 120)
    env.fixture("sync")


def passes(env, what, **settings):
    """doctor, check and check --full through the proxy, each exit 0."""
    for args in (("doctor",), ("check",), ("check", "--full")):
        r = env.run(*args, **settings)
        check(r.returncode == 0, "%s: %s exits 0: %s %s" % (what, " ".join(args), r.stdout[-300:],
                                                           r.stderr[-600:]))


def secret_absent(env, text, where):
    logs = ""
    for p in glob.glob(os.path.join(env.tmp, "logs", "*")):
        with open(p, errors="replace") as f:
            logs += f.read()
    check(TOKEN not in text and TOKEN not in logs, "the token is nowhere in %s or the logs" % where)


def mutual_tls(env):
    certs = make_certs(env.tmp)
    loaded(env)
    proxy = Proxy(env.url, certs, require_cert=True, token=None)
    try:
        tls = {"OPENSEARCH_URL": proxy.url, "OPENSEARCH_CA_FILE": certs["ca"]}
        passes(env, "mutual TLS", OPENSEARCH_CLIENT_CERT=certs["client"],
               OPENSEARCH_CLIENT_KEY=certs["client_key"], **tls)
        # the key in the certificate's file
        both = write(env, "client-both.pem", open(certs["client"]).read() +
                     open(certs["client_key"]).read())
        r = env.run("doctor", OPENSEARCH_CLIENT_CERT=both, **tls)
        check(r.returncode == 0, "a PEM holding certificate and key: doctor exits 0: %s" % r.stderr)
        # no client certificate: the handshake is refused, named as OpenSearch's
        r = env.run("doctor", **tls)
        check(r.returncode != 0 and "opensearch" in r.stderr and "OPENSEARCH_CLIENT_CERT" in r.stderr,
              "no client certificate: doctor fails naming OpenSearch and the certificate: %r"
              % r.stderr)
        r = env.run("check", **tls)
        check(r.returncode != 0 and "OPENSEARCH_CLIENT_CERT" in r.stderr,
              "no client certificate: check fails naming OPENSEARCH_CLIENT_CERT: %r" % r.stderr)
        # unreadable files and a key alone stop the program at load
        r = env.run("check", OPENSEARCH_CLIENT_CERT=os.path.join(env.tmp, "nope.pem"), **tls)
        check(r.returncode == 78 and "OPENSEARCH_CLIENT_CERT" in r.stderr and "nope.pem" in r.stderr,
              "a missing certificate file: 78 naming it: %r" % r.stderr)
        r = env.run("check", OPENSEARCH_CLIENT_KEY=certs["client_key"], **tls)
        check(r.returncode == 78 and "OPENSEARCH_CLIENT_KEY" in r.stderr,
              "a key without a certificate: 78: %r" % r.stderr)
    finally:
        proxy.close()


def bearer_token(env):
    certs = make_certs(env.tmp)
    loaded(env)
    proxy = Proxy(env.url, certs, require_cert=False, token=TOKEN)
    try:
        tls = {"OPENSEARCH_URL": proxy.url, "OPENSEARCH_CA_FILE": certs["ca"]}
        passes(env, "bearer token", OPENSEARCH_BEARER_TOKEN=TOKEN, **tls)
        check(proxy.seen_auth and all(a == "Bearer " + TOKEN for a in proxy.seen_auth),
              "every request carried the token")
        r = env.run("check", OPENSEARCH_BEARER_TOKEN="wrong-token", **tls)
        check(r.returncode != 0 and "authentication failed (HTTP 401)" in r.stderr
              and "OPENSEARCH_BEARER_TOKEN" in r.stderr and "wrong-token" not in r.stderr,
              "a wrong token: a clear error naming OPENSEARCH_BEARER_TOKEN: %r" % r.stderr)
        r = env.run("doctor", **tls)
        check(r.returncode != 0 and "HTTP 401" in r.stderr and "no credentials" in r.stderr,
              "no token: doctor says no credentials are set: %r" % r.stderr)
        r = env.run("config", OPENSEARCH_BEARER_TOKEN=TOKEN, **tls)
        check(r.returncode == 0 and "OPENSEARCH_BEARER_TOKEN" in r.stdout,
              "config lists the token's setting: %r" % r.stdout[-300:])
        r2 = env.run("config", "--json", OPENSEARCH_BEARER_TOKEN=TOKEN, **tls)
        secret_absent(env, r.stdout + r.stderr + r2.stdout + r2.stderr, "config's output")
        # refused together at load, 78
        r = env.run("check", OPENSEARCH_BEARER_TOKEN=TOKEN, OPENSEARCH_USERNAME="admin",
                    OPENSEARCH_PASSWORD="pw", **tls)
        check(r.returncode == 78 and "OPENSEARCH_BEARER_TOKEN and OPENSEARCH_USERNAME" in r.stderr
              and TOKEN not in r.stderr, "token and basic auth together: 78: %r" % r.stderr)
        tf = write(env, "token", TOKEN + "\n")
        r = env.run("check", OPENSEARCH_BEARER_TOKEN=TOKEN, OPENSEARCH_BEARER_TOKEN_FILE=tf, **tls)
        check(r.returncode == 78 and "both set" in r.stderr,
              "token and token file together: 78: %r" % r.stderr)
        r = env.run("check", OPENSEARCH_BEARER_TOKEN_FILE=tf + ".missing", **tls)
        check(r.returncode == 78 and "OPENSEARCH_BEARER_TOKEN_FILE" in r.stderr,
              "a missing token file: 78: %r" % r.stderr)
    finally:
        proxy.close()
    secret_absent(env, "", "the runs")


def rotating_token_file(env):
    """serve keeps running while the token rotates: the file is read again."""
    certs = make_certs(env.tmp)
    loaded(env)
    proxy = Proxy(env.url, certs, require_cert=True, token=TOKEN)
    tf = write(env, "token", TOKEN + "\n")
    svc = None
    try:
        svc = Service(env, OPENSEARCH_URL=proxy.url, OPENSEARCH_CA_FILE=certs["ca"],
                      OPENSEARCH_CLIENT_CERT=certs["client"],
                      OPENSEARCH_CLIENT_KEY=certs["client_key"], OPENSEARCH_BEARER_TOKEN_FILE=tf)
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        check(st == 200, "a check through mTLS + token file: %s %s" % (st, body))
        # rotate: the proxy takes only the new token, written by a rename
        proxy.token = TOKEN + "-2"
        write(env, "token.new", TOKEN + "-2\n")
        os.rename(tf + ".new", tf)
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        check(st == 200, "after the rotation the next check passes: %s %s" % (st, body))
        check(proxy.seen_auth[-1] == "Bearer " + TOKEN + "-2", "the new token was sent")
    finally:
        if svc:
            svc.stop()
        proxy.close()
    secret_absent(env, svc.stderr if svc else "", "serve's output")


run_all([mutual_tls, bearer_token, rotating_token_file], prefix="osauth_")
