-- 0014_streams: live sync (issue 23, `reconciler sync`).
-- streams: one row per mirror, the change stream's place. token is the
-- resume token (its _data, as canonical extended JSON) of the last event
-- whose write OpenSearch acknowledged, written in the same transaction as
-- the counters of the batch it ends; cluster_time is that event's cluster
-- time (ISO 8601, seconds) and cluster_ts the exact BSON timestamp
-- (seconds << 32 | increment). A NULL token: no place (never started, or
-- the last place was lost: see stream_gaps).
-- stream_gaps: every time the stream could not continue from its place
-- (no token yet, the token fell off the oplog: 286 ChangeStreamHistoryLost
-- or 136 CappedPositionLost, an invalidate after a drop or rename, an
-- event over 16 MB the server cannot return: 10334 BSONObjectTooLarge) and
-- was opened again from now. lost_from is the cluster time of the last
-- committed event (NULL: none was ever committed); the changes after it
-- until reopened_at reached no index by the stream. catchup_run_id is the
-- check run that closed it (closed_at when it completed).

CREATE TABLE streams (
    mirror          TEXT PRIMARY KEY,
    token           TEXT,
    cluster_time    TEXT,
    cluster_ts      INTEGER,
    events_applied  INTEGER NOT NULL DEFAULT 0,
    events_failed   INTEGER NOT NULL DEFAULT 0,
    batches         INTEGER NOT NULL DEFAULT 0,
    gaps            INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    started_at      TEXT,
    updated_at      TEXT NOT NULL
);

CREATE TABLE stream_gaps (
    id              INTEGER PRIMARY KEY,
    mirror          TEXT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('first_start', 'history_lost', 'invalidate',
                                            'event_too_large')),
    detail          TEXT,
    lost_from       TEXT,
    lost_from_ts    INTEGER,
    reopened_at     TEXT NOT NULL,
    catchup_run_id  INTEGER REFERENCES runs(id),
    closed_at       TEXT
);
CREATE INDEX stream_gaps_mirror ON stream_gaps (mirror, id);
