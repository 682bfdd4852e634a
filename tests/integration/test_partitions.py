"""Partitions of a split run (docs/ENGINE.md#partitions, issue 21).

- `check --partition K/4` over 4 processes, each with its own journal (run
  at once, as a Kubernetes Indexed Job's pods are), find the same drift as
  one pass (missing, stale, duplicates under another routing, orphans
  before the first id, between ranges, after the last, and of a document
  deleted in the middle) and leave the same end state; ObjectId ids (split
  by time) and string ids (split points read with sort + skip).
- `report --merge` over the 4 journals gives the single run's counts, in
  text, --json and --ndjson.
- A partition killed with kill -9 resumes with its journaled plan and reads
  only its own key range.
- Refused with exit 78: a bad K/N, --partition with --full / --ids /
  --since / --sample, a collection of several id classes.
"""
import json
import os
import signal
import sqlite3
import time

from harness import Env, check, ext_id, run_all

N = 4
DOCS = 400


def build(env, kind="oid"):
    """The same drifted world each time (the loader's ids are fixed)."""
    st, body = env.os("PUT", "/" + env.index, {
        "settings": {"number_of_shards": 3, "number_of_replicas": 0},
        "mappings": {"properties": {"mongo_id": {"type": "keyword"},
                                    "updatedAt": {"type": "date"}}}})
    assert st == 200, body
    env.fixture("load", "--count", DOCS, "--ids", kind, "--size", 0)
    env.fixture("sync")
    ids = sorted(env.mongo_docs())
    tp = "oid" if kind == "oid" else "string"
    for i in (0, 150, DOCS - 1):  # missing, the first and last ids among them
        env.os("DELETE", "/%s/_doc/%s?refresh=true" % (env.index, ids[i]))
    for i in (10, 260):  # stale
        env.os("POST", "/%s/_update/%s?refresh=true" % (env.index, ids[i]),
               {"doc": {"updatedAt": "2020-01-01T00:00:00.000Z"}})
    # deleted in MongoDB: its copy is an orphan in the middle
    env.mongo({"delete": "ads", "deletes": [{"q": {"_id": ext_id(ids[300], tp)}, "limit": 1}]})
    # a duplicate: a second copy of ids[50] on another shard (its routing)
    home = env.shard_of(ids[50])
    routing = next("r%d" % i for i in range(100) if env.shard_of("r%d" % i) != home)
    env.os("PUT", "/%s/_doc/%s?routing=%s&refresh=true" % (env.index, ids[50], routing),
           {"mongo_id": ids[50], "updatedAt": "2024-01-01T00:00:00.000Z"})
    orphans = ["000000000000000000000001",  # before the first id
               ids[200] + "0",  # between two ids, in some partition's middle
               ids[99] + "~",
               "ffffffffffffffffffffffff", "zzz"]  # after the last
    actions = []
    for o in orphans:
        actions.append({"index": {"_id": o}})
        actions.append({"mongo_id": o, "updatedAt": "2024-01-01T00:00:00.000Z"})
    env.bulk(actions)
    return ids


def drift_set(journal, run_id=None):
    db = sqlite3.connect(journal)
    try:
        if run_id is None:
            run_id = db.execute("SELECT max(id) FROM runs").fetchone()[0]
        return {(k, d) for k, d in db.execute(
            "SELECT kind, doc_id FROM run_ids WHERE run_id = ?", (run_id,))}
    finally:
        db.close()


def run_row(journal, run_id=None):
    db = sqlite3.connect(journal)
    db.row_factory = sqlite3.Row
    try:
        q = "SELECT * FROM runs ORDER BY id DESC LIMIT 1" if run_id is None else \
            "SELECT * FROM runs WHERE id = %d" % run_id
        return dict(db.execute(q).fetchone())
    finally:
        db.close()


def journals(env):
    return [os.path.join(env.tmp, "part%d.db" % k) for k in range(N)]


def split(env, *mode, parallel=True, **settings):
    """The N partitions, each in a process of its own with its own journal."""
    procs = []
    for k, j in enumerate(journals(env)):
        args = ["check"] + list(mode) + ["--partition", "%d/%d" % (k, N)]
        if parallel:
            procs.append(env.spawn(*args, STATE_DB=j, **settings))
        else:
            r = env.run(*args, STATE_DB=j, **settings)
            procs.append(r)
    out = []
    for p in procs:
        if parallel:
            stdout, stderr = p.communicate(timeout=600)
            out.append((p.returncode, stdout, stderr))
        else:
            out.append((p.returncode, p.stdout, p.stderr))
    return out


