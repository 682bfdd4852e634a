"""Field faults: no document is deleted, blocked or rewritten forever because
of its id or its values. Each scenario asserts the end state on the real
servers: the index equals MongoDB (or exactly the named documents are
journaled failed with the stated reason), the dry run after a repair is
clean, and no document present in MongoDB is ever deleted."""
import base64
import collections
import json
import os
import random
import uuid

from harness import Env, check, done

# These faults live in indexes of a few dozen documents, where the orphans a
# case plants (and must see deleted, exactly) are far more than the brake's
# default 5%: the brake is off here (RECONCILE_MAX_DELETE_RATIO=1, a ratio
# no run can pass), and tested on its own in test_brake.py.
os.environ["RECONCILE_MAX_DELETE_RATIO"] = "1"

DATE0 = 1704067200000  # 2024-01-01


def ext_date(ms):
    return {"$date": {"$numberLong": str(ms)}}


# -- id types ----------------------------------------------------------------
# Each maker returns the extended JSON of the n-th id of its type. Values are
# chosen so that no two types share a canonical text (that is a conflict,
# tested on its own below).

def oid(n):
    return {"$oid": "%08x%016x" % (1704067200 + n, n)}


def embedded(n):
    # the same keys in another order is another _id in MongoDB
    return {"cat": "books", "title": "t-%d" % n} if n % 2 else {"title": "t-%d" % n, "cat": "books"}


ID_TYPES = {
    "oid": oid,
    "string": lambda n: "s-%d" % n,
    "int32": lambda n: {"$numberInt": str(1000 + n)},
    "int64": lambda n: {"$numberLong": str(5000000000 + n)},
    "double": lambda n: {"$numberDouble": "%d.5" % n},
    "bool": lambda n: n % 2 == 1,
    "date": lambda n: ext_date(DATE0 + n * 86400000),
    "embedded": embedded,
    "binary": lambda n: {"$binary": {"base64": base64.b64encode(b"bin-%d" % n).decode(),
                                     "subType": "00"}},
    "uuid": lambda n: {"$binary": {"base64": base64.b64encode(
        uuid.UUID(int=n + 1).bytes).decode(), "subType": "04"}},
}


def count_of(kind, n):
    return min(n, 2) if kind == "bool" else n


def insert(env, docs):
    for i in range(0, len(docs), 200):
        r = env.mongo({"insert": "ads", "documents": docs[i:i + 200]})
        assert r.get("n") == len(docs[i:i + 200]), r


def doc(idv, n, version_ms=None):
    return {"_id": idv, "title": "doc %d" % n, "n": n,
            "updatedAt": ext_date(version_ms if version_ms is not None else DATE0 + n)}


def set_version(env, idv, ms):
    r = env.mongo({"update": "ads", "updates": [{"q": {"_id": idv},
                                                  "u": {"$set": {"updatedAt": ext_date(ms)}}}]})
    assert r.get("nModified") == 1, r


def delete_mongo(env, idv):
    r = env.mongo({"delete": "ads", "deletes": [{"q": {"_id": idv}, "limit": 1}]})
    assert r.get("n") == 1, r


def sharded_index(env):
    """This test's index with three shards (custom routing lands apart)."""
    st, body = env.os("PUT", "/" + env.index, {
        "settings": {"number_of_shards": 3, "number_of_replicas": 0},
        "mappings": {"properties": {"mongo_id": {"type": "keyword"}, "updatedAt": {"type": "date"}}}})
    assert st == 200, body


def copy_counts(env):
    """{_id: how many copies the index holds under it}."""
    return collections.Counter(i for _, i in copies(env))


def copies(env):
    """Every index copy as (index, _id), independently of the reconciler."""
    env.refresh()
    out, after = [], None
    while True:
        body = {"size": 1000, "sort": [{"_id": "asc"}, {"_index": "asc"}], "_source": False}
        if after:
            body["search_after"] = after
        st, res = env.os("POST", "/%s/_search" % env.index, body)
        if st == 404:
            return out
        hits = res["hits"]["hits"]
        out += [(h["_index"], h["_id"]) for h in hits]
        if len(hits) < 1000:
            return out
        after = hits[-1]["sort"]


def live_ids(env):
    return set(env.mongo_docs())


def never_deleted_live(env, name, before_live):
    """Every id MongoDB still has is still in the index."""
    now_live = live_ids(env)
    indexed = set(i for _, i in copies(env))
    lost = (before_live & now_live) - indexed
    check(not lost, "%s: no live document deleted from the index (lost %s)"
          % (name, sorted(lost)[:5]))


def dry_run_clean(env, name):
    r = env.run("check", "--dry-run")
    check(r.returncode == 0, "%s: the dry run afterwards is clean (exit %d: %s)"
          % (name, r.returncode, r.stdout.strip()[-300:]))


