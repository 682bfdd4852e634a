"""Verifying by range summaries (issue 20, RECONCILE_VERIFY): a key range
whose summaries (count and 64-bit hash sum, computed by the index's Painless
script and by the reconciler in C) agree is in sync; one that differs is
streamed and merged. Against the real servers:

- exactness: on ObjectId and on string ids (multi-byte text included), for
  random drift of every kind (missing, orphans before the first and after
  the last id, stale copies one millisecond old, copies under a foreign
  _id, compensating drift: k missing + k orphans with equal versions in one
  range), with fixed seeds, the drift found with RECONCILE_VERIFY=summary
  is the drift found with merge; duplicate copies in two backing indices of
  an alias too; after a repair the dry run is clean;
- the script and the C side hash alike for every id and version form
  (ObjectId hex, multi-byte and 4-byte UTF-8 text, numbers as text, a date
  version from a BSON Date and from ISO text, a long version, none): every
  range of a mirror in sync is summarized, none streamed; and the script's
  value of each copy equals this file's hash (the function docs/ENGINE.md
  states);
- the fallbacks: a node without Painless (a node of this test's own) makes
  auto say so once and merge, and summary fail with exit 78; a mirror that
  does not qualify merges and journals why;
- a differing range is read keys-only (no stored _id, no _routing) and
  the copies that can drift are read again with their stored fields: in a
  3-shard index a stale copy under a custom _routing is repaired where it
  is (one copy after, the dry run clean, no copy on another shard), a copy
  under a foreign _id and one key's copies under two routings are found as
  the merge finds them;
- a run killed between chunks resumes after its last committed range, and
  its range counts add up;
- show (text and --json), the API's run report and /metrics show them."""
import json
import random
import signal
import sys
import time
import urllib.request

from harness import Env, ServerSet, check, done, run_all

DATE0 = 1704067200000  # 2024-01-01T00:00:00.000Z
M64 = (1 << 64) - 1


def date(ms):
    return {"$date": {"$numberLong": str(ms)}}


# ---- the hash, as docs/ENGINE.md states it (src/summary.c) ---------------

def _units(s):
    for ch in s:
        c = ord(ch)
        if c >= 0x10000:
            c -= 0x10000
            yield 0xD800 | (c >> 10)
            yield 0xDC00 | (c & 0x3FF)
        else:
            yield c


def summary_hash(key, docid, version):
    h = 0xcbf29ce484222325
    p = 0x100000001b3

    def unit(h, u):
        return ((h ^ u) * p) & M64
    for u in _units(key):
        h = unit(h, u)
    h = unit(h, 0)
    for u in _units(docid):
        h = unit(h, u)
    if version is None:
        h = unit(h, 2)
    else:
        h = unit(h, 1)
        v = version & M64
        for j in range(4):
            h = unit(h, (v >> (16 * j)) & 0xFFFF)
    h = ((h ^ (h >> 30)) * 0xbf58476d1ce4e5b9) & M64
    h = ((h ^ (h >> 27)) * 0x94d049bb133111eb) & M64
    return h ^ (h >> 31)


def script_value(env, key, vfield, vdate):
    """The index's own summary of the one copy keyed key (count, sum)."""
    import re
    with open(__file__.replace("tests/integration/test_summary.py", "src/summary.c")) as f:
        src = f.read()

    def grab(name):
        m = re.search(r'const char %s\[\] =\s*((?:\s*"(?:[^"\\]|\\.)*")+);' % name, src)
        return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))).replace('\\"', '"')
    sm = {"init_script": grab("summary_script_init"), "map_script": grab("summary_script_map"),
          "combine_script": grab("summary_script_combine"),
          "reduce_script": grab("summary_script_reduce"),
          "params": {"f": "mongo_id", "v": vfield, "d": vdate}}
    st, res = env.os("POST", "/%s/_search" % env.index,
                     {"size": 0, "query": {"term": {"mongo_id": key}},
                      "aggs": {"s": {"scripted_metric": sm}}})
    assert st == 200, res
    n, s = res["aggregations"]["s"]["value"].split(":")
    return int(n), int(s) & M64


