"""Targeted checks (docs/ENGINE.md#targeted-runs): `check --ids FILE|-`,
`check --since TIME`, and {"ids": [...]} / {"since": ...} on the API.

- 5 given ids of a 100,000-document collection (2 missing, 1 stale, 1
  orphan, 1 in sync) are repaired in one run of kind ids; its time and a full
  dry run's are printed (docs/PERFORMANCE.md has the ratio; no timing is
  asserted: the machine is shared).
- The ids run leaves an interrupted check of the same mirror resumable.
- --since repairs what changed after TIME and leaves the rest (and orphans).
- Bad input is refused before any run: exit 78 on the CLI, 400 on the API.
"""
import json
import os
import signal
import sqlite3
import time

from harness import check, run_all
from service import Service

N = 100000


def oid_of(env, n):
    return env.fixture("idof", n, "oid").split()[0]


def runs_count(env):
    try:
        with env.journal() as db:
            return db.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def big(env):
    env.create_index()
    env.fixture("load", "--count", N, "--size", 200)
    env.fixture("sync")
    # drift at the end of the key order, where an interrupted check never got
    missing = [oid_of(env, N - 10), oid_of(env, N - 20)]
    stale, insync = oid_of(env, N - 30), oid_of(env, N - 40)
    orphan = "ffffffffffffffffffffff01"
    for m in missing:
        env.os("DELETE", "/%s/_doc/%s?refresh=true" % (env.index, m))
    env.os("POST", "/%s/_update/%s?refresh=true" % (env.index, stale),
           {"doc": {"updatedAt": "2020-01-01T00:00:00.000Z"}})
    env.bulk([{"index": {"_id": orphan}},
              {"mongo_id": orphan, "updatedAt": "2024-01-01T00:00:00.000Z"}])

    t0 = time.monotonic()
    r = env.run("check", "--dry-run", timeout=3000)  # a shared, loaded machine
    full_s = time.monotonic() - t0
    dry = env.last_run()
    check(r.returncode == 1 and dry["missing_count"] == 2 and dry["orphan_count"] == 1
          and dry["stale_count"] == 1, "a full dry run finds the drift (%s)" % r.stderr[-200:])

    # an interrupted check of the same mirror
    p = env.spawn("check", RECONCILE_CHUNK_SIZE=1000)
    deadline = time.monotonic() + 120
    compared = 0
    while compared < 3000 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
        try:
            with env.journal() as db:
                compared = db.execute("SELECT compared FROM runs WHERE kind = 'check' "
                                      "ORDER BY id DESC LIMIT 1").fetchone()[0]
        except (sqlite3.Error, TypeError):
            pass
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=120)
    interrupted = env.last_run()
    check(interrupted["kind"] == "check" and interrupted["status"] == "interrupted",
          "a check is interrupted mid-pass (%s)" % interrupted["status"])

    path = os.path.join(env.tmp, "ids.txt")
    with open(path, "w") as f:
        f.write("\n".join(missing + [stale, orphan, insync]) + "\n")
    t0 = time.monotonic()
    r = env.run("check", "--ids", path)
    ids_s = time.monotonic() - t0
    run = env.last_run()
    check(r.returncode == 0 and run["kind"] == "ids" and run["status"] == "completed",
          "one run of kind ids: %s %s %s" % (r.returncode, run["kind"], r.stderr[-300:]))
    check(run["missing_count"] == 2 and run["stale_count"] == 1 and run["orphan_count"] == 1
          and run["repaired_count"] == 3 and run["deleted_count"] == 1 and run["compared"] == 4,
          "2 missing, 1 stale, 1 orphan repaired, 1 in sync: %s" % {
              k: run[k] for k in ("missing_count", "stale_count", "orphan_count",
                                  "repaired_count", "deleted_count", "compared")})
    docs = env.os_docs()
    check(all(m in docs for m in missing) and orphan not in docs
          and docs[stale] is not None and docs[stale] > 1700000000000,
          "the index has the two, the fresh copy, and not the orphan")
    print("TIMING: full dry run %.2fs, ids run %.2fs, ratio %.1fx (%d documents)"
          % (full_s, ids_s, full_s / ids_s if ids_s else 0, N), flush=True)

    # the interrupted check resumes as if nothing happened
    r = env.run("check", timeout=3000)
    with env.journal() as db:
        run = dict(db.execute("SELECT * FROM runs WHERE id = ?", (interrupted["id"],)).fetchone())
        newest = db.execute("SELECT max(id) FROM runs").fetchone()[0]
    check(newest == run["id"] + 1, "no new run: the check resumed (newest %d)" % newest)
    check(r.returncode == 0 and run["id"] == interrupted["id"] and run["resume_count"] == 1
          and run["status"] == "completed",
          "the interrupted check resumes after the ids run (%s %s)" % (run["id"], run["status"]))
    check(env.in_sync(), "in sync")


