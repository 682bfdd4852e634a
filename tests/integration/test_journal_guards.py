"""A journal the reconciler did not expect: written by a newer version, not
a database, read-only for the user it runs as, on a full disk, or locked by
another process. Each gives a clear error at start (exit 2) saying what to
do; mid-run a full disk stops the run without losing committed work, a
resume completes it, and the service keeps answering reads while
/api/health reports the journal. Permission tests run as `nobody` (CI runs
as root, and root may write anything); the full disk is a small tmpfs
(needs root to mount: skipped, and said, where it cannot be mounted)."""
import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

from harness import BIN, SRC, Env, check, done
from service import Service

ROOT = os.geteuid() == 0


def as_nobody(env, *args, extra=None, timeout=120):
    """Runs the reconciler as an unprivileged user: `nobody` when we are
    root, else ourselves (permissions apply to us already). The binary is
    copied where that user can reach it."""
    e = dict(env.env)
    e.update(extra or {})
    binary = os.path.join(env.tmp, "bin", "reconciler")
    if not os.path.exists(binary):
        os.makedirs(os.path.dirname(binary))
        shutil.copy2(BIN, binary)
        os.chmod(os.path.dirname(binary), 0o755)
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if ROOT else []
    return subprocess.run(prefix + [binary] + list(args), env=e, capture_output=True, text=True,
                          timeout=timeout, cwd="/")


