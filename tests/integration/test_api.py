"""`reconciler serve` against the real servers: the seed's routes and keys,
history, bad input, auth, concurrency, schedule, count monitor, metrics,
shutdown and resume."""
import http.client
import http.server
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse

from harness import FIXTURE, check, run_all
from service import Service

SEED_STATS = {"lastCheck", "lastSync", "totalChecks", "totalSyncs", "documentsSynced", "errors",
              "isRunning", "nextCheckAt"}


def seed_routes(env):
    env.create_index()
    env.fixture("load", "--count", 300)
    env.fixture("sync", "--skip-every", 10)
    svc = Service(env)
    try:
        st, body, _ = svc.http("GET", "/")
        check(st == 200 and body["service"] == "reconciler" and len(body["endpoints"]) >= 15, "GET /")
        st, body, _ = svc.http("GET", "/api/health")
        check(st == 200 and body["mongodb"]["ok"] and body["opensearch"]["ok"] and body["journal"]["ok"]
              and "latencyMs" in body["mongodb"], "GET /api/health: %s" % body)
        st, body, _ = svc.http("GET", "/api/health/ready")
        check(st == 200, "ready")
        st, body, _ = svc.http("POST", "/api/reconciliation/start", {"intervalMs": 3600000})
        check(st == 200 and body == {"success": True, "message": "Reconciliation service started",
                                     "intervalMs": 3600000, "intervalMinutes": 60},
              "start answers the seed's keys: %s" % body)
        st, body, _ = svc.http("GET", "/api/reconciliation/status")
        check(st == 200 and body["success"] and SEED_STATS <= set(body["stats"]) and
              body["stats"]["isRunning"] is True and body["stats"]["nextCheckAt"] and
              body["currentRun"] is None, "status has the seed's keys: %s" % body)
        st, body, _ = svc.http("POST", "/api/reconciliation/stop")
        check(st == 200 and body == {"success": True, "message": "Reconciliation service stopped"},
              "stop: %s" % body)
        st, body, _ = svc.http("GET", "/api/reconciliation/status")
        check(body["stats"]["isRunning"] is False and body["stats"]["nextCheckAt"] is None,
              "stopped schedule shows in status")
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        want = {"success": True, "inSync": False, "mongoCount": 300, "opensearchCount": 270,
                "difference": 30, "synced": 30, "missingCount": 30, "orphanCount": 0, "staleCount": 0}
        check(st == 200 and all(body.get(k) == v for k, v in want.items()) and body["runId"] == 1,
              "check repairs and answers the seed's keys: %s" % body)
        check(env.in_sync(), "check repaired the index")
        st, body, _ = svc.http("GET", "/api/reconciliation/status")
        s = body["stats"]
        check(s["totalChecks"] == 1 and s["totalSyncs"] == 1 and s["documentsSynced"] == 30
              and s["lastCheck"] and s["lastSync"], "status totals reflect the check: %s" % s)
        totals = s
        st, body, _ = svc.http("POST", "/api/reconciliation/check", {"wait": False})
        check(st == 202 and body["runId"] == 2, "check with wait:false answers 202 at once: %s" % body)
        time.sleep(3)
        st, body, _ = svc.http("GET", "/api/reconciliation/runs?limit=1")
        check(st == 200 and body["runs"][0]["id"] == 2 and body["nextBefore"] == 2, "runs newest first")
        st, body, _ = svc.http("GET", "/api/reconciliation/runs?before=2")
        check([r["id"] for r in body["runs"]] == [1] and body["nextBefore"] is None, "runs paginate")
        st, body, _ = svc.http("GET", "/api/reconciliation/runs?status=completed")
        check(st == 200 and len(body["runs"]) == 2, "runs filter by status")
        st, body, _ = svc.http("GET", "/api/reconciliation/runs/1")
        run = body["run"]
        check(st == 200 and run["missingCount"] == 30 and run["batches"] and run["events"]
              and "config" in run, "run report")
        st, body, _ = svc.http("GET", "/api/reconciliation/runs/1/ids?kind=missing&limit=20")
        check(st == 200 and len(body["ids"]) == 20 and body["nextAfter"] == body["ids"][-1]["id"],
              "drift ids, first page")
        st, body2, _ = svc.http("GET", "/api/reconciliation/runs/1/ids?kind=missing&limit=20&after="
                                + body["nextAfter"])
        check(len(body2["ids"]) == 10 and body2["nextAfter"] is None, "drift ids, last page")
        st, body, _ = svc.http("GET", "/api/reconciliation/runs/1/errors")
        check(st == 200 and body["errors"] == [], "errors of a clean run")
        st, body, _ = svc.http("POST", "/api/reconciliation/runs/1/cancel")
        check(st == 409 and "completed" in body["error"], "cancel of a finished run: 409")

        st, text, hdr = svc.http("GET", "/metrics")
        check(st == 200 and hdr["Content-Type"].startswith("text/plain"), "metrics content type")
        check(prometheus_ok(text), "metrics parse as Prometheus text")
        check('reconciler_runs_total{status="completed"} 2' in text and
              'reconciler_drift_found_total{kind="missing"} 30' in text and
              "reconciler_run_active 0" in text, "metrics carry the journal's numbers")
    finally:
        check(svc.stop() == 0, "serve exits 0 on SIGTERM")
    # the totals survive a restart: they come from the journal
    svc = Service(env)
    try:
        st, body, _ = svc.http("GET", "/api/reconciliation/status")
        s = body["stats"]
        check(s["totalChecks"] == totals["totalChecks"] + 1 and s["documentsSynced"] == 30,
              "totals survive a restart: %s" % s)
        st, body, _ = svc.http("POST", "/api/sync/full", {"wait": True})
        check(st == 200 and body["status"] == "completed" and body["synced"] == 300,
              "POST /api/sync/full re-indexes everything: %s" % body)
        st, body, _ = svc.http("POST", "/api/sync/full")
        check(st == 202 and body["runId"] == 4, "POST /api/sync/full answers 202 at once: %s" % body)
        time.sleep(2)
        check(env.last_run()["kind"] == "full", "and journals a full run")
    finally:
        svc.stop()


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                         r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*)?\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')


