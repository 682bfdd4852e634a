"""The configuration file: `reconciler config --file` checks a file (exit 0
or 78 naming file:line: key and what is allowed), RECONCILER_CONFIG and
./reconciler.yaml are read, the environment overrides the top level, secrets
stay masked, and a mirror from a file drives a real run."""
import json
import os

from harness import SRC, Env, check, done

env = Env("cfgfile")
unused_index = env.index + "_unused"


def write(name, text):
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


try:
    # the example: three mirrors, exit 0, every mirror's settings
    example = os.path.join(SRC, "examples", "reconciler.yaml")
    r = env.run("config", "--file", example)
    check(r.returncode == 0, "config --file examples/reconciler.yaml exits 0 (%d: %s)"
          % (r.returncode, r.stderr[-300:]))
    for name in ("ads", "users", "ads-search"):
        check("  - name: %s\n" % name in r.stdout, "the example's mirror %s is shown" % name)
    check('opensearch_index: "ads-search-v2"' in r.stdout and "reconcile_orphans: delete" in r.stdout,
          "a mirror's own settings are shown")
    r = env.run("config", "--file", example, "--json")
    shown = json.loads(r.stdout)
    check(r.returncode == 0 and [m["name"] for m in shown["mirrors"]] == ["ads", "users", "ads-search"],
          "config --file --json lists the mirrors")
    r = env.run("config", "--file", example, "--mirror", "users")
    check(r.returncode == 0 and "MONGODB_COLLECTION=users\n" in r.stdout,
          "config --mirror shows one mirror as NAME=value lines")
    r = env.run("config", "--file", example, "--mirror", "nope")
    check(r.returncode == 78 and "no mirror named nope" in r.stderr and "ads, users, ads-search" in r.stderr,
          "config --mirror of an unknown mirror: 78 with the names")

    # every class of bad file: exit 78, file:line: key, what is allowed
    bad = [
        ("syntax.yaml", "mirrors:\n  - name: ads\n    opensearch_index: [ads\n",
         ":4: ", ["YAML syntax error"]),
        ("unknown.yaml", "mirrors:\n  - name: ads\n    mongodb_colection: ads\n",
         ":3: ", ["mirror ads", '"mongodb_colection"', "did you mean mongodb_collection"]),
        ("duplicate.yaml", "mirrors:\n  - name: ads\n  - name: users\n  - name: ads\n",
         ":4: ", ["name", '"ads" is already defined at line 2']),
        ("badname.yaml", "mirrors:\n  - name: My Ads\n", ":2: ", ["name", "1 to 63 of a-z"]),
        ("badvalue.yaml", "mirrors:\n  - name: ads\n    sync_batch_size: lots\n",
         ":3: ", ["sync_batch_size", '"lots"', "an integer from 1 to 10000"]),
        ("badenum.yaml", "reconcile_orphans: purge\n", ":1: ",
         ["reconcile_orphans", "one of report, delete"]),
        ("global.yaml", "mirrors:\n  - name: ads\n    port: 8080\n", ":3: ",
         ["port is a global setting", "top level"]),
        ("twice.yaml", "port: 1\nport: 2\n", ":2: ", ["port", "first at line 1"]),
    ]
    for name, text, line, pieces in bad:
        path = write(name, text)
        r = env.run("config", "--file", path)
        check(r.returncode == 78, "%s exits 78 (%d)" % (name, r.returncode))
        check((path + line) in r.stderr and all(p in r.stderr for p in pieces),
              "%s names file, line, key and what is allowed: %r" % (name, r.stderr))
        check(r.stdout == "", "%s prints no settings" % name)
    r = env.run("config", "--file", os.path.join(env.tmp, "missing.yaml"))
    check(r.returncode == 78 and "missing.yaml: cannot read" in r.stderr, "a missing file exits 78")

    # RECONCILER_CONFIG, ./reconciler.yaml, and the environment over the top level
    r = env.run("config")
    check(r.returncode == 0 and r.stdout.startswith("MONGODB_URI="),
          "no file: NAME=value lines as before")
    write("reconciler.yaml", "state_db: from-file.db\nport: 3999\n"
          "mirrors:\n  - name: one\n    opensearch_index: one\n"
          "  - name: two\n    opensearch_index: two\n")
    r = env.run("config")
    check(r.returncode == 0 and "  - name: one\n" in r.stdout and "  - name: two\n" in r.stdout,
          "./reconciler.yaml is read when it exists")
    check(('state_db: "%s"' % env.env["STATE_DB"]) in r.stdout and "port: 3999\n" in r.stdout,
          "the environment overrides the file's top level, the file the defaults")
    r = env.run("config", RECONCILER_CONFIG="")
    check(r.returncode == 0 and r.stdout.startswith("MONGODB_URI="),
          "RECONCILER_CONFIG set but empty: no file")
    write("reconciler.yaml", "mirrors:\n  - name: one\n  - name: one\n")
    r = env.run("runs")
    check(r.returncode == 78 and "reconciler.yaml:3: " in r.stderr,
          "a bad ./reconciler.yaml stops every command with 78")
    os.unlink(os.path.join(env.tmp, "reconciler.yaml"))
    other = write("other.yaml", "mirrors:\n  - name: elsewhere\n")
    r = env.run("config", RECONCILER_CONFIG=other)
    check(r.returncode == 0 and "  - name: elsewhere\n" in r.stdout, "RECONCILER_CONFIG names the file")

    # secrets in a file never leave the process
    # (a mirror's entry beats the environment's MONGODB_URI, so its password is the file's)
    path = write("secret.yaml", "mirrors:\n  - name: a\n"
                 "    mongodb_uri: mongodb://app:pa55word@127.0.0.1:1/\n"
                 "    opensearch_password: os-s3cret\n")
    r = env.run("config", "--file", path, API_TOKEN="t0ken")
    check(r.returncode == 0 and 'mongodb_uri: "mongodb://app:***@127.0.0.1:1/"' in r.stdout,
          "the file's URI is shown masked")
    out = env.run("config", "--file", path, "--json", API_TOKEN="t0ken").stdout
    for text in (r.stdout + r.stderr, out):
        check("pa55word" not in text and "os-s3cret" not in text and "t0ken" not in text,
              "a file's secrets are masked")

    # a mirror's script that cannot be loaded: the file, the mirror, the key,
    # and where a relative path is read from
    path = write("script.yaml", "mirrors:\n  - name: a\n    reconcile_transform: t-none.lua\n"
                 "  - name: b\n    opensearch_index: other\n")
    r = env.run("config", "--file", path)
    check(r.returncode == 78 and path + ": mirror a: reconcile_transform: " in r.stderr
          and "t-none.lua" in r.stderr and "working directory" in r.stderr,
          "a script that cannot be loaded names file, mirror, key and the directory (%d: %s)"
          % (r.returncode, r.stderr[-300:]))

    # an environment variable over a value the file's top level sets: said
    path = write("envover.yaml", "mongodb_collection: ads\nmirrors:\n  - name: a\n"
                 "    opensearch_index: a\n  - name: b\n    opensearch_index: b\n")
    r = env.run("config", "--file", path, MONGODB_COLLECTION="users")
    check(r.returncode == 0 and path + ":1: mongodb_collection is overridden by the "
          "environment's MONGODB_COLLECTION" in r.stderr,
          "an environment variable overriding the file's top level is warned of (%s)"
          % r.stderr[-300:])

    # a mirror from a file drives a real run: its entry beats the environment
    env.create_index()
    env.fixture("load", "--count", 300)
    path = write("one.yaml", "sync_batch_size: 50\nmirrors:\n  - name: ads\n"
                 "    mongodb_collection: ads\n    opensearch_index: %s\n" % env.index)
    r = env.run("check", RECONCILER_CONFIG=path, MONGODB_COLLECTION="nothing_here",
                OPENSEARCH_INDEX=unused_index)
    check(r.returncode == 0, "check with a one-mirror file exits 0 (%d: %s)"
          % (r.returncode, r.stderr[-300:]))
    check(env.in_sync(), "the file's mirror was repaired")
    run = env.last_run()
    cfg = json.loads(run["config"])
    check(run["repaired_count"] == 300 and cfg["OPENSEARCH_INDEX"] == env.index
          and cfg["SYNC_BATCH_SIZE"] == "50", "the run used the mirror's settings")
    st, _ = env.os("HEAD", "/" + unused_index)
    check(st == 404, "the environment's index was not touched")
finally:
    env.os("DELETE", "/" + unused_index)
    env.cleanup()
done()
