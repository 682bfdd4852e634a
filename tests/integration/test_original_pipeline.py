"""The original system's pipeline, end to end (issue "Write what the live
pipeline writes", first "must show").

A test writer, written here in Python from shared/seed/original-index-writes.md
and independent of the reconciler's code, indexes ads exactly as the
original Node service does: `update` actions with `doc_as_upsert`, its
routing rule (page_id, else countrySearchedfor, else the id), its field list
and its three reshaped fields, into a 3-shard index behind an alias; a
separate "enrichment job" adds `image_embedding` to some copies. With the
shipped examples/ads-pipeline.lua and the settings docs/TRANSFORM.md gives,
a dry run of the untouched data finds no drift. Then missing, stale (some
with a changed routing), orphan (custom routing) and "left the filter"
drift is injected, and one check repairs exactly that: every copy equals
what the writer would have written, embeddings survive, no id has two
copies across shards, orphans are gone, and the next dry run is clean.
"""
import os
import random

from harness import Env, check, done

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(SRC, "examples", "ads-pipeline.lua")

FIELDS = [
    "ad_archive_id", "library_id", "page_id", "page_name", "advertiser_name",
    "status", "is_active", "started_running_on", "start_date", "scraped_at",
    "permalink_url", "redirected_final_url", "currency", "keywords",
    "countrySearchedfor", "search_country", "country", "region", "platforms",
    "publisher_platform", "creative", "snapshot", "search_query",
    "search_media_type", "search_type", "categories", "page_categories",
    "page_like_count", "end_date", "collation_id", "collation_count",
    "contains_digital_created_media", "contains_sensitive_content",
    "is_profile_page", "page_is_deleted", "page_entity_type", "entity_type",
    "gated_type", "hide_data_status", "is_aaa_eligible",
    "targeted_or_reached_countries", "political_countries",
]
DATE_FIELDS = {"started_running_on", "start_date", "scraped_at", "end_date",
               "url-filter-updated-at"}
FILTER = '{"status": {"$ne": "ARCHIVED"}}'
T0 = 1767225600000  # 2026-01-01T00:00:00Z
N = 300


def iso(ms):
    import datetime
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def oid(n):
    return "%024x" % (0x650000000000000000000000 + n)


# ---- MongoDB documents, as the live application stores them ---------------
# Kept in Python form: {"$oid": hex} for ObjectIds, ("date", ms) for dates.

def make_doc(n, rnd):
    doc = {"_id": {"$oid": oid(n)}}
    doc["ad_archive_id"] = str(10**15 + n)
    doc["library_id"] = str(2 * 10**15 + n)
    r = rnd.random()
    if r < 0.55:
        doc["page_id"] = str(1000 + n % 17)  # shared pages: several ads per shard key
    elif r < 0.6:
        doc["page_id"] = ""  # not set: falls through to countrySearchedfor
        doc["countrySearchedfor"] = rnd.choice(["US", "DE", "FR"])
    elif r < 0.85:
        doc["countrySearchedfor"] = rnd.choice(["US", "DE", "FR", "BR"])
    if n % 97 in (5, 6):  # QA: a page_id that is no routing falls through, never fails
        doc["page_id"] = ["p%d" % n] if n % 97 == 5 else []  # (a keyword takes no object)
        doc["countrySearchedfor"] = "US"
    doc["page_name"] = "Page %d \u00e9\u6f22" % n
    doc["advertiser_name"] = "Advertiser %d" % (n % 13)
    doc["status"] = "ACTIVE" if n % 3 else "INACTIVE"
    doc["is_active"] = n % 3 != 0
    doc["started_running_on"] = ("date", T0 - n * 3600_000)
    doc["scraped_at"] = ("date", T0 + n * 1000)
    doc["currency"] = rnd.choice(["USD", "EUR"])
    doc["platforms"] = ["facebook", "instagram"][: 1 + n % 2]
    doc["page_like_count"] = n * 7
    doc["collation_count"] = n % 5
    doc["snapshot"] = {"body": {"text": "ad %d" % n}, "cards": [{"title": "c%d" % i} for i in range(n % 3)],
                       "images": [], "link_url": "https://example.com/%d" % n}
    doc["targeted_or_reached_countries"] = []
    if n % 4 == 0:
        doc["keywords"] = "shoes, summer"
    if n % 5 == 0:
        doc["end_date"] = ("date", T0 + 86400_000)
    kinds = n % 6
    if kinds == 0:
        doc["countrySearchedfor_all"] = ["US", "DE"]
    elif kinds == 1:
        doc["countrySearchedfor_all"] = [{"country": "FR", "is_active": True}, "BR", 7, None,
                                         {"country": "", "is_active": False}, {"other": 1}]
    elif kinds == 2:
        doc["countrySearchedfor_all"] = ["BR", {"country": "US"}]  # no is_active: null
    elif kinds == 3:
        doc["countrySearchedfor_all"] = []
    if n % 4 == 1:
        doc["url-filter"] = {"url-filter-id": {"$oid": oid(900000 + n)}, "pattern": "*.shop/*",
                             "hits": n}
        doc["url-filter-updated-at"] = ("date", T0 - 5000)
    elif n % 4 == 2:
        doc["url-filter"] = None
    # fields the original never writes
    doc["raw_html"] = "<html>%d</html>" % n
    doc["internal"] = {"crawler": "v2", "attempts": n % 4}
    return doc


