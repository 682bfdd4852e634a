"""Documents at MongoDB's limits: a 16 MB document, 100,000 fields, deep
nesting, a huge array, among ordinary ones. Each is read, converted and
sent, or journaled failed with the reason; the run completes, the
ordinary documents are repaired, and the peak RSS of the run is reported
(docs/PERFORMANCE.md has the figures of a release build; under ASan
it is several times higher)."""
import os
import re
import subprocess

from harness import BIN, Env, check, done

env = Env("limits", SYNC_BATCH_SIZE=100, RECONCILE_MONGO_COUNT="pass")
try:
    env.create_index()
    env.fixture("load", "--count", 300)
    big = {  # loader number -> (kind, N)
        1000001: ("bytes", 16777216 - 1024),  # MongoDB's limit, less a little
        1000002: ("fields", 100000),
        1000003: ("depth", 150),  # deeper than the converter's 100 levels
        1000004: ("depth", 30),  # deeper than the index's mapping depth (20)
        1000005: ("array", 200000),
    }
    sizes = {}
    for n, (kind, count) in big.items():
        sizes[n] = int(env.fixture("big", kind, count, "--id", n))
    ids = {n: env.fixture("idof", n).split()[0] for n in big}
    print("BSON sizes:", {big[n][0] + str(big[n][1]): sizes[n] for n in big})
    check(sizes[1000001] > 16_700_000, "the big document is at the limit (%d bytes)" % sizes[1000001])

    r = subprocess.run(["/usr/bin/time", "-v", BIN, "check"], env=env.env, cwd=env.tmp,
                       capture_output=True, text=True, timeout=900)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", r.stderr)
    print("peak RSS of the run (this build): %s MB, wall %s"
          % (int(rss.group(1)) // 1024 if rss else "?", wall.group(1) if wall else "?"))
    check(r.returncode == 3, "the run completes, with documents it could not repair: exit 3 "
          "(%d: %s)" % (r.returncode, r.stderr[-1500:]))
    check("AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr,
          "no sanitizer report")

    with env.journal() as db:
        rows = {row["doc_id"]: dict(row) for row in
                db.execute("SELECT doc_id, status, error FROM run_ids WHERE run_id = 1")}
        run = dict(db.execute("SELECT * FROM runs WHERE id = 1").fetchone())
    for n, (kind, count) in big.items():
        row = rows.get(ids[n], {})
        ok = row.get("status") == "done" or (row.get("status") == "failed" and row.get("error"))
        check(ok, "%s %d: repaired or failed with a reason: %s" % (kind, count, row))
        print("  %-6s %-7d -> %s %s" % (kind, count, row.get("status"), (row.get("error") or "")[:120]))
    check(rows.get(ids[1000001], {}).get("status") == "done", "the 16 MB document is indexed")
    check(rows.get(ids[1000003], {}).get("status") == "failed", "150 levels are refused")
    check(run["repaired_count"] >= 300 and run["missing_count"] == 305,
          "every ordinary document is repaired (%d of %d)" % (run["repaired_count"], run["missing_count"]))
    docs = env.os_docs()
    check(ids[1000001] in docs and len(docs) == run["repaired_count"], "the index has what was repaired")

    with open(os.path.join(env.env["LOG_DIR"], "combined.log")) as f:
        print("".join(f.readlines()[-12:]))
    # a second run: the refused ones are found again, nothing else
    r = env.run("check", "--dry-run")
    with env.journal() as db:
        again = db.execute("SELECT count(*) FROM run_ids WHERE run_id = 2").fetchone()[0]
    check(again == run["failed_count"], "the next run finds only the refused documents (%d)" % again)
finally:
    env.cleanup()
done()
