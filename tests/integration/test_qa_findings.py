"""What a QA pass over mirrors found, each now the right outcome:
- an index name that is a wildcard or a list is refused (it read other
  indexes and deleted their documents as orphans);
- a run left unfinished by a killed CLI is superseded by the service's next
  completed run of that mirror, never resumed later to re-send old batches;
- GET /api/reconciliation/status honours ?mirror= (404 for an unknown one);
- a "%00" in a path never cuts it short into another route's name;
- `--mirror` given twice or without a name is refused with 78, not half-obeyed;
QA8b:
- F6: the seed check of every mirror while another process holds one
  mirror's journal lock is a 409 naming that mirror and the holder's run,
  and starts nothing (the one-mirror route names the run too);
- F4: a query parameter given twice is a 400 naming it;
- F9: with one mirror `default`, /metrics counts default's runs only, not
  the runs of other (removed) mirrors in the journal;
- F3: cancelling a resume that waits for a slot frees its mirror at once,
  and the 409 for it names its run.
- F1: two mirrors into one index spelled two ways (URL, alias) are refused;
- F8: a symlink to the journal takes the same lock as the journal;
- F2: unfinished runs of a mirror no longer configured are named at start.
"""
import fcntl
import os
import signal
import sqlite3
import time

from harness import Env, check, done
from service import Service


def index_names(env):
    for name in ("zz*", "a,b", "ADS", "../x", "a b"):
        r = env.run("check", OPENSEARCH_INDEX=name)
        check(r.returncode == 78 and "OPENSEARCH_INDEX" in r.stderr
              and "naming one index or alias" in r.stderr,
              "index %r refused with exit 78 (%d: %r)" % (name, r.returncode, r.stderr[-200:]))
    path = os.path.join(env.tmp, "wild.yaml")
    with open(path, "w") as f:
        f.write("mirrors:\n  - name: zw\n    opensearch_index: \"zz*\"\n")
    r = env.run("config", "--file", path)
    check(r.returncode == 78 and "wild.yaml:3" in r.stderr and "opensearch_index" in r.stderr,
          "in a file too, naming file:line and key (%d: %r)" % (r.returncode, r.stderr[-200:]))


def superseded(env):
    env.create_index()
    env.fixture("load", "--count", 200)
    r = env.run("check")
    check(r.returncode == 0, "first check (%d: %s)" % (r.returncode, r.stderr[-300:]))
    first = env.last_run()["id"]
    svc = Service(env)
    try:
        # as a CLI check killed while the service runs leaves it (the
        # service resumes unfinished runs only when it starts)
        with env.journal() as db:
            db.execute("UPDATE runs SET status = 'interrupted', phase = 'diffing',"
                       " finished_at = NULL WHERE id = ?", (first,))
        st, body, _ = svc.http("POST", "/api/reconciliation/check", {"wait": True})
        check(st == 200 and body["runId"] != first, "the service's check is a new run (%s)" % body)
        st, body, _ = svc.http("GET", "/api/reconciliation/runs/%d" % first)
        run = body.get("run", body)
        check(st == 200 and run.get("status") == "cancelled"
              and "superseded by run" in (run.get("error") or ""),
              "the killed run is superseded, not left to resume (%s)" % str(run)[:300])
        st, body, _ = svc.http("GET", "/api/reconciliation/status?mirror=default")
        check(st == 200 and "stats" in body, "status?mirror=default answers (%d)" % st)
        st, body, _ = svc.http("GET", "/api/reconciliation/status?mirror=nope")
        check(st == 404 and "nope" in body.get("error", ""),
              "status?mirror=nope is 404 (%d: %s)" % (st, body))
        st, body, _ = svc.http("GET", "/api/mirrors/default%00")
        check(st == 404, "a %%00 does not cut the path into another name (%d)" % st)
        st, body, _ = svc.http("GET", "/api/mirrors/default")
        check(st == 200, "the mirror itself answers (%d)" % st)
    finally:
        svc.stop()
    r = env.run("check")
    with env.journal() as db:
        resumed = db.execute("SELECT resume_count FROM runs WHERE id = ?", (first,)).fetchone()[0]
    check(r.returncode == 0 and resumed == 0 and env.last_run()["id"] != first,
          "a later CLI check does not resume the superseded run (%d, resumed %d)"
          % (r.returncode, resumed))
    r = env.run("check", "--mirror", "default", "--mirror", "default")
    check(r.returncode == 78 and "twice" in r.stderr,
          "--mirror twice is refused with 78, as bad --ids are (%d: %r)" % (r.returncode, r.stderr))
    r = env.run("check", "--mirror=default", "--mirror", "default")
    check(r.returncode == 78 and "twice" in r.stderr, "--mirror= then --mirror: 78 (%d)" % r.returncode)
    r = env.run("check", "--mirror")
    check(r.returncode == 78 and "name" in r.stderr,
          "--mirror without a name: 78 (%d: %r)" % (r.returncode, r.stderr))


