"""Drift scenarios against the real servers. Each ends with the index's id
set and versions equal to MongoDB's and the journal's counts equal to what
was injected."""
import json

from harness import Env, check, done, ext_id


def idof(env, n, kind="oid"):
    canonical, id_type = env.fixture("idof", n, kind).split()
    return canonical, id_type


def orphan_actions(ids):
    out = []
    for i in ids:
        out.append({"index": {"_id": i}})
        out.append({"mongo_id": i, "title": "gone from MongoDB", "updatedAt": "2024-02-02T00:00:00Z"})
    return out


def make_stale(env, numbers, kind="oid"):
    for n in numbers:
        canonical, id_type = idof(env, n, kind)
        env.mongo({"update": "ads", "updates": [
            {"q": {"_id": ext_id(canonical, id_type)},
             "u": {"$set": {"updatedAt": {"$date": "2026-06-01T12:00:00.%03dZ" % n}}}}]})


def delete_from_index(env, numbers, kind="oid"):
    env.bulk([{"delete": {"_id": idof(env, n, kind)[0]}} for n in numbers])


def expect(env, name, r, exit_code=0, **counts):
    run = env.last_run()
    check(r.returncode == exit_code,
          "%s: check exits %d (%s)" % (name, exit_code, r.stderr[-300:]))
    check(run["status"] == "completed", "%s: run completed (%s)" % (name, run["error"]))
    for k, v in counts.items():
        check(run[k] == v, "%s: %s = %s (got %s)" % (name, k, v, run[k]))
    return run


def scenario(name, fn, **settings):
    env = Env(name, **settings)
    try:
        fn(env)
    except Exception as e:  # a scenario that blows up is a failure, not a crash
        check(False, "%s raised %r" % (name, e))
    finally:
        env.cleanup()


def only_missing(env):
    env.create_index()
    env.fixture("load", "--count", 300)
    env.fixture("sync", "--skip-every", 10)
    r = env.run("check")
    expect(env, "only missing", r, missing_count=30, orphan_count=0, stale_count=0,
           repaired_count=30, failed_count=0)
    check(env.in_sync(), "only missing: index equals MongoDB")


def only_orphans(env):
    env.create_index()
    env.fixture("load", "--count", 200)
    env.fixture("sync")
    orphans = [idof(env, 10000 + i)[0] for i in range(7)] + ["zz-not-an-oid"]
    env.bulk(orphan_actions(orphans))
    r = env.run("check")
    expect(env, "orphans (report)", r, missing_count=0, orphan_count=8, deleted_count=0)
    check(len(env.os_docs()) == 208, "orphans (report): nothing deleted")
    with env.journal() as db:
        st = [x[0] for x in db.execute("SELECT DISTINCT status FROM run_ids")]
    check(st == ["reported"], "orphans (report): journaled as reported (%s)" % st)
    r = env.run("check", RECONCILE_ORPHANS="delete")
    expect(env, "orphans (delete)", r, orphan_count=8, deleted_count=8, missing_count=0)
    check(env.in_sync(), "orphans (delete): index equals MongoDB")


def only_stale(env):
    env.create_index()
    env.fixture("load", "--count", 200)
    env.fixture("sync")
    make_stale(env, [3, 50, 51, 199])
    r = env.run("check")
    expect(env, "only stale", r, missing_count=0, orphan_count=0, stale_count=4,
           repaired_count=4)
    check(env.in_sync(), "only stale: versions equal MongoDB's")


def equal_counts(env):
    env.create_index()
    env.fixture("load", "--count", 250)
    env.fixture("sync")
    delete_from_index(env, [0, 17, 100, 101, 200, 249])
    env.bulk(orphan_actions([idof(env, 5000 + i)[0] for i in range(6)]))
    r = env.run("check", RECONCILE_ORPHANS="delete")
    run = expect(env, "k missing + k orphans", r, missing_count=6, orphan_count=6,
                 repaired_count=6, deleted_count=6)
    check(run["mongo_count"] == run["opensearch_count"] == 250,
          "k missing + k orphans: the counts were equal (%s, %s)"
          % (run["mongo_count"], run["opensearch_count"]))
    check(env.in_sync(), "k missing + k orphans: index equals MongoDB")


def empty_index(env):
    env.fixture("load", "--count", 150)
    r = env.run("check")  # the index does not even exist
    expect(env, "no index", r, missing_count=150, repaired_count=150)
    check(env.in_sync(), "no index: created and filled")
    st, m = env.os("GET", "/%s/_mapping" % env.index)
    check(m[env.index]["mappings"]["properties"]["mongo_id"]["type"] == "keyword",
          "no index: created with the id field as keyword")
    env.os("DELETE", "/" + env.index)
    env.create_index()
    r = env.run("check")
    expect(env, "empty index", r, missing_count=150, repaired_count=150)
    check(env.in_sync(), "empty index: index equals MongoDB")


def empty_collection(env):
    env.create_index()
    env.bulk(orphan_actions([idof(env, i)[0] for i in range(20)]))
    # a collection that does not exist is a typo until shown otherwise: the
    # run refuses it and changes nothing (QA: a misspelt collection emptied
    # its index)
    r = env.run("check", RECONCILE_ORPHANS="delete")
    check(r.returncode == 2 and "collection ads does not exist" in r.stderr
          and len(env.os_docs()) == 20,
          "no such collection: the run refuses it, nothing deleted (%d: %r)"
          % (r.returncode, r.stderr[-300:]))
    d = env.run("doctor")
    check(d.returncode == 1 and "collection ads does not exist" in d.stdout,
          "no such collection: doctor says so (%d: %r)" % (d.returncode, d.stdout))
    env.mongo({"create": "ads"})  # empty, but there
    # every document an orphan: the brake on deletes holds (docs/ENGINE.md),
    # a person releases it for one run
    r = env.run("check", RECONCILE_ORPHANS="delete")
    check(r.returncode == 4 and env.last_run()["status"] == "held" and len(env.os_docs()) == 20,
          "empty collection: the brake holds, nothing deleted (%d)" % r.returncode)
    r = env.run("check", "--allow-deletes", RECONCILE_ORPHANS="delete")
    expect(env, "empty collection", r, missing_count=0, orphan_count=20, deleted_count=20)
    check(env.in_sync() and env.os_docs() == {}, "empty collection: index emptied")


