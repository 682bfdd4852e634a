"""Stand-ins for AWS, for tests/integration/test_aws.py (run with the venv of
tools/setup that holds botocore).

- A signing-verifying proxy in front of the test node, as Amazon OpenSearch
  Service and Serverless take requests: every request's SigV4 signature is
  computed again with botocore (an implementation independent of the
  reconciler's) and a wrong or missing one, an unknown key, a wrong session
  token, an expired key or a body whose x-amz-content-sha256 is not its
  hash is answered 403 as AWS does; a good one is forwarded to the node.
  With --service aoss, _refresh is answered 404 as Serverless has no such
  API.
- Credential endpoints on a second port: STS AssumeRoleWithWebIdentity
  (POST /sts), ECS container credentials (GET /ecs, wants the
  Authorization token), EC2 instance metadata (IMDSv2: PUT
  /latest/api/token first; the credentials only with that token). Each
  fetch issues a new temporary key valid for --ttl seconds.
- GET /_stub/stats on the second port: how many fetches each endpoint
  served, how many requests the proxy verified and refused (and why).

Prints "ready PROXY_PORT CREDS_PORT" when both listen.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LOCK = threading.Lock()
KEYS = {}  # akid -> (secret, token or None, expires epoch or None)
STATS = {"verified": 0, "refused": 0, "reasons": [], "fetches": {"sts": 0, "ecs": 0, "imds": 0},
         "paths": []}
ARGS = None


def issue(kind):
    akid = "ASIATEST%s" % secrets.token_hex(6).upper()
    secret = secrets.token_urlsafe(30)
    token = "tok-" + secrets.token_urlsafe(60)
    expires = time.time() + ARGS.ttl
    with LOCK:
        KEYS[akid] = (secret, token, expires)
        STATS["fetches"][kind] += 1
    iso = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    return akid, secret, token, iso


def refuse(h, why, message):
    with LOCK:
        STATS["refused"] += 1
        STATS["reasons"].append(why)
    body = json.dumps({"message": message}).encode()
    h.send_response(403)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def parse_auth(value):
    if not value or not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    out = {}
    for part in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = part.strip().partition("=")
        out[k] = v
    return out


def verify(h, body):
    """None when the request is signed right, else (why, AWS's message)."""
    auth = parse_auth(h.headers.get("Authorization"))
    if auth is None or not {"Credential", "SignedHeaders", "Signature"} <= set(auth):
        return "unsigned", "Missing Authentication Token"
    akid, date, region, service, term = (auth["Credential"].split("/") + [""] * 5)[:5]
    with LOCK:
        key = KEYS.get(akid)
    if key is None:
        return "unknown key", "The security token included in the request is invalid."
    secret, token, expires = key
    if expires is not None and time.time() > expires:
        return "expired", "The security token included in the request is expired"
    if (region, service, term) != (ARGS.region, ARGS.service, "aws4_request"):
        return "scope", "Credential should be scoped to a valid region and service"
    if token is not None and h.headers.get("x-amz-security-token") != token:
        return "token", "The security token included in the request is invalid."
    if hashlib.sha256(body).hexdigest() != h.headers.get("x-amz-content-sha256"):
        return "payload hash", "The provided 'x-amz-content-sha256' header does not match"
    amz_date = h.headers.get("x-amz-date", "")
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return "date", "Missing x-amz-date"
    if abs(time.time() - t) > 300:
        return "skew", "Signature expired"
    names = auth["SignedHeaders"].split(";")
    if "host" not in names or "x-amz-date" not in names:
        return "signed headers", "host and x-amz-date must be signed"
    headers = {n: h.headers.get(n, "") for n in names}
    req = AWSRequest(method=h.command, url="http://%s%s" % (headers["host"], h.path),
                     headers=headers, data=body)
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(akid, secret, token), service, region)
    want = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    if want != auth["Signature"]:
        return "signature", ("The request signature we calculated does not match the signature "
                             "you provided. Check your AWS Secret Access Key and signing method.")
    return None


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        bad = verify(self, body)
        if bad:
            return refuse(self, *bad)
        with LOCK:
            STATS["verified"] += 1
            STATS["paths"].append(self.path.split("?")[0])
        if ARGS.service == "aoss" and "/_refresh" in self.path:
            msg = json.dumps({"error": "no handler found for uri [%s]" % self.path}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            return self.wfile.write(msg)
        up = urllib.parse.urlsplit(ARGS.upstream)
        c = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        fwd = {k: v for k, v in self.headers.items()
               if k.lower() not in ("authorization", "host", "accept-encoding", "connection")
               and not k.lower().startswith("x-amz-")}
        c.request(self.command, self.path, body=body if n else None, headers=fwd)
        r = c.getresponse()
        data = r.read()
        c.close()
        self.send_response(r.status)
        self.send_header("Content-Type", r.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


class Creds(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, text, ctype="application/json"):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def creds_json(self, kind):
        akid, secret, token, iso = issue(kind)
        return json.dumps({"Code": "Success", "AccessKeyId": akid, "SecretAccessKey": secret,
                           "Token": token, "Expiration": iso})

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get(
                "X-aws-ec2-metadata-token-ttl-seconds"):
            return self.answer(200, ARGS.imds_token, "text/plain")
        self.answer(400, "bad token request", "text/plain")

    def do_GET(self):
        if self.path == "/_stub/stats":
            with LOCK:
                return self.answer(200, json.dumps(STATS))
        if self.path == "/ecs":
            if self.headers.get("Authorization") != ARGS.ecs_auth:
                return self.answer(401, '{"message": "unauthorized"}')
            return self.answer(200, self.creds_json("ecs"))
        if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != ARGS.imds_token:
                return self.answer(401, "", "text/plain")  # IMDSv2 only
            role = self.path.rsplit("/", 1)[1]
            if role == "":
                return self.answer(200, "test-role", "text/plain")
            if role != "test-role":
                return self.answer(404, "", "text/plain")
            return self.answer(200, self.creds_json("imds"))
        self.answer(404, "", "text/plain")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if self.path != "/sts" or form.get("Action") != ["AssumeRoleWithWebIdentity"]:
            return self.answer(400, "<ErrorResponse/>", "text/xml")
        if form.get("WebIdentityToken") != [ARGS.web_token] or form.get("RoleArn") != [ARGS.role]:
            return self.answer(403, "<ErrorResponse><Error><Code>AccessDenied</Code><Message>"
                               "Not authorized to perform sts:AssumeRoleWithWebIdentity"
                               "</Message></Error></ErrorResponse>", "text/xml")
        akid, secret, token, iso = issue("sts")
        self.answer(200, (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
            "<SessionToken>%s</SessionToken><Expiration>%s</Expiration>"
            "</Credentials></AssumeRoleWithWebIdentityResult>"
            "</AssumeRoleWithWebIdentityResponse>") % (akid, secret, token, iso), "text/xml")


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--region", default="us-test-1")
    p.add_argument("--service", default="es")
    p.add_argument("--key", action="append", default=[], help="AKID:SECRET, a static key")
    p.add_argument("--ttl", type=float, default=3600)
    p.add_argument("--web-token", default="web-identity-token")
    p.add_argument("--role", default="arn:aws:iam::123456789012:role/reconciler")
    p.add_argument("--ecs-auth", default="ecs-auth-token")
    p.add_argument("--imds-token", default="imds-session-token")
    ARGS = p.parse_args()
    for k in ARGS.key:
        akid, secret = k.split(":", 1)
        KEYS[akid] = (secret, None, None)
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    creds = ThreadingHTTPServer(("127.0.0.1", 0), Creds)
    for s in (proxy, creds):
        s.daemon_threads = True
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready %d %d" % (proxy.server_address[1], creds.server_address[1]), flush=True)
    sys.stdin.read()  # runs until the test closes its stdin


if __name__ == "__main__":
    main()
