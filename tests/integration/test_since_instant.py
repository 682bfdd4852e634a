"""`check --since T` selects by instant (issue 19 item 3; docs/MAPPING.md,
"Versions", docs/ENGINE.md#targeted-runs).

Versions in every form MAPPING.md accepts (BSON Date, epoch milliseconds as
int64 and as double, ISO 8601 text with `Z`, `-05:00`, `+09:00`, `+0900` or
no zone, with and without fractions) lie on both sides of T, within 14 h of
it: as text, `2025-12-12T05:10:00.000-05:00` (10:10Z, after T) sorts before
`2025-12-12T10:00:00.000Z`, and `2025-12-12T14:00:00+09:00` (05:00Z,
before T) after it. Some of each are missing from the index, some stale,
some in sync; a text that is no date and a counter (both "older" than any
T) are missing too.

- `check --since T` looks at exactly the documents changed after T
  (`compared`) and repairs exactly their drift, nothing before T;
- a full dry run afterwards finds exactly the drift before T: none of the
  documents after T, and everything the since run rightly left.
- RECONCILE_MIN_AGE_MS takes a document's change time from the same forms
  (epoch milliseconds as a number included).
"""
from harness import Env, check, done, iso_ms

T = "2025-12-12T10:00:00Z"
T_MS = iso_ms(T)
H = 3600 * 1000
# before T and after it; 13 h is within the +-14 h real zones give a text
DELTAS = [-13 * H, -5 * H, -1000, 1000, 10 * 60 * 1000, 5 * H, 13 * H]


def text(ms, offset_min, frac, colon=True, zone=True):
    """ms as ISO 8601 local time at offset_min (zone: Z, +hh:mm, +hhmm or none)."""
    local = ms + offset_min * 60 * 1000
    days, rem = divmod(local, 86400 * 1000)
    # civil from days (Howard Hinnant), as tests/integration/harness.py's inverse
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    mo = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (mo <= 2)
    h, rem = divmod(rem, H)
    mi, rem = divmod(rem, 60000)
    s, msec = divmod(rem, 1000)
    out = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, h, mi, s)
    if frac:
        out += ".%03d" % msec
    if not zone:
        return out
    if offset_min == 0:
        return out + "Z"
    sign = "-" if offset_min < 0 else "+"
    oh, om = divmod(abs(offset_min), 60)
    return out + ("%s%02d:%02d" if colon else "%s%02d%02d") % (sign, oh, om)


# form name -> extended JSON of a version at ms
FORMS = {
    "date": lambda ms: {"$date": {"$numberLong": str(ms)}},
    "long": lambda ms: {"$numberLong": str(ms)},
    "double": lambda ms: float(ms),
    "z-ms": lambda ms: text(ms, 0, True),
    "z": lambda ms: text(ms, 0, False),
    "m05-ms": lambda ms: text(ms, -300, True),
    "m05": lambda ms: text(ms, -300, False),
    "p09-ms": lambda ms: text(ms, 540, True),
    "p09": lambda ms: text(ms, 540, False),
    "p0900": lambda ms: text(ms, 540, True, colon=False),
    "none-ms": lambda ms: text(ms, 0, True, zone=False),
    "none": lambda ms: text(ms, 0, False, zone=False),
}
STALE_VERSION = "2020-01-01T00:00:00.000Z"


