"""Fields the transform no longer writes are drift (issue 24 item 5): a Lua
transform renames `title` to `name`; under the default upsert write mode
the copies kept `title` next to `name` and the next check said in sync.

With OPENSEARCH_INDEX_OWNED_FIELDS naming the fields only the index writes
(`embedding`, set on some copies by another writer), the next dry run
reports the copies stale naming the old field (`-title`), a check replaces
each copy (conditionally on the copy judged) without it and with the
owned field's value as the copy held it, and a copy a live writer wrote
between the judging and the write is left to it (skipped_newer). The same
in RECONCILE_WRITE_MODE=index, and with RECONCILE_COMPARE=content and no
transform (a field removed from MongoDB). Without the setting nothing is
removed: the copies are reported stale and kept, with a warning naming the
fields and the setting."""
import datetime
import http.client
import http.server
import json
import re
import sys
import threading
import urllib.parse

from harness import check, run_all, write

DATE0 = 1704067200000
IDS = ["a", "b", "c", "d", "e", "f"]
EMB = {"a": [0.5, 0.25, 0.125], "b": [1.0, -2.5]}

T1 = ("function transform(doc)\n"
      "  return {title = doc.title, updatedAt = doc.updatedAt}\nend\n")
T2 = ("function transform(doc)\n"
      "  return {name = doc.title, updatedAt = doc.updatedAt}\nend\n")


def date(ms):
    return {"$date": {"$numberLong": str(ms)}}


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def sources(env):
    env.refresh()
    st, res = env.os("POST", "/%s/_search" % env.index, {"size": 100})
    assert st == 200, res
    return {h["_id"]: h["_source"] for h in res["hits"]["hits"]}


def rows(env, run_id):
    with env.journal() as db:
        return {x["doc_id"]: dict(x) for x in db.execute(
            "SELECT doc_id, kind, status, fields, error FROM run_ids WHERE run_id = ?",
            (run_id,))}


def enrich(env):
    """Another writer (an enrichment job) adds `embedding` to two copies."""
    actions = []
    for i, v in EMB.items():
        actions += [{"update": {"_id": i}}, {"doc": {"embedding": v}}]
    env.bulk(actions)


def setup(env, **settings):
    """Six documents written with T1 (title), two copies enriched; returns
    the path of T2 (title renamed to name)."""
    env.create_index({"embedding": {"type": "float"}})
    env.mongo({"insert": "ads", "documents": [
        {"_id": i, "title": "t-" + i, "updatedAt": date(DATE0 + k)} for k, i in enumerate(IDS)]})
    t1 = write(env, "t1.lua", T1)
    r = env.run("check", RECONCILE_TRANSFORM=t1, **settings)
    assert r.returncode == 0, r.stderr
    enrich(env)
    return write(env, "t2.lua", T2)


def renamed(name, got):
    """Every copy holds name, not title; the enriched ones their embedding."""
    bad = {i: s for i, s in got.items()
           if "title" in s or s.get("name") != "t-" + i or s.get("embedding") != EMB.get(i)}
    check(len(got) == len(IDS) and not bad,
          "%s: every copy holds name and not title, the embeddings kept (%s)"
          % (name, sorted(bad.items())[:3]))


