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
- QA8b F11: an interrupted run whose binding settings changed (index,
  collection) is not resumed with its old cursor and pending rows: it is
  cancelled saying what changed; `resume` exits 5, `check` and the service
  start a new run from the start; a tuning change (delay, batch size) still
  resumes it.
- QA8b F13: with several mirrors, --allow-deletes and {"allowDeletes": true}
  must name the mirror whose brake they release (78 / 400).
"""
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.parse

from harness import FIXTURE, Env, check, done
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
    # the longest name OpenSearch takes, every byte escaped in a URL (765
    # bytes of path): a whole check and full re-index read and write it
    env.fixture("load", "--count", 30)
    long_name = "\u00e9" * 127  # 254 bytes of UTF-8
    try:
        r = env.run("check", OPENSEARCH_INDEX=long_name)
        r2 = env.run("check", "--full", OPENSEARCH_INDEX=long_name)
        st, body = env.os("GET", "/%s/_count" % urllib.parse.quote(long_name))
        check(r.returncode == 0 and r2.returncode == 0 and body.get("count") == 30,
              "a 254-byte UTF-8 index name works end to end (%d, %d, %s: %r)"
              % (r.returncode, r2.returncode, body, r.stderr[-300:]))
    finally:
        env.os("DELETE", "/" + urllib.parse.quote(long_name))


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
    r = env.run("config", "--file", "a.yaml", "--file", "b.yaml")
    check(r.returncode == 78 and "--file b.yaml: it takes one file, once" in r.stderr,
          "--file twice: 78, not the last one silently (%d: %r)" % (r.returncode, r.stderr))


def deleted_orphan(env, oid):
    """50 documents indexed, then a copy under oid that MongoDB lacks,
    deleted by a check; returns that check's run row."""
    env.create_index()
    env.fixture("load", "--count", 50)
    env.run("check")
    env.bulk([{"index": {"_id": oid}},
              {"mongo_id": oid, "updatedAt": "2024-01-01T00:00:00.000Z"}])
    r = env.run("check", RECONCILE_ORPHANS="delete")
    run = env.last_run()
    check(r.returncode == 0 and run["deleted_count"] == 1, "the orphan is deleted (%s)" % run["deleted_count"])
    return run


def stale_pending_delete(env):
    """A resumed run's pending delete batch is hours old: an orphan of then
    that has a document again is not deleted (asked again, journaled
    skipped); the copy, with a field only the index holds, survives."""
    oid = "%024x" % 0xfeed00000000000000000001
    run = deleted_orphan(env, oid)
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
    r = env.run("resume", RECONCILE_ORPHANS="delete")  # the settings it began with
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


def stale_held_delete(env):
    """QA8c F1: a resumed run's held orphan deletes (rows pending in no batch,
    judged before the interruption) are asked of MongoDB again right before
    they are sent: a document restored while the run was down keeps its
    copy, journaled skipped."""
    oid = "%024x" % 0xfeed00000000000000000002
    run = deleted_orphan(env, oid)
    # as if killed after the pass, before the held delete went into a batch;
    # meanwhile the document was restored in MongoDB and the index
    with env.journal() as db:
        db.execute("UPDATE runs SET status = 'interrupted', phase = 'repairing',"
                   " finished_at = NULL WHERE id = ?", (run["id"],))
        db.execute("DELETE FROM batches WHERE run_id = ? AND action = 'delete'", (run["id"],))
        db.execute("UPDATE run_ids SET status = 'pending', batch_no = NULL WHERE run_id = ?"
                   " AND kind = 'orphan'", (run["id"],))
    env.mongo({"insert": "ads", "documents": [
        {"_id": {"$oid": oid}, "updatedAt": {"$date": {"$numberLong": "1704067200000"}}}]})
    env.bulk([{"index": {"_id": oid}},
              {"mongo_id": oid, "updatedAt": "2024-01-01T00:00:00.000Z", "enriched": True}])
    r = env.run("resume", RECONCILE_ORPHANS="delete")
    st, doc = env.os("GET", "/%s/_doc/%s" % (env.index, oid))
    with env.journal() as db:
        row = db.execute("SELECT status, error FROM run_ids WHERE run_id = ? AND doc_id = ?",
                         (run["id"], oid)).fetchone()
    check(r.returncode == 0 and st == 200 and doc["_source"].get("enriched") is True,
          "a restored document's copy is not deleted by the held delete (%d, %s, %s)"
          % (r.returncode, doc.get("_source"), r.stderr[-300:]))
    check(row is not None and row["status"] == "skipped" and "again" in (row["error"] or ""),
          "the held delete is journaled skipped (%s)" % (dict(row) if row else None))


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


