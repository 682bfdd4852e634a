"""One run per mirror wherever it was started (issue 24 item 2): two
processes with two journals in two working directories share only the
mirror's OpenSearch, and the lease there keeps their runs apart. The
second exits 2 naming the holder; a holder killed with kill -9 on another
host (or frozen) is taken over once its lease expires and not before, one
killed on this host at once (its pid is gone); the lease is given back at
the end; a lease index OpenSearch refuses is a clear error; a holder whose
lease is taken over stops, interrupted, saying so."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

from harness import BIN, Env, check, done
from service import Service

N = 3000
SLOW = dict(SYNC_BATCH_SIZE=25, SYNC_BATCH_DELAY_MS=60, RECONCILE_CHUNK_SIZE=500)
LEASES = "reconciler-leases"


class Other:
    """A second process's world: the same mirror settings, its own working
    directory and its own journal (STATE_DB relative, as by default)."""

    def __init__(self, env):
        self.env = env
        self.dir = tempfile.mkdtemp(prefix="reconciler-it-other-")
        self.vars = dict(env.env)
        self.vars["STATE_DB"] = "data/reconciler.db"
        self.vars["LOG_DIR"] = "logs"

    def run(self, *args, **settings):
        v = dict(self.vars)
        v.update({k: str(x) for k, x in settings.items()})
        return subprocess.run([BIN] + list(args), env=v, capture_output=True, text=True,
                              timeout=600, cwd=self.dir)

    def runs(self):
        import sqlite3
        path = os.path.join(self.dir, "data", "reconciler.db")
        if not os.path.exists(path):
            return []
        with sqlite3.connect(path) as db:
            return db.execute("SELECT id, status FROM runs").fetchall()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def lease_path(env, index=LEASES):
    lid = "%s/%s.ads" % (env.index, env.db)
    return "/%s/_doc/%s" % (index, urllib.parse.quote(lid, safe=""))


def lease(env, index=LEASES):
    st, body = env.os("GET", lease_path(env, index))
    return body if st == 200 else None


def wait_running(env, p, batches=2):
    """Until p's run committed a few batches (it holds the lease then)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        try:
            with env.journal() as db:
                n = db.execute("SELECT count(*) FROM batches WHERE status = 'committed'"
                               ).fetchone()[0]
            if n >= batches and lease(env):
                return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


def setup(name, **settings):
    env = Env(name, **dict(SLOW, **settings))
    env.create_index()
    env.fixture("load", "--count", N)
    return env


def two_directories():
    env = setup("lease_dirs")
    other = Other(env)
    try:
        p = env.spawn("check")
        check(wait_running(env, p), "the first process runs and holds the lease")
        doc = lease(env)["_source"]
        check(doc["pid"] == p.pid and doc["mirror"] == "default" and
              doc["journal"] == env.env["STATE_DB"] and doc["run_id"] == 1,
              "the lease names the holder: pid, mirror, journal, run (%s)" % doc)
        check(doc["expires_at"] - doc["heartbeat_at"] == 60000, "default TTL 60 s")
        r = other.run("check")
        check(r.returncode == 2, "the second process exits 2 (%d)" % r.returncode)
        check("mirror default is running in another process: %s" % doc["owner"] in r.stderr
              and "run 1" in r.stderr and env.env["STATE_DB"] in r.stderr
              and "lease expires in" in r.stderr,
              "it names the holder (owner, journal, run, expiry): %s" % r.stderr.strip())
        check(other.runs() == [], "the second process began no run in its journal")
        r = other.run("check", "--dry-run")
        check(r.returncode == 2 and "running in another process" in r.stderr,
              "a dry run of the mirror waits its turn as well")
        # its own journal lock is still the first line
        r = env.run("check")
        check(r.returncode == 2 and "holds the journal" in r.stderr,
              "the same journal: the journal lock answers first: %s" % r.stderr.strip())
        out, err = p.communicate(timeout=300)
        check(p.returncode == 0, "the holder completes (%d): %s" % (p.returncode, err[-300:]))
        check(lease(env) is None, "a run that ends gives the lease back (no lease document)")
        r = other.run("check")
        check(r.returncode == 0 and other.runs() == [(1, "completed")],
              "then the second process runs: %s" % r.stderr[-300:])
        check(lease(env) is None, "and gives it back too")
    finally:
        other.cleanup()
        env.cleanup()


