"""The dashboard page in a real browser: Debian's headless Chromium driven by
Selenium (PyPI, in build/ui-venv; Selenium never downloads a browser or a
driver here: both are Debian's), against `reconciler serve` on the real
servers.

The page loads with no console error and makes no request outside the
service's own origin (every request the browser makes is recorded); the
chart has one point per run; starting a check from the page shows its live
progress, then the new run in the history; with API_TOKEN set the buttons
need the token (a missing or wrong one shows the 401 as a message); an id
and an error message holding HTML render as text. With two mirrors, one running:
the page says which mirror runs whichever it shows, #mirror=NAME opens it
(reload, back, forward), and orphans kept by RECONCILE_ORPHANS=report are
said so. Screenshots go to
build/test-output/dashboard/. No browser: the test fails, it never skips."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from harness import BIN, check, done, Env
from service import Service

BUILD = os.path.dirname(os.path.abspath(BIN))
VENV = os.path.join(BUILD, "ui-venv")
SELENIUM = "selenium==4.51.0"
OUT = os.path.join(BUILD, "test-output", "dashboard")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "dash-token-7f3a9c"
XSS = "<img src=x onerror=alert(1)>"
XSS_PRICE = "<script>alert(2)</script>"


def in_venv():
    """Runs this file again with the venv's Python (made by tools/setup; made
    here when missing, from PyPI)."""
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    ok = os.path.exists(py) and subprocess.run([py, "-c", "import selenium"]).returncode == 0
    if not ok:
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        r = subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q",
                            "--disable-pip-version-check", SELENIUM])
        if r.returncode != 0:
            raise SystemExit("FAIL: cannot install %s into %s" % (SELENIUM, VENV))
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


in_venv()
for exe in (CHROMIUM, CHROMEDRIVER):
    if not os.access(exe, os.X_OK):
        # loud, never a skip: tools/setup installs chromium and chromium-driver
        print("FAIL: %s is not installed (apt-get install chromium chromium-driver)" % exe)
        print("0 passed, 1 failed")
        sys.exit(1)

os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (NoAlertPresentException,  # noqa: E402
                                        StaleElementReferenceException, TimeoutException)
from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1400,2200"):
        o.add_argument(a)
    o.add_argument("--user-data-dir=" + tempfile.mkdtemp(prefix="dashboard-chromium-"))
    o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=o)


class Page:
    """The browser on the page, with every request and console line kept."""

    def __init__(self, base):
        self.base = base
        self.d = browser()
        self.requests = []
        self.console = []
        # what the browser loads at start (its own new-tab page) is not the
        # page's: dropped before the page is opened
        self.d.get("about:blank")
        self.d.get_log("performance")
        self.d.get_log("browser")

    def drain(self):
        for e in self.d.get_log("performance"):
            msg = json.loads(e["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                self.requests.append(msg["params"]["request"]["url"])
        lines = [e for e in self.d.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        self.console.extend(lines)
        return lines

    def wait(self, what, cond, timeout=30):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.2).until(lambda d: cond())
        except TimeoutException:
            check(False, "timed out waiting: " + what)
            return None

    def q(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def js(self, script, *args):
        """Reads the DOM in one step: the page re-renders as it polls."""
        return self.d.execute_script(script, *args)

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]);"
                       "return e ? e.innerText : '';", css)

    def texts(self, css):
        return self.js("return Array.from(document.querySelectorAll(arguments[0]),"
                       " e => e.innerText);", css)

    def attrs(self, css, name):
        return self.js("return Array.from(document.querySelectorAll(arguments[0]),"
                       " e => e.getAttribute(arguments[1]));", css, name)

    def click(self, css):
        for _ in range(20):
            try:
                self.d.find_element(By.CSS_SELECTOR, css).click()
                return
            except StaleElementReferenceException:
                time.sleep(0.1)
        check(False, "cannot click " + css)

    def shot(self, name):
        path = os.path.join(OUT, name + ".png")
        self.d.save_screenshot(path)
        return path

    def set_token(self, value, keep=False):
        box = self.d.find_element(By.ID, "token-input")
        box.clear()
        box.send_keys(value)
        if keep != self.d.find_element(By.ID, "token-keep").is_selected():
            self.d.find_element(By.ID, "token-keep").click()
        self.d.find_element(By.ID, "token-use").click()

    def message(self):
        return self.js("const m = document.getElementById('message');"
                       "return m.hidden ? '' : m.innerText;")

    def no_alert(self):
        try:
            self.d.switch_to.alert.dismiss()
            return False
        except NoAlertPresentException:
            return True

    def history_ids(self):
        return [int(i) for i in self.attrs("#history tbody tr[data-run-id]", "data-run-id")]

    def history_status(self, run_id):
        return self.text('#history tbody tr[data-run-id="%d"] .st' % run_id) or None

    def chart_ids(self):
        return [int(i) for i in self.attrs("#chart-drift g.pt", "data-run-id")]


def headers(svc):
    """The page's answers: CSP, nosniff, content negotiation on /."""
    def get(path, accept=None):
        req = urllib.request.Request(svc.base + path, headers={"Accept": accept} if accept else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    st, h, body = get("/ui")
    csp = h.get("Content-Security-Policy", "")
    check(st == 200 and h.get("Content-Type", "").startswith("text/html") and b"/ui/app.js" in body,
          "GET /ui is the page")
    check("default-src 'self'" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp,
          "the page's CSP is strict: %s" % csp)
    check(h.get("X-Content-Type-Options") == "nosniff", "the page says nosniff")
    for asset, ctype in (("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css"),
                         ("/ui/icon.svg", "image/svg+xml")):
        st, h, body = get(asset)
        check(st == 200 and h.get("Content-Type", "").startswith(ctype) and len(body) > 100 and
              "default-src 'self'" in h.get("Content-Security-Policy", "") and
              h.get("X-Content-Type-Options") == "nosniff", "GET %s: %s, CSP, nosniff" % (asset, ctype))
    st, h, body = get("/ui/nothing.js")
    check(st == 404 and json.loads(body)["success"] is False, "an unknown file: 404 JSON")
    browser_accept = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
                      "*/*;q=0.8")
    st, h, body = get("/", browser_accept)
    check(st == 200 and h.get("Content-Type", "").startswith("text/html") and
          "default-src 'self'" in h.get("Content-Security-Policy", "") and h.get("Vary") == "Accept",
          "GET / for a browser: the page (Vary: Accept)")
    for accept in (None, "*/*", "application/json"):
        st, h, body = get("/", accept)
        check(st == 200 and h.get("Content-Type") == "application/json" and
              json.loads(body)["service"] == "reconciler" and h.get("Vary") == "Accept",
              "GET / with Accept %r: JSON as before" % accept)
    eps = json.loads(get("/")[2])["endpoints"]
    check({"/ui", "/ui/{id}"} <= {e["path"] for e in eps}, "GET / lists /ui")
    st, body, _ = svc.http("POST", "/ui")
    check(st == 405, "POST /ui: 405")