# ---- helpers ---------------------------------------------------------------

def drift_set(env, run_id):
    with env.journal() as db:
        return sorted(tuple(r) for r in db.execute(
            "SELECT kind, doc_id, os_index, os_id, routing FROM run_ids WHERE run_id = ?",
            (run_id,)))


def dry(env, mode, **settings):
    r = env.run("check", "--dry-run", RECONCILE_VERIFY=mode, **settings)
    run = env.last_run()
    return r, run, drift_set(env, run["id"])


def insert(env, docs):
    for at in range(0, len(docs), 500):
        env.mongo({"insert": "ads", "documents": docs[at:at + 500]})


def oid_key(i):
    return "65%022x" % (i * 7919 + 11)


def str_key(i):
    forms = ["k%04d", "é%04d", "日本%04d", "😀%04d", "z%04d-ü"]
    return forms[i % len(forms)] % i


def seed_collection(env, cls, n):
    keys = sorted((oid_key(i) if cls == "oid" else str_key(i)) for i in range(n))
    keys.sort(key=lambda k: k.encode())
    docs = [{"_id": {"$oid": k} if cls == "oid" else k, "title": "t",
             "updatedAt": date(DATE0 + i * 1000)} for i, k in enumerate(keys)]
    insert(env, docs)
    versions = {k: DATE0 + i * 1000 for i, k in enumerate(keys)}
    return keys, versions


def random_drift(env, rng, cls, keys, versions):
    """Random drift of every kind but duplicates across indices (alias)."""
    acts, deletes = [], []
    n = len(keys)
    before = "000000000000000000000000" if cls == "oid" else "!before"
    after = "ffffffffffffffffffffffff" if cls == "oid" else "\U0010FFFDafter"

    def orphan(k, v):
        acts.extend([{"index": {"_id": k}}, {"mongo_id": k, "updatedAt": v}])
    # orphans before the first and after the last id
    if rng.random() < 0.7:
        orphan(before, DATE0)
    if rng.random() < 0.7:
        orphan(after, DATE0)
    picks = rng.sample(range(1, n - 1), 12)
    missing, orphaned, stale, foreign = picks[0:3], picks[3:5], picks[5:8], picks[8:10]
    for i in missing:  # the copy is gone
        acts.append({"delete": {"_id": keys[i]}})
    for i in orphaned:  # MongoDB's document is gone
        deletes.append({"q": {"_id": {"$oid": keys[i]} if cls == "oid" else keys[i]},
                        "limit": 1})
    for i in stale:  # one millisecond old
        acts.extend([{"index": {"_id": keys[i]}},
                     {"mongo_id": keys[i], "updatedAt": versions[keys[i]] - 1}])
    for i in foreign:  # a second copy under an auto-generated _id
        acts.extend([{"index": {"_id": "auto-%d-%d" % (i, rng.randrange(1 << 30))}},
                     {"mongo_id": keys[i], "updatedAt": versions[keys[i]]}])
    # compensating: k missing + k orphans in one range, equal versions (a
    # bulk import's shared timestamp)
    at = picks[10]
    shared = DATE0 + 5
    for j in range(2):
        if at + j >= n - 1:
            break
        k = keys[at + j]
        acts.extend([{"index": {"_id": k}}, {"mongo_id": k, "updatedAt": shared}])
        deletes.append({"q": {"_id": {"$oid": k} if cls == "oid" else k}, "limit": 1})
    # ... and their twins: new ids next to them in MongoDB only, same version
    twins = []
    for j in range(2):
        k = keys[at + j]
        twin = (k[:-1] + ("0" if k[-1] != "0" else "1")) if cls == "oid" else k + "~"
        if twin in versions:
            continue
        twins.append({"_id": {"$oid": twin} if cls == "oid" else twin, "updatedAt": date(shared)})
    if acts:
        env.bulk(acts)
    if deletes:
        env.mongo({"delete": "ads", "deletes": deletes})
    if twins:
        env.mongo({"insert": "ads", "documents": twins})


# ---- scenarios ---------------------------------------------------------------

