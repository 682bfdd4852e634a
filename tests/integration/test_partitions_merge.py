"""report --merge refuses what does not make one split run (issue 21, QA).

- A partition whose journal holds its previous run (the pod failed before
  it journaled a new one) is a problem, exit 1: its run began outside
  --max-spread of the others'; the text shows each run's times.
- A partition's run of another database, collection or index: exit 1.
- The same journal given twice (the same path, a symlink, a hard link) or
  the same partition twice is counted once and is a problem, exit 1.
- Read-only: a directory, an empty file, a journal of an older reconciler
  (no partition columns) are named, exit 2; no journal is changed (size
  and mtime).
"""
import json
import os
import sqlite3

from harness import check, run_all

N = 4


def journals(env):
    return [os.path.join(env.tmp, "part%d.db" % k) for k in range(N)]


def split(env):
    env.create_index()
    env.fixture("load", "--count", 80, "--size", 0)
    env.fixture("sync")
    procs = [env.spawn("check", "--dry-run", "--partition", "%d/%d" % (k, N), STATE_DB=j)
             for k, j in enumerate(journals(env))]
    for p in procs:
        _, err = p.communicate(timeout=600)
        check(p.returncode == 0, "a partition's dry run (%d): %s" % (p.returncode, err[-300:]))
    r = env.run("report", "--merge", *journals(env))
    check(r.returncode == 0 and "the plan is complete" in r.stdout,
          "the fresh split run is complete (%d): %s" % (r.returncode, r.stdout[-300:]))


def sql(journal, statement):
    db = sqlite3.connect(journal)
    try:
        db.execute(statement)
        db.commit()
    finally:
        db.close()


def stamp(path):
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns)


def previous_run(env):
    """Partition 2's journal holds a run 5 h older than the others'."""
    split(env)
    j = journals(env)
    r = env.run("report", "--merge", *j)
    check("started 20" in r.stdout and "finished 20" in r.stdout,
          "the text shows each run's start and end: %s" % r.stdout[-600:])
    sql(j[2], "UPDATE runs SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', started_at, "
        "'-5 hours'), finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', finished_at, '-5 hours')")
    r = env.run("report", "--merge", *j)
    out = r.stdout + r.stderr
    check(r.returncode == 1 and "the plan is NOT complete" in r.stdout,
          "an older partition run: exit 1, not complete (%d): %s" % (r.returncode, out[-600:]))
    check("partition 2's run" in out and "5.0 h before the others" in out and
          "run it again" in out, "the problem names partition 2 and when: %s" % out[-600:])
    r = env.run("report", "--merge", "--json", *j)
    m = json.loads(r.stdout) if r.stdout.strip() else {}
    check(r.returncode == 1 and m.get("complete") is False and
          all(p.get("startedAt") and p.get("finishedAt") and p.get("id") and p.get("status")
              for p in m.get("partitions", [])),
          "--json: not complete, each partition's run id, status, times (%d)" % r.returncode)
    r = env.run("report", "--merge", "--max-spread", "86400", *j)
    check(r.returncode == 0, "--max-spread 86400 takes it (%d): %s" % (
        r.returncode, r.stdout[-300:]))
    r = env.run("report", "--merge", "--max-spread", "x", *j)
    check(r.returncode == 78, "--max-spread x: a usage error (%d)" % r.returncode)


def other_target(env):
    """Partition 3's run wrote another index (its journaled configuration)."""
    split(env)
    j = journals(env)
    sql(j[3], "UPDATE runs SET config = json_set(config, '$.OPENSEARCH_INDEX', 'elsewhere')")
    r = env.run("report", "--merge", *j)
    out = r.stdout + r.stderr
    check(r.returncode == 1 and "elsewhere" in out and "not one split run" in out,
          "another index: exit 1, named (%d): %s" % (r.returncode, out[-600:]))
    sql(j[3], "UPDATE runs SET config = json_set(config, '$.OPENSEARCH_INDEX', '%s', "
        "'$.MONGODB_DATABASE', 'otherdb')" % env.index)
    r = env.run("report", "--merge", *j)
    out = r.stdout + r.stderr
    check(r.returncode == 1 and "otherdb" in out, "another database: exit 1 (%d): %s" % (
        r.returncode, out[-600:]))


def given_twice(env):
    split(env)
    j = journals(env)
    whole = json.loads(env.run("report", "--merge", "--json", *j).stdout)
    r = env.run("report", "--merge", j[0], j[1], j[2], j[0])
    check(r.returncode == 1 and "3 of 4 partitions" in r.stdout and
          "partition 3/4 is missing" in r.stdout and "given twice" in r.stdout,
          "3 journals and one again: 3 of 4, exit 1 (%d): %s" % (r.returncode, r.stdout[-600:]))
    link = os.path.join(env.tmp, "link.db")
    hard = os.path.join(env.tmp, "hard.db")
    os.symlink(j[1], link)
    os.link(j[2], hard)
    for other in (link, hard):
        r = env.run("report", "--merge", "--json", *(j + [other]))
        m = json.loads(r.stdout) if r.stdout.strip() else {}
        check(r.returncode == 1 and len(m.get("partitions", [])) == N and
              m.get("compared") == whole.get("compared") and
              any("given twice" in p for p in m.get("problems", [])),
              "%s: counted once, a problem (%d): %s" % (
                  os.path.basename(other), r.returncode, m.get("problems")))
    # the same partition in two files (a copy): counted once
    copy = os.path.join(env.tmp, "copy.db")
    src, dst = sqlite3.connect(j[3]), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    r = env.run("report", "--merge", "--json", *(j + [copy]))
    m = json.loads(r.stdout) if r.stdout.strip() else {}
    check(r.returncode == 1 and len(m.get("partitions", [])) == N and
          m.get("compared") == whole.get("compared"),
          "partition 3 in two files: counted once (%d): %s" % (r.returncode, m.get("problems")))


def read_only(env):
    split(env)
    j = journals(env)
    before = [stamp(x) for x in j]
    empty = os.path.join(env.tmp, "empty.db")
    open(empty, "w").close()
    e0 = stamp(empty)
    r = env.run("report", "--merge", empty, *j[1:])
    check(r.returncode == 2 and "empty.db is an empty file" in r.stderr,
          "an empty file: exit 2, named (%d): %s" % (r.returncode, r.stderr[-300:]))
    check(stamp(empty) == e0 and not os.path.exists(empty + "-wal"),
          "the empty file is left as it was: %s" % (stamp(empty),))
    r = env.run("report", "--merge", env.tmp)
    check(r.returncode == 2 and "is a directory" in r.stderr and "disk" not in r.stderr,
          "a directory: exit 2, named (%d): %s" % (r.returncode, r.stderr[-300:]))
    old = os.path.join(env.tmp, "old.db")
    db = sqlite3.connect(old)
    db.executescript("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT);"
                     "INSERT INTO schema_migrations VALUES ('0001_initial', '2024-01-01');"
                     "CREATE TABLE runs (id INTEGER PRIMARY KEY, mirror TEXT);")
    db.close()
    o0 = stamp(old)
    r = env.run("report", "--merge", old)
    check(r.returncode == 2 and "not a partition journal (written by an older reconciler)"
          in r.stderr, "an older journal: exit 2, said (%d): %s" % (r.returncode, r.stderr[-300:]))
    check(stamp(old) == o0, "the older journal is not migrated")
    for mode in ([], ["--json"], ["--ndjson"]):
        env.run("report", "--merge", *(mode + j))
    check([stamp(x) for x in j] == before, "report --merge changes no journal")


run_all([previous_run, other_target, given_twice, read_only], prefix="partitions_merge_")
