"""What QA passes found about resuming and superseding runs, each now the
right outcome:
- a run left unfinished by a killed CLI is superseded by the service's next
  completed run of that mirror, never resumed later to re-send old batches;
  GET /api/reconciliation/status honours ?mirror= (404 for an unknown one);
  a "%00" in a path never cuts it short into another route's name;
  `--mirror` given twice or without a name is refused with 78, not
  half-obeyed;
- a resumed run's delete (pending in a batch, or held: QA8c F1) of an
  orphan whose document is back is asked of MongoDB again and journaled
  skipped, the copy kept;
- QA10 F21: a service starting on an interrupted dry run resumes it as a
  dry run;
- QA8b F11: an interrupted run whose binding settings changed (index,
  collection) is not resumed with its old cursor and pending rows: it is
  cancelled saying what changed; `resume` exits 5, `check` and the service
  start a new run from the start; a tuning change (delay, batch size) still
  resumes it; a transform script edited under the same path cancels it too.
"""
import json
import os
import signal
import subprocess
import time

from harness import FIXTURE, check, run_all
from service import Service


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
    check(r.returncode == 78 and ("name" in r.stderr or "needs a value" in r.stderr),
          "--mirror without a name: 78 (%d: %r)" % (r.returncode, r.stderr))
    r = env.run("config", "--file", "a.yaml", "--file", "b.yaml")
    check(r.returncode == 78 and ("--file b.yaml: it takes one file, once" in r.stderr
                                  or "--file is given twice" in r.stderr),
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


SLOW = {"SYNC_BATCH_SIZE": 1, "SYNC_BATCH_DELAY_MS": 400}


def killed_run(env, committed=3):
    """A slow check killed with SIGKILL once `committed` batches are in: left
    running, with a cursor and possibly a pending batch. Returns its id.
    The batches counted are the new run's: those of a run before it (one
    just cancelled) must not end the wait before the new one has begun."""
    before = 0
    if os.path.exists(env.env["STATE_DB"]):
        with env.journal() as db:
            before = db.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]
    p = env.spawn("check", **SLOW)
    n, deadline = 0, time.monotonic() + 120
    while n < committed and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
        try:
            with env.journal() as db:
                n = db.execute("SELECT count(*) FROM batches WHERE status = 'committed'"
                               " AND run_id = (SELECT max(id) FROM runs) AND run_id > ?",
                               (before,)).fetchone()[0]
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


run_all([superseded, stale_pending_delete, stale_held_delete, resume_dry_run,
         resume_settings_changed, resume_tuning_changed, resume_script_edited])