def rename(mode):
    def case(env):
        owned = dict(OPENSEARCH_INDEX_OWNED_FIELDS="embedding", RECONCILE_WRITE_MODE=mode)
        t2 = setup(env, **owned)
        r = env.run("check", "--dry-run", RECONCILE_TRANSFORM=t2, **owned)
        run = env.last_run()
        got = rows(env, run["id"])
        check(r.returncode == 1 and run["stale_count"] == len(IDS),
              "%s: the dry run after the rename finds every copy stale (%d, stale %s: %s)"
              % (mode, r.returncode, run["stale_count"], r.stderr[-300:]))
        check(all(got.get(i, {}).get("fields") == "name,-title" for i in IDS),
              "%s: each names the field written and the leftover (%s)"
              % (mode, [got.get(i, {}).get("fields") for i in IDS]))
        check(sources(env)["a"].get("title") == "t-a", "%s: the dry run wrote nothing" % mode)
        r = env.run("diff", "a", RECONCILE_TRANSFORM=t2, **owned)
        d = json.loads(r.stdout) if r.returncode in (0, 1) else {}
        check(r.returncode == 1 and d.get("state") == "stale" and
              d.get("fields") == ["name", "-title"] and
              d.get("patch") == [{"op": "add", "path": "/name", "value": "t-a"},
                                 {"op": "remove", "path": "/title"}],
              "%s: diff names the leftover and its patch removes it (%d, %s)"
              % (mode, r.returncode, d or r.stderr[-300:]))

        r = env.run("check", RECONCILE_TRANSFORM=t2, **owned)
        run = env.last_run()
        check(r.returncode == 0 and run["stale_count"] == len(IDS) and
              run["repaired_count"] == len(IDS),
              "%s: the check repairs them (%d, stale %s repaired %s: %s)"
              % (mode, r.returncode, run["stale_count"], run["repaired_count"], r.stderr[-300:]))
        renamed(mode, sources(env))
        for compare in ("version", "content"):
            r = env.run("check", "--dry-run", RECONCILE_TRANSFORM=t2, RECONCILE_COMPARE=compare,
                        **owned)
            check(r.returncode == 0,
                  "%s: a dry run after is clean (compare %s: %d %s)"
                  % (mode, compare, r.returncode, r.stdout[-300:]))
    return case


def not_said(env):
    """Without the setting nothing is removed, and nothing says in sync."""
    t2 = setup(env)
    r = env.run("check", RECONCILE_TRANSFORM=t2)
    got = sources(env)
    check(r.returncode == 0 and all(s.get("name") == "t-" + i for i, s in got.items()),
          "not said: the check writes name (%d, %s)" % (r.returncode, r.stderr[-300:]))
    check(all(s.get("title") == "t-" + i and s.get("embedding") == EMB.get(i)
              for i, s in got.items()),
          "not said: title and the embeddings stay (%s)" % sorted(got.items())[:2])
    check("OPENSEARCH_INDEX_OWNED_FIELDS" in r.stderr and "title" in r.stderr and
          "embedding" in r.stderr,
          "not said: a warning names the fields and the setting (%s)" % r.stderr[-600:])
    for args in (("check", "--dry-run"), ("check",)):
        r = env.run(*args, RECONCILE_TRANSFORM=t2)
        run = env.last_run()
        got = rows(env, run["id"])
        dry = len(args) == 2
        check(r.returncode == (1 if dry else 0) and run["stale_count"] == len(IDS) and
              run["repaired_count"] == 0,
              "not said: %s finds the leftovers stale, repairs none (%d, stale %s, repaired %s)"
              % (" ".join(args), r.returncode, run["stale_count"], run["repaired_count"]))
        check(got.get("a", {}).get("fields") == "-title,-embedding" and
              got.get("c", {}).get("fields") == "-title" and
              all(x["status"] == "reported" for x in got.values()),
              "not said: %s reports them, naming the leftovers (%s)"
              % (" ".join(args), [(x["fields"], x["status"]) for x in got.values()][:3]))
        check("OPENSEARCH_INDEX_OWNED_FIELDS" in r.stderr,
              "not said: %s warns naming the setting" % " ".join(args))
    check(sources(env)["a"].get("title") == "t-a" and sources(env)["a"].get("embedding"),
          "not said: nothing was removed")
    r = env.run("diff", "c", RECONCILE_TRANSFORM=t2)
    d = json.loads(r.stdout) if r.returncode in (0, 1) else {}
    check(r.returncode == 1 and d.get("state") == "stale" and d.get("fields") == ["-title"] and
          d.get("patch") == [{"op": "remove", "path": "/title"}],
          "not said: diff shows the leftover (%d, %s)" % (r.returncode, d or r.stderr[-300:]))
    r = env.run("check", RECONCILE_TRANSFORM=t2, OPENSEARCH_INDEX_OWNED_FIELDS="embedding")
    check(r.returncode == 0, "not said: once said, the check repairs (%d)" % r.returncode)
    renamed("not said, then said", sources(env))
    r = env.run("check", "--dry-run", RECONCILE_TRANSFORM=t2,
                OPENSEARCH_INDEX_OWNED_FIELDS="embedding")
    check(r.returncode == 0, "not said: then a dry run is clean (%d)" % r.returncode)


