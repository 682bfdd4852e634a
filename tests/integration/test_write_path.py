"""What a repair writes, and where: OPENSEARCH_ROUTING_FIELD (missing, stale
with the same and a changed routing, orphans with custom routing),
RECONCILE_WRITE_MODE (upsert keeps fields only the index has, index
replaces the copy), OPENSEARCH_VERSION_TYPE=external_gte (a newer copy is
never overwritten: skipped_newer), OPENSEARCH_PIPELINE (a set processor's
effect on every repaired document), and the settings that cannot go
together (exit 78). All on a 3-shard index of the real OpenSearch."""
import json
import random
import string

from harness import check, run_all

DATE0 = 1704067200000  # 2024-01-01T00:00:00.000Z
SHARDS = 3


def date(ms):
    return {"$date": {"$numberLong": str(ms)}}


def iso(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def make_index(env, settings=None):
    s = {"number_of_shards": SHARDS, "number_of_replicas": 0}
    s.update(settings or {})
    st, body = env.os("PUT", "/" + env.index, {
        "settings": s,
        "mappings": {"properties": {"mongo_id": {"type": "keyword"},
                                    "updatedAt": {"type": "date"},
                                    "page_id": {"type": "keyword"},
                                    "countrySearchedfor": {"type": "keyword"}}}})
    assert st == 200, body


def copies(env, idv):
    """Every copy of _id idv, shard by shard: [(shard, routing, source)]."""
    env.refresh()
    out = []
    for n in range(SHARDS):
        st, res = env.os("POST", "/%s/_search?preference=_shards:%d" % (env.index, n),
                         {"query": {"ids": {"values": [idv]}}, "size": 10})
        assert st == 200, res
        for h in res["hits"]["hits"]:
            out.append((n, h.get("_routing"), h["_source"]))
    return out


def ids_with_two_copies(env):
    env.refresh()
    st, res = env.os("POST", "/%s/_search" % env.index, {
        "size": 0, "aggs": {"ids": {"terms": {"field": "mongo_id", "min_doc_count": 2,
                                              "size": 100}}}})
    assert st == 200, res
    return [b["key"] for b in res["aggregations"]["ids"]["buckets"]]


def put_copy(env, idv, source, routing=None, version=None):
    """Writes an index copy as a live syncer (or enrichment job) would."""
    meta = {"_id": idv}
    if routing is not None:
        meta["routing"] = routing
    if version is not None:
        meta["version"] = version
        meta["version_type"] = "external_gte"
    env.bulk([{"index": meta}, source])


def runs_row(env):
    return env.last_run()


def drift_rows(env, run_id):
    with env.journal() as db:
        return {(x["doc_id"], x["kind"]): (x["status"], x["error"]) for x in db.execute(
            "SELECT doc_id, kind, status, error FROM run_ids WHERE run_id = ?", (run_id,))}


# -- routing -------------------------------------------------------------
def routing(env):
    make_index(env)
    env.mongo({"insert": "ads", "documents": [
        {"_id": "a", "page_id": "p1", "countrySearchedfor": "US", "title": "alpha",
         "updatedAt": date(DATE0)},
        {"_id": "b", "page_id": None, "countrySearchedfor": "FR", "title": "beta",
         "updatedAt": date(DATE0)},
        {"_id": "c", "page_id": "", "title": "gamma", "updatedAt": date(DATE0)},
        {"_id": "d", "page_id": 777, "title": "delta", "updatedAt": date(DATE0)},
    ]})
    # an orphan with custom routing, and a copy that the enrichment job
    # extended (it must survive: upsert is the default)
    put_copy(env, "o1", {"mongo_id": "o1", "title": "orphan"}, routing="zz")
    r = env.run("check")
    run = runs_row(env)
    want = {"a": "p1", "b": "FR", "c": "c", "d": "777"}
    got = {k: [(s, rt) for s, rt, _ in copies(env, k)] for k in want}
    check(r.returncode == 0 and all(got[k] == [(env.shard_of(v), v)] for k, v in want.items()),
          "routing: missing documents written with page_id, else countrySearchedfor, else "
          "the id, each on its routing's shard (%d %s %s)" % (r.returncode, got, r.stderr[-300:]))
    check(copies(env, "o1") == [] and run["deleted_count"] == 1,
          "routing: an orphan with custom routing is deleted with its _routing (%s)"
          % (copies(env, "o1"),))
    r = env.run("check", "--dry-run")
    check(r.returncode == 0, "routing: the next dry run finds no drift: lookups find routed "
          "copies (%d %s)" % (r.returncode, r.stdout[-300:]))

    # stale, routing unchanged: one copy, in place, its embedding kept
    put_copy(env, "a", dict(copies(env, "a")[0][2], image_embedding=[0.5, 0.25]),
             routing="p1")
    env.mongo({"update": "ads", "updates": [{"q": {"_id": "a"}, "u": {"$set": {
        "title": "alpha2", "updatedAt": date(DATE0 + 10)}}}]})
    # stale, routing changed (page_id set): the copy moves to its new
    # shard, and in upsert mode what only the index had moves with it
    put_copy(env, "b", dict(copies(env, "b")[0][2], image_embedding=[0.75]), routing="FR")
    env.mongo({"update": "ads", "updates": [{"q": {"_id": "b"}, "u": {"$set": {
        "page_id": "p9", "updatedAt": date(DATE0 + 10)}}}]})
    r = env.run("check")
    ca, cb = copies(env, "a"), copies(env, "b")
    check(r.returncode == 0 and len(ca) == 1 and ca[0][:2] == (env.shard_of("p1"), "p1")
          and ca[0][2].get("title") == "alpha2" and ca[0][2].get("image_embedding") == [0.5, 0.25],
          "routing: a stale copy with the same routing is updated in place, one copy (%s)" % ca)
    check(len(cb) == 1 and cb[0][:2] == (env.shard_of("p9"), "p9")
          and cb[0][2].get("page_id") == "p9" and cb[0][2].get("image_embedding") == [0.75],
          "routing: a stale copy whose routing changed leaves one copy, on the new "
          "routing's shard (%s; shards FR=%d p9=%d)" % (cb, env.shard_of("FR"), env.shard_of("p9")))
    check(ids_with_two_copies(env) == [], "routing: no _id has two copies (terms aggregation)")
    r = env.run("check", "--dry-run")
    check(r.returncode == 0, "routing: clean after the moves (%d %s)" % (r.returncode, r.stdout[-300:]))

    # a full re-index writes with the same routing rule: still one copy each
    r = env.run("check", "--full")
    check(r.returncode == 0 and ids_with_two_copies(env) == [] and
          [(s, rt) for s, rt, _ in copies(env, "d")] == [(env.shard_of("777"), "777")],
          "routing: the full re-index routes as the repairs do (%d)" % r.returncode)


# -- write mode ----------------------------------------------------------
def write_mode(mode):
    def fn(env):
        make_index(env)
        env.mongo({"insert": "ads", "documents": [
            {"_id": "s", "title": "new", "updatedAt": date(DATE0 + 5)},
        ]})
        # the index's copy: older, with a field MongoDB dropped since and an
        # embedding only the index has
        put_copy(env, "s", {"mongo_id": "s", "title": "old", "dropped": "gone in mongo",
                            "image_embedding": [0.1, 0.2], "updatedAt": iso(DATE0)})
        r = env.run("check", RECONCILE_WRITE_MODE=mode)
        c = copies(env, "s")
        src = c[0][2] if len(c) == 1 else {}
        if mode == "upsert":
            check(r.returncode == 0 and src.get("title") == "new" and
                  src.get("image_embedding") == [0.1, 0.2] and src.get("dropped") == "gone in mongo",
                  "upsert: a repaired stale copy keeps the index-only embedding (and a field "
                  "MongoDB dropped) (%s)" % src)
        else:
            check(r.returncode == 0 and src.get("title") == "new" and
                  "image_embedding" not in src and "dropped" not in src,
                  "index: a repaired stale copy is replaced whole (%s)" % src)
    return fn


# -- external versions ---------------------------------------------------
def external(env):
    make_index(env)
    t1 = DATE0 + 1000
    env.mongo({"insert": "ads", "documents": [
        {"_id": "newer", "title": "mongo", "updatedAt": date(t1)},
        {"_id": "older", "title": "mongo", "updatedAt": date(t1)},
        {"_id": "missing", "title": "mongo", "updatedAt": date(t1)},
        {"_id": "noversion", "title": "mongo"},
        {"_id": "badversion", "title": "mongo", "updatedAt": "yesterday"},
    ]})
    # the live syncer already wrote a newer "newer" (version t1 + 500)
    put_copy(env, "newer", {"mongo_id": "newer", "title": "live", "updatedAt": iso(t1 + 500)},
             version=t1 + 500)
    put_copy(env, "older", {"mongo_id": "older", "title": "old", "updatedAt": iso(DATE0)},
             version=DATE0)
    settings = dict(RECONCILE_WRITE_MODE="index", OPENSEARCH_VERSION_TYPE="external_gte")
    r = env.run("check", **settings)
    run = runs_row(env)
    rows = drift_rows(env, run["id"])
    newer = copies(env, "newer")
    check(len(newer) == 1 and newer[0][2].get("title") == "live" and
          newer[0][2].get("updatedAt") == iso(t1 + 500),
          "external_gte: a newer copy is never overwritten (%s)" % newer)
    check(run["skipped_newer_count"] == 1 and rows.get(("newer", "stale"), ("",))[0] == "skipped"
          and "skipped_newer" in (rows.get(("newer", "stale"), ("", ""))[1] or ""),
          "external_gte: the refused write counts as skipped_newer, journaled skipped (%s %s)"
          % (run["skipped_newer_count"], rows.get(("newer", "stale"))))
    check("skipped_newer 1" in r.stdout, "external_gte: the summary line says skipped_newer (%s)"
          % r.stdout.strip())
    older = copies(env, "older")
    check(len(older) == 1 and older[0][2].get("title") == "mongo",
          "external_gte: an older copy is repaired (%s)" % older)
    st, got = env.os("GET", "/%s/_doc/missing" % env.index)
    check(st == 200 and got.get("_version") == t1 and got["_source"].get("title") == "mongo",
          "external_gte: a missing document is written with its version in epoch ms (%s)"
          % {k: got.get(k) for k in ("_version", "found")})
    fails = {k[0]: v for k, v in rows.items() if v[0] == "failed"}
    check(set(fails) == {"noversion", "badversion"} and "no updatedAt" in (fails["noversion"][1] or "")
          and "updatedAt" in (fails["badversion"][1] or "") and r.returncode == 3 and
          run["failed_count"] == 2 and run["skipped_count"] == 0,
          "external_gte: documents without a usable version fail with the reason, exit 3 "
          "(%d %s skipped %s)" % (r.returncode, fails, run["skipped_count"]))
    # the journal reports it: the run report and the views
    r2 = env.run("show", str(run["id"]), "--json")
    shown = json.loads(r2.stdout)
    shown = shown.get("run", shown)
    check(shown.get("skippedNewerCount") == 1,
          "external_gte: reconciler show reports skippedNewerCount (%s)" % r2.stdout[:300])
    with env.journal() as db:
        v = db.execute("SELECT skipped_newer FROM v_runs WHERE id = ?", (run["id"],)).fetchone()[0]
    check(v == 1, "external_gte: v_runs.skipped_newer (%s)" % v)

    # the full re-index uses the same versions: the newer copy stays
    r = env.run("check", "--full", **settings)
    run = runs_row(env)
    newer = copies(env, "newer")
    check(newer[0][2].get("title") == "live" and run["skipped_newer_count"] == 1 and
          run["reindexed_count"] == 2 and run["failed_count"] == 2,
          "external_gte: a full re-index skips the newer copy too (%s, skipped_newer %s, "
          "reindexed %s)" % (newer[0][2].get("title"), run["skipped_newer_count"],
                             run["reindexed_count"]))


# -- ingest pipeline -----------------------------------------------------
def pipeline(env):
    name = "wp_" + "".join(random.choice(string.ascii_lowercase) for _ in range(8))
    st, res = env.os("PUT", "/_ingest/pipeline/" + name, {
        "processors": [{"set": {"field": "ingested_by", "value": name}}]})
    check(st == 200, "pipeline: the test node runs a set processor (%s)" % res)
    try:
        make_index(env)
        env.mongo({"insert": "ads", "documents": [
            {"_id": "m%d" % i, "title": "t", "updatedAt": date(DATE0 + 5)} for i in range(20)]})
        put_copy(env, "m0", {"mongo_id": "m0", "title": "old", "updatedAt": iso(DATE0)})
        settings = dict(RECONCILE_WRITE_MODE="index", OPENSEARCH_PIPELINE=name)
        r = env.run("check", **settings)
        env.refresh()
        st, res = env.os("POST", "/%s/_search" % env.index, {"size": 100})
        tagged = {h["_id"]: h["_source"].get("ingested_by") for h in res["hits"]["hits"]}
        check(r.returncode == 0 and len(tagged) == 20 and set(tagged.values()) == {name},
              "pipeline: index mode runs OPENSEARCH_PIPELINE on every repaired document, "
              "missing and stale (%d %s)" % (r.returncode, sorted(set(tagged.values()), key=str)))
        # the full re-index, into a new index
        env.os("DELETE", "/" + env.index)
        make_index(env)
        r = env.run("check", "--full", **settings)
        env.refresh()
        st, res = env.os("POST", "/%s/_search" % env.index, {"size": 100})
        tagged = {h["_id"]: h["_source"].get("ingested_by") for h in res["hits"]["hits"]}
        check(r.returncode == 0 and len(tagged) == 20 and set(tagged.values()) == {name},
              "pipeline: the full re-index runs it too (%d %s)" % (r.returncode, len(tagged)))

        # upsert: updates run no named pipeline (said as a warning); the
        # index's default_pipeline is what runs on them
        env.os("DELETE", "/" + env.index)
        make_index(env, {"index.default_pipeline": name})
        # an old copy written past the default pipeline (_none)
        st, res = env.os("POST", "/%s/_bulk?refresh=true&pipeline=_none" % env.index, [
            {"index": {"_id": "m1"}}, {"mongo_id": "m1", "title": "old", "updatedAt": iso(DATE0)}],
            ndjson=True)
        assert st == 200 and not res.get("errors"), res
        check("ingested_by" not in copies(env, "m1")[0][2], "pipeline: the old copy is untagged")
        r = env.run("check", RECONCILE_WRITE_MODE="upsert", OPENSEARCH_PIPELINE=name)
        run = runs_row(env)
        with env.journal() as db:
            warned = [x[0] for x in db.execute(
                "SELECT detail FROM run_events WHERE run_id = ? AND event = 'warning'",
                (run["id"],))]
        check(any("OPENSEARCH_PIPELINE" in w and "default_pipeline" in w for w in warned) and
              "OPENSEARCH_PIPELINE" in r.stderr,
              "pipeline: upsert mode warns that updates run no named pipeline (%s)" % warned)
        env.refresh()
        st, res = env.os("POST", "/%s/_search" % env.index, {"size": 100})
        tagged = {h["_id"]: h["_source"] for h in res["hits"]["hits"]}
        check(r.returncode == 0 and len(tagged) == 20 and
              all(s.get("ingested_by") == name for s in tagged.values()) and
              tagged["m1"].get("title") == "t",
              "pipeline: in upsert mode the index's default_pipeline runs on every repaired "
              "document, created or updated (%d %s)" % (r.returncode, tagged.get("m1")))
    finally:
        env.os("DELETE", "/_ingest/pipeline/" + name)


# -- settings that cannot be --------------------------------------------
def bad_settings(env):
    cases = [
        (dict(OPENSEARCH_VERSION_TYPE="external_gte"), "RECONCILE_WRITE_MODE=index"),
        (dict(OPENSEARCH_VERSION_TYPE="external_gte", RECONCILE_WRITE_MODE="upsert"),
         "update action (upsert) accepts no external version"),
        (dict(OPENSEARCH_VERSION_TYPE="external_gte", RECONCILE_WRITE_MODE="index",
              RECONCILE_VERSION_FIELD=""), "needs RECONCILE_VERSION_FIELD"),
        (dict(RECONCILE_WRITE_MODE="replace"), "RECONCILE_WRITE_MODE"),
        (dict(OPENSEARCH_VERSION_TYPE="external"), "OPENSEARCH_VERSION_TYPE"),
        (dict(OPENSEARCH_ROUTING_FIELD="page.id"), "OPENSEARCH_ROUTING_FIELD"),
    ]
    for settings, words in cases:
        r = env.run("check", **settings)
        check(r.returncode == 78 and words in r.stderr,
              "settings: %s exits 78 saying %r (%d %s)" % (settings, words, r.returncode,
                                                          r.stderr.strip()[-300:]))
    # a file's mirror is named in the message
    path = env.tmp + "/reconciler.yaml"
    with open(path, "w") as f:
        f.write("mirrors:\n  - name: ads\n    opensearch_version_type: external_gte\n")
    r = env.run("check", RECONCILER_CONFIG=path)
    check(r.returncode == 78 and "mirror ads:" in r.stderr,
          "settings: a mirror's bad combination names the mirror (%d %s)"
          % (r.returncode, r.stderr.strip()[-300:]))


# indexes of a handful of documents: the orphans planted are far over the
# delete brake's 5% (test_brake.py tests the brake)
ALL = {"RECONCILE_MAX_DELETE_RATIO": 1}
run_all([("routing", routing, dict(ALL, OPENSEARCH_ROUTING_FIELD="page_id,countrySearchedfor",
                                   RECONCILE_ORPHANS="delete", RECONCILE_WRITE_MODE="upsert")),
         ("upsert", write_mode("upsert"), ALL),
         ("index", write_mode("index"), ALL),
         ("external", external, ALL),
         ("pipeline", pipeline, ALL),
         ("settings", bad_settings, ALL)], prefix="wp_")