def exactness(cls, seed):
    def scenario(env):
        rng = random.Random(seed)
        env.create_index()
        keys, versions = seed_collection(env, cls, 300)
        r = env.run("check", RECONCILE_VERIFY="merge")
        check(r.returncode == 0, "%s/%d: the first check writes the index (%s)"
              % (cls, seed, r.stderr[-300:]))
        random_drift(env, rng, cls, keys, versions)
        small = dict(RECONCILE_CHUNK_SIZE=40)
        rs, runs, ss = dry(env, "summary", **small)
        rm, runm, sm = dry(env, "merge", **small)
        ra, runa, sa = dry(env, "auto", **small)
        check(rs.returncode == rm.returncode == 1 and ss == sm and sa == sm and len(sm) > 5,
              "%s/%d: summary, auto and merge find the same drift (%d rows; summary-only %s, "
              "merge-only %s; %s)" % (cls, seed, len(sm), sorted(set(ss) - set(sm))[:5],
                                      sorted(set(sm) - set(ss))[:5], rs.stderr[-300:]))
        check(runs["verify"] == "summary" and runs["ranges_summarized"] > 0 and
              runs["ranges_descended"] > 0 and runm["verify"] == "merge",
              "%s/%d: the summary run verified %s ranges by summary and streamed %s"
              % (cls, seed, runs["ranges_summarized"], runs["ranges_descended"]))
        check(runs["missing_count"] == runm["missing_count"] and
              runs["orphan_count"] == runm["orphan_count"] and
              runs["stale_count"] == runm["stale_count"] and
              runs["duplicate_count"] == runm["duplicate_count"],
              "%s/%d: the journal's counts agree" % (cls, seed))
        r = env.run("check", RECONCILE_VERIFY="summary", RECONCILE_ORPHANS="delete",
                    RECONCILE_MAX_DELETE_RATIO=1, **small)
        check(r.returncode == 0, "%s/%d: the repair by summaries exits 0 (%d %s)"
              % (cls, seed, r.returncode, r.stderr[-300:]))
        rs, runs, ss = dry(env, "summary", **small)
        rm, runm, sm = dry(env, "merge", **small)
        check(rs.returncode == 0 and rm.returncode == 0 and ss == [] and sm == [] and
              runs["ranges_descended"] == 0,
              "%s/%d: after the repair both dry runs are clean, no range streamed (%s %s %s)"
              % (cls, seed, ss[:3], sm[:3], runs["ranges_descended"]))
    return ("exact_%s_%d" % (cls, seed), scenario)


def alias_duplicates(env):
    a, b = env.index + "_a", env.index + "_b"
    props = {"mongo_id": {"type": "keyword"}, "updatedAt": {"type": "date"}}
    try:
        for ix in (a, b):
            st, res = env.os("PUT", "/" + ix, {"mappings": {"properties": props}})
            assert st == 200, res
        st, res = env.os("POST", "/_aliases", {"actions": [
            {"add": {"index": a, "alias": env.index, "is_write_index": True}},
            {"add": {"index": b, "alias": env.index}}]})
        assert st == 200, res
        keys, versions = seed_collection(env, "string", 120)
        r = env.run("check", RECONCILE_VERIFY="merge")
        check(r.returncode == 0, "alias: the first check (%s)" % r.stderr[-300:])
        # duplicates: copies of some documents in the other backing index,
        # one with the same version, one older
        acts = []
        for i in (3, 50, 51, 110):
            k = keys[i]
            acts.extend([{"index": {"_index": b, "_id": k}},
                         {"mongo_id": k, "updatedAt": versions[k] - (i % 2)}])
        st, res = env.os("POST", "/_bulk?refresh=true", acts, ndjson=True)
        assert st == 200 and not res.get("errors"), res
        rs, runs, ss = dry(env, "summary", RECONCILE_CHUNK_SIZE=20)
        rm, runm, sm = dry(env, "merge", RECONCILE_CHUNK_SIZE=20)
        check(ss == sm and runs["duplicate_count"] == 4 and runs["ranges_summarized"] > 0,
              "alias: duplicates in two backing indices found alike (%s vs %s, %s summarized)"
              % (ss, sm, runs["ranges_summarized"]))
    finally:
        env.os("DELETE", "/%s,%s" % (a, b))


