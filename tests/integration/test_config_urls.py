"""URIs and URLs are parsed by the libraries that will use them when the
configuration is read: a bad one stops every command with exit 78, the
message names the variable and hides the password, and nothing is written
(no journal, no log files, no run)."""
import os

from harness import Env, check, done

env = Env("configurls")
try:
    journal = env.env["STATE_DB"]
    logs = env.env["LOG_DIR"]
    cases = [
        # (variable, value, what the message must contain)
        ("MONGODB_URI", "mongodb://u:p@@@", "Invalid username or password"),
        ("MONGODB_URI", "mongodb://app:Secr3tPw@db.example:99999/", "Port could not be parsed"),
        ("MONGODB_URI", "mongodb://app:Secr3t@Pw@/", "%40"),
        ("MONGODB_URI", "mongodb://db/?replicaSet=", "replicaset"),
        ("OPENSEARCH_URL", "http://admin:Secr3tPw@[::1", "libcurl"),
        ("OPENSEARCH_URL", "https://admin:Secr3tPw@search:99999", "Port number"),
        ("OPENSEARCH_URL", "http://search:9200/?pretty", "no query or fragment"),
        ("OPENSEARCH_URL", "http://search:9200/myindex", "name the index in OPENSEARCH_INDEX"),
    ]
    for command in (["check"], ["check", "--dry-run"], ["serve"], ["resume"], ["doctor"]):
        for name, value, reason in cases:
            r = env.run(*command, timeout=60, **{name: value})
            what = "%s with %s=%s" % (" ".join(command), name, value)
            check(r.returncode == 78, "%s exits 78 (%d: %s)" % (what, r.returncode, r.stderr[-300:]))
            check(name in r.stderr and reason in r.stderr,
                  "%s: the message names the variable and the reason: %r" % (what, r.stderr))
            check("Secr3t" not in r.stderr + r.stdout and "Pw@" not in r.stderr,
                  "%s: the password is masked: %r" % (what, r.stderr))
            check("***" in r.stderr or "Secr3t" not in value,
                  "%s: the masked value is shown" % what)
    check(not os.path.exists(journal) and not os.path.exists(os.path.dirname(journal) + "/journal.db-wal"),
          "no journal was created by any of them")
    check(not os.path.exists(logs), "no log files were created")

    # the same from .env, where people usually put it
    with open(os.path.join(env.tmp, ".env"), "w") as f:
        f.write("MONGODB_URI=mongodb://u:Secr3tPw@@@\n")
    e = dict(env.env)
    del e["MONGODB_URI"]
    import subprocess
    from harness import BIN
    r = subprocess.run([BIN, "check"], env=e, cwd=env.tmp, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 78 and "MONGODB_URI" in r.stderr and "Secr3t" not in r.stderr,
          "a bad URI in .env: exit 78, masked: %r" % r.stderr)
    check(not os.path.exists(journal), "still no journal")
    os.unlink(os.path.join(env.tmp, ".env"))

    # good URIs (options, several hosts, srv) still pass, and a run is written
    r = env.run("config", MONGODB_URI="mongodb://a:b@h1:1,h2:2/db?replicaSet=rs0&authSource=admin")
    check(r.returncode == 0, "a URI with several hosts and options is accepted: %r" % r.stderr)
    r = env.run("config", MONGODB_URI="mongodb+srv://a:b@cluster0.example.com/")
    check(r.returncode == 0, "an srv URI is accepted without a DNS lookup: %r" % r.stderr)
    env.mongo({"create": "ads"})  # a collection that is not there is refused
    r = env.run("check", "--dry-run")
    check(r.returncode in (0, 1) and os.path.exists(journal),
          "with the configured servers a run is journaled (%d)" % r.returncode)
finally:
    env.cleanup()
done()