def prometheus_ok(text):
    """A strict reading of the text exposition format 0.0.4."""
    typed, seen_samples, ok = {}, set(), text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            parts = line.split()
            ok &= len(parts) == 4 and parts[3] in ("counter", "gauge") and parts[2] not in typed
            typed[parts[2]] = parts[3]
            ok &= parts[2] not in seen_samples
            continue
        m = METRIC_LINE.match(line)
        if not m:
            print("bad metrics line:", repr(line))
            return False
        ok &= m.group(1) in typed
        seen_samples.add(m.group(1))
    return ok and len(typed) >= 8


def bad_input(env):
    svc = Service(env)
    try:
        cases = [
            ("POST", "/api/reconciliation/start", b"{not json", 400),
            ("POST", "/api/reconciliation/start", b"[1,2]", 400),
            ("POST", "/api/reconciliation/start", b'{"intervalMs": -5}', 400),
            ("POST", "/api/reconciliation/start", b'{"intervalMs": 0}', 400),
            ("POST", "/api/reconciliation/start", b'{"intervalMs": 1.5}', 400),
            ("POST", "/api/reconciliation/start", b'{"intervalMs": "60000"}', 400),
            ("POST", "/api/reconciliation/start", b'{"intervalMs": 1e300}', 400),
            ("POST", "/api/reconciliation/check", b'{"wait": "yes"}', 400),
            ("GET", "/api/reconciliation/runs/999", None, 404),
            ("GET", "/api/reconciliation/runs/abc", None, 400),
            ("GET", "/api/reconciliation/runs/-1", None, 400),
            ("GET", "/api/reconciliation/runs/999/ids", None, 404),
            ("GET", "/api/reconciliation/runs/999/errors", None, 404),
            ("POST", "/api/reconciliation/runs/999/cancel", None, 404),
            ("GET", "/api/reconciliation/runs?limit=0", None, 400),
            ("GET", "/api/reconciliation/runs?limit=abc", None, 400),
            ("GET", "/api/reconciliation/runs?limit=99999999999999999999", None, 400),
            ("GET", "/api/reconciliation/runs?status=bogus", None, 400),
            ("GET", "/api/reconciliation/runs?before=x", None, 400),
            ("GET", "/api/reconciliation/runs/1/ids?kind=lost", None, 400),
            ("GET", "/no/such/path", None, 404),
            ("GET", "/api/reconciliation/check", None, 405),
            ("DELETE", "/api/reconciliation/status", None, 405),
            ("POST", "/api/reconciliation/start", b"x" * (65 * 1024), 413),
        ]
        for method, path, raw, want in cases:
            st, body, hdr = svc.http(method, path, raw=raw)
            good = st == want and isinstance(body, dict) and body.get("success") is False \
                and isinstance(body.get("error"), str)
            check(good, "%s %s -> %d (got %d: %s)" % (method, path[:60], want, st, str(body)[:120]))
            if want == 405:
                check("Allow" in hdr, "405 says what is allowed")
        st, body, _ = svc.http("GET", "/api/health/live")
        check(st == 200, "still alive after the bad input")
    finally:
        check(svc.stop() == 0, "serve exits 0")


