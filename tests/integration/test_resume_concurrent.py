"""SYNC_CONCURRENCY=4: kill -9 a repair and a full re-index while several
_bulk requests are in flight, then `reconciler resume`. Batches are
committed in the order they were opened, so the committed ones are a
prefix and the pending ones (at most 4 + 1) come after them; resume sends
every pending batch again (index and delete are idempotent), never a
committed one, and no batch is lost: every document ends in the index,
counted exactly once."""
import signal
import time

from harness import Env, check, done

N = 3000
SETTINGS = dict(SYNC_BATCH_SIZE=25, SYNC_CONCURRENCY=4, SYNC_BATCH_DELAY_MS=40,
                RECONCILE_CHUNK_SIZE=1000)


def kill_after(env, p, batches):
    """SIGKILL once `batches` batches are committed; the journal then."""
    committed = 0
    deadline = time.monotonic() + 180
    while committed < batches and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
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
        return {r["batch_no"]: dict(r) for r in db.execute("SELECT * FROM batches")}


def scenario(kind, args):
    env = Env("resume4_" + kind, **SETTINGS)
    try:
        env.create_index()
        env.fixture("load", "--count", N)
        if kind == "full":
            env.fixture("sync", "--skip-every", "3")  # a full run rewrites all anyway
        before = kill_after(env, env.spawn(*args), 8)
        done_before = {n: b for n, b in before.items() if b["status"] == "committed"}
        pending = sorted(n for n, b in before.items() if b["status"] == "pending")
        check(len(done_before) >= 8, "%s: batches were committed before the kill (%d)" % (
            kind, len(done_before)))
        # SYNC_CONCURRENCY + 10: the batches one guarding lookup covers wait queued
        check(len(pending) <= 14, "%s: at most SYNC_CONCURRENCY + 10 batches pending (%s)" % (
            kind, pending))
        check(not pending or max(done_before) < min(pending),
              "%s: committed batches are a prefix (committed up to %s, pending %s)" % (
                  kind, max(done_before), pending))
        with env.journal() as db:
            run = dict(db.execute("SELECT * FROM runs").fetchone())
            ids_before = {r[0]: r[1] for r in db.execute(
                "SELECT doc_id, batch_no FROM run_ids WHERE batch_no IN "
                "(SELECT batch_no FROM batches WHERE status = 'committed')")}
        check(run["status"] == "running", "%s: a killed run is left running" % kind)
        if kind == "full":
            last = done_before[max(done_before)]["last_id"]
            check(run["cursor"] == last, "%s: the cursor is the last committed batch's last id "
                  "(%s, %s)" % (kind, run["cursor"], last))

        r = env.run("resume")
        check(r.returncode == 0, "%s: resume exits 0: %s" % (kind, r.stderr[-400:]))
        with env.journal() as db:
            after = {r["batch_no"]: dict(r) for r in db.execute("SELECT * FROM batches")}
            run = dict(db.execute("SELECT * FROM runs").fetchone())
            ids_after = {r[0]: r[1] for r in db.execute("SELECT doc_id, batch_no FROM run_ids")}
            total_ok = db.execute("SELECT SUM(ok) FROM batches").fetchone()[0]
            total_docs = db.execute("SELECT SUM(docs) FROM batches").fetchone()[0]
        check(run["id"] == 1 and run["status"] == "completed", "%s: the same run completed" % kind)
        check(all(after[n] == b for n, b in done_before.items()),
              "%s: committed batches were not sent again (rows unchanged)" % kind)
        check(all(after[n]["status"] == "committed" for n in pending),
              "%s: the pending batches were sent again under their numbers" % kind)
        check(all(b["status"] == "committed" for b in after.values()),
              "%s: no batch left pending" % kind)
        check(total_docs == N and total_ok == N,
              "%s: every document in exactly one committed batch (%s docs, %s ok)" % (
                  kind, total_docs, total_ok))
        # a full re-index counts its writes apart from repairs (reindexed)
        done_n = run["reindexed_count"] if kind == "full" else run["repaired_count"]
        check(done_n == N, "%s: repaired %s of %d, each once" % (
            kind, run["repaired_count"], N))
        if kind == "check":
            moved = {i: (b, ids_after.get(i)) for i, b in ids_before.items() if ids_after.get(i) != b}
            check(not moved, "check: ids of committed batches still belong to them (%s)" % (
                sorted(moved.items())[:5],))
            if moved:
                print("pending before:", pending, "committed:", sorted(done_before))
                with env.journal() as db:
                    for r in db.execute("SELECT batch_no, status, docs, ok, attempts FROM batches"
                                        " ORDER BY batch_no"):
                        print(tuple(r))
                    for i in list(moved)[:3]:
                        for r in db.execute("SELECT * FROM run_ids WHERE doc_id = ?", (i,)):
                            print(dict(r))
            check(run["missing_count"] == N, "check: %s missing" % run["missing_count"])
        check(env.in_sync(), "%s: the index equals MongoDB after resume" % kind)
    finally:
        env.cleanup()


scenario("check", ["check"])
scenario("full", ["check", "--full"])
done()