def other_shard_routing(env, key):
    """A routing value that puts a copy on another shard than key's own."""
    own = env.shard_of(key)
    return next(r for r in ("r%d" % i for i in range(100)) if env.shard_of(r) != own)


def keys_only_descent(env):
    """Copies whose place a keys-only read cannot tell (docs/ENGINE.md):
    the descent reads them again before anything is written to them."""
    props = {"mongo_id": {"type": "keyword"}, "updatedAt": {"type": "date"}}
    st, res = env.os("PUT", "/" + env.index, {"settings": {"number_of_shards": 3},
                                               "mappings": {"properties": props}})
    assert st == 200, res
    keys, versions = seed_collection(env, "string", 200)
    r = env.run("check", RECONCILE_VERIFY="merge")
    check(r.returncode == 0, "keys-only: the first check (%s)" % r.stderr[-300:])
    stale, dup, foreign = keys[40], keys[120], keys[160]
    rs, rd = other_shard_routing(env, stale), other_shard_routing(env, dup)
    # stale: its only copy under a custom routing, one millisecond old
    env.bulk([{"delete": {"_id": stale}},
              {"index": {"_id": stale, "routing": rs}},
              {"mongo_id": stale, "updatedAt": versions[stale] - 1},
              # duplicates: a second copy of one key under another routing
              {"index": {"_id": dup, "routing": rd}},
              {"mongo_id": dup, "updatedAt": versions[dup]},
              # a copy under a foreign _id next to its own
              {"index": {"_id": "auto-foreign"}},
              {"mongo_id": foreign, "updatedAt": versions[foreign]}])
    small = dict(RECONCILE_CHUNK_SIZE=40)
    rs_, runs, ss = dry(env, "summary", **small)
    rm, runm, sm = dry(env, "merge", **small)
    check(rs_.returncode == rm.returncode == 1 and ss == sm and runs["ranges_descended"] == 3,
          "keys-only: summary and merge find the same drift (%s vs %s; %s streamed; %s)"
          % (ss, sm, runs["ranges_descended"], rs_.stderr[-300:]))
    check(any(x[0] == "stale" and x[1] == stale and x[3] in ("", stale) and x[4] == rs
              for x in ss) and
          any(x[0] == "duplicate" and x[1] == dup and x[4] == rd for x in ss) and
          any(x[0] == "duplicate" and x[3] == "auto-foreign" for x in ss),
          "keys-only: the stale copy under its routing, the duplicate's routing and the "
          "foreign _id are the index's (%s)" % ss)
    r = env.run("check", RECONCILE_VERIFY="summary", RECONCILE_ORPHANS="delete",
                RECONCILE_MAX_DELETE_RATIO=1, **small)
    check(r.returncode == 0, "keys-only: the repair by summaries exits 0 (%d %s)"
          % (r.returncode, r.stderr[-300:]))
    env.refresh()
    copies = {}
    for k in (stale, dup, foreign):
        st, res = env.os("POST", "/%s/_search" % env.index,
                         {"query": {"term": {"mongo_id": k}}, "seq_no_primary_term": True})
        copies[k] = [(h["_id"], h.get("_routing"), h["_source"]["updatedAt"])
                     for h in res["hits"]["hits"]]
    check(len(copies[stale]) == 1 and copies[stale][0][1] == rs and
          len(copies[dup]) == 1 and len(copies[foreign]) == 1 and
          copies[foreign][0][0] == foreign,
          "keys-only: one copy of each after the repair, the stale one rewritten under its "
          "routing, none created on another shard (%s)" % copies)
    rs_, runs, ss = dry(env, "summary", **small)
    rm, runm, sm = dry(env, "merge", **small)
    check(rs_.returncode == 0 and rm.returncode == 0 and ss == [] and sm == [] and
          runs["ranges_descended"] == 0,
          "keys-only: after the repair both dry runs are clean (%s %s)" % (ss[:3], sm[:3]))


