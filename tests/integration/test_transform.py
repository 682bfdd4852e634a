"""Repairs write what the transform says: declarative fields, a Lua script,
its routing; a script that does not compile stops before any run; one
document's script error fails that document alone."""
import os

from harness import check, run_all

DATE0 = 1704067200000

SCRIPT = """
function transform(doc)
  if doc.title == "boom" then error("no boom allowed") end
  if doc.title == "shell" then os.execute("touch /tmp/reconciler-pwned") end
  if doc.title == "skip" then return nil end
  return {name = doc.title, updatedAt = doc.updatedAt, shard = doc.shard}, doc.shard
end
"""


def write(env, name, text):
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def d(idv, title, shard, ms=DATE0):
    return {"_id": idv, "title": title, "shard": shard, "extra": "not written",
            "updatedAt": {"$date": {"$numberLong": str(ms)}}}


def hits(env):
    env.refresh()
    st, res = env.os("POST", "/%s/_search" % env.index, {"size": 100})
    return {h["_id"]: (h.get("_routing"), h["_source"]) for h in res["hits"]["hits"]}


def script_scenario(env):
    st, body = env.os("PUT", "/" + env.index, {
        "settings": {"number_of_shards": 3, "number_of_replicas": 0},
        "mappings": {"properties": {"mongo_id": {"type": "keyword"},
                                    "updatedAt": {"type": "date"}}}})
    assert st == 200, body
    script = write(env, "t.lua", SCRIPT)
    env.mongo({"insert": "ads", "documents": [
        d("a", "alpha", "r1"), d("b", "beta", "r2"), d("c", "gamma", "r3"),
        d("x", "boom", "r1"), d("y", "shell", "r1"), d("z", "skip", "r1")]})
    r = env.run("check", RECONCILE_TRANSFORM=script)
    run = env.last_run()
    got = hits(env)
    check(r.returncode == 3 and run["failed_count"] == 2,
          "transform: two documents fail alone, exit 3 (%d, %s)" % (r.returncode, run["failed_count"]))
    check(got.get("a") == ("r1", {"mongo_id": "a", "name": "alpha", "updatedAt": "2024-01-01T00:00:00.000Z",
                                  "shard": "r1"}),
          "transform: the body and the routing are the script's (%s)" % (got.get("a"),))
    check("x" not in got and "y" not in got and "z" not in got,
          "transform: failed and skipped documents are not written")
    with env.journal() as db:
        err = {x["doc_id"]: (x["status"], x["error"]) for x in db.execute(
            "SELECT doc_id, status, error FROM run_ids WHERE run_id = ?", (run["id"],))}
    check("no boom allowed" in (err.get("x", ("", ""))[1] or ""),
          "transform: a runtime error is journaled with the script's message (%s)" % (err.get("x"),))
    check(err.get("y", ("",))[0] == "failed" and not os.path.exists("/tmp/reconciler-pwned"),
          "transform: os.execute is refused, that document fails (%s)" % (err.get("y"),))
    check("z" not in err and run["missing_count"] == 5,
          "transform: nil leaves it out: not missing, not journaled (%s, missing %d)"
          % (err.get("z"), run["missing_count"]))

    # the routing changes: the copy moves, one copy stays
    env.mongo({"update": "ads", "updates": [{"q": {"_id": "b"}, "u": {"$set": {
        "shard": "r9", "updatedAt": {"$date": {"$numberLong": str(DATE0 + 5)}}}}}]})
    r = env.run("check", RECONCILE_TRANSFORM=script)
    env.refresh()
    st, res = env.os("POST", "/%s/_search" % env.index,
                     {"size": 100, "query": {"term": {"mongo_id": "b"}}})
    copies = [(h.get("_routing"), h["_source"].get("shard")) for h in res["hits"]["hits"]]
    check(copies == [("r9", "r9")], "transform: a copy whose routing changed is moved (%s)" % copies)

    # a script that does not compile: exit 78, no run begun
    bad = write(env, "bad.lua", "function transform(doc)\n  return {\nend\n")
    with env.journal() as db:
        before = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    r = env.run("check", RECONCILE_TRANSFORM=bad)
    with env.journal() as db:
        after = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    check(r.returncode == 78 and "bad.lua:" in r.stderr and after == before,
          "transform: a syntax error exits 78 naming file and line, no run (%d, %s)"
          % (r.returncode, r.stderr[-200:]))

    # QA: `config` (and `config --file`) say what `check` would refuse, and every
    # load-time message names the script
    toperr = write(env, "toperr.lua", "error({code = 1})\n")
    loop = write(env, "loop.lua", "while true do end\n")
    for settings, words in (({"RECONCILE_TRANSFORM": bad}, "bad.lua:3:"),
                            ({"RECONCILE_TRANSFORM": toperr}, "toperr.lua: while loading"),
                            ({"RECONCILE_TRANSFORM": loop}, "loop.lua: while loading"),
                            ({"RECONCILE_RENAME": "a:_id"}, "not a field to rename"),
                            ({"RECONCILE_EXCLUDE": "_id"}, "_id is the document's id")):
        for cmd in (("config",), ("check", "--dry-run")):
            r = env.run(*cmd, **settings)
            check(r.returncode == 78 and words in r.stderr,
                  "transform: %s with %s: 78 saying %r (%d, %s)"
                  % (cmd[0], settings, words, r.returncode, r.stderr[-200:]))


