"""The command line and the API bodies read what they are given, all of it,
before anything runs (issue 24 items 1 and 11): nothing named "dry" ever
writes. Every order of --dry-run with --full, --ids or --since is refused
with 78 and leaves the index and the journal as they were; so is a
{"dryRun": true} full re-index (400); a misspelt body member (allowDelete)
is a 400 naming it and the ones the route takes, and starts no run.
getopt_long: per-command --help exits 0, --opt=value works, an unknown
option exits 78 with the usage."""
import itertools

from harness import check, run_all, write
from service import Service


def index_state(env):
    env.refresh()
    return env.os_docs()


def runs_count(env):
    with env.journal() as db:
        return db.execute("SELECT count(*) FROM runs").fetchone()[0]


def dry_never_writes(env):
    env.create_index()
    env.fixture("load", "--count", 30)
    ids = write(env, "ids.txt", "".join("%d\n" % i for i in range(5)))
    r = env.run("check", "--dry-run")
    check(r.returncode == 1 and index_state(env) == {}, "a dry run finds drift, writes nothing")
    before_runs = runs_count(env)
    writers = [["--full"], ["--ids", ids], ["--since", "2020-01-01T00:00:00Z"],
               ["--ids=" + ids], ["--since=2020-01-01T00:00:00Z"]]
    for w in writers:
        for args in itertools.permutations([["--dry-run"], w]):
            argv = [a for part in args for a in part]
            r = env.run("check", *argv)
            check(r.returncode == 78 and "conflict" in r.stderr and "--dry-run" in r.stderr,
                  "check %s: refused with 78 (%d: %s)" % (" ".join(argv), r.returncode,
                                                          r.stderr[-200:]))
            check(index_state(env) == {}, "check %s: the index is unchanged" % " ".join(argv))
    # the writing modes among themselves conflict too (which one was meant?)
    r = env.run("check", "--since", "2020-01-01T00:00:00Z", "--full")
    check(r.returncode == 78 and index_state(env) == {}, "--since with --full: 78")
    check(runs_count(env) == before_runs, "no run began")

    # getopt_long: --help per command, --opt=value, unknown options 78
    for cmd in ("check", "resume", "runs", "show", "diff", "drift", "mirrors", "doctor",
                "config", "serve", "migrate"):
        r = env.run(cmd, "--help")
        check(r.returncode == 0 and ("reconciler " + cmd) in r.stdout,
              "%s --help exits 0 with its usage (%d: %s)" % (cmd, r.returncode, r.stderr[-200:]))
    r = env.run("check", "--frobnicate")
    check(r.returncode == 78 and "unknown option --frobnicate" in r.stderr
          and "usage: reconciler check" in r.stderr, "an unknown option: 78 with the usage")
    r = env.run("check", "--dry-run=yes")
    check(r.returncode == 78 and "takes no value" in r.stderr, "--dry-run=yes: 78")
    r = env.run("check", "--mirror=default", "--dry-run")
    check(r.returncode == 1 and index_state(env) == {}, "--mirror=NAME works (%d: %s)"
          % (r.returncode, r.stderr[-200:]))
    r = env.run("runs", "--limit=1")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 2, "runs --limit=1: one run")
    r = env.run("check", "--ids", ids, "--ids", ids)
    check(r.returncode == 78 and "given twice" in r.stderr, "--ids twice: 78")
    r = env.run("drift", "--all", "--recurring")
    check(r.returncode == 78 and "conflict" in r.stderr, "drift --all --recurring: 78")
    # a typo in an environment name is a warning with the nearest (item 8)
    r = env.run("config", RECONCILE_ORPHAN="delete")
    check(r.returncode == 0 and "RECONCILE_ORPHAN is not a setting (did you mean "
          "RECONCILE_ORPHANS?)" in r.stderr, "env typo: a warning (%s)" % r.stderr[-300:])
    # the order of options and operands is free
    r = env.run("show", "--json", "1")
    check(r.returncode == 0 and '"id"' in r.stdout, "show --json 1")
    r = env.run("check", "--full")
    check(r.returncode == 0 and len(index_state(env)) == 30, "--full alone still re-indexes")


def api_bodies(env):
    env.create_index()
    env.fixture("load", "--count", 30)
    svc = Service(env)
    try:
        st, body, _ = svc.http("POST", "/api/reconciliation/check", {"allowDelete": True})
        check(st == 400 and "allowDelete" in body["error"] and "allowDeletes" in body["error"],
              "a misspelt member: 400 naming it and the allowed ones (%d %s)" % (st, body))
        st, body, _ = svc.http("POST", "/api/mirrors/default/check", {"dryrun": True})
        check(st == 400 and "dryrun" in body["error"], "dryrun (case): 400 (%d)" % st)
        st, body, _ = svc.http("POST", "/api/sync/full", {"dryRun": True, "wait": True})
        check(st == 400 and "dryRun" in body["error"], "full with dryRun true: 400 (%d %s)"
              % (st, body))
        st, body, _ = svc.http("POST", "/api/mirrors/default/full", {"dryRun": True})
        check(st == 400, "a mirror's full with dryRun true: 400 (%d)" % st)
        st, body, _ = svc.http("POST", "/api/reconciliation/check",
                               {"dryRun": True, "since": "2020-01-01T00:00:00Z"})
        check(st == 400, "check with dryRun and since: 400 (%d)" % st)
        st, body, _ = svc.http("POST", "/api/reconciliation/stop", {"now": True})
        check(st == 400 and "takes no body members" in body["error"], "stop takes none (%d)" % st)
        st, body, _ = svc.http("POST", "/api/reconciliation/start", {"interval": 60000})
        check(st == 400 and "intervalMs" in body["error"], "start: interval is not intervalMs")
        check(index_state(env) == {}, "the index is unchanged")
        st, body, _ = svc.http("GET", "/api/reconciliation/runs")
        check(st == 200 and body["runs"] == [], "no run began (%s)" % body)
        st, body, _ = svc.http("POST", "/api/sync/full", {"dryRun": False, "wait": True})
        check(st == 200 and len(index_state(env)) == 30, "full with dryRun false runs (%d)" % st)
    finally:
        svc.stop()


run_all([dry_never_writes, api_bodies], prefix="cliargs_")
