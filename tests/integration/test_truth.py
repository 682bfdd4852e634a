"""Issue 24, "green must mean in sync": what a run says of a mirror is what
it found. A full re-index is not verified and counts its writes apart; kept
orphans are said; a check of an empty index takes the full re-index path;
a transform's leave-outs and leftover fields are drift; a transform that
fails on every document stops. Each scenario fails on the code before its
fix."""
import json
import re

from harness import check, run_all, write
from service import Service


def orphan_actions(env, n):
    out = []
    for i in range(n):
        oid = "%024x" % (0xfeed0000 + i)
        out.append({"index": {"_id": oid}})
        out.append({"mongo_id": oid, "title": "gone", "updatedAt": "2024-02-02T00:00:00Z"})
    return out


def loaded(env, count=200, orphans=30):
    env.create_index()
    env.fixture("load", "--count", count)
    env.fixture("sync")
    if orphans:
        env.bulk(orphan_actions(env, orphans))


def full_not_verified(env):
    """Item 3 and 7: a full re-index with 30 orphans left is not in sync,
    and its 200 writes are reindexed, not repaired."""
    loaded(env)
    r = env.run("check", "--full")
    run = env.last_run()
    check(r.returncode == 0 and run["kind"] == "full" and run["status"] == "completed",
          "full: completes (exit %d, %s)" % (r.returncode, r.stderr[-300:]))
    check(run["reindexed_count"] == 200 and run["repaired_count"] == 0,
          "full: 200 reindexed, none repaired (%s, %s)"
          % (run["reindexed_count"], run["repaired_count"]))
    check("reindexed 200" in r.stdout and "repaired 0" in r.stdout and
          "not verified" in r.stdout,
          "full: the summary says reindexed and not verified: %s" % r.stdout)
    svc = Service(env)
    try:
        st, body, _ = svc.http("POST", "/api/sync/full", {"wait": True})
        check(st == 200 and body["inSync"] is None and body["reindexedCount"] == 200 and
              "not verified" in body.get("note", ""),
              "full (API): inSync null, reindexedCount 200, a note: %s" % body)
        st, runs, _ = svc.http("GET", "/api/reconciliation/runs?limit=1")
        last = (runs.get("runs") or [{}])[0] if isinstance(runs, dict) else {}
        check(last.get("reindexedCount") == 200 and last.get("repairedCount") == 0 and
              last.get("fullWrite") == 1,
              "full (API runs): reindexedCount 200, repairedCount 0: %s" % last)
        st, text, _ = svc.http("GET", "/metrics")
        check("reconciler_documents_reindexed_total 400" in text and
              'reconciler_documents_repaired_total{action="index"} 0' in text,
              "full (metrics): 400 reindexed, none repaired: %s" %
              [l for l in text.splitlines() if "documents_re" in l])
        st, body, _ = svc.http("GET", "/api/reconciliation/status")
        check(body["stats"]["documentsSynced"] == 0,
              "full (status): no document counted as repaired: %s" % body["stats"])
    finally:
        svc.stop()


def orphans_kept(env):
    """Item 6: orphans kept by RECONCILE_ORPHANS=report are said."""
    loaded(env)
    r = env.run("check")
    run = env.last_run()
    check(r.returncode == 0 and run["orphan_count"] == 30 and run["orphans_kept_count"] == 30,
          "kept: 30 orphans found and kept (exit %d, kept %s)"
          % (r.returncode, run.get("orphans_kept_count")))
    check("30 orphans not deleted: RECONCILE_ORPHANS=report" in r.stdout,
          "kept: the summary line says so: %s" % r.stdout)
    r = env.run("check", "--dry-run")
    check(r.returncode == 1 and env.last_run()["orphans_kept_count"] == 0,
          "kept: a dry run keeps nothing, it reports (exit %d)" % r.returncode)
    svc = Service(env)
    try:
        st, body, _ = svc.http("POST", "/api/reconciliation/check", {"wait": True})
        check(st == 200 and body["orphansKept"] == 30 and
              "30 orphans not deleted: RECONCILE_ORPHANS=report" in body.get("note", ""),
              "kept (API): orphansKept 30 and the note: %s" % body)
        st, runs, _ = svc.http("GET", "/api/reconciliation/runs?limit=1")
        last = (runs.get("runs") or [{}])[0]
        check(last.get("orphansKept") == 30, "kept (API runs): orphansKept 30: %s" % last)
    finally:
        svc.stop()
    r = env.run("check", RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETE_RATIO=1)
    run = env.last_run()
    check(run["deleted_count"] == 30 and run["orphans_kept_count"] == 0 and "kept" not in r.stdout,
          "kept: with delete none is kept (%s): %s" % (run["orphans_kept_count"], r.stdout))


