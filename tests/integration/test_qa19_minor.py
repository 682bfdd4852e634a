"""QA19 F10, the small ones: diff shows OPENSEARCH_ROUTING_FIELD's routing
(not null), a targeted run logs MongoDB's count as not counted (not -1),
and a YAML file with an unquoted JSON clause is told to quote it."""
import json
import os

from harness import check, run_all, write


def diff_routing(env):
    env.create_index()
    env.mongo({"insert": "ads", "documents": [
        {"_id": "d1", "shop_id": "s1", "updatedAt": {"$date": {"$numberLong": "1704067200000"}}}]})
    r = env.run("diff", "d1", OPENSEARCH_ROUTING_FIELD="shop_id")
    d = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
    check(d.get("state") == "missing" and d.get("routing") == "s1",
          "diff: the rule's routing for the document (%d %s %s)"
          % (r.returncode, r.stdout[:300], r.stderr[-300:]))


def ids_counts(env):
    env.create_index()
    env.mongo({"insert": "ads", "documents": [
        {"_id": "d1", "updatedAt": {"$date": {"$numberLong": "1704067200000"}}}]})
    ids = write(env, "ids.txt", "d1\n")
    r = env.run("check", "--ids", ids)
    line = [x for x in r.stderr.splitlines() if "counts: MongoDB" in x]
    check(r.returncode == 0 and line and "MongoDB not counted" in line[0]
          and "MongoDB -1" not in line[0],
          "an --ids run logs MongoDB's count as not counted (%d %s %s)"
          % (r.returncode, line, r.stderr[-300:]))


def yaml_quote_hint(env):
    path = write(env, "r.yaml", "mirrors:\n  - name: ads\n"
                 "    opensearch_keep_query: {\"range\": {\"expiresAt\": {\"lt\": \"now\"}}}\n")
    r = env.run("config", "--file", path)
    check(r.returncode == 78 and "r.yaml:3:" in r.stderr and "quoted" in r.stderr
          and "opensearch_keep_query: '{" in r.stderr,
          "an unquoted JSON clause in YAML: told to quote it (%d %s)"
          % (r.returncode, r.stderr[-400:]))
    path = write(env, "q.yaml", "mirrors:\n  - name: ads\n"
                 "    opensearch_keep_query: '{\"range\": {\"expiresAt\": {\"lt\": \"now\"}}}'\n")
    r = env.run("config", "--file", path)
    check(r.returncode == 0, "quoted, it loads (%d %s)" % (r.returncode, r.stderr[-300:]))


run_all([diff_routing, ids_counts, yaml_quote_hint], prefix="q19_")