def hash_forms(env):
    """Every id and version form: all ranges summarized, none streamed."""
    env.create_index()
    ids = ["abc", "é", "日本語", "😀", "a😀b", "42", "007", "-1", "1e5", "\U00010348x"]
    docs = []
    for i, k in enumerate(ids):
        d = {"_id": k, "title": "t"}
        if i % 3 == 0:
            d["updatedAt"] = date(DATE0 + i)
        elif i % 3 == 1:
            d["updatedAt"] = "2024-03-0%dT10:20:30.%03dZ" % (1 + i % 9, i)
        docs.append(d)  # i % 3 == 2: no version
    insert(env, docs)
    r = env.run("check", RECONCILE_VERIFY="merge")
    check(r.returncode == 0, "forms: the first check (%s)" % r.stderr[-300:])
    r, run, s = dry(env, "summary", RECONCILE_CHUNK_SIZE=10)
    check(r.returncode == 0 and s == [] and run["ranges_descended"] == 0 and
          run["ranges_summarized"] == 2,
          "forms (text ids, Date/ISO/no version): every range summarized, none streamed "
          "(%s summarized, %s streamed, %s)" % (run["ranges_summarized"],
                                                 run["ranges_descended"], r.stderr[-300:]))
    bad = []
    for d in docs:
        v = d.get("updatedAt")
        ms = None
        if isinstance(v, dict):
            ms = int(v["$date"]["$numberLong"])
        elif isinstance(v, str):
            from harness import iso_ms
            ms = iso_ms(v)
        n, sv = script_value(env, d["_id"], "updatedAt", True)
        if n != 1 or sv != summary_hash(d["_id"], d["_id"], ms):
            bad.append(d["_id"])
    check(bad == [], "forms: the script's hash of each copy is the stated function (%s)" % bad)


def hash_forms_oid_long(env):
    env.create_index({"n": {"type": "long"}})
    values = [0, 1, -5, 2**40 + 3, -(2**52), 2**53 - 1, None, 7]
    docs = []
    for i, v in enumerate(values):
        d = {"_id": {"$oid": oid_key(i + 1)}, "title": "t"}
        if v is not None:
            d["n"] = {"$numberLong": str(v)} if abs(v) > 2**31 else v
        docs.append(d)
    insert(env, docs)
    s = dict(RECONCILE_VERSION_FIELD="n")
    r = env.run("check", RECONCILE_VERIFY="merge", **s)
    check(r.returncode == 0, "oid/long: the first check (%s)" % r.stderr[-300:])
    r, run, d = dry(env, "summary", RECONCILE_CHUNK_SIZE=10, **s)
    check(r.returncode == 0 and d == [] and run["ranges_descended"] == 0 and
          run["ranges_summarized"] == 2,
          "ObjectIds, long versions: every range summarized (%s summarized, %s streamed, %s)"
          % (run["ranges_summarized"], run["ranges_descended"], r.stderr[-300:]))
    bad = [i for i, v in enumerate(values)
           if script_value(env, oid_key(i + 1), "n", False) !=
           (1, summary_hash(oid_key(i + 1), oid_key(i + 1), v))]
    check(bad == [], "oid/long: the script's hash of each copy is the stated function (%s)"
          % bad)