def scenario(name, fn, **settings):
    env = Env(name, **settings)
    try:
        fn(env)
    except Exception as e:  # a scenario that blows up is a failure, not a crash
        import traceback
        traceback.print_exc()
        check(False, "%s raised %r" % (name, e))
    finally:
        env.cleanup()


# -- 1. every id type round-trips --------------------------------------------

def id_type_roundtrip(kind):
    def fn(env):
        name = "%s ids" % kind
        make = ID_TYPES[kind]
        n = count_of(kind, 40)
        env.create_index()
        insert(env, [doc(make(i), i) for i in range(n)])
        r = env.run("check")
        check(r.returncode == 0, "%s: first check indexes everything (%s)" % (name, r.stderr[-300:]))
        check(env.in_sync(), "%s: index equals MongoDB after the first check" % name)
        dry_run_clean(env, name + " (indexed once)")
        run = env.last_run()
        check(run["orphan_count"] == 0 and run["missing_count"] == 0,
              "%s: found again as in sync, no orphans (%s orphans)" % (name, run["orphan_count"]))
        # drift: one stale, one orphan (gone from MongoDB), one missing
        before = live_ids(env)
        set_version(env, make(0), DATE0 + 999999)
        delete_mongo(env, make(n - 1))
        versions = env.mongo_docs()
        missing = [c for c, v in sorted(versions.items()) if v != DATE0 + 999999][:1]
        if missing:
            env.bulk([{"delete": {"_id": missing[0]}}])
        r = env.run("check", RECONCILE_ORPHANS="delete")
        run = env.last_run()
        check(r.returncode == 0 and run["status"] == "completed",
              "%s: repair completes (%d, %s)" % (name, r.returncode, run["error"]))
        check((run["orphan_count"], run["deleted_count"], run["stale_count"],
               run["missing_count"]) == (1, 1, 1, len(missing)),
              "%s: exactly the orphan deleted, the stale and missing copies found "
              "(orphans, deleted, stale, missing: %s)"
              % (name, [run[k] for k in ("orphan_count", "deleted_count", "stale_count",
                                         "missing_count")]))
        check(env.in_sync(), "%s: index equals MongoDB after repair" % name)
        never_deleted_live(env, name, before)
        dry_run_clean(env, name + " (repaired)")
    return fn


def mixed_ids(env):
    """Every type in one collection, with drift of every kind."""
    env.create_index()
    docs, idv = [], []
    n = 0
    for kind, make in sorted(ID_TYPES.items()):
        for i in range(count_of(kind, 12)):
            docs.append(doc(make(i), n))
            idv.append(make(i))
            n += 1
    insert(env, docs)
    r = env.run("check")
    check(r.returncode == 0 and env.in_sync(), "mixed ids: indexed once (%s)" % r.stderr[-300:])
    dry_run_clean(env, "mixed ids (indexed)")
    before = live_ids(env)
    rnd = random.Random(7)
    picks = rnd.sample(range(len(idv)), 12)
    for k in picks[:4]:
        set_version(env, idv[k], DATE0 + 5555555)
    for k in picks[4:8]:
        delete_mongo(env, idv[k])
    r = env.run("check", RECONCILE_ORPHANS="delete")
    run = env.last_run()
    check(r.returncode == 0 and run["stale_count"] == 4 and run["orphan_count"] == 4
          and run["deleted_count"] == 4,
          "mixed ids: 4 stale and 4 orphans found and repaired (stale %s, orphans %s, deleted %s)"
          % (run["stale_count"], run["orphan_count"], run["deleted_count"]))
    check(env.in_sync(), "mixed ids: index equals MongoDB")
    never_deleted_live(env, "mixed ids", before)
    dry_run_clean(env, "mixed ids (repaired)")


# -- property: random mixes, random drift ------------------------------------

def property_run(seed):
    def fn(env):
        name = "property seed %d" % seed
        rnd = random.Random(seed)
        env.create_index()
        kinds = sorted(ID_TYPES)
        used = {k: 0 for k in kinds}
        docs, idv = [], []
        for n in range(300):
            kind = rnd.choice(kinds)
            if kind == "bool" and used[kind] >= 2:
                kind = "string"
            docs.append(doc(ID_TYPES[kind](used[kind]), n))
            idv.append(ID_TYPES[kind](used[kind]))
            used[kind] += 1
        insert(env, docs)
        r = env.run("check", RECONCILE_CHUNK_SIZE=rnd.choice([10, 50, 1000]),
                    OPENSEARCH_SCAN_PAGE=rnd.choice([10, 64, 10000]))
        check(r.returncode == 0 and env.in_sync(), "%s: indexed" % name)
        before = live_ids(env)
        canon = sorted(env.mongo_docs())
        order = list(range(len(idv)))
        rnd.shuffle(order)
        n_missing, n_stale, n_orphan = rnd.randint(1, 20), rnd.randint(1, 20), rnd.randint(1, 20)
        # missing: remove index copies by canonical text
        missing = rnd.sample(canon, n_missing)
        env.bulk([{"delete": {"_id": c}} for c in missing])
        for k in order[:n_stale]:
            set_version(env, idv[k], DATE0 + 10 ** 9 + k)
        for k in order[n_stale:n_stale + n_orphan]:
            delete_mongo(env, idv[k])
        r = env.run("check", RECONCILE_ORPHANS="delete",
                    RECONCILE_CHUNK_SIZE=rnd.choice([10, 64, 1000]),
                    OPENSEARCH_SCAN_PAGE=rnd.choice([10, 50, 10000]))
        run = env.last_run()
        check(r.returncode == 0 and run["status"] == "completed",
              "%s: check completes (%d %s)" % (name, r.returncode, r.stderr[-200:]))
        check(run["deleted_count"] <= n_orphan + len(set(missing)),
              "%s: deleted no more than the orphans (%s)" % (name, run["deleted_count"]))
        check(env.in_sync(), "%s: index equals MongoDB" % name)
        never_deleted_live(env, name, before)
        dry_run_clean(env, name)
    return fn