def left_out(env):
    """QA: documents the script leaves out were counted missing in every
    run, a dry run exited 1 forever and `drift --recurring` listed them."""
    env.create_index()
    script = write(env, "keep.lua", "function transform(doc)\n"
                   "  if not doc.keep then return nil end\n"
                   "  return {keep = doc.keep, updatedAt = doc.updatedAt}\nend\n")
    env.mongo({"insert": "ads", "documents": [
        dict(d(1, "one", "r1"), keep=True), dict(d(2, "two", "r1"), keep=False),
        dict(d(3, "three", "r1"), keep=False)]})
    r = env.run("check", "--dry-run", RECONCILE_TRANSFORM=script)
    run = env.last_run()
    check(r.returncode == 1 and run["missing_count"] == 1,
          "left out: a dry run counts only the document the script keeps (%d, missing %d)"
          % (r.returncode, run["missing_count"]))
    r = env.run("check", RECONCILE_TRANSFORM=script)
    run = env.last_run()
    check(r.returncode == 0 and run["missing_count"] == 1 and run["repaired_count"] == 1,
          "left out: the check repairs the one it keeps (%d, %s)" % (r.returncode, run))
    for args in (("check",), ("check", "--dry-run")):
        r = env.run(*args, RECONCILE_TRANSFORM=script)
        run = env.last_run()
        check(r.returncode == 0 and run["missing_count"] == 0,
              "left out: %s then finds nothing (%d, missing %d)"
              % (" ".join(args), r.returncode, run["missing_count"]))
    r = env.run("drift", "--recurring", RECONCILE_TRANSFORM=script)
    check(r.returncode == 0 and '"2"' not in r.stdout and " 2 " not in r.stdout,
          "left out: no recurring drift (%s)" % r.stdout[-300:])
    with env.journal() as db:
        ev = [x[0] for x in db.execute("SELECT detail FROM run_events WHERE run_id = ?",
                                       (run["id"],))]
    check(any("2 documents the transform leaves out" in e for e in ev),
          "left out: the run says how many it left out (%s)" % ev)
    check(set(env.os_docs()) == {"1"}, "left out: only the kept document is indexed")


def nil_brake(env):
    """QA: copies whose changed documents a script now leaves out were
    deleted during the pass, past the brake: a script returning nil by
    mistake emptied the index. They are held with the pass's orphans."""
    env.create_index()
    env.mongo({"insert": "ads", "documents": [d(i, "t%d" % i, "r1") for i in range(40)]})
    r = env.run("check")
    check(r.returncode == 0 and len(env.os_docs()) == 40, "nil brake: 40 indexed")
    env.mongo({"update": "ads", "updates": [{"q": {}, "multi": True, "u": {"$set": {
        "updatedAt": {"$date": {"$numberLong": str(DATE0 + 1000)}}}}}]})
    allnil = write(env, "allnil.lua", "function transform(doc) return nil end\n")
    r = env.run("check", RECONCILE_TRANSFORM=allnil, RECONCILE_ORPHANS="delete")
    run = env.last_run()
    check(r.returncode == 4 and run["status"] == "held" and run["deleted_count"] == 0
          and len(env.os_docs()) == 40,
          "nil brake: 40 copies left out are held, nothing deleted (%d %s %s, %d left)"
          % (r.returncode, run["status"], run["deleted_count"], len(env.os_docs())))
    r = env.run("check", "--allow-deletes", RECONCILE_TRANSFORM=allnil,
                RECONCILE_ORPHANS="delete")
    run = env.last_run()
    check(r.returncode == 0 and run["deleted_count"] == 40 and len(env.os_docs()) == 0,
          "nil brake: --allow-deletes deletes them (%d, deleted %s)"
          % (r.returncode, run["deleted_count"]))


