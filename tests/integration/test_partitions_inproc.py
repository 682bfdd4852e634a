"""RECONCILE_PARTITIONS=P: one run over P partitions in one process
(docs/ENGINE.md#partitions, issue 21 item 2).

- P = 1, 2, 4 in one process find one pass's drift (missing, stale,
  duplicates under another routing, orphans before, between and after),
  each drifted id once, ObjectId and string ids; the P runs are tied by
  runs.split_of and their plan tiles the key space; a check with P = 4
  leaves the same end state as one whole check.
- Killed with kill -9 while every partition runs, the split run resumes
  each partition's own run after its last committed batch (the same run
  ids, resume_count 1), and reads each range once.
- The brake decides over the whole run: orphans all in one partition,
  under RECONCILE_MAX_DELETES, are deleted (a share would hold them); over
  it in total but under it in each partition, all are held.
- A collection of several id classes runs whole, saying so; without
  OPENSEARCH_ID_FIELD the run is refused (78).
"""
import json
import os
import signal
import sqlite3
import subprocess
import time

from harness import Env, check, run_all
from test_partitions import build, drift_set, run_row


def split_rows(journal):
    """The runs of the newest split run, by partition ([] while the
    journal is not there or not migrated yet)."""
    if not os.path.exists(journal):
        return []
    db = sqlite3.connect(journal, timeout=10)
    db.row_factory = sqlite3.Row
    try:
        s = db.execute("SELECT max(split_of) FROM runs").fetchone()[0]
        return [dict(r) for r in db.execute(
            "SELECT * FROM runs WHERE split_of = ? ORDER BY partition_k, id", (s,))]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def split_drift(journal):
    rows = split_rows(journal)
    out, total = set(), 0
    for r in rows:
        d = drift_set(journal, r["id"])
        total += len(d)
        out |= d
    return out, total


def same_as_one_pass(kind):
    def scenario(env):
        build(env, kind)
        one = env.run("check", "--dry-run")
        check(one.returncode == 1, "%s: the whole dry run finds drift (%d): %s" % (
            kind, one.returncode, one.stderr[-300:]))
        whole = drift_set(env.env["STATE_DB"])
        single = json.loads(env.run("show", "--json", str(run_row(
            env.env["STATE_DB"])["id"])).stdout)
        kinds = {k for k, _ in whole}
        check({"missing", "stale", "orphan", "duplicate"} <= kinds,
              "%s: the scenario has every kind: %s" % (kind, sorted(kinds)))
        for p in (1, 2, 4):
            j = os.path.join(env.tmp, "p%d.db" % p)
            r = env.run("check", "--dry-run", RECONCILE_PARTITIONS=p, STATE_DB=j)
            check(r.returncode == 1, "%s P=%d: the dry run exits 1 (%d): %s" % (
                kind, p, r.returncode, r.stderr[-400:]))
            if p == 1:
                got, total = drift_set(j), len(drift_set(j))
                check(got == whole, "%s P=1: one pass's drift" % kind)
                continue
            rows = split_rows(j)
            check([(x["partition_k"], x["partition_n"]) for x in rows] ==
                  [(k, p) for k in range(p)] and rows[0]["split_of"] == rows[0]["id"],
                  "%s P=%d: one run a partition, tied to partition 0's: %s" % (
                      kind, p, [(x["id"], x["partition_k"], x["split_of"]) for x in rows]))
            check(rows[0]["partition_lo"] is None and rows[-1]["partition_hi"] is None and
                  all(rows[k]["partition_hi"] == rows[k + 1]["partition_lo"]
                      for k in range(p - 1)),
                  "%s P=%d: the plan tiles the key space" % (kind, p))
            got, total = split_drift(j)
            check(got == whole, "%s P=%d: the partitions' drift equals one pass's: only "
                  "whole %s, only split %s" % (kind, p, sorted(whole - got),
                                               sorted(got - whole)))
            check(total == len(whole), "%s P=%d: each drifted id once (%d rows, %d)" % (
                kind, p, total, len(whole)))
            check(sum(x["compared"] for x in rows) == run_row(env.env["STATE_DB"])["compared"],
                  "%s P=%d: every id compared once" % (kind, p))
            check("split run" in r.stderr and "report --merge" in r.stderr,
                  "%s P=%d: the log names the split run" % (kind, p))
            # report --merge of the one journal: the split's partitions
            m = env.run("report", "--merge", "--json", j)
            merged = json.loads(m.stdout) if m.returncode == 0 else {}
            keys = ["missingCount", "orphanCount", "staleCount", "duplicateCount", "compared"]
            check(merged.get("complete") is True and
                  len(merged.get("partitions", [])) == p and
                  all(merged.get(k) == single.get(k) for k in keys),
                  "%s P=%d: report --merge of its journal gives one pass's counts (%d): %s vs "
                  "%s %s" % (kind, p, m.returncode, {k: merged.get(k) for k in keys},
                             {k: single.get(k) for k in keys}, m.stderr[-200:]))
        # the end state: a check with P = 4 vs one whole check
        twin = Env("partitions_inproc_twin_" + kind)
        try:
            build(twin, kind)
            a = twin.run("check", RECONCILE_ORPHANS="delete")
            b = env.run("check", RECONCILE_ORPHANS="delete", RECONCILE_PARTITIONS=4,
                        STATE_DB=os.path.join(env.tmp, "check4.db"))
            check(a.returncode == 0 and b.returncode == 0,
                  "%s: both checks repair (%d, %d): %s" % (kind, a.returncode, b.returncode,
                                                           b.stderr[-400:]))
            check(env.os_docs() == twin.os_docs(), "%s: the same end state as one pass" % kind)
            r = env.run("check", "--dry-run", RECONCILE_PARTITIONS=4,
                        STATE_DB=os.path.join(env.tmp, "check4.db"))
            check(r.returncode == 0, "%s: after the repair a split dry run is clean (%d): %s"
                  % (kind, r.returncode, r.stderr[-300:]))
        finally:
            twin.cleanup()
    scenario.__name__ = "same_as_one_pass_" + kind
    return scenario