def to_ext(v):
    """Python form -> canonical extended JSON for the fixture's insert."""
    if isinstance(v, tuple) and v[0] == "date":
        return {"$date": {"$numberLong": str(v[1])}}
    if isinstance(v, dict):
        return {k: to_ext(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_ext(x) for x in v]
    return v


# ---- the original writer, from the seed's description ----------------------

def node_value(v):
    """A value as the Node driver serializes it: dates ISO with ms and Z,
    ObjectIds as hex."""
    if isinstance(v, tuple) and v[0] == "date":
        return iso(v[1])
    if isinstance(v, dict) and set(v) == {"$oid"}:
        return v["$oid"]
    if isinstance(v, dict):
        return {k: node_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [node_value(x) for x in v]
    return v


def truthy(v):
    return v not in (None, False, "", 0) and v == v


def writer_body(doc):
    idtext = doc["_id"]["$oid"]
    body = {"mongo_id": idtext}
    for f in FIELDS:
        if f in doc:
            body[f] = node_value(doc[f])
    if "countrySearchedfor_all" in doc:
        v = doc["countrySearchedfor_all"]
        if isinstance(v, list):
            out = []
            for item in v:
                if isinstance(item, str):
                    out.append({"country": item, "is_active": None})
                elif isinstance(item, dict):
                    out.append({"country": item["country"] if truthy(item.get("country")) else None,
                                "is_active": item.get("is_active")})
            body["countrySearchedfor_all"] = out
        else:
            body["countrySearchedfor_all"] = node_value(v)
    f = doc.get("url-filter")
    if isinstance(f, dict):
        f = dict(f)
        if f.get("url-filter-id") is not None:
            f["url-filter-id"] = f["url-filter-id"]["$oid"]
        body["url-filter"] = node_value(f)
    else:
        body["url-filter"] = None
    u = doc.get("url-filter-updated-at")
    body["url-filter-updated-at"] = node_value(u) if u is not None else None
    return body


def writer_routing(doc):
    # a sub-document or an array is passed over (docs/TRANSFORM.md)
    if truthy(doc.get("page_id")) and not isinstance(doc["page_id"], (dict, list)):
        return doc["page_id"]
    if truthy(doc.get("countrySearchedfor")):
        return doc["countrySearchedfor"]
    return doc["_id"]["$oid"]


def in_filter(doc):
    return doc.get("status") != "ARCHIVED"


def live_write(env, alias, docs):
    actions = []
    for doc in docs:
        actions.append({"update": {"_index": alias, "_id": doc["_id"]["$oid"],
                                   "routing": writer_routing(doc), "retry_on_conflict": 3}})
        actions.append({"doc": writer_body(doc), "doc_as_upsert": True})
    for i in range(0, len(actions), 200):
        st, res = env.os("POST", "/_bulk?refresh=true", actions[i:i + 200], ndjson=True)
        assert st == 200 and not res.get("errors"), str(res)[:2000]


def enrich(env, alias, docs):
    """The separate enrichment job: adds image_embedding and image_phash."""
    actions = []
    for doc in docs:
        n = int(doc["_id"]["$oid"], 16) % 1000
        actions.append({"update": {"_index": alias, "_id": doc["_id"]["$oid"],
                                   "routing": writer_routing(doc)}})
        actions.append({"doc": {"image_embedding": [n / 1000, 0.5, -0.25],
                                "image_phash": "ph%04d" % n}})
    st, res = env.os("POST", "/_bulk?refresh=true", actions, ndjson=True)
    assert st == 200 and not res.get("errors"), res
    return {doc["_id"]["$oid"] for doc in docs}


def copies(env, index, shards):
    """{_id: [(shard, routing, _source), ...]} read shard by shard, so a
    second copy of an id on another shard cannot hide."""
    env.os("POST", "/%s/_refresh" % index)
    out = {}
    for shard in range(shards):
        after = None
        while True:
            body = {"size": 500, "sort": [{"mongo_id": "asc"}], "query": {"match_all": {}}}
            if after:
                body["search_after"] = after
            st, res = env.os("POST", "/%s/_search?preference=_shards:%d" % (index, shard), body)
            assert st == 200, res
            hits = res["hits"]["hits"]
            for h in hits:
                out.setdefault(h["_id"], []).append((shard, h.get("_routing"), h["_source"]))
            if len(hits) < 500:
                break
            after = hits[-1]["sort"]
    return out


def main():
    env = Env("origpipe")
    try:
        rnd = random.Random(20261129)
        backing = env.index + "-000001"
        alias = env.index
        st, body = env.os("PUT", "/" + backing, {
            "settings": {"number_of_shards": 3, "number_of_replicas": 0,
                         "index.mapping.total_fields.limit": 2000},
            "mappings": {"properties": {
                "mongo_id": {"type": "keyword"}, "page_id": {"type": "keyword"},
                "ad_archive_id": {"type": "keyword"}, "library_id": {"type": "keyword"},
                "status": {"type": "keyword"}, "countrySearchedfor": {"type": "keyword"},
                "page_name": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                "advertiser_name": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                "started_running_on": {"type": "date"}, "start_date": {"type": "date"},
                "scraped_at": {"type": "date"}, "is_active": {"type": "boolean"},
                "image_embedding": {"type": "float"}, "image_phash": {"type": "keyword"}}},
            "aliases": {alias: {"is_write_index": True}}})
        assert st == 200, body

        docs = [make_doc(n, rnd) for n in range(N)]
        for n in range(0, N, 25):  # outside the filter from the start: never indexed
            docs[n]["status"] = "ARCHIVED"
        for i in range(0, N, 100):
            env.mongo({"insert": "ads", "documents": [to_ext(d) for d in docs[i:i + 100]]})
        live = [d for d in docs if in_filter(d)]
        live_write(env, alias, live)
        embedded = enrich(env, alias, [d for i, d in enumerate(live) if i % 3 == 0])

        settings = dict(RECONCILE_TRANSFORM=SCRIPT, RECONCILE_WRITE_MODE="upsert",
                        RECONCILE_FILTER=FILTER, RECONCILE_VERSION_FIELD="scraped_at",
                        RECONCILE_ORPHANS="delete", OPENSEARCH_INDEX=alias,
                        # the enrichment job's: kept (docs/TRANSFORM.md)
                        OPENSEARCH_INDEX_OWNED_FIELDS="image_embedding,image_phash")

        r = env.run("check", "--dry-run", **settings)
        run = env.last_run()
        check(r.returncode == 0 and run["missing_count"] == 0 and run["stale_count"] == 0
              and run["orphan_count"] == 0 and run["duplicate_count"] == 0,
              "untouched data written by the original pipeline: a dry run finds no drift "
              "(%d: %s missing, %s stale, %s orphans, %s duplicates; %s)"
              % (r.returncode, run["missing_count"], run["stale_count"], run["orphan_count"],
                 run["duplicate_count"], r.stderr[-400:]))

        # ---- inject drift ------------------------------------------------
        byid = {d["_id"]["$oid"]: d for d in docs}
        live_ids = [d["_id"]["$oid"] for d in live]
        rnd.shuffle(live_ids)
        missing = live_ids[:10]
        stale = live_ids[10:22]
        left = live_ids[22:27]
        # missing: the live syncer lost them
        for i in missing:
            st, _ = env.os("DELETE", "/%s/_doc/%s?routing=%s&refresh=true"
                           % (backing, i, writer_routing(byid[i])))
            assert st == 200
        # stale: changed in MongoDB, the change never reached the index; the
        # first two of them also move to another page (another routing)
        for k, i in enumerate(stale):
            d = byid[i]
            d["page_name"] = "Renamed %s" % i[-4:]
            d["page_like_count"] = d["page_like_count"] + 1
            d["scraped_at"] = ("date", d["scraped_at"][1] + 3600_000)
            upd = {"page_name": d["page_name"], "page_like_count": d["page_like_count"],
                   "scraped_at": to_ext(d["scraped_at"])}
            if k < 2:
                d["page_id"] = "moved-%d" % k
                upd["page_id"] = d["page_id"]
            env.mongo({"update": "ads", "updates": [{"q": {"_id": {"$oid": i}},
                                                      "u": {"$set": upd}}]})
        # left the filter: archived in MongoDB, the index copy stayed
        for i in left:
            d = byid[i]
            d["status"] = "ARCHIVED"
            d["scraped_at"] = ("date", d["scraped_at"][1] + 3600_000)
            env.mongo({"update": "ads", "updates": [{"q": {"_id": {"$oid": i}}, "u": {"$set": {
                "status": "ARCHIVED", "scraped_at": to_ext(d["scraped_at"])}}}]})
        # orphans: copies with custom routing whose documents are gone
        orphans = [oid(500000 + k) for k in range(5)]
        actions = []
        for k, i in enumerate(orphans):
            actions.append({"update": {"_index": alias, "_id": i, "routing": "page-%d" % k}})
            actions.append({"doc": {"mongo_id": i, "page_id": "page-%d" % k, "status": "ACTIVE",
                                    "scraped_at": iso(T0)}, "doc_as_upsert": True})
        st, res = env.os("POST", "/_bulk?refresh=true", actions, ndjson=True)
        assert st == 200 and not res.get("errors"), str(res)[:2000]

        # ---- repair --------------------------------------------------------
        r = env.run("check", **settings)
        run = env.last_run()
        check(r.returncode == 0, "check repairs the drift (exit %d: %s)" % (r.returncode, r.stderr[-600:]))
        check(run["missing_count"] == 10 and run["stale_count"] == 12
              and run["orphan_count"] == 10 and run["failed_count"] == 0,
              "exactly the injected drift is found: 10 missing, 12 stale, 5 orphans + 5 that left "
              "the filter (%s, %s, %s, failed %s)" % (run["missing_count"], run["stale_count"],
                                                       run["orphan_count"], run["failed_count"]))
        with env.journal() as db:
            rows = db.execute("SELECT doc_id, kind, status, error FROM run_ids WHERE run_id = ?",
                              (run["id"],)).fetchall()
        orphan_rows = {x["doc_id"] for x in rows if x["kind"] == "orphan"}
        open_rows = [(x["doc_id"], x["kind"], x["status"]) for x in rows
                     if x["status"] not in ("done",)]
        check(not open_rows, "every drift row of the check ends done, whatever routing the write "
              "took (%s)" % open_rows[:4])
        check(orphan_rows == set(orphans) | set(left),
              "the orphans are the 5 without a document and the 5 that left the filter (%s)"
              % sorted(orphan_rows ^ (set(orphans) | set(left))))

        # ---- what the index holds now ------------------------------------
        got = copies(env, backing, 3)
        want = {d["_id"]["$oid"]: d for d in docs if in_filter(d)}
        check(set(got) == set(want),
              "the index holds exactly the documents inside the filter (%d extra, %d missing)"
              % (len(set(got) - set(want)), len(set(want) - set(got))))
        twice = sorted(i for i, c in got.items() if len(c) > 1)
        check(not twice, "no _id has two copies across shards (%s)" % twice[:5])
        bad_body, bad_routing, lost_embedding = [], [], []
        for i, d in want.items():
            if i not in got:
                continue
            shard, routing, src = got[i][0]
            expect = writer_body(d)
            if i in embedded and i not in missing:  # a lost copy comes back without them
                n = int(i, 16) % 1000
                expect["image_embedding"] = [n / 1000, 0.5, -0.25]
                expect["image_phash"] = "ph%04d" % n
                if src.get("image_embedding") != expect["image_embedding"]:
                    lost_embedding.append(i)
            if src != expect:
                bad_body.append((i, {k: (src.get(k), expect.get(k)) for k in set(src) | set(expect)
                                     if src.get(k) != expect.get(k)}))
            if routing != writer_routing(d):
                bad_routing.append((i, routing, writer_routing(d)))
        check(not bad_body, "every copy equals what the original writer writes (%d differ: %s)"
              % (len(bad_body), bad_body[:2]))
        check(not bad_routing, "every copy has the original's routing (%s)" % bad_routing[:3])
        stale_embedded = [i for i in stale if i in embedded]
        check(stale_embedded and not lost_embedding,
              "embeddings survive on repaired stale copies (%d stale with embeddings; lost: %s)"
              % (len(stale_embedded), lost_embedding[:3]))
        check(not (set(orphans) & set(got)), "orphans with custom routing are gone")

        r = env.run("check", "--dry-run", **settings)
        run = env.last_run()
        check(r.returncode == 0 and run["missing_count"] + run["stale_count"] + run["orphan_count"]
              + run["duplicate_count"] == 0,
              "the next dry run is clean (%d: %s)" % (r.returncode, r.stdout.strip()[-300:]))
    finally:
        env.os("DELETE", "/%s-000001" % env.index)
        env.cleanup()


if __name__ == "__main__":
    main()
    done()