def main(env):
    docs, state = [], {}
    for j, (form, make) in enumerate(FORMS.items()):
        for i, delta in enumerate(DELTAS):
            doc_id = "%s_%+d" % (form, delta)
            ms = T_MS + delta
            docs.append({"_id": doc_id, "title": doc_id, "updatedAt": make(ms)})
            # in sync, missing, stale: every form has each on both sides of T
            state[doc_id] = (delta > 0, ("sync", "missing", "stale")[(i + j) % 3])
    # no instant: a text that is no date (after T's day as a string) and a
    # counter; both missing, neither changed after T
    docs.append({"_id": "text-not-a-date", "title": "x", "updatedAt": "v7 of the title"})
    docs.append({"_id": "counter", "title": "x", "updatedAt": 7})
    state["text-not-a-date"] = (False, "missing")
    state["counter"] = (False, "missing")
    r = env.mongo({"insert": "ads", "documents": docs})
    assert r.get("n") == len(docs), r

    env.create_index()
    env.fixture("sync")
    actions = []
    for doc_id, (_after, st) in sorted(state.items()):
        if st == "missing":
            actions.append({"delete": {"_id": doc_id}})
        elif st == "stale":
            actions += [{"update": {"_id": doc_id}}, {"doc": {"updatedAt": STALE_VERSION}}]
    env.bulk(actions)
    _st, res = env.os("GET", "/%s/_count" % env.index)
    check(res["count"] == sum(1 for a, st in state.values() if st != "missing"),
          "the index holds the copies set up (%d)" % res["count"])

    after = {d for d, (a, _st) in state.items() if a}
    after_drift = {d for d, (a, st) in state.items() if a and st != "sync"}
    before_drift = {d for d, (a, st) in state.items() if not a and st != "sync"}

    r = env.run("check", "--since", T)
    run = env.last_run()
    with env.journal() as db:
        found = {x[0] for x in db.execute(
            "SELECT doc_id FROM run_ids WHERE run_id = ? AND kind IN ('missing', 'stale')",
            (run["id"],))}
    check(r.returncode == 0 and run["kind"] == "ids" and run["status"] == "completed",
          "check --since completes (rc %s, %s): %s" % (r.returncode, run["status"],
                                                       r.stderr[-300:]))
    check(found == after_drift,
          "check --since finds exactly the drift after T: missed %s, wrongly %s"
          % (sorted(after_drift - found), sorted(found - after_drift)))
    check(run["compared"] == len(after),
          "and looks at exactly the %d documents changed after T (compared %d)"
          % (len(after), run["compared"]))
    check(run["missing_count"] + run["stale_count"] == len(after_drift)
          and run["repaired_count"] == len(after_drift),
          "and repairs them: missing=%d stale=%d repaired=%d, %d expected"
          % (run["missing_count"], run["stale_count"], run["repaired_count"],
             len(after_drift)))

    r = env.run("check", "--dry-run")
    dry = env.last_run()
    with env.journal() as db:
        left = {x[0] for x in db.execute(
            "SELECT doc_id FROM run_ids WHERE run_id = ? AND kind IN ('missing', 'stale')",
            (dry["id"],))}
    check(r.returncode == 1 and dry["kind"] == "dry_run",
          "the full dry run afterwards sees drift (rc %s)" % r.returncode)
    check(not (left & after),
          "the full dry run is clean for every document changed after T: %s"
          % sorted(left & after))
    check(left == before_drift,
          "and finds exactly the drift before T, which --since left: missed %s, more %s"
          % (sorted(before_drift - left), sorted(left - before_drift)))


def min_age(env):
    """RECONCILE_MIN_AGE_MS reads the same instants: a version of epoch
    milliseconds (int64 or double) a moment ago leaves its document alone,
    as a Date or an ISO text with an offset does; an hour-old one is
    repaired."""
    import time
    now = int(time.time() * 1000)
    docs = {"recent-long": {"$numberLong": str(now)},
            "recent-double": float(now),
            "recent-date": {"$date": {"$numberLong": str(now)}},
            "recent-m05": text(now, -300, True),
            "old-long": {"$numberLong": str(now - 2 * H)},
            "old-m05": text(now - 2 * H, -300, False)}
    r = env.mongo({"insert": "ads", "documents": [
        {"_id": k, "title": k, "updatedAt": v} for k, v in docs.items()]})
    assert r.get("n") == len(docs), r
    env.create_index()  # every document missing
    r = env.run("check")
    run = env.last_run()
    with env.journal() as db:
        status = {x[0]: x[1] for x in db.execute(
            "SELECT doc_id, status FROM run_ids WHERE run_id = ?", (run["id"],))}
    young = {k for k in docs if k.startswith("recent")}
    check(all(status.get(k) == "skipped" for k in young)
          and all(status.get(k) == "done" for k in docs if k not in young),
          "RECONCILE_MIN_AGE_MS skips what changed a moment ago, by every form: %s" % status)


for name, fn, settings in [("since_instant", main, {}),
                           ("min_age_instant", min_age, {"RECONCILE_MIN_AGE_MS": 600000})]:
    env = Env(name, **settings)
    try:
        fn(env)
    except Exception as e:
        import traceback
        traceback.print_exc()
        check(False, "%s raised %r" % (name, e))
    finally:
        env.cleanup()
done()