def not_said_index(env):
    """RECONCILE_WRITE_MODE=index without the setting (QA20 F4): a repair
    would replace each copy whole and drop its leftovers (an enrichment's
    embedding), so copies holding them are kept, reported, and the warning
    says so, before any write and at the end; once the setting names the
    index's fields, the check replaces them keeping those."""
    mode = dict(RECONCILE_WRITE_MODE="index")
    t2 = setup(env, **mode)
    r = env.run("check", RECONCILE_TRANSFORM=t2, **mode)
    run = env.last_run()
    got = sources(env)
    check(all(s.get("title") == "t-" + i and s.get("embedding") == EMB.get(i)
              for i, s in got.items()) and len(got) == len(IDS),
          "not said, index mode: nothing dropped, the embeddings kept (%s)"
          % sorted(got.items())[:2])
    check(run["stale_count"] == len(IDS) and run["repaired_count"] == 0 and
          all(x["status"] == "reported" for x in rows(env, run["id"]).values()),
          "not said, index mode: every copy reported stale, none written (stale %s, "
          "repaired %s)" % (run["stale_count"], run["repaired_count"]))
    check("these fields stay" not in r.stderr and "would replace it whole" in r.stderr and
          "kept as they are" in r.stderr and "OPENSEARCH_INDEX_OWNED_FIELDS" in r.stderr and
          "embedding" in r.stderr,
          "not said, index mode: the warnings say what happens (%s)" % r.stderr[-900:])
    r = env.run("check", "--dry-run", RECONCILE_TRANSFORM=t2, **mode)
    check(r.returncode == 1 and "these fields stay" not in r.stderr and
          "a check keeps these copies as they are" in r.stderr,
          "not said, index mode: the dry run says what a check does (%s)" % r.stderr[-600:])
    r = env.run("check", RECONCILE_TRANSFORM=t2, OPENSEARCH_INDEX_OWNED_FIELDS="embedding",
                **mode)
    check(r.returncode == 0, "not said, index mode: once said, the check repairs (%d %s)"
          % (r.returncode, r.stderr[-300:]))
    renamed("not said, index mode, then said", sources(env))