def same_as_one_pass(kind):
    def scenario(env):
        build(env, kind)
        twin = Env("partitions_twin_" + kind)
        try:
            build(twin, kind)
            # dry runs: the drift sets
            one = env.run("check", "--dry-run")
            check(one.returncode == 1, "%s: the whole dry run finds drift (%d): %s" % (
                kind, one.returncode, one.stderr[-300:]))
            whole = drift_set(env.env["STATE_DB"])
            parts = split(env, "--dry-run")
            check(all(c == 1 for c, _, _ in parts), "%s: each partition's dry run exits 1: %s" % (
                kind, [(c, e[-200:]) for c, _, e in parts if c != 1]))
            union, total = set(), 0
            for j in journals(env):
                d = drift_set(j)
                total += len(d)
                union |= d
            check(union == whole, "%s: the partitions' drift equals one pass's: only whole %s, "
                  "only split %s" % (kind, sorted(whole - union), sorted(union - whole)))
            check(total == len(whole), "%s: each drifted id found once (%d rows, %d)" % (
                kind, total, len(whole)))
            kinds = {k for k, _ in whole}
            check({"missing", "stale", "orphan", "duplicate"} <= kinds,
                  "%s: the scenario has every kind: %s" % (kind, sorted(kinds)))
            rows = [run_row(j) for j in journals(env)]
            check([(r["partition_k"], r["partition_n"]) for r in rows] ==
                  [(k, N) for k in range(N)], "%s: each journal holds its partition" % kind)
            check(rows[0]["partition_lo"] is None and rows[-1]["partition_hi"] is None and
                  all(rows[k]["partition_hi"] == rows[k + 1]["partition_lo"]
                      for k in range(N - 1)),
                  "%s: the plan tiles the key space: %s" % (
                      kind, [(r["partition_lo"], r["partition_hi"]) for r in rows]))
            check(all(r["compared"] > DOCS // N // 3 for r in rows),
                  "%s: the ids are spread over the partitions: %s" % (
                      kind, [r["compared"] for r in rows]))

            # report --merge: the single run's counts
            r = env.run("report", "--merge", "--json", *journals(env))
            check(r.returncode == 0, "%s: report --merge --json (%d): %s" % (
                kind, r.returncode, r.stderr[-300:]))
            merged = json.loads(r.stdout) if r.returncode == 0 else {}
            single = json.loads(env.run("show", "--json", str(run_row(
                env.env["STATE_DB"])["id"])).stdout)
            keys = ["missingCount", "orphanCount", "staleCount", "duplicateCount",
                    "compared", "repairedCount", "deletedCount", "failedCount"]
            check(all(merged.get(k) == single.get(k) for k in keys),
                  "%s: report --merge's counts equal the single run's: %s vs %s" % (
                      kind, {k: merged.get(k) for k in keys}, {k: single.get(k) for k in keys}))
            check(merged.get("complete") is True and len(merged.get("partitions", [])) == N,
                  "%s: the merge says the plan is complete" % kind)
            r = env.run("report", "--merge", "--ndjson", *journals(env))
            lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
            check(r.returncode == 0 and {(x["kind"], x["id"]) for x in lines} == whole,
                  "%s: report --merge --ndjson lists the single run's drift" % kind)
            r = env.run("report", "--merge", *journals(env))
            check(r.returncode == 0 and "missing" in r.stdout and "4 of 4" in r.stdout,
                  "%s: report --merge prints text: %s" % (kind, r.stdout[:300]))
            r = env.run("report", "--merge", *journals(env)[:3])
            check(r.returncode == 1 and "missing" in (r.stdout + r.stderr),
                  "%s: 3 of 4 journals: exit 1, says a partition is missing (%d)" % (
                      kind, r.returncode))

            # the end state: 4 checks at once vs one check
            one = twin.run("check", RECONCILE_ORPHANS="delete")
            parts = split(env, RECONCILE_ORPHANS="delete")
            check(one.returncode == 0, "%s: the whole check repairs (%d): %s" % (
                kind, one.returncode, one.stderr[-300:]))
            check(all(c == 0 for c, _, _ in parts), "%s: each partition repairs: %s" % (
                kind, [(c, e[-300:]) for c, _, e in parts if c != 0]))
            check(env.os_docs() == twin.os_docs(), "%s: the same end state as one pass" % kind)
            st, cnt = env.os("GET", "/%s/_count" % env.index)
            check(cnt.get("count") == len(env.mongo_docs()),
                  "%s: one copy a document, no orphan left (%s)" % (kind, cnt.get("count")))
        finally:
            twin.cleanup()
    scenario.__name__ = "same_as_one_pass_" + kind
    return scenario


def kill_after(env, j, batches, *args):
    """Starts `check ARGS` on journal j, kills it with kill -9 once `batches`
    batches are committed; whether it was still working then."""
    def committed_now():
        try:
            db = sqlite3.connect(j, timeout=10)
            try:
                return db.execute(
                    "SELECT count(*) FROM batches WHERE status = 'committed'").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error:
            return 0
    # batches this process commits: a run killed before may have left more
    # committed than asked (up to SYNC_CONCURRENCY + 10 were in flight)
    batches += committed_now() if os.path.exists(j) else 0
    p = env.spawn(*args, STATE_DB=j, RECONCILE_CHUNK_SIZE=20, OPENSEARCH_SCAN_PAGE=20,
                  RECONCILE_VERIFY="merge")
    deadline = time.monotonic() + 120
    committed = 0
    while committed < batches and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
        committed = committed_now()
    working = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.wait()
    return working


def killed_resumes_own_part(env):
    env.create_index()
    env.fixture("load", "--count", 16000, "--size", 0)
    env.fixture("sync", "--skip-every", 7)
    j = os.path.join(env.tmp, "p1.db")
    check(kill_after(env, j, 2, "check", "--partition", "1/4"),
          "the partition was still working when killed")
    before = run_row(j)
    check(before["status"] == "running" and before["compared"] < 4000,
          "killed mid-pass: %s, %d compared" % (before["status"], before["compared"]))
    # run again as the pod restarts it: the same run, its journaled plan
    check(kill_after(env, j, 4, "check", "--partition", "1/4"),
          "run again, it was working when killed again")
    again = run_row(j)
    check(again["id"] == before["id"] and again["resume_count"] == 1,
          "check --partition 1/4 resumed the same run (%d, resumes %d)" % (
              again["id"], again["resume_count"]))
    # `reconciler resume` without --partition keeps the partition
    r = env.run("resume", STATE_DB=j, RECONCILE_CHUNK_SIZE=20, OPENSEARCH_SCAN_PAGE=20,
                RECONCILE_VERIFY="merge")
    after = run_row(j)
    check(r.returncode == 0 and after["id"] == before["id"] and after["resume_count"] == 2 and
          after["status"] == "completed",
          "resume completes the same run (%d): %s" % (r.returncode, r.stderr[-300:]))
    check((after["partition_k"], after["partition_n"], after["partition_lo"],
           after["partition_hi"]) == (1, 4, before["partition_lo"], before["partition_hi"]),
          "with its journaled partition and plan")
    lo, hi = after["partition_lo"], after["partition_hi"]
    ids = sorted(env.mongo_docs())
    mine = [i for i in ids if lo <= i < hi]
    check(3000 < len(mine) < 5000 and after["compared"] == len(mine),
          "it compared its own range's ids only (%d of %d)" % (after["compared"], len(mine)))
    d = drift_set(j)
    check(d and all(lo <= x < hi for _, x in d), "its drift is in its own range (%d)" % len(d))
    os_ids = set(env.os_docs())
    check(all(i in os_ids for i in mine), "its missing documents are indexed")
    check(any(i not in os_ids for i in ids if not (lo <= i < hi)),
          "the other partitions' missing documents are not (nothing outside it ran)")
    # another partition asked of a journal whose partition run is unfinished:
    # that run is cancelled (as changed settings cancel one), a new one begins
    j2 = os.path.join(env.tmp, "p0.db")
    check(kill_after(env, j2, 2, "check", "--partition", "0/4"), "partition 0 killed")
    r = env.run("check", "--partition", "3/4", STATE_DB=j2)
    old_run, new_run = run_row(j2, 1), run_row(j2)
    check(r.returncode == 0 and old_run["status"] == "cancelled" and
          "the partition (0/4 -> 3/4)" in (old_run["error"] or "") and
          (new_run["id"], new_run["partition_k"]) == (2, 3),
          "another partition cancels the unfinished one and runs its own: %s / %s" % (
              old_run["error"], r.stderr[-200:]))


def oids_over_days(env):
    """ObjectIds made over 30 days (the plan's ends rounded to hours): the
    split finds one pass's drift, and a newer id written between two
    partitions' starts leaves the plan as it was."""
    env.create_index()
    base = 1704067200  # 2024-01-01
    docs = [{"_id": {"$oid": "%08x%016x" % (base + i * 4001, i)},
             "updatedAt": {"$date": "2024-02-01T00:00:00Z"}} for i in range(600)]
    for at in range(0, len(docs), 200):
        env.mongo({"insert": "ads", "documents": docs[at:at + 200]})
    env.fixture("sync", "--skip-every", 11)
    env.bulk([{"index": {"_id": "%08x%016x" % (base + 5, 7)}},
              {"mongo_id": "%08x%016x" % (base + 5, 7), "updatedAt": "2024-01-01T00:00:00Z"},
              {"index": {"_id": "%08x%016x" % (base + 1200000, 7)}},
              {"mongo_id": "%08x%016x" % (base + 1200000, 7),
               "updatedAt": "2024-01-01T00:00:00Z"}])
    one = env.run("check", "--dry-run")
    whole = drift_set(env.env["STATE_DB"])
    parts = []
    for k, j in enumerate(journals(env)):
        parts.append(env.run("check", "--dry-run", "--partition", "%d/%d" % (k, N), STATE_DB=j))
        if k == 1:  # a newer document arrives between the starts
            env.mongo({"insert": "ads", "documents": [
                {"_id": {"$oid": "%08x%016x" % (base + 599 * 4001 + 60, 1)},
                 "updatedAt": {"$date": "2024-02-01T00:00:00Z"}}]})
    union = set()
    for j in journals(env):
        union |= drift_set(j)
    newer = ("missing", "%08x%016x" % (base + 599 * 4001 + 60, 1))
    check(one.returncode == 1 and all(p.returncode == 1 for p in parts) and
          union - {newer} == whole, "the partitions find one pass's drift: only whole %s, "
          "only split %s" % (sorted(whole - union), sorted(union - whole - {newer})))
    rows = [run_row(j) for j in journals(env)]
    check(all(rows[k]["partition_hi"] == rows[k + 1]["partition_lo"] for k in range(N - 1)),
          "the plans meet though the collection gained an id: %s" % (
              [(r["partition_lo"], r["partition_hi"]) for r in rows]))
    r = env.run("report", "--merge", *journals(env))
    check(r.returncode == 0, "report --merge: the plan is complete (%d): %s" % (
        r.returncode, r.stdout[-300:]))


def brake_share(env):
    """RECONCILE_MAX_DELETES=4 over 4 partitions: each may delete 1."""
    env.create_index()
    env.fixture("load", "--count", 200, "--size", 0)
    env.fixture("sync")
    env.bulk([{"index": {"_id": "ffffffffffffffffffffffff"}},
              {"mongo_id": "ffffffffffffffffffffffff", "updatedAt": "2024-01-01T00:00:00Z"},
              {"index": {"_id": "zzz"}}, {"mongo_id": "zzz", "updatedAt": "2024-01-01T00:00:00Z"}])
    parts = split(env, RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETES=4,
                  RECONCILE_MAX_DELETE_RATIO=1)
    check([c for c, _, _ in parts] == [0, 0, 0, 4],
          "the last partition holds its 2 orphans, over its share 1: %s" % (
              [(c, e[-200:]) for c, _, e in parts]))
    why = run_row(journals(env)[3])["error"] or ""
    check("this partition's share: 1 = RECONCILE_MAX_DELETES 4 / 4 partitions" in why,
          "the held run says the share: %s" % why[:300])
    check("reconciler check --partition 3/4 --allow-deletes --mirror default" in why,
          "the release keeps the partition: %s" % why[-300:])
    # a share of 0 (RECONCILE_MAX_DELETES < N): said at start
    r = env.run("check", "--partition", "3/4", RECONCILE_ORPHANS="delete",
                RECONCILE_MAX_DELETES=3, RECONCILE_MAX_DELETE_RATIO=1,
                STATE_DB=journals(env)[3])
    check(r.returncode == 4 and "share of the brake is 0 = RECONCILE_MAX_DELETES 3 / 4"
          in r.stderr, "a share of 0 is warned at start (%d): %s" % (
              r.returncode, r.stderr[-500:]))
    r = env.run("check", RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETES=4,
                RECONCILE_MAX_DELETE_RATIO=1)
    check(r.returncode == 0 and run_row(env.env["STATE_DB"])["deleted_count"] == 2,
          "one whole run deletes the 2 (%d)" % r.returncode)


def refused(env):
    env.create_index()
    for args in (["--partition", "4/4"], ["--partition", "x"], ["--partition", "1/0"],
                 ["--partition", "-1/4"], ["--partition", "1/4", "--full"],
                 ["--partition", "1/4", "--since", "2024-01-01"],
                 ["--partition", "1/4", "--sample", "10"],
                 ["--partition", "1/4", "--partition", "2/4"]):
        r = env.run("check", *args)
        check(r.returncode == 78, "check %s: exit 78 (%d): %s" % (
            " ".join(args), r.returncode, r.stderr.strip()[-200:]))
    env.fixture("load", "--count", 30, "--ids", "mixed", "--size", 0)
    r = env.run("check", "--dry-run", "--partition", "0/2")
    check(r.returncode == 78 and "all ObjectIds or all strings" in r.stderr,
          "several id classes: refused, saying why (%d): %s" % (r.returncode, r.stderr[-300:]))
    r = env.run("report", "--merge", os.path.join(env.tmp, "none.db"))
    check(r.returncode == 2, "report --merge of a journal that does not exist: exit 2")


if __name__ == "__main__":
    run_all([same_as_one_pass("oid"), same_as_one_pass("string"),
             (killed_resumes_own_part.__name__, killed_resumes_own_part,
              {"SYNC_BATCH_SIZE": 20}),
             oids_over_days, brake_share, refused], prefix="partitions_")
