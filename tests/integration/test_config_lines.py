"""Long configuration values (QA19 F8): a .env line of any length is read
whole (a fixed 8 KiB buffer cut one silently), and the message for a bad
long value shows the reason (the value is shown in part, the reason never
cut off)."""
import json
import os
import subprocess

from harness import BIN, check, run_all


def dotenv(env, text):
    with open(os.path.join(env.tmp, ".env"), "w") as f:
        f.write(text)
    e = dict(env.env)
    return e


def long_line(env):
    # a valid clause of ~20 KB, past the old 8192-byte buffer
    clause = json.dumps({"terms": {"tag": ["value-%05d" % i for i in range(1200)]}})
    check(len(clause) > 16000, "the clause is long (%d)" % len(clause))
    e = dotenv(env, "# a comment\nOPENSEARCH_KEEP_QUERY=%s\nSYNC_BATCH_SIZE=77\n" % clause)
    r = subprocess.run([BIN, "config", "--json"], env=e, cwd=env.tmp, capture_output=True,
                       text=True, timeout=60)
    shown = json.loads(r.stdout) if r.returncode == 0 else {}
    flat = json.dumps(shown)
    check(r.returncode == 0 and "value-01199" in flat and '"77"' in flat.replace(" ", ""),
          "a .env line of %d bytes is read whole, and the line after it too (%d %s)"
          % (len(clause), r.returncode, r.stderr[-300:]))


def long_bad_value(env):
    bad = '{"range": {"expiresAt": {"lt": "' + "x" * 9000 + '"}}'  # one brace short
    e = dotenv(env, "OPENSEARCH_KEEP_QUERY=%s\n" % bad)
    r = subprocess.run([BIN, "check", "--dry-run"], env=e, cwd=env.tmp, capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 78 and "OPENSEARCH_KEEP_QUERY" in r.stderr
          and "is invalid:" in r.stderr and "(9" in r.stderr and "bytes)" in r.stderr
          and "expected" in r.stderr,
          "a bad 9 KB value: 78, the value shown in part and the reason in full (%d %s)"
          % (r.returncode, r.stderr[-700:]))


run_all([long_line, long_bad_value], prefix="cl_")
