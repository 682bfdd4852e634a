"""Log files reopen on SIGHUP (logrotate's convention: rename, then HUP), in
the service and in a CLI run, with the logrotate file we ship; a request
path cannot forge a log line."""
import os
import signal
import subprocess
import time

from harness import SRC, Env, check, done
from service import Service


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for(path, text, deadline=10):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if text in read(path):
            return True
        time.sleep(0.05)
    return False


env = Env("logs", LOG_LEVEL="debug")
try:
    env.create_index()
    env.fixture("load", "--count", 600)
    logs = env.env["LOG_DIR"]
    combined, errors = os.path.join(logs, "combined.log"), os.path.join(logs, "error.log")

    svc = Service(env)
    try:
        check(wait_for(combined, "listening on"), "the service logs to combined.log")
        os.rename(combined, combined + ".1")
        os.rename(errors, errors + ".1")
        svc.proc.send_signal(signal.SIGHUP)
        check(wait_for(combined, "SIGHUP: log files reopened"),
              "after SIGHUP a new combined.log is written at once")
        check(os.path.exists(errors), "and a new error.log")
        st, _, _ = svc.http("POST", "/api/reconciliation/stop")
        check(st == 200 and wait_for(combined, "schedule stopped"), "new lines go to the new file")
        check("schedule stopped" not in read(combined + ".1"), "not to the renamed one")
        check(svc.http("GET", "/api/health/live")[0] == 200, "SIGHUP does not stop the service")

        # the shipped logrotate file, with this test's paths and pid
        conf = read(os.path.join(SRC, "tools", "reconciler.logrotate"))
        conf = conf.replace("/var/log/reconciler", logs).replace(
            "systemctl reload reconciler.service", "kill -HUP %d" % svc.proc.pid)
        path = os.path.join(env.tmp, "logrotate.conf")
        with open(path, "w") as f:
            f.write(conf)
        os.chmod(path, 0o644)
        r = subprocess.run(["logrotate", "-f", "-s", os.path.join(env.tmp, "lr.state"), path],
                           capture_output=True, text=True)
        check(r.returncode == 0, "logrotate runs the shipped file: %s" % r.stderr)
        check(wait_for(combined, "SIGHUP: log files reopened"), "and the service reopens")
        st, _, _ = svc.http("POST", "/api/reconciliation/start", {"intervalMs": 3600000})
        check(wait_for(combined, "schedule started"), "writing to the new combined.log")
        rotated = sorted(f for f in os.listdir(logs) if f.startswith("combined.log."))
        check("combined.log.1" in rotated and "combined.log.2.gz" in rotated,
              "logrotate kept the old files (%s)" % rotated)

        # a request path cannot forge a line (control characters are replaced)
        svc.http("GET", "/no/such%0a2026-01-01T00:00:00.000Z%20error%20%20FORGED")
        time.sleep(0.3)
        check(not any(l.startswith("2026-01-01T00:00:00.000Z") for l in read(combined).splitlines()),
              "a newline in a path does not start a log line")
    finally:
        code = svc.stop()
        check(code == 0 and "AddressSanitizer" not in svc.stderr, "the service stops cleanly")

    # a CLI run: rename, HUP, the run goes on and writes to the new file
    for f in os.listdir(logs):
        os.unlink(os.path.join(logs, f))
    p = env.spawn("check", SYNC_BATCH_SIZE=20, SYNC_BATCH_DELAY_MS=50, LOG_LEVEL="info")
    check(wait_for(combined, "started check run", 30), "the run logs")
    os.rename(combined, combined + ".old")
    p.send_signal(signal.SIGHUP)
    out, err = p.communicate(timeout=300)
    check(p.returncode == 0, "SIGHUP does not stop a run (%d)" % p.returncode)
    check("check run completed" in read(combined) and "check run completed" not in read(combined + ".old"),
          "its last lines are in the new combined.log")
    check(env.in_sync(), "and it repaired everything")
finally:
    env.cleanup()
done()