def committed(j):
    try:
        db = sqlite3.connect(j, timeout=10)
        try:
            return dict(db.execute(
                "SELECT r.partition_k, count(b.batch_no) FROM runs r LEFT JOIN batches b "
                "ON b.run_id = r.id AND b.status = 'committed' WHERE r.split_of IS NOT NULL "
                "GROUP BY r.partition_k").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return {}


def killed_resumes(env):
    env.create_index()
    env.fixture("load", "--count", 16000, "--size", 0)
    env.fixture("sync", "--skip-every", 7)
    j = os.path.join(env.tmp, "k.db")
    settings = dict(STATE_DB=j, RECONCILE_CHUNK_SIZE=20, OPENSEARCH_SCAN_PAGE=20,
                    RECONCILE_VERIFY="merge", RECONCILE_PARTITIONS=2, SYNC_BATCH_SIZE=20)
    p = env.spawn("check", **settings)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        c = committed(j)
        if len(c) == 2 and all(v >= 2 for v in c.values()):
            break
        time.sleep(0.02)
    working = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.wait()
    check(working, "the split run was still working when killed")
    before = split_rows(j)
    check(len(before) == 2 and all(x["status"] == "running" for x in before) and
          any(x["compared"] < 7000 for x in before),
          "both partitions were killed before their end, one mid-pass: %s" % (
              [(x["partition_k"], x["status"], x["compared"]) for x in before]))
    r = env.run("check", **settings)
    after = split_rows(j)
    check(r.returncode == 0, "run again, it completes (%d): %s" % (r.returncode,
                                                                   r.stderr[-400:]))
    check([x["id"] for x in after] == [x["id"] for x in before] and
          all(x["resume_count"] == 1 and x["status"] == "completed" for x in after),
          "each partition resumed its own run: %s" % (
              [(x["id"], x["resume_count"], x["status"]) for x in after]))
    db = sqlite3.connect(j)
    n_runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    db.close()
    check(n_runs == 2, "no other run began (%d runs)" % n_runs)
    ids = sorted(env.mongo_docs())
    for x in after:
        lo, hi = x["partition_lo"] or "", x["partition_hi"]
        mine = [i for i in ids if lo <= i and (hi is None or i < hi)]
        check(x["compared"] == len(mine) and 6000 < len(mine) < 10000,
              "partition %d compared its own range's ids once (%d of %d)" % (
                  x["partition_k"], x["compared"], len(mine)))
    check(sorted(env.os_docs()) == ids, "every missing document is indexed")


def kill_split(env, j, p, **more):
    """Starts a check split into p partitions on journal j, kills it with
    kill -9 once each partition committed 2 batches; whether it was still
    working then."""
    settings = dict(STATE_DB=j, RECONCILE_CHUNK_SIZE=20, OPENSEARCH_SCAN_PAGE=20,
                    RECONCILE_VERIFY="merge", RECONCILE_PARTITIONS=p, SYNC_BATCH_SIZE=20)
    settings.update(more)
    proc = env.spawn("check", **settings)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        c = committed(j)
        if len(c) == p and all(v >= 2 for v in c.values()):
            break
        time.sleep(0.02)
    working = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return working


def other_shape_never_half(env):
    """QA25 F2: a killed split taken up with another RECONCILE_PARTITIONS
    (1, or another P, by check or resume) is cancelled whole, saying why,
    and a new run covers every key range: never one partition resumed
    alone with the others' ranges left unread."""
    env.create_index()
    env.fixture("load", "--count", 6000, "--size", 0)
    env.fixture("sync", "--skip-every", 7)
    j = os.path.join(env.tmp, "o.db")
    lease = env.index + "-lease"
    check(kill_split(env, j, 2, RECONCILE_LEASE_INDEX=lease), "the split run was killed mid-run")
    split = split_rows(j)
    # the whole run that takes it up holds the mirror's own lease (QA25b
    # N1): a whole run from another journal is kept out meanwhile
    whole = env.spawn("check", STATE_DB=j, RECONCILE_PARTITIONS=1, RECONCILE_LEASE_INDEX=lease,
                      SYNC_BATCH_SIZE=10, SYNC_BATCH_DELAY_MS=200)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and whole.poll() is None and \
            all(x["status"] != "cancelled" for x in split_rows(j)):
        time.sleep(0.05)
    time.sleep(0.5)
    other = env.run("check", STATE_DB=os.path.join(env.tmp, "other.db"),
                    RECONCILE_LEASE_INDEX=lease, timeout=120)
    out, err = whole.communicate(timeout=600)
    check(other.returncode == 2 and "another process" in other.stderr,
          "another journal's whole run is refused meanwhile (%d): %s" % (
              other.returncode, other.stderr[-300:]))
    r = subprocess.CompletedProcess([], whole.returncode, out, err)
    db = sqlite3.connect(j)
    rows = db.execute("SELECT id, status, error FROM runs ORDER BY id").fetchall()
    db.close()
    old = [x for x in rows if x[0] in {y["id"] for y in split}]
    check(r.returncode == 0 and all(x[1] == "cancelled" and "RECONCILE_PARTITIONS" in (x[2] or "")
                                    for x in old),
          "P=1: the split's runs are all cancelled, saying why (%d): %s" % (
              r.returncode, old))
    d = env.run("check", "--dry-run", STATE_DB=j)
    check(d.returncode == 0, "P=1: the new whole run left nothing (dry run %d): %s" % (
        d.returncode, d.stderr[-300:]))
    # resume with another P: not resumed (exit 5), the split cancelled
    ids = sorted(env.mongo_docs())
    env.bulk([{"delete": {"_id": i}} for i in ids[::5]])
    j2 = os.path.join(env.tmp, "o2.db")
    check(kill_split(env, j2, 2), "the second split run was killed mid-run")
    r = env.run("resume", STATE_DB=j2, RECONCILE_PARTITIONS=3)
    check(r.returncode == 5 and "not resumed" in r.stderr,
          "resume with P=3: not resumed, exit 5 (%d): %s" % (r.returncode, r.stderr[-300:]))
    check(all(x["status"] == "cancelled" for x in split_rows(j2)),
          "resume with P=3: every partition of the split cancelled")
    r = env.run("check", STATE_DB=j2, RECONCILE_PARTITIONS=3)
    d = env.run("check", "--dry-run", STATE_DB=j2, RECONCILE_PARTITIONS=3)
    check(r.returncode == 0 and d.returncode == 0 and len(split_rows(j2)) == 3,
          "P=3: a new split of 3 repairs everything (%d, dry run %d)" % (
              r.returncode, d.returncode))


def one_run_anywhere(env):
    """QA25 F3 and F1: a split holds the mirror's own lease, so a whole run
    from another journal is refused while it runs; a split that cannot
    begin says only its error (no summary of a run never begun)."""
    env.create_index()
    env.fixture("load", "--count", 3000, "--size", 0)
    env.fixture("sync", "--skip-every", 3)
    lease = env.index + "-lease"
    a = env.spawn("check", STATE_DB=os.path.join(env.tmp, "a.db"), RECONCILE_PARTITIONS=2,
                  RECONCILE_LEASE_INDEX=lease, SYNC_BATCH_SIZE=10, SYNC_BATCH_DELAY_MS=300)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and a.poll() is None and \
            len(split_rows(os.path.join(env.tmp, "a.db"))) < 2:
        time.sleep(0.05)
    b = env.run("check", STATE_DB=os.path.join(env.tmp, "b.db"), RECONCILE_LEASE_INDEX=lease,
                timeout=120)
    c = env.run("check", STATE_DB=os.path.join(env.tmp, "c.db"), RECONCILE_PARTITIONS=3,
                RECONCILE_LEASE_INDEX=lease, timeout=120)
    running = a.poll() is None
    a.send_signal(signal.SIGINT)
    a.communicate(timeout=120)
    check(running, "the split was still running while the others tried")
    check(b.returncode == 2 and "another process" in b.stderr,
          "a whole run from another journal is refused (%d): %s" % (
              b.returncode, b.stderr[-300:]))
    check(c.returncode == 2 and "another process" in c.stderr,
          "a split into 3 from another journal is refused (%d): %s" % (
              c.returncode, c.stderr[-300:]))
    r = env.run("check", RECONCILE_PARTITIONS=2,
                MONGODB_URI="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1000",
                STATE_DB=os.path.join(env.tmp, "d.db"))
    check(r.returncode == 2 and not any(x.startswith("run ") for x in r.stderr.splitlines()),
          "MongoDB unreachable while planning: exit 2, no run summary (%d): %s" % (
              r.returncode, r.stderr[-300:]))


def orphans(env, ids, n, at_end):
    """n orphan copies just after ids[0] (partition 0) or past the last id."""
    acts = []
    for i in range(n):
        o = ("ffffffffffffffffffff%04d" % i) if at_end else ids[0] + "%02d" % i
        acts += [{"index": {"_id": o}}, {"mongo_id": o, "updatedAt": "2024-01-01T00:00:00Z"}]
    env.bulk(acts)


def brake_over_whole_run(env):
    env.create_index()
    env.fixture("load", "--count", 400, "--size", 0)
    env.fixture("sync")
    ids = sorted(env.mongo_docs())
    settings = dict(RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETE_RATIO=1,
                    RECONCILE_PARTITIONS=2)
    # 6 orphans, all in partition 0: a share (8 / 2 = 4) would hold them,
    # the whole run's limit (8) does not
    orphans(env, ids, 6, False)
    r = env.run("check", RECONCILE_MAX_DELETES=8, STATE_DB=os.path.join(env.tmp, "a.db"),
                **settings)
    rows = split_rows(os.path.join(env.tmp, "a.db"))
    check(r.returncode == 0 and sum(x["deleted_count"] for x in rows) == 6,
          "6 orphans under RECONCILE_MAX_DELETES=8: deleted (%d): %s" % (
              r.returncode, r.stderr[-300:]))
    # 3 + 3 orphans: under 5 in each partition, over it in total
    orphans(env, ids, 3, False)
    orphans(env, ids, 3, True)
    j = os.path.join(env.tmp, "b.db")
    r = env.run("check", RECONCILE_MAX_DELETES=5, STATE_DB=j, **settings)
    rows = split_rows(j)
    check(r.returncode == 4 and all(x["status"] == "held" for x in rows) and
          sum(x["deleted_count"] for x in rows) == 0,
          "3 + 3 orphans over RECONCILE_MAX_DELETES=5: every partition held (%d): %s" % (
              r.returncode, [(x["status"], x["deleted_count"]) for x in rows]))
    check("held 6 orphan deletes (all partitions)" in r.stderr,
          "the CLI's held line counts every partition's deletes: %s" % r.stderr[-300:])
    why = rows[0]["error"] or ""
    check("6 orphans, over RECONCILE_MAX_DELETES=5" in why and
          "reconciler check --allow-deletes --mirror default" in why,
          "the held runs say the whole run's total and how to release it: %s" % why[:400])
    r = env.run("check", "--allow-deletes", RECONCILE_MAX_DELETES=5, STATE_DB=j, **settings)
    check(r.returncode == 0 and len(env.os_docs()) == len(ids),
          "released, the split run deletes them (%d)" % r.returncode)


def empty_range_note(env):
    """QA25 F6: a partition whose key range of the index is empty writes
    its range as a full re-index does and says so of its range; the split's
    summary does not say the index was empty."""
    env.create_index()
    env.fixture("load", "--count", 400, "--size", 0)
    env.fixture("sync")
    ids = sorted(env.mongo_docs())
    env.bulk([{"delete": {"_id": i}} for i in ids[22:]])
    r = env.run("check", RECONCILE_PARTITIONS=4, STATE_DB=os.path.join(env.tmp, "e.db"))
    summary = [x for x in r.stderr.splitlines() if x.startswith("run ")]
    check(r.returncode == 0 and "this partition's key range of the index held no documents"
          in r.stderr and not any("the index held no documents" in x for x in summary) and
          sorted(env.os_docs()) == ids,
          "one empty range is not an empty index (%d): %s" % (r.returncode, summary))


def whole_or_refused(env):
    env.create_index()
    env.fixture("load", "--count", 30, "--ids", "mixed", "--size", 0)
    env.fixture("sync", "--skip-every", 5)
    a = env.run("check", "--dry-run")
    whole = drift_set(env.env["STATE_DB"])
    j = os.path.join(env.tmp, "m.db")
    r = env.run("check", "--dry-run", RECONCILE_PARTITIONS=3, STATE_DB=j)
    check(r.returncode == a.returncode == 1 and drift_set(j) == whole and
          "runs whole" in r.stderr,
          "several id classes: the run is not split, says so, finds one pass's drift "
          "(%d): %s" % (r.returncode, r.stderr[-300:]))
    r = env.run("check", "--dry-run", RECONCILE_PARTITIONS=2, OPENSEARCH_ID_FIELD="")
    check(r.returncode == 78 and "RECONCILE_PARTITIONS=2 needs OPENSEARCH_ID_FIELD" in r.stderr,
          "no id field: refused, saying why (%d): %s" % (r.returncode, r.stderr[-300:]))
    r = env.run("check", "--dry-run", RECONCILE_PARTITIONS=65)
    check(r.returncode == 78 and "RECONCILE_PARTITIONS" in r.stderr,
          "RECONCILE_PARTITIONS=65: refused (%d)" % r.returncode)


SCENARIOS = [same_as_one_pass("oid"), same_as_one_pass("string"), killed_resumes,
             other_shape_never_half, one_run_anywhere, brake_over_whole_run, empty_range_note,
             whole_or_refused]
# PARTITIONS_ONLY=name runs one scenario (by hand, while working on it)
ONLY = os.environ.get("PARTITIONS_ONLY")
run_all([s for s in SCENARIOS if not ONLY or s.__name__ == ONLY], prefix="partitions_inproc_")
