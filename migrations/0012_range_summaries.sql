-- 0012_range_summaries: how a run verified its key ranges (issue 20,
-- RECONCILE_VERIFY; docs/ENGINE.md "Verifying by range summaries").
-- verify: 'summary' (ranges verified by their summaries, only those that
-- differ streamed) or 'merge' (every index id streamed); NULL for a run
-- with no pass (a full re-index, a targeted run) and runs from before.
-- verify_note: why a run merged where summaries were asked for or could
-- have been (scripts refused, a mirror that does not qualify, too many
-- differing ranges, several id classes).
-- ranges_summarized / ranges_descended: key ranges proven in sync by
-- their summaries, and ranges streamed and merged because their summaries
-- differed; committed with the cursor, so a resumed run counts on.

ALTER TABLE runs ADD COLUMN verify TEXT;
ALTER TABLE runs ADD COLUMN verify_note TEXT;
ALTER TABLE runs ADD COLUMN ranges_summarized INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN ranges_descended INTEGER NOT NULL DEFAULT 0;

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
       kept_count AS kept, verify, ranges_summarized, ranges_descended
FROM runs ORDER BY id DESC;
