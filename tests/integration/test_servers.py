"""tools/test-servers: a second start is a quick no-op with exactly one of
each server; stop leaves none; doctor with the OpenSearch node really
stopped says which side is unreachable. Leaves the servers running."""
import subprocess
import time

from harness import SERVERS, Env, check, done, servers


def pids(pattern):
    r = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [p for p in r.stdout.split()]


servers()
t0 = time.monotonic()
r = subprocess.run([SERVERS, "start"], capture_output=True, text=True)
took = time.monotonic() - t0
check(r.returncode == 0, "second start succeeds")
check(took < 5, "second start returns quickly (%.2fs)" % took)
check(len(pids("TestNode")) == 1, "exactly one OpenSearch node runs")
check(len(pids("ferretdb-[0-9a-f]+ -listen")) == 1, "exactly one FerretDB runs")

env = Env("servers")
try:
    subprocess.run([SERVERS, "stop", "opensearch"], check=True, capture_output=True)
    r = env.run("doctor")
    check(r.returncode != 0, "doctor exits non-zero with the OpenSearch node stopped")
    check("opensearch unreachable" in r.stderr, "doctor says OpenSearch is unreachable: %r" % r.stderr)
    check("reachable" in r.stdout.splitlines()[0], "and MongoDB still reachable")
finally:
    subprocess.run([SERVERS, "stop"], check=True, capture_output=True)
    check(not pids("TestNode") and not pids("ferretdb-[0-9a-f]+ -listen"), "stop leaves none running")
    servers()  # back up for the other tests
    env.cleanup()
done()