# -- 2. over-long ids ----------------------------------------------------------

def long_ids(env):
    env.create_index()
    env.fixture("load", "--count", 30)
    long_ = ["L" * 600, "\u00e9" * 300, "x" * 2000]          # 600, 600, 2000 bytes
    edge = ["y" * 512, "\u00fc" * 256]                         # exactly 512 bytes
    insert(env, [doc(i, n) for n, i in enumerate(long_ + edge)])
    r = env.run("check")
    run = env.last_run()
    check(r.returncode == 3, "long ids: check exits 3, not 2 (%d: %s)" % (r.returncode, r.stderr[-300:]))
    check(run["status"] == "completed", "long ids: the run completes (%s)" % run["status"])
    check(run["failed_count"] == 3 and run["repaired_count"] == 32,
          "long ids: 3 failed, the 30 ordinary and the two 512-byte ids indexed (failed %s, repaired %s)"
          % (run["failed_count"], run["repaired_count"]))
    with env.journal() as db:
        rows = db.execute("SELECT doc_id, status, error FROM run_ids WHERE status = 'failed'").fetchall()
    check(sorted(x["doc_id"] for x in rows) == sorted(long_)
          and all("512" in (x["error"] or "") for x in rows),
          "long ids: exactly the long ids journaled failed, saying the 512-byte limit (%s)"
          % [(len(x["doc_id"]), x["error"]) for x in rows][:3])
    indexed = set(i for _, i in copies(env))
    check(all(e in indexed for e in edge), "long ids: ids of exactly 512 bytes are indexed")
    r = env.run("check")
    run = env.last_run()
    check(r.returncode == 3 and run["status"] == "completed" and run["repaired_count"] == 0,
          "long ids: a later run does not stop on them either (%d, %s)" % (r.returncode, run["status"]))


# -- 3. dates of every year ------------------------------------------------------

def dates(env):
    env.create_index({"when": {"type": "date"}})
    values = {
        "y10000": 253402387200000,            # 10000-01-02
        "y0": -62167219200000,                # 0000-01-01
        "yminus1": -62198755200000,           # -0001-01-01
        "y1": -62135596800000,                # 0001-01-01
        "epoch-1": -1,
        "max": 9223372036854775807,
        "neg-big": -(2 ** 62),
    }
    insert(env, [{"_id": k, "when": ext_date(v), "updatedAt": ext_date(v)}
                 for k, v in values.items()])
    # a Date _id after 9999 too
    insert(env, [{"_id": ext_date(253402387200000 + 5), "updatedAt": ext_date(DATE0)}])
    r = env.run("check")
    run = env.last_run()
    check(r.returncode == 0 and run["failed_count"] == 0,
          "dates: every date indexed (%d, failed %s: %s)" % (r.returncode, run["failed_count"],
                                                            r.stderr[-300:]))
    env.refresh()
    st, res = env.os("POST", "/%s/_search" % env.index, {
        "size": 100, "_source": False,
        "docvalue_fields": [{"field": "when", "format": "epoch_millis"}]})
    got = {h["_id"]: int(h["fields"]["when"][0]) for h in res["hits"]["hits"] if "fields" in h}
    check(all(got.get(k) == v for k, v in values.items()),
          "dates: each date reads back as the same instant (%s)"
          % {k: (got.get(k), v) for k, v in values.items() if got.get(k) != v})
    check(env.in_sync(), "dates: index equals MongoDB (a year-10000 _id included)")
    dry_run_clean(env, "dates")


# -- 4. an alias over several indices ------------------------------------------

