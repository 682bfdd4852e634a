"""kill -9 during the repair of a multi-batch run, then `reconciler resume`:
committed batches are not sent again, the pending one is, and the index
ends equal to MongoDB. Also: SIGINT marks a run interrupted."""
import signal
import time

from harness import Env, check, done

N = 3000
env = Env("resume", SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=60, RECONCILE_CHUNK_SIZE=1000)
try:
    env.create_index()
    env.fixture("load", "--count", N)
    p = env.spawn("check")
    committed = 0
    deadline = time.monotonic() + 120
    while committed < 5 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
        try:
            with env.journal() as db:
                committed = db.execute(
                    "SELECT count(*) FROM batches WHERE status = 'committed'").fetchone()[0]
        except Exception:
            pass
    check(p.poll() is None, "the run was still working when killed")
    p.send_signal(signal.SIGKILL)
    p.wait()
    with env.journal() as db:
        before = {r["batch_no"]: dict(r) for r in db.execute("SELECT * FROM batches")}
        run = dict(db.execute("SELECT * FROM runs").fetchone())
        ids_before = {r[0]: r[1] for r in db.execute(
            "SELECT doc_id, batch_no FROM run_ids WHERE batch_no IN "
            "(SELECT batch_no FROM batches WHERE status = 'committed')")}
    done_before = [b for b in before.values() if b["status"] == "committed"]
    check(run["status"] == "running", "a killed run is left running (%s)" % run["status"])
    check(len(done_before) >= 5, "batches were committed before the kill (%d)" % len(done_before))
    # SYNC_CONCURRENCY 1: one batch sending, one more queued behind it, and
    # up to nine guarded batches waiting for one grouped lookup
    # (docs/ENGINE.md "Overlap and concurrency")
    check(0 < len(before) - len(done_before) <= 11 or len(before) == len(done_before),
          "at most SYNC_CONCURRENCY + 10 batches were handed over (%d)"
          % (len(before) - len(done_before)))

    r = env.run("resume")
    check(r.returncode == 0, "resume exits 0: %s" % r.stderr[-400:])
    with env.journal() as db:
        after = {r["batch_no"]: dict(r) for r in db.execute("SELECT * FROM batches")}
        run = dict(db.execute("SELECT * FROM runs").fetchone())
        ids_after = {r[0]: r[1] for r in db.execute("SELECT doc_id, batch_no FROM run_ids")}
        events = [r[0] for r in db.execute("SELECT event FROM run_events ORDER BY id")]
        total_docs = db.execute("SELECT SUM(docs) FROM batches").fetchone()[0]
    check(run["id"] == 1 and run["status"] == "completed", "the same run completed")
    check(run["resume_count"] == 1 and "resumed" in events, "the journal shows the resume")
    unchanged = all(after[b["batch_no"]] == b for b in done_before)
    check(unchanged, "committed batches were not sent again (rows unchanged)")
    check(all(ids_after[i] == b for i, b in ids_before.items()),
          "ids of committed batches still belong to them")
    check(total_docs == N, "every document was in exactly one batch (%s)" % total_docs)
    check(all(b["status"] == "committed" for b in after.values()), "no batch left pending")
    check(run["missing_count"] == N and run["repaired_count"] == N,
          "journal counts: %s missing, %s repaired" % (run["missing_count"], run["repaired_count"]))
    check(env.in_sync(), "the index equals MongoDB after resume")
finally:
    env.cleanup()

# SIGINT: the in-flight batch finishes, the run is interrupted and resumable
env = Env("sigint", SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=100)
try:
    env.create_index()
    env.fixture("load", "--count", 2000)
    p = env.spawn("check")
    # signal once the repair is under way (a loaded machine may take a while
    # to get there), while most of its 40 batches are still to come
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            with env.journal() as db:
                if db.execute("SELECT count(*) FROM batches WHERE status = 'committed'").fetchone()[0]:
                    break
        except Exception:
            pass
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    run = env.last_run()
    check(run["status"] == "interrupted", "SIGINT leaves the run interrupted (%s)" % run["status"])
    with env.journal() as db:
        pending = db.execute("SELECT count(*) FROM batches WHERE status = 'pending'").fetchone()[0]
        committed = db.execute("SELECT count(*) FROM batches WHERE status = 'committed'").fetchone()[0]
    check(pending == 0, "SIGINT lets the in-flight batch commit (pending %d)" % pending)
    check(0 < committed < 40, "SIGINT stops the run early (%d of 40 batches)" % committed)
    r = env.run("check")  # a plain check picks the interrupted run up
    check(r.returncode == 0 and env.last_run()["id"] == run["id"], "check resumes it: %s" % r.stdout)
    check(env.last_run()["status"] == "completed" and env.in_sync(), "and completes it")
finally:
    env.cleanup()
done()