def auth(env):
    svc = Service(env, API_TOKEN="s3cr3t-token")
    try:
        st, _, _ = svc.http("POST", "/api/reconciliation/stop")
        check(st == 401, "POST without a token: 401")
        st, _, _ = svc.http("POST", "/api/reconciliation/stop", headers={"Authorization": "Bearer nope"})
        check(st == 401, "POST with a wrong token: 401")
        st, _, _ = svc.http("POST", "/api/reconciliation/stop",
                            headers={"Authorization": "Bearer s3cr3t-token"})
        check(st == 200, "POST with the token: 200")
        st, _, _ = svc.http("GET", "/api/reconciliation/status")
        check(st == 200, "GET needs no token by default")
    finally:
        svc.stop()
    svc = Service(env, API_TOKEN="s3cr3t-token", API_TOKEN_READ="true")
    try:
        st, _, _ = svc.http("GET", "/api/reconciliation/status")
        check(st == 401, "API_TOKEN_READ: GET without a token: 401")
        st, _, _ = svc.http("GET", "/api/reconciliation/status",
                            headers={"Authorization": "Bearer s3cr3t-token"})
        check(st == 200, "API_TOKEN_READ: GET with the token: 200")
        check(svc.http("GET", "/api/health/live")[0] == 200, "probes stay open")
    finally:
        svc.stop()


def concurrency_and_shutdown(env):
    env.create_index()
    env.fixture("load", "--count", 2000)
    svc = Service(env, SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=150)
    try:
        results = []

        def call():
            results.append(svc.http("POST", "/api/reconciliation/check", timeout=300))

        threads = [threading.Thread(target=call) for _ in range(5)]
        for t in threads:
            t.start()
        time.sleep(3)
        st, body, _ = svc.http("GET", "/api/reconciliation/status")
        check(body["currentRun"] and body["currentRun"]["runId"] == 1, "status shows the active run")
        busy = [r for r in results if r[0] == 409]
        check(len(busy) == 4 and all(r[1]["runId"] == 1 for r in busy),
              "concurrent checks: the others get 409 with the active run id (%s)"
              % [r[0] for r in results])
        # SIGTERM in the middle of the multi-batch run
        t0 = time.monotonic()
        code = svc.stop(signal.SIGTERM)
        took = time.monotonic() - t0
        for t in threads:
            t.join(timeout=30)
        check(code == 0 and took < 10, "SIGTERM: exit 0 within 10 s (%s, %.1fs)" % (code, took))
        run = env.last_run()
        check(run["id"] == 1 and run["status"] == "interrupted", "the run is interrupted (%s)" % run["status"])
        with env.journal() as db:
            pending = db.execute("SELECT count(*) FROM batches WHERE status='pending'").fetchone()[0]
            committed = db.execute("SELECT count(*) FROM batches WHERE status='committed'").fetchone()[0]
        check(pending <= 1, "at most the in-flight batch is pending")
        check(committed < 40, "the run stopped early (%d of 40 batches)" % committed)
    finally:
        svc.stop()
    svc = Service(env, SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=150)  # resumes it at start
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and env.last_run()["status"] != "completed":
            time.sleep(0.5)
        run = env.last_run()
        check(run["id"] == 1 and run["status"] == "completed" and run["resume_count"] == 1,
              "the next serve resumes and completes it (%s)" % run["status"])
        check(env.in_sync(), "in sync after the resumed run")
        env.os("DELETE", "/" + env.index)  # 2000 missing again: a slow run to cancel
        env.create_index()
        st, body, _ = svc.http("POST", "/api/reconciliation/check", {"wait": False})
        rid = body["runId"]
        time.sleep(1.5)
        st, body, _ = svc.http("POST", "/api/reconciliation/runs/%d/cancel" % rid)
        check(st == 202, "cancel of the active run: 202 (%d)" % st)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and env.last_run()["status"] == "running":
            time.sleep(0.2)
        run = env.last_run()
        check(run["id"] == rid and run["status"] == "cancelled" and run["repaired_count"] < 2000,
              "the run ends cancelled, early (%s, %s repaired)" % (run["status"], run["repaired_count"]))
        st, body, _ = svc.http("POST", "/api/reconciliation/runs/%d/cancel" % rid)
        check(st == 409, "cancelling it again: 409")
    finally:
        svc.stop()


