-- 0013_sample_runs: `reconciler check --sample N` (issue 20 item 5).
-- New run kind 'sample': a dry run of N random MongoDB documents (and N
-- random index copies) looked up on both sides, whose estimate of the
-- mirror's drift rate is kept in run_samples. SQLite cannot alter a CHECK
-- constraint, so runs is rebuilt as 0008 did, with every column in its
-- order (through 0012), its indexes and its history; the tables that
-- reference it keep their foreign keys (store_migrate runs a migration with
-- foreign key enforcement off and checks every key before it commits). The
-- views read runs by name and are left as they are. A migration before this
-- one that adds a column to runs must add it here too.

PRAGMA legacy_alter_table = ON;

CREATE TABLE runs_new (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('check', 'dry_run', 'full', 'ids', 'sample')),
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
    ranges_descended INTEGER NOT NULL DEFAULT 0
);
INSERT INTO runs_new (id, kind, trigger, status, phase, started_at, finished_at, heartbeat_at,
                      mongo_count, opensearch_count, compared, missing_count, orphan_count,
                      stale_count, skipped_count, repaired_count, deleted_count, failed_count,
                      cursor_type, cursor, seen_types, resume_count, pid, config, error,
                      duplicate_count, conflict_count, mirror, skipped_newer_count, index_read,
                      delete_brake, kept_count, full_write, reindexed_count, orphans_kept_count,
                      transform_digest, verify, verify_note, ranges_summarized,
                      ranges_descended)
    SELECT id, kind, trigger, status, phase, started_at, finished_at, heartbeat_at,
           mongo_count, opensearch_count, compared, missing_count, orphan_count,
           stale_count, skipped_count, repaired_count, deleted_count, failed_count,
           cursor_type, cursor, seen_types, resume_count, pid, config, error,
           duplicate_count, conflict_count, mirror, skipped_newer_count, index_read,
           delete_brake, kept_count, full_write, reindexed_count, orphans_kept_count,
           transform_digest, verify, verify_note, ranges_summarized, ranges_descended
    FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_status ON runs (status);
CREATE INDEX runs_mirror ON runs (mirror, id);

PRAGMA legacy_alter_table = OFF;

-- A sample run's estimate: each side's sample (how drawn, how many looked
-- up, how many drifted) and the 95% Wilson score interval of its rate.
-- The index side's columns are NULL when orphans were not estimated.
CREATE TABLE run_samples (
    run_id          INTEGER PRIMARY KEY REFERENCES runs (id),
    asked           INTEGER NOT NULL,               -- N of --sample N
    seed            INTEGER NOT NULL,               -- the draw's seed (--seed, else random)
    method          TEXT NOT NULL,                  -- '$sample' or 'id stream' (reservoir)
    population      INTEGER,                        -- MongoDB documents the id stream read; NULL: not counted
    mongo_n         INTEGER NOT NULL,               -- distinct MongoDB documents looked up
    missing         INTEGER NOT NULL,               -- of them, judged missing
    stale           INTEGER NOT NULL,               -- of them, judged stale
    rate            REAL NOT NULL,                  -- (missing + stale) / mongo_n
    rate_low        REAL NOT NULL,                  -- 95% Wilson score interval
    rate_high       REAL NOT NULL,
    index_n         INTEGER,                        -- distinct index ids looked up
    orphans         INTEGER,                        -- of them, judged orphans
    orphan_rate     REAL,
    orphan_low      REAL,
    orphan_high     REAL,
    seconds         REAL NOT NULL,                  -- drawing and looking up, wall clock
    note            TEXT                            -- what the numbers do not say
);
