"""tools/test-servers, on a server set of this test's own (its own directory
and free ports, the shared set's builds): a second start is a quick no-op
with exactly one of each of its servers; doctor with its OpenSearch node
really stopped says which side is unreachable; stop leaves none of its
processes. It asserts about the processes and ports it started only, so
other FerretDB or OpenSearch processes on the machine (the shared set,
another user's) neither fail it nor are touched by it."""
import os
import time

from harness import Env, ServerSet, check, done


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


s = ServerSet(OPENSEARCH_HEAP="512m")
env = None
try:
    s.start()
    pids = {n: s.pid(n) for n in ("ferretdb", "opensearch")}
    check(all(p and alive(p) for p in pids.values()), "both pid files name a live process: %s" % pids)
    t0 = time.monotonic()
    r = s.servers("start")
    took = time.monotonic() - t0
    check(r.returncode == 0, "second start succeeds: %r" % r.stderr[-300:])
    check(took < 5, "second start returns quickly (%.2fs)" % took)
    check({n: s.pid(n) for n in pids} == pids, "and starts nothing: the pid files are unchanged")
    own = s.processes()
    check(sorted(own) == sorted(pids.values()),
          "exactly one FerretDB and one OpenSearch of this set run (%s, pid files %s)"
          % (own, pids))
    st = s.servers("status")
    check(st.returncode == 0 and "ferretdb: running (pid %d)" % pids["ferretdb"] in st.stdout
          and "opensearch: running (pid %d)" % pids["opensearch"] in st.stdout,
          "status names this set's pids: %r" % st.stdout)
    out = s.servers("env").stdout
    check("127.0.0.1:%d" % s.ferretdb_port in out and "127.0.0.1:%d" % s.opensearch_port in out,
          "env names this set's ports: %r" % out)

    env = Env("servers", server_set=s)
    env.mongo({"create": "ads"})
    r = env.run("doctor")
    check(r.returncode == 0, "doctor passes on this set (%d: %r)" % (r.returncode, r.stderr[-300:]))
    env.mongo({"dropDatabase": 1})
    s.stop("opensearch")
    check(not alive(pids["opensearch"]) and s.pid("opensearch") is None,
          "stop opensearch ends this set's node and removes its pid file")
    check(alive(pids["ferretdb"]), "and leaves its FerretDB running")
    r = env.run("doctor")
    check(r.returncode != 0, "doctor exits non-zero with the OpenSearch node stopped")
    check("opensearch unreachable" in r.stderr, "doctor says OpenSearch is unreachable: %r" % r.stderr)
    check("reachable" in r.stdout.splitlines()[0], "and MongoDB still reachable")
    s.stop()
    check(not any(alive(p) for p in pids.values()) and s.processes() == [],
          "stop leaves none of this set's processes (%s)" % s.processes())
    check(s.pid("ferretdb") is None and s.pid("opensearch") is None, "nor its pid files")
finally:
    if env is not None:
        import shutil
        shutil.rmtree(env.tmp, ignore_errors=True)
    s.close()
done()
