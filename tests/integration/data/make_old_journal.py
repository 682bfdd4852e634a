"""Makes old-journal-c0fca45.db: a journal written by the binary before
mirrors (commit c0fca45, the last landed main: migration 0001 only), for test_mirrors.py.
Kept to show how the file was made; it is not run by the tests.

    git worktree add --detach /tmp/old c0fca45
    (cd /tmp/old && BUILD_DIR=/tmp/old/build SANITIZE=OFF tools/setup)
    RECONCILER_BIN=/tmp/old/build/reconciler \
        python3 tests/integration/data/make_old_journal.py tests/integration/data/old-journal-c0fca45.db

Runs: 1 dry run (20 missing), 2 check (20 repaired), 3 check (5 orphans
reported), 4 check interrupted by SIGINT part-way (resumable). The ids are
the fixture's (load --count 200), so a test that loads the same documents
can resume run 4.
"""
import os
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from harness import Env  # noqa: E402

out = sys.argv[1]
env = Env("oldj")
try:
    env.create_index()
    env.fixture("load", "--count", 200)
    env.fixture("sync", "--skip-every", 10)
    assert env.run("check", "--dry-run").returncode == 1
    assert env.run("check").returncode == 0
    orphans = [env.fixture("idof", 10000 + i).split()[0] for i in range(5)]
    env.bulk([x for i in orphans for x in ({"index": {"_id": i}}, {"mongo_id": i})])
    assert env.run("check").returncode == 0
    env.os("DELETE", "/" + env.index)
    env.create_index()
    p = env.spawn("check", SYNC_BATCH_SIZE=10, SYNC_BATCH_DELAY_MS=400)
    time.sleep(2.0)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    db = sqlite3.connect(env.env["STATE_DB"])
    print(db.execute("SELECT id, kind, status, missing_count, orphan_count, repaired_count"
                     " FROM runs").fetchall())
    db.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no WAL
    db.close()
    os.replace(env.env["STATE_DB"], out)
finally:
    env.cleanup()
