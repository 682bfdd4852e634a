-- 0009_drift_view_reason: v_drift shows reason again. 0006 rebuilt the view
-- to add fields from 0003's column list, so the reason column 0005 had added
-- fell out and the documented query on it (docs/JOURNAL.md) failed. The
-- view keeps every column it ever had, in their first order.

DROP VIEW v_drift;
CREATE VIEW v_drift AS
SELECT i.run_id, r.mirror, i.kind, i.doc_id, i.id_type, i.status, i.batch_no, i.error,
       i.os_index, i.os_id, i.routing, i.reason, i.fields
FROM run_ids i JOIN runs r ON r.id = i.run_id;
