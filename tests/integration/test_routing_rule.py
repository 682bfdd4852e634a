"""The routing rule decides which copy of a document is kept (issue 19,
item 2). A document with copies under two routings (what a live syncer
leaves when a document moves shop and its delete went out unrouted) keeps
the one its rule (OPENSEARCH_ROUTING_FIELD, or a transform script's
routing) places, whichever is newer; a document with no copy there is
written there and its misrouted copies deleted; over an alias, the copy
kept is the one under the rule's routing in the write index. After one
`check`, every document has exactly one copy, a routed GET finds it, and a
dry run is clean. All on 4-shard indices with _routing required."""
from harness import check, run_all, write

DATE0 = 1704067200000  # 2024-01-01T00:00:00.000Z
NEW = DATE0 + 1000
SHARDS = 4


def date(ms):
    return {"$date": {"$numberLong": str(ms)}}


def iso(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def make_index(env, name):
    st, body = env.os("PUT", "/" + name, {
        "settings": {"number_of_shards": SHARDS, "number_of_replicas": 0},
        "mappings": {"_routing": {"required": True},
                     "properties": {"mongo_id": {"type": "keyword"},
                                    "updatedAt": {"type": "date"},
                                    "shop_id": {"type": "keyword"}}}})
    assert st == 200, body


def shard_of(env, index, routing):
    import urllib.parse
    st, res = env.os("GET", "/%s/_search_shards?routing=%s"
                     % (index, urllib.parse.quote(routing, safe="")))
    assert st == 200, res
    return res["shards"][0][0]["shard"]


def other_shop(env, index, shop, shops):
    """A shop whose routing lands on another shard than shop's."""
    for s in shops:
        if shard_of(env, index, s) != shard_of(env, index, shop):
            return s
    raise AssertionError("every shop on one shard")


def put(env, index, idv, shop, routing, ms):
    st, res = env.os("POST", "/%s/_bulk?refresh=true" % index, [
        {"index": {"_id": idv, "routing": routing}},
        {"mongo_id": idv, "shop_id": shop, "title": "t-" + idv, "updatedAt": iso(ms)}],
        ndjson=True)
    assert st == 200 and not res.get("errors"), res


def copies(env, target):
    """{_id: [(_index, _routing, updatedAt)]} of every copy (a search reads every shard)."""
    env.os("POST", "/%s/_refresh" % target)
    st, res = env.os("POST", "/%s/_search" % target, {"size": 1000, "_source": ["updatedAt"]})
    assert st == 200, res
    out = {}
    for h in res["hits"]["hits"]:
        out.setdefault(h["_id"], []).append(
            (h["_index"], h.get("_routing"), h["_source"].get("updatedAt")))
    return out


def routed_get(env, target, idv, routing):
    import urllib.parse
    st, res = env.os("GET", "/%s/_doc/%s?routing=%s" % (
        target, urllib.parse.quote(idv, safe=""), urllib.parse.quote(routing, safe="")))
    return st == 200 and res.get("found")


SHOPS = ["shop-%d" % i for i in range(8)]


def one_index(env, **settings):
    """Copies under their own shop and another's: the correct one newer
    (r0-r3), older (r4-r7), both older (r8-r9); one misrouted copy, older
    (r10-r11)."""
    make_index(env, env.index)
    docs, want = [], {}
    for i in range(12):
        idv, shop = "r%02d" % i, SHOPS[i % len(SHOPS)]
        docs.append({"_id": idv, "shop_id": shop, "title": "t-" + idv, "updatedAt": date(NEW)})
        want[idv] = shop
        wrong = other_shop(env, env.index, shop, SHOPS)
        if i < 4:
            put(env, env.index, idv, shop, shop, NEW)
            put(env, env.index, idv, shop, wrong, DATE0)
        elif i < 8:
            put(env, env.index, idv, shop, shop, DATE0)
            put(env, env.index, idv, shop, wrong, NEW)
        elif i < 10:
            put(env, env.index, idv, shop, shop, DATE0)
            put(env, env.index, idv, shop, wrong, DATE0 + 500)
        else:
            put(env, env.index, idv, shop, wrong, DATE0)
    env.mongo({"insert": "ads", "documents": docs})
    r = env.run("check", **settings)
    got = copies(env, env.index)
    bad = {k: got.get(k) for k, shop in want.items()
           if [(c[1], c[2]) for c in got.get(k, [])] != [(shop, iso(NEW))]}
    check(r.returncode == 0 and not bad,
          "%s: every document has one copy, under its rule's routing, newest (%d; wrong: %s; %s)"
          % (env.index, r.returncode, bad, r.stderr[-300:]))
    lost = [k for k, shop in want.items() if not routed_get(env, env.index, k, shop)]
    check(not lost, "%s: GET ?routing=<shop_id> finds every document (%s)" % (env.index, lost))
    r = env.run("check", "--dry-run", **settings)
    check(r.returncode == 0, "%s: the dry run after is clean (%d %s)"
          % (env.index, r.returncode, r.stdout[-300:]))


def routing_field(env):
    one_index(env, OPENSEARCH_ROUTING_FIELD="shop_id")


def routing_field_index_mode(env):
    one_index(env, OPENSEARCH_ROUTING_FIELD="shop_id", RECONCILE_WRITE_MODE="index")


def routing_script(env):
    script = write(env, "shop.lua", "function transform(doc)\n"
                   "  return {shop_id = doc.shop_id, title = doc.title,\n"
                   "          updatedAt = doc.updatedAt}, doc.shop_id\nend\n")
    one_index(env, RECONCILE_TRANSFORM=script)


def single_by_content(env):
    """One copy, in sync by version, under another shop's routing: the
    versions cannot tell, RECONCILE_COMPARE=content does (the routing the
    rule gives the document is part of what a repair writes)."""
    make_index(env, env.index)
    docs, want = [], {}
    for i in range(6):
        idv, shop = "s%02d" % i, SHOPS[i]
        docs.append({"_id": idv, "shop_id": shop, "title": "t-" + idv, "updatedAt": date(NEW)})
        want[idv] = shop
        put(env, env.index, idv, shop, other_shop(env, env.index, shop, SHOPS), NEW)
    env.mongo({"insert": "ads", "documents": docs})
    settings = dict(OPENSEARCH_ROUTING_FIELD="shop_id", RECONCILE_COMPARE="content")
    r = env.run("check", **settings)
    got = copies(env, env.index)
    bad = {k: got.get(k) for k, shop in want.items()
           if [(c[1], c[2]) for c in got.get(k, [])] != [(shop, iso(NEW))]}
    check(r.returncode == 0 and not bad,
          "single by content: a misrouted copy in sync by version is moved under its "
          "rule's routing (%d; wrong: %s; %s)" % (r.returncode, bad, r.stderr[-300:]))
    r = env.run("check", "--dry-run", **settings)
    check(r.returncode == 0, "single by content: the dry run after is clean (%d %s)"
          % (r.returncode, r.stdout[-300:]))


def alias(env):
    """Two backing indices, v2 the write index: the copy kept is the one
    under the rule's routing in v2; with none there, the document is
    written there and the others deleted."""
    v1, v2 = env.index + "_v1", env.index + "_v2"
    try:
        make_index(env, v1)
        make_index(env, v2)
        st, body = env.os("POST", "/_aliases", {"actions": [
            {"add": {"index": v1, "alias": env.index}},
            {"add": {"index": v2, "alias": env.index, "is_write_index": True}}]})
        assert st == 200, body
        docs, want = [], {}
        for i in range(8):
            idv, shop = "a%02d" % i, SHOPS[i]
            docs.append({"_id": idv, "shop_id": shop, "updatedAt": date(NEW)})
            want[idv] = shop
            wrong = other_shop(env, v2, shop, SHOPS)
            if i < 2:    # v1 right (newest), v2 misrouted: none placed
                put(env, v1, idv, shop, shop, NEW)
                put(env, v2, idv, shop, wrong, DATE0)
            elif i < 4:  # v1 misrouted (newest), v2 right (older)
                put(env, v1, idv, shop, wrong, NEW)
                put(env, v2, idv, shop, shop, DATE0)
            elif i < 6:  # both right, v1 newer
                put(env, v1, idv, shop, shop, NEW)
                put(env, v2, idv, shop, shop, DATE0)
            else:        # two copies in v2 (two shards), the misrouted one newer
                # on a lower shard (a06) and a higher one (a07): whichever
                # of the two the index's order puts first, one is misrouted
                shards = {s: shard_of(env, v2, s) for s in SHOPS}
                lo, hi = min(shards.values()), max(shards.values())
                shop = [s for s in SHOPS if shards[s] == (hi if i == 6 else lo)][0]
                wrong = [s for s in SHOPS if shards[s] == (lo if i == 6 else hi)][0]
                docs[-1]["shop_id"] = want[idv] = shop
                put(env, v2, idv, shop, shop, DATE0)
                put(env, v2, idv, shop, wrong, NEW)
        env.mongo({"insert": "ads", "documents": docs})
        r = env.run("check", OPENSEARCH_ROUTING_FIELD="shop_id")
        got = copies(env, env.index)
        bad = {k: got.get(k) for k, shop in want.items()
               if got.get(k) != [(v2, shop, iso(NEW))]}
        check(r.returncode == 0 and not bad,
              "alias: one copy each, in the write index under the rule's routing (%d; wrong: "
              "%s; %s)" % (r.returncode, bad, r.stderr[-300:]))
        # a GET through an alias of two indices is refused: the write index
        lost = [k for k, shop in want.items() if not routed_get(env, v2, k, shop)]
        check(not lost, "alias: GET ?routing=<shop_id> finds every document (%s)" % lost)
        r = env.run("check", "--dry-run", OPENSEARCH_ROUTING_FIELD="shop_id")
        check(r.returncode == 0, "alias: the dry run after is clean (%d %s)"
              % (r.returncode, r.stdout[-300:]))
    finally:
        for ix in (v1, v2):
            env.os("DELETE", "/" + ix)



def counts(out):
    """{name: n} of the run's summary line ("..., skipped_newer 0")."""
    import re
    line = [x for x in out.splitlines() if "completed:" in x]
    return {k: int(v) for k, v in re.findall(r"([a-z_]+) (-?\d+)", line[-1] if line else "")}


def shard_mates(env, index, shop, candidates):
    """(far, near): a routing on another shard than shop's, and one other
    than shop on the same shard (asked of the index, not assumed)."""
    mine = shard_of(env, index, shop)
    far = near = None
    for c in candidates:
        if c == shop:
            continue
        s = shard_of(env, index, c)
        if s != mine and far is None:
            far = c
        if s == mine and near is None:
            near = c
    assert far and near, "no routing found on %s's shard and another" % shop
    return far, near


def two_wrong(env, upsert=True, **settings):
    """QA19 F1/F2: copies under two wrong routings, one of them on the same
    shard as the rule's (an _id is unique per shard, whatever its
    _routing): the move of one copy must not be refused by the other (it
    is the document's own duplicate, not a newer write), nor the document
    end with no copy. Versions: both equal (w0-w2), the near copy newer
    (w3-w5), the far copy newer (w6-w8). A field only the index has
    (extra) stays in upsert mode."""
    make_index(env, env.index)
    cands = ["shop-%d" % i for i in range(64)]
    docs, want = [], {}
    for i in range(9):
        idv, shop = "w%02d" % i, SHOPS[i % len(SHOPS)]
        docs.append({"_id": idv, "shop_id": shop, "title": "new-" + idv, "updatedAt": date(NEW)})
        want[idv] = shop
        far, near = shard_mates(env, env.index, shop, cands)
        v_near, v_far = [(NEW, NEW), (NEW, DATE0), (DATE0, NEW)][i // 3]
        for routing, ms in ((far, v_far), (near, v_near)):
            st, res = env.os("POST", "/%s/_bulk?refresh=true" % env.index, [
                {"index": {"_id": idv, "routing": routing}},
                {"mongo_id": idv, "shop_id": shop, "title": "old-" + idv, "extra": "e",
                 "updatedAt": iso(ms)}], ndjson=True)
            assert st == 200 and not res.get("errors"), res
    before = copies(env, env.index)
    assert all(len(before[k]) == 2 for k in want), before
    env.mongo({"insert": "ads", "documents": docs})
    r = env.run("check", **settings)
    got = copies(env, env.index)
    bad = {k: got.get(k) for k, shop in want.items()
           if [(c[1], c[2]) for c in got.get(k, [])] != [(shop, iso(NEW))]}
    n = counts(r.stdout)
    check(r.returncode == 0 and not bad,
          "%s: one copy each, under its rule's routing, after one check (%d; wrong: %s; %s)"
          % (env.index, r.returncode, bad, r.stderr[-600:]))
    check("failed" in n and n.get("skipped_newer", 0) == 0 and n["failed"] == 0,
          "%s: no false skipped_newer, nothing failed (%s)" % (env.index, n))
    lost = [k for k, shop in want.items() if not routed_get(env, env.index, k, shop)]
    check(not lost, "%s: GET ?routing=<shop_id> finds every document (%s)" % (env.index, lost))
    env.os("POST", "/%s/_refresh" % env.index)
    st, res = env.os("POST", "/%s/_search" % env.index, {"size": 100})
    srcs = {h["_id"]: h["_source"] for h in res["hits"]["hits"]}
    stale = [k for k in want if srcs.get(k, {}).get("title") != "new-" + k]
    check(not stale, "%s: every copy holds MongoDB's body (%s)" % (env.index, stale))
    if upsert:
        gone = [k for k in want if srcs.get(k, {}).get("extra") != "e"]
        check(not gone, "%s: upsert keeps a field only the index had (%s)" % (env.index, gone))
    # extra is a field only the index has: by content it is a leftover
    # unless the user says the index owns it (docs/TRANSFORM.md)
    owned = dict(OPENSEARCH_INDEX_OWNED_FIELDS="extra") if upsert else {}
    for compare in ("version", "content"):
        r = env.run("check", "--dry-run", RECONCILE_COMPARE=compare, **settings, **owned)
        check(r.returncode == 0, "%s: the dry run after is clean (compare %s: %d %s)"
              % (env.index, compare, r.returncode, r.stdout[-300:]))


def two_wrong_upsert(env):
    two_wrong(env, OPENSEARCH_ROUTING_FIELD="shop_id")


def two_wrong_index(env):
    two_wrong(env, upsert=False, OPENSEARCH_ROUTING_FIELD="shop_id",
              RECONCILE_WRITE_MODE="index")


def two_wrong_external(env):
    two_wrong(env, upsert=False, OPENSEARCH_ROUTING_FIELD="shop_id",
              RECONCILE_WRITE_MODE="index", OPENSEARCH_VERSION_TYPE="external_gte")


LUA = ("function transform(doc)\n"
       "  return {shop_id = doc.shop_id, title = doc.title,\n"
       "          updatedAt = doc.updatedAt}, doc.shop_id\nend\n")


def two_wrong_script_upsert(env):
    two_wrong(env, RECONCILE_TRANSFORM=write(env, "shop.lua", LUA))


def two_wrong_script_index(env):
    two_wrong(env, upsert=False, RECONCILE_TRANSFORM=write(env, "shop.lua", LUA),
              RECONCILE_WRITE_MODE="index")


def last_copy(env, **settings):
    """The first rule whatever fails: a document whose write the index
    refuses (a field its mapping cannot take) while its copies are under
    two wrong routings (both on other shards than the rule's) keeps a
    copy: the move's write fails, and of the copies to delete the last one
    left is kept (journaled, not failed)."""
    make_index(env, env.index)
    st, res = env.os("PUT", "/%s/_mapping" % env.index,
                     {"properties": {"n": {"type": "integer"}}})
    assert st == 200, res
    shop, cands = SHOPS[0], ["shop-%d" % i for i in range(64)]
    mine = shard_of(env, env.index, shop)
    far = [c for c in cands if shard_of(env, env.index, c) != mine][:2]
    for routing in far:
        st, res = env.os("POST", "/%s/_bulk?refresh=true" % env.index, [
            {"index": {"_id": "x0", "routing": routing}},
            {"mongo_id": "x0", "shop_id": shop, "n": 1, "updatedAt": iso(DATE0)}],
            ndjson=True)
        assert st == 200 and not res.get("errors"), res
    env.mongo({"insert": "ads", "documents": [
        {"_id": "x0", "shop_id": shop, "n": "not a number", "updatedAt": date(NEW)}]})
    r = env.run("check", OPENSEARCH_ROUTING_FIELD="shop_id", **settings)
    got = copies(env, env.index).get("x0", [])
    check(len(got) == 1 and counts(r.stdout).get("failed") == 1,
          "%s: a document whose write fails keeps one copy (%s; %s)"
          % (env.index, got, r.stderr[-600:]))
    return r


def last_copy_index(env):
    r = last_copy(env, RECONCILE_WRITE_MODE="index")
    check("the only one left in the index: kept" in r.stderr,
          "index mode: the run says the last copy was kept (%s)" % r.stderr[-600:])


def last_copy_upsert(env):
    last_copy(env)


run_all([routing_field, routing_field_index_mode, routing_script, single_by_content, alias,
         two_wrong_upsert, two_wrong_index, two_wrong_external, two_wrong_script_upsert,
         two_wrong_script_index, last_copy_index, last_copy_upsert], prefix="rr_")