def content_no_transform(env):
    """RECONCILE_COMPARE=content, no transform: a field removed from the
    MongoDB documents stays in their copies under upsert."""
    env.create_index({"embedding": {"type": "float"}})
    env.mongo({"insert": "ads", "documents": [
        {"_id": i, "title": "t-" + i, "old": 1, "updatedAt": date(DATE0)} for i in IDS]})
    settings = dict(RECONCILE_COMPARE="content")
    assert env.run("check", **settings).returncode == 0
    enrich(env)
    env.mongo({"update": "ads", "updates": [
        {"q": {}, "u": {"$unset": {"old": ""}}, "multi": True}]})
    r = env.run("check", "--dry-run", **settings)
    run = env.last_run()
    got = rows(env, run["id"])
    check(r.returncode == 1 and run["stale_count"] == len(IDS) and
          got.get("a", {}).get("fields") == "-old,-embedding",
          "content: a field gone from MongoDB is a leftover (%d, stale %s, %s)"
          % (r.returncode, run["stale_count"], got.get("a", {}).get("fields")))
    settings["OPENSEARCH_INDEX_OWNED_FIELDS"] = "embedding"
    r = env.run("check", "--dry-run", **settings)
    got = rows(env, env.last_run()["id"])
    check(r.returncode == 1 and got.get("a", {}).get("fields") == "-old",
          "content: an owned field is no leftover (%s)" % got.get("a", {}).get("fields"))
    r = env.run("check", **settings)
    src = sources(env)
    check(r.returncode == 0 and all("old" not in s and s.get("title") == "t-" + i and
                                    s.get("embedding") == EMB.get(i) for i, s in src.items()),
          "content: the check removes it and keeps the embedding (%d, %s)"
          % (r.returncode, sorted(src.items())[:2]))
    r = env.run("check", "--dry-run", **settings)
    check(r.returncode == 0, "content: then a dry run is clean (%d)" % r.returncode)
    owned_read = source_bytes(env, env.last_run()["id"])
    # none: the index owns no field
    r = env.run("check", "--dry-run", RECONCILE_COMPARE="content",
                OPENSEARCH_INDEX_OWNED_FIELDS="none")
    got = rows(env, env.last_run()["id"])
    check(r.returncode == 1 and got.get("a", {}).get("fields") == "-embedding" and "c" not in got,
          "content: none makes the embedding a leftover (%d, %s)" % (r.returncode, got))
    all_read = source_bytes(env, env.last_run()["id"])
    check(0 < owned_read < all_read,
          "content: the compare does not read the owned field (%d < %d bytes of _source)"
          % (owned_read, all_read))


def source_bytes(env, run_id):
    """The bytes of _source a run's content compare read (its event)."""
    with env.journal() as db:
        for (detail,) in db.execute("SELECT detail FROM run_events WHERE run_id = ? AND "
                                    "event = 'content'", (run_id,)):
            m = re.search(r"and (\d+) bytes of _source", detail or "")
            if m:
                return int(m.group(1))
    return -1


def moved(mode):
    """A copy whose routing the new transform changes is moved: its owned
    field goes with it, its leftovers do not."""
    def case(env):
        st, body = env.os("PUT", "/" + env.index, {
            "settings": {"number_of_shards": 3, "number_of_replicas": 0},
            "mappings": {"properties": {"mongo_id": {"type": "keyword"},
                                        "updatedAt": {"type": "date"},
                                        "embedding": {"type": "float"}}}})
        assert st == 200, body
        owned = dict(OPENSEARCH_INDEX_OWNED_FIELDS="embedding", RECONCILE_WRITE_MODE=mode)
        env.mongo({"insert": "ads", "documents": [
            {"_id": i, "title": "t-" + i, "shard": "s-" + i, "updatedAt": date(DATE0)}
            for i in IDS]})
        assert env.run("check", RECONCILE_TRANSFORM=write(env, "t1.lua", T1),
                       **owned).returncode == 0
        enrich(env)
        t3 = write(env, "t3.lua", "function transform(doc)\n  return {name = doc.title, "
                   "updatedAt = doc.updatedAt}, doc.shard\nend\n")
        r = env.run("check", RECONCILE_TRANSFORM=t3, **owned)
        env.refresh()
        st, res = env.os("POST", "/%s/_search" % env.index, {"size": 100})
        got = {}
        for h in res["hits"]["hits"]:
            got.setdefault(h["_id"], []).append((h.get("_routing"), h["_source"]))
        bad = {i: c for i, c in got.items()
               if len(c) != 1 or c[0][0] != "s-" + i or "title" in c[0][1] or
               c[0][1].get("name") != "t-" + i or c[0][1].get("embedding") != EMB.get(i)}
        check(r.returncode == 0 and len(got) == len(IDS) and not bad,
              "%s moved: one copy each under its new routing, name not title, the embedding "
              "moved with it (%d, %s, %s)" % (mode, r.returncode, sorted(bad.items())[:2],
                                               r.stderr[-300:]))
        r = env.run("check", "--dry-run", RECONCILE_TRANSFORM=t3, RECONCILE_COMPARE="content",
                    **owned)
        check(r.returncode == 0, "%s moved: then a content dry run is clean (%d, %s)"
              % (mode, r.returncode, r.stdout[-300:]))
    return case


