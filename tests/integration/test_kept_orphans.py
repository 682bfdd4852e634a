"""Orphans the index keeps on purpose (issue 19, item 4): with
OPENSEARCH_KEEP_QUERY, index copies that match the clause and have no
MongoDB document (an archive of documents MongoDB expires by TTL) are
never deleted, never reported as orphans, and counted as kept; orphans
outside the clause still are orphans; a document MongoDB has is compared
as any other, whether or not its copy matches the clause."""
import json

from harness import check, run_all

DATE0 = 1704067200000  # 2024-01-01T00:00:00.000Z
KEEP = '{"range": {"expiresAt": {"lt": "now"}}}'
PAST, FUTURE = "2020-01-01T00:00:00.000Z", "2099-01-01T00:00:00.000Z"


def date(ms):
    return {"$date": {"$numberLong": str(ms)}}


def iso(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def ttl(env):
    env.create_index({"expiresAt": {"type": "date"}})
    # in MongoDB: m0-m5; m0, m1 expire in the past but are still there
    # (TTL runs late) and their copies are stale; m2 (past) is missing
    docs = [{"_id": "m%d" % i, "title": "t%d" % i, "updatedAt": date(DATE0 + 10),
             "expiresAt": date(DATE0 - 86400000 if i < 3 else 4070908800000)} for i in range(6)]
    env.mongo({"insert": "ads", "documents": docs})
    acts = []
    for i in range(6):
        if i == 2:
            continue
        acts += [{"index": {"_id": "m%d" % i}},
                 {"mongo_id": "m%d" % i, "title": "old",
                  "updatedAt": iso(DATE0 if i < 2 else DATE0 + 10),
                  "expiresAt": PAST if i < 3 else FUTURE}]
    # expired in MongoDB, archived in the index: kept
    for i in range(5):
        acts += [{"index": {"_id": "k%d" % i}},
                 {"mongo_id": "k%d" % i, "updatedAt": iso(DATE0), "expiresAt": PAST}]
    # real orphans: not expired, or no expiresAt at all
    for i in range(3):
        acts += [{"index": {"_id": "o%d" % i}},
                 {"mongo_id": "o%d" % i, "updatedAt": iso(DATE0), "expiresAt": FUTURE}]
    acts += [{"index": {"_id": "o3"}}, {"mongo_id": "o3", "updatedAt": iso(DATE0)}]
    env.bulk(acts)
    settings = dict(OPENSEARCH_KEEP_QUERY=KEEP, RECONCILE_ORPHANS="delete",
                    RECONCILE_MAX_DELETE_RATIO=1)

    r = env.run("check", "--dry-run", **settings)
    run = env.last_run()
    check(r.returncode == 1 and (run["orphan_count"], run["stale_count"], run["missing_count"],
                                 run["kept_count"]) == (4, 2, 1, 5)
          and "kept by OPENSEARCH_KEEP_QUERY 5" in r.stdout,
          "ttl dry run: 4 orphans, 2 stale, 1 missing, 5 kept (%d %s %s)"
          % (r.returncode, r.stdout.strip(), r.stderr[-300:]))
    with env.journal() as db:
        rows = {x[0] for x in db.execute("SELECT doc_id FROM run_ids WHERE run_id = ?",
                                         (run["id"],))}
    check(not any(x.startswith("k") for x in rows),
          "ttl dry run: no kept copy is reported (%s)" % sorted(rows))

    r = env.run("check", **settings)
    run = env.last_run()
    have = env.os_docs()
    check(r.returncode == 0 and run["deleted_count"] == 4 and run["kept_count"] == 5,
          "ttl check: the 4 real orphans deleted, 5 kept (%d deleted %s kept %s %s)"
          % (r.returncode, run["deleted_count"], run["kept_count"], r.stderr[-300:]))
    check(all("k%d" % i in have for i in range(5)) and
          not any("o%d" % i in have for i in range(4)),
          "ttl check: the kept copies are all there, the orphans gone (%s)" % sorted(have))
    check(all(have.get("m%d" % i) == DATE0 + 10 for i in range(6)),
          "ttl check: documents MongoDB has are repaired even where their copy matches the "
          "keep clause (%s)" % {k: v for k, v in have.items() if k.startswith("m")})
    r = env.run("check", "--dry-run", **settings)
    run = env.last_run()
    check(r.returncode == 0 and run["kept_count"] == 5,
          "ttl: the dry run after is clean, still 5 kept (%d %s)" % (r.returncode, r.stdout))

    # without the clause they are orphans again (what the setting changes)
    r = env.run("check", "--dry-run")
    check(r.returncode == 1 and env.last_run()["orphan_count"] == 5,
          "ttl: without OPENSEARCH_KEEP_QUERY the 5 are orphans (%d %s)"
          % (r.returncode, r.stdout))


def bad_clause(env):
    for v in ("[1]", "{not json", '"range"'):
        r = env.run("check", "--dry-run", OPENSEARCH_KEEP_QUERY=v)
        check(r.returncode == 78 and "OPENSEARCH_KEEP_QUERY" in r.stderr,
              "bad clause %r: exits 78 naming the setting (%d %s)"
              % (v, r.returncode, r.stderr[-200:]))


def refused_clause(env):
    """QA19 F3: a clause that is JSON but that OpenSearch refuses on this
    index is refused at the run's start (78, the setting and OpenSearch's
    reason named, nothing written), by doctor, and by the API (422)."""
    from service import Service
    env.create_index({"expiresAt": {"type": "date"}, "tag": {"type": "keyword"}})
    env.mongo({"insert": "ads", "documents": [
        {"_id": "m0", "title": "t", "updatedAt": date(DATE0 + 10)}]})
    env.bulk([{"index": {"_id": "o0"}}, {"mongo_id": "o0", "updatedAt": iso(DATE0)},
              {"index": {"_id": "m0"}}, {"mongo_id": "m0", "updatedAt": iso(DATE0)}])
    many = {"bool": {"should": [{"term": {"tag": "t%d" % i}} for i in range(1100)]}}
    bad = [('{"no_such_clause": {"x": 1}}', "no_such_clause"),
           ('{"range": {"expiresAt": {"lt": "notadate"}}}', "notadate"),
           (json.dumps(many), "maxClauseCount")]
    for setting in ("OPENSEARCH_KEEP_QUERY", "OPENSEARCH_QUERY"):
        for clause, why in bad:
            r = env.run("check", RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETE_RATIO=1,
                        **{setting: clause})
            run = env.last_run()
            check(r.returncode == 78 and setting + " is refused by OpenSearch" in r.stderr
                  and why in r.stderr and (run is None or run["status"] == "failed"),
                  "%s %s: the run refuses it, 78, naming the setting and the reason "
                  "(%d %s %s)" % (setting, why, r.returncode, r.stderr[-400:],
                                  run and run["status"]))
        have = env.os_docs()
        check("o0" in have and have.get("m0") == DATE0,
              "%s: nothing was written or deleted (%s)" % (setting, have))
        r = env.run("doctor", **{setting: bad[0][0]})
        check(r.returncode == 1 and setting + " is refused by OpenSearch" in r.stdout + r.stderr,
              "%s: doctor fails naming it (%d %s %s)"
              % (setting, r.returncode, r.stdout[-300:], r.stderr[-300:]))
    svc = Service(env, OPENSEARCH_KEEP_QUERY=bad[0][0])
    try:
        st, body, _ = svc.http("POST", "/api/reconciliation/check", {"wait": True})
        check(st == 422 and "OPENSEARCH_KEEP_QUERY is refused by OpenSearch"
              in body.get("error", ""),
              "API check: 422 naming the setting, not 500 (%d %s)" % (st, body))
    finally:
        svc.stop()
    # a good clause, to show the settings and the data are otherwise fine
    r = env.run("check", "--dry-run", OPENSEARCH_KEEP_QUERY=KEEP)
    check(r.returncode == 1, "a good clause runs (%d %s)" % (r.returncode, r.stderr[-300:]))


def mirror_refused(env):
    """QA19 F3, a mirror's own clause: refused naming the mirror; the other
    mirror still runs."""
    from harness import write
    env.create_index()
    other = env.index + "_b"
    env.os("PUT", "/" + other, {"mappings": {"properties": {"mongo_id": {"type": "keyword"}}}})
    env.mongo({"insert": "ads", "documents": [{"_id": "m0", "updatedAt": date(DATE0)}]})
    path = write(env, "two.yaml", "mirrors:\n"
                 "  - name: a\n    mongodb_collection: ads\n    opensearch_index: %s\n"
                 "  - name: b\n    mongodb_collection: ads\n    opensearch_index: %s\n"
                 "    opensearch_keep_query: '{\"no_such_clause\": {\"x\": 1}}'\n"
                 % (env.index, other))
    try:
        r = env.run("check", "--mirror", "b", RECONCILER_CONFIG=path)
        check(r.returncode == 78
              and "OPENSEARCH_KEEP_QUERY (mirror b) is refused by OpenSearch" in r.stderr
              and "no_such_clause" in r.stderr,
              "mirror b's clause: 78 naming the mirror (%d %s)" % (r.returncode, r.stderr[-400:]))
        r = env.run("check", RECONCILER_CONFIG=path)
        with env.journal() as db:
            runs = dict(db.execute("SELECT mirror, status FROM runs WHERE id IN "
                                   "(SELECT max(id) FROM runs GROUP BY mirror)").fetchall())
        check(r.returncode == 78 and runs.get("a") == "completed" and runs.get("b") == "failed",
              "every mirror: a runs, b refused, 78 (%d %s %s)"
              % (r.returncode, runs, r.stderr[-300:]))
        r = env.run("doctor", RECONCILER_CONFIG=path)
        check(r.returncode == 1 and "OPENSEARCH_KEEP_QUERY (mirror b) is refused"
              in r.stdout + r.stderr,
              "doctor names mirror b's clause (%d %s)" % (r.returncode, r.stderr[-300:]))
    finally:
        env.os("DELETE", "/" + other)


def left_out_kept(env):
    """QA19 F4: a copy the transform leaves out (nil) whose copy matches the
    keep clause is kept, not deleted as an orphan "left out by the
    transform": found by a content compare (h1, same version) and at the
    repair of a stale copy (h0, older version); a left-out copy outside the
    clause (h2) still goes."""
    from harness import write
    env.create_index({"expiresAt": {"type": "date"}})
    script = write(env, "nil.lua", "function transform(doc)\n"
                   "  if doc.hidden then return nil end\n  return doc\nend\n")
    docs = [{"_id": "h%d" % i, "hidden": True, "updatedAt": date(DATE0 + 10)} for i in range(3)]
    docs.append({"_id": "m0", "title": "t", "updatedAt": date(DATE0 + 10)})
    env.mongo({"insert": "ads", "documents": docs})
    env.bulk([{"index": {"_id": "h0"}}, {"mongo_id": "h0", "updatedAt": iso(DATE0),
                                         "expiresAt": PAST},
              {"index": {"_id": "h1"}}, {"mongo_id": "h1", "hidden": True,
                                         "updatedAt": iso(DATE0 + 10), "expiresAt": PAST},
              {"index": {"_id": "h2"}}, {"mongo_id": "h2", "updatedAt": iso(DATE0 + 10),
                                         "expiresAt": FUTURE},
              {"index": {"_id": "m0"}}, {"mongo_id": "m0", "title": "t",
                                         "updatedAt": iso(DATE0 + 10)}])
    settings = dict(OPENSEARCH_KEEP_QUERY=KEEP, RECONCILE_ORPHANS="delete",
                    RECONCILE_MAX_DELETE_RATIO=1, RECONCILE_TRANSFORM=script,
                    RECONCILE_COMPARE="content")
    r = env.run("check", **settings)
    run = env.last_run()
    have = env.os_docs()
    check(r.returncode == 0 and "h0" in have and "h1" in have and "h2" not in have
          and run["kept_count"] == 2,
          "left out by the transform: copies matching the keep clause kept (2), the other "
          "deleted (%d kept %s %s %s)" % (r.returncode, run["kept_count"], sorted(have),
                                          r.stderr[-400:]))
    with env.journal() as db:
        rows = [tuple(x) for x in db.execute(
            "SELECT doc_id, kind, status FROM run_ids WHERE run_id = ? AND kind = 'orphan'",
            (run["id"],))]
    check(not any(x[0] in ("h0", "h1") for x in rows),
          "left out by the transform: no orphan row for a kept copy (%s)" % rows)


def brake_without_kept(env):
    """QA19 F5: the brake's ratio leaves the kept copies out of the index's
    size: 10 orphans of 110 live copies are 9% (held), not 2% of the 510
    copies an archive of 400 makes."""
    env.create_index({"expiresAt": {"type": "date"}})
    env.mongo({"insert": "ads", "documents": [
        {"_id": "m%03d" % i, "updatedAt": date(DATE0)} for i in range(100)]})
    acts = []
    for i in range(110):
        acts += [{"index": {"_id": "m%03d" % i}},
                 {"mongo_id": "m%03d" % i, "updatedAt": iso(DATE0), "expiresAt": FUTURE}]
    for i in range(400):
        acts += [{"index": {"_id": "k%03d" % i}},
                 {"mongo_id": "k%03d" % i, "updatedAt": iso(DATE0), "expiresAt": PAST}]
    env.bulk(acts)
    r = env.run("check", OPENSEARCH_KEEP_QUERY=KEEP, RECONCILE_ORPHANS="delete")
    run = env.last_run()
    have = env.os_docs()
    check(r.returncode == 4 and run["status"] == "held" and len(have) == 510
          and run["kept_count"] == 400 and "not counting 400" in (run["error"] or ""),
          "brake: 10 orphans of 110 live copies hold, whatever the 400 kept (%d %s %d %s)"
          % (r.returncode, run["status"], len(have), run["error"]))


def counts_without_kept(env):
    """QA19 F6: doctor's and the count monitor's index count leave the kept
    copies out: an index in sync with 50 kept copies does not start a run."""
    import time
    from service import Service
    env.create_index({"expiresAt": {"type": "date"}})
    env.mongo({"insert": "ads", "documents": [
        {"_id": "m%d" % i, "updatedAt": date(DATE0)} for i in range(5)]})
    acts = []
    for i in range(5):
        acts += [{"index": {"_id": "m%d" % i}}, {"mongo_id": "m%d" % i, "updatedAt": iso(DATE0)}]
    for i in range(50):
        acts += [{"index": {"_id": "k%02d" % i}},
                 {"mongo_id": "k%02d" % i, "updatedAt": iso(DATE0), "expiresAt": PAST}]
    env.bulk(acts)
    r = env.run("doctor", OPENSEARCH_KEEP_QUERY=KEEP)
    line = [x for x in r.stdout.splitlines() if x.startswith("opensearch")]
    check(r.returncode == 0 and line and "documents 5," in line[0]
          and "OPENSEARCH_KEEP_QUERY" in line[0],
          "doctor counts the index without the kept copies (%d %s)" % (r.returncode, line))
    svc = Service(env, OPENSEARCH_KEEP_QUERY=KEEP, COUNT_MONITOR_ENABLED="true",
                  COUNT_MONITOR_INTERVAL_MS=1000, COUNT_MONITOR_THRESHOLD=10)
    events = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not events:
        time.sleep(0.5)
        with env.journal() as db:
            events = [json.loads(x[0]) for x in db.execute(
                "SELECT detail FROM run_events WHERE event = 'count_check' ORDER BY id")]
    time.sleep(1.5)
    svc.stop()
    with env.journal() as db:
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    check(events and events[0].get("opensearchCount") == 5 and not events[0]["triggered"]
          and runs == 0,
          "the count monitor leaves the kept copies out: no run (%s, %d runs)"
          % (events[:1], runs))


def kept_said(env):
    """QA19 F7: the kept copies are said apart from orphans a report policy
    leaves: show's text, diff (state kept, why), /metrics, the summary."""
    from service import Service
    env.create_index({"expiresAt": {"type": "date"}})
    env.mongo({"insert": "ads", "documents": [{"_id": "m0", "updatedAt": date(DATE0)}]})
    acts = [{"index": {"_id": "m0"}}, {"mongo_id": "m0", "updatedAt": iso(DATE0)},
            {"index": {"_id": "o0"}}, {"mongo_id": "o0", "updatedAt": iso(DATE0)}]
    for i in range(3):
        acts += [{"index": {"_id": "k%d" % i}},
                 {"mongo_id": "k%d" % i, "updatedAt": iso(DATE0), "expiresAt": PAST}]
    env.bulk(acts)
    r = env.run("check", OPENSEARCH_KEEP_QUERY=KEEP)
    run = env.last_run()
    check("kept by OPENSEARCH_KEEP_QUERY 3" in r.stdout
          and "1 orphan not deleted: RECONCILE_ORPHANS=report" in r.stdout
          and "orphan kept" not in r.stdout,
          "the summary says the two apart (%s)" % r.stdout.strip())
    r = env.run("show", str(run["id"]))
    check(r.returncode == 0 and "kept       3 by OPENSEARCH_KEEP_QUERY; orphans not deleted 1"
          in r.stdout, "show's text says the kept count (%s)" % r.stdout[-600:])
    r = env.run("diff", "k0", OPENSEARCH_KEEP_QUERY=KEEP)
    d = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    d = d.get("diff", d)
    check(r.returncode == 0 and d.get("state") == "kept"
          and "OPENSEARCH_KEEP_QUERY" in d.get("why", ""),
          "diff of a kept copy: state kept, with why (%d %s)" % (r.returncode, r.stdout[:400]))
    r = env.run("diff", "o0", OPENSEARCH_KEEP_QUERY=KEEP)
    check(r.returncode == 1 and '"state":"orphan"' in r.stdout.replace(" ", ""),
          "diff of a real orphan: still orphan (%d %s)" % (r.returncode, r.stdout[:300]))
    svc = Service(env, OPENSEARCH_KEEP_QUERY=KEEP)
    try:
        st, text, _ = svc.http("GET", "/metrics")
        check(st == 200 and "\nreconciler_kept_copies 3\n" in text
              and "# TYPE reconciler_kept_copies gauge" in text,
              "/metrics: reconciler_kept_copies 3 (%s)"
              % [x for x in text.splitlines() if "kept" in x])
    finally:
        svc.stop()


run_all([ttl, bad_clause, refused_clause, mirror_refused, left_out_kept, brake_without_kept,
         counts_without_kept, kept_said], prefix="ko_")
