"""`reconciler check --sample N` (docs/ENGINE.md#a-quick-estimate): a quick
estimate of a mirror's drift rate, against the real servers.

- 2,000 documents, 10% of them drifted (100 missing, 100 stale) and 20
  orphans in the index: `check --sample 500 --seed 11` reports a drift rate
  whose 95% Wilson interval holds the true 10% (the draw is seeded: FerretDB
  has no $sample, so the reservoir over the id stream draws, and the same
  seed on the same data draws the same ids; with $sample, a tolerance of 5
  standard errors, about one failure in 1.7 million). The interval is the
  Wilson score interval of the journaled counts; orphans are estimated from
  the index's own sample. It writes nothing to the index (its documents and
  its indexing stats before and after), journals one run of kind sample
  with its estimate (run_samples; `show`, `show --json` and the API's run
  report show it), and exits 1 (drift seen), as a dry run does.
- In sync: exit 0, a rate of 0 with an interval from 0.
- N over the collection: every document is looked up and the rate is exact;
  a missing index: orphans not estimated, the index is not created.
- Bad input is 78 before any run: --sample 0, -3, abc, 5001, without a
  value, twice; with --full, --ids, --since or --allow-deletes in either
  order; --seed without --sample or out of range. --dry-run is implied
  and taken.
"""
import math
import sys

from harness import check, run_all, write
from service import Service

Z = 1.959963984540054


def wilson(k, n):
    p = k / n
    z2n = Z * Z / n
    c = (p + z2n / 2) / (1 + z2n)
    h = Z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    return (0.0 if k == 0 else max(0.0, c - h)), (1.0 if k == n else min(1.0, c + h))


def index_writes(env):
    """The index's documents and how many index and delete operations it
    has taken: a run that wrote anything changes one of them."""
    env.refresh()
    st, stats = env.os("GET", "/%s/_stats/indexing" % env.index)
    if st == 404:
        return None
    ix = stats["_all"]["primaries"]["indexing"]
    return env.os_docs(), ix["index_total"], ix["delete_total"]


def runs(env):
    try:
        with env.journal() as db:
            return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY id")]
    except Exception:
        return []


def estimate_of(env, run_id):
    with env.journal() as db:
        row = db.execute("SELECT * FROM run_samples WHERE run_id = ?", (run_id,)).fetchone()
        return dict(row) if row else None


def drifted(env, n=2000):
    """n documents in sync, then 5% missing, 5% stale (every 20th of each)
    and 20 orphans: a true drift rate of 10%, orphans 20 of the index's."""
    env.create_index()
    env.fixture("load", "--count", n)
    env.fixture("sync")
    ids = sorted(env.mongo_docs())
    missing = ids[0::20]
    stale = ids[10::20]
    actions = [{"delete": {"_id": i}} for i in missing]
    for i in stale:
        actions += [{"update": {"_id": i}}, {"doc": {"updatedAt": "2020-01-01T00:00:00.000Z"}}]
    for k in range(20):
        oid = "ffffffffffffffffffff%04x" % k
        actions += [{"index": {"_id": oid}},
                    {"mongo_id": oid, "updatedAt": "2024-01-01T00:00:00.000Z"}]
    env.bulk(actions)
    return len(missing) + len(stale), n