def alias(env):
    v1, v2 = env.index + "_v1", env.index + "_v2"
    props = {"mongo_id": {"type": "keyword"}, "updatedAt": {"type": "date"}}
    for ix in (v1, v2):
        st, body = env.os("PUT", "/" + ix, {"mappings": {"properties": props}})
        assert st == 200, body
    env.fixture("load", "--count", 40)
    env.run("check", OPENSEARCH_INDEX=v1)              # everything in the old index
    st, body = env.os("POST", "/_aliases", {"actions": [
        {"add": {"index": v1, "alias": env.index}},
        {"add": {"index": v2, "alias": env.index, "is_write_index": True}}]})
    assert st == 200, body
    ids = sorted(env.mongo_docs())
    idv = [{"$oid": i} for i in ids]
    orphans = ["%08x%016x" % (1800000000, 90000 + i) for i in range(5)]
    env.os("POST", "/%s/_bulk?refresh=true" % v1, [x for o in orphans for x in (
        {"index": {"_id": o}}, {"mongo_id": o, "updatedAt": "2024-02-02T00:00:00Z"})], ndjson=True)
    for k in range(8):                                 # 8 stale copies, in v1
        set_version(env, idv[k], DATE0 + 7777777 + k)
    dups = ids[10:13]                                  # 3 ids with a second copy in v2
    env.os("POST", "/%s/_bulk?refresh=true" % v2, [x for d in dups for x in (
        {"index": {"_id": d}}, {"mongo_id": d, "updatedAt": "2020-01-01T00:00:00Z"})], ndjson=True)
    env.os("POST", "/%s/_bulk?refresh=true" % v1, [{"delete": {"_id": ids[20]}},
                                                    {"delete": {"_id": ids[21]}}], ndjson=True)
    before = live_ids(env)
    r = env.run("check", RECONCILE_ORPHANS="delete")
    run = env.last_run()
    check(r.returncode == 0, "alias: check exits 0 (%s)" % r.stderr[-300:])
    # the 3 kept copies (in v2, the write index) carry an old version: stale too
    check((run["orphan_count"], run["stale_count"], run["duplicate_count"], run["missing_count"])
          == (5, 8 + 3, 3, 2),
          "alias: 5 orphans, 11 stale, 3 duplicates, 2 missing found (%s)"
          % [run[k] for k in ("orphan_count", "stale_count", "duplicate_count", "missing_count")])
    check(run["deleted_count"] == 8 and run["repaired_count"] == 13,
          "alias: 8 copies deleted, 13 written (deleted %s, repaired %s)"
          % (run["deleted_count"], run["repaired_count"]))
    cps = copies(env)
    per_id = {}
    for ix, i in cps:
        per_id.setdefault(i, []).append(ix)
    check(all(len(v) == 1 for v in per_id.values()),
          "alias: every id has exactly one copy (%s)" % {k: v for k, v in per_id.items() if len(v) > 1})
    check(not any(o in per_id for o in orphans), "alias: the orphans are gone from v1")
    check(all(per_id.get(ids[k]) == [v1] for k in range(8)),
          "alias: stale copies were overwritten where they are (v1), not copied into v2")
    check(all(per_id.get(d) == [v2] for d in dups),
          "alias: of two copies, the one in the write index is kept")
    check(per_id.get(ids[20]) == [v2], "alias: missing documents go to the write index")
    check(env.in_sync(), "alias: index equals MongoDB")
    never_deleted_live(env, "alias", before)
    r = env.run("check", "--dry-run")
    check(r.returncode == 0, "alias: the next dry run is clean, no false repair (%s)" % r.stdout[-300:])
    for ix in (v1, v2):
        env.os("DELETE", "/" + ix)


# -- 5. ids whose texts collide ----------------------------------------------------

def collisions(env):
    env.create_index()
    pairs = [({"$numberLong": "42"}, "42"), (True, "true"), ({"$numberDouble": "2.5"}, "2.5")]
    docs = []
    for k, (a, b) in enumerate(pairs):
        docs.append(doc(a, k, DATE0 + 1000 + k))
        docs.append(doc(b, k, DATE0 + 2000 + k))
    docs.append(doc("plain", 99))
    insert(env, docs)
    r = env.run("check")
    run = env.last_run()
    check(r.returncode == 3 and run["conflict_count"] == 3,
          "collisions: found from the first run, when both are missing (%d, %s)"
          % (r.returncode, run["conflict_count"]))
    check(len(env.os_docs()) == 4, "collisions: one copy of each shared id is indexed")
    r = env.run("check")
    run = env.last_run()
    check(r.returncode == 3, "collisions: a run with id conflicts exits 3 (%d)" % r.returncode)
    check(run["conflict_count"] == 3 and run["stale_count"] == 0 and run["repaired_count"] == 0,
          "collisions: 3 conflicts, not stale, nothing rewritten (conflicts %s, stale %s, repaired %s)"
          % (run["conflict_count"], run["stale_count"], run["repaired_count"]))
    with env.journal() as db:
        rows = db.execute("SELECT doc_id, id_type, error FROM run_ids WHERE kind = 'conflict'"
                          " AND run_id = ?", (run["id"],)).fetchall()
    check(sorted((x["doc_id"], x["id_type"]) for x in rows)
          == [("2.5", "double+string"), ("42", "int+string"), ("true", "bool+string")],
          "collisions: one journal row per pair naming both types (%s)"
          % [(x["doc_id"], x["id_type"]) for x in rows])
    check(all("string" in x["error"] for x in rows), "collisions: the row says why")
    logs = open(env.env["LOG_DIR"] + "/combined.log").read()
    check("id conflict" in logs, "collisions: a warning says so")
    env.refresh()
    seq = lambda: {h["_id"]: h["_seq_no"] for h in env.os(
        "POST", "/%s/_search" % env.index, {"size": 100, "seq_no_primary_term": True})[1]["hits"]["hits"]}
    s1 = seq()
    r = env.run("check")
    check(r.returncode == 3 and seq() == s1, "collisions: the next run rewrites nothing")