SLOW = {"SYNC_BATCH_SIZE": 1, "SYNC_BATCH_DELAY_MS": 400}


def killed_run(env, committed=3):
    """A slow check killed with SIGKILL once `committed` batches are in: left
    running, with a cursor and possibly a pending batch. Returns its id."""
    p = env.spawn("check", **SLOW)
    n, deadline = 0, time.monotonic() + 120
    while n < committed and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
        try:
            with env.journal() as db:
                n = db.execute("SELECT count(*) FROM batches WHERE status = 'committed'"
                               " AND run_id = (SELECT max(id) FROM runs)").fetchone()[0]
        except Exception:
            pass
    check(p.poll() is None, "the slow run was still working when killed")
    p.send_signal(signal.SIGKILL)
    p.communicate()
    run = env.last_run()
    check(run["status"] == "running", "the killed run is left running (%s)" % run["status"])
    return run["id"]


def run_row(env, run_id):
    with env.journal() as db:
        return dict(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())


def events_of(env, run_id):
    with env.journal() as db:
        return [(r[0], r[1] or "") for r in db.execute(
            "SELECT event, detail FROM run_events WHERE run_id = ? ORDER BY id", (run_id,))]


def resume_settings_changed(env):
    """QA8b F11: the resume took the mirror's current index and collection
    with the old run's cursor and pending rows."""
    N = 40
    env.create_index()
    env.fixture("load", "--count", N)
    moved = env.index + "_moved"
    try:
        # 1. `reconciler resume` with OPENSEARCH_INDEX changed: not resumed, exit 5
        first = killed_run(env)
        r = env.run("resume", OPENSEARCH_INDEX=moved)
        run = run_row(env, first)
        check(r.returncode == 5 and "not resumed" in r.stderr and "OPENSEARCH_INDEX" in r.stderr
              and '"%s" -> "%s"' % (env.index, moved) in r.stderr,
              "resume with another index exits 5 saying what changed (%d: %r)"
              % (r.returncode, r.stderr[-500:]))
        check(run["status"] == "cancelled" and "OPENSEARCH_INDEX" in (run["error"] or "")
              and moved in run["error"] and run["resume_count"] == 0,
              "the old run is cancelled with the reason (%s: %r)" % (run["status"], run["error"]))
        check(any(e == "finished" and "OPENSEARCH_INDEX" in d for e, d in events_of(env, first)),
              "a run event says which settings changed")
        st, _ = env.os("GET", "/" + moved)
        check(st == 404, "nothing was written to the new index from the old cursor (%d)" % st)
        check(env.last_run()["id"] == first, "resume started no run of its own")
        # with the settings the run began with, the next one completes from scratch
        r = env.run("check", OPENSEARCH_INDEX=moved)
        run = env.last_run()
        check(r.returncode == 0 and run["id"] != first and run["compared"] == N
              and env.mongo_docs() == env.os_docs(moved),
              "a later check on the new index is a whole new run (%d, compared %s)"
              % (r.returncode, run["compared"]))

        # 2. `reconciler check` with MONGODB_COLLECTION changed: cancelled,
        # a new run of the other collection from its start
        second = killed_run(env)
        e = dict(env.env, MONGODB_COLLECTION="other")
        subprocess.run([FIXTURE, "load", "--count", "10"], env=e, check=True,
                       capture_output=True, timeout=120)
        r = env.run("check", MONGODB_COLLECTION="other")
        run, new = run_row(env, second), env.last_run()
        check(run["status"] == "cancelled" and "MONGODB_COLLECTION" in (run["error"] or "")
              and '"ads" -> "other"' in run["error"],
              "check cancels the run whose collection changed (%s: %r)"
              % (run["status"], run["error"]))
        check(r.returncode == 0 and new["id"] > second and new["status"] == "completed"
              and new["compared"] == 10 and new["resume_count"] == 0,
              "and runs a new check over the whole other collection (%d: %s compared, %r)"
              % (r.returncode, new["compared"], r.stderr[-300:]))
        check(any(e == "replaces" and str(second) in d for e, d in events_of(env, new["id"])),
              "the new run's events name the run it replaces")
        check("not resumed" in r.stderr or "not resumed" in open(
            os.path.join(env.env["LOG_DIR"], "combined.log")).read(),
              "a log line says the run was not resumed")

        # 3. the service's resume at start, with the index changed
        third = killed_run(env)
        moved2 = env.index + "_moved2"
        svc = Service(env, OPENSEARCH_INDEX=moved2, RECONCILIATION_ENABLED="false")
        try:
            deadline, new = time.monotonic() + 120, None
            while time.monotonic() < deadline:
                new = env.last_run()
                if new["id"] > third and new["status"] not in ("running", "interrupted"):
                    break
                time.sleep(0.3)
        finally:
            svc.stop()
        run = run_row(env, third)
        check(run["status"] == "cancelled" and moved2 in (run["error"] or ""),
              "the service cancels the run whose index changed (%s: %r)"
              % (run["status"], run["error"]))
        check(new["id"] > third and new["status"] == "completed" and new["kind"] == "check"
              and new["compared"] == N and env.mongo_docs() == env.os_docs(moved2),
              "and starts a new run that fills the new index from the start (%s)"
              % {k: new[k] for k in ("id", "status", "kind", "compared")})
    finally:
        env.os("DELETE", "/" + moved)
        env.os("DELETE", "/" + env.index + "_moved2")


