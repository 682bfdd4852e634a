"""What QA passes found about naming mirrors and their indexes, each now the
right outcome:
- an index name that is a wildcard or a list is refused (it read other
  indexes and deleted their documents as orphans);
- QA8b F2: unfinished runs of a mirror no longer configured are named at
  start;
- QA8b F13: with several mirrors, --allow-deletes and {"allowDeletes": true}
  must name the mirror whose brake they release (78 / 400).
"""
import os
import subprocess
import urllib.parse

from harness import FIXTURE, check, run_all
from service import Service


def index_names(env):
    for name in ("zz*", "a,b", "ADS", "../x", "a b"):
        r = env.run("check", OPENSEARCH_INDEX=name)
        check(r.returncode == 78 and "OPENSEARCH_INDEX" in r.stderr
              and "naming one index or alias" in r.stderr,
              "index %r refused with exit 78 (%d: %r)" % (name, r.returncode, r.stderr[-200:]))
    path = os.path.join(env.tmp, "wild.yaml")
    with open(path, "w") as f:
        f.write("mirrors:\n  - name: zw\n    opensearch_index: \"zz*\"\n")
    r = env.run("config", "--file", path)
    check(r.returncode == 78 and "wild.yaml:3" in r.stderr and "opensearch_index" in r.stderr,
          "in a file too, naming file:line and key (%d: %r)" % (r.returncode, r.stderr[-200:]))
    # the longest name OpenSearch takes, every byte escaped in a URL (765
    # bytes of path): a whole check and full re-index read and write it
    env.fixture("load", "--count", 30)
    long_name = "\u00e9" * 127  # 254 bytes of UTF-8
    try:
        r = env.run("check", OPENSEARCH_INDEX=long_name)
        r2 = env.run("check", "--full", OPENSEARCH_INDEX=long_name)
        st, body = env.os("GET", "/%s/_count" % urllib.parse.quote(long_name))
        check(r.returncode == 0 and r2.returncode == 0 and body.get("count") == 30,
              "a 254-byte UTF-8 index name works end to end (%d, %d, %s: %r)"
              % (r.returncode, r2.returncode, body, r.stderr[-300:]))
    finally:
        env.os("DELETE", "/" + urllib.parse.quote(long_name))


def removed_mirror_run(env):
    """QA8b F2: a run of a mirror the configuration no longer defines stays
    unfinished for ever; `serve` (at start), `resume` and `doctor` say so,
    naming the run and the mirror and how to close it; the documented
    UPDATE closes it."""
    env.create_index()
    env.fixture("load", "--count", 20)
    two = os.path.join(env.tmp, "two.yaml")
    one = os.path.join(env.tmp, "one.yaml")
    with open(two, "w") as f:
        f.write("mirrors:\n  - name: ads\n    opensearch_index: %s\n"
                "  - name: gone\n    opensearch_index: %s_gone\n" % (env.index, env.index))
    with open(one, "w") as f:
        f.write("mirrors:\n  - name: ads\n    opensearch_index: %s\n" % env.index)
    r = env.run("check", "--mirror", "gone", RECONCILER_CONFIG=two)
    gone = env.last_run()["id"]
    check(r.returncode == 0, "mirror gone checked (%d: %r)" % (r.returncode, r.stderr[-300:]))
    with env.journal() as db:  # as a kill -9 leaves it
        db.execute("UPDATE runs SET status = 'running', phase = 'repairing',"
                   " finished_at = NULL WHERE id = ?", (gone,))
    said = "run %d (check) of mirror gone is left running" % gone
    r = env.run("resume", RECONCILER_CONFIG=one)
    check(r.returncode == 0 and said in r.stderr and "defines no mirror gone" in r.stderr
          and "reconciler resume %d" % gone in r.stderr and ("UPDATE runs SET status = 'cancelled', finished_at = "
               "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), error = 'mirror removed' WHERE id = "
               + str(gone)) in r.stderr,
          "resume says which run of which removed mirror (%d: %r)" % (r.returncode, r.stderr[-500:]))
    r = env.run("doctor", RECONCILER_CONFIG=one)
    check(said in r.stderr and "unfinished runs of mirrors" in r.stdout,
          "doctor says so too (%r / %r)" % (r.stderr[-300:], r.stdout[-300:]))
    svc = Service(env, RECONCILER_CONFIG=one)
    svc.stop()
    check(said in (svc.stderr or ""), "serve says so at start (%r)" % (svc.stderr or "")[-500:])
    with env.journal() as db:  # the close docs/JOURNAL.md gives
        db.execute("UPDATE runs SET status = 'cancelled', finished_at = "
                   "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), error = 'mirror removed' "
                   "WHERE id = ?", (gone,))
    r = env.run("resume", RECONCILER_CONFIG=one)
    check(r.returncode == 0 and "gone" not in r.stderr, "closed: nothing more said (%r)" % r.stderr[-300:])
    r = env.run("runs", RECONCILER_CONFIG=two)
    check(r.returncode == 0 and "cancelled" in r.stdout, "the closed run lists as cancelled")