def stale_pending_delete(env):
    """A resumed run's pending delete batch is hours old: an orphan of then
    that has a document again is not deleted (asked again, journaled
    skipped); the copy, with a field only the index holds, survives."""
    env.create_index()
    env.fixture("load", "--count", 50)
    env.run("check")
    oid = "%024x" % 0xfeed00000000000000000001
    env.bulk([{"index": {"_id": oid}},
              {"mongo_id": oid, "updatedAt": "2024-01-01T00:00:00.000Z"}])
    r = env.run("check", RECONCILE_ORPHANS="delete")
    run = env.last_run()
    check(r.returncode == 0 and run["deleted_count"] == 1, "the orphan is deleted (%s)" % run["deleted_count"])
    # as if killed after the delete batch was journaled, before it was sent;
    # meanwhile the live syncer wrote the document into MongoDB and the index
    with env.journal() as db:
        db.execute("UPDATE runs SET status = 'interrupted', phase = 'repairing',"
                   " finished_at = NULL WHERE id = ?", (run["id"],))
        db.execute("UPDATE batches SET status = 'pending' WHERE run_id = ? AND action = 'delete'",
                   (run["id"],))
        db.execute("UPDATE run_ids SET status = 'pending' WHERE run_id = ? AND kind = 'orphan'",
                   (run["id"],))
    env.mongo({"insert": "ads", "documents": [
        {"_id": {"$oid": oid}, "updatedAt": {"$date": {"$numberLong": "1704067200000"}}}]})
    env.bulk([{"index": {"_id": oid}},
              {"mongo_id": oid, "updatedAt": "2024-01-01T00:00:00.000Z", "enriched": True}])
    r = env.run("resume")
    st, doc = env.os("GET", "/%s/_doc/%s" % (env.index, oid))
    with env.journal() as db:
        row = db.execute("SELECT status, error FROM run_ids WHERE run_id = ? AND doc_id = ?",
                         (run["id"], oid)).fetchone()
        pending = db.execute("SELECT count(*) FROM batches WHERE run_id = ? AND status = 'pending'",
                             (run["id"],)).fetchone()[0]
    check(r.returncode == 0 and st == 200 and doc["_source"].get("enriched") is True,
          "the document's copy was never deleted (%d, %s)" % (r.returncode, doc.get("_source")))
    check(row is not None and row["status"] == "skipped" and "again" in (row["error"] or ""),
          "the stale delete is journaled skipped (%s)" % (dict(row) if row else None))
    check(pending == 0, "the emptied batch is closed (%d pending)" % pending)


def resume_dry_run(env):
    """QA10 F21: a service starting on an interrupted dry run "resumed" it
    by starting a new check, one that writes. It resumes that dry run."""
    env.create_index()
    env.fixture("load", "--count", 200)
    r = env.run("check", "--dry-run")
    dry = env.last_run()["id"]
    with env.journal() as db:  # as a dry run killed mid-pass leaves it
        db.execute("UPDATE runs SET status = 'interrupted', phase = 'diffing',"
                   " finished_at = NULL WHERE id = ?", (dry,))
    svc = Service(env, RECONCILIATION_ENABLED="false")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st, body, _ = svc.http("GET", "/api/mirrors/default")
            if st == 200 and body["mirror"]["currentRun"] is None and not body["mirror"]["queued"]:
                with env.journal() as db:
                    status = db.execute("SELECT status FROM runs WHERE id = ?",
                                        (dry,)).fetchone()[0]
                # running: the resume has begun in the journal but its
                # progress does not show yet (seen on a loaded machine)
                if status not in ("interrupted", "running"):
                    break
            time.sleep(0.3)
    finally:
        svc.stop()
    with env.journal() as db:
        runs = [dict(x) for x in db.execute("SELECT id, kind, status, resume_count FROM runs")]
    check(len(runs) == 1 and runs[0]["kind"] == "dry_run" and runs[0]["resume_count"] == 1
          and runs[0]["status"] == "completed" and env.os_docs() == {},
          "the service resumes the dry run as a dry run, nothing written (%s)" % runs)


def write(env, name, text):
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


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


