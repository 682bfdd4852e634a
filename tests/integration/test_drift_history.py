"""Drift across runs (docs/JOURNAL.md "Drift across runs"): a drifted id's
history over the runs of its mirror (first and last seen, times, streak,
the run that repaired it, recurring), the drift route and command, the
NDJSON export of a run (CLI and HTTP, equal to the ids route's rows), bad
parameters answered 400, and an old journal's history backfilled."""
import json
import os
import shutil
import sqlite3
import urllib.error
import urllib.request

from harness import SRC, check, ext_id, run_all
from service import Service


def idof(env, n):
    return env.fixture("idof", n, "oid").split()[0]


def delete_from_index(env, ids):
    env.bulk([{"delete": {"_id": i}} for i in ids])


def history(env, ids=None):
    with env.journal() as db:
        rows = [dict(r) for r in db.execute("SELECT * FROM v_drift_history ORDER BY doc_id")]
    return {r["doc_id"]: r for r in rows if ids is None or r["doc_id"] in ids}


def drift_cli(env, *args):
    r = env.run("drift", "--ndjson", *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines()]


def get_raw(svc, path):
    req = urllib.request.Request(svc.base + path)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def recurring_and_repairs(env):
    env.create_index()
    env.fixture("load", "--count", 100)
    env.fixture("sync", "--skip-every", 10)  # documents 0, 10, 20, ... missing

    # a dry run three times: the same ids, in a row
    for n in (1, 2):
        r = env.run("check", "--dry-run")
        check(r.returncode == 1, "dry run %d finds drift (%d)" % (n, r.returncode))
    with env.journal() as db:
        missing = {x[0] for x in db.execute("SELECT doc_id FROM run_ids WHERE run_id = 1")}
    check(len(missing) == 10, "ten ids missing")
    h = history(env, missing)
    check(len(h) == 10 and all(x["times_seen"] == 2 and x["streak"] == 2 and not x["recurring"]
                               for x in h.values()),
          "after two dry runs: seen twice in a row, not recurring yet: %s"
          % list(h.values())[:1])
    check(drift_cli(env, "--recurring") == [], "drift --recurring lists nothing yet")
    r = env.run("check", "--dry-run")
    h = history(env, missing)
    check(all(x["streak"] == 3 and x["recurring"] and x["recurring_run"] == 3
              and x["first_run"] == 1 and x["last_run"] == 3 and x["open"]
              and x["last_status"] == "reported" for x in h.values()),
          "missing in three runs in a row: recurring since run 3, open: %s"
          % list(h.values())[:1])
    rec = drift_cli(env, "--recurring")
    check({x["id"] for x in rec} == missing and all(x["recurringRun"] == 3 for x in rec),
          "drift --recurring lists the ten ids, recurring since run 3")
    check({x["id"] for x in drift_cli(env)} == missing, "drift (open) lists them too")
    r = env.run("drift", "--recurring")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 11 and "missing" in r.stdout,
          "drift --recurring prints a table: %s" % r.stdout[:300])

    # a check repairs them: the history names the run
    r = env.run("check")
    check(r.returncode == 0 and env.in_sync(), "check 4 repairs: %s" % r.stderr[-300:])
    h = history(env, missing)
    check(all(x["repaired_run"] == 4 and x["repaired_at"] and x["repairs"] == 1
              and x["times_seen"] == 4 and not x["open"] and x["last_status"] == "done"
              for x in h.values()),
          "repaired ids show run 4 fixed them: %s" % list(h.values())[:1])
    check(drift_cli(env) == [], "no open drift after the repair")
    rows = drift_cli(env, "--all", "--kind", "missing")
    check(len(rows) == 10 and all(x["repairedRun"] == 4 and x["repairedAt"] for x in rows),
          "drift --all shows the repairing run and time")

    # the live syncer keeps dropping one: deleted from the index after each repair
    dropped = sorted(set(env.os_docs()) - missing)[0]  # was in sync so far
    for run in (5, 6, 7):
        delete_from_index(env, [dropped])
        r = env.run("check")
        check(r.returncode == 0, "check %d repairs the dropped id" % run)
        x = history(env, {dropped})[dropped]
        check(x["last_run"] == run and x["repaired_run"] == run and x["times_seen"] == run - 4
              and x["streak"] == run - 4 and x["returns"] == run - 5,
              "run %d: seen %d times in a row, repaired by run %d, back %d times: %s"
              % (run, run - 4, run, run - 5, x))
        check(bool(x["recurring"]) == (run >= 6) and x["recurring_run"] == (6 if run >= 6 else None),
              "run %d: recurring once it came back after a repair (%s)" % (run, x["recurring_run"]))
    check(env.in_sync(), "the index equals MongoDB")
    # the ten repaired in run 4 were not seen since: their streak is over
    h = history(env, missing)
    check(all(x["last_run"] == 4 and not x["open"] and x["recurring"] for x in h.values()),
          "ids not seen since stay recurring (history) but are not open")

    # the service: drift route, its paging and its 400s, metrics
    svc = Service(env)
    try:
        st, body, _ = svc.http("GET", "/api/mirrors/default/drift?state=recurring")
        check(st == 200 and {x["id"] for x in body["drift"]} == missing | {dropped}
              and body["state"] == "recurring" and body["nextAfter"] is None,
              "GET .../drift?state=recurring: the ten and the dropped one (%s)" % st)
        x = [d for d in body["drift"] if d["id"] == dropped][0]
        check(x["recurring"] is True and x["open"] is False and x["repairedRun"] == 7
              and x["returns"] == 2 and x["lastStatus"] == "done",
              "a row says recurring, repaired by run 7, not open: %s" % x)
        st, body, _ = svc.http("GET", "/api/mirrors/default/drift")
        check(st == 200 and body["drift"] == [] and body["state"] == "open",
              "open drift: none after the repairs")
        seen, after, pages = [], "", 0
        while True:
            st, body, _ = svc.http("GET", "/api/reconciliation/drift?state=all&limit=3"
                                   + ("&after=" + after if after else ""))
            pages += 1
            seen += [x["id"] for x in body["drift"]]
            after = body["nextAfter"]
            if not after or pages > 20:
                break
        check(sorted(seen) == sorted(missing | {dropped}) and len(seen) == 11 and pages == 4,
              "paging by 3 gives each id once (%d pages)" % pages)
        for q in ("state=bogus", "state=", "limit=0", "limit=10001", "limit=abc",
                  "kind=lost", "kind=", "mirror=nope"):
            st, body, _ = svc.http("GET", "/api/reconciliation/drift?" + q)
            want = 404 if q.startswith("mirror") else 400
            check(st == want and body["success"] is False and body["error"],
                  "drift?%s answers %d: %s" % (q, want, body))
        st, body, _ = svc.http("GET", "/api/mirrors/nope/drift")
        check(st == 404, "an unknown mirror's drift is 404")
        st, text, _ = svc.http("GET", "/metrics")
        check("reconciler_drift_recurring 1" in text,
              "metrics: one recurring id in the latest pass (repaired there)")
        check('reconciler_drift_open{kind="missing"} 0' in text, "metrics: no open drift")
    finally:
        svc.stop()
    # a dry run sees the dropped id again: open and recurring in the metrics
    delete_from_index(env, [dropped])
    env.run("check", "--dry-run")
    svc = Service(env)
    try:
        st, text, _ = svc.http("GET", "/metrics")
        check('reconciler_drift_open{kind="missing"} 1' in text
              and "reconciler_drift_recurring 1" in text,
              "metrics: one open missing id, recurring")
        st, body, _ = svc.http("GET", "/api/mirrors/default/drift?kind=missing")
        check(st == 200 and [x["id"] for x in body["drift"]] == [dropped]
              and body["drift"][0]["open"] is True,
              "GET .../drift: the dropped id is open")
    finally:
        svc.stop()