def empty_index_check(env):
    """Item 14: a check of an empty (or missing) index is a full re-index,
    and says so; it is a check, so it verified: in sync."""
    env.fixture("load", "--count", 300)
    r = env.run("check")
    run = env.last_run()
    check(r.returncode == 0 and run["kind"] == "check" and run["status"] == "completed",
          "empty: the check completes (exit %d): %s" % (r.returncode, r.stderr[-300:]))
    check(run["missing_count"] == 300 and run["repaired_count"] == 300 and
          run["reindexed_count"] == 0,
          "empty: a check still: 300 missing, repaired (%s, %s, %s)"
          % (run["missing_count"], run["repaired_count"], run["reindexed_count"]))
    check("the index held no documents" in r.stdout, "empty: the summary says so: %s" % r.stdout)
    with env.journal() as db:
        ev = [x[0] for x in db.execute("SELECT event FROM run_events WHERE run_id = ?",
                                      (run["id"],))]
    check("full_write" in ev, "empty: journaled as an event (%s)" % ev)
    check(env.in_sync(), "empty: the index equals MongoDB")
    r = env.run("check", "--dry-run")
    check(r.returncode == 0, "empty: the next dry run is clean (exit %d)" % r.returncode)
    r = env.run("check")
    with env.journal() as db:
        ev = [x[0] for x in db.execute("SELECT event FROM run_events WHERE run_id = ?",
                                      (env.last_run()["id"],))]
    check("full_write" not in ev, "empty: a check of a filled index is a pass (%s)" % ev)


LEAVE_PAUSED = """
function transform(doc)
  if doc.status == "paused" then return nil end
  return doc
end
"""


def paused_ids(env):
    r = env.mongo({"find": "ads", "filter": {"status": "paused"}, "batchSize": 1000})
    return sorted(d["_id"]["$oid"] for d in r["cursor"]["firstBatch"])


def left_out(env, compare):
    """Item 4: a transform that now leaves documents out (copies written
    before it) makes their copies orphans "left out by the transform":
    reported and kept, deleted with RECONCILE_ORPHANS=delete behind the
    brake; by version compare too (the transform changed since a run last
    compared every copy), and once only."""
    loaded(env, count=200, orphans=0)
    r = env.run("check", RECONCILE_COMPARE=compare)
    check(r.returncode == 0 and env.last_run()["orphan_count"] == 0,
          "%s: in sync before the script (exit %d)" % (compare, r.returncode))
    script = write(env, "t.lua", LEAVE_PAUSED)
    paused = paused_ids(env)
    r = env.run("check", RECONCILE_COMPARE=compare, RECONCILE_TRANSFORM=script)
    run = env.last_run()
    with env.journal() as db:
        rows = {(x["doc_id"], x["status"], x["reason"]) for x in db.execute(
            "SELECT doc_id, status, reason FROM run_ids WHERE run_id = ? AND kind = 'orphan'",
            (run["id"],))}
    want = {(i, "reported", "left out by the transform") for i in paused}
    check(len(paused) == 40 and rows == want,
          "%s: the 40 copies left out are orphans with their reason (%d rows, e.g. %s)"
          % (compare, len(rows), sorted(rows)[:2]))
    check(run["orphans_kept_count"] == 40 and "40 orphans not deleted" in r.stdout,
          "%s: and kept, said so: %s" % (compare, r.stdout))
    r = env.run("check", RECONCILE_COMPARE=compare, RECONCILE_TRANSFORM=script,
                RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETES=10)
    run = env.last_run()
    check(run["status"] == "held" and run["deleted_count"] == 0,
          "%s: the brake holds their deletes (%s)" % (compare, run["status"]))
    r = env.run("check", RECONCILE_COMPARE=compare, RECONCILE_TRANSFORM=script,
                RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETE_RATIO=1)
    run = env.last_run()
    osd = env.os_docs()
    check(run["deleted_count"] == 40 and not set(paused) & set(osd) and len(osd) == 160,
          "%s: with delete they go, and only they (%s deleted, %d left)"
          % (compare, run["deleted_count"], len(osd)))
    r = env.run("check", "--dry-run", RECONCILE_COMPARE=compare, RECONCILE_TRANSFORM=script)
    with env.journal() as db:
        ev = [x[0] for x in db.execute("SELECT detail FROM run_events WHERE run_id = ? AND "
                                      "event = 'transform'", (env.last_run()["id"],))]
    check(r.returncode == 0, "%s: then in sync (exit %d)" % (compare, r.returncode))
    if compare == "version":
        check(not any("compares each copy" in e for e in ev),
              "version: a transform compared once is not compared again (%s)" % ev)