class SlowLeaseProxy:
    """Forwards to the real node; holds every request on the lease index for
    `delay` seconds, so a run stays "starting" (no run id yet) that long."""

    def __init__(self, upstream, delay):
        u = urllib.parse.urlparse(upstream)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if "reconciler-leases" in self.path and "_create" in self.path:
                    time.sleep(delay)
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
                c.request(self.command, self.path, body=body,
                          headers={"Content-Type": self.headers.get("Content-Type") or
                                   "application/json"})
                r = c.getresponse()
                data = r.read()
                c.close()
                self.send_response(r.status)
                self.send_header("Content-Type", r.getheader("Content-Type") or
                                 "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def busy_names_starting_run(env):
    """A check that arrives while the active run is still starting (its
    lease taken slowly: no run id yet) waits for the id and names it in its
    409, instead of answering runId -1 (CI on a loaded machine)."""
    env.create_index()
    env.fixture("load", "--count", 200)
    proxy = SlowLeaseProxy(env.env["OPENSEARCH_URL"], 2.0)
    svc = Service(env, OPENSEARCH_URL=proxy.url)
    try:
        results = []

        def call():
            results.append(svc.http("POST", "/api/reconciliation/check", timeout=300))

        first = threading.Thread(target=call)
        first.start()
        time.sleep(0.5)  # the first run is taking its lease
        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads + [first]:
            t.join(timeout=120)
        busy = [r for r in results if r[0] == 409]
        check(len(busy) == 3 and all(r[1].get("runId") == 1 for r in busy),
              "checks during a slow start: 409 naming run 1 (%s)"
              % [(r[0], r[1].get("runId")) for r in results])
        done = [r for r in results if r[0] == 200]
        check(len(done) == 1 and done[0][1]["runId"] == 1, "the first check completes run 1")
    finally:
        svc.stop()
    # two mirrors: the seed check runs both, the others look at every mirror
    for coll in ("a", "b"):
        subprocess.run([FIXTURE, "load", "--count", "50"], capture_output=True, timeout=120,
                       env=dict(env.env, MONGODB_COLLECTION=coll), check=True)
    path = os.path.join(env.tmp, "two.yaml")
    with open(path, "w") as f:
        f.write("mirrors:\n  - name: a\n    mongodb_collection: a\n    opensearch_index: %s_a\n"
                "  - name: b\n    mongodb_collection: b\n    opensearch_index: %s_b\n"
                % (env.index, env.index))
    env.env["RECONCILER_CONFIG"] = path
    svc = Service(env, OPENSEARCH_URL=proxy.url, RECONCILE_CONCURRENCY=1)
    try:
        results = []
        first = threading.Thread(target=call)
        first.start()
        time.sleep(0.5)
        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads + [first]:
            t.join(timeout=120)
        busy = [r for r in results if r[0] == 409]
        check(len(busy) == 3 and all((r[1].get("runId") or -1) > 0 for r in busy),
              "two mirrors, checks during a slow start: 409 naming the run (%s)"
              % [(r[0], r[1].get("runId")) for r in results])
    finally:
        svc.stop()
        proxy.close()
        del env.env["RECONCILER_CONFIG"]
        env.os("DELETE", "/%s_a" % env.index)
        env.os("DELETE", "/%s_b" % env.index)


def hung_batch_signals(env):
    """With the in-flight batch hung (the OpenSearch node frozen with
    SIGSTOP: the scenario's own node, own_servers): one signal exits 0
    within 10 s with the run marked interrupted; a second signal exits at
    once. Either way the journal is consistent: the run resumes and
    completes."""
    import os
    os_pid = env.server_set.pid("opensearch")
    env.create_index()
    env.fixture("load", "--count", 2000)
    for signals, want_code, limit in ((1, 0, 10.5), (2, 130, 1.5)):
        svc = Service(env, SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=100, OPENSEARCH_TIMEOUT_MS=60000)
        st, body, _ = svc.http("POST", "/api/reconciliation/check", {"wait": False})
        # freeze the node once batches are being sent (a loaded machine may
        # take a while to get there)
        deadline = time.time() + 60
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                with env.journal() as db:
                    if db.execute("SELECT count(*) FROM batches").fetchone()[0]:
                        break
            except Exception:
                pass
        os.kill(os_pid, signal.SIGSTOP)
        try:
            time.sleep(0.5)  # the next _bulk hangs
            t0 = time.monotonic()
            svc.proc.send_signal(signal.SIGTERM)
            if signals == 2:
                time.sleep(0.3)
                svc.proc.send_signal(signal.SIGTERM)
            try:  # no further signal from stop(): one signal means one
                svc.proc.wait(timeout=15)
            except Exception:
                pass
            code = svc.stop(timeout=15)
            took = time.monotonic() - t0
        finally:
            os.kill(os_pid, signal.SIGCONT)
        check(code == want_code and took < limit, "%d signal(s) with a hung batch: exit %s in %.1fs"
              % (signals, code, took))
        run = env.last_run()
        if signals == 1:
            check(run["status"] == "interrupted", "the run is marked interrupted (%s)" % run["status"])
        r = env.run("resume")
        run = env.last_run()
        check(r.returncode == 0 and run["id"] == body["runId"] and run["status"] == "completed",
              "the journal was consistent: the run resumes and completes (%s)" % run["status"])
        check(env.in_sync(), "in sync after the resume")
        env.os("DELETE", "/%s" % env.index)
        env.create_index()


def schedule(env):
    svc = Service(env, RECONCILIATION_ENABLED="false", RECONCILIATION_STARTUP_DELAY_MS=300,
                  RECONCILIATION_INTERVAL_MS=1000)
    time.sleep(3)
    svc.stop()
    with env.journal() as db:
        n = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    check(n == 0, "RECONCILIATION_ENABLED=false: no run by itself (%d)" % n)
    t0 = time.time()
    svc = Service(env, RECONCILIATION_ENABLED="true", RECONCILIATION_STARTUP_DELAY_MS=1500,
                  RECONCILIATION_INTERVAL_MS=2000)
    time.sleep(6.5)
    svc.stop()
    with env.journal() as db:
        rows = db.execute("SELECT trigger, started_at FROM runs ORDER BY id").fetchall()
    from harness import iso_ms
    starts = [iso_ms(r[1]) / 1000.0 - t0 for r in rows]
    check(len(rows) >= 2 and all(r[0] == "schedule" for r in rows),
          "scheduled runs happen (%d)" % len(rows))
    check(starts and 1.4 <= starts[0] <= 5.0, "the first after the startup delay (%.2fs)" % starts[0])
    if len(starts) >= 2:
        check(1.5 <= starts[1] - starts[0] <= 5.0, "the next after the interval (%.2fs)"
              % (starts[1] - starts[0]))


def count_monitor(env):
    env.create_index()
    env.fixture("load", "--count", 100)
    env.fixture("sync", "--skip-every", 10)
    svc = Service(env, COUNT_MONITOR_ENABLED="true", COUNT_MONITOR_INTERVAL_MS=1000,
                  COUNT_MONITOR_THRESHOLD=5)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with env.journal() as db:
            runs = db.execute("SELECT trigger, status FROM runs").fetchall()
        if runs and runs[0][1] == "completed":
            break
        time.sleep(0.3)
    svc.stop()
    with env.journal() as db:
        events = [json.loads(r[0]) for r in db.execute(
            "SELECT detail FROM run_events WHERE event = 'count_check' ORDER BY id")]
    check(events and events[0]["difference"] == 10 and events[0]["triggered"],
          "count checks are journaled: %s" % events[:1])
    check(runs and runs[0][0] == "count_monitor", "past the threshold it starts a run: %s" % runs)
    check(env.in_sync(), "which repairs the index")


def secrets(env):
    uri = env.env["MONGODB_URI"].replace("mongodb://", "mongodb://nobody:pa55w0rd-xyz@")
    svc = Service(env, MONGODB_URI=uri, OPENSEARCH_PASSWORD="os-pa55-xyz", API_TOKEN="tok-xyz-123")
    try:
        st, body, _ = svc.http("GET", "/api/health")
        check(st == 503 and "pa55w0rd" not in json.dumps(body), "health masks the password: %s" % body)
        st, body, _ = svc.http("POST", "/api/reconciliation/check",
                               headers={"Authorization": "Bearer tok-xyz-123"})
        check("pa55w0rd" not in json.dumps(body), "check errors mask the password")
    finally:
        svc.stop()
    logs = ""
    import glob
    for f in glob.glob(env.env["LOG_DIR"] + "/*.log"):
        logs += open(f).read()
    with env.journal() as db:
        journal = json.dumps([list(r) for r in db.execute("SELECT config, error FROM runs")])
        journal += json.dumps([list(r) for r in db.execute("SELECT message FROM errors")])
    for secret in ("pa55w0rd-xyz", "os-pa55-xyz", "tok-xyz-123"):
        check(secret not in logs + svc.stderr, "%s not in the logs" % secret)
        check(secret not in journal, "%s not in the journal" % secret)


run_all([("slowstart", busy_names_starting_run), ("api", seed_routes), ("badinput", bad_input), ("auth", auth),
         ("shutdown", concurrency_and_shutdown),
         ("hungbatch", hung_batch_signals, {"own_servers": "opensearch"}),
         ("schedule", schedule), ("countmon", count_monitor), ("secrets", secrets)])
