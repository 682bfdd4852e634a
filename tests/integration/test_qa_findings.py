"""What a QA pass over mirrors found, each now the right outcome:
- an index name that is a wildcard or a list is refused (it read other
  indexes and deleted their documents as orphans);
- a run left unfinished by a killed CLI is superseded by the service's next
  completed run of that mirror, never resumed later to re-send old batches;
- GET /api/reconciliation/status honours ?mirror= (404 for an unknown one);
- a "%00" in a path never cuts it short into another route's name;
- `--mirror` given twice is refused, not half-obeyed.
"""
import os

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
    check(r.returncode != 0 and "once" in r.stderr, "--mirror twice is refused (%r)" % r.stderr)


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
                if status != "interrupted":
                    break
            time.sleep(0.3)
    finally:
        svc.stop()
    with env.journal() as db:
        runs = [dict(x) for x in db.execute("SELECT id, kind, status, resume_count FROM runs")]
    check(len(runs) == 1 and runs[0]["kind"] == "dry_run" and runs[0]["resume_count"] == 1
          and runs[0]["status"] == "completed" and env.os_docs() == {},
          "the service resumes the dry run as a dry run, nothing written (%s)" % runs)


for fn in (index_names, superseded, stale_pending_delete, resume_dry_run):
    env = Env(fn.__name__)
    try:
        fn(env)
    finally:
        env.cleanup()
done()
