"""Stale by content (RECONCILE_COMPARE=content) and one document's diff
(`reconciler diff ID`, GET /api/mirrors/{m}/docs/{doc}/diff), on the real
servers.

10,000 documents without a version field (ObjectIds, merged; integers,
looked up), holding int32, int64 near 2^63, doubles (7.0, 0.1), dates,
arrays of objects with arrays, nested objects, nulls and unicode, are
indexed the way a repair does (a first `check`). Thirty copies are then
rewritten with other texts of the same content (key order, 7.0 for 7,
1e-1 for 0.1, the same instant at +02:00, \\u escapes) and an embedding
only the index has (OPENSEARCH_INDEX_OWNED_FIELDS): not stale. Seven copies get one real difference each:
exactly those are stale, with the differing field journaled. (FerretDB 1.x
refuses arrays directly inside arrays, so arrays nest through objects.)
"""
import json
import os
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

from harness import Env, check, done
from service import Service

DATE0 = 1704067200000
N_OID, N_INT = 9000, 1000


def oid(i):
    return "%024x" % (0x650000000000000000000000 + i)


def content(i):
    return {
        "n_int": i,
        "n_long": 2**63 - 1 - i,
        "n_neg": -(2**63) + i,
        "n_seven": 7.0,
        "n_tenth": 0.1,
        "when_ms": DATE0 + i * 1001,
        "nested": {"list": [{"k": "a", "v": i, "w": [i, i + 1]}, {"k": "b", "v": None, "w": []}],
                   "deep": {"x": {"y": [True, False]}}},
        "text": "h\u00e9llo w\u00f6rld \u2713 \U0001F600 \u03a9 %d" % i,
        "tags": ["\u03b1", "\u03b2"],
        "empty": [],
        "none": None,
    }


def mongo_doc(idv, i):
    c = content(i)
    return {
        "_id": {"$oid": idv} if isinstance(idv, str) else idv,
        "n_int": c["n_int"],
        "n_long": {"$numberLong": str(c["n_long"])},
        "n_neg": {"$numberLong": str(c["n_neg"])},
        "n_seven": {"$numberDouble": "7.0"},
        "n_tenth": {"$numberDouble": "0.1"},
        "when": {"$date": {"$numberLong": str(c["when_ms"])}},
        "nested": c["nested"],
        "text": c["text"],
        "tags": c["tags"],
        "empty": [],
        "none": None,
    }