def resume_script_edited(env):
    """Noted in session 5: a transform script edited under the same path
    did not stop a resume, so one run wrote documents shaped by two
    scripts. The snapshot keeps the script's digest; an edit cancels the
    run (exit 5 for `reconciler resume`); the same script resumes."""
    env.create_index()
    env.fixture("load", "--count", 40)
    script = os.path.join(env.tmp, "shape.lua")
    with open(script, "w") as f:
        f.write("function transform(doc)\n  doc.shape = 1\n  return doc\nend\n")
    env.env["RECONCILE_TRANSFORM"] = script
    try:
        first = killed_run(env)
        snap = json.loads(run_row(env, first)["config"])
        check(len(snap.get("RECONCILE_TRANSFORM_DIGEST", "")) == 16,
              "the run's snapshot keeps the script's digest (%r)"
              % snap.get("RECONCILE_TRANSFORM_DIGEST"))
        with open(script, "w") as f:
            f.write("function transform(doc)\n  doc.shape = 2\n  return doc\nend\n")
        r = env.run("resume")
        run = run_row(env, first)
        check(r.returncode == 5 and "RECONCILE_TRANSFORM names was edited" in r.stderr,
              "resume after the script was edited exits 5 saying so (%d: %r)"
              % (r.returncode, r.stderr[-400:]))
        check(run["status"] == "cancelled" and "was edited" in (run["error"] or ""),
              "the old run is cancelled with the reason (%s: %r)" % (run["status"], run["error"]))
        # the same script, untouched: the run resumes and completes
        second = killed_run(env)
        r = env.run("resume")
        run = run_row(env, second)
        check(r.returncode == 0 and run["status"] == "completed" and run["resume_count"] == 1,
              "with the same script the run resumes (%d: %s, resumed %s)"
              % (r.returncode, run["status"], run["resume_count"]))
    finally:
        del env.env["RECONCILE_TRANSFORM"]


