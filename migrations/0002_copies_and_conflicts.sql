-- 0002_copies_and_conflicts: where an index copy lives, and two new kinds.
-- An alias may span several indices and a copy may carry custom routing: a
-- delete or an overwrite must name the copy's concrete index and routing,
-- or it lands on another copy (or on nothing) and reports a false success;
-- and a copy whose _id is not its id field's value (a foreign writer, a
-- normalizer) must be deleted by its own _id, never by the id field's.
-- New drift kinds: 'duplicate' (one id with copies in several backing
-- indices; the extra copies are removed) and 'conflict' (two MongoDB
-- documents whose ids have the same text, e.g. 42 and "42", and so the
-- same index _id: reported, never rewritten).

ALTER TABLE runs ADD COLUMN duplicate_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN conflict_count INTEGER NOT NULL DEFAULT 0;

CREATE TABLE run_ids_new (
    run_id   INTEGER NOT NULL REFERENCES runs (id),
    doc_id   TEXT NOT NULL,                         -- canonical id (ObjectId as 24 hex)
    id_type  TEXT NOT NULL,                         -- int, double, string, oid, bool, date, json
    kind     TEXT NOT NULL
             CHECK (kind IN ('missing', 'orphan', 'stale', 'duplicate', 'conflict')),
    os_index TEXT NOT NULL DEFAULT '',              -- concrete index of the copy; '' = OPENSEARCH_INDEX
    os_id    TEXT NOT NULL DEFAULT '',              -- the copy's _id where it is not doc_id; '' = doc_id
    routing  TEXT NOT NULL DEFAULT '',              -- the copy's _routing; '' = none
    batch_no INTEGER,                               -- NULL: reported only (dry run, orphans=report, skipped)
    status   TEXT NOT NULL DEFAULT 'pending'
             CHECK (status IN ('pending', 'done', 'failed', 'reported', 'skipped')),
    error    TEXT,                                  -- why it failed, was skipped, or conflicts
    PRIMARY KEY (run_id, kind, doc_id, id_type, os_index, os_id, routing)
) WITHOUT ROWID;
INSERT INTO run_ids_new (run_id, doc_id, id_type, kind, batch_no, status, error)
    SELECT run_id, doc_id, id_type, kind, batch_no, status, error FROM run_ids;
DROP VIEW v_drift;
DROP TABLE run_ids;
ALTER TABLE run_ids_new RENAME TO run_ids;
CREATE INDEX run_ids_batch ON run_ids (run_id, batch_no);

CREATE VIEW v_drift AS
SELECT i.run_id, i.kind, i.doc_id, i.id_type, i.status, i.batch_no, i.error, i.os_index, i.os_id,
       i.routing
FROM run_ids i;

DROP VIEW v_runs;
CREATE VIEW v_runs AS
SELECT id, kind, trigger, status, phase, started_at, finished_at,
       CAST(ROUND((julianday(COALESCE(finished_at, heartbeat_at, started_at)) - julianday(started_at)) * 86400.0, 1) AS REAL) AS seconds,
       mongo_count, opensearch_count, compared,
       missing_count AS missing, orphan_count AS orphans, stale_count AS stale,
       skipped_count AS skipped, repaired_count AS repaired, deleted_count AS deleted,
       failed_count AS failed, resume_count AS resumes, error,
       duplicate_count AS duplicates, conflict_count AS conflicts
FROM runs ORDER BY id DESC;