def killed_here():
    """kill -9 on this host: the pid is gone, so the lease is taken at once."""
    env = setup("lease_kill")
    other = Other(env)
    try:
        p = env.spawn("check")
        check(wait_running(env, p), "the holder runs")
        owner = lease(env)["_source"]["owner"]
        p.send_signal(signal.SIGKILL)
        p.wait()
        check(lease(env)["_source"]["owner"] == owner, "kill -9 leaves the lease behind")
        r = other.run("check", LOG_LEVEL="info")
        check(r.returncode == 0, "a process on the same host takes it over at once (%d): %s" % (
            r.returncode, r.stderr[-300:]))
        check("took over the lease of %s" % owner in r.stderr and "process is gone" in r.stderr,
              "and says whose lease it took and why: %s" % r.stderr[-400:])
        check(lease(env) is None, "and gives it back")
    finally:
        other.cleanup()
        env.cleanup()


def killed_elsewhere():
    """kill -9 of a holder on another host: taken over once expired, not before."""
    env = setup("lease_expire", RECONCILE_LEASE_TTL_MS=4000)
    other = Other(env)
    try:
        p = env.spawn("check")
        check(wait_running(env, p), "the holder runs (TTL 4 s)")
        p.send_signal(signal.SIGKILL)
        p.wait()
        doc = lease(env)
        src = doc["_source"]
        # the holder ran elsewhere: its pid says nothing here
        st, _ = env.os("POST", "/%s/_update/%s?refresh=true" % (
            LEASES, lease_path(env).rsplit("/", 1)[1]), {"doc": {"host": "elsewhere"}})
        check(st == 200, "the lease is made another host's")
        expires = src["expires_at"]
        r = other.run("check")
        left = expires - time.time() * 1000
        check(r.returncode == 2 and src["owner"] in r.stderr,
              "before expiry (%.1f s left) the lease is refused, naming the holder: %s" % (
                  left / 1000, r.stderr.strip()))
        check(other.runs() == [], "nothing begun")
        time.sleep(max(0, (expires - time.time() * 1000) / 1000) + 0.3)
        r = other.run("check", LOG_LEVEL="info")
        check(r.returncode == 0 and "expired" in r.stderr,
              "after expiry it is taken over (%d): %s" % (r.returncode, r.stderr[-400:]))
        check(lease(env) is None, "and given back")
    finally:
        other.cleanup()
        env.cleanup()


def frozen():
    """A holder that stops renewing (SIGSTOP: alive, but silent) loses the
    mirror when its lease expires; woken, it finds it lost and stops."""
    env = setup("lease_frozen", RECONCILE_LEASE_TTL_MS=3000)
    other = Other(env)
    try:
        p = env.spawn("check")
        check(wait_running(env, p), "the holder runs (TTL 3 s)")
        p.send_signal(signal.SIGSTOP)
        expires = lease(env)["_source"]["expires_at"]
        r = other.run("check", SYNC_BATCH_DELAY_MS=0)
        check(r.returncode == 2 and "running in another process" in r.stderr,
              "a frozen holder's lease holds until it expires")
        time.sleep(max(0, (expires - time.time() * 1000) / 1000) + 0.3)
        r = other.run("check", SYNC_BATCH_DELAY_MS=0)
        check(r.returncode == 0, "after expiry another process takes the mirror (%d): %s" % (
            r.returncode, r.stderr[-300:]))
        p.send_signal(signal.SIGCONT)
        out, err = p.communicate(timeout=120)
        run = env.last_run()
        check(p.returncode == 2 and run["status"] == "interrupted",
              "woken, the old holder stops: exit 2, run interrupted (%d, %s)" % (
                  p.returncode, run["status"]))
        check("lease" in (run["error"] or "") and "lease" in err,
              "and says it lost the lease: %s" % run["error"])
        check(env.in_sync(), "the index is in sync after all")
    finally:
        other.cleanup()
        env.cleanup()


def taken_from_holder():
    """A lease overwritten under a running holder: its next renewal fails,
    and the run stops interrupted with a clear error."""
    env = setup("lease_taken", RECONCILE_LEASE_TTL_MS=3000)
    try:
        p = env.spawn("check")
        check(wait_running(env, p), "the holder runs")
        src = dict(lease(env)["_source"], owner="thief:1:00", host="thief")
        st, _ = env.os("PUT", lease_path(env) + "?refresh=true", src)
        check(st == 200, "another owner overwrites the lease")
        out, err = p.communicate(timeout=120)
        run = env.last_run()
        check(p.returncode == 2 and run["status"] == "interrupted",
              "the holder stops: exit 2, interrupted (%d, %s)" % (p.returncode, run["status"]))
        check("taken over by another process" in (run["error"] or "") and
              "taken over" in err, "the error says the lease was taken over: %s" % run["error"])
        check(lease(env)["_source"]["owner"] == "thief:1:00",
              "the new owner's lease is left alone")
        env.os("DELETE", lease_path(env) + "?refresh=true")
        r = env.run("resume")
        check(r.returncode == 0 and env.last_run()["status"] == "completed",
              "once it is free, the interrupted run resumes: %s" % r.stderr[-300:])
    finally:
        env.cleanup()


