-- 0011_reindexed_and_kept: what a run wrote and what it left, said apart
-- (issue 24).
-- full_write: the run writes every document from MongoDB (a full re-index)
-- rather than the drift it found; its batches are journaled by id range.
-- reindexed_count: the documents such a run wrote. They were counted as
-- repaired_count, so "12,000 documents repaired" was said of a mirror with
-- no drift; repaired_count now counts drift repaired only. Finished full
-- runs move their number over.
-- orphans_kept_count: orphans a check found and kept (RECONCILE_ORPHANS=report):
-- in the index, reported, not deleted (a dry run keeps nothing: it writes
-- nothing; a run the brake held says so itself).
-- transform_digest: the digest of what the transform writes (field lists,
-- renames, the script, the fields only the index owns) that the run
-- compared every copy against, set only when it left no copy behind it
-- (docs/TRANSFORM.md "When the transform changes").

ALTER TABLE runs ADD COLUMN full_write INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN reindexed_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN orphans_kept_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN transform_digest TEXT;

UPDATE runs SET full_write = 1 WHERE kind = 'full';
UPDATE runs SET reindexed_count = repaired_count, repaired_count = 0 WHERE kind = 'full';
UPDATE runs SET orphans_kept_count =
    (SELECT count(*) FROM run_ids WHERE run_id = runs.id AND kind = 'orphan'
     AND status = 'reported')
    WHERE kind IN ('check', 'ids') AND delete_brake <> 'held';

DROP VIEW v_runs;
CREATE VIEW v_runs AS
SELECT id, mirror, kind, trigger, status, phase, started_at, finished_at,
       CAST(ROUND((julianday(COALESCE(finished_at, heartbeat_at, started_at)) - julianday(started_at)) * 86400.0, 1) AS REAL) AS seconds,
       mongo_count, opensearch_count, compared,
       missing_count AS missing, orphan_count AS orphans, stale_count AS stale,
       skipped_count AS skipped, repaired_count AS repaired, deleted_count AS deleted,
       failed_count AS failed, resume_count AS resumes, error,
       duplicate_count AS duplicates, conflict_count AS conflicts,
       skipped_newer_count AS skipped_newer,
       reindexed_count AS reindexed, orphans_kept_count AS orphans_kept,
       kept_count AS kept
FROM runs ORDER BY id DESC;
