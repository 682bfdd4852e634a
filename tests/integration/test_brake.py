"""The brake on orphan deletes (docs/ENGINE.md#the-brake-on-deletes).

- An index holding 20% orphans: the run holds (status held, exit 4), deletes
  nothing, says why in numbers and how to release it (event, warning, the
  run's error); missing and stale documents are still repaired.
- `check --allow-deletes` deletes exactly the orphans.
- The API: {"allowDeletes": true} releases it; held runs show in /metrics.
- A run killed while sending its (allowed) deletes resumes and sends the rest.
- MongoDB's stream cut mid-pass (the test's own FerretDB stopped): nothing
  is deleted.
- A journal from before (c0fca45) migrates with its history intact.
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

from harness import FIXTURE, SRC, check, run_all
from service import Service


def orphan_actions(n, start=0):
    """n index documents whose ids MongoDB has not (ObjectId texts that sort
    before the fixture's)."""
    out = []
    for i in range(start, start + n):
        oid = "%024x" % (i + 1)
        out.append({"index": {"_id": oid}})
        out.append({"mongo_id": oid, "updatedAt": "2024-01-01T00:00:00.000Z", "title": "gone"})
    return out


def wait_compared(env, p, n):
    """Until the running process p's run has compared n ids (or ended)."""
    deadline = time.monotonic() + 120
    compared = 0
    while compared < n and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
        try:
            with env.journal() as db:
                row = db.execute("SELECT compared FROM runs ORDER BY id DESC LIMIT 1").fetchone()
                compared = row[0] if row else 0
        except sqlite3.Error:
            pass


def held_rows(env, run_id):
    with env.journal() as db:
        return db.execute("SELECT status, error FROM run_ids WHERE run_id = ? AND kind = 'orphan'",
                          (run_id,)).fetchall()


def hold_then_allow(env):
    env.create_index()
    env.fixture("load", "--count", 100)
    env.fixture("sync")
    # 25 orphans over 100 documents: 20% of the index's 125
    env.bulk(orphan_actions(25))
    ids = sorted(env.mongo_docs())
    env.os("DELETE", "/%s/_doc/%s?refresh=true" % (env.index, ids[3]))  # missing
    env.os("DELETE", "/%s/_doc/%s?refresh=true" % (env.index, ids[7]))  # missing
    env.os("POST", "/%s/_update/%s?refresh=true" % (env.index, ids[9]),
           {"doc": {"updatedAt": "2020-01-01T00:00:00.000Z"}})  # stale
    before = env.os_docs()

    r = env.run("check")
    run = env.last_run()
    check(r.returncode == 4, "a held run exits 4 (%d): %s" % (r.returncode, r.stderr[-400:]))
    check(run["status"] == "held" and run["orphan_count"] == 25 and run["deleted_count"] == 0,
          "status held, 25 orphans, none deleted: %s %s %s" % (
              run["status"], run["orphan_count"], run["deleted_count"]))
    check(run["repaired_count"] == 3 and run["delete_brake"] == "held",
          "the missing and stale documents are still repaired (%d)" % run["repaired_count"])
    after = env.os_docs()
    check(all(("%024x" % (i + 1)) in after for i in range(25)), "every orphan is still indexed")
    check(len(after) == len(before) + 2, "nothing was deleted, the 2 missing were indexed")
    why = run["error"] or ""
    # counted after the two deletes above: 25 of 123
    check("25 orphans are 20.3% of the index's 123 documents" in why
          and "RECONCILE_MAX_DELETE_RATIO=0.05" in why and "--allow-deletes" in why
          and "allowDeletes" in why,
          "the run says why in numbers and how to release it: %s" % why)
    check("--allow-deletes" in r.stderr and "held 25 orphan deletes" in r.stderr,
          "and so does the CLI: %s" % r.stderr[-300:])
    with env.journal() as db:
        ev = db.execute("SELECT detail FROM run_events WHERE run_id = ? AND event = 'held'",
                        (run["id"],)).fetchall()
    check(len(ev) == 1 and "20.3%" in ev[0][0], "one held event with the numbers")
    log = open(os.path.join(env.env["LOG_DIR"], "combined.log")).read()
    check(any("warn" in line and "held 25 orphan deletes" in line for line in log.splitlines()),
          "a warning log line")
    rows = held_rows(env, run["id"])
    check(len(rows) == 25 and all(s == "reported" and e.startswith("held") for s, e in rows),
          "the held orphans are journaled reported, with why")

    r = env.run("check", "--allow-deletes")
    run = env.last_run()
    check(r.returncode == 0 and run["status"] == "completed" and run["deleted_count"] == 25
          and run["orphan_count"] == 25 and run["delete_brake"] == "passed",
          "--allow-deletes deletes exactly the 25 orphans: %s %s %s" % (
              r.returncode, run["status"], run["deleted_count"]))
    with env.journal() as db:
        ev = [x[0] for x in db.execute("SELECT detail FROM run_events WHERE run_id = ? AND "
                                       "event = 'brake'", (run["id"],))]
    check(any("released" in e for e in ev), "the journal says a person released it: %s" % ev)
    check(env.in_sync(), "and the index equals MongoDB")
    r = env.run("check")
    check(r.returncode == 0 and env.last_run()["delete_brake"] == "on",
          "the release was for that one run")


def api(env):
    env.create_index()
    env.fixture("load", "--count", 100)
    env.fixture("sync")
    env.bulk(orphan_actions(30))
    svc = Service(env)
    try:
        st, body, _ = svc.http("POST", "/api/mirrors/default/check", {"allowDeletes": "yes"})
        check(st == 400 and "allowDeletes" in body["error"], "allowDeletes must be a boolean")
        st, body, _ = svc.http("POST", "/api/mirrors/default/check", {})
        check(st == 200 and body["status"] == "held" and body["heldCount"] == 30
              and "allowDeletes" in body["held"] and body["inSync"] is False,
              "the API says held, how many and why: %s" % body)
        st, body, _ = svc.http("GET", "/metrics")
        held = [l for l in body.splitlines() if l.startswith("reconciler_runs_total")
                and 'status="held"' in l]
        check(len(held) == 1 and held[0].endswith(" 1"), "/metrics counts the held run: %s" % held)
        st, body, _ = svc.http("POST", "/api/reconciliation/check", {"allowDeletes": True})
        check(st == 200 and body["status"] == "completed" and body["orphanCount"] == 30
              and body["synced"] == 30,
              "the seed's route with allowDeletes deletes them: %s" % body)
        check(env.in_sync(), "in sync after the API's release")
        st, body, _ = svc.http("GET", "/api/reconciliation/runs?status=held")
        check(st == 200 and len(body["runs"]) == 1, "runs?status=held lists the held run")
    finally:
        svc.stop()


def resume_while_deleting(env):
    env.create_index()
    env.fixture("load", "--count", 50)
    env.fixture("sync")
    env.bulk(orphan_actions(200))
    p = env.spawn("check", "--allow-deletes", SYNC_BATCH_SIZE=10, SYNC_BATCH_DELAY_MS=150)
    deadline = time.monotonic() + 120
    sent = 0
    while sent < 2 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
        try:
            with env.journal() as db:
                sent = db.execute("SELECT count(*) FROM batches WHERE action = 'delete' AND "
                                  "status = 'committed'").fetchone()[0]
        except sqlite3.Error:
            pass
    p.send_signal(signal.SIGKILL)
    p.communicate()
    run = env.last_run()
    left = len(env.os_docs()) - 50
    # decided (released): a resume sends the rest without deciding again
    check(run["status"] == "running" and run["delete_brake"] == "passed" and 0 < left < 200,
          "killed while sending its deletes (%s, %d orphans left)" % (run["status"], left))
    r = env.run("resume")
    run = env.last_run()
    check(r.returncode == 0 and run["status"] == "completed" and run["resume_count"] == 1
          and run["deleted_count"] == 200,
          "resumed, it sends the rest: %s %s %s" % (r.returncode, run["status"],
                                                     run["deleted_count"]))
    check(env.in_sync(), "in sync after the resume")


def mongo_cut(env):
    """MongoDB stops answering mid-pass: the run ends interrupted and deletes
    nothing, though its orphans (1%) are under the limits."""
    env.create_index()
    env.fixture("load", "--count", 20000)
    env.fixture("sync")
    env.bulk(orphan_actions(200))
    p = env.spawn("check", RECONCILE_CHUNK_SIZE=200)
    wait_compared(env, p, 1000)
    # the run is frozen while FerretDB stops, so the cut falls mid-pass
    # however fast the machine is (16,000 ids are still to be read)
    p.send_signal(signal.SIGSTOP)
    with env.journal() as db:
        found = db.execute("SELECT count(*) FROM run_ids WHERE kind = 'orphan'").fetchone()[0]
    try:
        env.server_set.stop("ferretdb")  # the scenario's own (own_servers)
    finally:
        p.send_signal(signal.SIGCONT)
    try:
        out, err = p.communicate(timeout=300)
        run = env.last_run()
        check(found == 200, "the orphans were found before the cut (%d)" % found)
        check(p.returncode == 2 and run["status"] == "interrupted" and run["deleted_count"] == 0,
              "the cut run is interrupted and deleted nothing: %s %s %s" % (
                  p.returncode, run["status"], run["deleted_count"]))
        with env.journal() as db:
            dels = db.execute("SELECT count(*) FROM batches WHERE action = 'delete'").fetchone()[0]
        check(dels == 0, "no delete batch was even journaled")
        docs = env.os_docs()
        check(len(docs) == 20200, "every orphan is still indexed (%d)" % len(docs))
    finally:
        env.server_set.start("ferretdb")  # back (a fresh one: its data is gone)


def released_rename(env):
    """QA: --allow-deletes released the stream guards too: a collection
    renamed away mid-run made every copy an orphan, and every copy was
    deleted. Releasing lifts the limits only; a short stream, or a
    collection that is gone, still holds every delete."""
    env.create_index()
    env.fixture("load", "--count", 20000)
    env.fixture("sync")
    env.bulk(orphan_actions(200))
    p = env.spawn("check", "--allow-deletes", RECONCILE_CHUNK_SIZE=200)
    wait_compared(env, p, 1000)
    p.send_signal(signal.SIGSTOP)
    moved = dict(env.env, MONGODB_DATABASE="admin")
    rename = {"renameCollection": "%s.ads" % env.db, "to": "%s.ads_away" % env.db}
    try:
        subprocess.run([FIXTURE, "command", json.dumps(rename)], env=moved, check=True,
                       capture_output=True)
    finally:
        p.send_signal(signal.SIGCONT)
    try:
        out, err = p.communicate(timeout=600)
        run = env.last_run()
        docs = env.os_docs()
        check(p.returncode != 0 and run["deleted_count"] == 0 and len(docs) == 20200,
              "a released run whose collection went away deletes nothing (%s %s %s, %d left): %s"
              % (p.returncode, run["status"], run["deleted_count"], len(docs), err[-300:]))
    finally:
        back = {"renameCollection": "%s.ads_away" % env.db, "to": "%s.ads" % env.db}
        subprocess.run([FIXTURE, "command", json.dumps(back)], env=moved, capture_output=True)


def resume_rearms(env):
    """QA: a release survived an interruption, and the resume (the service's
    at start too) deleted what the run read after it. A resume re-arms the
    brake unless it is released again."""
    env.create_index()
    env.fixture("load", "--count", 5000)
    env.fixture("sync")
    env.bulk(orphan_actions(1000))  # 20% of the index: over the limit
    p = env.spawn("check", "--allow-deletes", RECONCILE_CHUNK_SIZE=100)
    wait_compared(env, p, 500)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    run = env.last_run()
    check(run["status"] == "running" and run["delete_brake"] == "released"
          and len(env.os_docs()) == 6000,
          "a released run killed mid-pass deleted nothing yet (%s %s)"
          % (run["status"], run["delete_brake"]))
    r = env.run("resume")
    run = env.last_run()
    check(r.returncode == 4 and run["status"] == "held" and run["deleted_count"] == 0
          and len(env.os_docs()) == 6000,
          "its resume without --allow-deletes is held: the release does not survive (%d %s %s)"
          % (r.returncode, run["status"], run["deleted_count"]))


def old_journal(env):
    """A journal written before this migration keeps its history."""
    src = os.path.join(SRC, "tests", "integration", "data", "old-journal-c0fca45.db")
    db_path = env.env["STATE_DB"]
    shutil.copy(src, db_path)
    old = sqlite3.connect(db_path)
    tables = ["runs", "batches", "run_ids", "errors", "run_events"]
    # each table's columns as they were: later migrations add columns
    cols = {t: [c[1] for c in old.execute("PRAGMA table_info(%s)" % t)] for t in tables}
    before = {t: [tuple(x) for x in old.execute("SELECT %s FROM %s ORDER BY 1, 2"
                                                   % (", ".join(cols[t]), t))]
              for t in tables}
    old.close()
    r = env.run("runs")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 5, "runs reads and migrates it")
    with env.journal() as db:
        names = [x[0] for x in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
        after = {t: [tuple(x) for x in db.execute("SELECT %s FROM %s ORDER BY 1, 2"
                                                     % (", ".join(cols[t]), t))]
                 for t in tables}
        fk = db.execute("PRAGMA foreign_key_check").fetchall()
        runs = [dict(x) for x in db.execute("SELECT * FROM runs ORDER BY id")]
        fks = {t: db.execute("PRAGMA foreign_key_list(%s)" % t).fetchall()
               for t in ["batches", "run_ids", "errors", "run_events"]}
        idx = sorted(x[1] for x in db.execute("PRAGMA index_list(runs)"))
        views = db.execute("SELECT count(*) FROM v_runs").fetchone()[0]
        drift = db.execute("SELECT count(*) FROM v_drift WHERE mirror = 'default'").fetchone()[0]
    check("0008_brake_and_targeted_runs" in names, "migrated through 0008: %s" % names)
    check(after["runs"] == before["runs"], "every run kept every column")
    check(all(after[t] == before[t] for t in tables), "batches, drift, errors, events kept")
    check(fk == [] and all(any(k[2] == "runs" for k in v) for v in fks.values()),
          "every foreign key still points at runs")
    # (migration 0019 adds runs_split_of)
    check(idx == ["runs_mirror", "runs_split_of", "runs_status"],
          "runs keeps its indexes: %s" % idx)
    check(views == 4 and drift == 245, "the views read the rebuilt table")
    check(all(x["delete_brake"] == "on" and x["index_read"] == 0 and x["mirror"] == "default"
              for x in runs), "the new columns have their defaults")
    with env.journal() as db:
        db.execute("UPDATE runs SET kind = 'ids', status = 'held' WHERE id = 1")
        bad = False
        try:
            db.execute("UPDATE runs SET status = 'bogus' WHERE id = 1")
        except sqlite3.IntegrityError:
            bad = True
        db.rollback()
    check(bad, "the widened CHECK takes ids and held, and still refuses other words")
    r = env.run("show", "2", "--json")
    check(r.returncode == 0 and json.loads(r.stdout)["repairedCount"] == 20, "show of an old run")


run_all([
    ("oldjournal", old_journal, {}),
    ("hold", hold_then_allow, {"RECONCILE_ORPHANS": "delete"}),
    ("api", api, {"RECONCILE_ORPHANS": "delete"}),
    ("resume", resume_while_deleting, {"RECONCILE_ORPHANS": "delete",
                                        "RECONCILE_MAX_DELETE_RATIO": "1"}),
    ("mongocut", mongo_cut, {"RECONCILE_ORPHANS": "delete", "own_servers": "ferretdb"}),
    ("renamed", released_rename, {"RECONCILE_ORPHANS": "delete"}),
    ("rearm", resume_rearms, {"RECONCILE_ORPHANS": "delete"})], prefix="brake")