def health_every_mirror(env):
    """Noted in session 5: /api/health probed only the first mirror's
    servers, so a second mirror's cluster could be down under an `ok`."""
    cfg = write(env, "health.yaml",
                "mirrors:\n  - name: a\n    opensearch_index: %s_a\n"
                "  - name: b\n    opensearch_index: %s_b\n"
                "    opensearch_url: http://127.0.0.1:9\n" % (env.index, env.index))
    svc = Service(env, RECONCILER_CONFIG=cfg)
    try:
        st, body, _ = svc.http("GET", "/api/health")
        m = body.get("mirrors", {})
        check(st == 503 and body.get("status") == "degraded"
              and m.get("a", {}).get("opensearch", {}).get("ok") is True
              and m.get("b", {}).get("opensearch", {}).get("ok") is False
              and m.get("b", {}).get("mongodb", {}).get("ok") is True
              and "error" in m.get("b", {}).get("opensearch", {}),
              "mirror b's OpenSearch down: 503, said under mirrors.b (%d: %s)" % (st, body))
        check(body.get("opensearch", {}).get("ok") is True,
              "the top level stays the first mirror's (%s)" % body.get("opensearch"))
    finally:
        svc.stop()
    cfg = write(env, "health2.yaml", "mirrors:\n  - name: a\n    opensearch_index: %s_a\n"
                "  - name: b\n    opensearch_index: %s_b\n"
                "  - name: c\n    opensearch_index: %s_c\n" % (env.index, env.index, env.index))
    svc = Service(env, RECONCILER_CONFIG=cfg)
    try:
        st, body, _ = svc.http("GET", "/api/health")
        m = body.get("mirrors", {})
        check(st == 200 and body.get("status") == "ok" and set(m) == {"a", "b", "c"}
              and all(m[x]["mongodb"]["ok"] and m[x]["opensearch"]["ok"] for x in m),
              "all up: 200 with each mirror, servers shared by mirrors asked once (%d: %s)"
              % (st, body))
    finally:
        svc.stop()


def peer_unreachable_holds(env):
    """QA8c F3: when another mirror's OpenSearch could not be asked which
    index it writes, the run went on and deleted orphans that might be that
    mirror's copies (fail-open). Now its orphan deletes are held."""
    env.fixture("load", "--count", 20)
    a = env.index + "_a"
    env.os("PUT", "/" + a, {"mappings": {"properties": {"mongo_id": {"type": "keyword"}}}})
    orphan = "%024x" % 0xabcdef
    body = "mirrors:\n  - name: a\n    opensearch_index: %s\n    reconcile_orphans: delete\n" \
           "    reconcile_max_delete_ratio: 1\n  - name: b\n    opensearch_index: %s_b\n" \
           "    opensearch_url: %s\n"
    down = write(env, "peer-down.yaml", body % (a, env.index, "http://127.0.0.1:9"))
    try:
        r = env.run("check", "--mirror", "a", RECONCILER_CONFIG=down)
        check(r.returncode == 0, "a first check of mirror a fills its index (%d: %s)"
              % (r.returncode, r.stderr[-300:]))
        env.os("PUT", "/%s/_doc/%s?refresh=true" % (a, orphan), {"mongo_id": orphan})
        r = env.run("check", "--mirror", "a", RECONCILER_CONFIG=down)
        st, _ = env.os("GET", "/%s/_doc/%s" % (a, orphan))
        check(r.returncode == 4 and "could not be asked" in r.stderr and st == 200,
              "mirror b's OpenSearch down: a's orphan delete is held, exit 4 (%d, doc %d: %s)"
              % (r.returncode, st, r.stderr[-400:]))
        r = env.run("check", "--mirror", "a", "--allow-deletes", RECONCILER_CONFIG=down)
        st, _ = env.os("GET", "/%s/_doc/%s" % (a, orphan))
        check(r.returncode == 4 and st == 200, "a release does not lift it (%d, doc %d)"
              % (r.returncode, st))
        up = write(env, "peer-up.yaml", body % (a, env.index, env.url))
        r = env.run("check", "--mirror", "a", RECONCILER_CONFIG=up)
        st, _ = env.os("GET", "/%s/_doc/%s" % (a, orphan))
        check(r.returncode == 0 and st == 404,
              "once b's OpenSearch answers (another index), the orphan is deleted (%d, doc %d: %s)"
              % (r.returncode, st, r.stderr[-300:]))
    finally:
        env.os("DELETE", "/" + a)