def ndjson_export(env):
    env.create_index()
    env.fixture("load", "--count", 2400)
    env.fixture("sync", "--skip-every", 2)  # 1,200 missing: over one page of the export
    env.bulk([x for i in range(30) for x in (
        {"index": {"_id": "orphan-%02d" % i}},
        {"mongo_id": "orphan-%02d" % i, "updatedAt": "2024-01-01T00:00:00Z"})])
    r = env.run("check", "--dry-run")
    check(r.returncode == 1, "a dry run finds 1,200 missing and 30 orphans")
    r = env.run("show", "1", "--ndjson")
    cli_rows = [json.loads(x) for x in r.stdout.splitlines()]
    check(r.returncode == 0 and len(cli_rows) == 1230, "show 1 --ndjson: 1,230 lines (%d)"
          % len(cli_rows))
    r = env.run("show", "1", "--ndjson", "--mirror", "default")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 1230, "with --mirror too")
    r = env.run("show", "99", "--ndjson")
    check(r.returncode == 2 and "no run 99" in r.stderr, "show of no run: exit 2")
    svc = Service(env)
    try:
        st, body, _ = svc.http("GET", "/api/reconciliation/runs/1/ids?limit=10000")
        route_rows = body["ids"]
        check(st == 200 and len(route_rows) == 1230, "the ids route has 1,230 rows")
        key = lambda x: json.dumps(x, sort_keys=True)
        check(sorted(map(key, cli_rows)) == sorted(map(key, route_rows)),
              "show --ndjson equals the ids route's rows")
        for path in ("/api/reconciliation/runs/1/ids.ndjson",
                     "/api/mirrors/default/runs/1/ids.ndjson"):
            st, headers, text = get_raw(svc, path)
            lines = text.splitlines()
            rows = [json.loads(x) for x in lines]
            check(st == 200 and headers.get("Content-Type") == "application/x-ndjson"
                  and text.endswith("\n"), "%s: 200 application/x-ndjson" % path)
            check(sorted(map(key, rows)) == sorted(map(key, route_rows)) and len(rows) == 1230,
                  "%s equals the ids route's rows (%d)" % (path, len(rows)))
            check(len({key(x) for x in rows}) == len(rows), "%s: no row twice" % path)
        st, _, text = get_raw(svc, "/api/reconciliation/runs/1/ids.ndjson?kind=orphan")
        rows = [json.loads(x) for x in text.splitlines()]
        check(st == 200 and len(rows) == 30 and all(x["kind"] == "orphan" for x in rows),
              "ids.ndjson?kind=orphan: the 30 orphans")
        for path, want in (("/api/reconciliation/runs/1/ids.ndjson?kind=bogus", 400),
                           ("/api/reconciliation/runs/abc/ids.ndjson", 400),
                           ("/api/reconciliation/runs/0/ids.ndjson", 400),
                           ("/api/reconciliation/runs/99/ids.ndjson", 404),
                           ("/api/mirrors/nope/runs/1/ids.ndjson", 404)):
            st, headers, text = get_raw(svc, path)
            check(st == want and json.loads(text)["success"] is False,
                  "%s answers %d (%d)" % (path, want, st))
    finally:
        svc.stop()


