"""docs/kubernetes/ (issue 21): the split run's manifests are valid
Kubernetes objects, checked by kubernetes-validate (from PyPI, installed
into a venv under the build directory; the test says SKIP and passes only
when the package cannot be installed here), strictly (no unknown field)
against the Kubernetes versions the manifests need (1.30, 1.33); and they
say what docs/ENGINE.md says: an Indexed Job of N pods, pod K running
`check --partition $(JOB_COMPLETION_INDEX)/N` with N = completions =
parallelism, a journal directory per index, the ConfigMap and the Secret it
names, a CronJob of the same Job, and a merge over the N journals.

Nothing here needs the test servers."""
import os
import subprocess
import sys
import venv

from harness import BIN, SRC, check, done

DIR = os.path.join(SRC, "docs", "kubernetes")
VENV = os.path.join(os.path.dirname(BIN), "k8s-venv")
PACKAGE = "kubernetes-validate==1.37.0"
VERSIONS = ("1.30.0", "1.33.0")


def validator():
    """The kubernetes-validate executable, installed if needed; None when
    it cannot be (no network, no registry): said, not failed."""
    exe = os.path.join(VENV, "bin", "kubernetes-validate")
    if os.path.exists(exe):
        return exe
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    except Exception as e:
        print("SKIP: cannot create a venv at %s (%r)" % (VENV, e))
        return None
    r = subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "--quiet", PACKAGE],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not os.path.exists(exe):
        print("SKIP: %s cannot be installed here: %s" % (
            PACKAGE, (r.stdout + r.stderr).strip().splitlines()[-1:]))
        return None
    return exe


def manifests():
    return sorted(os.path.join(DIR, f) for f in os.listdir(DIR) if f.endswith(".yaml"))


def load_all():
    """Every object of every manifest, with the venv's PyYAML."""
    code = ("import json, sys, yaml\n"
            "print(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f))"
            " if d]))\n")
    r = subprocess.run([os.path.join(VENV, "bin", "python"), "-c", code] + manifests(),
                       capture_output=True, text=True, check=True)
    import json
    return json.loads(r.stdout)


def valid(exe):
    files = manifests()
    check(len(files) >= 4, "docs/kubernetes has the manifests: %s" % files)
    for version in VERSIONS:
        r = subprocess.run([exe, "--strict", "-k", version] + files, capture_output=True,
                           text=True, timeout=300)
        out = r.stdout + r.stderr
        check(r.returncode == 0 and "ERROR" not in out,
              "kubernetes-validate --strict -k %s accepts every manifest: %s" % (
                  version, out.strip()[-1500:]))


def job_spec_ok(name, spec):
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    n = spec.get("completions")
    args = c.get("args", [])
    check(spec.get("completionMode") == "Indexed" and n and spec.get("parallelism") == n,
          "%s: an Indexed Job, N = completions = parallelism" % name)
    check(args[:3] == ["check", "--partition", "$(JOB_COMPLETION_INDEX)/%d" % n],
          "%s: pod K runs check --partition K/N: %s" % (name, args))
    env = {e["name"]: e for e in c.get("env", [])}
    check("JOB_COMPLETION_INDEX" in env and env.get("STATE_DB", {}).get("value", "")
          .startswith("/journal/"), "%s: the journal in the pod's own volume" % name)
    mount = [m for m in c["volumeMounts"] if m["mountPath"] == "/journal"]
    check(mount and "$(JOB_COMPLETION_INDEX)" in mount[0].get("subPathExpr", ""),
          "%s: a journal directory per completion index" % name)
    check(any(s.get("secretRef", {}).get("name") == "reconciler-uris"
              for s in c.get("envFrom", [])), "%s: the URIs from the Secret" % name)
    check(any(v.get("configMap", {}).get("name") == "reconciler-config"
              for v in pod["volumes"]), "%s: the YAML config from the ConfigMap" % name)
    return n


def consistent():
    objs = load_all()
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    check({"ConfigMap", "Secret", "Job", "CronJob", "PersistentVolumeClaim"} <= set(by_kind),
          "a ConfigMap, a Secret, a PVC, the Jobs and a CronJob: %s" % sorted(by_kind))
    cm = by_kind["ConfigMap"][0]
    check("opensearch_id_field" in cm["data"].get("reconciler.yaml", ""),
          "the config names the keyword id field --partition needs")
    split = [j for j in by_kind["Job"] if j["spec"].get("completionMode") == "Indexed"]
    n = job_spec_ok("job", split[0]["spec"]) if split else None
    check(bool(split), "an Indexed Job")
    cron = by_kind["CronJob"][0]["spec"]
    n2 = job_spec_ok("cronjob", cron["jobTemplate"]["spec"])
    check(n2 == n and cron.get("concurrencyPolicy") == "Forbid",
          "the CronJob runs the same split, one at a time")
    merge = [j for j in by_kind["Job"] if j["spec"].get("completionMode") != "Indexed"]
    margs = merge[0]["spec"]["template"]["spec"]["containers"][0]["args"] if merge else []
    check(margs[:2] == ["report", "--merge"] and
          len([a for a in margs if a.endswith("journal.db")]) == n,
          "the merge reads the N journals: %s" % margs)
    # what the pods run, run here: the CLI takes the manifests' command line
    r = subprocess.run([BIN, "check", "--partition", "%d/%d" % (n, n)],
                       capture_output=True, text=True)
    check(r.returncode == 78, "K = N is refused as the pods' index never is")


exe = validator()
if exe:
    valid(exe)
    consistent()
done()
