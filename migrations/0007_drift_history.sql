-- 0007_drift_history: a drifted id keeps its history across the runs of its
-- mirror. One row per mirror and drift row key (the key of run_ids without
-- the run): when it was first and last seen (run and time), how often,
-- how many passes in a row, which run repaired it last and when, and
-- whether it is recurring. store.c keeps it in the transactions that write
-- run_ids (a row seen: store_drift_add; a row repaired: store_drift_set),
-- so it costs O(drift), never a scan of a run's ids afterwards.
--
-- Definitions (docs/JOURNAL.md, "Drift across runs"):
-- - a pass is a check or dry run of the mirror that completed;
-- - two sightings are in a row when no pass of the mirror lies between
--   them that did not see the id; streak counts the sightings in a row
--   that end with the last one;
-- - a return is a sighting after the id was repaired (repaired_run at or
--   after the sighting before it);
-- - recurring_run: the run in which it first had a streak of 3 or a
--   return; once recurring, it stays so (NULL: never);
-- - open (v_drift_history): seen in the mirror's most recent pass, or
--   since, and not repaired since it was last seen.

CREATE TABLE drift_history (
    mirror        TEXT NOT NULL,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('missing', 'orphan', 'stale', 'duplicate', 'conflict')),
    doc_id        TEXT NOT NULL,
    id_type       TEXT NOT NULL,
    os_index      TEXT NOT NULL DEFAULT '',
    os_id         TEXT NOT NULL DEFAULT '',
    routing       TEXT NOT NULL DEFAULT '',
    first_run     INTEGER NOT NULL,                 -- the run that saw it first
    first_seen_at TEXT NOT NULL,
    last_run      INTEGER NOT NULL,                 -- the run that saw it last
    last_seen_at  TEXT NOT NULL,
    times_seen    INTEGER NOT NULL DEFAULT 1,       -- runs that saw it
    streak        INTEGER NOT NULL DEFAULT 1,       -- sightings in a row, ending with the last
    repaired_run  INTEGER,                          -- the run that repaired it last; NULL: never
    repaired_at   TEXT,
    repairs       INTEGER NOT NULL DEFAULT 0,       -- runs that repaired it
    returns       INTEGER NOT NULL DEFAULT 0,       -- sightings after a repair
    recurring_run INTEGER,                          -- the run that made it recurring; NULL: not
    PRIMARY KEY (mirror, kind, doc_id, id_type, os_index, os_id, routing)
) WITHOUT ROWID;
-- open drift: what the mirror's latest passes saw
CREATE INDEX drift_history_last ON drift_history (mirror, last_run);
CREATE INDEX drift_history_recurring ON drift_history (mirror, recurring_run)
    WHERE recurring_run IS NOT NULL;

-- The history a journal already holds, read from run_ids once. Rows carry
-- their run's start as the time seen, and the commit of their batch as the
-- time repaired.
INSERT INTO drift_history (mirror, kind, doc_id, id_type, os_index, os_id, routing,
    first_run, first_seen_at, last_run, last_seen_at, times_seen, streak, repaired_run,
    repaired_at, repairs, returns, recurring_run)
WITH run_prev AS (
    -- each run with the newest pass of its mirror before it (0: none)
    SELECT id, mirror, started_at,
           COALESCE(max(CASE WHEN kind IN ('check', 'dry_run') AND status = 'completed'
                             THEN id END)
                    OVER (PARTITION BY mirror ORDER BY id
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS prev_pass
    FROM runs
), seen AS (
    SELECT p.mirror, i.kind, i.doc_id, i.id_type, i.os_index, i.os_id, i.routing, i.run_id,
           i.status, p.started_at AS at, p.prev_pass,
           CASE WHEN i.status = 'done' THEN
               (SELECT b.committed_at FROM batches b
                WHERE b.run_id = i.run_id AND b.batch_no = i.batch_no) END AS repaired_at,
           lag(i.run_id) OVER w AS lag_run,
           lag(i.status) OVER w AS lag_status
    FROM run_ids i JOIN run_prev p ON p.id = i.run_id
    WINDOW w AS (PARTITION BY p.mirror, i.kind, i.doc_id, i.id_type, i.os_index, i.os_id,
                              i.routing ORDER BY i.run_id)
), flagged AS (
    SELECT *, lag_run IS NOT NULL AND lag_run >= prev_pass AS in_row,
           COALESCE(lag_status = 'done', 0) AS is_return
    FROM seen
), islands AS (
    SELECT *, sum(NOT in_row) OVER (PARTITION BY mirror, kind, doc_id, id_type, os_index,
                                                 os_id, routing ORDER BY run_id
                                    ROWS UNBOUNDED PRECEDING) AS island
    FROM flagged
), placed AS (
    SELECT *, row_number() OVER (PARTITION BY mirror, kind, doc_id, id_type, os_index, os_id,
                                              routing, island ORDER BY run_id) AS pos,
           max(run_id) OVER (PARTITION BY mirror, kind, doc_id, id_type, os_index, os_id,
                                          routing) AS last_run
    FROM islands
)
SELECT mirror, kind, doc_id, id_type, os_index, os_id, routing,
       min(run_id), min(at), max(run_id), max(at), count(*),
       max(CASE WHEN run_id = last_run THEN pos END),
       max(CASE WHEN status = 'done' THEN run_id END), max(repaired_at),
       sum(status = 'done'), sum(is_return),
       min(CASE WHEN pos >= 3 OR is_return THEN run_id END)
FROM placed
GROUP BY mirror, kind, doc_id, id_type, os_index, os_id, routing;

-- For the sqlite3 shell: each id's history with its state now.
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
           WHERE kind IN ('check', 'dry_run') AND status = 'completed'
           GROUP BY mirror) p ON p.mirror = h.mirror
LEFT JOIN run_ids i ON i.run_id = h.last_run AND i.kind = h.kind AND i.doc_id = h.doc_id
     AND i.id_type = h.id_type AND i.os_index = h.os_index AND i.os_id = h.os_id
     AND i.routing = h.routing;