def fill(path):
    """Writes zeros to path until the filesystem is full (to the last block)."""
    for name, size in ((path, 65536), (path + ".tail", 512)):
        with open(name, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise


def unfill(path):
    for name in (path, path + ".tail"):
        if os.path.exists(name):
            os.unlink(name)


@contextlib.contextmanager
def journal_db(env):
    """A connection that is closed afterwards (env.journal()'s is not): an
    idle connection of this process would keep another from taking the
    journal for itself."""
    db = env.journal()
    try:
        with db:
            yield db
    finally:
        db.close()


def tmpfs(size):
    d = tempfile.mkdtemp(prefix="reconciler-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", d],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(d)
        return None, r.stderr.strip()
    return d, None


def umount(d):
    subprocess.run(["umount", d], capture_output=True)
    os.rmdir(d)


def guards():
    env = Env("guards", SYNC_BATCH_SIZE=50)
    try:
        env.create_index()
        env.fixture("load", "--count", 200)
        os.chmod(env.tmp, 0o755)  # nobody must reach the journals below
        journal = env.env["STATE_DB"]

        # -- a journal written by a newer reconciler ------------------------------
        r = env.run("check")
        check(r.returncode == 0, "a first run: %s" % r.stderr[-300:])
        with journal_db(env) as db:
            db.execute("INSERT INTO schema_migrations VALUES ('9001_from_the_future', '2031-01-01')")
        r = env.run("check")
        check(r.returncode == 2, "a newer journal is refused with exit 2 (%d)" % r.returncode)
        ours = sorted(f[:-4] for f in os.listdir(os.path.join(SRC, "migrations"))
                      if f.endswith(".sql"))
        check("newer reconciler" in r.stderr and "9001_from_the_future" in r.stderr
              and ours[-1] in r.stderr,
              "the message names both versions: %r" % r.stderr)
        for cmd in (("check", "--dry-run"), ("resume",), ("migrate",), ("serve",)):
            r = env.run(*cmd, timeout=60)
            check(r.returncode == 2 and "9001_from_the_future" in r.stderr,
                  "%s refuses it too (%d)" % (" ".join(cmd), r.returncode))
        r = env.run("runs")
        check(r.returncode == 0 and "completed" in r.stdout and "reading only" in r.stderr,
              "runs reads it, saying so: %r %r" % (r.stdout[-200:], r.stderr))
        r = env.run("show", "1", "--json")
        check(r.returncode == 0 and json.loads(r.stdout)["repairedCount"] == 200, "show reads it")
        with journal_db(env) as db:
            runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
            names = [x[0] for x in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
        check(runs == 1 and names[-1] == "9001_from_the_future",
              "nothing was written to it (%d runs, %s)" % (runs, names))
        with journal_db(env) as db:
            db.execute("DELETE FROM schema_migrations WHERE name = '9001_from_the_future'")

        # -- not a database -------------------------------------------------------
        junk = os.path.join(env.tmp, "junk.db")
        with open(junk, "w") as f:
            f.write("this is a text file, not a journal\n" * 100)
        for cmd in (("check",), ("runs",), ("serve",)):
            r = env.run(*cmd, timeout=60, STATE_DB=junk)
            check(r.returncode == 2 and "not a SQLite journal" in r.stderr and "move it aside" in r.stderr
                  and "docs/JOURNAL.md" in r.stderr,
                  "%s on a file that is not a database: how to recover (%d: %r)"
                  % (" ".join(cmd), r.returncode, r.stderr[-300:]))
        # the recovery docs/JOURNAL.md gives: move it aside, start a new journal
        os.rename(junk, junk + ".broken")
        r = env.run("check", "--dry-run", STATE_DB=junk)
        check(r.returncode == 0 and os.path.exists(junk), "after moving it aside a new journal starts")

        # -- read-only for the user it runs as ------------------------------------
        if ROOT:
            # root-owned journal, -wal, -shm and directory: nobody may read, not write
            r = as_nobody(env, "check")
            check(r.returncode == 2 and "cannot be written" in r.stderr and "read-only for this user" in r.stderr,
                  "a read-only journal: clear error at start (%d: %r)" % (r.returncode, r.stderr[-300:]))
            r = as_nobody(env, "runs")
            check(r.returncode == 0 and "completed" in r.stdout,
                  "runs reads a journal it may not write: %r" % r.stderr[-300:])
            # with no -wal and -shm files, which this user could not create
            copy = os.path.join(env.tmp, "copy")
            os.mkdir(copy)
            os.chmod(copy, 0o755)
            # cp, not shutil: closing a descriptor of the journal in this
            # process would drop the POSIX locks of its open connections
            for ext in ("", "-wal", "-shm"):
                if os.path.exists(journal + ext):
                    subprocess.run(["cp", journal + ext, os.path.join(copy, "j.db" + ext)],
                                   check=True)
            db = sqlite3.connect(os.path.join(copy, "j.db"))
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            check(not os.path.exists(os.path.join(copy, "j.db-shm")), "a journal without -shm")
            r = as_nobody(env, "runs", extra={"STATE_DB": os.path.join(copy, "j.db")})
            check(r.returncode == 0 and "completed" in r.stdout,
                  "runs reads it too: %r" % r.stderr[-300:])
            r = as_nobody(env, "serve", extra={"PORT": "0"}, timeout=60)
            check(r.returncode == 2 and "read-only for this user" in r.stderr,
                  "serve refuses to start on it (%d)" % r.returncode)
            # the file is the user's, its directory (and -wal, -shm) are not
            os.chown(journal, 65534, 65534)
            r = as_nobody(env, "check")
            check(r.returncode == 2 and "read-only for this user" in r.stderr,
                  "a journal in a directory the user may not write (%d: %r)" % (r.returncode, r.stderr[-300:]))
            os.chown(journal, 0, 0)
            # a new journal where the user may not create one
            r = as_nobody(env, "check", extra={"STATE_DB": os.path.join(env.tmp, "new", "j.db")})
            check(r.returncode == 2 and "cannot create its directory" in r.stderr
                  and "not writable by this user" in r.stderr, "no directory for it: %r" % r.stderr[-300:])
            r = as_nobody(env, "check", extra={"STATE_DB": os.path.join(env.tmp, "j2.db")})
            check(r.returncode == 2 and "writable by this user" in r.stderr,
                  "no file for it: %r" % r.stderr[-300:])
            # and once the directory is the user's, everything works
            d = os.path.join(env.tmp, "nobodys")
            os.mkdir(d)
            os.chown(d, 65534, 65534)
            r = as_nobody(env, "check", "--dry-run", extra={"STATE_DB": os.path.join(d, "j.db")})
            check(r.returncode == 0, "a writable directory for nobody works: %r" % r.stderr[-300:])
        else:
            print("note: not root, permission tests ran as ourselves")
            ro = os.path.join(env.tmp, "ro")
            os.mkdir(ro)
            os.chmod(ro, 0o555)
            r = env.run("check", STATE_DB=os.path.join(ro, "j.db"))
            check(r.returncode == 2 and "writable by this user" in r.stderr, "read-only directory")

        # -- another process holds a lock -----------------------------------------
        holder = sqlite3.connect(journal, isolation_level=None, timeout=1)
        holder.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        r = env.run("check")
        waited = time.monotonic() - t0
        check(r.returncode == 2 and "another process holds a lock" in r.stderr,
              "a journal locked by another process: clear error at start (%d: %r)"
              % (r.returncode, r.stderr[-300:]))
        print("waited %.1f s for the lock (the busy timeout)" % waited)
        # a shell that took the file for itself (PRAGMA locking_mode=EXCLUSIVE)
        holder.execute("ROLLBACK")
        holder.close()
        hold = subprocess.Popen(
            [sys.executable, "-c",
             "import sqlite3, sys, time\n"
             "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')\n"
             "c.execute('UPDATE runs SET phase = phase WHERE 0'); c.execute('COMMIT')\n"
             "print('locked', flush=True); time.sleep(60)", journal],
            stdout=subprocess.PIPE, text=True)
        said = hold.stdout.readline().strip()
        check(said == "locked", "the other process holds the journal (%r)" % said)
        r = env.run("check")
        hold.kill()
        hold.wait()
        check(r.returncode == 2 and "another process holds a lock" in r.stderr,
              "a journal held with locking_mode=EXCLUSIVE: clear error at start (%d: %r)"
              % (r.returncode, r.stderr[-300:]))
        # the service answers reads and says the journal cannot be written
        holder = sqlite3.connect(journal, isolation_level=None, timeout=1)
        svc = Service(env)
        try:
            holder.execute("BEGIN IMMEDIATE")
            st, body, _ = svc.http("GET", "/api/health")
            check(st == 503 and body["journal"]["ok"] is False
                  and "another process holds a lock" in body["journal"].get("error", ""),
                  "health: the journal is locked (%d %s)" % (st, body.get("journal")))
            st, body, _ = svc.http("GET", "/api/reconciliation/runs")
            check(st == 200 and len(body["runs"]) >= 1, "reads still answer while it is locked")
            st, body, _ = svc.http("GET", "/api/health/ready")
            check(st == 200, "ready: the journal answers reads")
            holder.execute("ROLLBACK")
            st, body, _ = svc.http("GET", "/api/health")
            check(st == 200 and body["journal"]["ok"], "health recovers when the lock goes")
        finally:
            holder.close()
            code = svc.stop()
            check(code == 0 and "ERROR: AddressSanitizer" not in svc.stderr
                  and "LeakSanitizer" not in svc.stderr, "the service stops cleanly (%d)" % code)

        # -- a full disk -----------------------------------------------------------
        full, why = tmpfs("4m")
        if full is None:
            print("SKIP: full-disk tests: cannot mount a tmpfs here (%s)" % why)
        else:
            try:
                fj = os.path.join(full, "journal.db")
                # at start: a new journal, then an existing one
                fill(os.path.join(full, "filler"))
                r = env.run("check", STATE_DB=fj)
                check(r.returncode == 2 and "disk is full" in r.stderr,
                      "no room for a new journal: clear error (%d: %r)" % (r.returncode, r.stderr[-300:]))
                for f in os.listdir(full):
                    os.unlink(os.path.join(full, f))
                r = env.run("migrate", STATE_DB=fj)
                check(r.returncode == 0, "a journal on the small disk")
                fill(os.path.join(full, "filler"))
                r = env.run("check", STATE_DB=fj)
                check(r.returncode == 2 and "disk is full" in r.stderr and "committed work is kept" in r.stderr,
                      "a full disk at start: clear error (%d: %r)" % (r.returncode, r.stderr[-300:]))
                unfill(os.path.join(full, "filler"))
            finally:
                umount(full)
    finally:
        env.cleanup()


def committed(path):
    try:
        db = sqlite3.connect(path, timeout=5)
        n = db.execute("SELECT count(*) FROM batches WHERE status = 'committed'").fetchone()[0]
        db.close()
        return n
    except sqlite3.Error:
        return 0


def wait_committed(path, n, deadline=60):
    end = time.monotonic() + deadline
    while committed(path) < n and time.monotonic() < end:
        time.sleep(0.1)


def full_mid_run_cli():
    """The disk fills in the middle of a run (CLI)."""
    env = Env("fullmid", SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=100)
    full, why = tmpfs("16m") if ROOT else (None, "not root")
    if full is None:
        print("SKIP: mid-run full disk: cannot mount a tmpfs here (%s)" % why)
        env.cleanup()
    else:
        p = None
        try:
            env.create_index()
            env.fixture("load", "--count", 3000)
            fj = os.path.join(full, "journal.db")
            p = env.spawn("check", STATE_DB=fj)
            wait_committed(fj, 3)
            fill(os.path.join(full, "filler"))
            out, err = p.communicate(timeout=300)
            check(p.returncode == 2 and "disk is full" in err,
                  "the run stops when the disk fills (%d: %r)" % (p.returncode, err[-500:]))
            db = sqlite3.connect(fj)
            kept = db.execute("SELECT count(*), COALESCE(SUM(ok), 0) FROM batches"
                              " WHERE status = 'committed'").fetchone()
            run = db.execute("SELECT status FROM runs").fetchone()[0]
            db.close()
            indexed = len(env.os_docs())
            check(kept[0] >= 3 and indexed >= kept[1],
                  "committed batches are kept (%d batches, %d documents; %d in the index)"
                  % (kept[0], kept[1], indexed))
            check(run in ("running", "interrupted"), "the run is left resumable (%s)" % run)
            unfill(os.path.join(full, "filler"))
            r = env.run("resume", STATE_DB=fj)
            db = sqlite3.connect(fj)
            row = db.execute("SELECT id, status, repaired_count FROM runs ORDER BY id DESC").fetchone()
            db.close()
            check(r.returncode == 0 and env.in_sync(),
                  "once there is room, the run completes and the index is in sync (%d: %s, %r)"
                  % (r.returncode, row, r.stderr[-300:]))
        finally:
            if p and p.poll() is None:
                p.kill()
                p.communicate()
            umount(full)
            env.cleanup()


def full_mid_run_service():
    """The disk fills in the middle of a run (service)."""
    env = Env("fullsvc", SYNC_BATCH_SIZE=50, SYNC_BATCH_DELAY_MS=100)
    full, why = tmpfs("16m") if ROOT else (None, "not root")
    if full is None:
        print("SKIP: service on a full disk: cannot mount a tmpfs here (%s)" % why)
        env.cleanup()
    else:
        try:
            env.create_index()
            env.fixture("load", "--count", 3000)
            fj = os.path.join(full, "journal.db")
            svc = Service(env, STATE_DB=fj)
            try:
                st, body, _ = svc.http("POST", "/api/reconciliation/check", {"wait": False})
                check(st == 202, "a run starts")
                wait_committed(fj, 3)
                fill(os.path.join(full, "filler"))
                end = time.monotonic() + 120
                while time.monotonic() < end:
                    st, body, _ = svc.http("GET", "/api/reconciliation/status")
                    if st == 200 and body["currentRun"] is None:
                        break
                    time.sleep(0.2)
                check(st == 200 and body["currentRun"] is None, "the run stopped; status answers")
                st, body, _ = svc.http("GET", "/api/health")
                check(st == 503 and body["status"] == "degraded" and not body["journal"]["ok"]
                      and "disk is full" in body["journal"].get("error", ""),
                      "health reports the journal (%d %s)" % (st, body.get("journal")))
                check(body["mongodb"]["ok"] and body["opensearch"]["ok"], "and only the journal")
                st, body, _ = svc.http("GET", "/api/reconciliation/runs")
                check(st == 200 and body["runs"], "history still answers")
                st, body, _ = svc.http("GET", "/api/reconciliation/runs/1")
                check(st == 200 and body["run"]["repairedCount"] >= 150,
                      "the report shows committed work (%d %s)" % (st, body))
                st, _, _ = svc.http("GET", "/metrics")
                check(st == 200, "metrics still answer")
                st, body, _ = svc.http("POST", "/api/reconciliation/check")
                check(st == 500 and "disk is full" in body.get("error", ""),
                      "a new run is refused with the reason (%d %s)" % (st, body))
                unfill(os.path.join(full, "filler"))
                st, body, _ = svc.http("GET", "/api/health")
                check(st == 200 and body["journal"]["ok"], "health recovers once there is room")
                st, body, _ = svc.http("POST", "/api/reconciliation/check")
                # the stopped run is resumed when its end could not be written
                # (left running), else a new run finds what it left undone
                check(st == 200 and body["status"] == "completed",
                      "the next check completes (%d %s)" % (st, body))
                check(env.in_sync(), "in sync")
            finally:
                code = svc.stop()
                check(code == 0 and "ERROR: AddressSanitizer" not in svc.stderr
                      and "LeakSanitizer" not in svc.stderr,
                      "the service stops cleanly (%d) %s" % (code, svc.stderr[-2000:] if code else ""))
        finally:
            umount(full)
            env.cleanup()


PARTS = {"guards": guards, "cli": full_mid_run_cli, "service": full_mid_run_service}
for name in sys.argv[1:] or PARTS:
    PARTS[name]()
done()