def no_version(env):
    """RECONCILE_VERSION_FIELD empty (QA20 F3): the script gets no null param
    (the node's scripted_metric failed on it and auto blamed the cluster);
    every range is summarized in the no-version form, the script and C hash
    alike, and drift is found as merge finds it."""
    env.create_index()
    ids = ["a%02d" % i for i in range(25)] + ["é1", "😀2"]
    insert(env, [{"_id": k, "title": "t", "updatedAt": date(DATE0 + i)}
                 for i, k in enumerate(ids)])
    nv = dict(RECONCILE_VERSION_FIELD="")
    r = env.run("check", RECONCILE_VERIFY="merge", **nv)
    check(r.returncode == 0, "no version: the first check (%s)" % r.stderr[-300:])
    r, run, s = dry(env, "summary", RECONCILE_CHUNK_SIZE=10, **nv)
    check(r.returncode == 0 and s == [] and run["verify"] == "summary" and
          run["ranges_summarized"] >= 3 and run["ranges_descended"] == 0,
          "no version: summary verifies every range by its summary (%d, %s summarized, "
          "%s streamed, %s)" % (r.returncode, run["ranges_summarized"],
                                run["ranges_descended"], r.stderr[-400:]))
    bad = [k for k in ids if script_value(env, k, "", False) != (1, summary_hash(k, k, None))]
    check(bad == [], "no version: the script's hash (params.v \"\") is the stated "
          "function's no-version form (%s)" % bad)
    env.bulk([{"delete": {"_id": "a05"}}, {"index": {"_id": "a05x"}},
              {"mongo_id": "a05x", "title": "t"}])
    rs, runs, ss = dry(env, "auto", RECONCILE_CHUNK_SIZE=10, **nv)
    rm, runm, sm = dry(env, "merge", RECONCILE_CHUNK_SIZE=10, **nv)
    check(runs["verify"] == "summary" and runs["verify_note"] is None and ss == sm and
          [x[:2] for x in ss] == [("missing", "a05"), ("orphan", "a05x")],
          "no version: auto summarizes, and finds what merge finds (%s, %s; %s vs %s)"
          % (runs["verify"], runs["verify_note"], ss, sm))


def not_qualified(env):
    """Mirrors the script cannot verify: auto merges and says why."""
    env.create_index({"region": {"type": "keyword"}, "ver": {"type": "keyword"}})
    insert(env, [{"_id": "a%d" % i, "region": "eu", "ver": "v%d" % i,
                  "updatedAt": date(DATE0)} for i in range(30)])
    r = env.run("check", RECONCILE_VERIFY="merge")
    check(r.returncode == 0, "not qualified: the first check (%s)" % r.stderr[-300:])
    cases = [
        ("routing field", dict(OPENSEARCH_ROUTING_FIELD="region"), "OPENSEARCH_ROUTING_FIELD"),
        ("content compare", dict(RECONCILE_COMPARE="content"), "RECONCILE_COMPARE=content"),
        ("keyword-text version", dict(RECONCILE_VERSION_FIELD="ver"), "RECONCILE_VERSION_FIELD"),
        ("transform", dict(RECONCILE_TRANSFORM=env.tmp + "/transform.lua"), "transform script"),
        ("_id keys", dict(OPENSEARCH_ID_FIELD=""), "_id"),
    ]
    with open(env.tmp + "/transform.lua", "w") as f:
        f.write("function transform(doc) return doc end\n")
    for name, settings, word in cases:
        r, run, s = dry(env, "auto", **settings)
        note = run["verify_note"] or ""
        check(run["verify"] == "merge" and word in note and run["ranges_summarized"] == 0,
              "not qualified (%s): auto merges and journals why (%s: %s; %s)"
              % (name, run["verify"], note, r.stderr[-300:]))
        r, run, s = dry(env, "summary", **settings)
        check(r.returncode == 78 and "RECONCILE_VERIFY=summary" in r.stderr and word in r.stderr,
              "not qualified (%s): summary fails with exit 78 saying why (%d %s)"
              % (name, r.returncode, r.stderr[-300:]))
    # mixed id classes: ObjectIds beside strings
    env.mongo({"insert": "ads", "documents": [{"_id": {"$oid": oid_key(i)},
                                               "updatedAt": date(DATE0)} for i in range(5)]})
    r, run, s = dry(env, "auto")
    check(run["verify"] == "summary" and "several classes" in (run["verify_note"] or "")
          and run["missing_count"] == 5,
          "mixed id classes: auto merges the rest and journals why (%s; %s)"
          % (run["verify_note"], r.stderr[-300:]))
    # show says the merge took over, not only that summaries verified (QA26 F2)
    r = env.run("show", str(run["id"]))
    check("by range summaries, then by merge:" in r.stdout and "several classes" in r.stdout,
          "mixed id classes: show says summaries, then merge (%s)" % r.stdout[:800])


