-- 0008_brake_and_targeted_runs: a brake on orphan deletes, and targeted runs.
-- New run kind 'ids' (a check of given ids, or of the documents changed
-- since a time) and new run status 'held' (the pass found more orphans than
-- RECONCILE_MAX_DELETE_RATIO / RECONCILE_MAX_DELETES allow, or a side's id
-- stream read fewer ids than its count said: nothing was deleted). SQLite
-- cannot alter a CHECK constraint, so runs is rebuilt with every column in
-- its order, its indexes and its history; the tables that reference it keep
-- their foreign keys (store_migrate runs a migration with foreign key
-- enforcement off and checks every key before it commits). The views read
-- runs by name and are left as they are (legacy_alter_table: the rename
-- neither rewrites nor re-checks them).
-- Two new columns: index_read (index copies the pass's judging sweep has
-- read up to the cursor, so a resumed run still knows whether the index
-- stream was complete) and delete_brake (on: orphan deletes wait for the
-- end of the pass; released: allowDeletes / --allow-deletes for this run;
-- passed: under the limits, being sent, also after a resume; held).

PRAGMA legacy_alter_table = ON;

CREATE TABLE runs_new (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('check', 'dry_run', 'full', 'ids')),
    trigger          TEXT NOT NULL,                 -- cli, api, schedule, count_monitor, resume
    status           TEXT NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'completed', 'failed', 'interrupted', 'cancelled',
                                       'held')),
    phase            TEXT NOT NULL DEFAULT 'starting', -- starting, counting, diffing, repairing, finishing, done
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    heartbeat_at     TEXT,
    mongo_count      INTEGER,
    opensearch_count INTEGER,
    compared         INTEGER NOT NULL DEFAULT 0,    -- MongoDB ids compared so far
    missing_count    INTEGER NOT NULL DEFAULT 0,
    orphan_count     INTEGER NOT NULL DEFAULT 0,
    stale_count      INTEGER NOT NULL DEFAULT 0,
    skipped_count    INTEGER NOT NULL DEFAULT 0,    -- left alone: changed within RECONCILE_MIN_AGE_MS
    repaired_count   INTEGER NOT NULL DEFAULT 0,    -- documents indexed
    deleted_count    INTEGER NOT NULL DEFAULT 0,    -- orphans deleted
    failed_count     INTEGER NOT NULL DEFAULT 0,    -- documents OpenSearch rejected
    cursor_type      TEXT,                          -- type of the last committed MongoDB _id
    cursor           TEXT,                          -- last committed MongoDB _id (canonical text)
    seen_types       INTEGER NOT NULL DEFAULT 0,    -- bit set of _id classes met so far
    resume_count     INTEGER NOT NULL DEFAULT 0,
    pid              INTEGER,                       -- process that last ran it
    config           TEXT NOT NULL,                 -- JSON snapshot, secrets masked
    error            TEXT,
    duplicate_count  INTEGER NOT NULL DEFAULT 0,
    conflict_count   INTEGER NOT NULL DEFAULT 0,
    mirror           TEXT NOT NULL DEFAULT 'default',
    skipped_newer_count INTEGER NOT NULL DEFAULT 0,
    index_read       INTEGER NOT NULL DEFAULT 0,    -- index copies the judging sweep read up to the cursor
    delete_brake     TEXT NOT NULL DEFAULT 'on'
                     CHECK (delete_brake IN ('on', 'released', 'passed', 'held'))
);
INSERT INTO runs_new (id, kind, trigger, status, phase, started_at, finished_at, heartbeat_at,
                      mongo_count, opensearch_count, compared, missing_count, orphan_count,
                      stale_count, skipped_count, repaired_count, deleted_count, failed_count,
                      cursor_type, cursor, seen_types, resume_count, pid, config, error,
                      duplicate_count, conflict_count, mirror, skipped_newer_count)
    SELECT id, kind, trigger, status, phase, started_at, finished_at, heartbeat_at,
           mongo_count, opensearch_count, compared, missing_count, orphan_count,
           stale_count, skipped_count, repaired_count, deleted_count, failed_count,
           cursor_type, cursor, seen_types, resume_count, pid, config, error,
           duplicate_count, conflict_count, mirror, skipped_newer_count
    FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_status ON runs (status);
CREATE INDEX runs_mirror ON runs (mirror, id);

PRAGMA legacy_alter_table = OFF;
