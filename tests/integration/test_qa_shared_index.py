"""What QA passes found about mirrors that write into one index, each now
the right outcome:
- QA8b F1: two mirrors into one index spelled two ways (URL, alias) are
  refused;
- QA8c F3: when another mirror's OpenSearch cannot be asked which index it
  writes, the orphan deletes are held;
- QA11 F1: two mirrors on one index whose different queries select the same
  documents: the deletes are held.
"""
import os

from harness import check, run_all, write
from service import Service


def shared_index_spellings(env):
    """QA8b F1: two mirrors into one index without their own opensearch_query,
    the cluster or index spelled two ways. A URL spelled two ways is refused
    by the configuration (file, line, key); an alias of the other mirror's
    index only the cluster can tell: each run of either mirror (CLI and
    service) is refused before anything is counted or written."""
    env.create_index()
    env.fixture("load", "--count", 100)
    r = env.run("check")
    check(r.returncode == 0 and len(env.os_docs()) == 100, "ads indexed (%s)" % r.stderr[-200:])
    env.mongo({"insert": "u2", "documents": [{"_id": "u%02d" % i} for i in range(10)]})
    alias = env.index + "_alias"
    st, _ = env.os("POST", "/_aliases", {"actions": [{"add": {"index": env.index, "alias": alias}}]})
    check(st == 200, "alias made")
    local = env.url.replace("127.0.0.1", "localhost")
    path = os.path.join(env.tmp, "shared.yaml")
    with open(path, "w") as f:
        f.write("reconcile_orphans: delete\nmirrors:\n"
                "  - name: a\n    mongodb_collection: ads\n    opensearch_index: %s\n"
                "    opensearch_url: %s\n"
                "  - name: b\n    mongodb_collection: u2\n    opensearch_index: %s\n"
                "    opensearch_url: %s/\n" % (env.index, env.url, env.index, local))
    r = env.run("config", "--file", path)
    check(r.returncode == 78 and "shared.yaml:7: mirror b: opensearch_query: mirrors a (line 3)"
          " and b" in r.stderr and "one cluster" in r.stderr,
          "127.0.0.1 and localhost/ are one cluster: refused (%d: %r)" % (r.returncode, r.stderr[-300:]))
    with open(path, "w") as f:
        f.write("reconcile_orphans: delete\nmirrors:\n"
                "  - name: a\n    mongodb_collection: ads\n    opensearch_index: %s\n"
                "    opensearch_url: %s\n"
                "  - name: b\n    mongodb_collection: u2\n    opensearch_index: %s\n"
                "    opensearch_url: %s\n"
                "  - name: c\n    mongodb_collection: u2\n    opensearch_index: %s_new\n"
                % (env.index, env.url, alias, local, env.index))
    r = env.run("config", "--file", path)
    check(r.returncode == 0, "an alias passes the configuration (%d: %r)" % (r.returncode, r.stderr[-300:]))
    for mirror in ("b", "a"):
        r = env.run("check", "--mirror", mirror, RECONCILER_CONFIG=path)
        run = env.last_run()
        check(r.returncode not in (0, 78) and run["mirror"] == mirror and run["status"] == "failed"
              and "both write into index " + env.index in r.stderr
              and ("mirrors %s and %s" % (mirror, "a" if mirror == "b" else "b")) in r.stderr
              and "nothing was changed" in (run["error"] or ""),
              "run of mirror %s refused, failed (%d: %r, %s)"
              % (mirror, r.returncode, r.stderr[-400:], run["status"]))
        check(len(env.os_docs()) == 100 and run["opensearch_count"] is None,
              "nothing counted or written for %s (%d copies)" % (mirror, len(env.os_docs())))
    # a mirror whose index does not exist yet conflicts with nobody
    r = env.run("check", "--mirror", "c", RECONCILER_CONFIG=path)
    check(r.returncode == 0 and env.last_run()["status"] == "completed",
          "mirror c (its own new index) runs (%d: %r)" % (r.returncode, r.stderr[-300:]))
    env.os("DELETE", "/%s_new" % env.index)
    svc = Service(env, RECONCILER_CONFIG=path)
    try:
        st, body, _ = svc.http("POST", "/api/mirrors/b/check", {"wait": True})
        run = env.last_run()
        check(run["mirror"] == "b" and run["status"] == "failed"
              and "both write into index" in (run["error"] or ""),
              "the service refuses mirror b's run too (%d: %s; %s)" % (st, str(body)[:300], run["status"]))
    finally:
        svc.stop()
    check(len(env.os_docs()) == 100, "the 100 ads copies are all there")


