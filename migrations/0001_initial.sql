-- 0001_initial: the run journal.
-- Timestamps are ISO-8601 UTC text with milliseconds, so the sqlite3 shell
-- shows them as people read them and they sort as text.

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('check', 'dry_run', 'full')),
    trigger          TEXT NOT NULL,                 -- cli, api, schedule, count_monitor, resume
    status           TEXT NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'completed', 'failed', 'interrupted', 'cancelled')),
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
    error            TEXT
);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE batches (
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    batch_no     INTEGER NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('index', 'delete')),
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'committed', 'failed')),
    docs         INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    ok           INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    took_ms      INTEGER,
    first_id     TEXT,                              -- full runs: the id range of the batch
    last_id      TEXT,
    started_at   TEXT NOT NULL,
    committed_at TEXT,
    PRIMARY KEY (run_id, batch_no)
);

CREATE TABLE run_ids (
    run_id   INTEGER NOT NULL REFERENCES runs (id),
    doc_id   TEXT NOT NULL,                         -- canonical id (ObjectId as 24 hex)
    id_type  TEXT NOT NULL,                         -- int, double, string, oid, bool, date, json
    kind     TEXT NOT NULL CHECK (kind IN ('missing', 'orphan', 'stale')),
    batch_no INTEGER,                               -- NULL: reported only (dry run, orphans=report, skipped)
    status   TEXT NOT NULL DEFAULT 'pending'
             CHECK (status IN ('pending', 'done', 'failed', 'reported', 'skipped')),
    error    TEXT,
    PRIMARY KEY (run_id, kind, doc_id, id_type)
) WITHOUT ROWID;
CREATE INDEX run_ids_batch ON run_ids (run_id, batch_no);

CREATE TABLE errors (
    id       INTEGER PRIMARY KEY,
    run_id   INTEGER REFERENCES runs (id),
    batch_no INTEGER,
    doc_id   TEXT,
    phase    TEXT,
    source   TEXT NOT NULL CHECK (source IN ('mongo', 'opensearch', 'store', 'engine')),
    code     TEXT,
    message  TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX errors_run ON errors (run_id);

CREATE TABLE run_events (
    id     INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs (id),
    at     TEXT NOT NULL,
    event  TEXT NOT NULL,                           -- started, resumed, interrupted, phase, finished, count_check
    detail TEXT
);
CREATE INDEX run_events_run ON run_events (run_id);

CREATE VIEW v_runs AS
SELECT id, kind, trigger, status, phase, started_at, finished_at,
       CAST(ROUND((julianday(COALESCE(finished_at, heartbeat_at, started_at)) - julianday(started_at)) * 86400.0, 1) AS REAL) AS seconds,
       mongo_count, opensearch_count, compared,
       missing_count AS missing, orphan_count AS orphans, stale_count AS stale,
       skipped_count AS skipped, repaired_count AS repaired, deleted_count AS deleted,
       failed_count AS failed, resume_count AS resumes, error
FROM runs ORDER BY id DESC;

CREATE VIEW v_run_errors AS
SELECT e.run_id, e.at, e.phase, e.source, e.batch_no, e.doc_id, e.code, e.message
FROM errors e ORDER BY e.id DESC;

CREATE VIEW v_drift AS
SELECT i.run_id, i.kind, i.doc_id, i.id_type, i.status, i.batch_no, i.error
FROM run_ids i;