def typed_ids(kind):
    def fn(env):
        env.create_index()
        env.fixture("load", "--count", 300, "--ids", kind)
        env.fixture("sync", "--skip-every", 9)  # 33 missing
        orphans = [idof(env, 90000 + i, kind)[0] for i in range(3)]
        if kind == "mixed":
            orphans = [idof(env, 90000 + i, kind)[0] for i in range(6)]  # 2 of each type
        env.bulk(orphan_actions(orphans))
        stale = [4, 5, 7, 10]  # none of them among the 9th ids the sync skipped
        make_stale(env, stale, kind)
        r = env.run("check", RECONCILE_ORPHANS="delete")
        expect(env, "%s ids" % kind, r, missing_count=33, orphan_count=len(orphans),
               stale_count=len(stale), repaired_count=33 + len(stale),
               deleted_count=len(orphans), failed_count=0)
        check(env.in_sync(), "%s ids: index equals MongoDB" % kind)
        r = env.run("check", "--dry-run")
        check(r.returncode == 0, "%s ids: a dry run afterwards finds nothing (%s)"
              % (kind, r.stdout))
    return fn


def rejected_document(env):
    env.create_index({"price": {"type": "integer"}})
    env.fixture("load", "--count", 40)
    env.mongo({"insert": "ads", "documents": [
        {"_id": "bad-price", "price": "not a number", "updatedAt": {"$date": "2024-01-01T00:00:00Z"}},
        {"_id": "good-price", "price": 12, "updatedAt": {"$date": "2024-01-01T00:00:00Z"}}]})
    r = env.run("check")
    # 3: completed, but a document could not be repaired (not "in sync")
    run = expect(env, "rejected document", r, exit_code=3, missing_count=42,
                 repaired_count=41, failed_count=1)
    check("1 document could not be repaired" in r.stderr,
          "rejected: the exit says why (%s)" % r.stderr[-200:])
    with env.journal() as db:
        row = db.execute("SELECT status, error FROM run_ids WHERE doc_id = 'bad-price'").fetchone()
        err = db.execute("SELECT message FROM errors WHERE doc_id = 'bad-price'").fetchone()
    check(row is not None and row["status"] == "failed", "rejected: journaled as failed")
    check(row is not None and "mapper_parsing_exception" in (row["error"] or ""),
          "rejected: with OpenSearch's reason (%s)" % (row and row["error"]))
    check(err is not None and "price" in err["message"], "rejected: an errors row names the field")
    docs = env.os_docs()
    check(len(docs) == 41 and "good-price" in docs and "bad-price" not in docs,
          "rejected: every other document of the batch is indexed")


def min_age(env):
    """Documents changed within RECONCILE_MIN_AGE_MS are left alone (the live
    syncer may be writing them), counted as skipped, and repaired later."""
    import datetime
    env.create_index()
    env.fixture("load", "--count", 100)
    env.fixture("sync")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    env.mongo({"insert": "ads", "documents": [
        {"_id": {"$oid": "%024x" % (0xff0000000000000000000000 + i)}, "title": "fresh",
         "updatedAt": {"$date": now}} for i in range(5)]})
    make_stale(env, [10, 11])  # old ids, but versions changed just now (2026-06-01 is past)
    r = env.run("check", RECONCILE_MIN_AGE_MS=3600000)
    run = expect(env, "min age", r, missing_count=5, stale_count=2, skipped_count=5,
                 repaired_count=2)
    check(len(env.os_docs()) == 100, "min age: the fresh documents were not indexed")
    r = env.run("check")
    expect(env, "min age off", r, missing_count=5, repaired_count=5)
    check(env.in_sync(), "min age: repaired once old enough (here: with the setting off)")


def lacking_id_field(env):
    """Index documents without the keyword id field cannot be placed in key
    order: the run says so; with OPENSEARCH_ID_FIELD= (ids from _id) the
    orphan among them is found."""
    env.create_index()
    env.fixture("load", "--count", 50)
    env.fixture("sync")
    env.bulk([{"index": {"_id": "no-id-field"}}, {"title": "written without mongo_id"}])
    r = env.run("check")
    expect(env, "lacking id field", r, orphan_count=0)
    with env.journal() as db:
        warn = [x[0] for x in db.execute("SELECT detail FROM run_events WHERE event = 'warning'")]
    check(any("1 documents of the index lack mongo_id" in w for w in warn),
          "lacking id field: the run says so (%s)" % warn)
    r = env.run("check", OPENSEARCH_ID_FIELD="", RECONCILE_ORPHANS="delete")
    expect(env, "ids from _id", r, orphan_count=1, deleted_count=1, missing_count=0)
    check(env.in_sync(), "ids from _id: index equals MongoDB")


scenario("missing", only_missing)
scenario("noidfield", lacking_id_field)
scenario("minage", min_age)
scenario("orphans", only_orphans)
scenario("stale", only_stale)
scenario("equal", equal_counts)
scenario("emptyidx", empty_index)
scenario("emptycoll", empty_collection)
scenario("strids", typed_ids("string"))
scenario("intids", typed_ids("int"))
scenario("mixedids", typed_ids("mixed"))
scenario("rejected", rejected_document)
done()
