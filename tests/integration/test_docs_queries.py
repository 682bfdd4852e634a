"""Every journal query the documentation shows runs (issue 24 item 17).

The SQL of README.md and docs/*.md: ```sql blocks, `sqlite3 FILE '...'` /
`sqlite3 FILE "..."` commands (in code blocks or inline), and inline code
that is a statement (`SELECT ...`, `UPDATE ...`, `VACUUM INTO ...`). Each
runs against a copy of a journal a real small run wrote (a dry run and a
check with missing, stale and orphan copies, so the drift views have
rows); any SQL error fails the test, naming the file and line. sqlite3
dot-commands (`.recover`, `.backup`) are the shell's, not SQL: skipped.
"""
import glob
import os
import re
import sqlite3

from harness import SRC, Env, check, done

# what a reader replaces in the docs' examples before running them
PLACEHOLDERS = {"RUN_ID": "1"}
# a statement in capitals, not the word `update` in prose
STATEMENT = re.compile(r"^\s*(SELECT|WITH|UPDATE|DELETE|INSERT|VACUUM|PRAGMA)\s+\S")


def doc_files():
    return [os.path.join(SRC, "README.md")] + sorted(glob.glob(os.path.join(SRC, "docs", "*.md")))


def statements(sql):
    """Splits a block into complete statements (comments kept with theirs)."""
    out, cur = [], ""
    for line in sql.splitlines(keepends=True):
        cur += line
        if sqlite3.complete_statement(cur):
            out.append(cur.strip())
            cur = ""
    if cur.strip() and not all(l.strip().startswith("--") or not l.strip()
                               for l in cur.splitlines()):
        out.append(cur.strip())  # a last statement without ';'
    return out


def extract():
    """[(where, sql)] of every query in the docs."""
    found = []
    for path in doc_files():
        name = os.path.relpath(path, SRC)
        with open(path) as f:
            text = f.read()
        lines = text.split("\n")
        in_block, lang, start, block = False, "", 0, []
        prose = []
        for i, line in enumerate(lines, 1):
            fence = re.match(r"^\s*```(\w*)", line)
            if fence and not in_block:
                in_block, lang, start, block = True, fence.group(1).lower(), i, []
                continue
            if fence and in_block:
                body = "\n".join(block)
                if lang == "sql":
                    for st in statements(body):
                        found.append(("%s:%d (sql block)" % (name, start), st))
                else:
                    for n, bl in enumerate(block):
                        for sql in shell_queries(bl):
                            found.append(("%s:%d" % (name, start + 1 + n), sql))
                in_block = False
                continue
            if in_block:
                block.append(line)
            else:
                prose.append((i, line))
        # inline code in prose (a span may wrap onto the next line)
        joined = "\n".join(l for _i, l in prose)
        starts = [0]
        for _i, l in prose:
            starts.append(starts[-1] + len(l) + 1)
        for m in re.finditer(r"`([^`]+)`", joined):
            span = m.group(1).replace("\n", " ")
            line_no = prose[max(k for k, s in enumerate(starts[:-1]) if s <= m.start())][0]
            where = "%s:%d (inline)" % (name, line_no)
            queries = shell_queries(span)
            if queries:
                found += [(where, q) for q in queries]
            elif STATEMENT.match(span):
                found.append((where, span))
    return found


def shell_queries(line):
    """The SQL of `sqlite3 FILE 'SQL'` or `sqlite3 FILE "SQL"` in a line."""
    out = []
    for m in re.finditer(r"\bsqlite3\s+\S+\s+(['\"])(.*?)\1", line):
        sql = m.group(2)
        if not sql.lstrip().startswith("."):  # a dot-command of the shell
            out.append(sql)
    return out


def journal(env):
    """A journal with runs, batches, drift of every common kind, events."""
    env.create_index()
    env.fixture("load", "--count", 60)
    env.fixture("sync")
    ids = [line.split("\t")[0] for line in env.fixture("ids").splitlines()]
    for m in ids[:3]:
        env.os("DELETE", "/%s/_doc/%s?refresh=true" % (env.index, m))
    for s in ids[3:5]:
        env.os("POST", "/%s/_update/%s?refresh=true" % (env.index, s),
               {"doc": {"updatedAt": "2020-01-01T00:00:00.000Z"}})
    env.bulk([{"index": {"_id": "ffffffffffffffffffffff0a"}},
              {"mongo_id": "ffffffffffffffffffffff0a", "updatedAt": "2024-01-01T00:00:00.000Z"}])
    r = env.run("check", "--dry-run")
    assert r.returncode == 1, r.stderr[-300:]
    r = env.run("check")
    assert r.returncode == 0, r.stderr[-300:]
    return env.env["STATE_DB"]


def main(env):
    path = journal(env)
    queries = extract()
    check(len(queries) >= 20, "the docs' queries are found (%d)" % len(queries))
    check(any("reason" in q and "v_drift" in q for _w, q in queries),
          "among them the documented query on v_drift's reason")
    work = os.path.join(env.tmp, "queries")
    os.makedirs(work)
    for n, (where, sql) in enumerate(queries):
        for k, v in PLACEHOLDERS.items():
            sql = sql.replace(k, v)
        copy = os.path.join(work, "j%d.db" % n)
        # through SQLite: the journal is in WAL mode (docs/JOURNAL.md)
        src, dst = sqlite3.connect(path), sqlite3.connect(copy)
        src.backup(dst)
        dst.close()
        src.close()
        cwd = os.getcwd()
        os.chdir(work)  # VACUUM INTO 'copy.db' writes next to it
        try:
            db = sqlite3.connect(copy, isolation_level=None)
            try:
                db.execute(sql).fetchall()
                ok, why = True, ""
            except sqlite3.Error as e:
                ok, why = False, str(e)
            finally:
                db.close()
        finally:
            os.chdir(cwd)
        check(ok, "%s runs: %s%s" % (where, " ".join(sql.split())[:160],
                                      "" if ok else " -> " + why))


env = Env("docs_queries", RECONCILE_ORPHANS="delete")
try:
    main(env)
except Exception as e:
    import traceback
    traceback.print_exc()
    check(False, "raised %r" % e)
finally:
    env.cleanup()
done()