def overlapping_queries(env):
    """QA11 F1 (data loss): two mirrors on one index with different
    queries that select the same documents (match_all spelled as a bool
    with minimum_should_match, exists on the id field, ...) passed the
    shared-index check, and one deleted the other's copies. Before its
    deletes the run now counts the documents both queries select: any, and
    the deletes are held (the repairs go on); so too when the other
    mirror's OpenSearch cannot be asked which index it writes (review)."""
    env.fixture("load", "--count", 10)
    shared = env.index + "_shared"
    env.os("PUT", "/" + shared, {"mappings": {"properties": {
        "mongo_id": {"type": "keyword"}, "src": {"type": "keyword"}}}})
    theirs = "%024x" % 0xa11
    env.os("PUT", "/%s/_doc/%s?refresh=true" % (shared, theirs), {"mongo_id": theirs, "src": "a"})
    body = ("mirrors:\n  - name: a\n    opensearch_index: %s\n"
            "    mongodb_collection: other_a\n    opensearch_url: %s\n"
            "    opensearch_query: '{\"term\": {\"src\": \"a\"}}'\n"
            "  - name: b\n    opensearch_index: %s\n    reconcile_orphans: delete\n"
            "    reconcile_max_delete_ratio: 1\n    opensearch_query: '%s'\n")
    try:
        for k, (q, a_url) in enumerate((
                ('{"bool": {"should": [{"match_all": {}}], "minimum_should_match": 1}}', env.url),
                ('{"exists": {"field": "mongo_id"}}', env.url),
                ('{"exists": {"field": "mongo_id"}}', "http://127.0.0.1:9"))):
            path = write(env, "overlap.yaml", body % (shared, a_url, shared, q))
            r = env.run("check", "--mirror", "b", "--allow-deletes", RECONCILER_CONFIG=path)
            st, _ = env.os("GET", "/%s/_doc/%s" % (shared, theirs))
            run = env.last_run()
            check(r.returncode == 4 and "match both" in r.stderr and run["mirror"] == "b"
                  and run["status"] == "held" and st == 200
                  and run["repaired_count"] == (10 if k == 0 else 0),
                  "%s (a at %s): b's deletes held, its repairs done, a's copy kept "
                  "(%d, %s, repaired %s, doc %d: %r)"
                  % (q, a_url, r.returncode, run["status"], run["repaired_count"], st,
                     r.stderr[-300:]))
        # queries that select different documents: nothing held for that
        path = write(env, "apart.yaml", body % (shared, env.url, shared, '{"term": {"src": "b"}}'))
        r = env.run("check", "--dry-run", "--mirror", "b", RECONCILER_CONFIG=path)
        check(r.returncode in (0, 1) and "match both" not in r.stderr,
              "distinct documents: runs (%d: %r)" % (r.returncode, r.stderr[-300:]))
    finally:
        env.os("DELETE", "/" + shared)


def resume_tuning_changed(env):
    """QA8b F11: only a tuning setting changed (delay, batch size): the run
    resumes, the same run completes."""
    env.create_index()
    env.fixture("load", "--count", 40)
    first = killed_run(env)
    r = env.run("resume", SYNC_BATCH_DELAY_MS=0, SYNC_BATCH_SIZE=1)
    run = env.last_run()
    check(r.returncode == 0 and run["id"] == first and run["status"] == "completed"
          and run["resume_count"] == 1 and env.in_sync(),
          "a changed SYNC_BATCH_DELAY_MS does not stop the resume (%d, %s, %r)"
          % (r.returncode, {k: run[k] for k in ("id", "status", "resume_count")},
             r.stderr[-300:]))
    # the same cluster spelled another way is no change (QA11 F5)
    env.os("DELETE", "/" + env.index)
    env.create_index()
    second = killed_run(env)
    url = env.url.replace("http://", "HTTP://").replace("127.0.0.1", "LOCALHOST")
    r = env.run("resume", OPENSEARCH_URL=url)
    run = env.last_run()
    check(r.returncode == 0 and run["id"] == second and run["status"] == "completed"
          and run["resume_count"] == 1,
          "OPENSEARCH_URL %s resumes the run begun with %s (%d, %s, %r)"
          % (url, env.url, r.returncode, run["status"], r.stderr[-300:]))