def since(env):
    env.create_index()
    env.fixture("load", "--count", 1000)
    env.fixture("sync")
    # the loader's updatedAt: 2024-01-01 plus n seconds
    new = [oid_of(env, 995), oid_of(env, 998)]
    old_missing = oid_of(env, 10)
    stale = oid_of(env, 996)
    orphan = "ffffffffffffffffffffff02"
    for m in new + [old_missing]:
        env.os("DELETE", "/%s/_doc/%s?refresh=true" % (env.index, m))
    env.os("POST", "/%s/_update/%s?refresh=true" % (env.index, stale),
           {"doc": {"updatedAt": "2020-01-01T00:00:00.000Z"}})
    env.bulk([{"index": {"_id": orphan}},
              {"mongo_id": orphan, "updatedAt": "2024-01-01T00:00:00.000Z"}])
    r = env.run("check", "--since", "2024-01-01T00:16:30Z")  # n > 990
    run = env.last_run()
    check(r.returncode == 0 and run["kind"] == "ids" and run["missing_count"] == 2
          and run["stale_count"] == 1 and run["repaired_count"] == 3 and run["orphan_count"] == 0,
          "--since repairs the 3 changed after TIME: %s %s" % (r.returncode, r.stderr[-300:]))
    check("orphans" in r.stderr and "full check" in r.stderr,
          "and says that deletes need a full check")
    check("mongodb not counted" in r.stdout, "the summary says MongoDB was not counted: %s"
          % r.stdout.strip()[-200:])
    with env.journal() as db:
        target = [x[0] for x in db.execute(
            "SELECT detail FROM run_events WHERE run_id = ? AND event = 'target'", (run["id"],))]
    check(target and "since 2024-01-01T00:16:30.000Z" in target[0],
          "the journal says what the run targeted (QA): %s" % target)
    docs = env.os_docs()
    check(old_missing not in docs and orphan in docs and all(m in docs for m in new),
          "older drift and orphans are left to a full check")


