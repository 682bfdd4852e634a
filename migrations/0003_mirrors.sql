-- 0003_mirrors: every run belongs to a mirror (one collection into one index).
-- A journal written before mirrors existed had one, the environment's, which
-- is now called 'default': its runs keep their history under that name.
-- The views show the mirror next to the run id; drift and error rows get it
-- from their run.

ALTER TABLE runs ADD COLUMN mirror TEXT NOT NULL DEFAULT 'default';
-- a mirror's history and its newest (or unfinished) run, newest first
CREATE INDEX runs_mirror ON runs (mirror, id);

DROP VIEW v_runs;
CREATE VIEW v_runs AS
SELECT id, mirror, kind, trigger, status, phase, started_at, finished_at,
       CAST(ROUND((julianday(COALESCE(finished_at, heartbeat_at, started_at)) - julianday(started_at)) * 86400.0, 1) AS REAL) AS seconds,
       mongo_count, opensearch_count, compared,
       missing_count AS missing, orphan_count AS orphans, stale_count AS stale,
       skipped_count AS skipped, repaired_count AS repaired, deleted_count AS deleted,
       failed_count AS failed, resume_count AS resumes, error,
       duplicate_count AS duplicates, conflict_count AS conflicts
FROM runs ORDER BY id DESC;

DROP VIEW v_run_errors;
CREATE VIEW v_run_errors AS
SELECT e.run_id, r.mirror, e.at, e.phase, e.source, e.batch_no, e.doc_id, e.code, e.message
FROM errors e LEFT JOIN runs r ON r.id = e.run_id ORDER BY e.id DESC;

DROP VIEW v_drift;
CREATE VIEW v_drift AS
SELECT i.run_id, r.mirror, i.kind, i.doc_id, i.id_type, i.status, i.batch_no, i.error,
       i.os_index, i.os_id, i.routing
FROM run_ids i JOIN runs r ON r.id = i.run_id;
