-- 0016_stream_target: what a stream's place belongs to (issue 23, QA).
-- target: "database.collection -> index" of the mirror when its place was
-- journaled. A mirror whose collection or index changed since must not
-- resume from the old place (the new index would miss everything before
-- it, or the server refuses a token of another collection): the place is
-- dropped and the stream starts as on a first start, with a gap and its
-- catch-up. NULL for places from before: trusted once, then set.
-- (0015 is left to the partitions' migration.)

ALTER TABLE streams ADD COLUMN target TEXT;
