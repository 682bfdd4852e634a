"""Wrong credentials say so (issue 24 item 9): "authentication failed",
naming the setting to fix, never "UNREACHABLE"; a check exits 78 (the
configuration is wrong) and leaves no interrupted run for `resume` to
pick up. MongoDB: FerretDB refuses the handshake of a URI with a user (its
SQLite backend has no users). OpenSearch: the test node has no security
plugin, so a small local proxy answers 401 as a secured cluster does.
Also `doctor`'s own words (item 12): a version it knows is printed, never
"(null)", and no word twice ("UNREACHABLE  mongodb: unreachable: ...")."""
import http.server
import threading

from harness import check, run_all


class Deny(http.server.BaseHTTPRequestHandler):
    def answer(self):
        body = (b'{"error": {"type": "security_exception", "reason": "missing authentication '
                b'credentials for REST request [/]"}, "status": 401}')
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("WWW-Authenticate", 'Basic realm="security"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = answer

    def log_message(self, *args):
        pass


def no_interrupted_run(env, what):
    r = env.run("resume")
    check(r.returncode in (0, 78) and "no interrupted run" in r.stdout + r.stderr
          or "authentication failed" in r.stderr,
          "%s: resume finds nothing to resume (%d: %s %s)" % (what, r.returncode, r.stdout,
                                                               r.stderr[-200:]))
    try:
        with env.journal() as db:
            rows = db.execute("SELECT status FROM runs").fetchall()
    except Exception:
        rows = []
    check(all(x[0] != "interrupted" for x in rows),
          "%s: no interrupted run in the journal (%s)" % (what, rows))


def mongodb_credentials(env):
    env.create_index()
    env.fixture("load", "--count", 10)
    uri = env.env["MONGODB_URI"].replace("mongodb://", "mongodb://app:wrongpw@", 1)
    uri += ("&" if "?" in uri else "?") + "serverSelectionTimeoutMS=3000"
    r = env.run("doctor", MONGODB_URI=uri)
    line = [l for l in r.stdout.splitlines() if l.startswith("mongodb")]
    check(r.returncode == 1 and line and "AUTH FAILED" in line[0]
          and "authentication failed" in line[0] and "MONGODB_URI" in line[0]
          and "UNREACHABLE" not in r.stdout,
          "doctor: mongodb AUTH FAILED naming MONGODB_URI: %r" % r.stdout)
    check("wrongpw" not in r.stdout + r.stderr, "the password is not shown")
    r = env.run("check", MONGODB_URI=uri)
    check(r.returncode == 78 and "authentication failed" in r.stderr
          and "MONGODB_URI" in r.stderr,
          "check: exit 78, authentication failed (%d: %s)" % (r.returncode, r.stderr[-300:]))
    no_interrupted_run(env, "mongodb")


def opensearch_credentials(env):
    env.create_index()
    env.fixture("load", "--count", 10)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        r = env.run("doctor", OPENSEARCH_URL=url, OPENSEARCH_USERNAME="app",
                    OPENSEARCH_PASSWORD="wrongpw")
        line = [l for l in r.stdout.splitlines() if l.startswith("opensearch")]
        check(r.returncode == 1 and line and "AUTH FAILED" in line[0]
              and "OPENSEARCH_USERNAME" in line[0] and "UNREACHABLE" not in r.stdout,
              "doctor: opensearch AUTH FAILED naming the settings: %r" % r.stdout)
        for lease in ("reconciler-leases", ""):
            r = env.run("check", OPENSEARCH_URL=url, RECONCILE_LEASE_INDEX=lease)
            check(r.returncode == 78 and "authentication failed" in r.stderr
                  and "OPENSEARCH_PASSWORD" in r.stderr,
                  "check (lease index %r): exit 78, authentication failed (%d: %s)"
                  % (lease, r.returncode, r.stderr[-300:]))
            no_interrupted_run(env, "opensearch, lease index %r" % lease)
    finally:
        srv.shutdown()


def doctor_words(env):
    r = env.run("doctor", MONGODB_COLLECTION="no_such_collection")
    check(r.returncode == 1 and "(null)" not in r.stdout and "version" in r.stdout
          and "no_such_collection does not exist" in r.stdout,
          "doctor: a missing collection, with the version: %r" % r.stdout)
    r = env.run("doctor", OPENSEARCH_URL="http://127.0.0.1:1",
                MONGODB_URI="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")
    out = r.stdout.lower()
    check("unreachable  mongodb" not in out and "unreachable: mongodb: unreachable" not in
          r.stderr.lower() and out.count("unreachable") == 2,
          "doctor: no word twice: %r %r" % (r.stdout, r.stderr))


run_all([mongodb_credentials, opensearch_credentials, doctor_words], prefix="auth_")
