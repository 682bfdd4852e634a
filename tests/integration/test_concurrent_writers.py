"""A repair never overwrites a newer copy (issue 19 item 1): a live syncer
writes between the run's reads and its _bulk.

A small HTTP proxy stands between the reconciler and the real OpenSearch
node (OPENSEARCH_URL points at it). It forwards everything, but holds the
first _bulk request (or the first one that deletes) until the test has
acted as a live syncer: updated some documents in MongoDB (new title,
newer updatedAt) and indexed that version straight into the real node,
created documents the run found missing, written back orphans it is about
to delete. Then the _bulk goes on. Whatever the run read before is older:
the index must end with the newest version everywhere (compared with
MongoDB), nothing counted failed, the run says how many it left to the
newer copy (skipped_newer: summary line, `reconciler show`, the journal),
and a dry run right after is clean. Upsert and index write modes, stale,
missing, orphan deletes, and `check --full`.
"""
import datetime
import http.client
import http.server
import json
import threading
import time
import urllib.parse

from harness import Env, check, done

DATE0 = 1704067200000  # 2024-01-01T00:00:00.000Z
N = 40


def date(ms):
    return {"$date": {"$numberLong": str(ms)}}


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def did(i):
    return "d%03d" % i


# -- the proxy ------------------------------------------------------------
class Proxy:
    """Forwards to the real node; holds the first _bulk whose body matches
    `hold_if` until release()."""

    def __init__(self, upstream, hold_if):
        u = urllib.parse.urlparse(upstream)
        self.host, self.port = u.hostname, u.port
        self.hold_if = hold_if
        self.held = threading.Event()
        self.go = threading.Event()
        self.armed = True
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if "_bulk" in self.path and body is not None:
                    hold = False
                    with proxy.lock:
                        if proxy.armed and proxy.hold_if(body.decode("utf-8", "replace")):
                            proxy.armed = False
                            hold = True
                    if hold:
                        proxy.held.set()
                        proxy.go.wait(300)
                headers = {"Content-Type": self.headers.get("Content-Type") or
                           "application/json"}
                c = http.client.HTTPConnection(proxy.host, proxy.port, timeout=120)
                c.request(self.command, self.path, body=body, headers=headers)
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

    def release(self):
        self.go.set()

    def close(self):
        self.go.set()
        self.server.shutdown()
        self.server.server_close()


# -- the two sides ----------------------------------------------------------
def make_index(env):
    st, body = env.os("PUT", "/" + env.index, {
        "settings": {"number_of_shards": 2, "number_of_replicas": 0},
        "mappings": {"properties": {"mongo_id": {"type": "keyword"},
                                    "updatedAt": {"type": "date"},
                                    "title": {"type": "keyword"}}}})
    assert st == 200, body


def seed(env, stale=(), missing=(), orphans=()):
    """N documents in MongoDB (title "v1", DATE0 + i); the index has each
    as it is, except stale ones (an older title and date) and missing ones
    (no copy); orphans are copies of ids MongoDB does not have."""
    env.mongo({"insert": "ads", "documents": [
        {"_id": did(i), "title": "v1", "updatedAt": date(DATE0 + i)} for i in range(N)]})
    actions = []
    for i in range(N):
        if i in missing:
            continue
        old = i in stale
        actions += [{"index": {"_id": did(i)}},
                    {"mongo_id": did(i), "title": "old" if old else "v1",
                     "updatedAt": iso(DATE0 + i - (1000 if old else 0))}]
    for o in orphans:
        actions += [{"index": {"_id": o}},
                    {"mongo_id": o, "title": "gone", "updatedAt": iso(DATE0)}]
    env.bulk(actions)


def live_write(env, ids, title="live"):
    """The live syncer: MongoDB first (a new title, updatedAt = now), then
    that version indexed straight into the real node."""
    now = int(time.time() * 1000)
    actions = []
    for k, i in enumerate(ids):
        ms = now + k
        env.mongo({"update": "ads", "updates": [{
            "q": {"_id": i},
            "u": {"$set": {"title": title, "updatedAt": date(ms)}}, "upsert": True}]})
        actions += [{"index": {"_id": i}}, {"mongo_id": i, "title": title, "updatedAt": iso(ms)}]
    env.bulk(actions)


def mongo_state(env):
    res = env.mongo({"find": "ads", "filter": {}, "batchSize": 10000})
    out = {}
    for d in res["cursor"]["firstBatch"]:
        v = d.get("updatedAt")
        if isinstance(v, dict):
            v = v.get("$date")
            if isinstance(v, dict):
                v = int(v["$numberLong"])
            elif isinstance(v, str):
                from harness import iso_ms
                v = iso_ms(v)
        out[d["_id"]] = (d.get("title"), v)
    return out


def index_state(env):
    env.refresh()
    st, res = env.os("POST", "/%s/_search" % env.index, {"size": 10000})
    assert st == 200, res
    from harness import iso_ms
    return {h["_id"]: (h["_source"].get("title"),
                       iso_ms(h["_source"]["updatedAt"]) if h["_source"].get("updatedAt")
                       else None)
            for h in res["hits"]["hits"]}


