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