def release_names_mirror(env):
    """QA8b F13: a bare --allow-deletes / {"allowDeletes": true} released
    every mirror's brake. With several mirrors it must name one."""
    for coll in ("ads", "a", "b"):
        subprocess.run([FIXTURE, "load", "--count", "5"], capture_output=True, timeout=120,
                       env=dict(env.env, MONGODB_COLLECTION=coll), check=True)
    single = env.run("check", "--allow-deletes")
    check(single.returncode == 0, "one mirror: --allow-deletes as before (%d: %r)"
          % (single.returncode, single.stderr[-300:]))
    path = os.path.join(env.tmp, "two.yaml")
    with open(path, "w") as f:
        f.write("mirrors:\n  - name: a\n    mongodb_collection: a\n    opensearch_index: %s_a\n"
                "  - name: b\n    mongodb_collection: b\n    opensearch_index: %s_b\n"
                % (env.index, env.index))
    env.env["RECONCILER_CONFIG"] = path
    try:
        runs_before = env.last_run()["id"]
        for args in (("check", "--allow-deletes"), ("resume", "--allow-deletes")):
            r = env.run(*args)
            check(r.returncode == 78 and "--mirror" in r.stderr and "a, b" in r.stderr,
                  "%s without --mirror exits 78 naming the mirrors (%d: %r)"
                  % (" ".join(args), r.returncode, r.stderr[-300:]))
        check(env.last_run()["id"] == runs_before, "no run was begun")
        r = env.run("check", "--allow-deletes", "--mirror", "a")
        check(r.returncode == 0, "with --mirror a it runs (%d: %r)" % (r.returncode, r.stderr[-300:]))
        svc = Service(env)
        try:
            st, body, _ = svc.http("POST", "/api/reconciliation/check", {"allowDeletes": True})
            check(st == 400 and body.get("success") is False and "mirror" in body.get("error", ""),
                  "seed check with allowDeletes and no ?mirror= is 400 (%d: %s)" % (st, body))
            st, body, _ = svc.http("POST", "/api/reconciliation/check?mirror=b",
                                   {"allowDeletes": True})
            check(st == 200 and body.get("runId"), "with ?mirror=b it runs (%d: %s)" % (st, body))
            st, body, _ = svc.http("POST", "/api/mirrors/a/check", {"allowDeletes": True})
            check(st == 200, "a mirror's own route releases it (%d: %s)" % (st, body))
            st, body, _ = svc.http("POST", "/api/reconciliation/check", {})
            check(st == 200 and len(body.get("mirrors", [])) == 2,
                  "the seed check without allowDeletes still runs every mirror (%d)" % st)
        finally:
            svc.stop()
    finally:
        del env.env["RECONCILER_CONFIG"]
        env.os("DELETE", "/%s_a" % env.index)
        env.os("DELETE", "/%s_b" % env.index)


for fn in (index_names, superseded, stale_pending_delete, stale_held_delete, resume_dry_run,
           lock_conflict,
           metrics_default, queued_cancel, shared_index_spellings, lock_through_symlink,
           removed_mirror_run, resume_settings_changed, resume_tuning_changed, resume_script_edited,
           health_every_mirror, peer_unreachable_holds, overlapping_queries,
           release_names_mirror):
    env = Env(fn.__name__)
    try:
        fn(env)
    finally:
        env.cleanup()
done()
