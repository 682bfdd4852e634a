-- 0005_drift_reason: why a document is drift, where its kind alone does not
-- say. A mirror with RECONCILE_FILTER calls an index copy an orphan both
-- when MongoDB no longer has its document and when the document exists but
-- no longer matches the filter (or the transform now leaves it out); the
-- second is journaled with reason 'left the filter' (or 'left the filter
-- (transform returned nil)'), which stays when the copy is deleted, while
-- error says only why a repair failed or was skipped. NULL: the kind says it.

ALTER TABLE run_ids ADD COLUMN reason TEXT;

DROP VIEW v_drift;
CREATE VIEW v_drift AS
SELECT i.run_id, r.mirror, i.kind, i.doc_id, i.id_type, i.status, i.batch_no, i.error,
       i.os_index, i.os_id, i.routing, i.reason
FROM run_ids i JOIN runs r ON r.id = i.run_id;