class Proxy:
    """Forwards to the real node; holds the first _bulk until release()."""

    def __init__(self, upstream):
        u = urllib.parse.urlparse(upstream)
        self.host, self.port = u.hostname, u.port
        self.held, self.go = threading.Event(), threading.Event()
        self.armed = True
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if "_bulk" in self.path and proxy.armed:
                    proxy.armed = False
                    proxy.held.set()
                    proxy.go.wait(300)
                c = http.client.HTTPConnection(proxy.host, proxy.port, timeout=120)
                c.request(self.command, self.path, body=body, headers={
                    "Content-Type": self.headers.get("Content-Type") or "application/json"})
                r = c.getresponse()
                data = r.read()
                c.close()
                self.send_response(r.status)
                self.send_header("Content-Type", r.getheader("Content-Type") or
                                 "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.go.set()
        self.server.shutdown()
        self.server.server_close()


def live_writer(mode):
    """A copy written between the judging and the replace is left to it."""
    def case(env):
        owned = dict(OPENSEARCH_INDEX_OWNED_FIELDS="embedding", RECONCILE_WRITE_MODE=mode)
        t2 = setup(env, **owned)
        proxy = Proxy(env.url)
        try:
            p = env.spawn("check", RECONCILE_TRANSFORM=t2, OPENSEARCH_URL=proxy.url, **owned)
            held = proxy.held.wait(180)
            # the live pipeline (already on the new transform) writes b, and
            # the enrichment job a new embedding of a
            env.bulk([{"index": {"_id": "b"}},
                      {"mongo_id": "b", "name": "live-b", "updatedAt": iso(DATE0 + 1)},
                      {"update": {"_id": "a"}}, {"doc": {"embedding": [9.0]}}])
            proxy.go.set()
            out, err = p.communicate(timeout=600)
        finally:
            proxy.close()
        run = env.last_run()
        got = sources(env)
        check(held and p.returncode == 0 and run["skipped_newer_count"] == 2 and
              run["failed_count"] == 0,
              "%s live: the two copies written meanwhile are skipped_newer (%s, %s, %s: %s)"
              % (mode, held, p.returncode, run["skipped_newer_count"], err[-300:]))
        check(got["b"] == {"mongo_id": "b", "name": "live-b", "updatedAt": iso(DATE0 + 1)},
              "%s live: the live write is not overwritten (%s)" % (mode, got["b"]))
        check(got["a"].get("embedding") == [9.0] and got["a"].get("title") == "t-a",
              "%s live: the new embedding is not overwritten (%s)" % (mode, got["a"]))
        others = {i: got[i] for i in IDS if i not in ("a", "b")}
        check(all("title" not in s and s.get("name") == "t-" + i for i, s in others.items()),
              "%s live: the others are replaced (%s)" % (mode, sorted(others.items())[:2]))
        r = env.run("check", RECONCILE_TRANSFORM=t2, **owned)
        got = sources(env)
        check(r.returncode == 0 and "title" not in got["a"] and got["a"]["embedding"] == [9.0],
              "%s live: the next check replaces a, keeping its new embedding (%s)"
              % (mode, got["a"]))
    return case


scenarios = [("rename_upsert", rename("upsert")), ("rename_index", rename("index")),
             not_said, not_said_index, content_no_transform,
             ("moved_upsert", moved("upsert")), ("moved_index", moved("index")),
             ("live_upsert", live_writer("upsert")), ("live_index", live_writer("index"))]
# a name on the command line runs just the scenarios whose names hold it
only = sys.argv[1:]
run_all([x for x in scenarios
         if not only or any(o in (x[0] if isinstance(x, tuple) else x.__name__) for o in only)],
        prefix="owned_")