def collisions_same_version(env):
    """Colliding ids with equal versions, and with no version field: said
    so on every run though nothing looks stale."""
    env.create_index()
    insert(env, [doc({"$numberLong": "7"}, 1, DATE0), doc("7", 2, DATE0), doc("plain", 3)])
    for settings in ({}, {"RECONCILE_VERSION_FIELD": ""}):
        for k in range(2):
            r = env.run("check", **settings)
            run = env.last_run()
            check(r.returncode == 3 and run["conflict_count"] == 1,
                  "collisions, same version %s: run %d reports the conflict (%d, %s)"
                  % (settings, k, r.returncode, run["conflict_count"]))
        r = env.run("check", "--dry-run", **settings)
        check(r.returncode == 1, "collisions, same version %s: a dry run says drift (%d)"
              % (settings, r.returncode))


# -- 6. reasons carry their cause --------------------------------------------------

def reasons(env):
    st, body = env.os("PUT", "/" + env.index, {
        "settings": {"index.mapping.total_fields.limit": 60},
        "mappings": {"properties": {"mongo_id": {"type": "keyword"}, "updatedAt": {"type": "date"}}}})
    assert st == 200, body
    env.fixture("nested", "n25", 25)
    env.fixture("nested", "n120", 120)
    env.fixture("load", "--count", 10)
    r = env.run("check")
    check(r.returncode == 3, "reasons: two documents could not be repaired: exit 3 (%d)" % r.returncode)
    with env.journal() as db:
        err = {x["doc_id"]: x["error"] for x in db.execute(
            "SELECT doc_id, error FROM run_ids WHERE status = 'failed'")}
    check("depth of the field has exceeded the allowed limit of [20]" in (err.get("n25") or ""),
          "reasons: OpenSearch's innermost cause is journaled (%s)" % err.get("n25"))
    check("nested deeper than 100 levels" in (err.get("n120") or ""),
          "reasons: our own refusal names the limit (%s)" % err.get("n120"))
    check(len(env.os_docs()) == 10, "reasons: the other documents are indexed")


# -- faults a tester found by trying inputs ------------------------------------

def foreign_copies(env):
    """Index documents whose _id is not their id field's value (another
    writer, a NUL that JSON carries but C strings cut): never taken for a
    live document's copy, never deleted in its place."""
    env.create_index()
    insert(env, [doc("s%d" % i, i) for i in range(5)])
    env.run("check")
    env.bulk([{"index": {"_id": "s1\u0000old"}},
              {"mongo_id": "s1\u0000old", "updatedAt": "2024-01-01T00:00:00Z"},
              {"index": {"_id": "S2-foreign"}},
              {"mongo_id": "s2", "updatedAt": "2024-01-01T00:00:00Z"}])
    for k in range(2):
        r = env.run("check")
        indexed = set(i for _, i in copies(env))
        check(r.returncode == 0 and all("s%d" % i in indexed for i in range(5)),
              "foreign copies: every live document stays indexed (run %d: %s, %s)"
              % (k, r.returncode, sorted(indexed)))
    check("S2-foreign" not in set(i for _, i in copies(env)),
          "foreign copies: a copy keyed s2 under another _id is removed by its own _id")
    check("NUL character" in r.stderr, "foreign copies: a copy with a NUL in its id is named")


def normalizer(env):
    """A lowercase normalizer on the id field: its values are not the ids."""
    st, body = env.os("PUT", "/" + env.index, {
        "settings": {"analysis": {"normalizer": {"lc": {"type": "custom",
                                                         "filter": ["lowercase"]}}}},
        "mappings": {"properties": {"mongo_id": {"type": "keyword", "normalizer": "lc"},
                                    "updatedAt": {"type": "date"}}}})
    assert st == 200, body
    insert(env, [doc("ABC", 1), doc("abc", 2), doc("x1", 3)])
    for k in range(3):
        r = env.run("check")
    run = env.last_run()
    check(r.returncode == 0 and run["repaired_count"] == 0 and run["deleted_count"] == 0
          and env.in_sync(),
          "normalizer: stable and equal to MongoDB, nothing rewritten or deleted (%s)"
          % [run[k] for k in ("repaired_count", "deleted_count")])
    logs = open(env.env["LOG_DIR"] + "/combined.log").read()
    check("normalizer" in logs and "from _id instead" in logs,
          "normalizer: a warning says why ids are read from _id")


