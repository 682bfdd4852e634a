"""What QA passes found about health and metrics, each now the right outcome:
- QA8b F9: with one mirror `default`, /metrics counts default's runs only,
  not the runs of other (removed) mirrors in the journal;
- noted in session 5: /api/health probes every mirror's servers, not only
  the first mirror's.
"""
from harness import check, run_all, write
from service import Service


def metrics_default(env):
    """QA8b F9: back to one mirror default (a file without mirrors:) on a
    journal that holds another mirror's runs, one of them left running."""
    env.fixture("load", "--count", 20)
    old = write(env, "old.yaml", "mirrors:\n  - name: old\n")
    r = env.run("check", RECONCILER_CONFIG=old)
    r2 = env.run("check", RECONCILER_CONFIG=old)
    check(r.returncode == 0 and r2.returncode == 0, "two runs of mirror old (%s)" % r.stderr[-200:])
    with env.journal() as db:
        db.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE id = 2")
    one = write(env, "one.yaml", "reconcile_orphans: report\n")
    svc = Service(env, RECONCILER_CONFIG=one)
    try:
        st, text, _ = svc.http("GET", "/metrics")
        check(st == 200 and "mirror=" not in text, "one mirror default: unlabelled series")
        for line in ('reconciler_runs_total{status="completed"} 0\n',
                     'reconciler_runs{status="running"} 0\n',
                     'reconciler_drift_found_total{kind="missing"} 0\n'):
            check(line in text, "%r: default's own, not mirror old's" % line.strip())
        check("reconciler_last_run_timestamp_seconds" not in text
              and "reconciler_documents{" not in text,
              "no last run of default yet (old's is not shown)")
        st, body, _ = svc.http("GET", "/api/reconciliation/status")
        check(st == 200 and body["stats"]["totalChecks"] == 0, "as /status says (%s)" % body)
        st, body, _ = svc.http("POST", "/api/reconciliation/check")
        check(st == 200 and body.get("success"), "a check of default (%d)" % st)
        st, text, _ = svc.http("GET", "/metrics")
        check('reconciler_runs_total{status="completed"} 1\n' in text
              and 'reconciler_documents{side="mongodb"} 20\n' in text,
              "then its own run counts (%s)" % [x for x in text.splitlines() if "runs" in x])
    finally:
        svc.stop()


def health_every_mirror(env):
    """Noted in session 5: /api/health probed only the first mirror's
    servers, so a second mirror's cluster could be down under an `ok`."""
    cfg = write(env, "health.yaml",
                "mirrors:\n  - name: a\n    opensearch_index: %s_a\n"
                "  - name: b\n    opensearch_index: %s_b\n"
                "    opensearch_url: http://127.0.0.1:9\n" % (env.index, env.index))
    svc = Service(env, RECONCILER_CONFIG=cfg)
    try:
        st, body, _ = svc.http("GET", "/api/health")
        m = body.get("mirrors", {})
        check(st == 503 and body.get("status") == "degraded"
              and m.get("a", {}).get("opensearch", {}).get("ok") is True
              and m.get("b", {}).get("opensearch", {}).get("ok") is False
              and m.get("b", {}).get("mongodb", {}).get("ok") is True
              and "error" in m.get("b", {}).get("opensearch", {}),
              "mirror b's OpenSearch down: 503, said under mirrors.b (%d: %s)" % (st, body))
        check(body.get("opensearch", {}).get("ok") is True,
              "the top level stays the first mirror's (%s)" % body.get("opensearch"))
    finally:
        svc.stop()
    cfg = write(env, "health2.yaml", "mirrors:\n  - name: a\n    opensearch_index: %s_a\n"
                "  - name: b\n    opensearch_index: %s_b\n"
                "  - name: c\n    opensearch_index: %s_c\n" % (env.index, env.index, env.index))
    svc = Service(env, RECONCILER_CONFIG=cfg)
    try:
        st, body, _ = svc.http("GET", "/api/health")
        m = body.get("mirrors", {})
        check(st == 200 and body.get("status") == "ok" and set(m) == {"a", "b", "c"}
              and all(m[x]["mongodb"]["ok"] and m[x]["opensearch"]["ok"] for x in m),
              "all up: 200 with each mirror, servers shared by mirrors asked once (%d: %s)"
              % (st, body))
    finally:
        svc.stop()


run_all([metrics_default, health_every_mirror])