def bad_input(env):
    env.create_index()
    env.fixture("load", "--count", 10)
    before = runs_count(env)

    def cli(*args, stdin=None, **settings):
        import subprocess
        from harness import BIN
        e = dict(env.env)
        e.update(settings)
        return subprocess.run([BIN, "check"] + list(args), env=e, capture_output=True,
                              text=True, input=stdin, cwd=env.tmp, timeout=120)

    def write(name, text):
        p = os.path.join(env.tmp, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    cases = [
        (("--ids", write("empty.txt", "")), {}, "no ids"),
        (("--ids", write("blank.txt", "abc\n\nxyz\n")), {}, "is empty"),
        (("--ids", write("long.txt", "a" * 513 + "\n")), {}, "513 bytes"),
        (("--ids", write("many.txt", "".join("id%d\n" % i for i in range(10001)))), {},
         "more than 10000"),
        (("--ids", os.path.join(env.tmp, "nosuch.txt")), {}, "cannot read"),
        (("--since", "yesterday"), {}, "ISO 8601"),
        (("--since", "2026-13-45T00:00:00Z"), {}, "ISO 8601"),
        (("--since", "2026-01-01T00:00:00Z"), {"RECONCILE_VERSION_FIELD": ""},
         "RECONCILE_VERSION_FIELD"),
        (("--ids", write("one.txt", "x\n"), "--dry-run"), {}, "not with --dry-run"),
        (("--ids", write("two.txt", "x\n"), "--since", "2026-01-01T00:00:00Z"), {}, "not both"),
        # QA: a value missing is bad input (78), not an unknown option (2); bytes that
        # are not UTF-8 broke the index query and interrupted the run
        (("--ids",), {}, "--ids needs a FILE"),
        (("--since",), {}, "--since needs a TIME"),
        (("--since", "2026-01-01", "--since", "2026-02-01"), {}, "given twice"),
        (("--since", "2026-02-30"), {}, "ISO 8601"),
        (("--ids", os.path.join(env.tmp, "bad8.txt")), {}, "id 2 is not valid UTF-8"),
    ]
    with open(os.path.join(env.tmp, "bad8.txt"), "wb") as f:
        f.write(b"abc\n\xff\xfe\n")
    for args, settings, word in cases:
        r = cli(*args, **settings)
        check(r.returncode == 78 and word in r.stderr,
              "check %s: exit 78 saying %r (%d: %s)" % (" ".join(a[:30] for a in args), word,
                                                       r.returncode, r.stderr.strip()[-200:]))
    r = cli("--ids", "-", stdin="")
    check(r.returncode == 78, "--ids - with nothing on stdin: 78")
    check(runs_count(env) == before, "no run was begun for bad input")
    oid = oid_of(env, 3)
    r = cli("--ids", "-", stdin=oid + "\r\n")
    run = env.last_run()
    check(r.returncode == 0 and run["kind"] == "ids" and run["missing_count"] == 1,
          "--ids - reads stdin (CRLF too): %s" % r.stderr[-200:])
    # QA: a UTF-8 byte order mark (Notepad) made the first id another one, "in sync"
    oid4 = oid_of(env, 5)
    r = cli("--ids", write("bom.txt", "\ufeff" + oid4 + "\r\n"))
    run = env.last_run()
    check(r.returncode == 0 and run["missing_count"] == 1 and run["compared"] == 1,
          "--ids: a byte order mark is dropped (%d, %s)" % (r.returncode, r.stderr[-200:]))

    svc = Service(env, RECONCILE_VERSION_FIELD="")
    try:
        before = runs_count(env)
        bodies = [
            ({"ids": "abc"}, "array"),
            ({"ids": [1, 2]}, "string"),
            ({"ids": []}, "no ids"),
            ({"ids": [""]}, "empty"),
            ({"ids": ["a" * 513]}, "513 bytes"),
            ({"ids": ["a"] * 101}, "more than 100"),  # the API's limit; the CLI takes 10,000
            ({"since": "not a time"}, "ISO 8601"),
            ({"since": 12}, "ISO 8601"),
            ({"since": "2026-01-01T00:00:00Z"}, "RECONCILE_VERSION_FIELD"),
            ({"ids": ["x"], "dryRun": True}, "dryRun"),
        ]
        for body, word in bodies:
            st, res, _ = svc.http("POST", "/api/mirrors/default/check", body)
            check(st == 400 and word in res.get("error", ""),
                  "API %s: 400 saying %r (%s %s)" % (json.dumps(body)[:60], word, st, res))
        # QA: an escaped NUL cut the id (the cut one was acted on); a member given
        # twice was read as the first; bytes that are not UTF-8 interrupted the run
        for raw, word in ((b'{"ids": ["orphan-7\\u0000zzz"]}', "NUL"),
                          (b'{"ids": ["a"], "ids": ["b"]}', "twice"),
                          (b'{"ids": ["abc", "\xff\xfe"]}', "UTF-8")):
            st, res, _ = svc.http("POST", "/api/mirrors/default/check", raw=raw,
                                  headers={"Content-Type": "application/json"})
            check(st == 400 and word in res.get("error", ""),
                  "API raw %r: 400 saying %r (%s %s)" % (raw, word, st, res))
        check(runs_count(env) == before, "no run was begun for a bad body")
        st, res, _ = svc.http("POST", "/api/reconciliation/check", {"ids": [oid_of(env, 4)]})
        run = env.last_run()
        check(st == 200 and res["status"] == "completed" and run["kind"] == "ids"
              and res["missingCount"] == 1 and res["synced"] == 1,
              "a good ids body runs a targeted check: %s" % res)
    finally:
        svc.stop()


def typed(env):
    """An ids run answers orphans and conflicts from its own lookup (every
    typed value of each text asked): the same verdicts as a full pass,
    and a value the server refuses to be asked about is that id's alone."""
    env.create_index()
    oid = "5f0000000000000000000042"
    env.mongo({"insert": "ads", "documents": [
        {"_id": "42", "updatedAt": {"$date": "2024-01-01T00:00:00Z"}},
        {"_id": 42, "updatedAt": {"$date": "2024-01-01T00:00:00Z"}},
        {"_id": "abc", "updatedAt": {"$date": "2024-01-01T00:00:00Z"}},
        {"_id": {"$oid": oid}, "updatedAt": {"$date": "2024-01-01T00:00:00Z"}}]})
    env.fixture("sync")
    env.os("DELETE", "/%s/_doc/abc?refresh=true" % env.index)
    # QA: an ObjectId hex that also reads as a double overflowing to infinity was
    # "never asked", so its orphan copy was never judged
    inf_hex = "6592008e0000000000003700"
    env.bulk([{"index": {"_id": "zzz"}}, {"mongo_id": "zzz", "updatedAt": "2024-01-01T00:00:00.000Z"},
              {"index": {"_id": "43"}}, {"mongo_id": "43", "updatedAt": "2024-01-01T00:00:00.000Z"},
              {"index": {"_id": inf_hex}},
              {"mongo_id": inf_hex, "updatedAt": "2024-01-01T00:00:00.000Z"}])
    r = env.run("check", "--dry-run")
    full = env.last_run()
    check(full["conflict_count"] >= 1 and full["missing_count"] == 1 and full["orphan_count"] == 3,
          "a full dry run: the 42 conflict, abc missing, three orphans (%s)" % {
              k: full[k] for k in ("conflict_count", "missing_count", "orphan_count")})
    path = os.path.join(env.tmp, "typed.txt")
    with open(path, "w") as f:
        f.write("\n".join(["42", "abc", "zzz", "43", '{"": 1}', oid, inf_hex]) + "\n")
    r = env.run("check", "--ids", path)
    run = env.last_run()
    check(run["kind"] == "ids" and run["status"] == "completed" and r.returncode == full_rc(full),
          "the ids run completes though one value cannot be asked about: %s %s %s" % (
              r.returncode, run["status"], r.stderr[-400:]))
    check(run["conflict_count"] == full["conflict_count"] and run["missing_count"] == 1
          and run["orphan_count"] == 3 and run["deleted_count"] == 3 and run["repaired_count"] == 1,
          "the same verdicts as the full pass: %s" % {
              k: run[k] for k in ("conflict_count", "missing_count", "orphan_count",
                                  "deleted_count", "repaired_count")})
    docs = env.os_docs()
    check("42" in docs and "abc" in docs and oid in docs and "zzz" not in docs
          and "43" not in docs and inf_hex not in docs,
          "the conflicted copy stays, the orphans are gone: %s" % sorted(docs))
    check("refused" in r.stderr, "the refused value is named in the log")
    with env.journal() as db:
        target = [x[0] for x in db.execute(
            "SELECT detail FROM run_events WHERE run_id = ? AND event = 'target'", (run["id"],))]
    check(target and target[0].startswith("7 ids: ") and " abc " in target[0]
          and " zzz " in target[0],
          "the journal says which ids the run was given: %s" % target)


def full_rc(full):
    """A completed run with id conflicts exits 3 (some documents not repaired)."""
    return 3 if full["conflict_count"] else 0


run_all([("typed", typed, {"RECONCILE_ORPHANS": "delete", "RECONCILE_MAX_DELETE_RATIO": 1}),
         ("bad", bad_input, {}),
         ("since", since, {"RECONCILE_ORPHANS": "delete"}),
         ("big", big, {"RECONCILE_ORPHANS": "delete"})], prefix="targeted")
