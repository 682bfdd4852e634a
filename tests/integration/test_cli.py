"""The command line: exit codes, the run lock across processes, reports,
masked configuration, and the journal readable by the sqlite3 shell while a
run writes."""
import json
import subprocess
import time

from harness import Env, check, done

env = Env("cli", SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=50)
try:
    env.create_index()
    env.fixture("load", "--count", 1500)

    # bad configuration: exit 78, the message names the variable and the value
    r = env.run("check", SYNC_BATCH_SIZE="lots")
    check(r.returncode == 78, "bad config exits 78 (%d)" % r.returncode)
    check("SYNC_BATCH_SIZE" in r.stderr and "lots" in r.stderr and "integer" in r.stderr,
          "bad config names variable, value and what is allowed: %r" % r.stderr)
    r = env.run("check", RECONCILE_ORPHANS="sometimes")
    check(r.returncode == 78 and "report, delete" in r.stderr, "unknown enum: %r" % r.stderr)

    # secrets never leave the process
    r = env.run("config", MONGODB_URI="mongodb://app:pa55word@127.0.0.1:1/", API_TOKEN="t0ken")
    check(r.returncode == 0 and "pa55word" not in r.stdout and "t0ken" not in r.stdout
          and "mongodb://app:***@" in r.stdout, "config masks secrets")

    # dry run with drift: exit 1, nothing written to the index
    r = env.run("check", "--dry-run")
    check(r.returncode == 1, "dry run with drift exits 1 (%d: %s)" % (r.returncode, r.stderr[-200:]))
    check(env.os_docs() == {}, "dry run writes nothing to the index")

    # one run per journal: a second process is refused with the holder's id
    p = env.spawn("check")
    time.sleep(1.0)
    r = env.run("check")
    check(r.returncode == 2, "a second check while one runs exits 2 (%d)" % r.returncode)
    check("holds the journal" in r.stderr and "run 2" in r.stderr,
          "it says which run holds it: %r" % r.stderr)

    # the sqlite3 shell reads v_runs while the run writes
    errors = 0
    reads = 0
    while p.poll() is None:
        s = subprocess.run(["sqlite3", env.env["STATE_DB"], "SELECT id, status, repaired FROM v_runs"],
                           capture_output=True, text=True)
        reads += 1
        if s.returncode != 0 or "locked" in s.stderr:
            errors += 1
            print("sqlite3 said:", s.returncode, s.stderr.strip())
        time.sleep(0.05)
    out, err = p.communicate()
    check(reads >= 5 and errors == 0, "sqlite3 read v_runs %d times during the run, %d errors"
          % (reads, errors))
    check(p.returncode == 0 and "locked" not in err, "the run never saw a locked journal")

    # reports
    r = env.run("runs")
    check(r.returncode == 0 and "completed" in r.stdout and "dry_run" in r.stdout, "runs lists runs")
    r = env.run("show", "2", "--json")
    report = json.loads(r.stdout)
    check(report["missingCount"] == 1500 and report["repairedCount"] == 1500,
          "show reports the counts")
    check(report["batches"] and report["events"] and "config" in report, "show has batches, events, config")
    # show's default is a report a person reads, about a screen (issue 24 item 13)
    r = env.run("show", "2")
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and lines and lines[0].startswith("run 2 of mirror default: check, completed")
          and "missing 1500" in r.stdout and "repaired 1500" in r.stdout and "batches" in r.stdout
          and "drift sample" in r.stdout and len(lines) < 60,
          "show prints a readable report (%d lines): %s" % (len(lines), r.stdout[:300]))
    r = env.run("show", "99")
    check(r.returncode == 2 and "no run 99" in r.stderr, "show of an unknown run says so")
    r = env.run("resume")
    check(r.returncode == 0 and "no interrupted run" in r.stdout, "resume with nothing to do")
    r = env.run("frobnicate")
    check(r.returncode == 2 and "unknown command" in r.stderr, "unknown command")

    # a journal on a read-only place: a clear error, exit 2
    r = env.run("check", STATE_DB="/proc/reconciler/journal.db")
    check(r.returncode == 2 and "journal" in r.stderr, "unwritable journal: %r" % r.stderr[-200:])

    # full re-index, resumable, journaled by id range
    r = env.run("check", "--full")
    run = env.last_run()
    check(r.returncode == 0 and run["kind"] == "full" and run["reindexed_count"] == 1500 and
          run["repaired_count"] == 0,
          "full re-index indexes every document, counted reindexed, not repaired (%s, %s)"
          % (run["reindexed_count"], run["repaired_count"]))
    with env.journal() as db:
        rows = db.execute("SELECT count(*), SUM(docs), min(first_id) FROM batches WHERE run_id = ?",
                          (run["id"],)).fetchone()
        ids = db.execute("SELECT count(*) FROM run_ids WHERE run_id = ?", (run["id"],)).fetchone()[0]
    check(rows[0] == 30 and rows[1] == 1500 and rows[2] is not None and ids == 0,
          "full run journals batches by id range, no row per document")
    check(env.in_sync(), "in sync after the full re-index")
finally:
    env.cleanup()
done()
