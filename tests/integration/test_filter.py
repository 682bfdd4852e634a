"""RECONCILE_FILTER and OPENSEARCH_QUERY on the real servers: documents
outside the filter are not missing; a copy whose document left the filter
is an orphan with that reason (deleted only with RECONCILE_ORPHANS=delete),
and one whose document matches is never deleted; the transform returning
nil is treated like the filter; index documents outside OPENSEARCH_QUERY
are never this mirror's; two collections share one index (two mirrors of a
YAML file); bad values exit 78; an interrupted run resumes with a filter."""
import datetime
import json
import os
import signal
import time

from harness import Env, check, done

DATE0 = 1704067200000
ACTIVE = '{"status": "active"}'


def oid(n, prefix="65a0"):
    return "%s%020x" % (prefix, n)


def iso(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def mdoc(idv, status, ms=DATE0, **extra):
    d = {"_id": {"$oid": idv} if len(idv) == 24 else idv, "status": status,
         "title": "doc " + idv, "updatedAt": {"$date": {"$numberLong": str(ms)}}}
    d.update(extra)
    return d


def index_docs(env, docs):
    """Indexes {id: source} as the live pipeline would have."""
    actions = []
    for idv, src in docs.items():
        actions.append({"index": {"_index": env.index, "_id": idv}})
        actions.append(src)
    if actions:
        env.bulk(actions)


def osrc(idv, status, ms=DATE0, **extra):
    s = {"mongo_id": idv, "status": status, "title": "doc " + idv, "updatedAt": iso(ms)}
    s.update(extra)
    return s


def drift(env, run_id):
    with env.journal() as db:
        return {(r["kind"], r["doc_id"]): (r["status"], r["reason"]) for r in db.execute(
            "SELECT kind, doc_id, status, reason FROM run_ids WHERE run_id = ?", (run_id,))}


def write(env, name, text):
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


# ---- 1. the filter ----------------------------------------------------------
def filter_scenario():
    env = Env("filter", RECONCILE_MAX_DELETE_RATIO=1, RECONCILE_FILTER=ACTIVE)
    try:
        env.create_index({"status": {"type": "keyword"}})
        # 12 ObjectId documents (every third inactive) and two string ids
        docs = [mdoc(oid(i), "inactive" if i % 3 == 0 else "active") for i in range(1, 13)]
        docs += [mdoc("s-active", "active"), mdoc("s-inactive", "inactive")]
        env.mongo({"insert": "ads", "documents": docs})
        active = {oid(i) for i in range(1, 13) if i % 3} | {"s-active"}
        missing = {oid(2), oid(7)}
        left = {oid(3), "s-inactive"}  # exist, outside the filter, copies indexed
        gone = {oid(40)}               # no document at all
        idx = {i: osrc(i, "active") for i in active - missing}
        idx.update({i: osrc(i, "inactive") for i in left})
        idx.update({i: osrc(i, "active") for i in gone})
        index_docs(env, idx)

        r = env.run("check", "--dry-run")
        run = env.last_run()
        rows = drift(env, run["id"])
        got_missing = {k[1] for k in rows if k[0] == "missing"}
        check(r.returncode == 1, "filter: a dry run finds drift (exit %d)" % r.returncode)
        check(got_missing == missing,
              "filter: only documents inside the filter are missing (%s)" % sorted(got_missing))
        check(all(rows.get(("orphan", i), (None, None))[1] == "left the filter" for i in left),
              "filter: copies whose document left the filter are orphans with that reason (%s)"
              % {k: v for k, v in rows.items() if k[0] == "orphan"})
        check(rows.get(("orphan", oid(40))) == ("reported", None),
              "filter: a copy whose document is gone is an orphan without that reason")
        check(run["orphan_count"] == 3 and run["stale_count"] == 0,
              "filter: three orphans, nothing stale (%s, %s)" % (run["orphan_count"], run["stale_count"]))
        check(run["mongo_count"] == len(active),
              "filter: MongoDB is counted with the filter (%s)" % run["mongo_count"])

        r = env.run("doctor")
        check(r.returncode == 0 and "documents %d matching RECONCILE_FILTER" % len(active) in r.stdout,
              "filter: doctor counts with the filter: %s" % r.stdout.strip())

        # report (the default): missing repaired, orphans kept
        r = env.run("check")
        run = env.last_run()
        osd = env.os_docs()
        check(r.returncode == 0 and run["repaired_count"] == 2 and run["deleted_count"] == 0,
              "filter: check repairs the two missing and deletes nothing (exit %d, %s, %s)"
              % (r.returncode, run["repaired_count"], run["deleted_count"]))
        check(left <= set(osd) and gone <= set(osd), "filter: report keeps the orphans")
        check(not ({oid(i) for i in (6, 9, 12)} & set(osd)),
              "filter: documents outside the filter are not written")

        r = env.run("check", RECONCILE_ORPHANS="delete")
        run = env.last_run()
        rows = drift(env, run["id"])
        osd = env.os_docs()
        check(r.returncode == 0 and run["deleted_count"] == 3,
              "filter: delete removes the three orphans (exit %d, %s): %s"
              % (r.returncode, run["deleted_count"], r.stderr[-300:]))
        check(rows.get(("orphan", oid(3))) == ("done", "left the filter"),
              "filter: the reason stays on a deleted orphan (%s)" % (rows.get(("orphan", oid(3))),))
        check(set(osd) == active,
              "filter: the index holds exactly the documents the filter matches (%s)"
              % sorted(set(osd) ^ active))
        r = env.run("check", "--dry-run", RECONCILE_ORPHANS="delete")
        check(r.returncode == 0, "filter: the next dry run is clean (exit %d)" % r.returncode)

        # a document that matches is never deleted, even where its copy
        # looks like an orphan to the string sweep (an integer id, "42" in
        # the index): it is asked of MongoDB under the filter. One that does
        # not match (43) left the filter.
        ms = {"$date": {"$numberLong": str(DATE0)}}
        env.mongo({"insert": "ads", "documents": [
            {"_id": 42, "status": "active", "updatedAt": ms},
            {"_id": 43, "status": "inactive", "updatedAt": ms}]})
        index_docs(env, {"42": osrc("42", "active"), "43": osrc("43", "inactive")})
        r = env.run("check", RECONCILE_ORPHANS="delete")
        run = env.last_run()
        rows = drift(env, run["id"])
        osd = env.os_docs()
        check("42" in osd and active <= set(osd),
              "filter: a document inside the filter is never deleted (%s)" % r.stdout.strip())
        check("43" not in osd and rows.get(("orphan", "43")) == ("done", "left the filter")
              and run["deleted_count"] == 1,
              "filter: an integer-id copy outside the filter is deleted with that reason (%s)"
              % rows)
    finally:
        env.cleanup()


# ---- 1b. the transform returning nil: treated like the filter ---------------
NIL_SCRIPT = """
function transform(doc)
  if doc.hidden then return nil end
  return {title = doc.title, status = doc.status, updatedAt = doc.updatedAt}
end
"""


def transform_nil_scenario():
    env = Env("tnil", RECONCILE_MAX_DELETE_RATIO=1)
    try:
        env.create_index()
        script = write(env, "t.lua", NIL_SCRIPT)
        env.mongo({"insert": "ads", "documents": [
            mdoc(oid(1), "active"), mdoc(oid(2), "active", DATE0 + 5000, hidden=True),
            mdoc(oid(3), "active", DATE0, hidden=True)]})
        # oid 2 was indexed before it was hidden (its copy is older: stale)
        index_docs(env, {oid(1): osrc(oid(1), "active"), oid(2): osrc(oid(2), "active")})
        r = env.run("check", RECONCILE_TRANSFORM=script)
        run = env.last_run()
        rows = drift(env, run["id"])
        check(rows.get(("orphan", oid(2))) == ("reported", "left out by the transform"),
              "transform nil: a stale copy the script leaves out is an orphan with that reason (%s)"
              % rows)
        check(("missing", oid(3)) not in rows and oid(3) not in env.os_docs(),
              "transform nil: a missing document the script leaves out is not missing, "
              "not written (%s)" % rows)
        check(r.returncode == 0 and oid(2) in env.os_docs(),
              "transform nil: report keeps the copy (exit %d)" % r.returncode)
        r = env.run("check", RECONCILE_TRANSFORM=script, RECONCILE_ORPHANS="delete")
        run = env.last_run()
        rows = drift(env, run["id"])
        check(rows.get(("orphan", oid(2))) == ("done", "left out by the transform")
              and oid(2) not in env.os_docs() and oid(1) in env.os_docs(),
              "transform nil: delete removes that copy, and only it (%s)" % rows)
    finally:
        env.cleanup()


# ---- 2. OPENSEARCH_QUERY ------------------------------------------------------
SOURCE_SCRIPT = """
function transform(doc)
  return {title = doc.title, status = doc.status, updatedAt = doc.updatedAt, source = "%s"}
end
"""


def query_scenario():
    env = Env("osq", RECONCILE_MAX_DELETE_RATIO=1, OPENSEARCH_QUERY='{"term": {"source": "ads"}}', RECONCILE_ORPHANS="delete")
    try:
        env.create_index({"source": {"type": "keyword"}})
        script = write(env, "ads.lua", SOURCE_SCRIPT % "ads")
        env.mongo({"insert": "ads", "documents": [mdoc(oid(i), "active") for i in range(1, 6)]})
        idx = {oid(i): osrc(oid(i), "active", source="ads") for i in (1, 2, 3)}
        idx[oid(9)] = osrc(oid(9), "active", source="ads")       # this mirror's orphan
        for i in range(20, 26):                                  # another source's documents
            idx[oid(i)] = osrc(oid(i), "active", source="other")
        index_docs(env, idx)

        r = env.run("check", "--dry-run", RECONCILE_TRANSFORM=script)
        run = env.last_run()
        rows = drift(env, run["id"])
        check(run["opensearch_count"] == 4,
              "query: the index is counted with OPENSEARCH_QUERY (%s)" % run["opensearch_count"])
        check({k for k in rows} == {("missing", oid(4)), ("missing", oid(5)), ("orphan", oid(9))},
              "query: only this mirror's documents are judged (%s)" % sorted(rows))
        r = env.run("check", RECONCILE_TRANSFORM=script)
        osd = env.os_docs()
        st, res = env.os("POST", "/%s/_search" % env.index,
                         {"size": 100, "query": {"term": {"source": "ads"}}})
        ads = {h["_id"] for h in res["hits"]["hits"]}
        check(r.returncode == 0 and ads == {oid(i) for i in range(1, 6)},
              "query: check repairs this mirror's drift; repaired copies match the query (%s)"
              % sorted(ads))
        check(oid(9) not in osd and all(oid(i) in osd for i in range(20, 26)),
              "query: its orphan is deleted, the other source's documents are not")
        r = env.run("check", "--dry-run", RECONCILE_TRANSFORM=script)
        check(r.returncode == 0, "query: the next dry run is clean (exit %d)" % r.returncode)
        r = env.run("doctor")
        check("documents 5 matching OPENSEARCH_QUERY" in r.stdout,
              "query: doctor counts with the query: %s" % r.stdout.strip())
        # a mirror whose body lacks what the query selects: warned
        env.mongo({"insert": "ads", "documents": [mdoc(oid(6), "active")]})
        r = env.run("check")
        run = env.last_run()
        with env.journal() as db:
            warn = [x[0] for x in db.execute(
                "SELECT detail FROM run_events WHERE run_id = ? AND event = 'warning'", (run["id"],))]
        check(any("do not match OPENSEARCH_QUERY" in w for w in warn),
              "query: a repaired document outside the query is warned about (%s)" % warn)
    finally:
        env.cleanup()


# ---- 3. two collections, one index ------------------------------------------
def shared_index_scenario():
    env = Env("shared", RECONCILE_MAX_DELETE_RATIO=1)
    try:
        env.create_index({"source": {"type": "keyword"}})
        ads_lua = write(env, "ads.lua", SOURCE_SCRIPT % "ads")
        users_lua = write(env, "users.lua", SOURCE_SCRIPT % "users")
        cfg = write(env, "reconciler.yaml", """
reconcile_orphans: delete
opensearch_index: %s
mirrors:
  - name: ads
    mongodb_collection: ads
    opensearch_query: '{"term": {"source": "ads"}}'
    reconcile_transform: %s
  - name: users
    mongodb_collection: users
    opensearch_query: '{"term": {"source": "users"}}'
    reconcile_transform: %s
""" % (env.index, ads_lua, users_lua))
        env.env.pop("OPENSEARCH_INDEX", None)
        env.env.pop("MONGODB_COLLECTION", None)
        env.env["RECONCILER_CONFIG"] = cfg
        ads = {oid(i, "65a1"): i for i in range(1, 8)}
        users = {oid(i, "65b2"): i for i in range(1, 8)}
        env.mongo({"insert": "ads", "documents": [
            mdoc(i, "active", DATE0 + n) for i, n in ads.items()]})
        env.mongo({"insert": "users", "documents": [
            mdoc(i, "active", DATE0 + n) for i, n in users.items()]})
        a = sorted(ads)
        u = sorted(users)
        idx = {}
        for i in a[1:]:
            idx[i] = osrc(i, "active", DATE0 + ads[i], source="ads")
        idx[a[2]]["updatedAt"] = iso(DATE0)                      # ads stale
        idx[oid(99, "65a1")] = osrc(oid(99, "65a1"), "active", source="ads")   # ads orphan
        for i in u[:-1]:
            idx[i] = osrc(i, "active", DATE0 + users[i], source="users")
        idx[oid(99, "65b2")] = osrc(oid(99, "65b2"), "active", source="users")  # users orphan
        index_docs(env, idx)

        r = env.run("check", "--dry-run", "--mirror", "ads")
        run = env.last_run()
        rows = drift(env, run["id"])
        check(set(rows) == {("missing", a[0]), ("stale", a[2]), ("orphan", oid(99, "65a1"))},
              "shared: the ads mirror sees only its own drift (%s)" % sorted(rows))
        check(run["opensearch_count"] == 7 and run["mongo_count"] == 7,
              "shared: each side counted as the mirror's (%s, %s)"
              % (run["mongo_count"], run["opensearch_count"]))

        before = env.os_docs()
        r = env.run("check", "--mirror", "ads")
        after = env.os_docs()
        check(r.returncode == 0, "shared: check of ads exits 0: %s" % r.stderr[-300:])
        check(all(after.get(i) == before.get(i) for i in u + [oid(99, "65b2")]),
              "shared: a check of ads leaves every users copy alone (none deleted or rewritten)")
        check(set(a) <= set(after) and oid(99, "65a1") not in after
              and after[a[2]] == DATE0 + ads[a[2]],
              "shared: ads drift repaired (missing, stale, orphan)")
        check(u[-1] not in after and oid(99, "65b2") in after,
              "shared: the users drift is still there for its own mirror")

        r = env.run("check", "--mirror", "users")
        after2 = env.os_docs()
        check(r.returncode == 0 and set(u) <= set(after2) and oid(99, "65b2") not in after2,
              "shared: check of users repairs its drift")
        check(all(after2.get(i) == after.get(i) for i in a),
              "shared: a check of users leaves every ads copy alone")
        check(set(after2) == set(a) | set(u), "shared: the index holds both collections exactly")
        r = env.run("check", "--dry-run")
        check(r.returncode == 0, "shared: a dry run of both mirrors is clean (exit %d): %s"
              % (r.returncode, r.stdout[-300:]))
    finally:
        env.cleanup()


# ---- 4. bad values: exit 78 -------------------------------------------------
def bad_values():
    env = Env("badf")
    try:
        for name, value, words in [
                ("RECONCILE_FILTER", '["status"]', "not a JSON object"),
                ("RECONCILE_FILTER", '{"status": ', "not JSON"),
                ("RECONCILE_FILTER", '{"a": {"$oid": "xyz"}}', "libbson cannot parse it"),
                # QA: operators inside values FerretDB quietly matches nothing with (every
                # copy would have "left the filter"), a second object libbson ignored
                ("RECONCILE_FILTER", '{"a": {"$all": [{"$elemMatch": {"$text": {"$search": "x"}}}]}}',
                 "$text needs a text index"),
                ("RECONCILE_FILTER", '{"a": {"$all": [{"$elemMatch": {"b": {"$foo": 1}}}]}}',
                 "unknown operator $foo"),
                ("RECONCILE_FILTER", '{"a": {"$in": [{"$near": 1}]}}', "$in takes values"),
                ("RECONCILE_FILTER", '{"a": {"$eq": {"$near": 1}}}', "$eq takes a value"),
                ("RECONCILE_FILTER", '{"a": 1}{"b": 2}', "text after the JSON object"),
                ("RECONCILE_FILTER", '{"a": NaN}', "$numberDouble"),
                ("OPENSEARCH_QUERY", '{"term": {"a": 1}}{"term": {"b": 2}}', "\"bool\""),
                ("RECONCILE_FILTER", '{"$where2": 1}', "unknown top-level operator $where2"),
                ("RECONCILE_FILTER", '{"n": {"$type": 2}}', "$type takes a type name"),
                ("OPENSEARCH_QUERY", '{"source": "ads"}', "a clause's value is an object"),
                ("OPENSEARCH_QUERY", 'term', "not JSON"),
                ("OPENSEARCH_QUERY", '{"query": {"term": {"a": "b"}}}', "without the \"query\"")]:
            r = env.run("check", **{name: value})
            check(r.returncode == 78 and name in r.stderr and words in r.stderr,
                  "bad %s %s: exit 78 naming it (%d: %s)" % (name, value, r.returncode,
                                                              r.stderr.strip()[-200:]))
        cfg = write(env, "bad.yaml", "mirrors:\n  - name: ads\n    reconcile_filter: '[1]'\n")
        r = env.run("config", "--file", cfg)
        check(r.returncode == 78 and "bad.yaml:3: mirror ads: reconcile_filter" in r.stderr,
              "bad filter in a file: exit 78 naming file, line and key (%s)" % r.stderr.strip())
        check(not os.path.exists(env.env["STATE_DB"]), "bad values: nothing is journaled")
    finally:
        env.cleanup()


# ---- 5. resume with a filter --------------------------------------------------
def resume_scenario():
    N = 3000
    env = Env("fresume", RECONCILE_MAX_DELETE_RATIO=1, RECONCILE_FILTER=ACTIVE, SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=60,
              RECONCILE_CHUNK_SIZE=500)
    try:
        env.create_index()
        env.fixture("load", "--count", N)  # status: every fifth "paused"
        p = env.spawn("check")
        committed = 0
        deadline = time.monotonic() + 120
        while committed < 5 and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
            try:
                with env.journal() as db:
                    committed = db.execute(
                        "SELECT count(*) FROM batches WHERE status = 'committed'").fetchone()[0]
            except Exception:
                pass
        check(p.poll() is None, "resume: the run was still working when killed")
        p.send_signal(signal.SIGKILL)
        p.wait()
        with env.journal() as db:
            done_before = [dict(b) for b in db.execute(
                "SELECT * FROM batches WHERE status = 'committed'")]
        r = env.run("resume")
        run = env.last_run()
        check(r.returncode == 0 and run["status"] == "completed" and run["resume_count"] == 1,
              "resume: the same run completes (exit %d, %s): %s"
              % (r.returncode, run["status"], r.stderr[-300:]))
        with env.journal() as db:
            after = {b["batch_no"]: dict(b) for b in db.execute("SELECT * FROM batches")}
            total = db.execute("SELECT SUM(docs) FROM batches").fetchone()[0]
        want = N - N // 5
        check(all(after[b["batch_no"]] == b for b in done_before),
              "resume: committed batches were not sent again")
        check(total == want and run["missing_count"] == want and run["compared"] == want,
              "resume: every document inside the filter once, none outside (%s, %s, %s of %d)"
              % (total, run["missing_count"], run["compared"], want))
        osd = env.os_docs()
        st, res = env.os("POST", "/%s/_count" % env.index, {"query": {"match": {"status": "paused"}}})
        check(len(osd) == want and set(osd) <= set(env.mongo_docs()) and res["count"] == 0,
              "resume: the index holds exactly the %d documents the filter matches (%d, %s paused)"
              % (want, len(osd), res.get("count")))
        r = env.run("check", "--dry-run")
        check(r.returncode == 0, "resume: the next dry run is clean (exit %d)" % r.returncode)
    finally:
        env.cleanup()


filter_scenario()
transform_nil_scenario()
query_scenario()
shared_index_scenario()
bad_values()
resume_scenario()
done()
