-- 0006_stale_fields: a copy found stale by content (RECONCILE_COMPARE=content)
-- keeps the names of the top-level fields that differed, comma-separated and
-- bounded (at most about 200 bytes, then ",..."), so a report says why
-- without a diff. NULL for every other row (stale by version included).

ALTER TABLE run_ids ADD COLUMN fields TEXT;

DROP VIEW v_drift;
CREATE VIEW v_drift AS
SELECT i.run_id, r.mirror, i.kind, i.doc_id, i.id_type, i.status, i.batch_no, i.error,
       i.os_index, i.os_id, i.routing, i.fields
FROM run_ids i JOIN runs r ON r.id = i.run_id;
