-- 0019_split_runs: the partitions of one run in one process
-- (RECONCILE_PARTITIONS=P, issue 21; docs/ENGINE.md "Partitions"). Each
-- partition is a run of its own (its own cursor, counts and plan, as
-- migration 0015 gave them); split_of ties the P runs of one split run
-- together: the id of its partition 0's run (NULL: not a split run; a
-- `check --partition K/N` of one process is not one either). A killed
-- split run resumes the unfinished runs of its split, with its plan, and
-- leaves the finished ones as they are:
--   SELECT id, partition_k, status FROM runs WHERE split_of = 42;

ALTER TABLE runs ADD COLUMN split_of INTEGER;
CREATE INDEX runs_split_of ON runs(split_of) WHERE split_of IS NOT NULL;

-- A split run is one pass: drift history's "open" reads the newest pass by
-- its first run's id (split_of), so a key seen by any partition of the
-- newest split is open, not only one seen by its highest run id
-- (store.c's hist_run takes the previous pass the same way, for streaks).
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
LEFT JOIN (SELECT mirror, max(COALESCE(split_of, id)) AS pass FROM runs
           WHERE kind IN ('check', 'dry_run', 'catchup') AND status = 'completed'
           GROUP BY mirror) p ON p.mirror = h.mirror
LEFT JOIN run_ids i ON i.run_id = h.last_run AND i.kind = h.kind AND i.doc_id = h.doc_id
     AND i.id_type = h.id_type AND i.os_index = h.os_index AND i.os_id = h.os_id
     AND i.routing = h.routing;
