"""Integration test harness: the real FerretDB and OpenSearch started by
tools/test-servers, the reconciler binary, and the C fixture tool.

Every test gets its own database, collection, index and journal, so tests
never see each other's data. Nothing here fakes a server. A test that
stops, freezes or counts servers does it to a ServerSet of its own (its own
directory and free ports), never to the shared set others are using.
"""
import json
import os
import random
import shutil
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

SRC = os.environ.get("RECONCILER_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("RECONCILER_BIN") or os.path.join(SRC, "build", "reconciler")
FIXTURE = os.path.join(os.path.dirname(BIN), "reconciler-fixture")
SERVERS = os.path.join(SRC, "tools", "test-servers")
# the shared set's directory (tools/test-servers' default), whose builds a
# ServerSet reuses
SERVERS_DIR = os.environ.get("TEST_SERVERS_DIR") or os.path.expanduser(
    "~/.cache/reconciler-test-servers")

FAILED = []
PASSED = []


def servers():
    """Starts the test servers if needed (a no-op when they run) and returns
    their addresses. Fails loudly when they cannot be started."""
    r = subprocess.run([SERVERS, "start"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit("FAIL: the test servers could not be started")
    env = {}
    out = subprocess.run([SERVERS, "env"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v
    return env


def check(cond, what):
    if cond:
        PASSED.append(what)
    else:
        FAILED.append(what)
        print("FAIL:", what, flush=True)


def done():
    print("%d passed, %d failed" % (len(PASSED), len(FAILED)))
    sys.exit(1 if FAILED else 0)


def run_all(scenarios, prefix=""):
    """Runs each scenario in an Env of its own, then ends the test with
    done(). A scenario is a function (its name names the Env) or a tuple
    (name, function) or (name, function, {setting: value}); the setting
    own_servers ("ferretdb", "opensearch" or "all") gives the scenario a
    ServerSet of its own for that side (env.server_set), one it may stop or
    freeze. An exception is a failed check and the next scenario still runs;
    the Env and its servers are cleaned up however the scenario ended."""
    for item in scenarios:
        if callable(item):
            item = (item.__name__, item)
        name, fn = item[0], item[1]
        settings = dict(item[2]) if len(item) > 2 else {}
        own = settings.pop("own_servers", None)
        env = server_set = None
        try:
            if own:
                server_set = ServerSet(OPENSEARCH_HEAP="512m")
                server_set.start(own)
            env = Env(prefix + name, server_set=server_set, **settings)
            fn(env)
        except Exception as e:
            traceback.print_exc()
            check(False, "%s raised %r" % (name, e))
        finally:
            try:
                if env is not None:
                    env.cleanup()
            except Exception as e:  # a server the scenario left stopped, say
                print("%s: cleanup: %r" % (name, e), flush=True)
            finally:
                if server_set is not None:
                    server_set.close()
    done()


def write(env, name, text):
    """Writes text into a file of the test's own directory; returns its path."""
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def free_port(also=()):
    """A TCP port nothing listens on now (the kernel's pick), and such that
    port + k is free too for each k of also."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if all(port + k < 65536 and port_free(port + k) for k in also):
            return port


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class ServerSet:
    """A FerretDB and/or OpenSearch of one test's own: tools/test-servers with
    its own TEST_SERVERS_DIR (a temporary directory) and free ports, reusing
    the shared set's builds (TEST_SERVERS_CACHE), so nothing is built or
    downloaded again. Everything it does (start, stop, the pid files) is
    about its own processes; the shared set is never touched.

        s = ServerSet(OPENSEARCH_HEAP="512m")
        try:
            s.start("opensearch")
            env = Env("x", server_set=s)
            ...
        finally:
            s.close()
    """

    def __init__(self, **settings):
        self.dir = tempfile.mkdtemp(prefix="reconciler-servers-")
        # the node's transport port is its HTTP port + 100 (TestNode.java)
        self.ferretdb_port, self.opensearch_port = free_port(), free_port(also=(100,))
        self.env = dict(os.environ)
        self.env.update({
            "TEST_SERVERS_DIR": self.dir,
            "TEST_SERVERS_CACHE": os.environ.get("TEST_SERVERS_CACHE") or SERVERS_DIR,
            "FERRETDB_PORT": str(self.ferretdb_port),
            "OPENSEARCH_PORT": str(self.opensearch_port),
            "FAST_MONGO_PORT": str(free_port()),
        })
        self.env.update({k: str(v) for k, v in settings.items()})
        self.started = set()

    def servers(self, *args, timeout=600):
        """Runs tools/test-servers on this set; its CompletedProcess."""
        return subprocess.run([SERVERS] + list(args), env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, what="all"):
        r = self.servers("start", *([] if what == "all" else [what]))
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            raise RuntimeError("the test's own %s could not be started" % what)
        self.started |= {"ferretdb", "opensearch"} if what == "all" else {what}
        return r

    def stop(self, what="all"):
        r = self.servers("stop", *([] if what == "all" else [what]))
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            raise RuntimeError("the test's own %s could not be stopped" % what)
        return r

    def pid(self, name):
        """The pid in name's pid file (ferretdb, opensearch), or None."""
        try:
            with open(os.path.join(self.dir, name + ".pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def processes(self):
        """Pids of the processes whose command line names this set's
        directory (its servers' data directories are in it), whatever the
        pid files say."""
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read().decode(errors="replace")
            except OSError:
                continue
            if self.dir in cmd:
                out.append(int(p))
        return sorted(out)

    def addr(self):
        """MONGODB_URI and OPENSEARCH_URL of the servers this set started."""
        out = {}
        if "ferretdb" in self.started:
            out["MONGODB_URI"] = "mongodb://127.0.0.1:%d/" % self.ferretdb_port
        if "opensearch" in self.started:
            out["OPENSEARCH_URL"] = "http://127.0.0.1:%d" % self.opensearch_port
        return out

    def close(self):
        """Stops whatever of this set runs and removes its directory."""
        try:
            self.servers("stop", timeout=120)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Env:
    """One test's world: a database + collection, an index, a journal. On the
    shared servers, or on those a ServerSet of the test's own started
    (server_set: the shared set for any side the ServerSet did not start)."""

    def __init__(self, name, server_set=None, **settings):
        self.server_set = server_set
        own = server_set.addr() if server_set else {}
        self.addr = own if len(own) == 2 else dict(servers(), **own)
        tag = name + "_" + "".join(random.choice(string.ascii_lowercase) for _ in range(6))
        self.tmp = tempfile.mkdtemp(prefix="reconciler-it-")
        self.db = "it_" + tag
        self.index = "it_" + tag
        self.url = self.addr["OPENSEARCH_URL"]
        self.env = dict(os.environ)
        # TEST_MONGO=fast: the scenarios against mongo-java-server instead of
        # FerretDB (tools/test-servers start --fast-mongo; see TEST-SERVERS.md)
        mongo_uri = self.addr["MONGODB_URI"]
        if os.environ.get("TEST_MONGO") == "fast":
            mongo_uri = self.addr.get("FAST_MONGODB_URI") or sys.exit(
                "TEST_MONGO=fast: start the servers with --fast-mongo")
        self.env.update({
            "MONGODB_URI": mongo_uri,
            "MONGODB_DATABASE": self.db,
            "MONGODB_COLLECTION": "ads",
            "OPENSEARCH_URL": self.url,
            "OPENSEARCH_INDEX": self.index,
            "STATE_DB": os.path.join(self.tmp, "journal.db"),
            "LOG_DIR": os.path.join(self.tmp, "logs"),
            "RECONCILE_VERSION_FIELD": "updatedAt",
            "ASAN_OPTIONS": "detect_leaks=1",
        })
        self.env.update({k: str(v) for k, v in settings.items()})

    # -- processes ---------------------------------------------------
    def run(self, *args, timeout=600, **settings):
        env = dict(self.env)
        env.update({k: str(v) for k, v in settings.items()})
        return subprocess.run([BIN] + list(args), env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.tmp)

    def spawn(self, *args, **settings):
        env = dict(self.env)
        env.update({k: str(v) for k, v in settings.items()})
        return subprocess.Popen([BIN] + list(args), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.tmp)

    def fixture(self, *args):
        r = subprocess.run([FIXTURE] + [str(a) for a in args], env=self.env,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError("fixture %s failed: %s" % (args, r.stderr))
        return r.stdout

    def mongo(self, command):
        return json.loads(self.fixture("command", json.dumps(command)))

    # -- OpenSearch over REST ------------------------------------------
    def os(self, method, path, body=None, ndjson=False):
        data = None
        headers = {}
        if body is not None:
            if ndjson:
                data = "".join(json.dumps(x) + "\n" for x in body).encode()
                headers["Content-Type"] = "application/x-ndjson"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def create_index(self, extra_properties=None):
        props = {"mongo_id": {"type": "keyword"}, "updatedAt": {"type": "date"}}
        props.update(extra_properties or {})
        st, body = self.os("PUT", "/" + self.index, {"mappings": {"properties": props}})
        assert st == 200, body

    def refresh(self):
        self.os("POST", "/%s/_refresh" % self.index)

    def shard_of(self, routing):
        """The shard of this test's index that a routing value (or an _id
        written without one) goes to, as OpenSearch computes it."""
        st, res = self.os("GET", "/%s/_search_shards?routing=%s" % (
            self.index, urllib.parse.quote(routing, safe="")))
        assert st == 200, res
        return res["shards"][0][0]["shard"]

    def os_docs(self, index=None):
        """{_id: updatedAt-in-ms or None} of the whole index (this test's, or
        the one named), independently of the reconciler's own code."""
        index = index or self.index
        self.os("POST", "/%s/_refresh" % index)
        out, after = {}, None
        while True:
            body = {"size": 1000, "sort": [{"_id": "asc"}], "_source": ["updatedAt"]}
            if after:
                body["search_after"] = after
            st, res = self.os("POST", "/%s/_search" % index, body)
            if st == 404:
                return out
            hits = res["hits"]["hits"]
            for h in hits:
                v = (h.get("_source") or {}).get("updatedAt")
                out[h["_id"]] = iso_ms(v) if v else None
            if len(hits) < 1000:
                return out
            after = hits[-1]["sort"]

    def mongo_docs(self):
        out = {}
        for line in self.fixture("ids").splitlines():
            idv, _type, version = line.split("\t")
            out[idv] = int(version) if version else None
        return out

    def bulk(self, actions):
        st, res = self.os("POST", "/%s/_bulk?refresh=true" % self.index, actions, ndjson=True)
        assert st == 200 and not res.get("errors"), res
        return res

    def journal(self):
        db = sqlite3.connect(self.env["STATE_DB"], timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def last_run(self):
        with self.journal() as db:
            return dict(db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone())

    def in_sync(self):
        return self.mongo_docs() == self.os_docs()

    def cleanup(self):
        """Drops the test's database and index and removes its directory;
        each step is tried whatever the one before did, the first error is
        raised at the end."""
        error = None
        for step in (lambda: self.mongo({"dropDatabase": 1}),
                     lambda: self.os("DELETE", "/" + self.index)):
            try:
                step()
            except Exception as e:
                error = error or e
        shutil.rmtree(self.tmp, ignore_errors=True)
        if error:
            raise error


def iso_ms(s):
    """ISO-8601 UTC (also ISO 8601 expanded years: "+10000-...", "-0001-...")
    with optional millis -> epoch ms, for every year a BSON Date can hold."""
    import re
    m = re.fullmatch(r"([+-]?\d{4,9})-(\d\d)-(\d\d)(?:T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?)?"
                     r"(Z|[+-]\d\d:\d\d)?", s)
    if not m:
        raise ValueError("not an ISO 8601 date: %r" % s)
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    h, mi, sec = (int(m.group(i) or 0) for i in (4, 5, 6))
    ms = int(((m.group(7) or "") + "000")[:3])
    # days from civil (proleptic Gregorian), as in src/util.c
    y -= mo <= 2
    era = y // 400  # floor division (C needs (y - 399) / 400 for this)
    yoe = y - era * 400
    doy = (153 * (mo - 3 if mo > 2 else mo + 9) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    off = 0
    if m.group(8) and m.group(8) != "Z":
        sign = -1 if m.group(8)[0] == "-" else 1
        off = sign * (int(m.group(8)[1:3]) * 60 + int(m.group(8)[4:6]))
    return ((days * 86400 + h * 3600 + mi * 60 + sec) - off * 60) * 1000 + ms


def ext_id(canonical, id_type):
    """Extended JSON of an id, for fixture commands."""
    if id_type == "oid":
        return {"$oid": canonical}
    if id_type == "int":
        return {"$numberLong": canonical}
    return canonical
