"""How the command line ends when it does not complete (issue 24 item 12):
Ctrl-C (SIGINT) of a run exits 130, as a shell expects of an interrupted
command, not 2 like a server error, and says `reconciler resume`; a second
`serve` on a port already in use fails before it resumes anything: the
interrupted run stays as it was for the service that can serve."""
import signal
import socket
import time

from harness import check, run_all

SLOW = dict(SYNC_BATCH_SIZE=10, SYNC_BATCH_DELAY_MS=100)


def interrupt(env):
    """A check stopped by SIGINT once its first batch is in: the run's id."""
    p = env.spawn("check", **SLOW)
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.3)
        try:
            run = env.last_run()
        except Exception:
            continue
        if run and run["repaired_count"]:
            break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


def ctrl_c(env):
    env.create_index()
    env.fixture("load", "--count", 400)
    code, out, err = interrupt(env)
    run = env.last_run()
    check(code == 130, "SIGINT: exit 130 (%d: %s)" % (code, err[-300:]))
    check(run["status"] == "interrupted" and "reconciler resume" in err
          and "run %d interrupted" % run["id"] in err,
          "it says the run is interrupted and how to continue: %r" % err[-300:])
    r = env.run("resume")
    check(r.returncode == 0 and env.in_sync(), "resume continues it (%d)" % r.returncode)


def busy_port(env):
    env.create_index()
    env.fixture("load", "--count", 400)
    code, _, _ = interrupt(env)
    before = env.last_run()
    check(before["status"] == "interrupted", "an interrupted run to resume (%d)" % code)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        r = env.run("serve", timeout=60, PORT=port, RECONCILIATION_ENABLED="false",
                    COUNT_MONITOR_ENABLED="false", **SLOW)
    finally:
        s.close()
    after = env.last_run()
    check(r.returncode == 2 and "cannot listen" in r.stderr and str(port) in r.stderr,
          "serve on a busy port exits 2 saying so (%d: %s)" % (r.returncode, r.stderr[-300:]))
    check("resuming" not in r.stderr and after["status"] == "interrupted"
          and after["resume_count"] == before["resume_count"]
          and after["repaired_count"] == before["repaired_count"],
          "it resumed nothing: run %d stays interrupted (%s, resumed %s times)"
          % (after["id"], after["status"], after["resume_count"]))


run_all([ctrl_c, busy_port], prefix="stop_")
