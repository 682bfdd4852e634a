-- 0017_catchup_runs: live sync's catch-up is a run of its own kind (issue
-- 23, item 3). A gap in a mirror's change stream is closed by a run of kind
-- 'catchup': a check of the whole mirror (detect and repair, orphans under
-- RECONCILE_ORPHANS and the brake) under its own name, never resumed (the
-- stream runs a new one), whose run_events name the gaps it closes. SQLite
-- cannot alter a CHECK constraint, so runs is rebuilt as 0013 did, with
-- every column in its order (through 0015), its indexes and its history;
-- the tables that reference it keep their foreign keys (store_migrate runs
-- a migration with foreign key enforcement off and checks every key before
-- it commits). A migration before this one that adds a column to runs must
-- add it here too.

PRAGMA legacy_alter_table = ON;

CREATE TABLE runs_new (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('check', 'dry_run', 'full', 'ids', 'sample',
                                                   'catchup')),
    trigger          TEXT NOT NULL,                 -- cli, api, schedule, count_monitor, resume, catchup
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
    repaired_count   INTEGER NOT NULL DEFAULT 0,    -- drift repaired
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
                     CHECK (delete_brake IN ('on', 'released', 'passed', 'held')),
    kept_count       INTEGER NOT NULL DEFAULT 0,
    full_write       INTEGER NOT NULL DEFAULT 0,
    reindexed_count  INTEGER NOT NULL DEFAULT 0,
    orphans_kept_count INTEGER NOT NULL DEFAULT 0,
    transform_digest TEXT,
    verify           TEXT,
    verify_note      TEXT,
    ranges_summarized INTEGER NOT NULL DEFAULT 0,
    ranges_descended INTEGER NOT NULL DEFAULT 0,
    partition_k      INTEGER,
    partition_n      INTEGER,
    partition_type   TEXT,
    partition_lo     TEXT,
    partition_hi     TEXT
);
INSERT INTO runs_new (id, kind, trigger, status, phase, started_at, finished_at, heartbeat_at,
                      mongo_count, opensearch_count, compared, missing_count, orphan_count,
                      stale_count, skipped_count, repaired_count, deleted_count, failed_count,
                      cursor_type, cursor, seen_types, resume_count, pid, config, error,
                      duplicate_count, conflict_count, mirror, skipped_newer_count, index_read,
                      delete_brake, kept_count, full_write, reindexed_count, orphans_kept_count,
                      transform_digest, verify, verify_note, ranges_summarized,
                      ranges_descended, partition_k, partition_n, partition_type,
                      partition_lo, partition_hi)
    SELECT id, kind, trigger, status, phase, started_at, finished_at, heartbeat_at,
           mongo_count, opensearch_count, compared, missing_count, orphan_count,
           stale_count, skipped_count, repaired_count, deleted_count, failed_count,
           cursor_type, cursor, seen_types, resume_count, pid, config, error,
           duplicate_count, conflict_count, mirror, skipped_newer_count, index_read,
           delete_brake, kept_count, full_write, reindexed_count, orphans_kept_count,
           transform_digest, verify, verify_note, ranges_summarized, ranges_descended,
           partition_k, partition_n, partition_type, partition_lo, partition_hi
    FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_status ON runs (status);
CREATE INDEX runs_mirror ON runs (mirror, id);

PRAGMA legacy_alter_table = OFF;

-- The catch-ups of journals from before this migration were check runs
-- with trigger 'catchup': they are catchup runs now, listed as such (and
-- an unfinished one is no longer resumed as a check).
UPDATE runs SET kind = 'catchup' WHERE kind = 'check' AND trigger = 'catchup';

-- A catch-up is a pass over the whole mirror, as a check is: it counts for
-- drift history's "open" (v_drift_history reads the newest pass).
DROP VIEW v_drift_history;
CREATE VIEW v_drift_history AS
SELECT h.mirror, h.kind, h.doc_id, h.id_type, h.os_index, h.os_id, h.routing,
       h.first_run, h.first_seen_at, h.last_run, h.last_seen_at, h.times_seen, h.streak,
       h.repaired_run, h.repaired_at, h.repairs, h.returns,
       h.recurring_run IS NOT NULL AS recurring, h.recurring_run,
       (h.last_run >= COALESCE(p.pass, 0)
        AND (h.repaired_run IS NULL OR h.repaired_run < h.last_run)) AS open,
       i.status AS last_status, i.error AS last_error
FROM drift_history h
LEFT JOIN (SELECT mirror, max(id) AS pass FROM runs
           WHERE kind IN ('check', 'dry_run', 'catchup') AND status = 'completed'
           GROUP BY mirror) p ON p.mirror = h.mirror
LEFT JOIN run_ids i ON i.run_id = h.last_run AND i.kind = h.kind AND i.doc_id = h.doc_id
     AND i.id_type = h.id_type AND i.os_index = h.os_index AND i.os_id = h.os_id
     AND i.routing = h.routing;