def wait_runs(svc, n):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st, body, _ = svc.http("GET", "/api/mirrors/default")
        if st == 200 and body["mirror"]["currentRun"] is None and not body["mirror"]["queued"]:
            st, body, _ = svc.http("GET", "/api/reconciliation/runs?limit=100")
            if len(body["runs"]) >= n:
                return body["runs"]
        time.sleep(0.3)
    raise RuntimeError("runs did not finish")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".png"):
            os.unlink(os.path.join(OUT, f))
    env = Env("dashboard")
    env.create_index({"price": {"type": "integer"}})
    env.fixture("load", "--count", 300)
    env.fixture("sync")
    # an id, and a value OpenSearch refuses (its error message quotes it), holding HTML
    env.mongo({"insert": "ads", "documents": [
        {"_id": XSS, "price": XSS_PRICE, "updatedAt": {"$date": "2024-01-01T00:00:00Z"}}]})
    auth = {"Authorization": "Bearer " + TOKEN}
    svc = Service(env, API_TOKEN=TOKEN, API_TOKEN_READ="false", SYNC_BATCH_SIZE=5,
                  SYNC_BATCH_DELAY_MS=150)
    page = None
    try:
        headers(svc)
        # three runs before the page: a dry run, a check (the price is
        # refused: an error row), another dry run
        for body in ({"dryRun": True}, {}, {"dryRun": True}):
            st, res, _ = svc.http("POST", "/api/mirrors/default/check", body, headers=auth)
            check(st in (200, 500), "run %s through the API: %s" % (body, st))
        runs = wait_runs(svc, 3)
        check(len(runs) == 3, "three runs before the page")

        page = Page(svc.base)
        page.d.get(svc.base + "/")
        page.wait("the mirror card", lambda: page.q('.card[data-mirror="default"]'))
        page.wait("the chart", lambda: len(page.chart_ids()) == 3)
        page.wait("the history", lambda: len(page.history_ids()) == 3)
        time.sleep(1.5)  # a poll or two more
        lines = page.drain()
        check(lines == [], "the page loads with no console error or warning: %s" % lines)
        check(page.d.title == "reconciler", "the page's title")
        page.shot("01-loaded")

        # one point per run, in run order; one duration bar per run
        check(page.chart_ids() == sorted(r["id"] for r in runs),
              "the drift chart has one point per run: %s" % page.chart_ids())
        check(len(page.q("#chart-duration rect.bar")) == 3, "one duration bar per run")
        check(len(page.q("#chart-drift circle.s-missing")) == 3 and
              page.q("#chart-legend .s-missing"), "the missing series: a point per run, in the legend")
        card = page.text('.card[data-mirror="default"]')
        check("last run #3" in card and "dry run" in card and "drift" in card,
              "the card shows the last run and that the mirror drifts: %r" % card)
        check("live sync" not in card, "no live sync line without live sync: %r" % card)
        # live sync started on FerretDB (no change streams): failed, in one line
        st, res, _ = svc.http("POST", "/api/mirrors/default/stream/start", headers=auth)
        check(st == 422 and "change stream" in res.get("error", ""),
              "the stream cannot start through the API: 422 saying why: %s %r" % (st, res))
        page.wait("the card's live sync line", lambda: "live sync failed" in page.text(
            '.card[data-mirror="default"] .card-stream.bad'))
        check("0 gaps" in page.text('.card[data-mirror="default"] .card-stream'),
              "the line says the gaps")

        # the report of the check: the HTML id and the error message are text
        page.click('#history tbody tr[data-run-id="2"]')
        page.wait("the report", lambda: page.q("#drift-sample") and page.q("#report-status"))
        sample = page.texts("#drift-sample td.id, #drift-sample td a.id")
        check(XSS in sample, "the id holding HTML shows as text in the drift sample: %s" % sample)
        errs = " ".join(page.texts("#report .error-text"))
        check(XSS in page.text("#report") and "price" in errs,
              "the error row shows (id and message as text): %r" % errs[:300])
        check(page.q("#report img") == [] and page.q("img") == [] and page.q("#report script") == [],
              "no element was made from journal data")
        time.sleep(0.5)
        check(page.no_alert(), "no script ran from journal data")
        lines = page.drain()
        check(lines == [], "no console error (no CSP violation) showing the report: %s" % lines)
        # QA10 F13: the page looked for .../docs/{id}/diff, the service lists {doc}
        links = page.js("return Array.from(document.querySelectorAll('#drift-sample a'))"
                        ".map(a => [a.textContent, a.getAttribute('href')])")
        import urllib.parse
        # encodeURIComponent's unreserved set: alphanumerics and -_.!~*'()
        check(links and all(h == "/api/mirrors/default/docs/%s/diff"
                            % urllib.parse.quote(t, safe="!*'()") for t, h in links),
              "drifted ids link to their document diff, percent-encoded: %s" % links[:3])
        page.shot("02-report-xss")

        # filters
        Select(page.d.find_element(By.ID, "filter-kind")).select_by_value("dry_run")
        page.wait("kind filter", lambda: page.history_ids() == [3, 1])
        Select(page.d.find_element(By.ID, "filter-kind")).select_by_value("")
        Select(page.d.find_element(By.ID, "filter-status")).select_by_value("failed")
        page.wait("status filter", lambda: page.q("#history tbody td.muted"))
        check(page.history_ids() == [], "status filter: no failed run")
        Select(page.d.find_element(By.ID, "filter-status")).select_by_value("")
        Select(page.d.find_element(By.ID, "filter-mirror")).select_by_value("default")
        page.wait("mirror filter", lambda: len(page.history_ids()) == 3)

        # the buttons without the token, then with a wrong one: 401 as a message
        page.click("#btn-check")
        page.wait("the 401 message", lambda: "401" in page.message())
        check("enter the API token" in page.message(), "no token: %r" % page.message())
        page.set_token("wrong-token")
        page.click("#btn-dry")
        page.wait("the 401 message", lambda: "not accepted" in page.message())
        check("401" in page.message(), "a wrong token: %r" % page.message())
        page.click("#btn-full")
        page.click("#btn-full")  # confirm
        page.wait("the 401 message", lambda: "full re-index: 401" in page.message())
        time.sleep(1)
        check(wait_runs(svc, 3) and len(svc.http("GET", "/api/reconciliation/runs")[1]["runs"]) == 3,
              "no run started without the right token")
        lines = [l for l in page.drain() if "401" not in l["message"]]
        check(lines == [], "the refused buttons log nothing but the 401s: %s" % lines)
        check(page.q('.card[data-mirror="default"]') and len(page.chart_ids()) == 3,
              "the page still works after the 401s")
        page.shot("03-401")

        # the right token: a check from the page, its live progress, then the
        # run in the history. The index loses 200 documents: 40 batches of 5,
        # 150 ms apart, so the run lasts a few seconds.
        gone = sorted(env.os_docs())[:200]
        env.bulk([{"delete": {"_id": i}} for i in gone])
        check(len(env.os_docs()) == 100, "200 documents deleted from the index")
        page.set_token(TOKEN)
        check(TOKEN not in page.d.page_source, "the token is not in the page")
        check(page.d.execute_script("return window.sessionStorage.length") == 0,
              "the token is kept in memory only (not ticked: no sessionStorage)")
        page.js("window.notReloaded = true")
        page.click("#btn-check")
        page.wait("the check starts", lambda: "check: 202" in page.message())
        phase = page.wait("live progress", lambda: page.text("#progress-phase"))
        seen = set()
        figures = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = page.text("#progress-phase")
            if not now:
                break
            if not seen or now == "repairing":
                page.shot("04-progress")
            seen.add(now)
            figures.append(page.text("#progress-figures"))
            time.sleep(0.3)
        check(phase and seen & {"counting", "diffing", "repairing", "finishing"},
              "the page shows the active run's phase live: %s" % sorted(seen))
        check(page.text("#progress-run") == "" and "No run in progress" in page.text("#progress"),
              "the progress panel empties when the run ends")
        page.wait("the new run in the history", lambda: page.history_status(4) == "completed")
        page.wait("the new run in the chart", lambda: page.chart_ids() == [1, 2, 3, 4])
        check(len(set(figures)) >= 2 and page.js("return window.notReloaded === true"),
              "the figures change without a reload: %s" % [f.replace("\n", " ") for f in figures[-2:]])
        st, res, _ = svc.http("GET", "/api/reconciliation/runs/4")
        check(res["run"]["kind"] == "check" and res["run"]["trigger"] == "api" and
              res["run"]["repairedCount"] == 200, "the page's check ran and repaired: %s" %
              {k: res["run"].get(k) for k in ("kind", "trigger", "repairedCount", "status")})
        page.shot("05-after-check")

        # a full re-index from the page, cancelled from the page
        page.click("#btn-full")
        page.click("#btn-full")
        page.wait("the full run starts", lambda: page.text("#progress-phase"))
        page.wait("cancel enabled", lambda: page.js("return !document.getElementById('btn-cancel').disabled"))
        page.click("#btn-cancel")
        page.wait("the cancelled run in the history", lambda: page.history_status(5) == "cancelled", 60)
        # the chart and the history are read by two requests of one poll: the run may end between
        # them, and the next poll (the mirror's signature changed again) redraws the chart
        page.wait("five runs, five points", lambda: page.chart_ids() == [1, 2, 3, 4, 5])
        check(page.chart_ids() == [1, 2, 3, 4, 5], "five runs, five points: %s" % page.chart_ids())
        lines = page.drain()
        check(lines == [], "no console error through the runs: %s" % lines)
        page.shot("06-cancelled")

        foreign = [u for u in page.requests if not u.startswith(svc.base + "/")]
        check(page.requests and foreign == [],
              "every request is to the service's origin (%d requests; others: %s)" %
              (len(page.requests), foreign[:5]))
        page.d.quit()
        page = None
        check(svc.stop() == 0, "serve exits 0")

        # API_TOKEN_READ=true: the page loads without the token, asks for it
        svc = Service(env, API_TOKEN=TOKEN, API_TOKEN_READ="true")
        st, _, _ = svc.http("GET", "/api/mirrors")
        check(st == 401, "reads need the token")
        st, _, h = svc.http("GET", "/ui")
        check(st == 200, "the page itself does not")
        page = Page(svc.base)
        page.d.get(svc.base + "/ui")
        page.wait("the read-token message", lambda: "needs the API token to read" in page.message())
        page.set_token(TOKEN, keep=True)
        page.wait("the mirrors with the token", lambda: len(page.chart_ids()) == 5)
        check(page.d.execute_script("return window.sessionStorage.length") == 1,
              "keep for this tab: sessionStorage")
        check(TOKEN not in page.d.page_source, "the token is not in the page")
        page.d.refresh()
        page.wait("the kept token still reads", lambda: len(page.history_ids()) == 5)
        page.shot("07-read-token")
        lines = [l for l in page.drain() if "401" not in l["message"]]
        check(lines == [], "read-protected: nothing but the first 401s in the console: %s" % lines)
        foreign = [u for u in page.requests if not u.startswith(svc.base + "/")]
        check(foreign == [], "read-protected: every request to the service's origin: %s" % foreign[:5])
    finally:
        if page:
            page.d.quit()
        code = svc.stop()
        check(code == 0, "serve exits 0 (%s)" % code)
        err = getattr(svc, "stderr", "") or ""
        check("ERROR: AddressSanitizer" not in err and "runtime error" not in err and
              "LeakSanitizer" not in err, "no sanitizer report")
        env.cleanup()
    print("screenshots:", OUT)