def estimate(env):
    bad, n = drifted(env)
    true_rate = bad / n
    true_orphans = 20 / (n - n // 20 + 20)
    before = index_writes(env)
    r = env.run("check", "--sample", "500", "--seed", "11")
    after = index_writes(env)
    print(r.stdout, flush=True)
    check(r.returncode == 1, "drift seen: exit 1, as a dry run (%d: %s)"
          % (r.returncode, r.stderr[-300:]))
    check(before == after, "the index is unchanged: its documents and its indexing stats")
    rs = runs(env)
    check(len(rs) == 1 and rs[0]["kind"] == "sample" and rs[0]["status"] == "completed"
          and rs[0]["repaired_count"] == 0 and rs[0]["deleted_count"] == 0,
          "one run of kind sample, completed, nothing repaired (%s)"
          % [(x["kind"], x["status"]) for x in rs])
    e = estimate_of(env, rs[0]["id"]) if rs else None
    check(e is not None, "the estimate is journaled (run_samples)")
    if e is None:
        return
    k = e["missing"] + e["stale"]
    check(e["asked"] == 500 and e["mongo_n"] == 500 and e["seed"] == 11
          and e["method"] in ("$sample", "id stream"), "500 documents drawn (%s)" % e)
    lo, hi = wilson(k, e["mongo_n"])
    check(abs(e["rate"] - k / 500) < 1e-12 and abs(e["rate_low"] - lo) < 1e-9
          and abs(e["rate_high"] - hi) < 1e-9, "the Wilson score interval of the counts")
    check(e["missing"] > 0 and e["stale"] > 0, "both missing and stale among the sample")
    if e["method"] == "id stream":
        # seeded: the same ids every time; this seed's interval holds it
        check(e["population"] == n, "the id stream read every id (%s)" % e["population"])
        check(e["rate_low"] <= true_rate <= e["rate_high"],
              "the interval [%.4f, %.4f] holds the true rate %.2f"
              % (e["rate_low"], e["rate_high"], true_rate))
    else:
        se = math.sqrt(true_rate * (1 - true_rate) / 500)
        check(abs(e["rate"] - true_rate) <= 5 * se, "the rate is near the true one")
    se = math.sqrt(true_orphans * (1 - true_orphans) / 500)
    check(e["index_n"] == 500 and e["orphans"] is not None
          and abs(e["orphan_rate"] - true_orphans) <= 5 * se + 0.002,
          "orphans estimated from the index's sample: %s of %s (true %.4f)"
          % (e["orphans"], e["index_n"], true_orphans))
    olo, ohi = wilson(e["orphans"], e["index_n"])
    check(abs(e["orphan_low"] - olo) < 1e-9 and abs(e["orphan_high"] - ohi) < 1e-9,
          "the orphans' interval too")
    check("drift rate %.1f%%" % (e["rate"] * 100) in r.stdout and "Wilson score" in r.stdout
          and "seed 11" in r.stdout and "orphan rate" in r.stdout,
          "the output says the rate, the interval's kind and the seed")

    # the same seed draws the same MongoDB ids again (the reservoir)
    r2 = env.run("check", "--sample", "500", "--seed", "11")
    e2 = estimate_of(env, runs(env)[-1]["id"])
    if e["method"] == "id stream":
        check(r2.returncode == 1 and (e2["missing"], e2["stale"]) == (e["missing"], e["stale"]),
              "the same seed, the same estimate")

    # show, show --json and the API's report
    r = env.run("show", str(rs[0]["id"]))
    check(r.returncode == 0 and "estimate" in r.stdout and "drift rate" in r.stdout
          and "Wilson score" in r.stdout, "show prints the estimate")
    r = env.run("show", str(rs[0]["id"]), "--json")
    import json
    j = json.loads(r.stdout)
    check(j["kind"] == "sample" and j["sample"]["mongoN"] == 500
          and j["sample"]["interval"] == "wilson95"
          and abs(j["sample"]["rateLow"] - e["rate_low"]) < 1e-9, "show --json: sample")
    svc = Service(env)
    try:
        st, body, _ = svc.http("GET", "/api/reconciliation/runs/%d" % rs[0]["id"])
        check(st == 200 and body["run"]["sample"]["rate"] == e["rate"],
              "the API's run report carries the estimate (%d)" % st)
    finally:
        svc.stop()
    check(index_writes(env) == before, "still nothing written")


def in_sync(env):
    env.create_index()
    env.fixture("load", "--count", 300)
    env.fixture("sync")
    r = env.run("check", "--sample", "100", "--dry-run")  # implied: taken
    check(r.returncode == 0, "in sync: exit 0 (%d: %s)" % (r.returncode, r.stderr[-300:]))
    rs = runs(env)
    e = estimate_of(env, rs[-1]["id"]) if rs else None
    check(rs and rs[-1]["kind"] == "sample" and e and e["rate"] == 0 and e["rate_low"] == 0
          and e["rate_high"] > 0 and e["orphans"] == 0,
          "a rate of 0, its interval from 0 (%s)" % e)
    check("drift rate 0.0%" in r.stdout, "the output says 0.0%")


def census(env):
    env.create_index()
    env.fixture("load", "--count", 50)
    env.fixture("sync")
    ids = sorted(env.mongo_docs())
    env.bulk([{"delete": {"_id": i}} for i in ids[:5]])
    r = env.run("check", "--sample", "500")
    e = estimate_of(env, runs(env)[-1]["id"])
    check(r.returncode == 1 and e["mongo_n"] == 50 and e["rate"] == 0.1
          and e["rate_low"] == 0.1 and e["rate_high"] == 0.1,
          "N over the collection: every document looked up, the rate exact (%s)" % e)
    check("every one was looked up" in r.stdout, "the note says so (%s)" % r.stdout)

    # no index: orphans not estimated, and a sample creates none
    env.os("DELETE", "/" + env.index)
    r = env.run("check", "--sample", "20")
    e = estimate_of(env, runs(env)[-1]["id"])
    st, _ = env.os("GET", "/" + env.index)
    check(r.returncode == 1 and e["orphans"] is None and e["missing"] == 20
          and "orphans not estimated" in r.stdout and st == 404,
          "a missing index: every sampled document missing, orphans not estimated, no index "
          "created (%d %s %s)" % (r.returncode, e, r.stdout))


def whole_both(env):
    """N equal to the collection and to the index (QA20 F10): both sides
    exact, no interval; the log calls it a sample run; the seed is said
    where it is used."""
    env.create_index()
    env.fixture("load", "--count", 30)
    env.fixture("sync")
    ids = sorted(env.mongo_docs())
    env.bulk([{"update": {"_id": ids[3]}},
              {"doc": {"updatedAt": "2020-01-01T00:00:00.000Z"}}])
    r = env.run("check", "--sample", "30", "--seed", "5")
    e = estimate_of(env, runs(env)[-1]["id"])
    check(r.returncode == 1 and e["mongo_n"] == 30 and e["index_n"] == 30 and
          e["rate_low"] == e["rate_high"] == e["rate"] and
          e["orphan_low"] == e["orphan_high"] == e["orphan_rate"] == 0 and
          "the index holds 30 copies" in r.stdout,
          "N = the collection = the index: both rates exact, no interval (%s; %s)"
          % (e, r.stdout))
    check("sample run completed" in r.stderr and "ids run" not in r.stderr,
          "the log calls it a sample run (%s)" % r.stderr[-400:])
    said = r.stdout.splitlines()[0] if r.stdout else ""
    check(("id stream, seed 5, the index's draw's too" in said) if "id stream" in said else
          ("takes no seed" in said and "the index's draw's seed 5" in r.stdout),
          "the seed is said where it is used (%s)" % r.stdout)
    r = env.run("check", "--sample", "10", "--sample", "20")
    check(r.returncode == 78 and "--sample is given twice (10, then 20)" in r.stderr,
          "--sample twice says so (%s)" % r.stderr[-300:])
    r = env.run("check", "--sample", "10", "--seed", "1", "--seed", "2")
    check(r.returncode == 78 and "--seed is given twice" in r.stderr,
          "--seed twice says so (%s)" % r.stderr[-300:])


def dynamic_mapping(env):
    """An index whose id field is dynamically mapped (text with a .keyword
    subfield, QA20 F5): the draw reads ids as the pass does (_id here), so
    orphans are estimated; asking the text field's doc values failed the
    whole search and hid why."""
    env.fixture("load", "--count", 40)
    env.fixture("sync")  # no create_index: the index is mapped dynamically
    st, m = env.os("GET", "/%s/_mapping/field/mongo_id" % env.index)
    typ = list(m.values())[0]["mappings"]["mongo_id"]["mapping"]["mongo_id"]["type"]
    ids = sorted(env.mongo_docs())
    env.bulk([{"delete": {"_id": i}} for i in ids[:3]] +
             [x for k in range(4) for x in
              ({"index": {"_id": "orphan%d" % k}},
               {"mongo_id": "orphan%d" % k, "updatedAt": "2024-01-01T00:00:00.000Z"})])
    r = env.run("check", "--sample", "500", "--seed", "1")
    e = estimate_of(env, runs(env)[-1]["id"])
    check(typ == "text" and r.returncode == 1 and e and e["orphans"] == 4 and
          e["index_n"] == 41 and "not estimated" not in r.stdout,
          "dynamic mapping (%s): orphans estimated from the index's sample, ids from _id "
          "(%s; %s %s)" % (typ, e, r.stdout[-400:], r.stderr[-300:]))


def no_pass(env):
    """A sample is no pass (QA20 F7): its drift rows enter no drift history,
    and the status (lastCheck, totalChecks), the newest run of `mirrors`
    and of /api/mirrors, and reconciler_drift_open stay the last dry run's."""
    import json
    env.create_index()
    env.fixture("load", "--count", 60)
    env.fixture("sync")
    ids = sorted(env.mongo_docs())
    env.bulk([{"delete": {"_id": i}} for i in ids[:4]])
    r = env.run("check", "--dry-run")
    dry_id = runs(env)[-1]["id"]

    def seen():
        with env.journal() as db:
            hist = [tuple(x) for x in db.execute(
                "SELECT kind, doc_id, last_run, times_seen, streak FROM drift_history"
                " ORDER BY kind, doc_id")]
        m = json.loads(env.run("mirrors", "--json").stdout)
        svc = Service(env)
        try:
            _, status, _ = svc.http("GET", "/api/reconciliation/status")
            _, ms, _ = svc.http("GET", "/api/mirrors")
            _, metrics, _ = svc.http("GET", "/metrics")
        finally:
            svc.stop()
        st = status.get("stats", {})
        return (hist, [x["lastRun"]["id"] for x in m],
                [x["lastRun"]["id"] for x in ms.get("mirrors", ms)
                 if isinstance(x, dict) and x.get("lastRun")],
                st.get("lastCheck"), st.get("totalChecks"),
                sorted(line for line in metrics.splitlines()
                       if line.startswith("reconciler_drift_")))
    before = seen()
    check(r.returncode == 1 and len(before[0]) == 4 and before[1] == [dry_id],
          "no pass: the dry run found 4 missing (%s, %s)" % (before[0], before[1]))
    # a sample with a query selecting nothing: every sampled id "missing"
    r = env.run("check", "--sample", "30", "--seed", "3",
                OPENSEARCH_QUERY='{"term": {"mongo_id": "none-such"}}')
    check(r.returncode == 1 and runs(env)[-1]["kind"] == "sample",
          "no pass: the sample ran and found drift (%d %s)" % (r.returncode, r.stderr[-300:]))
    after = seen()
    names = ["drift history", "mirrors' newest run", "/api/mirrors' newest run", "lastCheck",
             "totalChecks", "reconciler_drift_* metrics"]
    for name, b, a in zip(names, before, after):
        check(a == b, "no pass: a sample leaves the %s as the dry run left it (%s, then %s)"
              % (name, b, a))


def bad_input(env):
    env.create_index()
    env.fixture("load", "--count", 20)
    env.fixture("sync")
    ids = write(env, "ids.txt", "1\n")
    before = index_writes(env)
    cases = [["--sample", "0"], ["--sample", "-3"], ["--sample", "abc"], ["--sample", "5001"],
             ["--sample", ""], ["--sample=1.5"], ["--sample"], ["--sample", "5", "--sample", "6"],
             ["--seed", "3"], ["--sample", "5", "--seed", "-1"],
             ["--sample", "5", "--seed", "x"], ["--sample", "5", "--seed", "2147483648"]]
    for other in (["--full"], ["--ids", ids], ["--since", "2020-01-01T00:00:00Z"],
                  ["--allow-deletes"]):
        cases += [["--sample", "5"] + other, other + ["--sample", "5"]]
    for argv in cases:
        r = env.run("check", *argv)
        check(r.returncode == 78 and ("--sample" in r.stderr or "--seed" in r.stderr)
              and "usage: reconciler check" in r.stderr,
              "check %s: 78 (%d: %s)" % (" ".join(argv), r.returncode, r.stderr[-200:]))
    check(runs(env) == [], "no run began")
    check(index_writes(env) == before, "the index is unchanged")
    r = env.run("check", "--help")
    check("--sample N" in r.stdout and "Wilson" in r.stdout, "--help names --sample")


scenarios = [estimate, in_sync, census, whole_both, dynamic_mapping, no_pass, bad_input]
only = sys.argv[1:]  # a name on the command line runs just those scenarios
run_all([x for x in scenarios if not only or x.__name__ in only], prefix="sample_")
