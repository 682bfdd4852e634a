"""Mirrors: one `serve` with three mirrors from a YAML file (two collections
into two indexes, and the same collection into a second index with its own
settings), each with injected drift. Scheduled runs for each; two mirrors'
runs overlap with RECONCILE_CONCURRENCY=2 and the third waits for a slot;
a second check of a busy mirror gets 409 naming it; kill -9 during mirror
B's run, restart, and only B resumes (its committed batches not re-sent);
/metrics and the status breakdown per mirror; `reconciler runs --mirror`
and the journal views per mirror; the CLI's worst exit code over mirrors.
Then a journal written by the binary before mirrors (commit c0fca45, see
data/make_old_journal.py) opens, migrates and keeps its history under
`default`, and its interrupted run resumes."""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time

from harness import FIXTURE, SRC, check, ext_id, iso_ms, run_all
from service import Service

ADS, USERS = 600, 400


class Mirror:
    """One mirror's collection and index, seen without the reconciler."""

    def __init__(self, env, name, collection, index):
        self.env, self.name, self.collection, self.index = env, name, collection, index

    def fixture(self, *args):
        e = dict(self.env.env, MONGODB_COLLECTION=self.collection, OPENSEARCH_INDEX=self.index)
        r = subprocess.run([FIXTURE] + [str(a) for a in args], env=e, capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError("fixture %s failed: %s" % (args, r.stderr))
        return r.stdout

    def create_index(self):
        props = {"mongo_id": {"type": "keyword"}, "updatedAt": {"type": "date"}}
        st, body = self.env.os("PUT", "/" + self.index, {"mappings": {"properties": props}})
        assert st == 200, body

    def recreate_index(self):
        self.env.os("DELETE", "/" + self.index)
        self.create_index()

    def os_docs(self):
        return self.env.os_docs(self.index)

    def mongo_docs(self):
        out = {}
        for line in self.fixture("ids").splitlines():
            idv, _type, version = line.split("\t")
            out[idv] = int(version) if version else None
        return out

    def in_sync(self):
        return self.mongo_docs() == self.os_docs()

    def bulk(self, actions):
        st, res = self.env.os("POST", "/%s/_bulk?refresh=true" % self.index, actions, ndjson=True)
        assert st == 200 and not res.get("errors"), res


def write(env, name, text):
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def runs_of(env, mirror):
    with env.journal() as db:
        return [dict(r) for r in db.execute(
            "SELECT * FROM runs WHERE mirror = ? ORDER BY id", (mirror,))]


def wait_for(what, fn, timeout=120, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(every)
    check(False, "timed out waiting for " + what)
    return None


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                         r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*)?\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')


def metrics_ok(text):
    """Text format 0.0.4: each family typed once, its samples after its type
    and together, and (with named mirrors) every sample labelled mirror."""
    typed, order, ok = set(), [], text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            name = line.split()[2]
            ok &= name not in typed
            typed.add(name)
            order.append(name)
            continue
        m = METRIC_LINE.match(line)
        if not m or m.group(1) not in typed or m.group(1) != order[-1]:
            print("bad metrics line:", repr(line))
            return False
        ok &= 'mirror="' in (m.group(2) or "")
    return ok


def service_with_three_mirrors(env):
    ads = Mirror(env, "ads", "ads", env.index + "_ads")
    users = Mirror(env, "users", "users", env.index + "_users")
    search = Mirror(env, "ads-search", "ads", env.index + "_ads_search")
    mirrors = [ads, users, search]
    # drift in each: ads 60 missing + 5 stale; users 50 missing;
    # ads-search 30 missing + 5 stale + 3 orphans (its own policy deletes them)
    for m in mirrors:
        m.create_index()
    ads.fixture("load", "--count", ADS)
    users.fixture("load", "--count", USERS)
    ads.fixture("sync", "--skip-every", 10)
    users.fixture("sync", "--skip-every", 8)
    search.fixture("sync", "--skip-every", 20)
    for n in (1, 2, 3, 4, 5):
        canonical, id_type = ads.fixture("idof", n).split()
        env.mongo({"update": "ads", "updates": [
            {"q": {"_id": ext_id(canonical, id_type)},
             "u": {"$set": {"updatedAt": {"$date": "2026-06-01T12:00:00.%03dZ" % n}}}}]})
    orphans = [ads.fixture("idof", 90000 + i).split()[0] for i in range(3)]
    search.bulk([x for i in orphans for x in ({"index": {"_id": i}}, {"title": "gone"})])

    cfg = write(env, "mirrors.yaml", """\
# three mirrors: two collections into two indexes, and ads again into a
# second index with settings of its own
reconciliation_enabled: true        # the environment turns it off for the restart
reconciliation_interval_ms: 3600000
sync_batch_size: 10
sync_batch_delay_ms: 250
mirrors:
  - name: ads
    mongodb_collection: ads
    opensearch_index: %s
    reconciliation_startup_delay_ms: 300
  - name: users
    mongodb_collection: users
    opensearch_index: %s
    reconciliation_startup_delay_ms: 300
  - name: ads-search
    mongodb_collection: ads
    opensearch_index: %s
    opensearch_id_field: ""
    reconcile_orphans: delete
    sync_batch_size: 5
    sync_batch_delay_ms: 150
    reconciliation_startup_delay_ms: 300
    count_monitor_enabled: true
    count_monitor_interval_ms: 1000
    count_monitor_threshold: 1000000
""" % (ads.index, users.index, search.index))
    env.env["RECONCILER_CONFIG"] = cfg

    # 1. each mirror's schedule; two run at once, the third waits for a slot
    svc = Service(env, RECONCILIATION_ENABLED="true", RECONCILE_CONCURRENCY=2)
    try:
        st, body, _ = svc.http("GET", "/api/mirrors")
        check(st == 200 and [m["name"] for m in body["mirrors"]] == ["ads", "users", "ads-search"]
              and body["mirrors"][2]["opensearchIndex"] == search.index,
              "GET /api/mirrors lists the mirrors: %s" % str(body)[:300])
        seen_queued = seen_busy = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (seen_queued and seen_busy):
            st, body, _ = svc.http("GET", "/api/reconciliation/status")
            for m in body.get("mirrors", []):
                if m["queued"] and not seen_queued:
                    st2, b2, _ = svc.http("POST", "/api/mirrors/%s/check" % m["name"])
                    seen_queued = st2 == 409
                    check(st2 == 409 and b2["mirror"] == m["name"] and b2["runId"] is None
                          and "slot" in b2["error"],
                          "a check of a mirror waiting for a slot: 409 naming it: %s" % b2)
                run = m["currentRun"]
                if run and run["runId"] and not seen_busy:
                    st2, b2, _ = svc.http("POST", "/api/mirrors/%s/check" % m["name"])
                    seen_busy = st2 == 409
                    check(st2 == 409 and b2["mirror"] == m["name"] and b2["runId"] == run["runId"]
                          and m["name"] in b2["error"] and str(run["runId"]) in b2["error"],
                          "a second check of a busy mirror: 409 naming mirror and run: %s" % b2)
                    st3, b3, _ = svc.http("POST", "/api/reconciliation/check?mirror=" + m["name"])
                    check(st3 == 409 and b3["mirror"] == m["name"],
                          "the seed's check with ?mirror= of a busy mirror: 409: %s" % b3)
                    st3, b3, _ = svc.http("POST", "/api/reconciliation/check")
                    check(st3 == 409 and b3["mirror"] in ("ads", "users", "ads-search"),
                          "the seed's check of every mirror while one is busy: 409: %s" % b3)
            time.sleep(0.05)
        check(seen_queued, "a mirror waited for a slot (RECONCILE_CONCURRENCY=2, 3 mirrors)")
        check(seen_busy, "a busy mirror was seen")
        wait_for("each mirror's scheduled run to complete", lambda: all(
            runs_of(env, m.name) and runs_of(env, m.name)[0]["status"] == "completed"
            for m in mirrors), timeout=180)
        with env.journal() as db:
            sched = [dict(r) for r in db.execute(
                "SELECT id, mirror, trigger, status, started_at, finished_at FROM runs ORDER BY id")]
        check(sorted(r["mirror"] for r in sched) == ["ads", "ads-search", "users"]
              and all(r["trigger"] == "schedule" for r in sched),
              "one scheduled run per mirror: %s" % [(r["mirror"], r["trigger"]) for r in sched])
        spans = [(iso_ms(r["started_at"]), iso_ms(r["finished_at"])) for r in sched]
        most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
        check(most == 2, "two mirrors' runs overlapped, never three (%d at most)" % most)
        for m in mirrors:
            check(m.in_sync(), "mirror %s: the scheduled run repaired its index" % m.name)
        r = {x["mirror"]: x for x in (runs_of(env, m.name)[0] for m in mirrors)}
        check(r["ads"]["missing_count"] == 60 and r["ads"]["stale_count"] == 5
              and r["ads"]["orphan_count"] == 0,
              "ads journaled its drift: %s" % {k: r["ads"][k] for k in ("missing_count", "stale_count")})
        check(r["users"]["missing_count"] == 50 and r["users"]["repaired_count"] == 50,
              "users journaled its drift")
        check(r["ads-search"]["missing_count"] == 30 and r["ads-search"]["stale_count"] == 5
              and r["ads-search"]["orphan_count"] == 3 and r["ads-search"]["deleted_count"] == 3,
              "ads-search (same collection, its own index and settings) journaled its drift")
        check(json.loads(r["ads-search"]["config"])["SYNC_BATCH_SIZE"] == "5"
              and json.loads(r["ads"]["config"])["SYNC_BATCH_SIZE"] == "10",
              "each run used its mirror's settings")

        def count_checks():
            with env.journal() as db:
                return [json.loads(x[0]) for x in db.execute(
                    "SELECT detail FROM run_events WHERE event = 'count_check'")]
        events = wait_for("ads-search's count monitor", count_checks, timeout=15)
        check(events and all(e["mirror"] == "ads-search" for e in events),
              "only ads-search's count monitor ran, and its checks name it: %s" % events[:1])
        st, body, _ = svc.http("GET", "/api/mirrors/ads-search")
        check(st == 200 and body["mirror"]["countMonitor"]["lastCheckAt"]
              and body["mirror"]["lastRun"]["id"] == r["ads-search"]["id"],
              "GET /api/mirrors/{m}: its count monitor and newest run")

        # 2. kill -9 during users' run
        users.recreate_index()
        st, body, _ = svc.http("POST", "/api/mirrors/users/check", {"wait": False})
        check(st == 202 and body["mirror"] == "users" and body["runId"] > 0,
              "POST /api/mirrors/users/check answers 202 with its run: %s" % body)
        b_run = body["runId"]

        def committed():
            with env.journal() as db:
                return db.execute("SELECT count(*) FROM batches WHERE run_id = ? AND status ="
                                  " 'committed'", (b_run,)).fetchone()[0] >= 4
        wait_for("users' run to commit batches", committed, timeout=60, every=0.1)
        check(svc.proc.poll() is None, "the service was still running users' run")
        svc.proc.send_signal(signal.SIGKILL)
        svc.proc.wait()
    finally:
        svc.stop()
    with env.journal() as db:
        before = {x["batch_no"]: dict(x) for x in db.execute(
            "SELECT * FROM batches WHERE run_id = ?", (b_run,))}
        counts_before = dict(db.execute("SELECT mirror, count(*) FROM runs GROUP BY mirror").fetchall())
    done_before = [b for b in before.values() if b["status"] == "committed"]
    check(runs_of(env, "users")[-1]["status"] == "running", "users' killed run is left running")
    check(len(done_before) >= 4, "users' run had committed batches (%d)" % len(done_before))

    # 3. restart: only users resumes
    svc = Service(env, RECONCILE_CONCURRENCY=2)
    try:
        wait_for("users' run to be resumed and completed",
                 lambda: runs_of(env, "users")[-1]["status"] == "completed", timeout=120)
        with env.journal() as db:
            after = {x["batch_no"]: dict(x) for x in db.execute(
                "SELECT * FROM batches WHERE run_id = ?", (b_run,))}
            counts_after = dict(db.execute("SELECT mirror, count(*) FROM runs GROUP BY mirror").fetchall())
            resumed = [x[0] for x in db.execute(
                "SELECT DISTINCT run_id FROM run_events WHERE event = 'resumed'")]
            docs = db.execute("SELECT SUM(docs) FROM batches WHERE run_id = ?", (b_run,)).fetchone()[0]
        run = runs_of(env, "users")[-1]
        check(run["id"] == b_run and run["resume_count"] == 1, "users' run resumed under its id")
        check(resumed == [b_run], "only users' run was resumed: %s" % resumed)
        check(counts_after == counts_before,
              "no other mirror started a run at the restart: %s -> %s" % (counts_before, counts_after))
        check(all(after[b["batch_no"]] == b for b in done_before),
              "users' committed batches were not sent again (rows unchanged)")
        check(docs == USERS and run["repaired_count"] == USERS,
              "every users document was in exactly one batch (%s)" % docs)
        check(users.in_sync(), "users is in sync after the resume")

        # 4. status, every mirror's check, runs, metrics
        st, body, _ = svc.http("GET", "/api/reconciliation/status")
        names = [m["name"] for m in body["mirrors"]]
        total = sum(m["stats"]["totalChecks"] for m in body["mirrors"])
        check(st == 200 and names == ["ads", "users", "ads-search"]
              and body["stats"]["totalChecks"] == total == 4
              and body["stats"]["documentsSynced"] == sum(m["stats"]["documentsSynced"]
                                                          for m in body["mirrors"])
              and body["stats"]["isRunning"] is False,
              "status sums the seed keys and breaks them down per mirror: %s" % body["stats"])
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        check(st == 200 and body["success"] and body["inSync"] and body["mongoCount"] == ADS + USERS + ADS
              and body["synced"] == 0 and [m["mirror"] for m in body["mirrors"]] == names
              and all(m["inSync"] and m["runId"] > 0 for m in body["mirrors"]),
              "the seed's check runs every mirror, answers summed and per mirror: %s" % str(body)[:400])
        st, body, _ = svc.http("POST", "/api/reconciliation/check?mirror=ads", {"dryRun": True})
        check(st == 200 and body["mirror"] == "ads" and body["mongoCount"] == ADS,
              "the seed's check with ?mirror= runs that mirror: %s" % body)
        st, body, _ = svc.http("GET", "/api/mirrors/users/runs")
        check(st == 200 and {x["mirror"] for x in body["runs"]} == {"users"} and len(body["runs"]) == 3,
              "GET /api/mirrors/users/runs: its runs only")
        st, body, _ = svc.http("GET", "/api/mirrors/users/runs/%d" % b_run)
        check(st == 200 and body["run"]["mirror"] == "users" and body["run"]["resumeCount"] == 1,
              "a mirror's run report")
        st, body, _ = svc.http("GET", "/api/mirrors/ads/runs/%d" % b_run)
        check(st == 404 and "ads" in body["error"], "another mirror's run is not found there: %s" % body)
        st, body, _ = svc.http("GET", "/api/mirrors/users/runs/%d/ids?kind=missing&limit=5" % b_run)
        check(st == 200 and len(body["ids"]) == 5, "a mirror's run's drift ids")
        st, body, _ = svc.http("GET", "/api/mirrors/users/runs/%d/errors" % b_run)
        check(st == 200 and body["errors"] == [], "a mirror's run's errors")
        st, body, _ = svc.http("POST", "/api/mirrors/users/runs/%d/cancel" % b_run)
        check(st == 409 and "completed" in body["error"], "cancel of a finished run of a mirror: 409")
        st, body, _ = svc.http("GET", "/api/mirrors/nope")
        check(st == 404 and "ads, users, ads-search" in body["error"],
              "an unknown mirror: 404 with the names: %s" % body)
        st, body, _ = svc.http("POST", "/api/mirrors/ads-search/full", {"wait": True})
        check(st == 200 and body["mirror"] == "ads-search" and body["synced"] == ADS,
              "POST /api/mirrors/{m}/full re-indexes that mirror: %s" % body)
        st, text, _ = svc.http("GET", "/metrics")
        check(st == 200 and metrics_ok(text), "metrics parse, every series labelled mirror")
        for want in ('reconciler_runs_total{mirror="users",status="completed"} 3',
                     'reconciler_runs_total{mirror="ads",status="completed"} 3',
                     'reconciler_runs_total{mirror="ads-search",status="completed"} 3',
                     'reconciler_drift_found_total{mirror="users",kind="missing"} %d' % (50 + USERS),
                     'reconciler_drift_found_total{mirror="ads-search",kind="orphan"} 3',
                     'reconciler_documents_repaired_total{mirror="ads-search",action="delete"} 3',
                     'reconciler_run_active{mirror="ads"} 0',
                     'reconciler_schedule_enabled{mirror="users"} 0'):
            check(want + "\n" in text, "metrics: %s" % want)
    finally:
        check(svc.stop() == 0, "serve with three mirrors exits 0")

    # 5. the CLI and the journal, per mirror
    r = env.run("runs", "--mirror", "users")
    rows = [x.split() for x in r.stdout.splitlines()[1:]]
    check(r.returncode == 0 and len(rows) == 3 and all(x[1] == "users" for x in rows),
          "reconciler runs --mirror users: its runs only: %s" % r.stdout)
    r = env.run("runs")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 1 + 9, "reconciler runs: every mirror")
    r = env.run("mirrors")
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and [x.split()[0] for x in lines[1:]] == ["ads", "users", "ads-search"]
          and "completed" in lines[2], "reconciler mirrors lists them with their newest run: %s" % r.stdout)
    r = env.run("show", str(b_run), "--mirror", "ads")
    check(r.returncode == 2 and "users" in r.stderr, "show --mirror of another mirror's run: %s" % r.stderr)
    r = env.run("show", str(b_run), "--mirror", "users", "--json")
    check(r.returncode == 0 and json.loads(r.stdout)["mirror"] == "users", "show --mirror")
    r = env.run("check", "--mirror", "nope")
    check(r.returncode == 78 and "no mirror named nope" in r.stderr and "ads, users, ads-search" in r.stderr,
          "an unknown mirror exits 78 with the names: %s" % r.stderr)
    with env.journal() as db:
        v = dict(db.execute("SELECT mirror, count(*) FROM v_runs GROUP BY mirror").fetchall())
        drift = [x[0] for x in db.execute("SELECT DISTINCT mirror FROM v_drift WHERE run_id = ?", (b_run,))]
        cols = [x[1] for x in db.execute("PRAGMA table_info(v_runs)")]
    check(v == {"ads": 3, "users": 3, "ads-search": 3}, "v_runs shows each mirror's runs: %s" % v)
    check(drift == ["users"] and cols[:2] == ["id", "mirror"], "v_runs and v_drift show the mirror")

    # check without --mirror: every mirror in turn, the worst exit code
    users.recreate_index()  # users drifts again
    r = env.run("check", "--dry-run")
    check(r.returncode == 1 and "mirror users: run" in r.stdout and "mirror ads: run" in r.stdout,
          "check --dry-run over every mirror exits 1 (drift in one): %s" % r.stdout[-300:])
    r = env.run("check", "--dry-run", "--mirror", "ads")
    check(r.returncode == 0, "check --dry-run --mirror ads exits 0 (in sync)")
    broken = write(env, "broken.yaml", "mirrors:\n  - name: users\n    mongodb_collection: users\n"
                   "    opensearch_index: %s\n  - name: broken\n"
                   "    opensearch_url: http://127.0.0.1:1\n" % users.index)
    r = env.run("check", "--dry-run", RECONCILER_CONFIG=broken)
    check(r.returncode == 2 and "mirror broken" in r.stderr,
          "an error in one mirror beats drift in another: exit 2 (%d: %s)" % (r.returncode, r.stderr[-300:]))
    r = env.run("check")
    check(r.returncode == 0 and users.in_sync(), "check over every mirror repairs users, exit 0")
    r = env.run("doctor")
    check(r.returncode == 0 and r.stdout.count("mongodb     reachable") == 3,
          "doctor checks every mirror: %s" % r.stdout)
    for m in mirrors:
        env.os("DELETE", "/" + m.index)


