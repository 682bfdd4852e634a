"""Live sync (`reconciler sync`, docs/LIVE-SYNC.md) against SecantusDB (a
MongoDB with change streams, started here by tools/test-servers with a
directory of its own) and the shared OpenSearch: every kind of change
reaches the index, a document leaving the filter is deleted, a routed
document moving routing leaves one copy, a kill -9 mid-stream resumes with
nothing lost, history pruned while sync is down is a journaled gap that
the catch-up check closes (deletes included), a drop is a journaled gap,
and a server without change streams (FerretDB) is refused with 78; doctor
and check work against SecantusDB too.

SecantusDB is installed from PyPI on first use (tools/test-servers); when it
cannot be installed here the test says SKIP and passes."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import harness
from harness import BIN, SERVERS, SERVERS_DIR, Env, check, free_port


class Secantus:
    """A SecantusDB of this test's own: tools/test-servers start secantusdb
    with its own TEST_SERVERS_DIR and a free port, sharing the shared set's
    cache (the venv is installed once)."""

    def __init__(self, retention=3600):
        self.dir = tempfile.mkdtemp(prefix="reconciler-secantus-")
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update({
            "TEST_SERVERS_DIR": self.dir,
            "TEST_SERVERS_CACHE": os.environ.get("TEST_SERVERS_CACHE") or SERVERS_DIR,
            "SECANTUS_PORT": str(self.port),
            "SECANTUS_OPLOG_RETENTION": str(retention),
            "SECANTUS_NOOP_HEARTBEAT": "1",
        })
        self.uri = "mongodb://127.0.0.1:%d/?directConnection=true" % self.port

    def start(self):
        r = subprocess.run([SERVERS, "start", "secantusdb"], env=self.env, capture_output=True,
                           text=True, timeout=900)
        return r.returncode == 0, r.stderr[-2000:]

    def close(self):
        try:
            subprocess.run([SERVERS, "stop", "secantusdb"], env=self.env, capture_output=True,
                           text=True, timeout=120)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(cond, what, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if cond():
                return True
        except Exception:
            pass
        time.sleep(0.3)
    check(False, "%s (waited %d s)" % (what, timeout))
    return False


class Sync:
    """`reconciler sync` in the background, its stderr in a file."""

    def __init__(self, env, *args, **settings):
        self.log = os.path.join(env.tmp, "sync-%d.err" % time.time_ns())
        e = dict(env.env)
        e.update({k: str(v) for k, v in settings.items()})
        self.f = open(self.log, "w")
        self.p = subprocess.Popen([BIN, "sync"] + list(args), env=e, stdout=subprocess.DEVNULL,
                                  stderr=self.f, cwd=env.tmp)
        self.env = env

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        self.f.close()
        if harness.FAILED:  # what sync said, for the failures above
            print("--- sync's stderr (tail):\n" + self.stderr()[-3000:], flush=True)
        return rc


def streams(env):
    with env.journal() as db:
        row = db.execute("SELECT * FROM streams WHERE mirror = 'default'").fetchone()
        return dict(row) if row else None


def gaps(env):
    with env.journal() as db:
        return [dict(r) for r in db.execute("SELECT * FROM stream_gaps ORDER BY id")]


def started(env, sync, catchup=True):
    """The stream is open and its place journaled, and (catchup) the first
    start's catch-up check has closed its gap (or waits for the collection
    to exist: it runs at the first change)."""
    return wait_for(lambda: (streams(env) or {}).get("token") and (
        not catchup or "gap closed by run" in sync.stderr() or "waits for it" in sync.stderr()),
        "sync started")


def insert(env, docs):
    r = env.mongo({"insert": "ads", "documents": docs})
    assert r.get("ok") == 1 and r.get("n") == len(docs), r


def doc(i, **extra):
    d = {"_id": "d%04d" % i, "n": i, "updatedAt": {"$date": "2026-12-01T00:00:%02d.%03dZ" % (
        i // 1000 % 60, i % 1000)}}
    d.update(extra)
    return d


def now_date():
    return {"$date": {"$numberLong": str(int(time.time() * 1000))}}


def source(env, id_):
    env.refresh()
    st, res = env.os("GET", "/%s/_search" % env.index,
                     {"query": {"ids": {"values": [id_]}}, "size": 10})
    return [h for h in res["hits"]["hits"]]


def in_sync(env):
    return env.mongo_docs() == env.os_docs()


# -- scenarios ---------------------------------------------------------------


def every_change(env):
    """RECONCILE_WRITE_MODE=index: the copy is the document (upsert, the
    default, merges a replace into the copy as repairs do)."""
    env.create_index()
    env.env["RECONCILE_WRITE_MODE"] = "index"
    sync = Sync(env)
    try:
        started(env, sync)
        insert(env, [doc(i) for i in range(40)])
        env.mongo({"update": "ads", "updates": [
            {"q": {"_id": "d0001"}, "u": {"$set": {"color": "red", "updatedAt": now_date()}}}]})
        env.mongo({"update": "ads", "updates": [
            {"q": {"_id": "d0002"}, "u": {"other": True, "updatedAt": now_date()}}]})
        env.mongo({"delete": "ads", "deletes": [{"q": {"_id": "d0003"}, "limit": 1},
                                                {"q": {"_id": "d0004"}, "limit": 1}]})
        wait_for(lambda: in_sync(env), "inserts, updates, replaces and deletes reach the index")
        h = source(env, "d0001")
        check(len(h) == 1 and h[0]["_source"].get("color") == "red", "the update is in the copy: %r" % h)
        h = source(env, "d0002")
        check(len(h) == 1 and h[0]["_source"].get("other") is True and "n" not in h[0]["_source"],
              "the replace is the whole copy: %r" % h)
        check(source(env, "d0003") == [] and source(env, "d0004") == [], "deletes reach the index")
        r = env.run("sync", timeout=60)
        check(r.returncode == 2 and "another reconciler sync" in r.stderr,
              "a second sync of the mirror is refused (%d: %s)" % (r.returncode, r.stderr[-300:]))
        # the catch-up (at the first change: the collection did not exist)
        # may have written them first; the stream's events follow it
        wait_for(lambda: streams(env)["events_applied"] >= 44, "streams counts the events")
        s = streams(env)
        check(s["events_failed"] == 0 and s["cluster_time"],
              "streams keeps the cluster time: %r" % s)
    finally:
        rc = sync.stop()
    check(rc == 0, "SIGTERM stops sync with 0 (%d): %s" % (rc, sync.stderr()[-500:]))
    check("sync stopped by SIGTERM" in sync.stderr(), "sync says it stopped")
    g = gaps(env)
    check(len(g) == 1 and g[0]["reason"] == "first_start" and g[0]["closed_at"],
          "the first start is a gap, closed by the catch-up: %r" % g)
    with env.journal() as db:
        runs = [dict(r) for r in db.execute("SELECT id, kind, trigger, status FROM runs")]
        events = [r[0] for r in db.execute("SELECT detail FROM run_events WHERE event = 'gaps'")]
    check([{k: r[k] for k in ("kind", "trigger", "status")} for r in runs]
          == [{"kind": "catchup", "trigger": "catchup", "status": "completed"}],
          "the catch-up is a run of kind catchup: %r" % runs)
    check(g[0]["catchup_run_id"] == runs[0]["id"], "the gap names its catch-up run: %r" % g)
    check(len(events) == 1 and ("gap %d (first_start)" % g[0]["id"]) in events[0],
          "the catch-up's journal names the gap it closes and why: %r" % events)


def empty_id(env):
    """QA22 F2: a document whose _id is "" (MongoDB takes it; OpenSearch
    holds no copy under an empty _id and refuses an ids query holding one)
    fails alone; the stream goes on with the others."""
    env.create_index()
    sync = Sync(env)
    try:
        started(env, sync)
        insert(env, [{"_id": "", "n": 0}])
        insert(env, [doc(i) for i in range(5)])
        wait_for(lambda: {"d%04d" % i for i in range(5)} <= set(env.os_docs()),
                 "the changes after the empty _id reach the index")
        wait_for(lambda: streams(env)["events_failed"] >= 1, "the empty _id is counted failed")
        check("Ids can't be empty" not in sync.stderr() and
              "reopens from its journaled place" not in sync.stderr(),
              "no lookup refused, no reopen: %s" % sync.stderr()[-800:])
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def gap_closed_by_check(env):
    """QA22 F3: with CHANGE_STREAM_CATCHUP=false a check completed while
    the stream runs closes its open gaps then, not at the next start."""
    env.create_index()
    insert(env, [doc(i) for i in range(5)])
    sync = Sync(env, CHANGE_STREAM_CATCHUP="false")
    try:
        started(env, sync, catchup=False)
        g = gaps(env)
        check(len(g) == 1 and not g[0]["closed_at"], "the first start's gap is open: %r" % g)
        r = env.run("check")
        check(r.returncode == 0, "a check completes (%d)" % r.returncode)
        wait_for(lambda: gaps(env)[0]["closed_at"], "the running stream closes the gap", 40)
        check("gap(s) closed by a check run" in sync.stderr(), "and says so")
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def busy_catchup_waits(env):
    """QA22 F5: a catch-up refused because the mirror is busy is tried again
    in a minute, not at every change the stream reads meanwhile."""
    env.create_index()
    insert(env, [doc(i) for i in range(300)])
    e = dict(env.env, SYNC_BATCH_SIZE="10", SYNC_BATCH_DELAY_MS="400")
    slow = subprocess.Popen([BIN, "check"], env=e, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=env.tmp)
    sync = None
    try:
        wait_for(lambda: env.last_run() and env.last_run()["status"] == "running",
                 "a slow check holds the mirror")
        sync = Sync(env)
        wait_for(lambda: "catch-up did not complete" in sync.stderr(), "the catch-up is refused")
        for i in range(300, 320):
            insert(env, [doc(i)])
            time.sleep(0.1)
        time.sleep(2)
        n = sync.stderr().count("catch-up did not complete")
        check(n == 1, "refused once, tried again in a minute, not per change (%d)" % n)
    finally:
        if sync:
            check(sync.stop() == 0, "sync stops with 0")
        slow.kill()
        slow.wait()


def index_lost(env):
    """QA22 F4: the index deleted while the stream runs is a journaled gap
    (index_lost, from the beginning), the index is made again and the
    catch-up writes the whole mirror into it: no write silently creates an
    index holding only the later changes."""
    env.create_index()
    insert(env, [doc(i) for i in range(30)])
    sync = Sync(env, OPENSEARCH_ID_FIELD="mongo_id")
    try:
        started(env, sync)
        wait_for(lambda: in_sync(env), "synced")
        insert(env, [doc(30)])
        wait_for(lambda: len(env.os_docs()) == 31, "the stream's write")
        env.os("DELETE", "/" + env.index)
        insert(env, [doc(31)])
        env.mongo({"update": "ads", "updates": [
            {"q": {"_id": "d0001"}, "u": {"$set": {"late": 1, "updatedAt": now_date()}}}]})
        wait_for(lambda: any(g["reason"] == "index_lost" for g in gaps(env)),
                 "the lost index is a journaled gap")
        wait_for(lambda: all(g["closed_at"] for g in gaps(env)), "its catch-up closes it")
        wait_for(lambda: in_sync(env), "the index holds the whole collection again")
        g = [x for x in gaps(env) if x["reason"] == "index_lost"]
        check(len(g) == 1 and g[0]["lost_from"] is None, "lost from the beginning: %r" % g)
        st, m = env.os("GET", "/%s/_mapping" % env.index)
        props = m[env.index]["mappings"]["properties"]
        check(props.get("mongo_id", {}).get("type") == "keyword",
              "the index is made again as a check makes it: %r" % props.get("mongo_id"))
        check("index_lost" in sync.stderr(), "the gap is logged")
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def index_lost_at_start(env):
    """QA22b N1: the index deleted after the stream started but before any
    batch of it looked the index up is a gap too (the stream saw the index
    at its start, and after its catch-up)."""
    env.create_index()
    insert(env, [doc(i) for i in range(20)])
    sync = Sync(env)
    try:
        started(env, sync)
        wait_for(lambda: in_sync(env), "synced by the catch-up")
        env.os("DELETE", "/" + env.index)
        insert(env, [doc(20)])
        wait_for(lambda: any(g["reason"] == "index_lost" for g in gaps(env)),
                 "the lost index is a journaled gap")
        wait_for(lambda: in_sync(env), "the catch-up writes the whole collection again")
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def write_block(env):
    """QA22b N2: a block on the whole index (index.blocks.write, as the
    disk's flood stage sets) fails no document alone: the batch waits and
    is written once the block is lifted."""
    env.create_index()
    insert(env, [doc(i) for i in range(5)])
    sync = Sync(env)
    try:
        started(env, sync)
        wait_for(lambda: in_sync(env), "synced")
        st, _ = env.os("PUT", "/%s/_settings" % env.index, {"index.blocks.write": True})
        check(st == 200, "the index refuses writes")
        insert(env, [doc(5)])
        env.mongo({"update": "ads", "updates": [
            {"q": {"_id": "d0001"}, "u": {"$set": {"late": 1, "updatedAt": now_date()}}}]})
        wait_for(lambda: "the index refuses writes" in sync.stderr(), "the block is logged")
        time.sleep(2)
        env.os("PUT", "/%s/_settings" % env.index, {"index.blocks.write": None})
        wait_for(lambda: in_sync(env), "written once the block is lifted", 90)
        h = source(env, "d0001")
        check(len(h) == 1 and h[0]["_source"].get("late") == 1, "the update too")
        check(streams(env)["events_failed"] == 0, "no change counted failed: %r" % streams(env))
    finally:
        env.os("PUT", "/%s/_settings" % env.index, {"index.blocks.write": None})
        check(sync.stop() == 0, "sync stops with 0")


def leaving_filter(env):
    env.create_index()
    sync = Sync(env, RECONCILE_FILTER='{"status": "on"}', RECONCILE_ORPHANS="delete")
    try:
        started(env, sync)
        insert(env, [doc(i, status="on" if i % 2 == 0 else "off") for i in range(20)])
        wait_for(lambda: set(env.os_docs()) == {"d%04d" % i for i in range(0, 20, 2)},
                 "only documents in the filter reach the index")
        env.mongo({"update": "ads", "updates": [
            {"q": {"_id": "d0000"}, "u": {"$set": {"status": "off", "updatedAt": now_date()}}},
            {"q": {"_id": "d0001"}, "u": {"$set": {"status": "on", "updatedAt": now_date()}}}]})
        want = {"d%04d" % i for i in range(2, 20, 2)} | {"d0001"}
        wait_for(lambda: set(env.os_docs()) == want,
                 "a document leaving the filter is deleted, one entering it is written")
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def filter_not_movable(env):
    """A filter the server cannot apply to the stream ($expr): every event is
    read and documents are fetched under the filter."""
    env.create_index()
    sync = Sync(env, RECONCILE_FILTER='{"$expr": {"$gte": ["$n", 5]}}')
    try:
        started(env, sync)
        insert(env, [doc(i) for i in range(10)])
        wait_for(lambda: set(env.os_docs()) == {"d%04d" % i for i in range(5, 10)},
                 "only documents the $expr filter matches reach the index")
        env.mongo({"update": "ads", "updates": [
            {"q": {"_id": "d0007"}, "u": {"$set": {"n": 1, "updatedAt": now_date()}}}]})
        wait_for(lambda: set(env.os_docs()) == {"d0005", "d0006", "d0008", "d0009"},
                 "a document leaving an $expr filter is deleted")
        check("cannot be moved onto the change stream" in sync.stderr(), "the log says so")
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def held_catchup(env):
    """A catch-up check the brake holds leaves its gap open, and says so."""
    env.create_index()
    insert(env, [doc(i) for i in range(20)])
    env.run("check")  # the index holds them: the deletes below are orphans
    env.mongo({"delete": "ads", "deletes": [{"q": {"n": {"$lt": 10}}, "limit": 0}]})
    sync = Sync(env, RECONCILE_ORPHANS="delete")  # 10 of 20 orphans: over the 5% brake
    try:
        wait_for(lambda: "held its deletes" in sync.stderr(), "the held catch-up is logged")
        g = gaps(env)
        check(len(g) == 1 and g[0]["catchup_run_id"] and not g[0]["closed_at"],
              "the gap stays open, naming its run: %r" % g)
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def two_mirrors(env):
    """Two mirrors in one sync, a thread each; --mirror picks one."""
    other = env.index + "_b"
    path = harness.write(env, "reconciler.yaml", """
mirrors:
  - name: a
    mongodb_collection: ads
    opensearch_index: %s
  - name: b
    mongodb_collection: users
    opensearch_index: %s
""" % (env.index, other))
    env.env["RECONCILER_CONFIG"] = path
    try:
        sync = Sync(env)
        try:
            wait_for(lambda: len([r for r in env.journal().execute(
                "SELECT token FROM streams WHERE token IS NOT NULL")]) == 2, "both streams open")
            insert(env, [doc(i) for i in range(5)])
            r = env.mongo({"insert": "users", "documents": [doc(i) for i in range(7)]})
            check(r.get("n") == 7, "users inserted")
            wait_for(lambda: len(env.os_docs()) == 5 and len(env.os_docs(other)) == 7,
                     "each mirror's changes reach its own index")
        finally:
            check(sync.stop() == 0, "sync of two mirrors stops with 0")
        env.mongo({"delete": "ads", "deletes": [{"q": {}, "limit": 0}]})
        env.mongo({"delete": "users", "deletes": [{"q": {}, "limit": 0}]})
        sync = Sync(env, "--mirror", "b")
        try:
            wait_for(lambda: len(env.os_docs(other)) == 0, "--mirror b syncs b")
            time.sleep(2)
            check(len(env.os_docs()) == 5, "and not a")
        finally:
            check(sync.stop() == 0, "sync --mirror stops with 0")
    finally:
        env.os("DELETE", "/" + other)


def routing_moves(env):
    st, res = env.os("PUT", "/" + env.index, {
        "settings": {"number_of_shards": 3},
        "mappings": {"properties": {"mongo_id": {"type": "keyword"}, "updatedAt": {"type": "date"},
                                    "shop": {"type": "keyword"}}}})
    assert st == 200, res
    sync = Sync(env, OPENSEARCH_ROUTING_FIELD="shop")
    try:
        started(env, sync)
        insert(env, [doc(i, shop="s%d" % i) for i in range(10)])
        wait_for(lambda: len(env.os_docs()) == 10, "routed documents reach the index")
        h = source(env, "d0005")
        check(len(h) == 1 and h[0].get("_routing") == "s5", "written under its routing: %r" % h)
        # a shop on another shard than s5's
        other = next(s for s in ("a", "b", "c", "d", "e", "f", "g", "h")
                     if env.shard_of(s) != env.shard_of("s5"))
        env.mongo({"update": "ads", "updates": [
            {"q": {"_id": "d0005"}, "u": {"$set": {"shop": other, "updatedAt": now_date()}}}]})
        wait_for(lambda: [x.get("_routing") for x in source(env, "d0005")] == [other],
                 "a document moving routing leaves one copy, under its new routing")
        env.mongo({"delete": "ads", "deletes": [{"q": {"_id": "d0006"}, "limit": 1}]})
        wait_for(lambda: source(env, "d0006") == [],
                 "a routed document's delete removes the copy under its routing")
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def kill9_resume(env):
    env.create_index()
    insert(env, [doc(i) for i in range(100)])
    sync = Sync(env, SYNC_BATCH_SIZE=20, CHANGE_STREAM_BATCH_MS=100)
    started(env, sync)
    wait_for(lambda: in_sync(env), "the first start's catch-up indexes what was there")
    stop = threading.Event()

    def writer():
        i = 100
        while not stop.is_set() and i < 2000:
            insert(env, [doc(i + k) for k in range(10)])
            env.mongo({"update": "ads", "updates": [
                {"q": {"_id": "d%04d" % (i - 50)}, "u": {"$set": {"w": i, "updatedAt": now_date()}}}]})
            env.mongo({"delete": "ads", "deletes": [{"q": {"_id": "d%04d" % (i - 90)}, "limit": 1}]})
            i += 10

    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_for(lambda: (streams(env) or {}).get("events_applied", 0) > 150, "sync applies events")
        sync.p.kill()  # kill -9 mid-stream
        sync.p.wait()
        sync.f.close()
        applied = streams(env)["events_applied"]
        time.sleep(1)
        sync = Sync(env, SYNC_BATCH_SIZE=20, CHANGE_STREAM_BATCH_MS=100)
        time.sleep(2)
    finally:
        stop.set()
        t.join()
    try:
        check(wait_for(lambda: in_sync(env), "after kill -9 and restart the index equals the collection",
                       timeout=120), "nothing lost")
        check("resumed after" in sync.stderr(), "the restart resumes from the journaled token: %s"
              % sync.stderr()[-600:])
        check(streams(env)["events_applied"] > applied, "events applied after the restart")
        g = gaps(env)
        check([x["reason"] for x in g] == ["first_start"], "a kill -9 leaves no gap: %r" % g)
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def history_lost(env):
    env.create_index()
    srv = env.secantus_short
    env.env["MONGODB_URI"] = srv.uri
    insert(env, [doc(i) for i in range(30)])
    sync = Sync(env, RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETE_RATIO="0.5")
    started(env, sync)
    wait_for(lambda: in_sync(env), "synced before the outage")
    insert(env, [doc(i) for i in range(30, 35)])
    wait_for(lambda: len(env.os_docs()) == 35, "the stream's writes before the outage")
    check(sync.stop() == 0, "sync stops with 0")
    before = streams(env)
    # while sync is down: changes, then their history falls off the oplog
    insert(env, [doc(i) for i in range(35, 50)])
    env.mongo({"update": "ads", "updates": [
        {"q": {"_id": "d0001"}, "u": {"$set": {"late": 1, "updatedAt": now_date()}}}]})
    env.mongo({"delete": "ads", "deletes": [{"q": {"_id": "d0002"}, "limit": 1},
                                            {"q": {"_id": "d0031"}, "limit": 1}]})
    time.sleep(7)
    insert(env, [doc(50)])
    r = env.mongo({"secantusAdmin.pruneOplog": 1})
    check(r.get("ok") == 1 and r.get("pruned", 0) > 0, "the oplog was pruned: %r" % r)
    sync = Sync(env, RECONCILE_ORPHANS="delete", RECONCILE_MAX_DELETE_RATIO="0.5")
    try:
        wait_for(lambda: "gap closed by run" in sync.stderr(), "the catch-up closes the gap")
        err = sync.stderr()
        check("history_lost" in err and "gap 2" in err, "the gap is logged: %s" % err[-800:])
        g = gaps(env)
        check(len(g) == 2 and g[1]["reason"] == "history_lost"
              and g[1]["lost_from"] == before["cluster_time"] and g[1]["closed_at"]
              and g[1]["catchup_run_id"], "the gap is journaled from the last committed "
              "cluster time and closed by its run: %r (before %r)" % (g, before))
        with env.journal() as db:
            kind = db.execute("SELECT kind FROM runs WHERE id = ?",
                              (g[1]["catchup_run_id"],)).fetchone()[0]
            ev = [r[0] for r in db.execute("SELECT detail FROM run_events WHERE run_id = ? "
                                           "AND event = 'gaps'", (g[1]["catchup_run_id"],))]
        check(kind == "catchup", "the gap's run is a catchup run: %r" % kind)
        check(len(ev) == 1 and ("gap %d (history_lost): changes after %s" % (
            g[1]["id"], before["cluster_time"])) in ev[0],
              "the catchup run names its gap, why and from when: %r" % ev)
        wait_for(lambda: in_sync(env), "the index equals the collection (deletes included)")
        h = source(env, "d0001")
        check(len(h) == 1 and h[0]["_source"].get("late") == 1, "the missed update is written")
        check(source(env, "d0002") == [] and source(env, "d0031") == [], "missed deletes closed")
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def history_lost_no_version(env):
    """QA22 F1: without RECONCILE_VERSION_FIELD a check sees no stale copy
    by version; the catch-up compares content, so an update made during the
    gap is written before the gap is said closed."""
    env.create_index()
    srv = env.secantus_short
    env.env["MONGODB_URI"] = srv.uri
    env.env["RECONCILE_VERSION_FIELD"] = ""
    insert(env, [{"_id": "v%02d" % i, "s": "x"} for i in range(20)])
    sync = Sync(env)
    started(env, sync)
    wait_for(lambda: in_sync(env), "synced before the outage")
    check(sync.stop() == 0, "sync stops with 0")
    env.mongo({"update": "ads", "updates": [
        {"q": {"_id": {"$in": ["v%02d" % i for i in range(5)]}},
         "u": {"$set": {"s": "while-down"}}, "multi": True}]})
    time.sleep(7)
    insert(env, [{"_id": "v99", "s": "x"}])
    r = env.mongo({"secantusAdmin.pruneOplog": 1})
    check(r.get("ok") == 1 and r.get("pruned", 0) > 0, "the oplog was pruned: %r" % r)
    sync = Sync(env)
    try:
        wait_for(lambda: "gap closed by run" in sync.stderr(), "the catch-up closes the gap")
        got = {i: [h["_source"].get("s") for h in source(env, "v%02d" % i)] for i in range(5)}
        check(all(v == ["while-down"] for v in got.values()),
              "the updates made during the gap are in the index when it closes: %r" % got)
        g = gaps(env)
        with env.journal() as db:
            ev = [r[0] for r in db.execute("SELECT detail FROM run_events WHERE run_id = ? "
                                           "AND event = 'catchup'", (g[-1]["catchup_run_id"],))]
        check(len(ev) == 1 and "content" in ev[0], "the run says it compares content: %r" % ev)
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def dropped(env):
    env.create_index()
    insert(env, [doc(i) for i in range(5)])
    sync = Sync(env, CHANGE_STREAM_CATCHUP="false")
    try:
        started(env, sync, catchup=False)
        env.mongo({"drop": "ads"})
        wait_for(lambda: any(x["reason"] == "invalidate" for x in gaps(env)),
                 "a drop is a journaled gap")
        check("invalidated" in sync.stderr(), "the drop is logged: %s" % sync.stderr()[-500:])
        insert(env, [doc(i) for i in range(100, 103)])
        wait_for(lambda: {"d0100", "d0101", "d0102"} <= set(env.os_docs()),
                 "the stream goes on after the invalidate")
    finally:
        check(sync.stop() == 0, "sync stops with 0")


def doctor_and_check(env):
    """The reconciler's other commands work against SecantusDB too."""
    insert(env, [doc(i) for i in range(30)])
    r = env.run("doctor")
    check(r.returncode == 0 and "version 8." in r.stdout, "doctor (%d): %s" % (
        r.returncode, r.stdout + r.stderr[-300:]))
    r = env.run("check", "--dry-run")
    check(r.returncode == 1 and "missing 30" in r.stdout, "check --dry-run finds 30 missing (%d)"
          % r.returncode)
    r = env.run("check")
    check(r.returncode == 0 and in_sync(env), "check repairs (%d)" % r.returncode)


def no_change_streams(env):
    """FerretDB (the shared set's MongoDB) has no change streams: 78."""
    env.env["MONGODB_URI"] = env.ferretdb_uri
    r = env.run("sync", timeout=60)
    check(r.returncode == 78, "no change streams: exit 78 (%d: %s)" % (r.returncode, r.stderr[-400:]))
    check("change stream" in r.stderr and "FerretDB" in r.stderr, "the message says why")
    check(not os.path.exists(env.env["STATE_DB"]) or not gaps(env), "no gap journaled")


def main():
    long_ = Secantus(retention=3600)
    short = Secantus(retention=4)
    try:
        ok, why = long_.start()
        if ok:
            ok, why = short.start()
        if not ok:
            print("SKIP: SecantusDB cannot be installed or started here: %s" % why)
            print("0 passed, 0 failed")
            return
        scenarios = [every_change, empty_id, gap_closed_by_check, busy_catchup_waits, index_lost,
                     index_lost_at_start, write_block,
                     leaving_filter, filter_not_movable, held_catchup, two_mirrors,
                     routing_moves, kill9_resume, history_lost, history_lost_no_version,
                     dropped, doctor_and_check, no_change_streams]
        only = os.environ.get("LIVE_SYNC_ONLY")  # one scenario by name, while debugging
        scenarios = [f for f in scenarios if not only or f.__name__ == only]
        for fn in scenarios:
            env = None
            try:
                env = Env(fn.__name__)
                env.ferretdb_uri = env.env["MONGODB_URI"]
                env.env["MONGODB_URI"] = long_.uri
                env.secantus_short = short
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
        long_.close()
        short.close()
    harness.done()


if __name__ == "__main__":
    main()