def metrics_default(env):
    """QA8b F9: back to one mirror default (a file without mirrors:) on a
    journal that holds another mirror's runs, one of them left running."""
    env.fixture("load", "--count", 20)
    old = write(env, "old.yaml", "mirrors:\n  - name: old\n")
    r = env.run("check", RECONCILER_CONFIG=old)
    r2 = env.run("check", RECONCILER_CONFIG=old)
    check(r.returncode == 0 and r2.returncode == 0, "two runs of mirror old (%s)" % r.stderr[-200:])
    with env.journal() as db:
        db.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE id = 2")
    one = write(env, "one.yaml", "reconcile_orphans: report\n")
    svc = Service(env, RECONCILER_CONFIG=one)
    try:
        st, text, _ = svc.http("GET", "/metrics")
        check(st == 200 and "mirror=" not in text, "one mirror default: unlabelled series")
        for line in ('reconciler_runs_total{status="completed"} 0\n',
                     'reconciler_runs{status="running"} 0\n',
                     'reconciler_drift_found_total{kind="missing"} 0\n'):
            check(line in text, "%r: default's own, not mirror old's" % line.strip())
        check("reconciler_last_run_timestamp_seconds" not in text
              and "reconciler_documents{" not in text,
              "no last run of default yet (old's is not shown)")
        st, body, _ = svc.http("GET", "/api/reconciliation/status")
        check(st == 200 and body["stats"]["totalChecks"] == 0, "as /status says (%s)" % body)
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        check(st == 200 and body.get("success"), "a check of default (%d)" % st)
        st, text, _ = svc.http("GET", "/metrics")
        check('reconciler_runs_total{status="completed"} 1\n' in text
              and 'reconciler_documents{side="mongodb"} 20\n' in text,
              "then its own run counts (%s)" % [x for x in text.splitlines() if "runs" in x])
    finally:
        svc.stop()


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
            return row is not None and row[0] == "repairing"
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



def shared_index_spellings(env):
    """QA8b F1: two mirrors into one index without their own opensearch_query,
    the cluster or index spelled two ways. A URL spelled two ways is refused
    by the configuration (file, line, key); an alias of the other mirror's
    index only the cluster can tell: each run of either mirror (CLI and
    service) is refused before anything is counted or written."""
    env.create_index()
    env.fixture("load", "--count", 100)
    r = env.run("check")
    check(r.returncode == 0 and len(env.os_docs()) == 100, "ads indexed (%s)" % r.stderr[-200:])
    env.mongo({"insert": "u2", "documents": [{"_id": "u%02d" % i} for i in range(10)]})
    alias = env.index + "_alias"
    st, _ = env.os("POST", "/_aliases", {"actions": [{"add": {"index": env.index, "alias": alias}}]})
    check(st == 200, "alias made")
    local = env.url.replace("127.0.0.1", "localhost")
    path = os.path.join(env.tmp, "shared.yaml")
    with open(path, "w") as f:
        f.write("reconcile_orphans: delete\nmirrors:\n"
                "  - name: a\n    mongodb_collection: ads\n    opensearch_index: %s\n"
                "    opensearch_url: %s\n"
                "  - name: b\n    mongodb_collection: u2\n    opensearch_index: %s\n"
                "    opensearch_url: %s/\n" % (env.index, env.url, env.index, local))
    r = env.run("config", "--file", path)
    check(r.returncode == 78 and "shared.yaml:7: mirror b: opensearch_query: mirrors a (line 3)"
          " and b" in r.stderr and "one cluster" in r.stderr,
          "127.0.0.1 and localhost/ are one cluster: refused (%d: %r)" % (r.returncode, r.stderr[-300:]))
    with open(path, "w") as f:
        f.write("reconcile_orphans: delete\nmirrors:\n"
                "  - name: a\n    mongodb_collection: ads\n    opensearch_index: %s\n"
                "    opensearch_url: %s\n"
                "  - name: b\n    mongodb_collection: u2\n    opensearch_index: %s\n"
                "    opensearch_url: %s\n"
                "  - name: c\n    mongodb_collection: u2\n    opensearch_index: %s_new\n"
                % (env.index, env.url, alias, local, env.index))
    r = env.run("config", "--file", path)
    check(r.returncode == 0, "an alias passes the configuration (%d: %r)" % (r.returncode, r.stderr[-300:]))
    for mirror in ("b", "a"):
        r = env.run("check", "--mirror", mirror, RECONCILER_CONFIG=path)
        run = env.last_run()
        check(r.returncode not in (0, 78) and run["mirror"] == mirror and run["status"] == "failed"
              and "both write into index " + env.index in r.stderr
              and ("mirrors %s and %s" % (mirror, "a" if mirror == "b" else "b")) in r.stderr
              and "nothing was changed" in (run["error"] or ""),
              "run of mirror %s refused, failed (%d: %r, %s)"
              % (mirror, r.returncode, r.stderr[-400:], run["status"]))
        check(len(env.os_docs()) == 100 and run["opensearch_count"] is None,
              "nothing counted or written for %s (%d copies)" % (mirror, len(env.os_docs())))
    # a mirror whose index does not exist yet conflicts with nobody
    r = env.run("check", "--mirror", "c", RECONCILER_CONFIG=path)
    check(r.returncode == 0 and env.last_run()["status"] == "completed",
          "mirror c (its own new index) runs (%d: %r)" % (r.returncode, r.stderr[-300:]))
    env.os("DELETE", "/%s_new" % env.index)
    svc = Service(env, RECONCILER_CONFIG=path)
    try:
        st, body, _ = svc.http("POST", "/api/mirrors/b/check", {"wait": True})
        run = env.last_run()
        check(run["mirror"] == "b" and run["status"] == "failed"
              and "both write into index" in (run["error"] or ""),
              "the service refuses mirror b's run too (%d: %s; %s)" % (st, str(body)[:300], run["status"]))
    finally:
        svc.stop()
    check(len(env.os_docs()) == 100, "the 100 ads copies are all there")


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