def old_journal(env):
    """A journal from before mirrors: it migrates in place, its runs are
    `default`'s, and its interrupted run 4 resumes."""
    src = os.path.join(SRC, "tests", "integration", "data", "old-journal-c0fca45.db")
    db_path = env.env["STATE_DB"]
    shutil.copy(src, db_path)
    old = sqlite3.connect(db_path)
    runs_before = [tuple(x) for x in old.execute("SELECT * FROM runs ORDER BY id")]
    migrated = [x[0] for x in old.execute("SELECT name FROM schema_migrations ORDER BY name")]
    old.close()
    check(migrated == ["0001_initial"] and len(runs_before) == 4,
          "the old journal (the last landed main's) has one migration and four runs")

    r = env.run("runs")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 5, "runs reads the old journal: %s" % r.stderr)
    with env.journal() as db:
        names = [x[0] for x in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
        runs_after = [tuple(x) for x in db.execute("SELECT * FROM runs ORDER BY id")]
        mirrors = [x[0] for x in db.execute("SELECT DISTINCT mirror FROM v_runs")]
        ids = db.execute("SELECT count(*) FROM v_drift WHERE mirror = 'default'").fetchone()[0]
    shipped = sorted(f[:-4] for f in os.listdir(os.path.join(SRC, "migrations"))
                     if f.endswith(".sql"))
    check("0003_mirrors" in names and names == shipped,
          "the journal was migrated in place: %s" % names)
    check([x[:len(runs_before[0])] for x in runs_after] == runs_before and mirrors == ["default"],
          "every old run kept its history, under mirror default")
    check(ids == 245, "the old drift rows are default's (%d)" % ids)
    r = env.run("runs", "--mirror", "default")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 5, "runs --mirror default: the old runs")
    r = env.run("show", "2", "--mirror", "default", "--json")
    check(r.returncode == 0 and json.loads(r.stdout)["repairedCount"] == 20, "show of an old run")

    # the interrupted run 4 is default's: it resumes on the same documents.
    # The same deployment upgraded: its snapshot names this test's servers,
    # database and index (another collection or index would not resume it:
    # docs/JOURNAL.md#commit-protocol-and-resume)
    with env.journal() as db:
        cfg = json.loads(db.execute("SELECT config FROM runs WHERE id = 4").fetchone()[0])
        for k in ("MONGODB_URI", "MONGODB_DATABASE", "MONGODB_COLLECTION", "OPENSEARCH_URL",
                  "OPENSEARCH_INDEX"):
            cfg[k] = env.env[k]
        db.execute("UPDATE runs SET config = ? WHERE id = 4", (json.dumps(cfg),))
    env.create_index()
    env.fixture("load", "--count", 200)
    r = env.run("resume")
    run = env.last_run()
    check(r.returncode == 0 and run["id"] == 4 and run["status"] == "completed"
          and run["resume_count"] == 1 and run["mirror"] == "default",
          "the old interrupted run resumes as default's: %s" % r.stderr[-300:])
    check(env.in_sync(), "and repairs the index")
    # a file with named mirrors does not take default's history as its own
    other = write(env, "named.yaml", "mirrors:\n  - name: ads\n")
    r = env.run("runs", "--mirror", "ads", RECONCILER_CONFIG=other)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 1, "mirror ads has no old runs")


run_all([("mirrors", service_with_three_mirrors), ("oldjournal", old_journal)])
