"""Index documents without the id field (QA19 F9): a copy under a MongoDB
document's _id that lacks OPENSEARCH_ID_FIELD (written by another writer
or mapping, or before the field was) is invisible to the pass, so its
document is judged missing, and the create of it is refused because the
_id is taken. That refusal is no newer write: the copy is the document's
place and is written over (conditionally on what was read), once; the
next dry run is clean. With OPENSEARCH_QUERY the copy may be another
mirror's: it is left, and the run says what is there (not "newer")."""
from harness import check, run_all

DATE0 = 1704067200000  # 2024-01-01T00:00:00.000Z


def date(ms):
    return {"$date": {"$numberLong": str(ms)}}


def summary(out):
    import re
    line = [x for x in out.splitlines() if "completed:" in x]
    return {k: int(v) for k, v in re.findall(r"([a-z_]+) (-?\d+)", line[-1] if line else "")}


def setup(env):
    env.create_index({})
    env.mongo({"insert": "ads", "documents": [
        {"_id": "k%d" % i, "title": "new-%d" % i, "updatedAt": date(DATE0 + 10)}
        for i in range(4)]})
    acts = []
    for i in range(4):
        body = {"title": "old-%d" % i, "extra": "e", "updatedAt": "2024-01-01T00:00:00.000Z"}
        if i >= 2:  # k2, k3: ordinary copies; k0, k1: no mongo_id
            body["mongo_id"] = "k%d" % i
        acts += [{"index": {"_id": "k%d" % i}}, body]
    st, res = env.os("POST", "/%s/_bulk?refresh=true" % env.index, acts, ndjson=True)
    assert st == 200 and not res.get("errors"), res


def source(env, idv):
    st, res = env.os("GET", "/%s/_doc/%s" % (env.index, idv))
    return res.get("_source", {}) if st == 200 else None


def overwritten(env, mode):
    setup(env)
    r = env.run("check", RECONCILE_WRITE_MODE=mode)
    n = summary(r.stdout)
    check(r.returncode == 0 and n.get("failed") == 0 and n.get("skipped_newer", 0) == 0,
          "%s: a copy without the id field is no newer write (%d %s %s)"
          % (mode, r.returncode, n, r.stderr[-400:]))
    for i in range(4):
        s = source(env, "k%d" % i) or {}
        check(s.get("mongo_id") == "k%d" % i and s.get("title") == "new-%d" % i,
              "%s: k%d holds MongoDB's document with its id field (%s)" % (mode, i, s))
        if mode == "upsert":
            check(s.get("extra") == "e", "upsert: k%d keeps a field only the index had" % i)
    r = env.run("check", "--dry-run")
    check(r.returncode == 0, "%s: the dry run after is clean (%d %s)"
          % (mode, r.returncode, r.stdout[-300:]))


def upsert(env):
    overwritten(env, "upsert")


def index_mode(env):
    overwritten(env, "index")


def with_query(env):
    """OPENSEARCH_QUERY: the copy may be outside it (another mirror's):
    not written over; the reason says what is there, not "newer"."""
    setup(env)
    r = env.run("check", OPENSEARCH_QUERY='{"match_all": {}}')
    n = summary(r.stdout)
    check(n.get("skipped_newer", 0) == 0 and n.get("failed") == 2,
          "query: the two copies without mongo_id are not counted newer (%s)" % n)
    check("but no mongo_id" in r.stderr,
          "query: the run says the index document has no mongo_id (%s)" % r.stderr[-600:])
    check(source(env, "k0").get("title") == "old-0", "query: the copy is left as it was")


run_all([upsert, index_mode, with_query], prefix="kl_")