def resume_number_cursor(env):
    """A run interrupted among numeric ids resumes (the resume filter's
    types are ones every server accepts)."""
    import signal
    import time
    env.create_index()
    insert(env, [doc({"$numberInt": str(i)}, i) for i in range(1500)])
    p = env.spawn("check", "--full", SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=40)
    deadline = time.time() + 60
    run = None
    while time.time() < deadline:
        time.sleep(0.3)
        try:
            run = env.last_run()
        except Exception:
            continue
        if run and run["cursor"]:
            break
    p.send_signal(signal.SIGINT)
    p.wait(timeout=60)
    run = env.last_run()
    check(run["status"] == "interrupted" and run["cursor_type"] == "int",
          "number cursor: interrupted among ints (%s, %s)" % (run["status"], run["cursor_type"]))
    r = env.run("resume")
    run = env.last_run()
    check(r.returncode == 0 and run["status"] == "completed",
          "number cursor: the run resumes and completes (%d: %s)" % (r.returncode, r.stderr[-300:]))
    check(env.in_sync(), "number cursor: index equals MongoDB")


def refused_ids(env):
    """Ids a server refuses to be asked about fail alone (or are never
    called orphans); no run is blocked by them."""
    env.create_index()
    insert(env, [doc("s%02d" % i, i) for i in range(20)] + [doc({"$oid": "65920080000000000000002a"}, 50)])
    insert(env, [doc({"": 1}, 60)])                      # FerretDB cannot be asked for it
    odd = ['{"$where":"1"}', "nan", '{"$minKey":1}', '{"$gt":""}', "inf"]
    insert(env, [doc(t, 70 + k) for k, t in enumerate(odd)])
    for k in range(2):
        r = env.run("check")
        run = env.last_run()
        check(run["status"] == "completed" and r.returncode in (0, 3),
              "refused ids: run %d completes (%d, %s)" % (k, r.returncode, run["error"]))
    indexed = set(i for _, i in copies(env))
    check(all("s%02d" % i in indexed for i in range(20)) and all(t in indexed for t in odd),
          "refused ids: every other document is indexed")
    for t in odd:
        delete_mongo(env, t)
    r = env.run("check", RECONCILE_ORPHANS="delete")
    run = env.last_run()
    check(run["status"] == "completed", "refused ids: deleting odd ids from MongoDB blocks nothing "
          "(%s)" % run["error"])
    indexed = set(i for _, i in copies(env))
    check(all("s%02d" % i in indexed for i in range(20)),
          "refused ids: no live document deleted")


def settings_only_index(env):
    st, body = env.os("PUT", "/" + env.index, {"settings": {"number_of_shards": 3,
                                                             "number_of_replicas": 0}})
    assert st == 200, body
    insert(env, [doc("s%d" % i, i) for i in range(6)])
    r = env.run("check", "--dry-run")
    check(r.returncode == 1 and env.last_run()["missing_count"] == 6,
          "settings-only index: a dry run works (%d: %s)" % (r.returncode, r.stderr[-300:]))
    r = env.run("check")
    check(r.returncode == 0 and env.in_sync(), "settings-only index: check fills it (%s)"
          % r.stderr[-300:])
    dry_run_clean(env, "settings-only index")


def kinds_resume(env):
    """An interrupted check is continued by check, never by a dry run."""
    import signal
    import time
    env.create_index()
    insert(env, [doc("s%04d" % i, i) for i in range(400)])
    p = env.spawn("check", SYNC_BATCH_SIZE=10, SYNC_BATCH_DELAY_MS=100)
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=60)
    first = env.last_run()
    before = len(copies(env))
    r = env.run("check", "--dry-run")
    run = env.last_run()
    check(run["id"] != first["id"] and run["kind"] == "dry_run" and len(copies(env)) == before,
          "kinds: a dry run starts its own run and writes nothing (%s %s)" % (run["id"], run["kind"]))
    r = env.run("check")
    with env.journal() as db:
        run = dict(db.execute("SELECT * FROM runs WHERE id = ?", (first["id"],)).fetchone())
        n = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    check(n == 2 and run["status"] == "completed" and env.in_sync(),
          "kinds: check continues the interrupted check (%s runs, %s)" % (n, run["status"]))