def peer_unreachable_holds(env):
    """QA8c F3: when another mirror's OpenSearch could not be asked which
    index it writes, the run went on and deleted orphans that might be that
    mirror's copies (fail-open). Now its orphan deletes are held."""
    env.fixture("load", "--count", 20)
    a = env.index + "_a"
    env.os("PUT", "/" + a, {"mappings": {"properties": {"mongo_id": {"type": "keyword"}}}})
    orphan = "%024x" % 0xabcdef
    body = "mirrors:\n  - name: a\n    opensearch_index: %s\n    reconcile_orphans: delete\n" \
           "    reconcile_max_delete_ratio: 1\n  - name: b\n    opensearch_index: %s_b\n" \
           "    opensearch_url: %s\n"
    down = write(env, "peer-down.yaml", body % (a, env.index, "http://127.0.0.1:9"))
    try:
        r = env.run("check", "--mirror", "a", RECONCILER_CONFIG=down)
        check(r.returncode == 0, "a first check of mirror a fills its index (%d: %s)"
              % (r.returncode, r.stderr[-300:]))
        env.os("PUT", "/%s/_doc/%s?refresh=true" % (a, orphan), {"mongo_id": orphan})
        r = env.run("check", "--mirror", "a", RECONCILER_CONFIG=down)
        st, _ = env.os("GET", "/%s/_doc/%s" % (a, orphan))
        check(r.returncode == 4 and "could not be asked" in r.stderr and st == 200,
              "mirror b's OpenSearch down: a's orphan delete is held, exit 4 (%d, doc %d: %s)"
              % (r.returncode, st, r.stderr[-400:]))
        r = env.run("check", "--mirror", "a", "--allow-deletes", RECONCILER_CONFIG=down)
        st, _ = env.os("GET", "/%s/_doc/%s" % (a, orphan))
        check(r.returncode == 4 and st == 200, "a release does not lift it (%d, doc %d)"
              % (r.returncode, st))
        up = write(env, "peer-up.yaml", body % (a, env.index, env.url))
        r = env.run("check", "--mirror", "a", RECONCILER_CONFIG=up)
        st, _ = env.os("GET", "/%s/_doc/%s" % (a, orphan))
        check(r.returncode == 0 and st == 404,
              "once b's OpenSearch answers (another index), the orphan is deleted (%d, doc %d: %s)"
              % (r.returncode, st, r.stderr[-300:]))
    finally:
        env.os("DELETE", "/" + a)


def overlapping_queries(env):
    """QA11 F1 (data loss): two mirrors on one index with different
    queries that select the same documents (match_all spelled as a bool
    with minimum_should_match, exists on the id field, ...) passed the
    shared-index check, and one deleted the other's copies. Before its
    deletes the run now counts the documents both queries select: any, and
    the deletes are held (the repairs go on); so too when the other
    mirror's OpenSearch cannot be asked which index it writes (review)."""
    env.fixture("load", "--count", 10)
    shared = env.index + "_shared"
    env.os("PUT", "/" + shared, {"mappings": {"properties": {
        "mongo_id": {"type": "keyword"}, "src": {"type": "keyword"}}}})
    theirs = "%024x" % 0xa11
    env.os("PUT", "/%s/_doc/%s?refresh=true" % (shared, theirs), {"mongo_id": theirs, "src": "a"})
    body = ("mirrors:\n  - name: a\n    opensearch_index: %s\n"
            "    mongodb_collection: other_a\n    opensearch_url: %s\n"
            "    opensearch_query: '{\"term\": {\"src\": \"a\"}}'\n"
            "  - name: b\n    opensearch_index: %s\n    reconcile_orphans: delete\n"
            "    reconcile_max_delete_ratio: 1\n    opensearch_query: '%s'\n")
    try:
        for k, (q, a_url) in enumerate((
                ('{"bool": {"should": [{"match_all": {}}], "minimum_should_match": 1}}', env.url),
                ('{"exists": {"field": "mongo_id"}}', env.url),
                ('{"exists": {"field": "mongo_id"}}', "http://127.0.0.1:9"))):
            path = write(env, "overlap.yaml", body % (shared, a_url, shared, q))
            r = env.run("check", "--mirror", "b", "--allow-deletes", RECONCILER_CONFIG=path)
            st, _ = env.os("GET", "/%s/_doc/%s" % (shared, theirs))
            run = env.last_run()
            check(r.returncode == 4 and "match both" in r.stderr and run["mirror"] == "b"
                  and run["status"] == "held" and st == 200
                  and run["repaired_count"] == (10 if k == 0 else 0),
                  "%s (a at %s): b's deletes held, its repairs done, a's copy kept "
                  "(%d, %s, repaired %s, doc %d: %r)"
                  % (q, a_url, r.returncode, run["status"], run["repaired_count"], st,
                     r.stderr[-300:]))
        # queries that select different documents: nothing held for that
        path = write(env, "apart.yaml", body % (shared, env.url, shared, '{"term": {"src": "b"}}'))
        r = env.run("check", "--dry-run", "--mirror", "b", RECONCILER_CONFIG=path)
        check(r.returncode in (0, 1) and "match both" not in r.stderr,
              "distinct documents: runs (%d: %r)" % (r.returncode, r.stderr[-300:]))
    finally:
        env.os("DELETE", "/" + shared)


run_all([shared_index_spellings, peer_unreachable_holds, overlapping_queries])
