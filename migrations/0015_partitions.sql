-- 0015_partitions: a run of one partition of a split run (issue 21,
-- `reconciler check --partition K/N`; docs/ENGINE.md "Partitions").
-- partition_k / partition_n: its place, 0-based K of N (NULL: a whole run);
-- written when the run begins, so a resume keeps it whatever it is asked.
-- partition_type: the id type of the bounds ('oid' or 'string'), NULL
-- until the plan is computed; partition_lo / partition_hi: the key range
-- [lo, hi) as canonical texts, NULL for an open end (the first partition
-- has no lo, the last no hi). The plan is journaled before the pass, so a
-- resumed partition reads exactly its own range again.

ALTER TABLE runs ADD COLUMN partition_k INTEGER;
ALTER TABLE runs ADD COLUMN partition_n INTEGER;
ALTER TABLE runs ADD COLUMN partition_type TEXT;
ALTER TABLE runs ADD COLUMN partition_lo TEXT;
ALTER TABLE runs ADD COLUMN partition_hi TEXT;