def looked_up_classes(env):
    """Ids that are looked up, not merged (QA20 F8): an int-only collection
    journals verify merge with a note naming numbers (not "several
    classes"), and so does one of ints, strings and ObjectIds, whose whole
    pass merged: no range was summarized."""
    env.create_index()
    insert(env, [{"_id": i, "updatedAt": date(DATE0 + i)} for i in range(300)])
    r = env.run("check", RECONCILE_VERIFY="merge")
    check(r.returncode == 0, "int ids: the first check (%s)" % r.stderr[-300:])
    for mode in ("auto", "summary"):
        r, run, s = dry(env, mode)
        note = run["verify_note"] or ""
        check(run["verify"] == "merge" and "numbers" in note and "several" not in note and
              run["ranges_summarized"] == 0 and s == [],
              "int ids (%s): verify merge, the note names numbers (%s: %s)"
              % (mode, run["verify"], note))
    r = env.run("show", str(run["id"]))
    check("verified   by merge" in r.stdout and "range summaries" not in r.stdout,
          "int ids: show says verified by merge (%s)" % r.stdout[:900])
    insert(env, [{"_id": "s%d" % i, "updatedAt": date(DATE0)} for i in range(5)] +
           [{"_id": {"$oid": oid_key(i)}, "updatedAt": date(DATE0)} for i in range(5)])
    r, run, s = dry(env, "auto")
    check(run["verify"] == "merge" and run["ranges_summarized"] == 0 and
          run["missing_count"] == 10,
          "ints, strings, ObjectIds: verify merge, no range summarized (%s: %s)"
          % (run["verify"], run["verify_note"]))


def no_painless(env):
    """A node without Painless: auto says so once and merges; summary exits 78."""
    node = ServerSet(OPENSEARCH_HEAP="512m", OPENSEARCH_PAINLESS="off")
    try:
        node.start("opensearch")
        own = Env("nopainless", server_set=node)
        try:
            own.create_index()
            insert(own, [{"_id": "a%d" % i, "updatedAt": date(DATE0)} for i in range(20)])
            r = own.run("check", RECONCILE_VERIFY="merge")
            check(r.returncode == 0, "no painless: the first check (%s)" % r.stderr[-300:])
            own.bulk([{"index": {"_id": "zz"}}, {"mongo_id": "zz", "updatedAt": DATE0}])
            r, run, s = dry(own, "auto")
            said = r.stderr.count("refuses the summaries' script")
            check(r.returncode == 1 and run["verify"] == "merge" and said == 1 and
                  "script" in (run["verify_note"] or "") and
                  [x[:2] for x in s] == [("orphan", "zz")],
                  "no painless: auto says so once and merges (%d, said %d times, %s, %s)"
                  % (r.returncode, said, run["verify_note"], s))
            r, run, s = dry(own, "summary")
            check(r.returncode == 78 and "RECONCILE_VERIFY=summary" in r.stderr and
                  "script" in r.stderr,
                  "no painless: summary fails with exit 78 and a clear error (%d %s)"
                  % (r.returncode, r.stderr[-400:]))
        finally:
            own.cleanup()
    finally:
        node.close()


