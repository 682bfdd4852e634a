"""Grafana and alerting (docs/grafana, docs/prometheus): promtool accepts the
rules and their unit tests, and every reconciler_* metric the dashboard and
the rules use is in a live /metrics, both without the mirror label (the
environment's one mirror) and with it (a configuration file's mirrors)."""
import json
import os
import re
import shutil
import subprocess

from harness import SRC, Env, check, done
from service import Service

RULES = os.path.join(SRC, "docs", "prometheus", "alerts.yml")
RULE_TESTS = os.path.join(SRC, "docs", "prometheus", "alerts.test.yml")
DASHBOARD = os.path.join(SRC, "docs", "grafana", "reconciler.json")
NAME = re.compile(r"\breconciler_[a-z0-9_]+")


def promtool():
    tool = shutil.which("promtool")
    if tool is None:
        # loudly: a missing tool must not pass as "nothing to check"
        print("FAIL: promtool is not installed: tools/setup installs Debian's prometheus "
              "package, which ships /usr/bin/promtool", flush=True)
        check(False, "promtool is installed")
        return
    r = subprocess.run([tool, "check", "rules", RULES], capture_output=True, text=True)
    check(r.returncode == 0 and "SUCCESS" in r.stdout,
          "promtool check rules alerts.yml: %s %s" % (r.stdout, r.stderr))
    r = subprocess.run([tool, "test", "rules", RULE_TESTS], capture_output=True, text=True,
                       cwd=os.path.dirname(RULE_TESTS))
    check(r.returncode == 0 and "SUCCESS" in r.stdout,
          "promtool test rules alerts.test.yml: the alerts fire as meant: %s %s"
          % (r.stdout, r.stderr))


def dashboard_names():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    check(len(dash["panels"]) >= 10 and all(exprs), "the dashboard has its panels and queries")
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for what in ("drift found by kind", "runs by status", "last successful run",
                 "run duration", "repair rate", "errors"):
        check(what in titles, "the dashboard shows %s" % what)
    return {n for e in exprs for n in NAME.findall(e)}


def rule_names():
    names, alerts = set(), []
    with open(RULES) as f:
        text = f.read()
    # every expression (one line or a "|" block), without comments and annotations
    for block in re.findall(r"expr: (\|\n(?:\s{10}.*\n)+|.*\n)", text):
        names |= set(NAME.findall(block))
    alerts = re.findall(r"- alert: (\w+)", text)
    check({"ReconcilerDown", "ReconcilerNoSuccessfulRun", "ReconcilerDriftHigh",
           "ReconcilerFailedDocuments", "ReconcilerRunHeld"} <= set(alerts),
          "the rules cover down, no success for 2 intervals, drift, failed documents, a held "
          "run: %s" % alerts)
    check('reconciler_runs_total{status="held"}' in text, "the held alert reads runs by status")
    return names


def live_names(text):
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, 1)[0])
    return names


def series(text, name):
    return [l for l in text.splitlines() if l.startswith(name + "{") or l.startswith(name + " ")]


promtool()
# live sync's series are there only for a mirror whose stream the service
# runs (CHANGE_STREAM_ENABLED): test_live_sync_serve reads them
wanted = {n for n in dashboard_names() | rule_names() if not n.startswith("reconciler_stream_")}
check({"reconciler_last_success_timestamp_seconds", "reconciler_schedule_interval_seconds",
       "reconciler_drift_found_total", "reconciler_runs_total", "reconciler_drift_open",
       "reconciler_drift_recurring", "reconciler_documents_failed_total"} <= wanted,
      "the dashboard and rules use the new series: %s" % sorted(wanted))

env = Env("grafana")
try:
    env.create_index()
    env.fixture("load", "--count", 60)
    env.fixture("sync", "--skip-every", 6)
    r = env.run("check")
    check(r.returncode == 0, "a check completes: %s" % r.stderr[-300:])

    # the environment's one mirror: no mirror label
    svc = Service(env, RECONCILIATION_INTERVAL_MS=120000)
    try:
        st, text, _ = svc.http("GET", "/metrics")
    finally:
        svc.stop()
    have = live_names(text)
    missing = sorted(wanted - have)
    check(st == 200 and not missing, "every metric the dashboard and rules use is in /metrics "
          "(missing: %s)" % missing)
    check("mirror=" not in text, "no mirror label with the environment's one mirror")
    # QA10 F15: the first held run must be an increase from 0, and a run's
    # status that changes (running, interrupted) is no counter
    check('reconciler_runs_total{status="held"} 0\n' in text
          and 'reconciler_runs_total{status="completed"} 1\n' in text
          and 'reconciler_runs{status="running"} 0\n' in text
          and 'reconciler_runs_total{status="running"}' not in text,
          "runs that ended are a counter from 0, runs not ended a gauge: %s"
          % [l for l in text.splitlines() if l.startswith("reconciler_runs")])
    check("reconciler_schedule_interval_seconds 120\n" in text, "the interval in seconds")
    ts = series(text, "reconciler_last_success_timestamp_seconds")
    check(len(ts) == 1 and float(ts[0].split()[-1]) > 1.7e9,
          "the last success is a Unix time: %s" % ts)
    check(len(series(text, "reconciler_drift_open")) == 5
          and 'reconciler_drift_open{kind="missing"} 0' in text,
          "open drift by kind, none after the repair")
    for name in ("reconciler_last_success_timestamp_seconds", "reconciler_drift_open",
                 "reconciler_drift_recurring", "reconciler_schedule_interval_seconds"):
        check("# TYPE %s gauge" % name in text and "# HELP %s " % name in text,
              "%s has HELP and TYPE" % name)

    # a configuration file's mirrors: every series says which
    conf = os.path.join(env.tmp, "mirrors.yaml")
    with open(conf, "w") as f:
        f.write("mirrors:\n  - name: ads\n    reconciliation_interval_ms: 300000\n")
    r = env.run("check", RECONCILER_CONFIG=conf)
    check(r.returncode == 0, "a check of mirror ads: %s" % r.stderr[-300:])
    svc = Service(env, RECONCILER_CONFIG=conf)
    try:
        st, text, _ = svc.http("GET", "/metrics")
    finally:
        svc.stop()
    missing = sorted(wanted - live_names(text))
    check(st == 200 and not missing, "labelled: every metric used is there (missing: %s)"
          % missing)
    for name in ("reconciler_last_success_timestamp_seconds", "reconciler_drift_recurring",
                 "reconciler_schedule_interval_seconds"):
        s = series(text, name)
        check(len(s) == 1 and s[0].startswith(name + '{mirror="ads"}'),
              "%s is labelled mirror=\"ads\": %s" % (name, s))
    check('reconciler_schedule_interval_seconds{mirror="ads"} 300\n' in text,
          "the mirror's own interval")
    check('reconciler_drift_open{mirror="ads",kind="stale"} 0' in text, "open drift labelled")
finally:
    env.cleanup()
done()
