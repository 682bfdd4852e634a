-- 0004_skipped_newer: OPENSEARCH_VERSION_TYPE=external_gte. A write the index
-- refuses because its copy holds a newer external version (409
-- version_conflict_engine_exception) is neither repaired nor failed: a live
-- syncer already wrote something newer. Each batch counts its documents so
-- refused (they are not in ok nor in failed); the run sums them. In a check
-- the drift row says 'skipped' with the reason, and skipped_count leaves
-- these out (it counts what the settings leave alone: RECONCILE_MIN_AGE_MS,
-- the transform's nil, documents gone from MongoDB).

ALTER TABLE batches ADD COLUMN skipped_newer INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN skipped_newer_count INTEGER NOT NULL DEFAULT 0;

DROP VIEW v_runs;
CREATE VIEW v_runs AS
SELECT id, mirror, kind, trigger, status, phase, started_at, finished_at,
       CAST(ROUND((julianday(COALESCE(finished_at, heartbeat_at, started_at)) - julianday(started_at)) * 86400.0, 1) AS REAL) AS seconds,
       mongo_count, opensearch_count, compared,
       missing_count AS missing, orphan_count AS orphans, stale_count AS stale,
       skipped_count AS skipped, repaired_count AS repaired, deleted_count AS deleted,
       failed_count AS failed, resume_count AS resumes, error,
       duplicate_count AS duplicates, conflict_count AS conflicts,
       skipped_newer_count AS skipped_newer
FROM runs ORDER BY id DESC;