def removed_mirror_run(env):
    """QA8b F2: a run of a mirror the configuration no longer defines stays
    unfinished for ever; `serve` (at start), `resume` and `doctor` say so,
    naming the run and the mirror and how to close it; the documented
    UPDATE closes it."""
    env.create_index()
    env.fixture("load", "--count", 20)
    two = os.path.join(env.tmp, "two.yaml")
    one = os.path.join(env.tmp, "one.yaml")
    with open(two, "w") as f:
        f.write("mirrors:\n  - name: ads\n    opensearch_index: %s\n"
                "  - name: gone\n    opensearch_index: %s_gone\n" % (env.index, env.index))
    with open(one, "w") as f:
        f.write("mirrors:\n  - name: ads\n    opensearch_index: %s\n" % env.index)
    r = env.run("check", "--mirror", "gone", RECONCILER_CONFIG=two)
    gone = env.last_run()["id"]
    check(r.returncode == 0, "mirror gone checked (%d: %r)" % (r.returncode, r.stderr[-300:]))
    with env.journal() as db:  # as a kill -9 leaves it
        db.execute("UPDATE runs SET status = 'running', phase = 'repairing',"
                   " finished_at = NULL WHERE id = ?", (gone,))
    said = "run %d (check) of mirror gone is left running" % gone
    r = env.run("resume", RECONCILER_CONFIG=one)
    check(r.returncode == 0 and said in r.stderr and "defines no mirror gone" in r.stderr
          and "reconciler resume %d" % gone in r.stderr and ("UPDATE runs SET status = 'cancelled', finished_at = "
               "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), error = 'mirror removed' WHERE id = "
               + str(gone)) in r.stderr,
          "resume says which run of which removed mirror (%d: %r)" % (r.returncode, r.stderr[-500:]))
    r = env.run("doctor", RECONCILER_CONFIG=one)
    check(said in r.stderr and "unfinished runs of mirrors" in r.stdout,
          "doctor says so too (%r / %r)" % (r.stderr[-300:], r.stdout[-300:]))
    svc = Service(env, RECONCILER_CONFIG=one)
    svc.stop()
    check(said in (svc.stderr or ""), "serve says so at start (%r)" % (svc.stderr or "")[-500:])
    with env.journal() as db:  # the close docs/JOURNAL.md gives
        db.execute("UPDATE runs SET status = 'cancelled', finished_at = "
                   "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), error = 'mirror removed' "
                   "WHERE id = ?", (gone,))
    r = env.run("resume", RECONCILER_CONFIG=one)
    check(r.returncode == 0 and "gone" not in r.stderr, "closed: nothing more said (%r)" % r.stderr[-300:])
    r = env.run("runs", RECONCILER_CONFIG=two)
    check(r.returncode == 0 and "cancelled" in r.stdout, "the closed run lists as cancelled")


for fn in (index_names, superseded, stale_pending_delete, resume_dry_run, lock_conflict,
           metrics_default, queued_cancel, shared_index_spellings, lock_through_symlink,
           removed_mirror_run):
    env = Env(fn.__name__)
    try:
        fn(env)
    finally:
        env.cleanup()
done()