def routing_copies(env):
    """Copies of one id on several shards (custom routing), across page
    boundaries: every extra copy found; exactly one copy stays."""
    sharded_index(env)
    ids = ["d%03d" % i for i in range(30)]
    insert(env, [doc(x, i) for i, x in enumerate(ids)])
    env.run("check", RECONCILE_CHUNK_SIZE=10, OPENSEARCH_SCAN_PAGE=10)
    acts = []
    for t in ("d009", "d019", "d020"):
        for rv in "abcdef":
            acts += [{"index": {"_id": t, "routing": rv}},
                     {"mongo_id": t, "updatedAt": "2000-01-01T00:00:00Z"}]
    env.bulk(acts)
    for k in range(2):
        r = env.run("check", RECONCILE_CHUNK_SIZE=10, OPENSEARCH_SCAN_PAGE=10)
    per = copy_counts(env)
    check(all(per.get(x) == 1 for x in ids), "routing copies: exactly one copy of every id (%s)"
          % {k: v for k, v in per.items() if v != 1})
    check(env.in_sync(), "routing copies: the copy left is current")
    dry_run_clean(env, "routing copies")


def nul_mongo_ids(env):
    """A MongoDB _id holding a NUL is never cut into another id: it fails
    alone, and the document it would stand in for is left untouched."""
    env.create_index()
    insert(env, [{"_id": "abc", "who": "abc", "updatedAt": ext_date(DATE0)},
                 {"_id": "abc\u0000x", "who": "abc-nul-x", "updatedAt": ext_date(DATE0)},
                 {"_id": "plain", "who": "plain", "updatedAt": ext_date(DATE0)}])
    for args in (("check",), ("check",), ("check", "--full")):
        r = env.run(*args)
        run = env.last_run()
        st, got = env.os("GET", "/%s/_doc/abc" % env.index)
        check(r.returncode == 3 and run["failed_count"] == 1,
              "NUL id (%s): fails alone, exit 3 (%d, failed %s)" % (args, r.returncode, run["failed_count"]))
        check(st == 200 and got["_source"]["who"] == "abc",
              "NUL id (%s): the document abc keeps its own copy (%s)" % (args, got.get("_source")))
    # the last run is a full re-index: what it wrote is counted apart (reindexed)
    check(env.last_run()["reindexed_count"] == 2, "NUL id: the others are written")


def odd_mappings(env):
    """Mappings the pass cannot sort or read doc values from: it falls back
    (ids from _id, versions from _source) instead of failing every run."""
    st, body = env.os("PUT", "/" + env.index, {"mappings": {"properties": {
        "mongo_id": {"type": "keyword", "doc_values": False},
        "rev": {"type": "text"}}}})
    assert st == 200, body
    insert(env, [{"_id": "s%d" % i, "rev": "r-%d" % i} for i in range(8)])
    for k in range(2):
        r = env.run("check", RECONCILE_VERSION_FIELD="rev")
        check(r.returncode == 0 and env.last_run()["status"] == "completed",
              "odd mappings: run %d completes (%d, %s)" % (k, r.returncode, r.stderr[-300:]))
    env.mongo({"update": "ads", "updates": [{"q": {"_id": "s3"}, "u": {"$set": {"rev": "r-99"}}}]})
    r = env.run("check", RECONCILE_VERSION_FIELD="rev")
    run = env.last_run()
    check(r.returncode == 0 and run["stale_count"] == 1 and run["repaired_count"] == 1,
          "odd mappings: the stale copy found through _source (%s)" % run["stale_count"])
    r = env.run("check", "--dry-run", RECONCILE_VERSION_FIELD="rev")
    check(r.returncode == 0, "odd mappings: then a clean dry run (%s)" % r.stdout[-200:])


def mixed_alias_mapping(env):
    """An alias whose indices map the id field differently: ids from _id."""
    v1, v2 = env.index + "_v1", env.index + "_v2"
    env.os("PUT", "/" + v1, {"mappings": {"properties": {"mongo_id": {"type": "long"}}}})
    env.os("PUT", "/" + v2, {"mappings": {"properties": {"mongo_id": {"type": "keyword"}}}})
    env.os("POST", "/_aliases", {"actions": [
        {"add": {"index": v1, "alias": env.index}},
        {"add": {"index": v2, "alias": env.index, "is_write_index": True}}]})
    env.os("POST", "/%s/_bulk?refresh=true" % v1, [{"index": {"_id": "7"}}, {"mongo_id": 7}],
           ndjson=True)
    insert(env, [doc({"$numberLong": "7"}, 7), doc("s1", 1)])
    for k in range(2):
        r = env.run("check", RECONCILE_ORPHANS="delete")
        check(r.returncode == 0 and env.last_run()["status"] == "completed",
              "mixed alias mapping: run %d completes (%s)" % (k, r.stderr[-300:]))
    check(env.in_sync(), "mixed alias mapping: index equals MongoDB")
    for ix in (v1, v2):
        env.os("DELETE", "/" + ix)