def release_names_mirror(env):
    """QA8b F13: a bare --allow-deletes / {"allowDeletes": true} released
    every mirror's brake. With several mirrors it must name one."""
    for coll in ("ads", "a", "b"):
        subprocess.run([FIXTURE, "load", "--count", "5"], capture_output=True, timeout=120,
                       env=dict(env.env, MONGODB_COLLECTION=coll), check=True)
    single = env.run("check", "--allow-deletes")
    check(single.returncode == 0, "one mirror: --allow-deletes as before (%d: %r)"
          % (single.returncode, single.stderr[-300:]))
    path = os.path.join(env.tmp, "two.yaml")
    with open(path, "w") as f:
        f.write("mirrors:\n  - name: a\n    mongodb_collection: a\n    opensearch_index: %s_a\n"
                "  - name: b\n    mongodb_collection: b\n    opensearch_index: %s_b\n"
                % (env.index, env.index))
    env.env["RECONCILER_CONFIG"] = path
    try:
        runs_before = env.last_run()["id"]
        for args in (("check", "--allow-deletes"), ("resume", "--allow-deletes")):
            r = env.run(*args)
            check(r.returncode == 78 and "--mirror" in r.stderr and "a, b" in r.stderr,
                  "%s without --mirror exits 78 naming the mirrors (%d: %r)"
                  % (" ".join(args), r.returncode, r.stderr[-300:]))
        check(env.last_run()["id"] == runs_before, "no run was begun")
        r = env.run("check", "--allow-deletes", "--mirror", "a")
        check(r.returncode == 0, "with --mirror a it runs (%d: %r)" % (r.returncode, r.stderr[-300:]))
        svc = Service(env)
        try:
            st, body, _ = svc.http("POST", "/api/reconciliation/check", {"allowDeletes": True})
            check(st == 400 and body.get("success") is False and "mirror" in body.get("error", ""),
                  "seed check with allowDeletes and no ?mirror= is 400 (%d: %s)" % (st, body))
            st, body, _ = svc.http("POST", "/api/reconciliation/check?mirror=b",
                                   {"allowDeletes": True})
            check(st == 200 and body.get("runId"), "with ?mirror=b it runs (%d: %s)" % (st, body))
            st, body, _ = svc.http("POST", "/api/mirrors/a/check", {"allowDeletes": True})
            check(st == 200, "a mirror's own route releases it (%d: %s)" % (st, body))
            st, body, _ = svc.http("POST", "/api/reconciliation/check", {})
            check(st == 200 and len(body.get("mirrors", [])) == 2,
                  "the seed check without allowDeletes still runs every mirror (%d)" % st)
        finally:
            svc.stop()
    finally:
        del env.env["RECONCILER_CONFIG"]
        env.os("DELETE", "/%s_a" % env.index)
        env.os("DELETE", "/%s_b" % env.index)


run_all([index_names, removed_mirror_run, release_names_mirror])