def iso(ms, offset_h=0, micro=False):
    t = datetime.fromtimestamp(ms / 1000, tz=timezone.utc) + timedelta(hours=offset_h)
    frac = ("%06d" % t.microsecond) if micro else ("%03d" % (t.microsecond // 1000))
    sign = "+" if offset_h >= 0 else "-"
    off = "Z" if offset_h == 0 else "%s%02d:00" % (sign, abs(offset_h))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + frac + off


def variant(idtext, i, change=None):
    """The copy's _source as another writer would put it: other texts of the
    same content, keys reversed, an embedding only the index has; change
    (field, text) puts one real difference in (text None: field absent)."""
    c = content(i)
    fields = [
        ("mongo_id", json.dumps(idtext)),
        ("n_int", "%d.0" % c["n_int"]),
        ("n_long", str(c["n_long"])),
        ("n_neg", str(c["n_neg"])),
        ("n_seven", "7.0"),
        ("n_tenth", "1e-1"),
        ("when", json.dumps(iso(c["when_ms"], 2, micro=True))),
        ("nested", json.dumps({"deep": c["nested"]["deep"], "list": c["nested"]["list"]})),
        ("text", json.dumps(c["text"])),  # \u escapes
        ("tags", json.dumps(c["tags"])),
        ("empty", "[]"),
        ("none", "null"),
        ("image_embedding", "[0.5, 0.25, 0.125]"),
    ]
    if change:
        fields = [(k, change[1] if k == change[0] else v) for k, v in fields]
        fields = [(k, v) for k, v in fields if v is not None]
    return "{" + ", ".join("%s: %s" % (json.dumps(k), v) for k, v in reversed(fields)) + "}"


def raw_bulk(env, pairs):
    """pairs: (_id, raw JSON source text), indexed as they are."""
    lines = []
    for idv, text in pairs:
        lines.append(json.dumps({"index": {"_index": env.index, "_id": idv}}))
        lines.append(text)
    req = urllib.request.Request(env.url + "/_bulk?refresh=true", data=("\n".join(lines) + "\n").encode(),
                                 method="POST", headers={"Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(req, timeout=120) as r:
        res = json.loads(r.read())
    assert not res["errors"], res


def load(env):
    docs = [mongo_doc(oid(i), i) for i in range(N_OID)]
    docs += [mongo_doc(100000 + i, N_OID + i) for i in range(N_INT)]
    for at in range(0, len(docs), 150):
        r = env.mongo({"insert": "ads", "documents": docs[at:at + 150]})
        assert r.get("n") == len(docs[at:at + 150]), r


def content_scenario():
    env = Env("content", RECONCILE_VERSION_FIELD="", RECONCILE_COMPARE="content",
              RECONCILE_CHUNK_SIZE=1000, OPENSEARCH_INDEX_OWNED_FIELDS="image_embedding")
    try:
        env.create_index()
        load(env)
        r = env.run("check")
        run = env.last_run()
        check(r.returncode == 0 and run["repaired_count"] == N_OID + N_INT,
              "content: the first check indexes every document (%d, %s)" % (r.returncode, run["repaired_count"]))

        # other texts of the same content: not stale
        benign = [(oid(i), i) for i in range(0, N_OID, 300)] + \
                 [(str(100000 + i), N_OID + i) for i in range(0, N_INT, 100)]
        raw_bulk(env, [(t, variant(t, i)) for t, i in benign])
        # one real difference each
        stale = {
            oid(11): ("n_long", str(2**63 - 2 - 11)),              # int64 off by one past 2^53
            oid(22): ("when", json.dumps(iso(content(22)["when_ms"] + 1, 1))),  # 1 ms later
            oid(33): ("nested", json.dumps({"deep": content(33)["nested"]["deep"],
                                            "list": [{"k": "a", "v": 33, "w": [33, 34]},
                                                     {"k": "b", "v": 1, "w": []}]})),
            oid(44): ("text", json.dumps(content(44)["text"].replace("\u00f6", "o"))),
            oid(55): ("tags", None),                                # absent from the copy
            oid(66): ("n_tenth", "0.2"),
            "100077": ("n_int", "%d" % (N_OID + 77 + 1)),          # an integer id: looked up
        }
        index_of = {oid(i): i for i in (11, 22, 33, 44, 55, 66)}
        index_of["100077"] = N_OID + 77
        raw_bulk(env, [(t, variant(t, index_of[t], ch)) for t, ch in stale.items()])

        r = env.run("check", "--dry-run")
        run = env.last_run()
        with env.journal() as db:
            rows = {x["doc_id"]: x["fields"] for x in db.execute(
                "SELECT doc_id, fields FROM run_ids WHERE run_id = ? AND kind = 'stale'", (run["id"],))}
            other = db.execute("SELECT count(*) FROM run_ids WHERE run_id = ? AND kind != 'stale'",
                               (run["id"],)).fetchone()[0]
            events = [x["detail"] for x in db.execute(
                "SELECT detail FROM run_events WHERE run_id = ? AND event = 'content'", (run["id"],))]
        want = {k: v[0] for k, v in stale.items()}
        check(r.returncode == 1 and rows == want and other == 0,
              "content: exactly the seven changed copies are stale, each with its field "
              "(%d, %s, other drift %d)" % (r.returncode, rows, other))
        check(len(events) == 1 and "10000 copies compared, 7 differ" in events[0],
              "content: the run says what the compare cost (%s)" % events)

        # the run report and the ids route show the fields
        r2 = env.run("show", str(run["id"]), "--json")
        check(r2.returncode == 0 and '"fields":\t"n_long"' in r2.stdout.replace(": ", ":\t")
              or '"n_long"' in r2.stdout, "content: show lists the differing fields")
        svc = Service(env)
        try:
            st, body, _ = svc.http("GET", "/api/reconciliation/runs/%d/ids?kind=stale" % run["id"])
            got = {x["id"]: x["fields"] for x in body.get("ids", [])}
            check(st == 200 and got == want, "content: the ids route shows the fields (%s)" % (got,))
            # the diff of a stale copy: the int64 exactly, as a JSON Patch
            st, body, _ = svc.http("GET", "/api/mirrors/default/docs/%s/diff" % oid(11))
            d = body.get("diff", {}) if isinstance(body, dict) else {}
            check(st == 200 and d.get("state") == "stale" and d.get("patch") == [
                {"op": "replace", "path": "/n_long", "value": 2**63 - 1 - 11}],
                "content: the diff of a stale int64 (%s)" % (d.get("patch"),))
            st, body, _ = svc.http("GET", "/api/mirrors/default/docs/%s/diff" % oid(33))
            d = body.get("diff", {})
            check(d.get("state") == "stale" and d.get("patch") == [
                {"op": "replace", "path": "/nested/list",
                 "value": [{"k": "a", "v": 33, "w": [33, 34]}, {"k": "b", "v": None, "w": []}]}],
                "content: the diff of a nested change (%s)" % (d.get("patch"),))
            st, body, _ = svc.http("GET", "/api/mirrors/default/docs/%s/diff" % oid(55))
            d = body.get("diff", {})
            check(d.get("patch") == [{"op": "add", "path": "/tags", "value": ["\u03b1", "\u03b2"]}]
                  and d.get("fields") == ["tags"],
                  "content: a field absent from the copy is added (%s)" % (d.get("patch"),))
            st, body, _ = svc.http("GET", "/api/mirrors/default/docs/%s/diff" % oid(300))
            d = body.get("diff", {})
            check(d.get("state") == "in_sync" and d.get("patch") == [] and
                  d["index"]["_source"].get("image_embedding") == [0.5, 0.25, 0.125],
                  "content: another text of the same content is in sync, the embedding is "
                  "shown and ignored (%s)" % (d.get("state"),))
        finally:
            svc.stop()

        r = env.run("check")
        run = env.last_run()
        check(r.returncode == 0 and run["stale_count"] == 7 and run["repaired_count"] == 7,
              "content: check repairs the seven (%d, %s)" % (r.returncode, run["repaired_count"]))
        r = env.run("check", "--dry-run")
        run = env.last_run()
        check(r.returncode == 0 and run["stale_count"] == 0,
              "content: the next dry run is clean (%d, %s)" % (r.returncode, run["stale_count"]))
    finally:
        env.cleanup()


def diff_scenario():
    env = Env("diff", RECONCILE_VERSION_FIELD="", RECONCILE_COMPARE="content",
              RECONCILE_FIELDS="title,price,tags,x/y~z",
              OPENSEARCH_INDEX_OWNED_FIELDS="image_embedding")
    try:
        env.create_index()
        env.mongo({"insert": "ads", "documents": [
            {"_id": 42, "title": "int id", "price": 1, "internal": "never written"},
            {"_id": "7", "title": "string seven", "price": 7},
            {"_id": 7, "title": "int seven", "price": 7},
            {"_id": "a/b~c", "title": "odd id", "price": 2.5, "x/y~z": {"p": 1}},
            {"_id": "m1", "title": "missing", "price": 3, "tags": ["t"]},
            {"_id": "s1", "title": "in sync", "price": 4, "tags": ["u", "v"]},
            {"_id": "s2", "title": "stale", "price": 10, "tags": ["a", "b"]},
        ]})
        r = env.run("check")
        check(r.returncode == 3, "diff: the first check (one id conflict: exit 3) (%d)" % r.returncode)
        env.os("DELETE", "/%s/_doc/m1?refresh=true" % env.index)
        raw_bulk(env, [
            ("s2", '{"mongo_id": "s2", "title": "stale", "price": 12, "tags": ["b", "a"], '
                   '"image_embedding": [1, 2]}'),
            ("a/b~c", '{"mongo_id": "a/b~c", "title": "odd id", "price": 2.5, '
                      '"x/y~z": {"p": 2, "q": 3}}'),
            ("s1", '{"tags": ["u", "v"], "price": 4.0, "title": "in sync", "mongo_id": "s1", '
                   '"image_embedding": [1, 2]}'),
            ("o1", '{"mongo_id": "o1", "title": "orphan"}'),
        ])

        def cli(idv, mirror=True):
            args = ["diff", idv] + (["--mirror", "default"] if mirror else [])
            r = env.run(*args)
            try:
                return r.returncode, json.loads(r.stdout), r.stderr
            except ValueError:
                return r.returncode, None, r.stderr

        code, d, _ = cli("s2")
        check(code == 1 and d["state"] == "stale" and d["fields"] == ["price", "tags"] and d["patch"] == [
            {"op": "replace", "path": "/price", "value": 10},
            {"op": "replace", "path": "/tags", "value": ["a", "b"]}] and
            d["mongodb"] == {"mongo_id": "s2", "title": "stale", "price": 10, "tags": ["a", "b"]} and
            d["index"]["_id"] == "s2" and d["index"]["_index"] == env.index and
            d["index"]["_routing"] is None and d["idType"] == "string",
            "diff: a stale copy, exact JSON Patch, what a repair writes (%d, %s)" % (code, d))
        code, d, _ = cli("s1", mirror=False)
        check(code == 0 and d["state"] == "in_sync" and d["patch"] == [] and d["fields"] == [],
              "diff: in sync whatever the key order, 4.0 and fields only the index has (%d, %s)"
              % (code, d and d["state"]))
        code, d, _ = cli("m1")
        check(code == 1 and d["state"] == "missing" and d["index"] is None and d["patch"] == [
            {"op": "add", "path": "/mongo_id", "value": "m1"},
            {"op": "add", "path": "/title", "value": "missing"},
            {"op": "add", "path": "/price", "value": 3},
            {"op": "add", "path": "/tags", "value": ["t"]}],
            "diff: a missing copy: every field added (%s)" % (d,))
        code, d, _ = cli("o1")
        check(code == 1 and d["state"] == "orphan" and d["mongodb"] is None and d["patch"] is None
              and d["index"]["_source"] == {"mongo_id": "o1", "title": "orphan"},
              "diff: an orphan: the copy, no patch (%s)" % (d,))
        code, d, _ = cli("a/b~c")
        # upsert (the default): the partial update merges x/y~z into the copy,
        # so its q stays and is no difference (no "remove")
        check(code == 1 and d["state"] == "stale" and d["patch"] == [
            {"op": "replace", "path": "/x~1y~0z/p", "value": 1}],
            "diff: JSON Pointer escaping of ~ and / (%s)" % (d and d["patch"],))
        r = env.run("diff", "a/b~c", RECONCILE_WRITE_MODE="index")
        d = json.loads(r.stdout) if r.returncode in (0, 1) else None
        check(d and d["patch"] == [{"op": "replace", "path": "/x~1y~0z/p", "value": 1},
                                   {"op": "remove", "path": "/x~1y~0z/q"}],
              "diff: a whole-document write removes what the copy has more (%s)"
              % (d and d["patch"],))
        code, d, _ = cli("42")
        check(code == 0 and d["state"] == "in_sync" and d["idType"] == "int" and
              "internal" not in d["mongodb"],
              "diff: an integer id, by the same candidates as the pass; only written fields (%s)" % (d,))
        code, d, _ = cli("7")
        check(code == 1 and d["state"] == "conflict" and "several types" in d.get("error", ""),
              "diff: two MongoDB ids with one text: conflict (%s)" % (d,))
        code, d, err = cli("nope")
        check(code == 2 and d is None and "no document with the id nope" in err,
              "diff: an id neither side has: exit 2 and why (%d, %s)" % (code, err))
        code, d, err = cli("x" * 513)
        check(code == 2 and "512 bytes" in err, "diff: an over-long id (%d, %s)" % (code, err))

        svc = Service(env)
        try:
            base = "/api/mirrors/default/docs/%s/diff"
            st, body, _ = svc.http("GET", base % urllib.parse.quote("a/b~c", safe=""))
            check(st == 200 and body["success"] is True and body["diff"]["id"] == "a/b~c" and
                  body["diff"]["state"] == "stale",
                  "route: an id with an encoded / (%d, %s)" % (st, body))
            code, d, _ = cli("s2")
            st, body, _ = svc.http("GET", base % "s2")
            check(st == 200 and body["diff"] == d, "route: the same answer as the command")
            st, body, _ = svc.http("GET", base % "o1")
            check(st == 200 and body["diff"]["state"] == "orphan", "route: an orphan")
            for what, path, want, text in [
                    ("no such id", base % "nope", 404, "no document with the id nope"),
                    ("bad percent-encoding", base % "ab%zz", 400, "percent-encoding"),
                    ("a NUL in the id", base % "a%00b", 400, "NUL"),
                    ("an id over 512 bytes", base % ("y" * 600), 400, "512 bytes"),
                    ("invalid UTF-8", base % "%FF%FE", 400, "UTF-8"),
                    ("no such mirror", "/api/mirrors/nosuch/docs/s1/diff", 404, "nosuch")]:
                st, body, _ = svc.http("GET", path)
                check(st == want and isinstance(body, dict) and body.get("success") is False and
                      text in body.get("error", ""),
                      "route: %s -> %d with a clear message (%d, %s)" % (what, want, st, body))
        finally:
            svc.stop()
    finally:
        env.cleanup()


content_scenario()
diff_scenario()
done()