def race(env, args, settings, hold_if, syncer, pause=0.0):
    """Runs the reconciler through a proxy that holds the first matching
    _bulk; the syncer acts while it is held. Returns the finished process's
    (returncode, stdout, stderr) and whether the hold happened."""
    proxy = Proxy(env.url, hold_if)
    try:
        p = env.spawn(*args, OPENSEARCH_URL=proxy.url, **settings)
        held = proxy.held.wait(180)
        if held:
            time.sleep(pause)  # let the run read and queue what follows
            syncer()
        proxy.release()
        out, err = p.communicate(timeout=600)
        return p.returncode, out, err, held
    finally:
        proxy.close()


def verdict(env, name, rc, out, err, held, newer, want_rc=0):
    run = env.last_run()
    check(held, "%s: the proxy held a _bulk while the syncer wrote" % name)
    ms, ix = mongo_state(env), index_state(env)
    diff = {k: (ms.get(k), ix.get(k)) for k in set(ms) | set(ix) if ms.get(k) != ix.get(k)}
    check(not diff, "%s: the index ends with the newest version everywhere (%s)"
          % (name, sorted(diff.items())[:6]))
    check(rc == want_rc and run["failed_count"] == 0,
          "%s: nothing failed (exit %s, failed %s: %s)"
          % (name, rc, run["failed_count"], err.strip()[-400:]))
    check(run["skipped_newer_count"] == newer and ("skipped_newer %d" % newer) in out,
          "%s: the run says it left %d to the newer copy (skipped_newer %s; %s)"
          % (name, newer, run["skipped_newer_count"], out.strip()[-300:]))
    r = env.run("show", str(run["id"]), "--json")
    shown = json.loads(r.stdout) if r.returncode == 0 else {}
    shown = shown.get("run", shown)
    check(shown.get("skippedNewerCount") == newer,
          "%s: reconciler show reports skippedNewerCount %d (%s)"
          % (name, newer, r.stdout[:300]))
    r = env.run("check", "--dry-run")
    check(r.returncode == 0, "%s: a dry run afterwards is clean (%d %s)"
          % (name, r.returncode, r.stdout.strip()[-300:]))
    return run


# -- the cases ------------------------------------------------------------
STALE = list(range(0, 30))
MISSING = list(range(30, 40))


def repair_race(mode):
    def case(env):
        make_index(env)
        seed(env, stale=STALE, missing=MISSING)
        # the syncer writes 6 of the stale documents and 3 of the missing
        # ones while the run's _bulk (built from its earlier read) waits
        racers = [did(i) for i in (1, 5, 9, 14, 22, 29)] + [did(i) for i in (31, 35, 38)]
        rc, out, err, held = race(env, ["check"], dict(RECONCILE_WRITE_MODE=mode),
                                  lambda body: True, lambda: live_write(env, racers))
        run = verdict(env, "%s mode" % mode, rc, out, err, held, len(racers))
        check(run["stale_count"] == 30 and run["missing_count"] == 10 and
              run["repaired_count"] == 40 - len(racers),
              "%s mode: the others are repaired (stale %s missing %s repaired %s)"
              % (mode, run["stale_count"], run["missing_count"], run["repaired_count"]))
        with env.journal() as db:
            rows = {x["doc_id"]: (x["status"], x["error"]) for x in db.execute(
                "SELECT doc_id, status, error FROM run_ids WHERE run_id = ?", (run["id"],))}
        why = [rows.get(i, ("", ""))[1] or "" for i in racers]
        check(all(rows.get(i, ("",))[0] == "skipped" for i in racers) and
              all("changed after it was judged" in w and "newer write" in w for w in why),
              "%s mode: each is journaled skipped with why (%s)" % (mode, why[:2]))
    return case


def orphan_race(env):
    make_index(env)
    orphans = ["o%d" % i for i in range(5)]
    seed(env, orphans=orphans)
    back = ["o1", "o3"]  # a live insert brings these back while the delete waits
    rc, out, err, held = race(
        env, ["check"],
        dict(RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETE_RATIO="1",
             RECONCILE_MAX_DELETES="100"),
        lambda body: '"delete"' in body, lambda: live_write(env, back, "back"))
    run = verdict(env, "orphan deletes", rc, out, err, held, len(back))
    check(run["orphan_count"] == 5 and run["deleted_count"] == 3,
          "orphan deletes: the others are deleted (orphans %s deleted %s)"
          % (run["orphan_count"], run["deleted_count"]))


def full_race(env):
    make_index(env)
    seed(env, stale=[2, 12], missing=[7, 17])
    # batches of 10 documents: the first _bulk is held with its copies'
    # _seq_no already looked up, the second batch is read from MongoDB
    # meanwhile; the syncer writes into both, and creates a missing one
    first = [did(i) for i in (2, 5, 7)]
    second = [did(i) for i in (12, 15, 17)]
    rc, out, err, held = race(
        env, ["check", "--full"], dict(SYNC_BATCH_SIZE="10"), lambda body: True,
        lambda: live_write(env, first + second), pause=2.0)
    verdict(env, "check --full", rc, out, err, held, len(first) + len(second))


for name, fn in (("upsert", repair_race("upsert")), ("index", repair_race("index")),
                 ("orphans", orphan_race), ("full", full_race)):
    env = Env("cw_" + name)
    try:
        fn(env)
    finally:
        env.cleanup()
done()
