-- 0018_index_lost_gaps: a live-sync gap when the mirror's index is
-- deleted while the stream runs (QA22 F4). A write into a missing index
-- makes OpenSearch create it with default settings, holding only the
-- changes after: the stream journals a gap of reason 'index_lost' instead
-- (lost_from NULL: every change before is gone from the index), and its
-- catch-up writes the mirror again. SQLite cannot alter a CHECK
-- constraint, so stream_gaps is rebuilt with every column in its order,
-- its index and its rows (nothing references it).

PRAGMA legacy_alter_table = ON;

CREATE TABLE stream_gaps_new (
    id              INTEGER PRIMARY KEY,
    mirror          TEXT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('first_start', 'history_lost', 'invalidate',
                                            'event_too_large', 'index_lost')),
    detail          TEXT,
    lost_from       TEXT,
    lost_from_ts    INTEGER,
    reopened_at     TEXT NOT NULL,
    catchup_run_id  INTEGER REFERENCES runs(id),
    closed_at       TEXT
);
INSERT INTO stream_gaps_new (id, mirror, reason, detail, lost_from, lost_from_ts, reopened_at,
                             catchup_run_id, closed_at)
    SELECT id, mirror, reason, detail, lost_from, lost_from_ts, reopened_at, catchup_run_id,
           closed_at FROM stream_gaps;
DROP TABLE stream_gaps;
ALTER TABLE stream_gaps_new RENAME TO stream_gaps;
CREATE INDEX stream_gaps_mirror ON stream_gaps (mirror, id);

PRAGMA legacy_alter_table = OFF;
