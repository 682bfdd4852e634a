"""Live sync's writes are conditional on the copy it looked up (issue 23
item 4; docs/LIVE-SYNC.md "Guarantees"): a change while a reconciliation
run repairs the same document, the newer write wins, both ways.

A small HTTP proxy stands between `reconciler sync` and the shared
OpenSearch node (the sync's OPENSEARCH_URL points at it); it forwards
everything, and holds the next _bulk naming a document once armed. While
the stream's _bulk (built from MongoDB's document as it was then) is held,
MongoDB's document changes again and a check run repairs the index with
that newer version (through the real node). Released, the stream's write
is refused (409: the copy changed since its lookup), the document read
again from MongoDB and written again conditionally: the proxy holds that
second _bulk, and the index still has the run's newer copy then (an
unconditional write would have put the older one back). The end state
equals MongoDB, nothing is counted failed.

- stale: an update of a copy (`update` with if_seq_no/if_primary_term);
- missing: an insert (`create`), the run creating the document meanwhile;
- deleted: a delete (with if_seq_no), the document back in MongoDB and
  written back by the run meanwhile.

Against SecantusDB (started here, as test_live_sync.py does); SKIP (and
pass) when it cannot be installed here."""
import http.client
import http.server
import os
import threading
import urllib.parse

import harness
from harness import Env, check
from test_live_sync import Secantus, Sync, doc, insert, now_date, started, streams, wait_for


class Hold:
    """One armed hold: the first _bulk whose body matches waits for go."""

    def __init__(self, match):
        self.match = match
        self.held = threading.Event()
        self.go = threading.Event()
        self.body = None


class Proxy:
    """Forwards to the real node; holds the _bulk an armed Hold matches."""

    def __init__(self, upstream):
        u = urllib.parse.urlparse(upstream)
        self.host, self.port = u.hostname, u.port
        self.hold = None
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
                    text = body.decode("utf-8", "replace")
                    h = None
                    with proxy.lock:
                        if proxy.hold and proxy.hold.match(text):
                            h, proxy.hold = proxy.hold, None
                    if h:
                        h.body = text
                        h.held.set()
                        h.go.wait(300)
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

    def arm(self, id_):
        h = Hold(lambda body: ('"_id":"%s"' % id_) in body)
        with self.lock:
            self.hold = h
        return h

    def close(self):
        with self.lock:
            h, self.hold = self.hold, None
        if h:
            h.go.set()
        self.server.shutdown()
        self.server.server_close()


def make_index(env):
    st, body = env.os("PUT", "/" + env.index, {
        "settings": {"number_of_shards": 2, "number_of_replicas": 0},
        "mappings": {"properties": {"mongo_id": {"type": "keyword"},
                                    "updatedAt": {"type": "date"},
                                    "title": {"type": "keyword"}}}})
    check(st == 200, "the index is created (%d %s)" % (st, body))


def title(env, id_):
    st, res = env.os("GET", "/%s/_doc/%s" % (env.index, id_))
    return res.get("_source", {}).get("title") if st == 200 else None


def set_title(env, id_, t):
    r = env.mongo({"update": "ads", "updates": [
        {"q": {"_id": id_}, "u": {"$set": {"title": t, "updatedAt": now_date()}}}]})
    assert r.get("ok") == 1 and r.get("n") == 1, r


def race(env, name, id_, change, want_action, newer=None):
    """The stream's _bulk of id_ (after change()) is held while MongoDB
    changes again (newer(); default: a newer title) and a check run
    repairs the index; then the re-read."""
    proxy = Proxy(env.url)
    sync = None
    try:
        sync = Sync(env, OPENSEARCH_URL=proxy.url)
        started(env, sync)
        first = proxy.arm(id_)
        change()
        check(first.held.wait(60), "%s: the stream's _bulk is held" % name)
        if not first.held.is_set():
            return
        check(('"%s"' % want_action) in first.body and
              (want_action == "create" or '"if_seq_no"' in first.body),
              "%s: the stream writes with %s conditionally: %s"
              % (name, want_action, first.body[:300]))
        # the newer write: MongoDB, then a run that repairs the index from it
        (newer or (lambda: set_title(env, id_, "newer")))()
        r = env.run("check")
        check(title(env, id_) == "newer", "%s: the check run wrote the newer copy (%s; %s)"
              % (name, title(env, id_), r.stdout.strip()[-300:]))
        second = proxy.arm(id_)
        first.go.set()
        check(second.held.wait(60), "%s: the stream writes the document again" % name)
        # the older write was refused: the run's newer copy is still there
        check(title(env, id_) == "newer",
              "%s: the stream's older write did not overwrite the newer copy (%s)"
              % (name, title(env, id_)))
        check('"newer"' in (second.body or ""),
              "%s: written again as MongoDB holds it now: %s" % (name, (second.body or "")[:300]))
        second.go.set()
        wait_for(lambda: "read again from MongoDB" in sync.stderr(),
                 "%s: the re-read is logged" % name)
        wait_for(lambda: env.mongo_docs() == env.os_docs(),
                 "%s: the index ends equal to MongoDB" % name)
        check(title(env, id_) == "newer", "%s: the newer copy stays (%s)"
              % (name, title(env, id_)))
        s = streams(env)
        check(s and s["events_failed"] == 0, "%s: nothing counted failed: %r" % (name, s))
    finally:
        if sync is not None:
            check(sync.stop() == 0, "%s: sync stops with 0" % name)
        proxy.close()


def stale(env):
    """An update of a copy: conditional on its _seq_no, refused after the
    run's repair, read again and written again."""
    make_index(env)
    insert(env, [doc(i, title="v1") for i in range(5)])
    race(env, "stale", "d0001", lambda: set_title(env, "d0001", "stream"), "update")


def missing(env):
    """An insert: a create, refused because the run created the document
    meanwhile (with MongoDB's newer version), read again and written again."""
    make_index(env)
    insert(env, [doc(i, title="v1") for i in range(5)])
    race(env, "missing", "d0009", lambda: insert(env, [doc(9, title="stream")]), "create")


def deleted(env):
    """A delete: conditional on the copy, refused because MongoDB has the
    document again and the run wrote it back meanwhile; read again (found
    now) and written, not deleted."""
    make_index(env)
    insert(env, [doc(i, title="v1") for i in range(5)])

    def gone():
        r = env.mongo({"delete": "ads", "deletes": [{"q": {"_id": "d0002"}, "limit": 1}]})
        assert r.get("n") == 1, r

    race(env, "deleted", "d0002", gone, "delete",
         lambda: insert(env, [{"_id": "d0002", "n": 2, "title": "newer",
                               "updatedAt": now_date()}]))


def main():
    db = Secantus(retention=3600)
    try:
        ok, why = db.start()
        if not ok:
            print("SKIP: SecantusDB cannot be installed or started here: %s" % why)
            print("0 passed, 0 failed")
            return
        scenarios = [stale, missing, deleted]
        only = os.environ.get("LIVE_SYNC_ONLY")
        for fn in [f for f in scenarios if not only or f.__name__ == only]:
            env = None
            try:
                env = Env("lsc_" + fn.__name__)
                env.env["MONGODB_URI"] = db.uri
                fn(env)
            except Exception as e:
                import traceback
                traceback.print_exc()
                check(False, "%s raised %r" % (fn.__name__, e))
            finally:
                if env is not None:
                    try:
                        env.cleanup()
                    except Exception as e:
                        print("%s: cleanup: %r" % (fn.__name__, e), flush=True)
    finally:
        db.close()
    harness.done()


if __name__ == "__main__":
    main()