def fixture_on(env, index, *args):
    """The fixture against another index of the test's (a mirror's)."""
    saved = env.env["OPENSEARCH_INDEX"]
    env.env["OPENSEARCH_INDEX"] = index
    try:
        return env.fixture(*args)
    finally:
        env.env["OPENSEARCH_INDEX"] = saved


def mirror_shown(page):
    return page.text("#mirror-name")


def two_mirrors():
    """Issue 24 item 15: two mirrors, the second running a slow full
    re-index. The page opened without a hash shows the first mirror and that
    the second runs (its card, the running row, the first's idle panel);
    #mirror=NAME opens the page on that mirror, a click on a mirror puts it
    into the hash, and reload, back and forward keep to it. Item 6: the first
    mirror's check kept its orphans (RECONCILE_ORPHANS=report), and the page
    says so instead of only "drift"."""
    env = Env("dashmirrors")
    first, slow = env.index + "_first", env.index + "_slow"
    svc = page = None
    try:
        for ix in (first, slow):
            st, body = env.os("PUT", "/" + ix, {"mappings": {"properties": {
                "mongo_id": {"type": "keyword"}, "updatedAt": {"type": "date"}}}})
            check(st == 200, "index %s created: %s" % (ix, body))
        env.fixture("load", "--count", 600)
        for ix in (first, slow):
            fixture_on(env, ix, "sync")
        orphans = [env.fixture("idof", 90000 + i).split()[0] for i in range(3)]
        st, res = env.os("POST", "/%s/_bulk?refresh=true" % first, [
            x for i in orphans for x in ({"index": {"_id": i}}, {"mongo_id": i, "title": "gone",
                                                        "updatedAt": "2024-02-02T00:00:00Z"})],
            ndjson=True)
        check(st == 200 and not res.get("errors"), "three orphans in the first mirror's index")
        cfg = os.path.join(env.tmp, "mirrors.yaml")
        with open(cfg, "w") as f:
            f.write("mirrors:\n"
                    "  - name: first\n    mongodb_collection: ads\n    opensearch_index: %s\n"
                    "  - name: slow\n    mongodb_collection: ads\n    opensearch_index: %s\n"
                    "    sync_batch_size: 5\n    sync_batch_delay_ms: 300\n" % (first, slow))
        env.env["RECONCILER_CONFIG"] = cfg
        svc = Service(env)
        st, res, _ = svc.http("POST", "/api/mirrors/first/check", {})
        check(st == 200 and res.get("orphanCount") == 3,
              "the first mirror's check: %s" % {k: res.get(k) for k in ("runId", "inSync", "message")})
        st, run, _ = svc.http("GET", "/api/mirrors/first/runs/%s" % res.get("runId"))
        check(run["run"]["orphanCount"] == 3 and run["run"]["deletedCount"] == 0,
              "it found 3 orphans and kept them (RECONCILE_ORPHANS=report)")
        # the second mirror: a full re-index of 600 documents, 5 a batch, 300 ms apart (> 30 s)
        st, res, _ = svc.http("POST", "/api/mirrors/slow/full", {"wait": False})
        check(st == 202, "the slow mirror's full re-index starts: %s" % st)
        slow_run = res.get("runId")

        def slow_running():
            m = svc.http("GET", "/api/mirrors/slow")[1]["mirror"]
            return m["currentRun"] and m["currentRun"]["phase"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not slow_running():
            time.sleep(0.2)
        check(slow_running(), "the slow mirror runs")

        page = Page(svc.base)
        page.d.get(svc.base + "/")
        page.wait("the mirror cards", lambda: len(page.q(".card[data-mirror]")) == 2)
        page.wait("the first mirror shown", lambda: mirror_shown(page) == "first")
        check(page.js("return location.hash") == "", "no hash: the first mirror, the URL as typed")
        page.wait("the running row names the slow mirror",
                  lambda: "slow" in page.text("#running") and page.q('#running a[href="#mirror=slow"]'))
        running = page.text("#running")
        check("first" not in running and ("full" in running or "re-index" in running),
              "the running row: the slow mirror's run only: %r" % running)
        card = page.text('.card[data-mirror="slow"]')
        check("running" in card and "#%s" % slow_run in card,
              "the slow mirror's card: running, its run: %r" % card)
        page.wait("the slow card's phase", lambda: page.q('.card[data-mirror="slow"] progress'))
        idle = page.text("#progress")
        check("No run in progress on first" in idle and "slow" in idle and
              page.q('#progress a[href="#mirror=slow"]'),
              "the first mirror's idle panel says the slow mirror runs: %r" % idle)
        check(page.attrs('.card[data-mirror="slow"]', "href") == ["#mirror=slow"],
              "each mirror's card links to #mirror=NAME")
        badge = page.text('.card[data-mirror="first"] .badge')
        page.wait("the kept orphans on the first card",
                  lambda: page.text('.card[data-mirror="first"] .badge') ==
                  "3 orphans not deleted: RECONCILE_ORPHANS=report")
        check(page.text("#mirror-sync") == "3 orphans not deleted: RECONCILE_ORPHANS=report",
              "the first mirror's badge: orphans kept by the policy: %r (card %r)" %
              (page.text("#mirror-sync"), badge))
        page.shot("08-mirrors-running")

        # a click on the slow mirror: the hash names it, its progress shows
        page.js("window.notReloaded = true")
        page.click('.card[data-mirror="slow"]')
        page.wait("the slow mirror shown", lambda: mirror_shown(page) == "slow")
        check(page.js("return location.hash") == "#mirror=slow", "the hash names the mirror shown")
        page.wait("its progress", lambda: page.text("#progress-phase"))
        check(page.js("return window.notReloaded === true"), "switching mirrors does not reload")
        page.d.refresh()
        page.wait("after reload, the slow mirror", lambda: mirror_shown(page) == "slow")
        page.wait("after reload, its progress", lambda: page.text("#progress-phase"))
        page.shot("09-mirror-hash")
        page.d.back()
        page.wait("back: the first mirror", lambda: mirror_shown(page) == "first")
        check(page.js("return location.hash") == "", "back: no hash")
        page.d.forward()
        page.wait("forward: the slow mirror", lambda: mirror_shown(page) == "slow")
        # a link opened afresh
        page.d.get(svc.base + "/ui#mirror=first")
        page.wait("#mirror=first opens on it", lambda: mirror_shown(page) == "first")
        page.d.get(svc.base + "/ui#mirror=slow")
        page.wait("#mirror=slow opens on it", lambda: mirror_shown(page) == "slow" and
                  page.text("#progress-phase"))
        check(page.q('.card[data-mirror="slow"][aria-current="true"]'),
              "the slow card is marked as the one shown")
        # an unknown name: says so, shows the first
        page.d.get(svc.base + "/ui#mirror=nope")
        page.wait("an unknown mirror's message", lambda: "nope" in page.message())
        page.wait("the first mirror instead", lambda: mirror_shown(page) == "first")
        lines = [l for l in page.drain()]
        check(lines == [], "no console error across mirrors: %s" % lines)

        # the first mirror's check in its report: the kept orphans said
        page.d.get(svc.base + "/ui#mirror=first")
        page.wait("the history", lambda: page.q('#history tbody tr[data-run-id="1"]'))
        page.click('#history tbody tr[data-run-id="1"]')
        page.wait("the report says the orphans were kept",
                  lambda: "3 orphans not deleted: RECONCILE_ORPHANS=report" in page.text("#report"))
        check(slow_running(), "the slow run lasted through the page's checks")
        st, _, _ = svc.http("POST", "/api/mirrors/slow/runs/%s/cancel" % slow_run)
        check(st == 202, "the slow run cancelled: %s" % st)
        page.wait("the slow mirror's run gone from the running row",
                  lambda: "No run in progress" in page.text("#running"), 60)
        lines = page.drain()
        check(lines == [], "no console error: %s" % lines)
        foreign = [u for u in page.requests if not u.startswith(svc.base + "/")]
        check(foreign == [], "every request to the service's origin: %s" % foreign[:5])
    finally:
        if page:
            page.d.quit()
        if svc:
            code = svc.stop()
            check(code == 0, "serve exits 0 (%s)" % code)
            err = getattr(svc, "stderr", "") or ""
            check("ERROR: AddressSanitizer" not in err and "runtime error" not in err and
                  "LeakSanitizer" not in err, "no sanitizer report")
        env.cleanup()


main()
two_mirrors()
done()