def refused():
    env = Env("lease_refused")
    bad = env.index + "_leases"
    try:
        env.create_index()
        env.fixture("load", "--count", 20)
        st, _ = env.os("PUT", "/" + bad, {"settings": {"index.blocks.write": True}})
        check(st == 200, "a lease index that refuses writes")
        r = env.run("check", RECONCILE_LEASE_INDEX=bad)
        check(r.returncode == 2 and "cannot take the lease of mirror default in RECONCILE_LEASE_INDEX=%s" % bad
              in r.stderr and "RECONCILE_LEASE_INDEX= (empty)" in r.stderr
              and "403" in r.stderr,
              "a refused lease: exit 2, the setting, OpenSearch's answer, what to do: %s"
              % r.stderr.strip())
        check(not os.path.exists(env.env["STATE_DB"]) or
              env.journal().execute("SELECT count(*) FROM runs").fetchone()[0] == 0,
              "no run begun")
        r = env.run("check", RECONCILE_LEASE_INDEX="")
        check(r.returncode == 0, "RECONCILE_LEASE_INDEX= (empty): no lease, the run runs (%d)"
              % r.returncode)
        r = env.run("check", RECONCILE_LEASE_INDEX=env.index)
        check(r.returncode == 78 and "mirror default's own index" in r.stderr,
              "the mirror's own index as lease index: exit 78 (%d: %s)" % (
                  r.returncode, r.stderr.strip()))
        r = env.run("check", RECONCILE_LEASE_INDEX="Leases*")
        check(r.returncode == 78 and "RECONCILE_LEASE_INDEX" in r.stderr,
              "a name OpenSearch does not allow: exit 78")
        r = env.run("check", RECONCILE_LEASE_TTL_MS="500")
        check(r.returncode == 78 and "RECONCILE_LEASE_TTL_MS" in r.stderr,
              "a TTL under its bound: exit 78")
        # a cluster that creates no index on a first write: it is created
        fresh = env.index + "_fresh"
        st, _ = env.os("PUT", "/_cluster/settings",
                       {"transient": {"action.auto_create_index": "-%s,+*" % fresh}})
        try:
            r = env.run("check", RECONCILE_LEASE_INDEX=fresh)
            st2, body = env.os("GET", "/%s/_mapping" % fresh)
            check(r.returncode == 0 and st2 == 200 and
                  body[fresh]["mappings"]["properties"]["owner"]["type"] == "keyword",
                  "a missing lease index is created when the cluster does not (%d)"
                  % r.returncode)
        finally:
            env.os("PUT", "/_cluster/settings", {"transient": {"action.auto_create_index": None}})
            env.os("DELETE", "/" + fresh)
    finally:
        env.os("DELETE", "/" + bad)
        env.cleanup()


def service():
    """The service's run fails to start while another process holds the
    mirror: HTTP 409 with the holder, as for the journal lock."""
    env = setup("lease_svc")
    other = Other(env)
    svc = None
    try:
        q = subprocess.Popen([BIN, "check"], env=other.vars, cwd=other.dir,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while lease(env) is None and time.monotonic() < deadline and q.poll() is None:
            time.sleep(0.1)
        owner = lease(env)["_source"]["owner"]
        svc = Service(env)
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        check(st == 409 and owner in body.get("error", "") and body.get("runId") is None,
              "the service's run: 409 naming the holder, runId null (%s %s)" % (st, body))
        check(env.journal().execute("SELECT count(*) FROM runs").fetchone()[0] == 0
              if os.path.exists(env.env["STATE_DB"]) else True, "no run begun")
        q.communicate(timeout=300)
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        check(st == 200 and body.get("status") == "completed",
              "once the other ends the service runs it (%s)" % st)
        check(lease(env) is None, "and gives the lease back")
    finally:
        if svc:
            svc.stop()
        other.cleanup()
        env.cleanup()


ALL = (two_directories, killed_here, killed_elsewhere, frozen, taken_from_holder, refused,
       service)
for scenario in ALL:
    if len(sys.argv) > 1 and scenario.__name__ not in sys.argv[1:]:
        continue  # a few by name: test_lease.py frozen refused
    t0 = time.monotonic()
    scenario()
    print("%s: %.1f s" % (scenario.__name__, time.monotonic() - t0), flush=True)
done()
