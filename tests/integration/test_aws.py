"""AWS SigV4 (docs/AWS.md): the reconciler against a signing-verifying proxy
in front of the test node (tests/integration/aws_stub.py: botocore computes
each request's signature again and answers a wrong one 403, as Amazon
OpenSearch Service does). A check, a full re-index and the API's health pass
signed; a wrong secret fails naming OpenSearch and the 403; credentials come
from each source of the chain (environment, a shared file's profile, web
identity through a local STS, the ECS endpoint, IMDSv2); temporary
credentials that expire in the middle of a run are refreshed before they do
and no request fails; Serverless (aoss) runs without _refresh. botocore is
in the venv tools/setup makes (build/aws-venv)."""
import json
import os
import subprocess
import sys
import urllib.request

from harness import BIN, SRC, check, run_all, write
from service import Service

VENV_PY = os.path.join(os.path.dirname(BIN), "aws-venv", "bin", "python")
AKID, SECRET = "AKIATESTSTATIC0001", "sEcReT/static+key0001"
REGION = "us-test-1"


class Stub:
    def __init__(self, env, service="es", ttl=3600):
        if not os.path.exists(VENV_PY):
            raise RuntimeError("no %s: run tools/setup (it installs botocore)" % VENV_PY)
        self.proc = subprocess.Popen(
            [VENV_PY, os.path.join(SRC, "tests", "integration", "aws_stub.py"),
             "--upstream", env.url, "--region", REGION, "--service", service,
             "--key", "%s:%s" % (AKID, SECRET), "--ttl", str(ttl)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError("aws_stub did not start")
        self.proxy = "http://127.0.0.1:%s" % line[1]
        self.creds = "http://127.0.0.1:%s" % line[2]

    def stats(self):
        with urllib.request.urlopen(self.creds + "/_stub/stats", timeout=10) as r:
            return json.loads(r.read())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def clean_env(env):
    """No AWS_* of the machine's own, no ~/.aws, no instance metadata."""
    for k in list(env.env):
        if k.startswith("AWS_"):
            del env.env[k]
    env.env["HOME"] = env.tmp
    env.env["AWS_EC2_METADATA_DISABLED"] = "true"


def signed(stub, service="es", **extra):
    s = {"OPENSEARCH_URL": stub.proxy, "OPENSEARCH_AWS_REGION": REGION,
         "OPENSEARCH_AWS_SERVICE": service}
    s.update(extra)
    return s


def seed(env, count=200, skip=10):
    env.create_index()
    env.fixture("load", "--count", count)
    env.fixture("sync", "--skip-every", skip)


def no_secret_anywhere(env, r, *secrets):
    logs = ""
    for root, _, files in os.walk(os.path.join(env.tmp, "logs")):
        for f in files:
            with open(os.path.join(root, f), errors="replace") as fh:
                logs += fh.read()
    text = r.stdout + r.stderr + logs
    return not any(s and s in text for s in secrets)


def env_keys(env):
    clean_env(env)
    stub = Stub(env)
    try:
        seed(env)
        keys = {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}
        r = env.run("check", **signed(stub, **keys))
        run = env.last_run()
        check(r.returncode == 0 and run["status"] == "completed" and run["missing_count"] == 20
              and run["repaired_count"] == 20,
              "env keys: a signed check repairs (%d, %s, %s)" % (r.returncode, run, r.stderr[-400:]))
        r = env.run("check", "--full", **signed(stub, **keys))
        run = env.last_run()
        check(r.returncode == 0 and run["status"] == "completed" and run["failed_count"] == 0,
              "env keys: a signed full re-index (%d, %s)" % (r.returncode, r.stderr[-400:]))
        check(no_secret_anywhere(env, r, SECRET), "the secret is in no output or log")
        svc = Service(env, **signed(stub, **keys))
        try:
            st, body, _ = svc.http("GET", "/api/health")
            check(st == 200 and body["opensearch"]["ok"],
                  "env keys: /api/health is ok through the signing proxy: %s" % body)
        finally:
            svc.stop()
        s = stub.stats()
        check(s["verified"] > 10 and s["refused"] == 0,
              "the proxy verified every request (%d) and refused none (%s)"
              % (s["verified"], s["reasons"][:5]))
        check(any("_bulk" in p for p in s["paths"]) and any("_search" in p for p in s["paths"])
              and any("_refresh" in p for p in s["paths"]),
              "_bulk, _search and _refresh went signed: %s" % sorted(set(s["paths"]))[:20])
    finally:
        stub.close()


def wrong_secret(env):
    clean_env(env)
    stub = Stub(env)
    try:
        seed(env, 50, 10)
        r = env.run("check", **signed(stub, AWS_ACCESS_KEY_ID=AKID,
                                      AWS_SECRET_ACCESS_KEY="not-the-secret"))
        err = r.stderr
        check(r.returncode == 78, "a wrong secret fails the check as configuration (%d)"
              % r.returncode)
        check("OpenSearch: AWS authentication failed (HTTP 403)" in err
              and "signature" in err.lower(),
              "the error names OpenSearch, the 403 and AWS's reason: %r" % err[-600:])
        check(no_secret_anywhere(env, r, "not-the-secret"), "the wrong secret is not shown")
        check(stub.stats()["verified"] == 0, "nothing got through")
        svc = Service(env, **signed(stub, AWS_ACCESS_KEY_ID=AKID,
                                    AWS_SECRET_ACCESS_KEY="not-the-secret"))
        try:
            st, body, _ = svc.http("GET", "/api/health")
            check(not body["opensearch"]["ok"] and "AWS authentication failed"
                  in json.dumps(body["opensearch"]),
                  "wrong secret: /api/health says OpenSearch refused it: %s" % body)
        finally:
            svc.stop()
    finally:
        stub.close()


def basic_auth_refused(env):
    clean_env(env)
    r = env.run("check", OPENSEARCH_AWS_REGION=REGION, OPENSEARCH_USERNAME="admin",
                OPENSEARCH_PASSWORD="pw")
    check(r.returncode == 78 and "OPENSEARCH_AWS_REGION" in r.stderr
          and "OPENSEARCH_USERNAME" in r.stderr,
          "AWS signing with basic auth is refused at load (%d: %s)" % (r.returncode, r.stderr))
    r = env.run("check", OPENSEARCH_AWS_REGION=REGION, OPENSEARCH_AWS_SERVICE="lambda")
    check(r.returncode == 78 and "OPENSEARCH_AWS_SERVICE" in r.stderr,
          "an unknown service is refused (%d: %s)" % (r.returncode, r.stderr))
    r = env.run("check", OPENSEARCH_AWS_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")
    check(r.returncode != 0 and "no AWS credentials" in r.stderr,
          "no credentials anywhere: said (%d: %s)" % (r.returncode, r.stderr[-400:]))


def shared_file(env):
    clean_env(env)
    stub = Stub(env)
    try:
        seed(env, 50, 10)
        path = write(env, "credentials",
                     "[default]\naws_access_key_id = AKIAWRONGDEFAULT\n"
                     "aws_secret_access_key = wrong\n\n"
                     "[mirror]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                     % (AKID, SECRET))
        r = env.run("check", **signed(stub, AWS_SHARED_CREDENTIALS_FILE=path,
                                      AWS_PROFILE="mirror"))
        check(r.returncode == 0 and env.last_run()["repaired_count"] == 5,
              "shared credentials file, profile mirror (%d: %s)" % (r.returncode, r.stderr[-400:]))
        check("shared files" in r.stderr, "the log names the source")
        cfg = write(env, "config", "[profile other]\naws_access_key_id = %s\n"
                    "aws_secret_access_key = %s\n" % (AKID, SECRET))
        r = env.run("check", **signed(stub, AWS_CONFIG_FILE=cfg, AWS_PROFILE="other",
                                      AWS_SHARED_CREDENTIALS_FILE=os.path.join(env.tmp, "none")))
        check(r.returncode == 0, "config file, [profile other] (%d: %s)"
              % (r.returncode, r.stderr[-400:]))
    finally:
        stub.close()


def web_identity(env):
    clean_env(env)
    stub = Stub(env)
    try:
        seed(env, 50, 10)
        tok = write(env, "token", "web-identity-token\n")
        r = env.run("check", **signed(stub, AWS_WEB_IDENTITY_TOKEN_FILE=tok,
                                      AWS_ROLE_ARN="arn:aws:iam::123456789012:role/reconciler",
                                      AWS_ENDPOINT_URL_STS=stub.creds + "/sts"))
        check(r.returncode == 0 and env.last_run()["repaired_count"] == 5,
              "web identity via STS (%d: %s)" % (r.returncode, r.stderr[-400:]))
        check(stub.stats()["fetches"]["sts"] >= 1, "STS was asked")
        bad = write(env, "token2", "someone-else\n")
        r = env.run("check", **signed(stub, AWS_WEB_IDENTITY_TOKEN_FILE=bad,
                                      AWS_ROLE_ARN="arn:aws:iam::123456789012:role/reconciler",
                                      AWS_ENDPOINT_URL_STS=stub.creds + "/sts"))
        check(r.returncode != 0 and "web identity" in r.stderr and "STS answered 403" in r.stderr,
              "a refused web identity names the source: %r" % r.stderr[-400:])
    finally:
        stub.close()


def ecs(env):
    clean_env(env)
    stub = Stub(env)
    try:
        seed(env, 50, 10)
        r = env.run("check", **signed(stub, AWS_CONTAINER_CREDENTIALS_FULL_URI=stub.creds + "/ecs",
                                      AWS_CONTAINER_AUTHORIZATION_TOKEN="ecs-auth-token"))
        check(r.returncode == 0 and env.last_run()["repaired_count"] == 5,
              "ECS container credentials (%d: %s)" % (r.returncode, r.stderr[-400:]))
        check(stub.stats()["fetches"]["ecs"] >= 1, "the ECS endpoint was asked")
    finally:
        stub.close()


def imds(env):
    clean_env(env)
    del env.env["AWS_EC2_METADATA_DISABLED"]
    stub = Stub(env)
    try:
        seed(env, 50, 10)
        r = env.run("check", **signed(stub, AWS_EC2_METADATA_SERVICE_ENDPOINT=stub.creds + "/"))
        check(r.returncode == 0 and env.last_run()["repaired_count"] == 5,
              "EC2 instance metadata, IMDSv2 (%d: %s)" % (r.returncode, r.stderr[-400:]))
        check(stub.stats()["fetches"]["imds"] >= 1, "IMDS was asked, with its token")
    finally:
        stub.close()


def refresh_mid_run(env):
    """Keys that live 6 s (the proxy refuses them after), a run of ~10 s with
    two senders: the chain fetches again halfway, no request is refused."""
    clean_env(env)
    stub = Stub(env, ttl=6)
    try:
        seed(env, 400, 2)
        r = env.run("check", **signed(stub, AWS_CONTAINER_CREDENTIALS_FULL_URI=stub.creds + "/ecs",
                                      AWS_CONTAINER_AUTHORIZATION_TOKEN="ecs-auth-token",
                                      SYNC_BATCH_SIZE=10, SYNC_BATCH_DELAY_MS=500,
                                      SYNC_CONCURRENCY=2))
        run = env.last_run()
        s = stub.stats()
        check(r.returncode == 0 and run["repaired_count"] == 200 and run["failed_count"] == 0,
              "a run across the expiry completes (%d, %s, %s)" % (r.returncode, run, r.stderr[-400:]))
        check(s["fetches"]["ecs"] >= 2, "the credentials were fetched again mid-run: %s"
              % s["fetches"])
        check(s["refused"] == 0, "no request was refused (%s)" % s["reasons"][:5])
    finally:
        stub.close()


def serverless(env):
    clean_env(env)
    stub = Stub(env, service="aoss")
    try:
        seed(env)
        keys = {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}
        r = env.run("check", **signed(stub, "aoss", **keys))
        check(r.returncode == 0 and env.last_run()["repaired_count"] == 20,
              "aoss: a signed check (%d: %s)" % (r.returncode, r.stderr[-400:]))
        r = env.run("check", "--full", **signed(stub, "aoss", **keys))
        check(r.returncode == 0, "aoss: a full re-index (%d: %s)" % (r.returncode, r.stderr[-400:]))
        s = stub.stats()
        check(s["refused"] == 0 and not any("_refresh" in p for p in s["paths"]),
              "aoss: no _refresh was sent, nothing refused (%s)" % s["reasons"][:5])
    finally:
        stub.close()


if __name__ == "__main__":
    only = sys.argv[1:]
    scenarios = [env_keys, wrong_secret, basic_auth_refused, shared_file, web_identity, ecs, imds,
                 refresh_mid_run, serverless]
    run_all([s for s in scenarios if not only or s.__name__ in only], prefix="aws_")
