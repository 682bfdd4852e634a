"""The API fuzzed from docs/openapi.yaml by Schemathesis, against the
service built with ASan + UBSan: every response matches its declared
schema, status code and content type, no 5xx but the documented 503s, no
crash, no leak. A short pass with a fixed seed (a few thousand requests);
the long run (over 100,000 requests) is `tools/fuzz-api --max-examples
14000`, with its figures in docs/API.md."""
import json
import os
import subprocess

from harness import SRC, check, done

r = subprocess.run([os.path.join(SRC, "tools", "fuzz-api"), "--max-examples", "300",
                    "--seed", "20261129"], capture_output=True, text=True, timeout=1800)
line = [l for l in r.stdout.splitlines() if l.startswith("FUZZ ")]
figures = json.loads(line[-1][5:]) if line else {}
print(r.stdout[-3000:] if r.returncode else "\n".join(r.stdout.splitlines()[-4:]))
if r.returncode:
    print(r.stderr[-3000:])
check(r.returncode == 0 and figures.get("ok"),
      "Schemathesis finds nothing, no 5xx, no sanitizer report, exit 0 (%s)" % figures)
check(figures.get("requests", 0) >= 2000, "a few thousand requests (%s)" % figures.get("requests"))
check(figures.get("server_errors") == 0 and figures.get("sanitizer_reports") == 0,
      "0 server errors, 0 sanitizer reports")
done()