def declarative(env):
    env.create_index()
    env.mongo({"insert": "ads", "documents": [d("a", "alpha", "r1")]})
    r = env.run("check", RECONCILE_FIELDS="title,updatedAt", RECONCILE_RENAME="title:headline")
    got = hits(env)
    check(r.returncode == 0 and got.get("a", (None, {}))[1] == {
        "mongo_id": "a", "headline": "alpha", "updatedAt": "2024-01-01T00:00:00.000Z"},
          "declarative: keep and rename (%s)" % (got.get("a"),))


SANDBOX = """
function transform(doc)
  if doc.title == "io" then io.open("/tmp/reconciler-pwned-io", "w") end
  if doc.title == "req" then require("os") end
  if doc.title == "spin" then while true do end end
  -- QA: an endless message handler ran with hooks off, unbounded (the run hung)
  if doc.title == "xp" then xpcall(function() error("x") end, function(m) while true do end end) end
  if doc.title == "xp2" then
    xpcall(function() while true do end end, function(m) while true do end end)
  end
  if doc.title == "xpok" then
    local ok, v = xpcall(function(a) error("e" .. a) end, function(m) return "handled " .. m end, 1)
    local ok2, a, b = xpcall(function(a, b) return a, b end, print, 1, 2)
    return {name = tostring(ok) .. " " .. v .. " " .. tostring(ok2) .. a .. b,
            updatedAt = doc.updatedAt}
  end
  return {name = doc.title, updatedAt = doc.updatedAt}
end
"""


def sandbox(env):
    """io.open, require and an endless loop each fail their document alone,
    on the real servers; the others are written and the process lives on."""
    env.create_index()
    script = write(env, "s.lua", SANDBOX)
    env.mongo({"insert": "ads", "documents": [
        d("i", "io", "r1"), d("q", "req", "r1"), d("s", "spin", "r1"), d("k", "fine", "r1"),
        d("x", "xp", "r1"), d("x2", "xp2", "r1"), d("xo", "xpok", "r1")]})
    r = env.run("check", RECONCILE_TRANSFORM=script, timeout=300)
    run = env.last_run()
    got = hits(env)
    with env.journal() as db:
        err = {x["doc_id"]: (x["status"], x["error"] or "") for x in db.execute(
            "SELECT doc_id, status, error FROM run_ids WHERE run_id = ?", (run["id"],))}
    check(r.returncode == 3 and run["status"] == "completed" and run["failed_count"] == 5,
          "sandbox: five documents fail, the run completes, exit 3 (%d, %s)"
          % (r.returncode, run["failed_count"]))
    check(err.get("i", ("", ""))[0] == "failed" and "io" in err["i"][1]
          and not os.path.exists("/tmp/reconciler-pwned-io"),
          "sandbox: io.open fails its document (%s)" % (err.get("i"),))
    check(err.get("q", ("", ""))[0] == "failed" and "require" in err["q"][1],
          "sandbox: require fails its document (%s)" % (err.get("q"),))
    check(err.get("s", ("", ""))[0] == "failed" and "instruction" in err["s"][1],
          "sandbox: an endless loop is stopped by the instruction budget (%s)" % (err.get("s"),))
    for k in ("x", "x2"):
        check(err.get(k, ("", ""))[0] == "failed" and "instruction" in err[k][1],
              "sandbox: an endless xpcall handler is stopped by the budget (%s)" % (err.get(k),))
    check(set(got) == {"k", "xo"}, "sandbox: only the fine documents are written (%s)" % sorted(got))
    check(got.get("xo", (None, {}))[1].get("name", "").startswith("false handled ")
          and got["xo"][1]["name"].endswith("true12"),
          "sandbox: xpcall answers as Lua's does (%s)" % (got.get("xo"),))


run_all([("script", script_scenario), ("leftout", left_out), ("nilbrake", nil_brake),
         ("decl", declarative), ("sandbox", sandbox)])
