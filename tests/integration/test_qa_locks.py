"""What QA passes found about "one run per mirror", each now the right outcome:
- QA8b F6: the seed check of every mirror while another process holds one
  mirror's journal lock is a 409 naming that mirror and the holder's run,
  and starts nothing (the one-mirror route names the run too);
- QA8b F4: a query parameter given twice is a 400 naming it;
- QA8b F3: cancelling a resume that waits for a slot frees its mirror at
  once, and the 409 for it names its run;
- QA8b F8: a symlink to the journal takes the same lock as the journal.
"""
import fcntl
import os
import signal
import sqlite3
import time

from harness import check, run_all, write
from service import Service


def two_mirrors(env, extra=""):
    """Mirrors a and b: the collection ads into two indexes."""
    env.env["RECONCILER_CONFIG"] = write(env, "two.yaml", """\
mirrors:
  - name: a
    opensearch_index: %s_a
%s  - name: b
    opensearch_index: %s_b
%s""" % (env.index, extra, env.index, extra))


def runs(env):
    with env.journal() as db:
        return [dict(x) for x in db.execute("SELECT id, mirror, status FROM runs ORDER BY id")]


def lock_conflict(env):
    """QA8b F6 and F4."""
    env.fixture("load", "--count", 50)
    two_mirrors(env)
    r = env.run("check")
    check(r.returncode == 0, "check of both mirrors (%d: %s)" % (r.returncode, r.stderr[-300:]))
    held = [x["id"] for x in runs(env) if x["mirror"] == "a"][0]
    # another process runs mirror a: its run is running and it holds a's lock
    with env.journal() as db:
        db.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ?", (held,))
    lock = open(env.env["STATE_DB"] + ".a.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    svc = Service(env)
    try:
        before = runs(env)
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        check(st == 409 and body.get("mirror") == "a" and body.get("runId") == held
              and str(held) in body.get("error", ""),
              "the seed check of every mirror: 409 naming mirror a and run %d (%d: %s)"
              % (held, st, body))
        st2, body2, _ = svc.http("POST", "/api/reconciliation/check", {"wait": False})
        check(st2 == 409 and body2.get("runId") == held, "also with wait false (%d: %s)" % (st2, body2))
        check(runs(env) == before, "and nothing started: mirror b did not run either")
        st, body, _ = svc.http("POST", "/api/mirrors/a/check")
        check(st == 409 and body.get("runId") == held and body.get("mirror") == "a",
              "the one-mirror route names the holder's run (%d: %s)" % (st, body))
        st, body, _ = svc.http("POST", "/api/reconciliation/check?mirror=a", {"wait": False})
        check(st == 409 and body.get("runId") == held, "?mirror=a too (%d: %s)" % (st, body))
        st, body, _ = svc.http("POST", "/api/mirrors/b/check")
        check(st == 200 and isinstance(body.get("runId"), int) and body["runId"] > 0,
              "mirror b alone runs (%d: %s)" % (st, str(body)[:200]))
        # the other process ends: every mirror runs, each with its run
        fcntl.flock(lock, fcntl.LOCK_UN)
        with env.journal() as db:
            db.execute("UPDATE runs SET status = 'completed', finished_at = started_at"
                       " WHERE id = ?", (held,))
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        check(st == 200 and all(isinstance(m.get("runId"), int) and m["runId"] > 0
                                for m in body.get("mirrors", []))
              and body.get("mongoCount") == 100,
              "then both run, counts summed over both (%d: %s)" % (st, str(body)[:300]))

        # F4: a query parameter given twice
        for method, path in [("POST", "/api/reconciliation/check?mirror=b&mirror=a"),
                             ("GET", "/api/reconciliation/status?mirror=a&mirror=b"),
                             ("GET", "/api/reconciliation/runs?limit=1&limit=2"),
                             ("GET", "/api/mirrors/a?x=1&x=2")]:
            n = len(runs(env))
            st, body, _ = svc.http(method, path)
            name = path.split("?")[1].split("=")[0]
            check(st == 400 and isinstance(body, dict) and body.get("success") is False
                  and name in body.get("error", "") and "twice" in body.get("error", ""),
                  "%s %s: 400 naming %s (%d: %s)" % (method, path, name, st, body))
            check(len(runs(env)) == n, "and no run started")
        st, body, _ = svc.http("GET", "/api/reconciliation/status?mirror=a")
        check(st == 200, "a parameter once still answers (%d)" % st)
    finally:
        svc.stop()
        lock.close()


def wait_for(what, fn, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    check(False, "timed out waiting for " + what)
    return None


def queued_cancel(env):
    """QA8b F3: two interrupted runs, one slot: one resumes, the other's
    resume waits; cancelling it frees its mirror at once."""
    env.fixture("load", "--count", 100)
    two_mirrors(env, "    sync_batch_size: 1\n    sync_batch_delay_ms: 1000\n")
    for name in ("a", "b"):
        p = env.spawn("check", "--mirror", name)

        def repairing():
            try:
                with env.journal() as db:
                    row = db.execute("SELECT phase FROM runs WHERE mirror = ? ORDER BY id DESC",
                                     (name,)).fetchone()
            except sqlite3.OperationalError:  # not made yet
                return False
            # an empty index is written from the stream (phase indexing)
            return row is not None and row[0] in ("repairing", "indexing")
        wait_for("mirror %s repairing" % name, repairing)
        p.send_signal(signal.SIGKILL)
        p.communicate()
    interrupted = {x["mirror"]: x["id"] for x in runs(env)}
    svc = Service(env, RECONCILE_CONCURRENCY=1)
    try:
        def queued_mirror():
            for m in ("a", "b"):
                st, body, _ = svc.http("GET", "/api/mirrors/" + m)
                if st == 200 and body["mirror"]["queued"]:
                    return m
            return None
        q = wait_for("a resume waiting for a slot", queued_mirror)
        if q is None:
            return
        rid = interrupted[q]
        st, body, _ = svc.http("POST", "/api/mirrors/%s/check" % q, {"wait": False})
        check(st == 409 and body.get("runId") == rid and str(rid) in body.get("error", "")
              and "waits for a slot" in body.get("error", ""),
              "the 409 for the queued resume names run %d (%d: %s)" % (rid, st, body))
        st, body, _ = svc.http("POST", "/api/reconciliation/runs/%d/cancel" % rid)
        check(st == 200 and body.get("message") == "cancelled", "cancel it (%d: %s)" % (st, body))
        st, body, _ = svc.http("POST", "/api/mirrors/%s/check" % q, {"wait": False})
        check(st == 202 and body.get("runId") is None and "queued" in body.get("message", ""),
              "the mirror is free at once: a new check queues (%d: %s)" % (st, body))
        with env.journal() as db:
            status = db.execute("SELECT status FROM runs WHERE id = ?", (rid,)).fetchone()[0]
        check(status == "cancelled", "run %d is cancelled, never resumed (%s)" % (rid, status))
    finally:
        svc.stop()
    check("left the queue" in svc.stderr,
          "the log says the resume left the queue")


def lock_through_symlink(env):
    """QA8b F8: the lock of "one run per mirror" is named after the journal's
    resolved path: a second process reaching the journal through a symlink
    gets the lock error while the first runs, and leaves its run alone."""
    env.create_index()
    env.fixture("load", "--count", 40)
    real = env.env["STATE_DB"]
    link = os.path.join(env.tmp, "link.db")
    first = env.spawn("check", SYNC_BATCH_SIZE=1, SYNC_BATCH_DELAY_MS=300)
    try:
        deadline = time.monotonic() + 60
        run = None
        while time.monotonic() < deadline:
            if os.path.exists(real):
                try:
                    run = env.last_run()
                except Exception:
                    run = None
                if run and run["status"] == "running" and run["repaired_count"] > 0:
                    break
            time.sleep(0.2)
        check(run and run["status"] == "running", "the first run is repairing (%s)" % run)
        if not os.path.lexists(link):
            os.symlink(real, link)
        r = env.run("check", STATE_DB=link)
        check(r.returncode == 2 and "run %d of mirror default holds the journal" % run["id"] in r.stderr,
              "through the symlink: the lock error, exit 2 (%d: %r)" % (r.returncode, r.stderr[-300:]))
        r = env.run("resume", STATE_DB=link)
        check(r.returncode == 2 and "holds the journal" in r.stderr,
              "resume through the symlink: the lock error too (%d: %r)" % (r.returncode, r.stderr[-300:]))
        with env.journal() as db:
            status = db.execute("SELECT status, resume_count FROM runs WHERE id = ?",
                                (run["id"],)).fetchone()
        check(tuple(status) == ("running", 0), "the first run is left alone (%s)" % (tuple(status),))
    finally:
        first.send_signal(15)
        first.communicate(timeout=60)


run_all([lock_conflict, queued_cancel, lock_through_symlink])