def left_out_version(env):
    left_out(env, "version")


def left_out_content(env):
    left_out(env, "content")


FAILING = """
function transform(doc)
  error("no such field: " .. tostring(doc.nope.x))
end
"""


def transform_fails(env):
    """Item 10: a transform that fails on every document stops the run
    after RECONCILE_TRANSFORM_MAX_CONSECUTIVE_ERRORS of them in a row, once,
    naming the script's line, and error.log has it."""
    loaded(env, count=300, orphans=0)
    env.mongo({"update": "ads", "updates": [{"q": {}, "u": {"$set": {
        "updatedAt": {"$date": "2026-06-01T12:00:00Z"}}}, "multi": True}]})
    script = write(env, "t.lua", FAILING)
    r = env.run("check", RECONCILE_TRANSFORM=script)
    run = env.last_run()
    check(run["status"] == "failed" and r.returncode == 2 and
          "100 documents in a row" in (run["error"] or "") and "t.lua:3" in (run["error"] or ""),
          "fails: the run stops, failed, naming the script's line (exit %d, %s, %s)"
          % (r.returncode, run["status"], run["error"]))
    check(run["failed_count"] == 100,
          "fails: it stopped at the 100th failure (%s)" % run["failed_count"])
    import os
    path = os.path.join(env.env["LOG_DIR"], "error.log")
    text = open(path).read() if os.path.exists(path) else ""
    check("in a row" in text and "t.lua:3" in text,
          "fails: error.log has it (%d bytes)" % len(text))
    r = env.run("check", RECONCILE_TRANSFORM=script,
                RECONCILE_TRANSFORM_MAX_CONSECUTIVE_ERRORS=0)
    run = env.last_run()
    check(run["status"] == "completed" and run["failed_count"] == 300,
          "fails: 0 never stops (%s, %s)" % (run["status"], run["failed_count"]))


def transform_fails_compare(env):
    """QA25 F10: a transform failing on every document while a dry run
    compares the copies with it (the script changed since a run last
    compared) stops the run with the script's message, not "out of
    memory"."""
    loaded(env, count=300, orphans=0)
    script = write(env, "t.lua", FAILING)
    r = env.run("check", "--dry-run", RECONCILE_TRANSFORM=script)
    run = env.last_run()
    check(r.returncode == 2 and run["status"] == "failed" and
          "documents in a row" in (run["error"] or "") and "t.lua:3" in r.stderr and
          "out of memory" not in r.stderr,
          "the dry run stops naming the script's line (exit %d, %s): %s" % (
              r.returncode, run["error"], r.stderr[-300:]))


run_all([transform_fails, transform_fails_compare, full_not_verified, orphans_kept, empty_index_check, left_out_version,
         left_out_content])