def killed_resume(env):
    """Killed between chunks: the resume continues after its last committed
    range, and its counts add up to a whole pass's."""
    env.create_index()
    keys, versions = seed_collection(env, "string", 3000)
    r = env.run("check", RECONCILE_VERIFY="merge")
    check(r.returncode == 0, "resume: the first check (%s)" % r.stderr[-300:])
    drop = [keys[i] for i in range(5, 3000, 97)]
    env.bulk([{"delete": {"_id": k}} for k in drop])
    whole = dict(RECONCILE_CHUNK_SIZE=10)
    t0 = time.monotonic()
    r, ref, ref_set = dry(env, "summary", **whole)
    took = time.monotonic() - t0
    p = env.spawn("check", "--dry-run", RECONCILE_VERIFY="summary", **whole)
    deadline = time.monotonic() + 120
    cursor = None
    db = env.journal()
    while time.monotonic() < deadline and p.poll() is None:
        try:
            row = db.execute("SELECT cursor, ranges_summarized FROM runs "
                             "WHERE id = ?", (ref["id"] + 1,)).fetchone()
            if row and row[0] and row[1] >= 5:
                p.send_signal(signal.SIGKILL)  # between two chunks' commits
                cursor = row[0]
                break
        except Exception:
            pass
    db.close()
    p.wait()
    killed = env.last_run()
    check(cursor and killed["status"] == "running" and
          0 < killed["ranges_summarized"] < ref["ranges_summarized"],
          "resume: the run was killed mid-pass after some ranges (%s, %s, %s of %s; a whole "
          "pass takes %.1f s)" % (cursor, killed["status"], killed["ranges_summarized"],
                                  ref["ranges_summarized"], took))
    r = env.run("resume", RECONCILE_VERIFY="summary", **whole)
    run = env.last_run()
    got = drift_set(env, run["id"])
    check(run["id"] == killed["id"] and run["status"] == "completed" and
          run["resume_count"] == 1,
          "resume: the same run completed (%s %s)" % (run["status"], r.stderr[-300:]))
    check(run["verify"] == "summary" and got == ref_set and
          run["ranges_summarized"] == ref["ranges_summarized"] and
          run["ranges_descended"] == ref["ranges_descended"],
          "resume: every range counted once, the drift found once (%s+%s vs %s+%s; %d vs %d "
          "rows; %s; %s)" % (run["ranges_summarized"], run["ranges_descended"],
                     ref["ranges_summarized"], ref["ranges_descended"], len(got), len(ref_set),
                     run["verify_note"], r.stderr[-1500:]))


def shown(env):
    """show (text, --json), the API's run report and /metrics."""
    env.create_index()
    insert(env, [{"_id": "a%03d" % i, "updatedAt": date(DATE0)} for i in range(50)])
    r = env.run("check", RECONCILE_VERIFY="merge")
    env.bulk([{"delete": {"_id": "a010"}}])
    r, run, s = dry(env, "summary", RECONCILE_CHUNK_SIZE=10)
    r = env.run("show", "--json", str(run["id"]))
    try:
        js = json.loads(r.stdout)
    except ValueError:
        js = {}
    rr = js.get("run", js)
    check(rr.get("verify") == "summary" and rr.get("rangesSummarized") == 5 and
          rr.get("rangesDescended") == 1,
          "show --json: verify, rangesSummarized, rangesDescended (%s)" % r.stdout[:600])
    r = env.run("show", str(run["id"]))
    check("by range summaries: 5 ranges in sync by their summaries, 1 streamed" in r.stdout,
          "show: the text report says how ranges were verified (%s)" % r.stdout[:800])
    from service import Service
    svc = Service(env)
    try:
        st, body, _ = svc.http("GET", "/api/reconciliation/runs/%d" % run["id"])
        rep = body.get("run", {}) if isinstance(body, dict) else {}
        check(st == 200 and rep.get("verify") == "summary" and rep.get("verifyNote") is None and
              rep.get("rangesSummarized") == 5 and rep.get("rangesDescended") == 1,
              "API run report: verify, verifyNote, rangesSummarized, rangesDescended (%s)"
              % {k: rep.get(k) for k in ("verify", "rangesSummarized", "rangesDescended")})
        st, text, _ = svc.http("GET", "/metrics")
        check(st == 200 and "reconciler_ranges_summarized_total 5" in text and
              "reconciler_ranges_descended_total 1" in text and
              "# TYPE reconciler_ranges_summarized_total counter" in text,
              "/metrics: reconciler_ranges_summarized_total, reconciler_ranges_descended_total")
    finally:
        svc.stop()


scenarios = [exactness(c, s) for c in ("oid", "string") for s in (1, 2)]
scenarios += [alias_duplicates, keys_only_descent, hash_forms, hash_forms_oid_long, no_version,
              not_qualified, looked_up_classes, killed_resume, shown, no_painless]
# a name on the command line runs just the scenarios whose names hold it
only = sys.argv[1:]
run_all([x for x in scenarios
         if not only or any(o in (x[0] if isinstance(x, tuple) else x.__name__) for o in only)],
        prefix="sum_")
