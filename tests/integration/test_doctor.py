"""reconciler doctor against the real servers: documents inserted into
FerretDB through libmongoc and indexed into OpenSearch through the
project's libcurl code are counted on both sides; an unreachable side is
named and the exit code is non-zero."""
from harness import Env, check, done

env = Env("doctor")
try:
    env.fixture("load", "--count", 250)
    env.fixture("sync", "--skip-every", 10)  # 225 indexed
    r = env.run("doctor")
    check(r.returncode == 0, "doctor exits 0 when both sides answer: %s" % r.stderr)
    lines = r.stdout.splitlines()
    mongo = [l for l in lines if l.startswith("mongodb")]
    osl = [l for l in lines if l.startswith("opensearch")]
    check(mongo and "reachable" in mongo[0] and "documents 250" in mongo[0],
          "doctor counts 250 in MongoDB: %r" % mongo)
    check(osl and "version 2.19.1" in osl[0] and "documents 225" in osl[0],
          "doctor counts 225 in OpenSearch (with _count): %r" % osl)

    # a side that does not answer is named, with a non-zero exit
    r = env.run("doctor", OPENSEARCH_URL="http://127.0.0.1:1")
    check(r.returncode != 0, "doctor exits non-zero when OpenSearch is unreachable")
    check("opensearch unreachable" in r.stderr, "doctor names OpenSearch: %r" % r.stderr)
    r = env.run("doctor", MONGODB_URI="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500")
    check(r.returncode != 0 and "mongodb unreachable" in r.stderr,
          "doctor names MongoDB: %r" % r.stderr)
    check("mongodb     UNREACHABLE" in r.stdout, "the table says so too: %r" % r.stdout)
    # a server that answers but refuses the filter is not "unreachable" (QA F3)
    r = env.run("doctor", RECONCILE_FILTER='{"$where": "1"}')
    check(r.returncode != 0 and "mongodb answers, but" in r.stderr
          and "mongodb     ERROR" in r.stdout and "UNREACHABLE" not in r.stdout,
          "doctor: a refused filter is an error of a reachable server: %r %r"
          % (r.stdout, r.stderr))
    # secrets stay masked in doctor's output
    r = env.run("doctor", MONGODB_URI="mongodb://u:topsecret@127.0.0.1:1/?serverSelectionTimeoutMS=300")
    check("topsecret" not in r.stdout + r.stderr, "doctor masks the MongoDB password")
finally:
    env.cleanup()
done()