def foreign_on_shards(env):
    """Copies under a live document's _id but another key, on other shards:
    extra copies, deleted where they are; the document's own copy stays."""
    sharded_index(env)
    ids = ["s%02d" % i for i in range(12)]
    insert(env, [doc(x, i) for i, x in enumerate(ids)])
    env.run("check")
    acts = []
    for x in ids[:6]:
        for rv in "abcd":
            acts += [{"index": {"_id": x, "routing": rv}}, {"mongo_id": "zz-gone-" + x}]
    env.bulk(acts)
    for k in range(2):
        r = env.run("check", RECONCILE_ORPHANS="delete")
    per = copy_counts(env)
    check(all(per.get(x) == 1 for x in ids) and len(per) == len(ids),
          "foreign on shards: one copy of each id left (%s)" % {k: v for k, v in per.items() if v != 1})
    check(env.in_sync(), "foreign on shards: index equals MongoDB")
    dry_run_clean(env, "foreign on shards")


def lean_pages(env):
    """Copies alone under their key whose _id or routing is not the usual
    (what a stream reading no stored fields could not see: docs/PERFORMANCE.md):
    a routed stale copy is overwritten in place (not doubled on another
    shard), a routed orphan and an orphan under a foreign _id are deleted by
    their own routing and _id, and a copy keyed by a gone id but sitting
    under a live document's _id is that document's place: overwritten by
    it, never deleted after it. All in one run."""
    sharded_index(env)
    ids = ["s%02d" % i for i in range(40)]
    insert(env, [doc(x, i) for i, x in enumerate(ids)])
    env.run("check")

    # routing values that place a copy on another shard than its _id would
    r7 = next(v for v in ("r%d" % i for i in range(100)) if env.shard_of(v) != env.shard_of("s03"))
    q9 = next(v for v in ("q%d" % i for i in range(100)) if env.shard_of(v) != env.shard_of("zz-routed"))
    # s03's copy moves to routing r7 and goes stale; two orphans: one
    # routed, one under a foreign _id
    env.os("DELETE", "/%s/_doc/s03?refresh=true" % env.index)
    env.os("DELETE", "/%s/_doc/s07?refresh=true" % env.index)
    env.bulk([{"index": {"_id": "s03", "routing": r7}},
              {"mongo_id": "s03", "title": "old", "updatedAt": "2020-01-01T00:00:00Z"},
              {"index": {"_id": "zz-routed", "routing": q9}},
              {"mongo_id": "zz-routed", "updatedAt": "2020-01-01T00:00:00Z"},
              {"index": {"_id": "F-1"}},
              {"mongo_id": "zz-foreign", "updatedAt": "2020-01-01T00:00:00Z"},
              {"index": {"_id": "s07"}},
              {"mongo_id": "zz-gone-7", "updatedAt": "2020-01-01T00:00:00Z"}])
    r = env.run("check", RECONCILE_ORPHANS="delete")
    per = copy_counts(env)
    check(r.returncode == 0 and per == {x: 1 for x in ids},
          "lean pages: one run leaves one copy of each live id and no orphan (%s, %s)"
          % (r.returncode, {k: v for k, v in per.items() if v != 1 or k not in ids}))
    st, got = env.os("GET", "/%s/_doc/s03?routing=%s" % (env.index, r7))
    check(got.get("found") and got["_source"].get("title") == "doc 3",
          "lean pages: the routed stale copy is overwritten where it is (%s)" % got.get("_source"))
    st, got = env.os("GET", "/%s/_doc/s07" % env.index)
    check(got.get("found") and got["_source"].get("mongo_id") == "s07",
          "lean pages: a live document's _id holding a gone key's copy is its place (%s)"
          % got.get("_source"))
    check(env.in_sync(), "lean pages: index equals MongoDB")
    dry_run_clean(env, "lean pages")


def main():
    for kind in sorted(ID_TYPES):
        scenario("ids_" + kind, id_type_roundtrip(kind))
    scenario("mixed", mixed_ids)
    for seed in (1, 2, 3):
        scenario("prop%d" % seed, property_run(seed))
    scenario("longids", long_ids)
    scenario("dates", dates)
    scenario("alias", alias)
    scenario("collide", collisions)
    scenario("collide2", collisions_same_version)
    scenario("reasons", reasons)
    scenario("foreign", foreign_copies)
    scenario("normalizer", normalizer)
    scenario("numcursor", resume_number_cursor)
    scenario("refused", refused_ids)
    scenario("settingsonly", settings_only_index)
    scenario("kinds", kinds_resume)
    scenario("routing", routing_copies)
    scenario("nulids", nul_mongo_ids)
    scenario("oddmap", odd_mappings)
    scenario("mixalias", mixed_alias_mapping)
    scenario("foreignshards", foreign_on_shards)
    scenario("lean", lean_pages)
    done()


if __name__ == "__main__":
    main()