def old_journal(env):
    """The journal of c0fca45 (before mirrors) migrates; its drift history is
    read from its runs: ids seen in runs 1, 2 and (after run 2 repaired
    them) 4 came back after a repair."""
    src = os.path.join(SRC, "tests", "integration", "data", "old-journal-c0fca45.db")
    shutil.copy(src, env.env["STATE_DB"])
    rows = drift_cli(env, "--all")
    with env.journal() as db:
        keys = db.execute("SELECT count(*) FROM (SELECT DISTINCT kind, doc_id, id_type, os_index,"
                          " os_id, routing FROM run_ids)").fetchone()[0]
        names = [x[0] for x in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
    check("0007_drift_history" in names and len(rows) == keys == 205,
          "the old journal migrates; each drifted id has its history (%d of %d)"
          % (len(rows), keys))
    rec = drift_cli(env, "--recurring")
    check(len(rec) == 20 and all(x["firstRun"] == 1 and x["lastRun"] == 4 and x["returns"] == 1
                                 and x["recurringRun"] == 4 for x in rec),
          "the 20 ids repaired by run 2 and seen again in run 4 are recurring: %s" % rec[:1])
    orphans = [x for x in rows if x["kind"] == "orphan"]
    check(len(orphans) == 5 and all(x["open"] is True and x["lastRun"] == 3 for x in orphans),
          "run 3's orphans (reported, never deleted) are open: run 3 is the latest pass "
          "(run 4 is unfinished): %s" % orphans[:1])


run_all([("recurring", recurring_and_repairs), ("ndjson", ndjson_export),
         ("oldjournal", old_journal)], prefix="drift_")
